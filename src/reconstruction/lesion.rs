//! The lesion: an ellipsoid from its outlines in two or more views.
//!
//! # Method
//! 1. Each outline gets an algebraic conic fit (on Hartley-normalised
//!    pixels); its dual `C*_k` is the outline's tangent-line conic.
//! 2. The outline of an ellipsoid with dual quadric `Q*` is the conic
//!    `C*_k ~ P_k Q* P_k^T` (Hartley & Zisserman §8.3). With unknown scales
//!    `lambda_k`, `P_k Q* P_k^T - lambda_k C*_k = 0` is linear in the 10
//!    entries of `Q*` and the `lambda_k`: 6 equations per view, solved by
//!    SVD. With `Q*_44 = -1`, the centre is `-Q*[0..3, 3]` and the shape
//!    matrix `L L^T = Q*[0..3, 0..3] + c c^T` (semi-axes: square roots of
//!    its eigenvalues).
//! 3. Levenberg-Marquardt on the tangency of every outline ray (centre,
//!    log semi-axes, rotation vector), weighted to pixels.
//!
//! # Limits with two views
//! Each view constrains the ellipsoid only through its silhouette cone: the
//! extent along one view's beam is observed only by the other view. With two
//! views the 9 parameters are determined (10 equations, one of them a
//! consistency condition), but an axis oblique to both beams is poorly
//! conditioned; for a lesion elongated obliquely to both views the semi-axes
//! trade off against the rotation and the volume error grows (see the
//! table in `tests/it/recon.rs`). A third view removes this.

use nalgebra::{
    DMatrix, DVector, Matrix3, Matrix4, Point2, Point3, Rotation3, SymmetricEigen, Vector3,
};

use super::lm::levenberg_marquardt;
use super::triangulate::triangulate;
use crate::error::{ensure_finite, Error, Result};
use crate::geometry::Ellipsoid;
use crate::imaging::Projection;

/// Fewest outline points per view for a lesion (a conic has 5 degrees of
/// freedom; one more makes the fit checkable).
pub const MIN_LESION_POINTS_PER_VIEW: usize = 6;

/// A fitted lesion.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LesionFit {
    /// The ellipsoid, world mm.
    pub ellipsoid: Ellipsoid,
    /// Volume, mL.
    pub volume_ml: f64,
    /// RMS of the tangency residuals, px.
    pub rms_px: f64,
}

fn dual_quadric(e: &Ellipsoid) -> Matrix4<f64> {
    let l = e.rotation.matrix() * Matrix3::from_diagonal(&e.semi_axes_mm);
    let mut h = Matrix4::identity();
    h.fixed_view_mut::<3, 3>(0, 0).copy_from(&l);
    h.fixed_view_mut::<3, 1>(0, 3).copy_from(&e.center.coords);
    h * Matrix4::from_diagonal(&nalgebra::Vector4::new(1.0, 1.0, 1.0, -1.0)) * h.transpose()
}

/// `n` points on the outline (silhouette) of an ellipsoid in a view, px,
/// evenly spaced in angle around the outline's centre.
///
/// The outline is the conic `C = (P Q* P^T)^-1` with `Q*` the ellipsoid's
/// dual quadric. A sphere is an ellipsoid with equal semi-axes.
///
/// # Errors
/// [`Error::Degenerate`] when the outline is not an ellipse (the source is
/// inside the ellipsoid or the ellipsoid reaches behind the source plane);
/// [`Error::TooFew`] for `n < 3`.
///
/// # Example
/// ```
/// use avnplan::imaging::CArm;
/// use avnplan::geometry::Ellipsoid;
/// use avnplan::reconstruction::ellipsoid_outline_px;
/// use nalgebra::Point3;
/// let p = CArm {
///     sid_mm: 1000.0, sod_mm: 600.0, primary_angle_rad: 0.0, secondary_angle_rad: 0.0,
///     pixel_spacing_mm: [0.3, 0.3], isocenter_mm: Point3::origin(),
///     principal_point_px: None, image_size_px: [1024, 1024],
/// }.projection().unwrap();
/// let s = Ellipsoid::sphere(Point3::origin(), 24.0)?;
/// let pts = ellipsoid_outline_px(&p, &s, 8)?;
/// // A centred sphere: a circle of radius f tan(asin(r / d)) around the centre.
/// let r_px = 1000.0 / 0.3 * (24.0f64 / 600.0).asin().tan();
/// approx::assert_relative_eq!((pts[0] - nalgebra::Point2::new(511.5, 511.5)).norm(), r_px, epsilon = 1e-6);
/// # Ok::<(), avnplan::Error>(())
/// ```
pub fn ellipsoid_outline_px(
    projection: &Projection,
    ellipsoid: &Ellipsoid,
    n: usize,
) -> Result<Vec<Point2<f64>>> {
    if n < 3 {
        return Err(Error::too_few("outline points", 3, n));
    }
    let p = projection.matrix();
    let cd = p * dual_quadric(ellipsoid) * p.transpose();
    let c = cd
        .try_inverse()
        .ok_or_else(|| Error::degenerate("outline", "the outline conic is degenerate"))?;
    let (x0, a) = conic_centre_shape(&c)
        .ok_or_else(|| Error::degenerate("outline", "the outline is not an ellipse"))?;
    let eig = SymmetricEigen::new(a);
    if eig.eigenvalues.iter().any(|&l| !(l > 0.0)) {
        return Err(Error::degenerate("outline", "the outline is not an ellipse"));
    }
    let v = eig.eigenvectors;
    Ok((0..n)
        .map(|i| {
            let t = 2.0 * std::f64::consts::PI * i as f64 / n as f64;
            let y = nalgebra::Vector2::new(
                t.cos() / eig.eigenvalues[0].sqrt(),
                t.sin() / eig.eigenvalues[1].sqrt(),
            );
            x0 + v * y
        })
        .collect())
}

/// Centre and normalised shape `A` (`(x - x0)^T A (x - x0) = 1`) of a point
/// conic, or `None` if it is not a real ellipse.
fn conic_centre_shape(c: &Matrix3<f64>) -> Option<(Point2<f64>, nalgebra::Matrix2<f64>)> {
    let a = c.fixed_view::<2, 2>(0, 0).into_owned();
    let b = c.fixed_view::<2, 1>(0, 2).into_owned();
    let d = c[(2, 2)];
    let ainv = a.try_inverse()?;
    let x0 = -(ainv * b);
    let k = (b.transpose() * ainv * b)[(0, 0)] - d;
    if !(k.abs() > 0.0) {
        return None;
    }
    let s = a / k;
    if !(s.determinant() > 0.0 && s.trace() > 0.0) {
        return None;
    }
    Some((Point2::from(x0), s))
}

/// Algebraic conic fit (Hartley-normalised), as a symmetric 3x3 point conic
/// in pixels.
fn fit_conic(pts: &[Point2<f64>]) -> Option<Matrix3<f64>> {
    let n = pts.len() as f64;
    let mean = pts.iter().fold(nalgebra::Vector2::zeros(), |a, p| a + p.coords) / n;
    let rms = (pts
        .iter()
        .map(|p| (p.coords - mean).norm_squared())
        .sum::<f64>()
        / n)
        .sqrt();
    if !(rms > 0.0) {
        return None;
    }
    let s = std::f64::consts::SQRT_2 / rms;
    let mut d = DMatrix::zeros(pts.len(), 6);
    for (i, p) in pts.iter().enumerate() {
        let x = (p.x - mean.x) * s;
        let y = (p.y - mean.y) * s;
        for (k, v) in [x * x, x * y, y * y, x, y, 1.0].iter().enumerate() {
            d[(i, k)] = *v;
        }
    }
    let th = smallest_right_singular(&d)?;
    let cn = Matrix3::new(
        th[0],
        th[1] / 2.0,
        th[3] / 2.0,
        th[1] / 2.0,
        th[2],
        th[4] / 2.0,
        th[3] / 2.0,
        th[4] / 2.0,
        th[5],
    );
    let t = Matrix3::new(s, 0.0, -s * mean.x, 0.0, s, -s * mean.y, 0.0, 0.0, 1.0);
    Some(t.transpose() * cn * t)
}

fn smallest_right_singular(a: &DMatrix<f64>) -> Option<DVector<f64>> {
    // Via the normal matrix's eigenvectors: robust for the small sizes here
    // even when there are fewer rows than columns.
    let ata = a.transpose() * a;
    let eig = SymmetricEigen::new(ata);
    let i = eig.eigenvalues.imin();
    let v = eig.eigenvectors.column(i).into_owned();
    v.iter().all(|x| x.is_finite()).then_some(v)
}

const SYM4: [(usize, usize); 10] = [
    (0, 0),
    (0, 1),
    (0, 2),
    (0, 3),
    (1, 1),
    (1, 2),
    (1, 3),
    (2, 2),
    (2, 3),
    (3, 3),
];
const SYM3: [(usize, usize); 6] = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)];

/// Linear dual-quadric estimate (method step 2).
fn linear_ellipsoid(duals: &[(Projection, Matrix3<f64>)]) -> Option<Ellipsoid> {
    let nv = duals.len();
    let mut a = DMatrix::zeros(6 * nv, 10 + nv);
    for (k, (p, cd)) in duals.iter().enumerate() {
        let m = p.matrix();
        let cd = cd / cd.norm();
        for (row, &(i, j)) in SYM3.iter().enumerate() {
            let r = 6 * k + row;
            for (col, &(a4, b4)) in SYM4.iter().enumerate() {
                let mut v = m[(i, a4)] * m[(j, b4)];
                if a4 != b4 {
                    v += m[(i, b4)] * m[(j, a4)];
                }
                a[(r, col)] = v;
            }
            a[(r, 10 + k)] = -cd[(i, j)];
        }
    }
    // Column scaling for conditioning.
    let scales: Vec<f64> = (0..a.ncols())
        .map(|c| a.column(c).norm().max(1e-300))
        .collect();
    for (c, s) in scales.iter().enumerate() {
        a.column_mut(c).scale_mut(1.0 / s);
    }
    let mut x = smallest_right_singular(&a)?;
    for (c, s) in scales.iter().enumerate() {
        x[c] /= s;
    }
    let mut q = Matrix4::zeros();
    for (col, &(i, j)) in SYM4.iter().enumerate() {
        q[(i, j)] = x[col];
        q[(j, i)] = x[col];
    }
    if !(q[(3, 3)].abs() > 0.0) {
        return None;
    }
    let q = q / (-q[(3, 3)]);
    let c = -q.fixed_view::<3, 1>(0, 3).into_owned();
    let m = q.fixed_view::<3, 3>(0, 0).into_owned() + c * c.transpose();
    ellipsoid_from_shape(Point3::from(c), &m)
}

fn ellipsoid_from_shape(c: Point3<f64>, m: &Matrix3<f64>) -> Option<Ellipsoid> {
    let eig = SymmetricEigen::new(*m);
    if eig.eigenvalues.iter().any(|&l| !(l > 0.0)) {
        return None;
    }
    let mut v = eig.eigenvectors;
    if v.determinant() < 0.0 {
        v.column_mut(2).neg_mut();
    }
    let rot = Rotation3::from_matrix_unchecked(v);
    Ellipsoid::new(c, eig.eigenvalues.map(f64::sqrt), rot).ok()
}

/// Fits the lesion ellipsoid to its outlines in two or more views.
///
/// # Units
/// Pixels in; world mm and mL out.
///
/// # Errors
/// * [`Error::TooFew`] for fewer than 2 views or fewer than
///   [`MIN_LESION_POINTS_PER_VIEW`] points in a view;
/// * [`Error::Invalid`] for non-finite points;
/// * [`Error::Degenerate`] when an outline is not an ellipse-like closed
///   curve, the views are less than 10 degrees apart, or no ellipsoid fits;
/// * [`Error::NotConverged`] if the refinement fails.
///
/// # Example
/// ```
/// use avnplan::imaging::CArm;
/// use avnplan::geometry::Ellipsoid;
/// use avnplan::reconstruction::{ellipsoid_outline_px, fit_lesion};
/// use nalgebra::{Point3, Rotation3, Vector3};
/// let carm = |primary_deg: f64| CArm {
///     sid_mm: 1000.0, sod_mm: 650.0, primary_angle_rad: primary_deg.to_radians(),
///     secondary_angle_rad: 0.0, pixel_spacing_mm: [0.3, 0.3],
///     isocenter_mm: Point3::origin(), principal_point_px: None, image_size_px: [1024, 1024],
/// }.projection().unwrap();
/// let truth = Ellipsoid::new(Point3::new(5.0, 3.0, 8.0), Vector3::new(9.0, 6.0, 5.0),
///     Rotation3::from_euler_angles(0.3, -0.2, 0.5))?;
/// let views: Vec<_> = [0.0, 90.0].iter().map(|&a| {
///     let p = carm(a);
///     (p, ellipsoid_outline_px(&p, &truth, 24).unwrap())
/// }).collect();
/// let fit = fit_lesion(&views)?;
/// approx::assert_relative_eq!(fit.ellipsoid.center, truth.center, epsilon = 1e-4);
/// approx::assert_relative_eq!(fit.volume_ml, truth.volume_ml(), max_relative = 1e-4);
/// # Ok::<(), avnplan::Error>(())
/// ```
pub fn fit_lesion(outlines: &[(Projection, Vec<Point2<f64>>)]) -> Result<LesionFit> {
    if outlines.len() < 2 {
        return Err(Error::too_few("lesion_outline_px views", 2, outlines.len()));
    }
    let mut duals = Vec::with_capacity(outlines.len());
    let mut centres = Vec::with_capacity(outlines.len());
    let mut radii_mm = Vec::new();
    for (k, (p, pts)) in outlines.iter().enumerate() {
        let what = format!("views[{k}].lesion_outline_px");
        if pts.len() < MIN_LESION_POINTS_PER_VIEW {
            return Err(Error::too_few(what, MIN_LESION_POINTS_PER_VIEW, pts.len()));
        }
        for (i, q) in pts.iter().enumerate() {
            ensure_finite(&format!("{what}[{i}]"), q.coords.as_slice())?;
        }
        let c = fit_conic(pts).ok_or_else(|| Error::degenerate(&what, "no conic fits"))?;
        let (x0, _) = conic_centre_shape(&c)
            .ok_or_else(|| Error::degenerate(&what, "the outline is not an ellipse"))?;
        let cd = c
            .try_inverse()
            .ok_or_else(|| Error::degenerate(&what, "degenerate outline conic"))?;
        duals.push((*p, cd));
        centres.push((*p, x0));
        let mean_r_px = pts.iter().map(|q| (q - x0).norm()).sum::<f64>() / pts.len() as f64;
        radii_mm.push(mean_r_px);
    }
    let tri = triangulate(&centres, 1.0).map_err(|e| e.in_field("lesion_outline_px"))?;
    let start = match linear_ellipsoid(&duals) {
        Some(e) if (e.center - tri.point).norm() < 3.0 * e.semi_axes_mm.max() + 5.0 => e,
        _ => {
            let r = outlines
                .iter()
                .zip(&radii_mm)
                .map(|((p, _), r_px)| r_px * super::triangulate::mm_per_px(p, &tri.point))
                .sum::<f64>()
                / outlines.len() as f64;
            Ellipsoid::sphere(tri.point, r.max(0.5))?
        }
    };
    let rays: Vec<_> = outlines
        .iter()
        .flat_map(|(p, pts)| pts.iter().map(move |q| (*p, p.back_project(q))))
        .collect();
    let r0 = start.rotation;
    let residual = |x: &DVector<f64>| -> Option<DVector<f64>> {
        let c = Point3::new(x[0], x[1], x[2]);
        let ax = Vector3::new(x[3].exp(), x[4].exp(), x[5].exp());
        let rot = Rotation3::new(Vector3::new(x[6], x[7], x[8])) * r0;
        let l = rot.matrix() * Matrix3::from_diagonal(&ax);
        let linv = l.try_inverse()?;
        let mut out = DVector::zeros(rays.len());
        for (i, (p, ray)) in rays.iter().enumerate() {
            let o = linv * (ray.origin - c);
            let d = linv * ray.dir.into_inner();
            let dn = d.norm();
            let du = d / dn;
            let foot_u = o - du * o.dot(&du);
            let dist = foot_u.norm();
            let n_u = if dist > 1e-12 {
                -foot_u / dist
            } else {
                du.cross(&Vector3::x()).normalize()
            };
            let foot_w = c + l * foot_u;
            if p.depth_mm(&foot_w) <= 0.0 {
                return None;
            }
            let s = (p.jacobian(&foot_w) * (l * n_u)).norm();
            out[i] = (dist - 1.0) * s;
        }
        Some(out)
    };
    let x0 = DVector::from_vec(vec![
        start.center.x,
        start.center.y,
        start.center.z,
        start.semi_axes_mm.x.ln(),
        start.semi_axes_mm.y.ln(),
        start.semi_axes_mm.z.ln(),
        0.0,
        0.0,
        0.0,
    ]);
    let res = levenberg_marquardt("lesion ellipsoid fit", residual, x0)?;
    let x = &res.x;
    let rot = Rotation3::new(Vector3::new(x[6], x[7], x[8])) * r0;
    let ellipsoid = Ellipsoid::new(
        Point3::new(x[0], x[1], x[2]),
        Vector3::new(x[3].exp(), x[4].exp(), x[5].exp()),
        rot,
    )
    .map_err(|e| e.in_field("lesion"))?;
    Ok(LesionFit {
        volume_ml: ellipsoid.volume_ml(),
        ellipsoid,
        rms_px: (res.r.norm_squared() / res.r.len().max(1) as f64).sqrt(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconstruction::triangulate::tests::carm;

    #[test]
    fn linear_dual_quadric_is_exact_without_noise() {
        let truth = Ellipsoid::new(
            Point3::new(-20.0, 15.0, 30.0),
            Vector3::new(12.0, 7.0, 4.0),
            Rotation3::from_euler_angles(0.4, 0.1, -0.7),
        )
        .unwrap();
        let duals: Vec<_> = [0.0, 40.0, 90.0]
            .iter()
            .map(|&a| {
                let p = carm(a);
                let pts = ellipsoid_outline_px(&p, &truth, 20).unwrap();
                (p, fit_conic(&pts).unwrap().try_inverse().unwrap())
            })
            .collect();
        let e = linear_ellipsoid(&duals).unwrap();
        assert!((e.center - truth.center).norm() < 1e-5);
        assert!((e.volume_ml() - truth.volume_ml()).abs() < 1e-5);
    }

    #[test]
    fn non_ellipse_outline_is_refused() {
        let p = carm(0.0);
        let q = carm(90.0);
        let line: Vec<_> = (0..8).map(|i| Point2::new(i as f64, 2.0 * i as f64)).collect();
        let truth = Ellipsoid::sphere(Point3::origin(), 5.0).unwrap();
        let ok = ellipsoid_outline_px(&q, &truth, 12).unwrap();
        assert!(fit_lesion(&[(p, line), (q, ok)]).is_err());
    }
}
