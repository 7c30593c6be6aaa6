//! The femoral head: a sphere fitted directly to the silhouette points of
//! all views under the exact perspective model.
//!
//! Every silhouette pixel's back-projected ray is tangent to the sphere:
//! `dist(c, ray_i) = r`. The fit minimises
//!
//! ```text
//! sum_i ( (dist(c, ray_i) - r) * s_i )^2      s_i = px per mm across ray_i at the head
//! ```
//!
//! so that the cost is in pixels: `s_i = |J(f_i) n_i|`, with `f_i` the foot
//! of the perpendicular from `c` to ray `i`, `n_i` the unit direction from
//! `f_i` to `c` and `J` the projection Jacobian. This avoids the bias of
//! triangulating 2D circle centres (the projection of a sphere off the
//! image centre is an ellipse whose centre is not the image of the sphere's
//! centre). The start is that biased triangulation, which is close.
//!
//! The centre covariance is `sigma^2 (J^T J)^-1` with `sigma` the annotation
//! noise, px (only the radial component of a pixel error moves the fit).

use nalgebra::{DVector, Matrix3, Matrix4, Point2, Point3, Vector3};

use super::lm::{covariance, levenberg_marquardt};
use super::triangulate::triangulate;
use crate::error::{ensure_finite, Error, Result};
use crate::geometry::{fit_circle_2d, Sphere};
use crate::imaging::{Projection, Ray};

/// Fewest silhouette points per view for a head outline.
pub const MIN_HEAD_POINTS_PER_VIEW: usize = 5;

/// A fitted femoral head.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HeadFit {
    /// The sphere, world mm.
    pub sphere: Sphere,
    /// RMS of the tangency residuals, px.
    pub rms_px: f64,
    /// Covariance of the centre for the stated pixel noise, mm^2.
    pub center_covariance_mm2: Matrix3<f64>,
    /// Standard deviations of the centre along the world axes, mm.
    pub center_sd_mm: [f64; 3],
    /// Standard deviation of the radius, mm.
    pub radius_sd_mm: f64,
    /// Covariance of `(centre x, y, z, radius)` for the stated pixel noise,
    /// mm^2: `sigma^2 (J^T J)^-1` with `J` the Gauss-Newton Jacobian of the
    /// pixel residuals at the solution (first-order propagation; see
    /// [`crate::uncertainty::tip_depth_sd_first_order_mm`]).
    pub sphere_covariance_mm2: Matrix4<f64>,
    /// Residual of each silhouette point (view order, point order), px.
    pub residuals_px: Vec<f64>,
}

/// Distance from `c` to the line of `ray`, the foot point and the unit
/// direction from the foot to `c`.
fn ray_distance(ray: &Ray, c: &Point3<f64>) -> (f64, Point3<f64>, Vector3<f64>) {
    let t = (c - ray.origin).dot(&ray.dir);
    let foot = ray.at(t);
    let off = c - foot;
    let d = off.norm();
    let n = if d > 1e-12 {
        off / d
    } else {
        // Any direction across the ray.
        let a = if ray.dir.x.abs() < 0.9 {
            Vector3::x()
        } else {
            Vector3::y()
        };
        ray.dir.cross(&a).normalize()
    };
    (d, foot, n)
}

/// Fits the head sphere to the silhouette points of two or more views.
///
/// `outlines[k] = (projection, points)` for every view with a head outline.
///
/// # Units
/// Pixels in, world mm out; `noise_px` is the annotation noise (px), used for
/// the reported standard deviations.
///
/// # Errors
/// * [`Error::TooFew`] for fewer than 2 views (`head_outline_px views`) or
///   fewer than [`MIN_HEAD_POINTS_PER_VIEW`] points in a view
///   (`views[k].head_outline_px`);
/// * [`Error::Invalid`] for non-finite points or noise;
/// * [`Error::Degenerate`] for views less than 10 degrees apart, collinear
///   outline points, a head behind a source or a singular fit;
/// * [`Error::NotConverged`] if the refinement fails.
///
/// # Example
/// ```
/// use avnplan::imaging::CArm;
/// use avnplan::geometry::{Ellipsoid, Sphere};
/// use avnplan::reconstruction::{ellipsoid_outline_px, fit_head};
/// use nalgebra::Point3;
/// let carm = |primary_deg: f64| CArm {
///     sid_mm: 1000.0, sod_mm: 650.0, primary_angle_rad: primary_deg.to_radians(),
///     secondary_angle_rad: 0.0, pixel_spacing_mm: [0.3, 0.3],
///     isocenter_mm: Point3::origin(), principal_point_px: None, image_size_px: [1024, 1024],
/// }.projection().unwrap();
/// let head = Ellipsoid::sphere(Point3::new(40.0, 10.0, -20.0), 24.0)?;
/// let views: Vec<_> = [0.0, 90.0].iter().map(|&a| {
///     let p = carm(a);
///     (p, ellipsoid_outline_px(&p, &head, 24).unwrap())
/// }).collect();
/// let fit = fit_head(&views, 1.0)?;
/// approx::assert_relative_eq!(fit.sphere.center, head.center, epsilon = 1e-5);
/// approx::assert_relative_eq!(fit.sphere.radius_mm, 24.0, epsilon = 1e-5);
/// # Ok::<(), avnplan::Error>(())
/// ```
pub fn fit_head(outlines: &[(Projection, Vec<Point2<f64>>)], noise_px: f64) -> Result<HeadFit> {
    if outlines.len() < 2 {
        return Err(Error::too_few("head_outline_px views", 2, outlines.len()));
    }
    if !(noise_px.is_finite() && noise_px >= 0.0) {
        return Err(Error::invalid("noise_px", "must be a finite number >= 0"));
    }
    let mut centres = Vec::with_capacity(outlines.len());
    for (k, (p, pts)) in outlines.iter().enumerate() {
        let what = format!("views[{k}].head_outline_px");
        if pts.len() < MIN_HEAD_POINTS_PER_VIEW {
            return Err(Error::too_few(what, MIN_HEAD_POINTS_PER_VIEW, pts.len()));
        }
        for (i, q) in pts.iter().enumerate() {
            ensure_finite(&format!("{what}[{i}]"), q.coords.as_slice())?;
        }
        let (c2, _, _) = fit_circle_2d(pts).map_err(|e| e.in_field(&what))?;
        centres.push((*p, c2));
    }
    let c0 = triangulate(&centres, noise_px)
        .map_err(|e| e.in_field("head_outline_px"))?
        .point;
    let rays: Vec<(Projection, Ray)> = outlines
        .iter()
        .flat_map(|(p, pts)| pts.iter().map(move |q| (*p, p.back_project(q))))
        .collect();
    let r0 = rays
        .iter()
        .map(|(_, ray)| ray_distance(ray, &c0).0)
        .sum::<f64>()
        / rays.len() as f64;
    let residual = |x: &DVector<f64>| -> Option<DVector<f64>> {
        let c = Point3::new(x[0], x[1], x[2]);
        let r = x[3];
        if !(r > 0.0) {
            return None;
        }
        let mut out = DVector::zeros(rays.len());
        for (i, (p, ray)) in rays.iter().enumerate() {
            let (d, foot, n) = ray_distance(ray, &c);
            if p.depth_mm(&foot) <= 0.0 {
                return None;
            }
            let s = (p.jacobian(&foot) * n).norm();
            out[i] = (d - r) * s;
        }
        Some(out)
    };
    let res = levenberg_marquardt(
        "head sphere fit",
        residual,
        DVector::from_vec(vec![c0.x, c0.y, c0.z, r0]),
    )?;
    let center = Point3::new(res.x[0], res.x[1], res.x[2]);
    let sphere = Sphere::new(center, res.x[3]).map_err(|e| e.in_field("head"))?;
    let cov = covariance(&res.j, noise_px)
        .ok_or_else(|| Error::degenerate("head_outline_px", "the sphere is not determined"))?;
    let center_covariance_mm2 = Matrix3::from_fn(|r, c| cov[(r, c)]);
    let center_sd_mm = [0, 1, 2].map(|i| cov[(i, i)].max(0.0).sqrt());
    let residuals_px: Vec<f64> = res.r.iter().copied().collect();
    let rms_px = (res.r.norm_squared() / res.r.len() as f64).sqrt();
    Ok(HeadFit {
        sphere,
        rms_px,
        center_covariance_mm2,
        center_sd_mm,
        radius_sd_mm: cov[(3, 3)].max(0.0).sqrt(),
        sphere_covariance_mm2: Matrix4::from_fn(|r, c| cov[(r, c)]),
        residuals_px,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Ellipsoid;
    use crate::reconstruction::ellipsoid_outline_px;
    use crate::reconstruction::triangulate::tests::carm;

    #[test]
    fn off_centre_head_is_recovered_exactly() {
        // Far off the image centre, where 2D circle centres are biased.
        let truth = Ellipsoid::sphere(Point3::new(80.0, -30.0, 70.0), 23.0).unwrap();
        let views: Vec<_> = [0.0, 70.0]
            .iter()
            .map(|&a| {
                let p = carm(a);
                (p, ellipsoid_outline_px(&p, &truth, 30).unwrap())
            })
            .collect();
        let fit = fit_head(&views, 1.0).unwrap();
        assert!((fit.sphere.center - truth.center).norm() < 1e-6);
        assert!((fit.sphere.radius_mm - 23.0).abs() < 1e-6);
        assert!(fit.rms_px < 1e-6);
        assert!(fit.center_sd_mm.iter().all(|s| *s > 0.0 && *s < 0.5));
    }

    #[test]
    fn too_few_points_or_views() {
        let truth = Ellipsoid::sphere(Point3::new(0.0, 0.0, 0.0), 23.0).unwrap();
        let p = carm(0.0);
        let pts = ellipsoid_outline_px(&p, &truth, 12).unwrap();
        assert!(matches!(
            fit_head(&[(p, pts.clone())], 1.0),
            Err(Error::TooFew { .. })
        ));
        let q = carm(90.0);
        let e = fit_head(&[(p, pts), (q, vec![Point2::new(1.0, 1.0); 4])], 1.0).unwrap_err();
        assert!(e.to_string().contains("views[1].head_outline_px"), "{e}");
    }
}
