//! Rays against the implicit bone: hit tests, silhouettes and path lengths.

use nalgebra::{Point2, Point3, Vector3};

use crate::imaging::{Projection, Ray};

/// Distance below which a sphere-traced ray counts as touching the surface, mm.
pub(crate) const HIT_EPS_MM: f64 = 1e-5;

/// Largest number of sphere-tracing steps per ray (grazing rays need many).
const MAX_STEPS: usize = 20_000;

/// The parameter interval `[t0, t1]` where a ray crosses an axis-aligned box.
pub(crate) fn ray_box(ray: &Ray, lo: &Point3<f64>, hi: &Point3<f64>) -> Option<(f64, f64)> {
    let mut t0 = 0.0f64;
    let mut t1 = f64::INFINITY;
    for a in 0..3 {
        let o = ray.origin[a];
        let d = ray.dir[a];
        if d.abs() < 1e-300 {
            if o < lo[a] || o > hi[a] {
                return None;
            }
            continue;
        }
        let (mut ta, mut tb) = ((lo[a] - o) / d, (hi[a] - o) / d);
        if ta > tb {
            std::mem::swap(&mut ta, &mut tb);
        }
        t0 = t0.max(ta);
        t1 = t1.min(tb);
    }
    (t0 <= t1).then_some((t0, t1))
}

/// First point where the ray touches `f <= HIT_EPS_MM` (sphere tracing
/// inside the box), or `None` if it misses. `f` must be 1-Lipschitz.
pub(crate) fn first_hit<F: Fn(&Point3<f64>) -> f64>(
    f: &F,
    ray: &Ray,
    lo: &Point3<f64>,
    hi: &Point3<f64>,
) -> Option<f64> {
    let (mut t, t1) = ray_box(ray, lo, hi)?;
    for _ in 0..MAX_STEPS {
        if t > t1 {
            return None;
        }
        let d = f(&ray.at(t));
        if d <= HIT_EPS_MM {
            return Some(t);
        }
        t += d;
    }
    // Not resolved after MAX_STEPS: the ray grazes the surface within a
    // distance far below a pixel; count it as a hit.
    Some(t)
}

/// Whether the ray through pixel `uv` touches the solid.
pub(crate) fn pixel_hits<F: Fn(&Point3<f64>) -> f64>(
    f: &F,
    proj: &Projection,
    uv: &Point2<f64>,
    lo: &Point3<f64>,
    hi: &Point3<f64>,
) -> bool {
    first_hit(f, &proj.back_project(uv), lo, hi).is_some()
}

/// Walking from `start` (a pixel whose ray hits) along the image direction
/// `dir`, the silhouette crossing: the first hit -> miss transition, found by
/// stepping `step_px` and bisecting to `tol_px`. Returns the middle of the
/// final bracket (within `tol_px / 2` of the outline) and its hit end, or
/// `None` if no miss occurs within `max_px`.
#[allow(clippy::too_many_arguments)] // reason: a private helper with plain inputs
pub(crate) fn silhouette_along<F: Fn(&Point3<f64>) -> f64>(
    f: &F,
    proj: &Projection,
    start: &Point2<f64>,
    dir: &nalgebra::Vector2<f64>,
    step_px: f64,
    max_px: f64,
    tol_px: f64,
    bounds: (&Point3<f64>, &Point3<f64>),
) -> Option<(Point2<f64>, Point2<f64>)> {
    let (lo, hi) = bounds;
    silhouette_along_by(
        &|uv: &Point2<f64>| pixel_hits(f, proj, uv, lo, hi),
        start,
        dir,
        step_px,
        max_px,
        tol_px,
    )
}

/// As [`silhouette_along`], with any pixel hit test `hits` (e.g. a ray cast
/// against a triangle mesh).
pub(crate) fn silhouette_along_by<H: Fn(&Point2<f64>) -> bool>(
    hits: &H,
    start: &Point2<f64>,
    dir: &nalgebra::Vector2<f64>,
    step_px: f64,
    max_px: f64,
    tol_px: f64,
) -> Option<(Point2<f64>, Point2<f64>)> {
    if !hits(start) {
        return None;
    }
    let mut a = 0.0;
    let mut b = step_px;
    while b <= max_px {
        if !hits(&(start + dir * b)) {
            break;
        }
        a = b;
        b += step_px;
    }
    if b > max_px {
        return None;
    }
    while b - a > tol_px {
        let m = 0.5 * (a + b);
        if hits(&(start + dir * m)) {
            a = m;
        } else {
            b = m;
        }
    }
    Some((start + dir * (0.5 * (a + b)), start + dir * a))
}

/// Lengths along a ray of the solid (`f < 0`) and of its inner core
/// (`f < -shell_mm`), mm. Sphere tracing with steps no smaller than
/// `min_step_mm` across the three regions (outside, shell, core).
pub(crate) fn path_lengths<F: Fn(&Point3<f64>) -> f64>(
    f: &F,
    ray: &Ray,
    lo: &Point3<f64>,
    hi: &Point3<f64>,
    shell_mm: f64,
    min_step_mm: f64,
) -> (f64, f64) {
    let Some((mut t, t1)) = ray_box(ray, lo, hi) else {
        return (0.0, 0.0);
    };
    let (mut solid, mut core) = (0.0, 0.0);
    let o = ray.origin;
    let dv: Vector3<f64> = ray.dir.into_inner();
    let mut steps = 0;
    while t < t1 && steps < 4 * MAX_STEPS {
        steps += 1;
        let d = f(&(o + dv * t));
        let step = if d > 0.0 {
            d
        } else if d > -shell_mm {
            (-d).min(d + shell_mm)
        } else {
            -(d + shell_mm)
        }
        .max(min_step_mm)
        .min(t1 - t);
        // Attribute the step to the region at its start (steps shrink to
        // `min_step_mm` near each crossing).
        if d < 0.0 {
            solid += step;
            if d < -shell_mm {
                core += step;
            }
        }
        if step <= 0.0 {
            break;
        }
        t += step;
    }
    (solid, core)
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use nalgebra::Unit;

    #[test]
    fn sphere_chord_lengths() {
        let f = |p: &Point3<f64>| p.coords.norm() - 10.0;
        let lo = Point3::new(-11.0, -11.0, -11.0);
        let hi = Point3::new(11.0, 11.0, 11.0);
        for y in [0.0, 3.0, 8.0, 9.9] {
            let ray = Ray {
                origin: Point3::new(-100.0, y, 0.0),
                dir: Unit::new_normalize(Vector3::x()),
            };
            let (s, c) = path_lengths(&f, &ray, &lo, &hi, 2.0, 1e-3);
            let chord = 2.0 * (100.0f64 - y * y).sqrt();
            let inner = if y < 8.0 {
                2.0 * (64.0f64 - y * y).sqrt()
            } else {
                0.0
            };
            assert_relative_eq!(s, chord, epsilon = 3e-3);
            assert_relative_eq!(c, inner, epsilon = 3e-3);
            assert!(first_hit(&f, &ray, &lo, &hi).is_some());
        }
        let miss = Ray {
            origin: Point3::new(-100.0, 10.01, 0.0),
            dir: Unit::new_normalize(Vector3::x()),
        };
        assert!(first_hit(&f, &miss, &lo, &hi).is_none());
    }
}
