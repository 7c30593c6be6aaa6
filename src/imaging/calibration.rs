//! Calibration of one view from a fiducial phantom.
//!
//! Given `N >= 6` fiducials whose world positions (mm) are known and whose
//! image positions (pixels, already dewarped, see [`super::distortion`]) were
//! measured, [`calibrate`] estimates the 3x4 projection in two steps:
//!
//! 1. **DLT** (direct linear transform) with Hartley normalisation (Hartley
//!    and Zisserman, *Multiple View Geometry*, 2nd ed., alg. 7.1): world
//!    points are centred and scaled to a mean distance of sqrt(3), pixels to
//!    sqrt(2); the 12 entries of `P` are the right singular vector of the
//!    `2N x 12` design matrix with the smallest singular value.
//! 2. **Levenberg-Marquardt** refinement of the sum of squared reprojection
//!    errors over the 11 degrees of freedom of `P`, parametrised as
//!    `K` (fu, fv, skew, u0, v0), a rotation (3, local increments) and a
//!    translation (3), as in [`super::Intrinsics`] and [`super::Pose`]; the
//!    mirror flag of the DLT solution is kept.
//!
//! # Degenerate input
//!
//! The DLT needs points that are not coplanar; otherwise (or with fewer than
//! 6 points, duplicates, non-finite values, or points on both sides of the
//! source) [`calibrate`] returns a typed [`Error`] rather than a bad matrix.
//! A point set counts as coplanar (collinear) when its RMS thickness about
//! the best plane (line) is below [`DEGENERACY_RATIO`] times its RMS extent.
//!
//! # Noise
//!
//! With independent Gaussian noise of `sigma` px per pixel axis, the expected
//! sum of squared residuals at the optimum is `sigma^2 (2N - 11)`, so the
//! reported [`Calibration::rms_px`] (root mean square of the per-point
//! reprojection *distance*) is about `sigma sqrt(2) sqrt((2N - 11) / (2N))`.

use nalgebra::{DMatrix, Matrix3, Matrix3x4, Point2, Point3, SMatrix, SVector, Vector2, Vector3};

use super::{Intrinsics, Pose, Projection};
use crate::error::{Error, Result};

/// Fewest fiducials [`calibrate`] accepts (11 unknowns, 2 equations each).
pub const MIN_FIDUCIALS: usize = 6;

/// Relative RMS thickness below which a fiducial set counts as coplanar (or,
/// for its second direction, collinear): `1e-3`, i.e. 0.1 mm over 100 mm.
pub const DEGENERACY_RATIO: f64 = 1e-3;

/// The result of [`calibrate`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Calibration {
    /// The refined projection (normalised, `w > 0` for every fiducial).
    pub projection: Projection,
    /// Per-point residual `measured - reprojected`, pixels, in input order.
    pub residuals_px: Vec<Vector2<f64>>,
    /// Root mean square of the per-point reprojection distance, pixels.
    pub rms_px: f64,
    /// Levenberg-Marquardt iterations used.
    pub iterations: usize,
    /// `false` when refinement stopped at the iteration limit (the result is
    /// still the best found, never worse than the DLT).
    pub converged: bool,
}

impl Calibration {
    /// Per-point reprojection distances, pixels, in input order.
    #[must_use]
    pub fn residual_distances_px(&self) -> Vec<f64> {
        self.residuals_px.iter().map(|r| r.norm()).collect()
    }
}

/// Options of [`calibrate_with`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CalibrationOptions {
    /// Refine the DLT solution by Levenberg-Marquardt (default `true`).
    pub refine: bool,
    /// Iteration limit of the refinement (default 100).
    pub max_iterations: usize,
}

impl Default for CalibrationOptions {
    fn default() -> Self {
        Self {
            refine: true,
            max_iterations: 100,
        }
    }
}

/// Calibrates one view from fiducial correspondences: DLT with Hartley
/// normalisation, then Levenberg-Marquardt refinement (module docs).
///
/// * `world_mm` — fiducial positions, world mm (at least 6, not coplanar).
/// * `px` — their measured image positions, pixels, same order.
/// * `image_size_px` — image width and height, pixels (each >= 1).
///
/// # Errors
/// * [`Error::Invalid`] naming `image_size_px`, `px` (count mismatch),
///   `world_mm[i]` or `px[i]` (non-finite);
/// * [`Error::TooFew`] for fewer than [`MIN_FIDUCIALS`] points;
/// * [`Error::Degenerate`] for duplicate world points (`world_mm[j]`),
///   collinear or coplanar points, a configuration that does not determine a
///   unique projection, or fiducials on both sides of the source.
///
/// # Example
/// ```
/// use avnplan::imaging::{calibrate, CArm};
/// use nalgebra::Point3;
/// use approx::assert_relative_eq;
/// let truth = CArm {
///     sid_mm: 1000.0, sod_mm: 600.0,
///     primary_angle_rad: 0.4, secondary_angle_rad: 0.1,
///     pixel_spacing_mm: [0.3, 0.3], isocenter_mm: Point3::origin(),
///     principal_point_px: None, image_size_px: [1024, 1024],
/// }.projection().unwrap();
/// // Fiducials on the corners and edge midpoints of a 100 mm cube.
/// let world: Vec<Point3<f64>> = (0..27)
///     .map(|i| Point3::new((i % 3) as f64, ((i / 3) % 3) as f64, (i / 9) as f64) * 50.0
///         - nalgebra::Vector3::repeat(50.0))
///     .collect();
/// let px: Vec<_> = world.iter().map(|x| truth.project(x).unwrap()).collect();
/// let cal = calibrate(&world, &px, [1024, 1024]).unwrap();
/// assert!(cal.rms_px < 1e-8);
/// assert_relative_eq!(cal.projection.source_mm(), truth.source_mm(), epsilon = 1e-6);
/// ```
pub fn calibrate(
    world_mm: &[Point3<f64>],
    px: &[Point2<f64>],
    image_size_px: [u32; 2],
) -> Result<Calibration> {
    calibrate_with(world_mm, px, image_size_px, &CalibrationOptions::default())
}

/// [`calibrate`] with explicit options.
///
/// # Errors
/// As [`calibrate`].
pub fn calibrate_with(
    world_mm: &[Point3<f64>],
    px: &[Point2<f64>],
    image_size_px: [u32; 2],
    opts: &CalibrationOptions,
) -> Result<Calibration> {
    let p0 = dlt(world_mm, px, image_size_px)?;
    let (p, iterations, converged) = if opts.refine {
        refine(&p0, world_mm, px, opts.max_iterations)
    } else {
        (p0, 0, true)
    };
    let residuals_px: Vec<Vector2<f64>> = world_mm
        .iter()
        .zip(px)
        .map(|(x, m)| match p.try_project(x) {
            Some(uv) => m - uv,
            None => Vector2::repeat(f64::INFINITY),
        })
        .collect();
    if residuals_px
        .iter()
        .any(|r| !(r.x.is_finite() && r.y.is_finite()))
    {
        return Err(Error::degenerate(
            "world_mm",
            "a fiducial lies behind the estimated source",
        ));
    }
    let rms_px = (residuals_px.iter().map(|r| r.norm_squared()).sum::<f64>()
        / residuals_px.len() as f64)
        .sqrt();
    Ok(Calibration {
        projection: p,
        residuals_px,
        rms_px,
        iterations,
        converged,
    })
}

/// Checks the correspondences (counts, finiteness, duplicates, coplanarity).
fn validate(world_mm: &[Point3<f64>], px: &[Point2<f64>], image_size_px: [u32; 2]) -> Result<()> {
    if image_size_px[0] == 0 || image_size_px[1] == 0 {
        return Err(Error::invalid("image_size_px", "must be >= 1"));
    }
    if world_mm.len() != px.len() {
        return Err(Error::invalid(
            "px",
            format!(
                "has {} points but world_mm has {}",
                px.len(),
                world_mm.len()
            ),
        ));
    }
    if world_mm.len() < MIN_FIDUCIALS {
        return Err(Error::too_few("world_mm", MIN_FIDUCIALS, world_mm.len()));
    }
    for (i, (x, m)) in world_mm.iter().zip(px).enumerate() {
        if !x.coords.iter().all(|c| c.is_finite()) {
            return Err(Error::invalid(
                format!("world_mm[{i}]"),
                "must be finite (no NaN or infinity)",
            ));
        }
        if !m.coords.iter().all(|c| c.is_finite()) {
            return Err(Error::invalid(
                format!("px[{i}]"),
                "must be finite (no NaN or infinity)",
            ));
        }
    }
    let n = world_mm.len() as f64;
    let centroid = world_mm.iter().fold(Vector3::zeros(), |a, x| a + x.coords) / n;
    let mut cov = Matrix3::zeros();
    for x in world_mm {
        let d = x.coords - centroid;
        cov += d * d.transpose();
    }
    cov /= n;
    let extent = cov.trace().sqrt();
    // Duplicates: sort by x, compare neighbours within a tolerance.
    let tol = 1e-9 * extent.max(1e-300);
    let mut order: Vec<usize> = (0..world_mm.len()).collect();
    order.sort_by(|&a, &b| world_mm[a].x.total_cmp(&world_mm[b].x));
    for (k, &i) in order.iter().enumerate() {
        for &j in &order[k + 1..] {
            if world_mm[j].x - world_mm[i].x > tol {
                break;
            }
            if (world_mm[j] - world_mm[i]).norm() <= tol {
                let (a, b) = (i.min(j), i.max(j));
                return Err(Error::degenerate(
                    format!("world_mm[{b}]"),
                    format!("duplicates world_mm[{a}]"),
                ));
            }
        }
    }
    let mut ev = cov
        .symmetric_eigenvalues()
        .iter()
        .copied()
        .collect::<Vec<f64>>();
    ev.sort_by(|a, b| b.total_cmp(a));
    let rms = |v: f64| v.max(0.0).sqrt();
    if rms(ev[1]) < DEGENERACY_RATIO * extent {
        return Err(Error::degenerate("world_mm", "the fiducials are collinear"));
    }
    if rms(ev[2]) < DEGENERACY_RATIO * extent {
        return Err(Error::degenerate(
            "world_mm",
            "the fiducials are coplanar (a calibration needs depth)",
        ));
    }
    Ok(())
}

/// Similarity transform (as a matrix) that centres `pts` and scales their
/// mean distance from the centroid to `target`.
fn normaliser<const D: usize>(
    pts: &[SVector<f64, D>],
    target: f64,
) -> Option<(SVector<f64, D>, f64)> {
    let n = pts.len() as f64;
    let c = pts.iter().fold(SVector::<f64, D>::zeros(), |a, p| a + p) / n;
    let mean = pts.iter().map(|p| (p - c).norm()).sum::<f64>() / n;
    (mean > 0.0 && mean.is_finite()).then(|| (c, target / mean))
}

/// The normalised DLT estimate alone (no refinement), validated as in
/// [`calibrate`]. Useful as a baseline.
///
/// # Errors
/// As [`calibrate`].
pub fn dlt(
    world_mm: &[Point3<f64>],
    px: &[Point2<f64>],
    image_size_px: [u32; 2],
) -> Result<Projection> {
    validate(world_mm, px, image_size_px)?;
    let w: Vec<Vector3<f64>> = world_mm.iter().map(|p| p.coords).collect();
    let m: Vec<Vector2<f64>> = px.iter().map(|p| p.coords).collect();
    let (cw, sw) = normaliser(&w, 3f64.sqrt())
        .ok_or_else(|| Error::degenerate("world_mm", "all points coincide"))?;
    let (cm, sm) = normaliser(&m, 2f64.sqrt())
        .ok_or_else(|| Error::degenerate("px", "all image points coincide"))?;
    let n = w.len();
    let mut a = DMatrix::<f64>::zeros(2 * n, 12);
    for i in 0..n {
        let x = (w[i] - cw) * sw;
        let xh = [x.x, x.y, x.z, 1.0];
        let uv = (m[i] - cm) * sm;
        for k in 0..4 {
            // Row for u: [X^T, 0, -u X^T]; row for v: [0, X^T, -v X^T].
            a[(2 * i, k)] = xh[k];
            a[(2 * i, 8 + k)] = -uv.x * xh[k];
            a[(2 * i + 1, 4 + k)] = xh[k];
            a[(2 * i + 1, 8 + k)] = -uv.y * xh[k];
        }
    }
    let svd = nalgebra::SVD::try_new(a, false, true, f64::EPSILON, 10_000)
        .ok_or_else(|| Error::degenerate("world_mm", "the DLT system did not converge"))?;
    let v_t = svd
        .v_t
        .ok_or_else(|| Error::degenerate("world_mm", "the DLT system has no solution"))?;
    let s = &svd.singular_values;
    let mut idx: Vec<usize> = (0..s.len()).collect();
    idx.sort_by(|&i, &j| s[i].total_cmp(&s[j]));
    let (smin, s2, smax) = (s[idx[0]], s[idx[1]], s[idx[s.len() - 1]]);
    if !(smax > 0.0) || s2 < 1e-10 * smax || !smin.is_finite() {
        return Err(Error::degenerate(
            "world_mm",
            "the fiducials do not determine a unique projection",
        ));
    }
    let sol = v_t.row(idx[0]);
    let pn = Matrix3x4::from_fn(|r, c| sol[4 * r + c]);
    // Undo the normalisations: P = T_px^-1 Pn T_world.
    let mut t_w = nalgebra::Matrix4::identity() * sw;
    t_w[(3, 3)] = 1.0;
    t_w.fixed_view_mut::<3, 1>(0, 3).copy_from(&(-cw * sw));
    let t_m_inv = Matrix3::new(1.0 / sm, 0.0, cm.x, 0.0, 1.0 / sm, cm.y, 0.0, 0.0, 1.0);
    let mut p = t_m_inv * pn * t_w;
    // Sign: w > 0 for the fiducials.
    let ws: Vec<f64> = world_mm
        .iter()
        .map(|x| (p * x.to_homogeneous()).z)
        .collect();
    let positive = ws.iter().filter(|&&v| v > 0.0).count();
    if positive * 2 < n {
        p = -p;
    }
    let proj = Projection::from_matrix(&p).map_err(|e| match e {
        Error::Degenerate { reason, .. } => Error::degenerate("world_mm", reason),
        other => other,
    })?;
    if world_mm.iter().any(|x| proj.try_project(x).is_none()) {
        return Err(Error::degenerate(
            "world_mm",
            "the fiducials lie on both sides of the estimated source",
        ));
    }
    Ok(proj)
}

/// The 11 parameters of the refinement: fu, fv, skew, u0, v0, rotation
/// increment (3), translation (3); the rotation itself is carried aside.
type Params = SVector<f64, 11>;

struct Model {
    k: Intrinsics,
    r: nalgebra::Rotation3<f64>,
    t: Vector3<f64>,
    mirrored: bool,
}

impl Model {
    fn from_projection(p: &Projection) -> Self {
        let (k, pose) = p.decompose();
        Self {
            k,
            r: pose.camera_from_world.rotation.to_rotation_matrix(),
            t: pose.camera_from_world.translation.vector,
            mirrored: pose.mirrored,
        }
    }

    fn stepped(&self, d: &Params) -> Self {
        let k = Intrinsics {
            focal_px: [self.k.focal_px[0] + d[0], self.k.focal_px[1] + d[1]],
            skew: self.k.skew + d[2],
            principal_point_px: Point2::new(
                self.k.principal_point_px.x + d[3],
                self.k.principal_point_px.y + d[4],
            ),
        };
        let dr = nalgebra::Rotation3::new(Vector3::new(d[5], d[6], d[7]));
        Self {
            k,
            r: dr * self.r,
            t: self.t + Vector3::new(d[8], d[9], d[10]),
            mirrored: self.mirrored,
        }
    }

    /// Residuals (predicted - measured) and optionally the Jacobian; `None`
    /// when a point falls behind the source or a value is not finite.
    fn eval(
        &self,
        world: &[Point3<f64>],
        px: &[Point2<f64>],
        mut jac: Option<&mut DMatrix<f64>>,
    ) -> Option<(Vec<f64>, f64)> {
        let sigma = if self.mirrored { -1.0 } else { 1.0 };
        let [fu, fv] = self.k.focal_px;
        let s = self.k.skew;
        let (u0, v0) = (self.k.principal_point_px.x, self.k.principal_point_px.y);
        let mut res = Vec::with_capacity(2 * world.len());
        let mut cost = 0.0;
        for (i, (x, m)) in world.iter().zip(px).enumerate() {
            let xr = self.r * x.coords;
            let xc = xr + self.t;
            let y = Vector3::new(sigma * xc.x, xc.y, xc.z);
            if !(y.z > super::MIN_DEPTH_MM) {
                return None;
            }
            let (a, b) = (y.x / y.z, y.y / y.z);
            let ru = fu * a + s * b + u0 - m.x;
            let rv = fv * b + v0 - m.y;
            cost += ru * ru + rv * rv;
            res.push(ru);
            res.push(rv);
            if let Some(j) = jac.as_deref_mut() {
                let iz = 1.0 / y.z;
                // d(a, b)/dy
                let da = Vector3::new(iz, 0.0, -a * iz);
                let db = Vector3::new(0.0, iz, -b * iz);
                let du_dy = da * fu + db * s;
                let dv_dy = db * fv;
                // dy/dxc = S; dxc/dt = I; dxc/domega = -[xr]x.
                let du_dxc = Vector3::new(sigma * du_dy.x, du_dy.y, du_dy.z);
                let dv_dxc = Vector3::new(sigma * dv_dy.x, dv_dy.y, dv_dy.z);
                let du_dw = xr.cross(&du_dxc);
                let dv_dw = xr.cross(&dv_dxc);
                let (ru_i, rv_i) = (2 * i, 2 * i + 1);
                j[(ru_i, 0)] = a;
                j[(ru_i, 1)] = 0.0;
                j[(ru_i, 2)] = b;
                j[(ru_i, 3)] = 1.0;
                j[(ru_i, 4)] = 0.0;
                j[(rv_i, 0)] = 0.0;
                j[(rv_i, 1)] = b;
                j[(rv_i, 2)] = 0.0;
                j[(rv_i, 3)] = 0.0;
                j[(rv_i, 4)] = 1.0;
                for k in 0..3 {
                    j[(ru_i, 5 + k)] = du_dw[k];
                    j[(rv_i, 5 + k)] = dv_dw[k];
                    j[(ru_i, 8 + k)] = du_dxc[k];
                    j[(rv_i, 8 + k)] = dv_dxc[k];
                }
            }
        }
        cost.is_finite().then_some((res, cost))
    }

    fn projection(&self) -> Option<Projection> {
        let pose = Pose {
            camera_from_world: nalgebra::Isometry3::from_parts(
                self.t.into(),
                nalgebra::UnitQuaternion::from_rotation_matrix(&self.r),
            ),
            mirrored: self.mirrored,
        };
        Projection::from_intrinsics_pose(&self.k, &pose).ok()
    }
}

/// Levenberg-Marquardt (Marquardt scaling, Nielsen's damping update).
/// Returns the best projection, the iterations used and whether it
/// converged; never worse than `p0`.
fn refine(
    p0: &Projection,
    world: &[Point3<f64>],
    px: &[Point2<f64>],
    max_iterations: usize,
) -> (Projection, usize, bool) {
    let mut model = Model::from_projection(p0);
    let mut jac = DMatrix::<f64>::zeros(2 * world.len(), 11);
    let Some((mut res, mut cost)) = model.eval(world, px, Some(&mut jac)) else {
        return (*p0, 0, false);
    };
    let mut mu = 1e-3;
    let mut nu = 2.0;
    let mut converged = false;
    let mut iterations = 0;
    let r_vec = |r: &[f64]| nalgebra::DVector::from_column_slice(r);
    while iterations < max_iterations {
        if cost == 0.0 {
            converged = true;
            break;
        }
        iterations += 1;
        let jt = jac.transpose();
        let a: SMatrix<f64, 11, 11> = (&jt * &jac).fixed_view::<11, 11>(0, 0).into_owned();
        let g: Params = (&jt * r_vec(&res)).fixed_rows::<11>(0).into_owned();
        let gmax = g.amax();
        let scale = a.diagonal().map(|d| d.max(1e-300));
        if gmax <= 1e-15 * (cost + 1e-300).sqrt() * scale.max().sqrt() {
            converged = true;
            break;
        }
        let mut damped = a;
        for k in 0..11 {
            damped[(k, k)] += mu * scale[k];
        }
        let step = damped
            .cholesky()
            .map(|c| -c.solve(&g))
            .filter(|d| d.iter().all(|v| v.is_finite()));
        let Some(step) = step else {
            mu *= nu;
            nu *= 2.0;
            continue;
        };
        // Relative step size, parameter-wise (angles are already relative).
        let sizes = [
            model.k.focal_px[0],
            model.k.focal_px[1],
            model.k.focal_px[0],
            model.k.focal_px[0],
            model.k.focal_px[1],
            1.0,
            1.0,
            1.0,
            model.t.norm(),
            model.t.norm(),
            model.t.norm(),
        ];
        let rel = step
            .iter()
            .zip(sizes)
            .map(|(d, s)| d.abs() / s.max(1e-12))
            .fold(0.0, f64::max);
        let trial = model.stepped(&step);
        let predicted = -(step.dot(&g) * 2.0 + step.dot(&(a * step)));
        match trial.eval(world, px, None) {
            Some((_, new_cost)) if new_cost < cost => {
                let rho = (cost - new_cost) / predicted.max(1e-300);
                model = trial;
                let Some((r2, c2)) = model.eval(world, px, Some(&mut jac)) else {
                    break;
                };
                let small_gain = cost - c2 <= 1e-15 * cost;
                res = r2;
                cost = c2;
                mu *= (1.0 / 3.0f64).max(1.0 - (2.0 * rho - 1.0).powi(3));
                nu = 2.0;
                if rel < 1e-13 || small_gain {
                    converged = true;
                    break;
                }
            }
            _ => {
                if rel < 1e-14 {
                    converged = true;
                    break;
                }
                mu *= nu;
                nu *= 2.0;
            }
        }
    }
    match model.projection() {
        Some(p) => (p, iterations, converged),
        None => (*p0, iterations, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::CArm;

    fn truth() -> Projection {
        CArm {
            sid_mm: 1100.0,
            sod_mm: 700.0,
            primary_angle_rad: 0.5,
            secondary_angle_rad: -0.3,
            pixel_spacing_mm: [0.2, 0.25],
            isocenter_mm: Point3::new(5.0, -3.0, 12.0),
            principal_point_px: Some(Point2::new(500.0, 530.0)),
            image_size_px: [1024, 1024],
        }
        .projection()
        .unwrap()
    }

    fn cube() -> Vec<Point3<f64>> {
        (0..27)
            .map(|i| {
                Point3::new((i % 3) as f64, ((i / 3) % 3) as f64, (i / 9) as f64) * 40.0
                    + Vector3::new(-40.0, -40.0, -40.0 + 0.3 * (i as f64))
            })
            .collect()
    }

    #[test]
    fn exact_recovery() {
        let p = truth();
        let w = cube();
        let m: Vec<_> = w.iter().map(|x| p.project(x).unwrap()).collect();
        let c = calibrate(&w, &m, [1024, 1024]).unwrap();
        let rel = (c.projection.matrix() - p.matrix()).norm() / p.matrix().norm();
        assert!(rel < 1e-10, "{rel}");
        assert!(c.rms_px < 1e-9);
    }

    #[test]
    fn refinement_reduces_noisy_cost() {
        let p = truth();
        let w = cube();
        let m: Vec<_> = w
            .iter()
            .enumerate()
            .map(|(i, x)| {
                p.project(x).unwrap()
                    + Vector2::new((i as f64 * 1.7).sin(), (i as f64 * 2.3).cos()) * 0.8
            })
            .collect();
        let raw = calibrate_with(
            &w,
            &m,
            [1024, 1024],
            &CalibrationOptions {
                refine: false,
                ..Default::default()
            },
        )
        .unwrap();
        let refined = calibrate(&w, &m, [1024, 1024]).unwrap();
        assert!(refined.converged);
        assert!(refined.rms_px <= raw.rms_px + 1e-12);
        // At the optimum the gradient of the cost vanishes: a finite
        // difference along every matrix entry does not lower the cost.
        let cost = |pp: &Matrix3x4<f64>| -> f64 {
            let q = Projection::from_matrix(pp).unwrap();
            w.iter()
                .zip(&m)
                .map(|(x, mm)| (q.project(x).unwrap() - mm).norm_squared())
                .sum()
        };
        let base = *refined.projection.matrix();
        let c0 = cost(&base);
        for r in 0..3 {
            for col in 0..4 {
                let mut q = base;
                q[(r, col)] *= 1.0 + 1e-7;
                assert!(cost(&q) >= c0 - 1e-9 * c0);
            }
        }
    }

    #[test]
    fn degenerate_inputs() {
        let p = truth();
        let w = cube();
        let m: Vec<_> = w.iter().map(|x| p.project(x).unwrap()).collect();
        let e = calibrate(&w[..5], &m[..5], [1024, 1024]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::TooFew {
                    required: 6,
                    actual: 5,
                    ..
                }
            ),
            "{e}"
        );
        let e = calibrate(&w, &m[..10], [1024, 1024]).unwrap_err();
        assert!(e.to_string().starts_with("px:"), "{e}");
        let mut wn = w.clone();
        wn[4].y = f64::NAN;
        let e = calibrate(&wn, &m, [1024, 1024]).unwrap_err();
        assert!(e.to_string().starts_with("world_mm[4]"), "{e}");
        let mut mn = m.clone();
        mn[7].x = f64::INFINITY;
        let e = calibrate(&w, &mn, [1024, 1024]).unwrap_err();
        assert!(e.to_string().starts_with("px[7]"), "{e}");
        let mut wd = w.clone();
        wd[9] = wd[3];
        let e = calibrate(&wd, &m, [1024, 1024]).unwrap_err();
        assert!(e.to_string().contains("world_mm[9]: degenerate"), "{e}");
        let flat: Vec<_> = w[..9].iter().map(|x| Point3::new(x.x, x.y, 3.0)).collect();
        let e = calibrate(&flat, &m[..9], [1024, 1024]).unwrap_err();
        assert!(e.to_string().contains("coplanar"), "{e}");
        let line: Vec<_> = (0..10)
            .map(|i| Point3::new(i as f64, 2.0 * i as f64, 0.5))
            .collect();
        let e = calibrate(&line, &m[..10], [1024, 1024]).unwrap_err();
        assert!(e.to_string().contains("collinear"), "{e}");
        assert!(calibrate(&w, &m, [0, 1024]).is_err());
    }
}
