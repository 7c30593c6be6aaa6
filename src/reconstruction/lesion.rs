//! The lesion: an ellipsoid from its outlines in two or more views.
//!
//! # Method
//! 1. Each outline gets an algebraic conic fit (on Hartley-normalised
//!    pixels): its centre, shape and dual `C*_k` (tangent-line conic).
//! 2. Starts. (a) From the per-view ellipse fits under the affine camera at
//!    the triangulated outline centres: an ellipsoid of shape `M = L L^T`
//!    casts the outline shape `J_k M J_k^T` (px^2, `J_k` the projection's
//!    Jacobian), 3 linear equations per view in the 6 entries of `M`,
//!    solved for the `M` nearest to a sphere. (b) With three or more views,
//!    the linear dual-quadric estimate: the outline of an ellipsoid with
//!    dual quadric `Q*` is the conic `C*_k ~ P_k Q* P_k^T` (Hartley &
//!    Zisserman §8.3), linear in the 10 entries of `Q*` and the scales.
//! 3. Levenberg-Marquardt over the 9 parameters (centre, log semi-axes,
//!    rotation) on the distance of every outline point to the ellipsoid's
//!    exact projected outline `C_k = (P_k Q* P_k^T)^-1`, as Sampson's
//!    first-order geometric distance `x^T C x / |grad|` (px); the best of the
//!    starts is kept.
//!
//! # Two views
//! Each view constrains the ellipsoid only through its silhouette cone: two
//! outlines give 10 numbers of which 2 are consistency conditions (the
//! epipolar tangent planes), so 8 constraints for 9 parameters: the
//! ellipsoids inscribed in both cones form a one-parameter family, all of
//! which reproduce both outlines exactly (Cross & Zisserman, *Quadric
//! reconstruction from dual-space geometry*, ICCV 1998). The fit then adds
//! the least-eccentricity term `w (ln a_i - mean ln a)` with
//! [`ECCENTRICITY_WEIGHT_PX`] and returns the **least eccentric** member
//! ([`LesionFit::least_eccentric_member`] is set). On the phantoms of
//! `examples/recon_table.rs` (lesion axis ratios 0.6-1.2) this costs about
//! 3 % RMS of volume (worst about 7 %) and 0.07 mm of centre at zero noise,
//! with outline residuals below 1e-6 px. Three or more views determine the
//! ellipsoid and no term is added.

use nalgebra::{
    DMatrix, DVector, Matrix3, Matrix3x4, Matrix4, Point2, Point3, Rotation3, SymmetricEigen,
    Vector3,
};

use super::lm::levenberg_marquardt;
use super::triangulate::triangulate;
use crate::error::{ensure_finite, Error, Result};
use crate::geometry::Ellipsoid;
use crate::imaging::Projection;

/// Fewest outline points per view for a lesion (a conic has 5 degrees of
/// freedom; one more makes the fit checkable).
pub const MIN_LESION_POINTS_PER_VIEW: usize = 6;

/// Weight of the least-eccentricity term of a two-view fit, px per unit of
/// `ln(a_i) - mean(ln a)`: it only selects the member of the one-parameter
/// family (the outline residuals cannot tell them apart) and moves the
/// outline fit by far less than 0.01 px.
pub const ECCENTRICITY_WEIGHT_PX: f64 = 1.0;

/// A fitted lesion.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LesionFit {
    /// The ellipsoid, world mm.
    pub ellipsoid: Ellipsoid,
    /// Volume, mL.
    pub volume_ml: f64,
    /// RMS distance of the outline points to the fitted ellipsoid's
    /// projected outlines, px (Sampson's first-order geometric distance).
    pub rms_px: f64,
    /// True when the outlines leave a one-parameter family of ellipsoids
    /// (two views, see the module docs) and the least-eccentric member was
    /// chosen.
    pub least_eccentric_member: bool,
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
        return Err(Error::degenerate(
            "outline",
            "the outline is not an ellipse",
        ));
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
    let mean = pts
        .iter()
        .fold(nalgebra::Vector2::zeros(), |a, p| a + p.coords)
        / n;
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

/// Linear dual-quadric estimate (method step 2b), three or more views.
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
    // SVD of A itself (not of A^T A, which squares the condition number).
    let svd = a.clone().svd(false, true);
    let vt = svd.v_t?;
    let mut order: Vec<usize> = (0..svd.singular_values.len()).collect();
    order.sort_by(|&i, &j| svd.singular_values[i].total_cmp(&svd.singular_values[j]));
    if order.is_empty() {
        return None;
    }
    let unscale = |v: DVector<f64>| -> DVector<f64> {
        let mut v = v;
        for (c, s) in scales.iter().enumerate() {
            v[c] /= s;
        }
        v
    };
    let x1 = unscale(vt.row(order[0]).transpose());
    // A member must lie wholly in front of every source (the back nappes of
    // the silhouette cones also meet).
    let in_front = |e: &Ellipsoid| {
        let l = e.rotation.matrix() * Matrix3::from_diagonal(&e.semi_axes_mm);
        duals.iter().all(|(p, _)| {
            let v = p.viewing_direction().into_inner();
            p.depth_mm(&e.center) > (l.transpose() * v).norm()
        })
    };
    // Two views leave a one-parameter family (null space of dimension 2):
    // no unique linear estimate; the caller uses the affine start.
    if nv < 3 {
        return None;
    }
    ellipsoid_from_solution(&x1).filter(|e| in_front(e))
}

fn ellipsoid_from_solution(x: &DVector<f64>) -> Option<Ellipsoid> {
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

/// Fits the lesion ellipsoid to its outlines in two or more views (with
/// two views: the least eccentric ellipsoid consistent with both outlines,
/// see the module docs).
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
/// // Three views determine the ellipsoid (two leave a one-parameter family).
/// let views: Vec<_> = [0.0, 45.0, 90.0].iter().map(|&a| {
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
    let mut radii_px = Vec::new();
    let mut shapes = Vec::with_capacity(outlines.len());
    for (k, (p, pts)) in outlines.iter().enumerate() {
        let what = format!("views[{k}].lesion_outline_px");
        if pts.len() < MIN_LESION_POINTS_PER_VIEW {
            return Err(Error::too_few(what, MIN_LESION_POINTS_PER_VIEW, pts.len()));
        }
        for (i, q) in pts.iter().enumerate() {
            ensure_finite(&format!("{what}[{i}]"), q.coords.as_slice())?;
        }
        let c = fit_conic(pts).ok_or_else(|| Error::degenerate(&what, "no conic fits"))?;
        let (x0, a) = conic_centre_shape(&c)
            .ok_or_else(|| Error::degenerate(&what, "the outline is not an ellipse"))?;
        shapes.push(
            a.try_inverse()
                .ok_or_else(|| Error::degenerate(&what, "the outline is not an ellipse"))?,
        );
        let cd = c
            .try_inverse()
            .ok_or_else(|| Error::degenerate(&what, "degenerate outline conic"))?;
        duals.push((*p, cd));
        centres.push((*p, x0));
        let mean_r_px = pts.iter().map(|q| (q - x0).norm()).sum::<f64>() / pts.len() as f64;
        radii_px.push(mean_r_px);
    }
    let tri = triangulate(&centres, 1.0).map_err(|e| e.in_field("lesion_outline_px"))?;
    let nv = outlines.len();
    let origin = tri.point;
    let setup = FitSetup::new(outlines, &origin);
    let mut starts = Vec::new();
    if let Some(e) = affine_start(&setup, &shapes) {
        starts.push(e);
    }
    if nv >= 3 {
        if let Some(e) = linear_start(outlines, &duals, &tri.point) {
            starts.push(e);
        }
    }
    if starts.is_empty() {
        let r = outlines
            .iter()
            .zip(&radii_px)
            .map(|((p, _), r_px)| r_px * super::triangulate::mm_per_px(p, &tri.point))
            .sum::<f64>()
            / nv as f64;
        starts.push(Ellipsoid::sphere(tri.point, r.max(0.5))?);
    }
    let weight = if nv == 2 { ECCENTRICITY_WEIGHT_PX } else { 0.0 };
    let mut best: Option<(f64, Ellipsoid, f64)> = None;
    let mut last_err = None;
    for start in &starts {
        match setup.refine(start, weight) {
            Ok((e, cost, rms)) => {
                if best.as_ref().is_none_or(|b| cost < b.0) {
                    best = Some((cost, e, rms));
                }
            }
            Err(err) => last_err = Some(err),
        }
    }
    let (_, ellipsoid, rms_px) = match (best, last_err) {
        (Some(b), _) => b,
        (None, Some(e)) => return Err(e),
        (None, None) => return Err(Error::degenerate("lesion_outline_px", "no ellipsoid fits")),
    };
    Ok(LesionFit {
        volume_ml: ellipsoid.volume_ml(),
        ellipsoid,
        rms_px,
        least_eccentric_member: nv == 2,
    })
}

/// The outline data of a fit in normalised coordinates: world translated to
/// `origin`, pixels of each view centred on the outline's centroid and
/// scaled to unit RMS radius (for conditioning).
struct FitSetup {
    origin: Point3<f64>,
    views: Vec<FitView>,
    n_points: usize,
}

/// One view of a [`FitSetup`].
struct FitView {
    /// Normalised camera `T P H`.
    camera: Matrix3x4<f64>,
    /// Pixel scale, px per normalised unit.
    scale: f64,
    /// Normalised homogeneous outline points.
    points: Vec<Vector3<f64>>,
    /// The original projection.
    projection: Projection,
}

impl FitSetup {
    fn new(outlines: &[(Projection, Vec<Point2<f64>>)], origin: &Point3<f64>) -> Self {
        let mut h = Matrix4::identity();
        h.fixed_view_mut::<3, 1>(0, 3).copy_from(&origin.coords);
        let mut views = Vec::new();
        let mut n_points = 0;
        for (p, pts) in outlines {
            let n = pts.len() as f64;
            let m = pts
                .iter()
                .fold(nalgebra::Vector2::zeros(), |a, q| a + q.coords)
                / n;
            let s = (pts
                .iter()
                .map(|q| (q.coords - m).norm_squared())
                .sum::<f64>()
                / n)
                .sqrt()
                .max(1e-6);
            let t = Matrix3::new(
                1.0 / s,
                0.0,
                -m.x / s,
                0.0,
                1.0 / s,
                -m.y / s,
                0.0,
                0.0,
                1.0,
            );
            let pn = t * p.matrix() * h;
            let qs = pts
                .iter()
                .map(|q| nalgebra::Vector3::new((q.x - m.x) / s, (q.y - m.y) / s, 1.0))
                .collect();
            n_points += pts.len();
            views.push(FitView {
                camera: pn,
                scale: s,
                points: qs,
                projection: *p,
            });
        }
        Self {
            origin: *origin,
            views,
            n_points,
        }
    }

    /// Sampson distances (px) of every outline point to the projected
    /// outline of `e` (given relative to `origin`), or `None` when an
    /// outline is undefined (the ellipsoid reaches behind a source).
    fn residuals(&self, c: &Vector3<f64>, l: &Matrix3<f64>, out: &mut [f64]) -> Option<()> {
        let mut h = Matrix4::identity();
        h.fixed_view_mut::<3, 3>(0, 0).copy_from(l);
        h.fixed_view_mut::<3, 1>(0, 3).copy_from(c);
        let q = h
            * Matrix4::from_diagonal(&nalgebra::Vector4::new(1.0, 1.0, 1.0, -1.0))
            * h.transpose();
        let world_c = self.origin + c;
        let mut i = 0;
        for FitView {
            camera: pn,
            scale: s,
            points: qs,
            projection: p,
        } in &self.views
        {
            let v = p.viewing_direction().into_inner();
            if !(p.depth_mm(&world_c) > (l.transpose() * v).norm()) {
                return None;
            }
            let cd = pn * q * pn.transpose();
            let cc = cd.try_inverse()?;
            let cc = cc / cc.norm();
            for x in qs {
                let g = cc * x;
                let f = x.dot(&g);
                let gn = 2.0 * g.x.hypot(g.y);
                if !(gn > 0.0) {
                    return None;
                }
                out[i] = s * f / gn;
                i += 1;
            }
        }
        Some(())
    }

    /// Levenberg-Marquardt from `start`: centre (in the start's frame),
    /// log semi-axes, rotation vector (body frame); with `weight > 0` the
    /// least-eccentricity term `weight (ln a_i - mean ln a)` (px) is added.
    /// Returns the ellipsoid, the total cost and the outline RMS (px).
    fn refine(&self, start: &Ellipsoid, weight: f64) -> Result<(Ellipsoid, f64, f64)> {
        let r0 = start.rotation;
        let c0 = start.center - self.origin;
        let np = self.n_points;
        let unpack = |x: &DVector<f64>| {
            let c = c0 + r0 * Vector3::new(x[0], x[1], x[2]);
            let ax = Vector3::new(x[3].exp(), x[4].exp(), x[5].exp());
            let rot = r0 * Rotation3::new(Vector3::new(x[6], x[7], x[8]));
            (c, ax, rot)
        };
        let residual = |x: &DVector<f64>| -> Option<DVector<f64>> {
            let (c, ax, rot) = unpack(x);
            let l = rot.matrix() * Matrix3::from_diagonal(&ax);
            let mut out = DVector::zeros(np + if weight > 0.0 { 3 } else { 0 });
            self.residuals(&c, &l, &mut out.as_mut_slice()[..np])?;
            if weight > 0.0 {
                let mean = (x[3] + x[4] + x[5]) / 3.0;
                for k in 0..3 {
                    out[np + k] = weight * (x[3 + k] - mean);
                }
            }
            Some(out)
        };
        let x0 = DVector::from_vec(vec![
            0.0,
            0.0,
            0.0,
            start.semi_axes_mm.x.ln(),
            start.semi_axes_mm.y.ln(),
            start.semi_axes_mm.z.ln(),
            0.0,
            0.0,
            0.0,
        ]);
        let res = levenberg_marquardt("lesion ellipsoid fit", residual, x0)?;
        let (c, ax, rot) = unpack(&res.x);
        let e = Ellipsoid::new(self.origin + c, ax, rot).map_err(|e| e.in_field("lesion"))?;
        let cost = res.r.norm_squared();
        let rms = (res.r.rows(0, np).norm_squared() / np.max(1) as f64).sqrt();
        Ok((e, cost, rms))
    }
}

/// Start from the per-view ellipse fits under the affine (first-order)
/// camera at the outline centres: an ellipsoid with shape `M = L L^T` casts
/// the outline shape `J M J^T` (px^2), `J` the projection's Jacobian; the
/// views give 3 linear equations each in the 6 entries of `M`, solved for
/// the `M` nearest (Frobenius) to a sphere of the mean size.
fn affine_start(setup: &FitSetup, shapes: &[nalgebra::Matrix2<f64>]) -> Option<Ellipsoid> {
    let c = setup.origin;
    // Unknowns: M00, M11, M22, sqrt2 M01, sqrt2 M02, sqrt2 M12 (so that the
    // Euclidean norm of the vector is the Frobenius norm of the matrix).
    let idx = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)];
    let nv = setup.views.len();
    let mut a = DMatrix::zeros(3 * nv, 6);
    let mut b = DVector::zeros(3 * nv);
    let mut m0 = 0.0;
    for (k, (view, s)) in setup.views.iter().zip(shapes).enumerate() {
        let j = view.projection.jacobian(&c);
        m0 += s.trace() / (j * j.transpose()).trace();
        for (row, &(i1, i2)) in [(0usize, 0usize), (0, 1), (1, 1)].iter().enumerate() {
            let r = 3 * k + row;
            for (col, &(u, v)) in idx.iter().enumerate() {
                let mut val = j[(i1, u)] * j[(i2, v)];
                if u != v {
                    val = (val + j[(i1, v)] * j[(i2, u)]) / std::f64::consts::SQRT_2;
                }
                a[(r, col)] = val;
            }
            b[r] = s[(i1, i2)];
        }
    }
    m0 /= nv as f64;
    if !(m0 > 0.0) {
        return None;
    }
    let iso = DVector::from_vec(vec![m0, m0, m0, 0.0, 0.0, 0.0]);
    let rhs = &b - &a * &iso;
    let svd = a.svd(true, true);
    let smax = svd.singular_values.max();
    let delta = svd.solve(&rhs, smax * 1e-9).ok()?;
    let v = iso + delta;
    let r2 = std::f64::consts::SQRT_2;
    let m = Matrix3::new(
        v[0],
        v[3] / r2,
        v[4] / r2,
        v[3] / r2,
        v[1],
        v[5] / r2,
        v[4] / r2,
        v[5] / r2,
        v[2],
    );
    let eig = SymmetricEigen::new(m);
    let floor = 0.04 * m0;
    let m = eig.eigenvectors
        * Matrix3::from_diagonal(&eig.eigenvalues.map(|l| l.max(floor)))
        * eig.eigenvectors.transpose();
    ellipsoid_from_shape(c, &m)
}

/// The linear dual-quadric estimate (method step 2), solved in a frame tied
/// to the scene (origin at the triangulated outline centres, axes of the
/// first view's detector) so that it is invariant under a rigid motion of
/// the whole scene; `None` when it fails or lands far from the outlines.
fn linear_start(
    outlines: &[(Projection, Vec<Point2<f64>>)],
    duals: &[(Projection, Matrix3<f64>)],
    centre: &Point3<f64>,
) -> Option<Ellipsoid> {
    let p0 = &outlines.first()?.0;
    let z = p0.viewing_direction().into_inner();
    let m = p0.matrix();
    let xr = Vector3::new(m[(0, 0)], m[(0, 1)], m[(0, 2)]);
    let x = (xr - z * xr.dot(&z)).try_normalize(1e-12)?;
    let y = z.cross(&x);
    let world_from_local = nalgebra::Isometry3::from_parts(
        nalgebra::Translation3::from(centre.coords),
        nalgebra::UnitQuaternion::from_rotation_matrix(&Rotation3::from_matrix_unchecked(
            Matrix3::from_columns(&[x, y, z]),
        )),
    );
    let h = world_from_local.to_homogeneous();
    let local: Vec<(Projection, Matrix3<f64>)> = duals
        .iter()
        .filter_map(|(p, cd)| {
            Projection::from_matrix(&(p.matrix() * h))
                .ok()
                .map(|pl| (pl, *cd))
        })
        .collect();
    if local.len() != duals.len() {
        return None;
    }
    let e = linear_ellipsoid(&local)?;
    let e = Ellipsoid::new(
        world_from_local * e.center,
        e.semi_axes_mm,
        world_from_local.rotation.to_rotation_matrix() * e.rotation,
    )
    .ok()?;
    ((e.center - centre).norm() < 3.0 * e.semi_axes_mm.max() + 5.0).then_some(e)
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
        let line: Vec<_> = (0..8)
            .map(|i| Point2::new(i as f64, 2.0 * i as f64))
            .collect();
        let truth = Ellipsoid::sphere(Point3::origin(), 5.0).unwrap();
        let ok = ellipsoid_outline_px(&q, &truth, 12).unwrap();
        assert!(fit_lesion(&[(p, line), (q, ok)]).is_err());
    }
}
