//! Triangulation of a landmark seen in two or more calibrated views.
//!
//! Method: the linear (DLT) solution — the right singular vector of the
//! stacked rows `u p3 - p1`, `v p3 - p2` of every view (Hartley & Zisserman,
//! *Multiple View Geometry*, 2nd ed., §12.2) — then Levenberg-Marquardt on
//! the reprojection error in pixels. The 3D covariance is
//! `sigma^2 (J^T J)^-1` with `J` the stacked projection Jacobians (px/mm) and
//! `sigma` the annotation noise (px, per image axis).
//!
//! Views whose rays meet at less than [`MIN_TRIANGULATION_ANGLE_RAD`] are
//! refused: the depth error grows as `1 / tan(angle)`.

use nalgebra::{DMatrix, DVector, Matrix3, Point2, Point3, Vector2};

use super::lm::{covariance, levenberg_marquardt};
use crate::error::{ensure_finite, Error, Result};
use crate::imaging::Projection;

/// Smallest angle between two rays for a triangulation, radians (10 degrees,
/// the contract's minimum view separation).
pub const MIN_TRIANGULATION_ANGLE_RAD: f64 = 10.0 * std::f64::consts::PI / 180.0;

/// A triangulated point with its uncertainty.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Triangulated {
    /// The point, world mm.
    pub point: Point3<f64>,
    /// Covariance of the point for the stated pixel noise, mm^2.
    pub covariance_mm2: Matrix3<f64>,
    /// Reprojection residual (projection minus observation) per view, px.
    pub residuals_px: Vec<Vector2<f64>>,
    /// RMS of the residual vectors' lengths, px.
    pub rms_px: f64,
    /// Non-fatal remarks (e.g. a large residual).
    pub warnings: Vec<String>,
}

impl Triangulated {
    /// Standard deviations along the world axes, mm.
    #[must_use]
    pub fn sd_mm(&self) -> [f64; 3] {
        [0, 1, 2].map(|i| self.covariance_mm2[(i, i)].max(0.0).sqrt())
    }
}

/// Largest angle between any two of the rays through the observations, rad.
fn max_ray_angle(obs: &[(Projection, Point2<f64>)]) -> f64 {
    let dirs: Vec<_> = obs.iter().map(|(p, uv)| p.back_project(uv).dir).collect();
    let mut best: f64 = 0.0;
    for i in 0..dirs.len() {
        for j in i + 1..dirs.len() {
            best = best.max(dirs[i].dot(&dirs[j]).clamp(-1.0, 1.0).acos());
        }
    }
    best
}

/// Typical size of one pixel at `x` in view `p`, mm (inverse of the RMS
/// singular value of the projection Jacobian).
pub(crate) fn mm_per_px(p: &Projection, x: &Point3<f64>) -> f64 {
    let j = p.jacobian(x);
    let s = (j * j.transpose()).trace() / 2.0;
    1.0 / s.sqrt()
}

/// Triangulates one landmark from its pixel position in two or more views.
///
/// # Units
/// `noise_px`: standard deviation of the annotation along each image axis, px
/// (`0` gives a zero covariance). Output point in world mm.
///
/// # Errors
/// * [`Error::TooFew`] (`observations`) for fewer than two views;
/// * [`Error::Invalid`] for non-finite pixels or a negative `noise_px`;
/// * [`Error::Degenerate`] when no two rays are at least 10 degrees apart
///   (the message gives the expected depth error) or when the point lies
///   behind a source;
/// * [`Error::NotConverged`] if the refinement fails.
///
/// # Example
/// ```
/// use avnplan::imaging::CArm;
/// use avnplan::reconstruction::triangulate;
/// use nalgebra::{Point2, Point3};
/// let carm = |primary_deg: f64| CArm {
///     sid_mm: 1000.0, sod_mm: 650.0, primary_angle_rad: primary_deg.to_radians(),
///     secondary_angle_rad: 0.0, pixel_spacing_mm: [0.3, 0.3],
///     isocenter_mm: Point3::origin(), principal_point_px: None, image_size_px: [1024, 1024],
/// }.projection().unwrap();
/// let (ap, lat) = (carm(0.0), carm(90.0));
/// let x = Point3::new(10.0, -20.0, 30.0);
/// let obs = [(ap, ap.project(&x)?), (lat, lat.project(&x)?)];
/// let t = triangulate(&obs, 1.0)?;
/// approx::assert_relative_eq!(t.point, x, epsilon = 1e-6);
/// assert!(t.sd_mm()[0] < 0.3);
/// # Ok::<(), avnplan::Error>(())
/// ```
pub fn triangulate(obs: &[(Projection, Point2<f64>)], noise_px: f64) -> Result<Triangulated> {
    if obs.len() < 2 {
        return Err(Error::too_few("observations", 2, obs.len()));
    }
    if !(noise_px.is_finite() && noise_px >= 0.0) {
        return Err(Error::invalid("noise_px", "must be a finite number >= 0"));
    }
    for (i, (_, uv)) in obs.iter().enumerate() {
        ensure_finite(&format!("observations[{i}]"), uv.coords.as_slice())?;
    }
    let angle = max_ray_angle(obs);
    if angle < MIN_TRIANGULATION_ANGLE_RAD {
        // Lateral error of one view (mm at ~600 mm from the source), blown
        // up by 1 / tan(angle) along the depth.
        let (p0, uv0) = &obs[0];
        let r = p0.back_project(uv0);
        let lateral = noise_px.max(1.0) * mm_per_px(p0, &r.at(600.0));
        let depth = lateral / angle.tan().max(1e-9);
        return Err(Error::degenerate(
            "observations",
            format!(
                "rays only {:.1} degrees apart (need >= 10): expected depth error about {:.1} mm at {:.1} px noise",
                angle.to_degrees(),
                depth,
                noise_px.max(1.0)
            ),
        ));
    }
    // Linear start (DLT).
    let mut a = DMatrix::zeros(2 * obs.len(), 4);
    for (k, (p, uv)) in obs.iter().enumerate() {
        let m = p.matrix();
        for c in 0..4 {
            a[(2 * k, c)] = uv.x * m[(2, c)] - m[(0, c)];
            a[(2 * k + 1, c)] = uv.y * m[(2, c)] - m[(1, c)];
        }
    }
    let svd = a.svd(false, true);
    let vt = svd
        .v_t
        .ok_or_else(|| Error::degenerate("observations", "DLT decomposition failed"))?;
    let imin = (0..svd.singular_values.len())
        .min_by(|&i, &j| svd.singular_values[i].total_cmp(&svd.singular_values[j]))
        .unwrap_or(3);
    let h = vt.row(imin);
    if h[3].abs() < 1e-300 {
        return Err(Error::degenerate("observations", "point at infinity"));
    }
    let x0 = Point3::new(h[0] / h[3], h[1] / h[3], h[2] / h[3]);
    for (k, (p, _)) in obs.iter().enumerate() {
        if p.depth_mm(&x0) <= 0.0 {
            return Err(Error::degenerate(
                format!("observations[{k}]"),
                "the triangulated point lies behind the X-ray source",
            ));
        }
    }
    let residual = |x: &DVector<f64>| -> Option<DVector<f64>> {
        let pt = Point3::new(x[0], x[1], x[2]);
        let mut r = DVector::zeros(2 * obs.len());
        for (k, (p, uv)) in obs.iter().enumerate() {
            let q = p.try_project(&pt)?;
            r[2 * k] = q.x - uv.x;
            r[2 * k + 1] = q.y - uv.y;
        }
        Some(r)
    };
    let res = levenberg_marquardt(
        "triangulation",
        residual,
        DVector::from_column_slice(x0.coords.as_slice()),
    )?;
    let point = Point3::new(res.x[0], res.x[1], res.x[2]);
    // Analytic Jacobian for the covariance.
    let mut j = DMatrix::zeros(2 * obs.len(), 3);
    for (k, (p, _)) in obs.iter().enumerate() {
        let jk = p.jacobian(&point);
        for c in 0..3 {
            j[(2 * k, c)] = jk[(0, c)];
            j[(2 * k + 1, c)] = jk[(1, c)];
        }
    }
    let cov = covariance(&j, noise_px)
        .ok_or_else(|| Error::degenerate("observations", "singular normal equations"))?;
    let covariance_mm2 = Matrix3::from_fn(|r, c| cov[(r, c)]);
    let residuals_px: Vec<Vector2<f64>> = (0..obs.len())
        .map(|k| Vector2::new(res.r[2 * k], res.r[2 * k + 1]))
        .collect();
    let rms_px = (residuals_px.iter().map(|v| v.norm_squared()).sum::<f64>()
        / residuals_px.len() as f64)
        .sqrt();
    let mut warnings = Vec::new();
    if noise_px > 0.0 && rms_px > 5.0 * noise_px {
        warnings.push(format!(
            "triangulation residual {rms_px:.2} px is more than 5 times the stated noise {noise_px:.2} px: check the annotations and calibration"
        ));
    }
    ensure_finite("triangulated point", point.coords.as_slice())?;
    Ok(Triangulated {
        point,
        covariance_mm2,
        residuals_px,
        rms_px,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::CArm;

    pub(crate) fn carm(primary_deg: f64) -> Projection {
        CArm {
            sid_mm: 1000.0,
            sod_mm: 650.0,
            primary_angle_rad: primary_deg.to_radians(),
            secondary_angle_rad: 0.0,
            pixel_spacing_mm: [0.3, 0.3],
            isocenter_mm: Point3::origin(),
            principal_point_px: None,
            image_size_px: [1024, 1024],
        }
        .projection()
        .unwrap()
    }

    #[test]
    fn near_parallel_views_are_refused_with_depth_error() {
        let (a, b) = (carm(0.0), carm(5.0));
        let x = Point3::new(3.0, 4.0, 5.0);
        let e = triangulate(
            &[(a, a.project(&x).unwrap()), (b, b.project(&x).unwrap())],
            1.0,
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("depth error"), "{msg}");
    }

    #[test]
    fn three_views_recover_the_point() {
        let x = Point3::new(-12.0, 7.0, 40.0);
        let obs: Vec<_> = [0.0, 45.0, 90.0]
            .iter()
            .map(|&d| {
                let p = carm(d);
                (p, p.project(&x).unwrap())
            })
            .collect();
        let t = triangulate(&obs, 0.5).unwrap();
        assert!((t.point - x).norm() < 1e-6);
        assert!(t.rms_px < 1e-6);
    }

    #[test]
    fn rejects_bad_input() {
        let p = carm(0.0);
        assert!(triangulate(&[(p, Point2::new(1.0, 2.0))], 1.0).is_err());
        let q = carm(90.0);
        assert!(triangulate(
            &[(p, Point2::new(f64::NAN, 2.0)), (q, Point2::new(1.0, 2.0))],
            1.0
        )
        .is_err());
    }
}
