//! A straight needle from its image in two or more views.
//!
//! Each view's image of the needle (the tip and points on the shaft) is a
//! 2D line; it back-projects to a plane through the view's source. The
//! needle lies in every such plane: two planes meet in its line (least
//! squares for more: the direction is the eigenvector of `sum n n^T` with
//! the smallest eigenvalue). The tip is the point of that line whose
//! projections best match the tip pixels (1D least squares in pixels), and
//! the direction points from the shaft towards the tip.

use nalgebra::{DVector, Matrix3, Point2, Point3, SymmetricEigen, Unit, Vector3};

use super::lm::levenberg_marquardt;
use crate::error::{ensure_finite, Error, Result};
use crate::imaging::Projection;

/// The needle as seen in one view, px.
#[derive(Debug, Clone, PartialEq)]
pub struct NeedleImage {
    /// The projection of the view.
    pub projection: Projection,
    /// The tip, px.
    pub tip_px: Point2<f64>,
    /// One or more further points on the shaft, px.
    pub shaft_px: Vec<Point2<f64>>,
}

/// A reconstructed needle.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Needle3d {
    /// The tip, world mm.
    pub tip_mm: Point3<f64>,
    /// Unit direction of insertion (from the shaft towards the tip).
    pub direction: Unit<Vector3<f64>>,
    /// RMS distance of the image points from the reprojected line, px.
    pub rms_px: f64,
}

/// Reconstructs the needle line and tip from two or more views.
///
/// # Errors
/// * [`Error::TooFew`] for fewer than 2 views or a view without shaft points;
/// * [`Error::Invalid`] for non-finite pixels;
/// * [`Error::Degenerate`] when the shaft points coincide with the tip, or
///   the planes of the views are less than 10 degrees apart (the needle
///   then lies nearly in an epipolar plane and its depth is undetermined).
///
/// # Example
/// ```
/// use avnplan::imaging::CArm;
/// use avnplan::reconstruction::{reconstruct_needle, NeedleImage};
/// use nalgebra::{Point3, Vector3};
/// let carm = |primary_deg: f64| CArm {
///     sid_mm: 1000.0, sod_mm: 650.0, primary_angle_rad: primary_deg.to_radians(),
///     secondary_angle_rad: 0.0, pixel_spacing_mm: [0.3, 0.3],
///     isocenter_mm: Point3::origin(), principal_point_px: None, image_size_px: [1024, 1024],
/// }.projection().unwrap();
/// let tip = Point3::new(10.0, 5.0, 20.0);
/// let back = tip - Vector3::new(0.3, 0.2, -0.9).normalize() * 60.0;
/// let imgs: Vec<_> = [0.0, 90.0].iter().map(|&a| {
///     let p = carm(a);
///     NeedleImage { projection: p, tip_px: p.project(&tip).unwrap(), shaft_px: vec![p.project(&back).unwrap()] }
/// }).collect();
/// let n = reconstruct_needle(&imgs)?;
/// approx::assert_relative_eq!(n.tip_mm, tip, epsilon = 1e-6);
/// approx::assert_relative_eq!(n.direction.into_inner(), Vector3::new(0.3, 0.2, -0.9).normalize(), epsilon = 1e-6);
/// # Ok::<(), avnplan::Error>(())
/// ```
pub fn reconstruct_needle(views: &[NeedleImage]) -> Result<Needle3d> {
    if views.len() < 2 {
        return Err(Error::too_few("needle views", 2, views.len()));
    }
    let mut planes = Vec::new();
    for (k, v) in views.iter().enumerate() {
        let f = format!("views[{k}]");
        ensure_finite(&format!("{f}.tip_px"), v.tip_px.coords.as_slice())?;
        if v.shaft_px.is_empty() {
            return Err(Error::too_few(format!("{f}.shaft_px"), 1, 0));
        }
        for (i, q) in v.shaft_px.iter().enumerate() {
            ensure_finite(&format!("{f}.shaft_px[{i}]"), q.coords.as_slice())?;
        }
        // Farthest shaft point defines the image line direction with the tip
        // (all points enter through the plane fit below).
        let rays: Vec<Vector3<f64>> = std::iter::once(&v.tip_px)
            .chain(v.shaft_px.iter())
            .map(|q| v.projection.back_project(q).dir.into_inner())
            .collect();
        // Plane through the source containing all rays: normal = smallest
        // eigenvector of sum r r^T.
        let mut m = Matrix3::zeros();
        for r in &rays {
            m += r * r.transpose();
        }
        let e = SymmetricEigen::new(m);
        let n: Vector3<f64> = e.eigenvectors.column(e.eigenvalues.imin()).into_owned();
        let far = v
            .shaft_px
            .iter()
            .map(|q| (q - v.tip_px).norm())
            .fold(0.0, f64::max);
        if far < 1.0 {
            return Err(Error::degenerate(
                format!("{f}.shaft_px"),
                "shaft points within 1 px of the tip: the needle's image line is undefined",
            ));
        }
        planes.push((n, v.projection.source_mm()));
    }
    let mut a = Matrix3::zeros();
    for (n, _) in &planes {
        a += n * n.transpose();
    }
    let e = SymmetricEigen::new(a);
    let mut ev: Vec<f64> = e.eigenvalues.iter().copied().collect();
    ev.sort_by(f64::total_cmp);
    if ev[1] < (10f64.to_radians().sin().powi(2)) / 2.0 {
        return Err(Error::degenerate(
            "needle views",
            "the needle's planes are less than 10 degrees apart: its depth is undetermined",
        ));
    }
    let d: Vector3<f64> = e.eigenvectors.column(e.eigenvalues.imin()).into_owned();
    // A point of the line: least squares on the planes plus the tip's
    // position along d from the first view's tip ray.
    let mut aa = a + d * d.transpose();
    let mut b = Vector3::zeros();
    for (n, s) in &planes {
        b += n * n.dot(&s.coords);
    }
    let r0 = views[0].projection.back_project(&views[0].tip_px);
    let guess = r0.at((Point3::origin() - r0.origin).norm());
    b += d * d.dot(&guess.coords);
    aa = aa.try_inverse().ok_or_else(|| {
        Error::degenerate("needle views", "the planes do not meet in a line")
    })?;
    let p0 = Point3::from(aa * b);
    // Tip: 1D least squares along the line.
    let resid = |x: &DVector<f64>| -> Option<DVector<f64>> {
        let q = p0 + d * x[0];
        let mut r = DVector::zeros(2 * views.len());
        for (k, v) in views.iter().enumerate() {
            let uv = v.projection.try_project(&q)?;
            r[2 * k] = uv.x - v.tip_px.x;
            r[2 * k + 1] = uv.y - v.tip_px.y;
        }
        Some(r)
    };
    // Start: closest point of the line to the first tip ray.
    let s0 = {
        let w = p0 - r0.origin;
        let bb = d.dot(&r0.dir);
        let den = (1.0 - bb * bb).max(1e-12);
        (bb * r0.dir.dot(&w) - d.dot(&w)) / den
    };
    let res = levenberg_marquardt("needle tip", resid, DVector::from_vec(vec![s0]))?;
    let tip = p0 + d * res.x[0];
    // Orientation: shaft points lie behind the tip.
    let mut behind = 0.0;
    for v in views {
        for q in &v.shaft_px {
            let r = v.projection.back_project(q);
            let w = p0 - r.origin;
            let bb = d.dot(&r.dir);
            let den = (1.0 - bb * bb).max(1e-12);
            let s = (bb * r.dir.dot(&w) - d.dot(&w)) / den;
            behind += s - res.x[0];
        }
    }
    let dir = if behind > 0.0 { -d } else { d };
    // Image-line residuals.
    let mut ss = 0.0;
    let mut n = 0usize;
    for v in views {
        let a2 = v.projection.try_project(&tip);
        let b2 = v.projection.try_project(&(tip - dir * 50.0));
        if let (Some(a2), Some(b2)) = (a2, b2) {
            let t = (b2 - a2).normalize();
            for q in std::iter::once(&v.tip_px).chain(v.shaft_px.iter()) {
                let o = q - a2;
                ss += (o - t * o.dot(&t)).norm_squared();
                n += 1;
            }
        }
    }
    ensure_finite("needle tip", tip.coords.as_slice())?;
    Ok(Needle3d {
        tip_mm: tip,
        direction: Unit::new_normalize(dir),
        rms_px: (ss / n.max(1) as f64).sqrt(),
    })
}
