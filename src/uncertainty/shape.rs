//! The part of a tube's cross-sections that two views do not measure.
//!
//! Two views fix two support values (half-widths) of each elliptical
//! section, `w_1` along the first view's width direction `e1` and `w_2`
//! along the second's `u_2 = c2 e1 + s2 e2` (`e2 = axis x e1`). The
//! ellipses `x^T M^-1 x = 1` with these two support values form a
//! one-parameter family, in the `(e1, e2)` frame
//!
//! ```text
//! M(m) = [[a^2, m], [m, b^2 - 2 m c2 / s2]]      a = w_1, M(0) = diag(a^2, b^2)
//! ```
//!
//! (`u_2^T M(m) u_2 = w_2^2` for every `m`). The reconstruction returns the
//! member `m = 0` (one semi-axis along `e1`, see
//! [`crate::reconstruction::fit_tube`]). The anatomy bounds the family:
//! the neck is oval with an aspect ratio of about 1.2-1.26 (coronal /
//! sagittal diameters 30.8 / 25.7 mm in men, 27.8 / 22.1 mm in women;
//! domain.md §2, Saengnipanthkul 2012), so only members with a ratio of
//! the semi-axes of at most [`MAX_SECTION_ASPECT`] (1.4) are admissible.
//! Their orientation is not known (domain.md gives none beyond "oval"), so
//! a Monte Carlo sample draws `m` uniformly over the admissible interval,
//! with one quantile per tube and sample (a neck's sections are one body:
//! they turn together).

use nalgebra::{Point3, Unit, Vector3};

use crate::reconstruction::{Tube, TubeSection, MAX_SECTION_ASPECT};

/// Steps of the scan of the family parameter.
const SCAN: usize = 128;

/// Whether `M(m)` is positive definite with aspect <= [`MAX_SECTION_ASPECT`].
fn admissible(p: f64, q: f64, m: f64) -> bool {
    let tr = p + q;
    let det = p * q - m * m;
    if !(det > 0.0 && tr > 0.0) {
        return false;
    }
    let disc = ((p - q).powi(2) + 4.0 * m * m).sqrt();
    let hi = 0.5 * (tr + disc);
    let lo = 0.5 * (tr - disc);
    lo > 0.0 && hi <= lo * MAX_SECTION_ASPECT * MAX_SECTION_ASPECT
}

/// Admissible interval `[m_lo, m_hi]` of the family of the section with
/// semi-axes `a` (along `e1`), `b` and second width direction `kappa =
/// c2 / s2` (see the module docs); `None` when no member is admissible.
pub(super) fn family_range(a: f64, b: f64, kappa: f64) -> Option<(f64, f64)> {
    let (a2, b2) = (a * a, b * b);
    // Positive definite: m^2 + 2 a^2 kappa m - a^2 b^2 < 0.
    let h = (a2 * a2 * kappa * kappa + a2 * b2).sqrt();
    let (pd_lo, pd_hi) = (-a2 * kappa - h, -a2 * kappa + h);
    if pd_hi.is_nan() || pd_lo.is_nan() || pd_hi <= pd_lo {
        return None;
    }
    let ok = |m: f64| admissible(a2, b2 - 2.0 * m * kappa, m);
    let at = |i: usize| pd_lo + (pd_hi - pd_lo) * i as f64 / SCAN as f64;
    let first = (0..=SCAN).find(|&i| ok(at(i)))?;
    let last = (0..=SCAN).rev().find(|&i| ok(at(i)))?;
    // Refine both ends by bisection (the admissible set is an interval:
    // the aspect ratio of M(m) is quasi-convex along the line M(m)).
    let refine = |inside: f64, outside: f64| {
        let (mut i, mut o) = (inside, outside);
        for _ in 0..40 {
            let mid = 0.5 * (i + o);
            if ok(mid) {
                i = mid;
            } else {
                o = mid;
            }
        }
        i
    };
    let lo = if first == 0 {
        at(0)
    } else {
        refine(at(first), at(first - 1))
    };
    let hi = if last == SCAN {
        at(SCAN)
    } else {
        refine(at(last), at(last + 1))
    };
    Some((lo, hi))
}

/// The member `m` of the family: first semi-axis direction as an angle
/// from `e1` (within 45 degrees of it) and the semi-axes along it and
/// across it.
pub(super) fn member(a: f64, b: f64, kappa: f64, m: f64) -> Option<(f64, [f64; 2])> {
    let (p, q) = (a * a, b * b - 2.0 * m * kappa);
    let mut th = 0.5 * (2.0 * m).atan2(p - q);
    let quarter = std::f64::consts::FRAC_PI_2;
    while th > quarter / 2.0 {
        th -= quarter;
    }
    while th < -quarter / 2.0 {
        th += quarter;
    }
    let (s, c) = th.sin_cos();
    let l1 = p * c * c + 2.0 * m * s * c + q * s * s;
    let l2 = p + q - l1;
    (l1 > 0.0 && l2 > 0.0).then(|| (th, [l1.sqrt(), l2.sqrt()]))
}

/// Redraws the two-view sections of `tube` at the family quantile `u` in
/// `[0, 1]` (0: lower end of each section's admissible interval, 1: upper
/// end). `sources` are the sources of the views whose edges measured the
/// tube; a section whose second width direction cannot be found (fewer
/// than two such views, or more: then the sections were fitted by least
/// squares and their shape is measured) is left as fitted.
pub(super) fn redraw_tube(tube: &mut Tube, sources: &[Point3<f64>], u: f64) {
    if sources.len() != 2 {
        return;
    }
    let d = tube.axis.direction.into_inner();
    for s in &mut tube.sections {
        if let Some(n) = redraw_section(s, &d, sources, u) {
            *s = n;
        }
    }
}

fn redraw_section(
    s: &TubeSection,
    d: &Vector3<f64>,
    sources: &[Point3<f64>],
    u: f64,
) -> Option<TubeSection> {
    if s.hull_margin_mm.is_nan() || s.hull_margin_mm <= 0.0 {
        return None;
    }
    let e1 = s.major_dir.into_inner();
    let e2 = d.cross(&e1);
    // Width direction of each view: across the axis and the central ray.
    let widths: Vec<Vector3<f64>> = sources
        .iter()
        .filter_map(|src| Unit::try_new(d.cross(&(s.center - src)), 1e-9))
        .map(Unit::into_inner)
        .collect();
    // The second view is the one whose width direction is furthest from e1.
    let u2 = widths
        .iter()
        .min_by(|x, y| x.dot(&e1).abs().total_cmp(&y.dot(&e1).abs()))?;
    let (c2, s2) = (u2.dot(&e1), u2.dot(&e2));
    if s2.abs() < 0.17 {
        return None;
    }
    let kappa = c2 / s2;
    let [a, b] = s.semi_axes_mm;
    let (lo, hi) = family_range(a, b, kappa)?;
    let m = lo + (hi - lo) * u.clamp(0.0, 1.0);
    let (th, axes) = member(a, b, kappa, m)?;
    let dir = Unit::try_new(e1 * th.cos() + e2 * th.sin(), 1e-12)?;
    Some(TubeSection {
        major_dir: dir,
        semi_axes_mm: axes,
        ..*s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    fn support(th: f64, axes: [f64; 2], dir: f64) -> f64 {
        // Support of the ellipse with first axis at angle th, in direction dir.
        let (x, y) = ((dir - th).cos(), (dir - th).sin());
        ((axes[0] * x).powi(2) + (axes[1] * y).powi(2)).sqrt()
    }

    #[test]
    fn every_member_keeps_both_widths_and_the_aspect_bound() {
        let (a, b) = (14.0, 12.0);
        for &phi_deg in &[90.0f64, 70.0, 110.0, 50.0] {
            let phi = phi_deg.to_radians();
            let kappa = phi.cos() / phi.sin();
            let (lo, hi) = family_range(a, b, kappa).unwrap();
            assert!(lo < 0.0 && hi > 0.0, "{lo} {hi}");
            for i in 0..=20 {
                let m = lo + (hi - lo) * f64::from(i) / 20.0;
                let (th, axes) = member(a, b, kappa, m).unwrap();
                assert_relative_eq!(support(th, axes, 0.0), a, epsilon = 1e-9);
                // w2 of the fitted member.
                let w2 = ((a * phi.cos()).powi(2) + (b * phi.sin()).powi(2)).sqrt();
                assert_relative_eq!(support(th, axes, phi), w2, epsilon = 1e-9);
                let r = axes[0].max(axes[1]) / axes[0].min(axes[1]);
                assert!(r <= MAX_SECTION_ASPECT + 1e-6, "{r}");
            }
            // The ends are at the aspect bound (not at degeneracy).
            let (_, ax) = member(a, b, kappa, hi).unwrap();
            let r = ax[0].max(ax[1]) / ax[0].min(ax[1]);
            assert_relative_eq!(r, MAX_SECTION_ASPECT, epsilon = 1e-6);
        }
    }

    #[test]
    fn perpendicular_widths_turn_the_ellipse_symmetrically() {
        // Widths at 90 degrees: the family is symmetric in m, and m = 0 is
        // the fitted section itself.
        let (lo, hi) = family_range(13.0, 11.0, 0.0).unwrap();
        assert_relative_eq!(lo, -hi, epsilon = 1e-6);
        let (th, axes) = member(13.0, 11.0, 0.0, 0.0).unwrap();
        assert_relative_eq!(th, 0.0, epsilon = 1e-12);
        assert_relative_eq!(axes[0], 13.0, epsilon = 1e-12);
        assert_relative_eq!(axes[1], 11.0, epsilon = 1e-12);
        // A turned member reaches further out in a diagonal direction.
        let (th, axes) = member(13.0, 11.0, 0.0, hi).unwrap();
        let diag = std::f64::consts::FRAC_PI_4;
        assert!(support(th, axes, diag) > support(0.0, [13.0, 11.0], diag));
        assert!(support(th, axes, -diag) < support(0.0, [13.0, 11.0], -diag));
    }
}
