//! Lesion coverage by a set of passes.
//!
//! A lesion point counts as covered when it lies within
//! `coverage_radius_mm` of the *intralesional part* of some pass: the piece
//! of the axis from where it enters the lesion (found by walking back from
//! the tip in [`COVERAGE_STEP_MM`] steps, then bisecting the boundary to
//! 1e-3 mm) to the tip. The coverage is the covered fraction of a fixed,
//! seeded sample of lesion points ([`COVERAGE_SAMPLES`] points), so its
//! standard error is at most `0.5 / sqrt(COVERAGE_SAMPLES)` ≈ 0.011.

use nalgebra::Point3;

use crate::anatomy::Lesion;

/// Step used to find where an axis enters the lesion, mm.
pub const COVERAGE_STEP_MM: f64 = 0.5;
/// Number of lesion points sampled to estimate coverage.
pub const COVERAGE_SAMPLES: usize = 2000;
/// Seed of the coverage sample (fixed: the same lesion gives the same sample).
pub const COVERAGE_SEED: u64 = 0x0c0e_5a3e;

/// The intralesional part `[a, tip]` of the axis from `entry` to `tip`
/// (`tip` inside the lesion).
#[must_use]
pub fn intralesional_part(
    lesion: &Lesion,
    entry: &Point3<f64>,
    tip: &Point3<f64>,
) -> (Point3<f64>, Point3<f64>) {
    let v = entry - tip;
    let len = v.norm();
    if len == 0.0 {
        return (*tip, *tip);
    }
    let d = v / len;
    let mut inside_t = 0.0;
    let mut t = COVERAGE_STEP_MM;
    while t <= len {
        if lesion.contains(&(tip + d * t)) {
            inside_t = t;
            t += COVERAGE_STEP_MM;
        } else {
            // Bisect between inside_t and t.
            let (mut lo, mut hi) = (inside_t, t);
            while hi - lo > 1e-3 {
                let mid = 0.5 * (lo + hi);
                if lesion.contains(&(tip + d * mid)) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            inside_t = lo;
            break;
        }
    }
    (tip + d * inside_t, *tip)
}

fn point_segment_distance_sq(p: &Point3<f64>, a: &Point3<f64>, b: &Point3<f64>) -> f64 {
    let ab = b - a;
    let l2 = ab.norm_squared();
    let t = if l2 > 0.0 {
        ((p - a).dot(&ab) / l2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (a + ab * t - p).norm_squared()
}

/// Which of `samples` are within `radius_mm` of the segment `[a, b]`.
pub fn mark_covered(
    samples: &[Point3<f64>],
    a: &Point3<f64>,
    b: &Point3<f64>,
    radius_mm: f64,
    covered: &mut [bool],
) {
    let r2 = radius_mm * radius_mm;
    for (c, p) in covered.iter_mut().zip(samples) {
        if !*c && point_segment_distance_sq(p, a, b) <= r2 {
            *c = true;
        }
    }
}

/// Number of `samples` within `radius_mm` of `[a, b]` that are not yet covered.
#[must_use]
pub fn gain(
    samples: &[Point3<f64>],
    covered: &[bool],
    a: &Point3<f64>,
    b: &Point3<f64>,
    radius_mm: f64,
) -> usize {
    let r2 = radius_mm * radius_mm;
    samples
        .iter()
        .zip(covered)
        .filter(|(p, c)| !**c && point_segment_distance_sq(p, a, b) <= r2)
        .count()
}

/// Fraction of the lesion within `radius_mm` of the intralesional part of
/// any of `passes` (`(entry, tip)` pairs).
#[must_use]
pub fn coverage(lesion: &Lesion, passes: &[(Point3<f64>, Point3<f64>)], radius_mm: f64) -> f64 {
    let samples = lesion.sample_points(COVERAGE_SAMPLES, COVERAGE_SEED);
    if samples.is_empty() {
        return 0.0;
    }
    let mut covered = vec![false; samples.len()];
    for (e, t) in passes {
        let (a, b) = intralesional_part(lesion, e, t);
        mark_covered(&samples, &a, &b, radius_mm, &mut covered);
    }
    covered.iter().filter(|c| **c).count() as f64 / samples.len() as f64
}
