//! 2D/3D registration: the rigid pose of a CT/MRI femur mesh (given in its
//! own frame) in the world frame of the C-arm views.
//!
//! [`register`] works in two stages:
//!
//! 1. **Initialisation from anatomy.** The mesh's head sphere, neck and
//!    shaft axes ([`FemurLandmarks::from_mesh`]) are matched to the ones
//!    reconstructed from the views ([`crate::reconstruction::reconstruct`]):
//!    the head-neck frames ([`HeadNeckFrame`]) of both are made to coincide.
//!    With only one of the two axes reconstructed, twelve starts rotated
//!    about that axis are tried and the best after refinement is kept.
//!    [`RegistrationOptions::initial_world_from_mesh`] replaces this stage.
//! 2. **Refinement on the silhouettes.** The residual of an annotated
//!    outline point (`head_outline_px`, `neck_edges_px`, `shaft_edges_px`)
//!    is its distance to the projected silhouette of the posed mesh: the
//!    nearest projected *contour-generator* edge (a mesh edge between a face
//!    turned to the source and one turned away; the outline of a polyhedron
//!    is made of them), signed along that edge's image normal. The 3D point
//!    on the edge is held fixed within an iteration (iterative closest
//!    point), and the six pose parameters (a rotation vector about the
//!    current head centre and a translation, world frame) are solved by
//!    Levenberg-Marquardt with iteratively reweighted Huber weights
//!    (`k = 1.345 s`, `s` the MAD scale of the residuals, at least
//!    [`MIN_SCALE_PX`]); points farther than `max(4 s, 2 px)` from the
//!    silhouette get weight 0 (outliers, partial outlines, annotations of
//!    parts the mesh lacks).
//!
//! **Figures.** `rms_px` is the root mean square of the inliers' residuals
//! (point-to-silhouette distance), per view and overall. The pose covariance
//! is `s^2 (J^T W J)^-1` at the solution, with `s^2` the weighted residual
//! variance (at least [`MIN_SCALE_PX`] squared); [`Registration::displacement_sd_mm`]
//! propagates it to any point. `head_center_sd_mm` is the root of the trace
//! of the head centre's 3x3 covariance, `rotation_sd_rad` that of the
//! rotation vector's.
//!
//! **Status.** [`RegistrationStatus::NotConverged`] when the iterations run
//! out before the step is below 1e-5 rad and 1e-4 mm, when `rms_px` exceeds
//! [`RegistrationOptions::max_rms_px`], or when fewer than half of the
//! points, or of one view's points, are inliers; the best pose is still returned, and
//! [`crate::pipeline`] never plans on it.

// `!(x > 0.0)` is deliberate: it is also true for NaN.
#![allow(
    clippy::neg_cmp_op_on_partial_ord,
    reason = "NaN-rejecting comparisons are intended"
)]

mod silhouette;

pub use crate::io::registration::RegistrationStatus;

use nalgebra::{
    Isometry3, Matrix3, Matrix6, Point2, Point3, Translation3, UnitQuaternion, Vector3, Vector6,
};
use rayon::prelude::*;

use crate::anatomy::{FemurLandmarks, HeadNeckFrame};
use crate::case::Side;
use crate::error::{Error, Result};
use crate::geometry::TriMesh;
use crate::imaging::View;
use crate::io::registration::{
    isometry_to_rows, RegistrationFile, RegistrationUncertaintyWire, RegistrationViewWire,
    REGISTRATION_SCHEMA,
};
use crate::reconstruction::{reconstruct, ReconstructionOptions};

use silhouette::{ContourMesh, ViewContour};

/// Smallest residual scale used for the robust weights and the covariance,
/// px: below it the mesh's own faceting dominates.
pub const MIN_SCALE_PX: f64 = 0.1;

/// Options of [`register`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RegistrationOptions {
    /// Which femur (passed to the mesh's landmark search); `None` finds it
    /// from the geometry. Default `None`.
    pub side: Option<Side>,
    /// Annotation noise, px, for the reconstruction used to initialise.
    /// Default 1.0.
    pub noise_px: f64,
    /// Largest number of Levenberg-Marquardt iterations. Default 60.
    pub max_iterations: usize,
    /// Largest acceptable `rms_px`; above it the status is
    /// [`RegistrationStatus::NotConverged`]. Default 4.0 px (about four
    /// times the contract's 1 px annotation noise).
    pub max_rms_px: f64,
    /// Start pose (mesh -> world); `None` (default) initialises from the
    /// anatomy (module docs).
    pub initial_world_from_mesh: Option<Isometry3<f64>>,
}

impl Default for RegistrationOptions {
    fn default() -> Self {
        Self {
            side: None,
            noise_px: 1.0,
            max_iterations: 60,
            max_rms_px: 4.0,
            initial_world_from_mesh: None,
        }
    }
}

/// Residual figures of one view.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ViewResidual {
    /// The view's name.
    pub name: String,
    /// Root mean square distance of this view's inlier points to the
    /// silhouette, px.
    pub rms_px: f64,
    /// Number of inlier points.
    pub inliers: usize,
    /// Number of annotated points used (head, neck, shaft).
    pub points: usize,
}

/// The result of [`register`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Registration {
    /// Mesh mm -> world mm (the best pose found, whatever the status).
    pub world_from_mesh: Isometry3<f64>,
    /// `Ok` or `NotConverged` (module docs).
    pub status: RegistrationStatus,
    /// Per-view residuals, in the order of the views.
    pub views: Vec<ViewResidual>,
    /// Root mean square residual over every inlier point, px.
    pub rms_px: f64,
    /// Fraction of the annotated points that are inliers.
    pub inlier_fraction: f64,
    /// One-sigma uncertainty of the head centre, mm (root of the trace of
    /// its covariance).
    pub head_center_sd_mm: f64,
    /// One-sigma uncertainty of the rotation angle, radians.
    pub rotation_sd_rad: f64,
    /// Covariance of the pose parameters `[rotation vector (rad);
    /// translation (mm)]`, world frame, rotation about
    /// [`Registration::head_center_mm`].
    pub covariance: Matrix6<f64>,
    /// The mesh's head centre in the world (under the registered pose), mm.
    pub head_center_mm: Point3<f64>,
    /// The mesh's landmarks (mesh frame).
    pub landmarks: FemurLandmarks,
    /// Levenberg-Marquardt iterations used.
    pub iterations: usize,
    /// Remarks for the user (why the status is `NotConverged`, the start).
    pub warnings: Vec<String>,
}

impl Registration {
    /// One-sigma displacement of the world point `p` under the pose's
    /// uncertainty, mm: the root of the largest eigenvalue of its 3x3
    /// covariance `J C J^T`, `J = [-[p - c]x | I]`.
    ///
    /// # Example
    /// See [`register`].
    #[must_use]
    pub fn displacement_sd_mm(&self, p: &Point3<f64>) -> f64 {
        let d = p - self.head_center_mm;
        let mut j = nalgebra::Matrix3x6::zeros();
        j.fixed_view_mut::<3, 3>(0, 0)
            .copy_from(&(-d.cross_matrix()));
        j.fixed_view_mut::<3, 3>(0, 3)
            .copy_from(&Matrix3::identity());
        let c: Matrix3<f64> = j * self.covariance * j.transpose();
        let c = (c + c.transpose()) * 0.5;
        let ev = c.symmetric_eigenvalues();
        ev.max().max(0.0).sqrt()
    }

    /// The registration file (contract `avnplan.registration/1`).
    #[must_use]
    pub fn to_file(&self) -> RegistrationFile {
        RegistrationFile {
            schema: REGISTRATION_SCHEMA.to_string(),
            status: self.status,
            world_from_mesh: isometry_to_rows(&self.world_from_mesh),
            rms_px: finite_or(self.rms_px, 0.0),
            views: self
                .views
                .iter()
                .map(|v| RegistrationViewWire {
                    name: v.name.clone(),
                    rms_px: finite_or(v.rms_px, 0.0),
                })
                .collect(),
            warnings: self.warnings.clone(),
            uncertainty: RegistrationUncertaintyWire {
                head_center_sd_mm: finite_or(self.head_center_sd_mm, 0.0),
                rotation_sd_deg: finite_or(self.rotation_sd_rad.to_degrees(), 0.0),
            },
        }
    }
}

fn finite_or(x: f64, d: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        d
    }
}

/// The annotated outline points of one view.
fn outline_points(v: &View) -> Vec<Point2<f64>> {
    let a = &v.annotations;
    let mut pts = a.head_outline_px.clone();
    for e in [&a.neck_edges_px, &a.shaft_edges_px].into_iter().flatten() {
        for side in e {
            pts.extend(side.iter().copied());
        }
    }
    pts.retain(|p| p.x.is_finite() && p.y.is_finite());
    pts
}

/// Rigid update `x -> c + R(w) (x - c) + t` composed onto `pose`.
fn apply_step(pose: &Isometry3<f64>, c: &Point3<f64>, step: &Vector6<f64>) -> Isometry3<f64> {
    let w = Vector3::new(step[0], step[1], step[2]);
    let t = Vector3::new(step[3], step[4], step[5]);
    let r = UnitQuaternion::from_scaled_axis(w);
    let upd = Isometry3::from_parts(Translation3::from(c.coords + t - r * c.coords), r);
    upd * pose
}

/// Everything one evaluation of a pose gives.
struct Eval {
    /// Per point: residual (px), Jacobian row, view index.
    rows: Vec<(f64, Vector6<f64>, usize)>,
}

/// Evaluates the residuals and Jacobians of every annotated point at `pose`.
fn evaluate(
    cm: &ContourMesh,
    views: &[View],
    points: &[Vec<Point2<f64>>],
    pose: &Isometry3<f64>,
    pivot: &Point3<f64>,
) -> Eval {
    let per_view: Vec<Vec<(f64, Vector6<f64>, usize)>> = views
        .par_iter()
        .enumerate()
        .map(|(k, v)| {
            let vc = ViewContour::new(cm, &v.projection, pose);
            points[k]
                .iter()
                .filter_map(|q| {
                    let (r, x, n) = vc.nearest(q)?;
                    let jp = v.projection.jacobian(&x);
                    let g = jp.transpose() * n; // d r / d X (3)
                    let d = x - pivot;
                    // dX/dw = -[d]x, so dr/dw = (d x g)... : g . (w x d) = w . (d x g)
                    let jw = d.cross(&g);
                    Some((r, Vector6::new(jw.x, jw.y, jw.z, g.x, g.y, g.z), k))
                })
                .collect()
        })
        .collect();
    Eval {
        rows: per_view.into_iter().flatten().collect(),
    }
}

/// Robust scale of residuals: 1.4826 x median |r|, at least [`MIN_SCALE_PX`].
fn mad_scale(rows: &[(f64, Vector6<f64>, usize)]) -> f64 {
    if rows.is_empty() {
        return MIN_SCALE_PX;
    }
    let mut a: Vec<f64> = rows.iter().map(|r| r.0.abs()).collect();
    a.sort_by(f64::total_cmp);
    (1.4826 * a[a.len() / 2]).max(MIN_SCALE_PX)
}

/// Huber weight with threshold `k`, zero beyond `cut`.
fn weight(r: f64, k: f64, cut: f64) -> f64 {
    let a = r.abs();
    if !(a <= cut) {
        0.0
    } else if a <= k {
        1.0
    } else {
        k / a
    }
}

/// Robust cost (Huber, zero-weight points count as `cut`-clamped).
fn cost(rows: &[(f64, Vector6<f64>, usize)], k: f64, cut: f64, n_total: usize) -> f64 {
    let mut c = 0.0;
    for (r, _, _) in rows {
        let a = r.abs().min(cut);
        c += if a <= k {
            0.5 * a * a
        } else {
            k * (a - 0.5 * k)
        };
    }
    // Points with no silhouette nearby count as outliers.
    let missing = n_total.saturating_sub(rows.len()) as f64;
    c + missing * k * (cut - 0.5 * k)
}

/// Outcome of one refinement.
struct Refined {
    pose: Isometry3<f64>,
    converged: bool,
    iterations: usize,
    scale: f64,
    eval: Eval,
}

/// Levenberg-Marquardt refinement from `start` (module docs).
fn refine(
    cm: &ContourMesh,
    views: &[View],
    points: &[Vec<Point2<f64>>],
    head_mesh: &Point3<f64>,
    start: Isometry3<f64>,
    max_iterations: usize,
) -> Refined {
    let n_total: usize = points.iter().map(Vec::len).sum();
    let mut pose = start;
    let mut eval = evaluate(cm, views, points, &pose, &(pose * head_mesh));
    let mut lambda = 1e-3;
    let mut converged = false;
    let mut it = 0;
    let mut scale = mad_scale(&eval.rows);
    while it < max_iterations {
        it += 1;
        let pivot = pose * head_mesh;
        // Re-evaluate Jacobians about the current pivot.
        eval = evaluate(cm, views, points, &pose, &pivot);
        scale = mad_scale(&eval.rows);
        let k = 1.345 * scale;
        let cut = (4.0 * scale).max(2.0);
        let c0 = cost(&eval.rows, k, cut, n_total);
        let mut h = Matrix6::zeros();
        let mut g = Vector6::zeros();
        for (r, j, _) in &eval.rows {
            let w = weight(*r, k, cut);
            if w > 0.0 {
                h += j * j.transpose() * w;
                g += j * (w * r);
            }
        }
        let mut accepted = false;
        for _ in 0..10 {
            let mut a = h;
            for d in 0..6 {
                a[(d, d)] += lambda * h[(d, d)].max(1e-9);
            }
            let Some(step) = a.cholesky().map(|ch| ch.solve(&(-g))) else {
                lambda *= 10.0;
                continue;
            };
            if !step.iter().all(|x| x.is_finite()) {
                lambda *= 10.0;
                continue;
            }
            let cand = apply_step(&pose, &pivot, &step);
            let e2 = evaluate(cm, views, points, &cand, &pivot);
            let c1 = cost(&e2.rows, k, cut, n_total);
            if c1 <= c0 {
                pose = cand;
                lambda = (lambda / 3.0).max(1e-9);
                accepted = true;
                let small =
                    step.fixed_rows::<3>(0).norm() < 1e-5 && step.fixed_rows::<3>(3).norm() < 1e-4;
                if small {
                    converged = true;
                }
                break;
            }
            lambda *= 4.0;
        }
        if !accepted {
            // No decrease from here: a (local) minimum of the cost.
            converged = true;
        }
        if converged {
            break;
        }
    }
    let pivot = pose * head_mesh;
    let eval = evaluate(cm, views, points, &pose, &pivot);
    if !eval.rows.is_empty() {
        scale = mad_scale(&eval.rows);
    }
    Refined {
        pose,
        converged,
        iterations: it,
        scale,
        eval,
    }
}

/// Start poses from the anatomy (module docs, stage 1).
fn anatomical_starts(
    lm: &FemurLandmarks,
    views: &[View],
    side: Side,
    noise_px: f64,
    warnings: &mut Vec<String>,
) -> Result<Vec<Isometry3<f64>>> {
    let ropts = ReconstructionOptions {
        noise_px,
        build_mesh: false,
        ..ReconstructionOptions::default()
    };
    let rec = reconstruct(views, &ropts)?;
    let h_w = rec.head.sphere.center;
    let mesh_from_head = lm.frame.world_from_head.inverse();
    match (rec.neck_axis(), rec.shaft_axis()) {
        (Some(n), Some(s)) => {
            let f = HeadNeckFrame::new(
                h_w,
                &n.direction.into_inner(),
                &s.direction.into_inner(),
                side,
            )
            .map_err(|e| e.in_field("views"))?;
            Ok(vec![f.world_from_head * mesh_from_head])
        }
        (one_n, one_s) => {
            // One axis known: align it, spin about it.
            let (w_dir, m_dir, what) =
                match (one_n, one_s) {
                    (Some(n), None) => (n.direction, lm.neck_axis.direction, "shaft"),
                    (None, Some(s)) => (s.direction, lm.shaft_axis.direction, "neck"),
                    _ => return Err(Error::invalid(
                        "views",
                        "registration needs neck_edges_px or shaft_edges_px in two or more views",
                    )),
                };
            warnings.push(format!(
                "no {what} axis reconstructed from the views: twelve starts tried about the other axis"
            ));
            let align =
                UnitQuaternion::rotation_between_axis(&m_dir, &w_dir).unwrap_or_else(|| {
                    UnitQuaternion::from_axis_angle(&orthogonal(&m_dir), std::f64::consts::PI)
                });
            Ok((0..12)
                .map(|i| {
                    let spin = UnitQuaternion::from_axis_angle(
                        &w_dir,
                        std::f64::consts::TAU * f64::from(i) / 12.0,
                    );
                    let r = spin * align;
                    Isometry3::from_parts(
                        Translation3::from(h_w.coords - r * lm.head.center.coords),
                        r,
                    )
                })
                .collect())
        }
    }
}

/// A unit vector orthogonal to `v`.
fn orthogonal(v: &nalgebra::Unit<Vector3<f64>>) -> nalgebra::Unit<Vector3<f64>> {
    let a = if v.x.abs() < 0.6 {
        Vector3::x()
    } else {
        Vector3::y()
    };
    nalgebra::Unit::new_normalize(v.cross(&a))
}

/// Registers a femur mesh (own frame, mm) to calibrated, annotated views
/// (module docs).
///
/// # Errors
/// * [`Error::Invalid`] for bad options (`noise_px`, `max_rms_px`,
///   `max_iterations`), or when the views give neither neck nor shaft
///   edges in two views (and no start pose is given);
/// * [`Error::TooFew`] (`views.annotations`) with fewer than 12 annotated
///   outline points in all;
/// * the errors of [`FemurLandmarks::from_mesh`] (field `bone_mesh`) and of
///   [`reconstruct`].
///
/// A pose that does not fit is not an error: it has status
/// [`RegistrationStatus::NotConverged`].
///
/// # Example
/// ```no_run
/// use avnplan::phantom::{Phantom, PhantomOptions};
/// use avnplan::registration::{register, RegistrationOptions, RegistrationStatus};
/// let (mesh, _) = avnplan::io::mesh::load_mesh("femur_r.stl".as_ref())?;
/// let mut o = PhantomOptions::default();
/// o.own_frame = true;
/// let ph = Phantom::around_mesh(&mesh, 3, &o)?;
/// let (own, _) = ph.case.bone_mesh.clone().unwrap();
/// let reg = register(&own, &ph.case.views, &RegistrationOptions::default())?;
/// assert_eq!(reg.status, RegistrationStatus::Ok);
/// let truth = ph.world_from_mesh.unwrap();
/// let h = reg.landmarks.head.center;
/// assert!((reg.world_from_mesh * h - truth * h).norm() < 1e-3);
/// # Ok::<(), avnplan::Error>(())
/// ```
pub fn register(
    mesh: &TriMesh,
    views: &[View],
    opts: &RegistrationOptions,
) -> Result<Registration> {
    if !(opts.noise_px.is_finite() && opts.noise_px >= 0.0) {
        return Err(Error::invalid("noise_px", "must be a finite number >= 0"));
    }
    if !(opts.max_rms_px.is_finite() && opts.max_rms_px > 0.0) {
        return Err(Error::invalid("max_rms_px", "must be a finite number > 0"));
    }
    if opts.max_iterations == 0 {
        return Err(Error::invalid("max_iterations", "must be >= 1"));
    }
    let points: Vec<Vec<Point2<f64>>> = views.iter().map(outline_points).collect();
    let n_total: usize = points.iter().map(Vec::len).sum();
    if n_total < 12 {
        return Err(Error::too_few("views.annotations", 12, n_total));
    }
    let lm = FemurLandmarks::from_mesh(mesh, opts.side).map_err(|e| e.in_field("bone_mesh"))?;
    let side = lm.side;
    let cm = ContourMesh::new(mesh);
    let mut warnings = Vec::new();
    let starts = match opts.initial_world_from_mesh {
        Some(p) => vec![p],
        None => anatomical_starts(&lm, views, side, opts.noise_px, &mut warnings)?,
    };
    let head_mesh = lm.head.center;
    let mut best: Option<(f64, Refined)> = None;
    for s in starts {
        let r = refine(&cm, views, &points, &head_mesh, s, opts.max_iterations);
        let k = 1.345 * r.scale;
        let c = cost(&r.eval.rows, k, (4.0 * r.scale).max(2.0), n_total);
        if best.as_ref().is_none_or(|(bc, _)| c < *bc) {
            best = Some((c, r));
        }
    }
    let Some((_, r)) = best else {
        return Err(Error::invalid("views", "no start pose"));
    };
    Ok(summarise(r, &lm, views, n_total, opts, warnings))
}

/// Figures, covariance and status of a refined pose.
fn summarise(
    r: Refined,
    lm: &FemurLandmarks,
    views: &[View],
    n_total: usize,
    opts: &RegistrationOptions,
    mut warnings: Vec<String>,
) -> Registration {
    let scale = r.scale;
    let k = 1.345 * scale;
    let cut = (4.0 * scale).max(2.0);
    let mut h = Matrix6::zeros();
    let (mut sw, mut swr2) = (0.0, 0.0);
    let mut per_view = vec![(0.0f64, 0usize); views.len()];
    let mut inliers = 0usize;
    for (res, j, v) in &r.eval.rows {
        let w = weight(*res, k, cut);
        if w > 0.0 {
            h += j * j.transpose() * w;
            sw += w;
            swr2 += w * res * res;
            inliers += 1;
            per_view[*v].0 += res * res;
            per_view[*v].1 += 1;
        }
    }
    let total_sq: f64 = per_view.iter().map(|p| p.0).sum();
    let rms_px = if inliers > 0 {
        (total_sq / inliers as f64).sqrt()
    } else {
        f64::INFINITY
    };
    let dof = (sw - 6.0).max(1.0);
    let s2 = (swr2 / dof).max(MIN_SCALE_PX * MIN_SCALE_PX);
    let covariance = h
        .try_inverse()
        .map(|inv| inv * s2)
        .unwrap_or_else(|| Matrix6::identity() * 1e6);
    let head_center_sd_mm = covariance.fixed_view::<3, 3>(3, 3).trace().max(0.0).sqrt();
    let rotation_sd_rad = covariance.fixed_view::<3, 3>(0, 0).trace().max(0.0).sqrt();
    let inlier_fraction = inliers as f64 / n_total.max(1) as f64;
    let mut ok = r.converged;
    if !r.converged {
        warnings.push(format!(
            "registration did not converge in {} iterations",
            r.iterations
        ));
    }
    if !(rms_px <= opts.max_rms_px) {
        ok = false;
        warnings.push(format!(
            "registration residual {rms_px:.2} px exceeds {:.2} px",
            opts.max_rms_px
        ));
    }
    if inlier_fraction < 0.5 {
        ok = false;
        warnings.push(format!(
            "only {:.0}% of the outline points fit the registered mesh",
            inlier_fraction * 100.0
        ));
    }
    for (v, (_, n)) in views.iter().zip(&per_view) {
        let pts = outline_points(v).len();
        if pts > 0 && (*n as f64) < 0.5 * pts as f64 {
            ok = false;
            warnings.push(format!(
                "view {}: only {n} of {pts} outline points fit the registered mesh",
                v.name
            ));
        }
    }
    let views_out = views
        .iter()
        .zip(&per_view)
        .map(|(v, (sq, n))| ViewResidual {
            name: v.name.clone(),
            rms_px: if *n > 0 { (sq / *n as f64).sqrt() } else { 0.0 },
            inliers: *n,
            points: outline_points(v).len(),
        })
        .collect();
    Registration {
        world_from_mesh: r.pose,
        status: if ok {
            RegistrationStatus::Ok
        } else {
            RegistrationStatus::NotConverged
        },
        views: views_out,
        rms_px,
        inlier_fraction,
        head_center_sd_mm,
        rotation_sd_rad,
        covariance,
        head_center_mm: r.pose * lm.head.center,
        landmarks: lm.clone(),
        iterations: r.iterations,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_composition_is_rigid_about_the_pivot() {
        let pose = Isometry3::new(Vector3::new(1.0, 2.0, 3.0), Vector3::new(0.1, 0.2, -0.1));
        let c = Point3::new(5.0, -2.0, 1.0);
        // A pure rotation step keeps the pivot fixed.
        let s = Vector6::new(0.05, -0.02, 0.03, 0.0, 0.0, 0.0);
        let p2 = apply_step(&pose, &c, &s);
        let x = pose.inverse() * c;
        approx::assert_relative_eq!((p2 * x - c).norm(), 0.0, epsilon = 1e-12);
        // A pure translation step moves every point by it.
        let s = Vector6::new(0.0, 0.0, 0.0, 1.0, -2.0, 0.5);
        let p3 = apply_step(&pose, &c, &s);
        let y = Point3::new(3.0, 3.0, 3.0);
        approx::assert_relative_eq!(
            p3 * y - pose * y,
            Vector3::new(1.0, -2.0, 0.5),
            epsilon = 1e-12
        );
    }

    #[test]
    fn huber_weights_and_cut() {
        assert_eq!(weight(0.5, 1.0, 3.0), 1.0);
        approx::assert_relative_eq!(weight(2.0, 1.0, 3.0), 0.5);
        assert_eq!(weight(3.5, 1.0, 3.0), 0.0);
        assert_eq!(weight(f64::NAN, 1.0, 3.0), 0.0);
    }
}
