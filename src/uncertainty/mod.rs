//! How sure is a plan: Monte Carlo propagation of annotation noise (and,
//! optionally, calibration error) through reconstruction to the safety
//! rules of each planned trajectory.
//!
//! Entry points: [`monte_carlo`] (any set of segments against a case and its
//! model), [`assess_plan`] (fills [`crate::planning::Trajectory::breach_probability`]
//! and [`crate::planning::Trajectory::clearance_p05_mm`], applies the case's
//! `max_breach_probability`), [`UncertaintyOptions`].
//!
//! # Model of the error
//!
//! * **Annotations.** Every annotated coordinate (`u` and `v` of each head
//!   outline, neck edge, shaft edge, lesion outline and entry point) gets
//!   independent Gaussian noise of `sigma` px, `sigma` from
//!   [`UncertaintyOptions::noise_px`] or else the case's
//!   `annotation_noise_px` (default 1 px, the contract's figure).
//! * **Calibration.** By default the projections are taken as exact, as the
//!   contract's safety definition does ("with the calibration it was
//!   given"); a case calibrated from fiducials with a known reprojection
//!   error can state it through [`CalibrationError`]: each view's C-arm pose
//!   is moved by a rigid motion about the model's head centre, a rotation of
//!   `N(0, rotation_sd_rad)` about a uniformly random axis and a
//!   translation of `N(0, translation_sd_mm)` per axis.
//!
//! * **Unmeasured shape.** Two views measure two widths of each neck (and
//!   shaft) section, not its orientation: the ellipses with those two
//!   widths form a one-parameter family, and the reconstruction returns one
//!   member (a semi-axis along the first view's width direction). The true
//!   section is another member, up to about 2 mm wider or narrower in the
//!   diagonal directions; that model error is an order of magnitude larger
//!   than the annotation noise's effect on a clearance (about 0.15 mm SD at
//!   1 px). Each sample therefore redraws its sections from the family,
//!   restricted to the anatomical aspect ratio (semi-axes ratio <=
//!   [`crate::reconstruction::MAX_SECTION_ASPECT`] = 1.4; the neck is oval,
//!   about 1.2-1.26, domain.md §2, Saengnipanthkul 2012): a uniform
//!   quantile of each section's admissible interval of the family
//!   parameter, one quantile per tube and sample (the sections of a neck
//!   turn together), from its own seeded stream.
//!   [`UncertaintyOptions::section_shape_spread`] narrows it (0: the fitted
//!   sections, noise only). Sections measured by three or more views are
//!   fitted by least squares and kept.
//!
//! # First-order propagation
//!
//! Where it is cheap, the noise is propagated to first order instead:
//! [`tip_depth_sd_first_order_mm`] gives the standard deviation of the
//! tip's depth below the head sphere (rule 3's subchondral distance) from
//! the head fit's covariance (`sigma^2 (J^T J)^-1`, `J` the Gauss-Newton
//! Jacobian of the silhouette fit); the plan file carries it as
//! `tip_depth_sd_mm` for views-only models. The Monte Carlo reports the
//! same quantity ([`TrajectoryUncertainty::tip_depth_sd_mm`]); on a phantom
//! they agree within 15 % (`tests/it/uncertainty.rs`).
//!
//! # One sample
//!
//! This is a parametric bootstrap: sample `k` perturbs the case's
//! annotations (and projections), rebuilds the hip with
//! [`crate::reconstruction::reconstruct`] and takes the result as one
//! plausible *true* bone. A plausible true bone is an *estimate*, not a
//! safe bound: the sample drops the reconstruction's deliberately
//! conservative terms, which stand for what the views cannot see and would
//! otherwise be counted twice (once in the plan's model, once in every
//! sample):
//!
//! * the planner's automatic margin: the sample uses
//!   [`UncertaintyOptions::sample_shrink_mm`] (default
//!   [`DEFAULT_SAMPLE_SHRINK_MM`], 0); its noise term is what the sampling
//!   models explicitly;
//! * each tube section's visual-hull pull-in
//!   ([`crate::reconstruction::TubeSection::hull_margin_mm`]): the section
//!   is the ellipse fitted to the widths seen;
//! * the **fill**: the trochanteric cone towards the annotated entry and
//!   the continuations of the neck and shaft to their junction. No view
//!   measures that region; the fill is a body inside the true trochanter,
//!   whose true surface lies outside it by up to about 20 mm. Its surface
//!   is not a position of the true bone's surface, so it never counts as a
//!   wall: only the **measured walls** (head sphere, neck from its first
//!   measured section to the head, shaft over its measured sections) do.
//!
//! Each trajectory is then judged on the sample with the planner's own
//! [`Rules`] (the case's constraints and forbidden spheres, no extra
//! margin), on the analytic parts of the sampled femur (no meshing; the
//! exact rules and their lower-bound distances are in `walls.rs`):
//!
//! * the needle follows the planned *line*: its entry on the sample is where
//!   the line, coming from [`BACKOFF_MM`] outside the planned entry, first
//!   meets the sampled solid (a line that starts inside it: rule 1);
//! * the sample is a **breach** when the trajectory fails any of rules 1-5
//!   there: length; incidence (at an entry through a measured wall only);
//!   forbidden spheres; rule 1, the axis crossing a measured wall after the
//!   entry (crossings of the fill are taken to stay inside the unseen
//!   trochanter); rule 2, the distance from the axis past the entry
//!   allowance to the nearest measured-wall point of the sampled surface
//!   (exact, by ray fans, up to the rule's threshold + 1 mm; a cheap lower
//!   bound prunes the search and is what earlier versions used: it was
//!   about 0.4 mm short under the head-neck junction, see `walls.rs`);
//!   rule 3, the tip's depth.
//!   Rule 6, the tip inside the sampled lesion, is counted apart as a
//!   **miss**;
//! * the clearance is that distance minus the needle radius, walked along
//!   the line every [`UncertaintyOptions::line_step_mm`] and refined around
//!   its minimum.
//!
//! Why: the planner's line often passes within a millimetre or two of the
//! conservative fill before its entry on the model (the model is the fill
//! shrunk by the automatic margin); on a sample without that margin the
//! line clipped the fill (the shaft's proximal continuation) and re-entered
//! through the cone, a "rule 1 breach" of a body that is not the bone's
//! surface: the planned line of phantom 11 had p = 0.975 although it is 5.7
//! mm clear on the true bone. Judged on the measured walls it has p = 0.
//!
//! A sample whose reconstruction fails (perturbed annotations that no
//! longer fit) is left out and counted in [`PlanUncertainty::failed_samples`].
//!
//! **Bone from a CT mesh.** When the case's bone mesh is in the world frame
//! the bone is known: rules 1-5 are decided once on it (the planner already
//! met them, so the breach probability is 0 for its trajectories) and only
//! the lesion (from the views, or Kerboul arcs on the reconstructed head)
//! is uncertain, which shows in the miss probability.
//!
//! # Outputs
//!
//! Per trajectory ([`TrajectoryUncertainty`]): the breach probability `p`
//! (fraction of breach samples) with its Monte Carlo standard error
//! `sqrt(p (1 - p) / n)`; the 5th percentile of the clearance (linear
//! interpolation between order statistics); the miss probability; the
//! standard deviation of the tip's depth below the sampled head sphere. Per
//! plan: [`PlanUncertainty::recommended_margin_mm`], the largest clearance
//! loss `min_clearance_mm - clearance_p05_mm` (>= 0) over the returned
//! trajectories: planning with that much extra margin on the same model
//! makes a trajectory's 5th-percentile clearance meet `cortical_clearance_mm`
//! when its neighbourhood loses clearance as this one does. 0 means the
//! model's own margin already covers the noise.
//!
//! Samples are seeded per index (`ChaCha8Rng` seeded with
//! [`UncertaintyOptions::seed`], stream = sample index) and run in parallel
//! with rayon: the numbers do not depend on the number of threads.

mod shape;
mod walls;

use std::collections::BTreeMap;

use nalgebra::{Matrix4, Point2, Point3, Rotation3, Unit, Vector3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use crate::anatomy::{HeadNeckFrame, HipModel, Lesion};
use crate::case::{Case, LesionSpec, MeshFrame};
use crate::error::{Error, Result};
use crate::geometry::{BoneSurface, Sphere};
use crate::imaging::{Annotations, Projection, View};
use crate::planning::{Entry, Plan, PlanStatus, RejectReason, Rules};
use crate::reconstruction::{reconstruct, HeadFit, ReconstructionOptions};
use walls::SampledFemur;
pub use walls::{measured_wall_depth_mm, measured_wall_distance_mm, MAX_RAY_MM, WALL_TOL_MM};

/// Default number of Monte Carlo samples in a plan: 100, one reconstruction
/// without the femur mesh each (about 12 ms; about 1.3 s of CPU for a
/// plan), with a standard error of at most 0.05 (at p = 0.5) and 0.01 at
/// p = 0.01. Raise it ([`UncertaintyOptions::samples`]) when the plan is
/// close to `max_breach_probability`.
pub const DEFAULT_SAMPLES: usize = 100;

/// Default seed of the sampling.
pub const DEFAULT_SEED: u64 = 0x00a7_0e5e;

/// Default inward offset of a sampled bone surface, mm: 0. The sampled
/// femur stands for the bone itself, not for a safe bound of it: it keeps
/// none of the planner's safety margin nor the sections' visual-hull
/// pull-in (see "One sample" in the module docs and the reliability table
/// in `tests/it/uncertainty.rs`).
pub const DEFAULT_SAMPLE_SHRINK_MM: f64 = 0.0;

/// How far outside the planned entry the needle's line starts, mm, when its
/// entry on a sampled bone is looked for.
pub const BACKOFF_MM: f64 = 15.0;

/// Default step of the walk along a line on a sampled femur, mm: 0.1, a
/// tenth of the planner's mesh step.
pub const DEFAULT_LINE_STEP_MM: f64 = 0.1;

/// Default spread of the unmeasured section shape: 1, the whole family of
/// ellipses consistent with the two measured widths and the anatomical
/// aspect bound (see "Unmeasured shape" in the module docs).
pub const DEFAULT_SECTION_SHAPE_SPREAD: f64 = 1.0;

/// Salt of the seed of the shape draws (their own stream, so that the
/// annotation noise of a sample does not depend on whether shapes are drawn).
const SHAPE_SALT: u64 = 0x5a4e_5a4e_0000_0001;

/// Error model of a view's calibration (one sigma, per view, independent).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CalibrationError {
    /// Rotation of the C-arm pose about the head centre, radians. Default 0.
    pub rotation_sd_rad: f64,
    /// Translation of the C-arm pose per axis, mm. Default 0.
    pub translation_sd_mm: f64,
}

/// Options of the Monte Carlo.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct UncertaintyOptions {
    /// Number of samples; 0 disables the estimate. Default [`DEFAULT_SAMPLES`].
    pub samples: usize,
    /// Seed. Default [`DEFAULT_SEED`].
    pub seed: u64,
    /// Annotation noise per view, px (one sigma per coordinate), in the
    /// case's view order; `None` (default) uses the case's
    /// `annotation_noise_px` for every view.
    pub noise_px: Option<Vec<f64>>,
    /// Calibration error. Default none (the projections are exact).
    pub calibration: CalibrationError,
    /// Inward offset of each sampled bone surface, mm. Default
    /// [`DEFAULT_SAMPLE_SHRINK_MM`].
    pub sample_shrink_mm: f64,
    /// Step of the walk along each line on a sampled femur, mm (crossings
    /// and clearance samples, see "One sample" in the module docs).
    /// Default [`DEFAULT_LINE_STEP_MM`].
    pub line_step_mm: f64,
    /// Spread of the unmeasured shape of two-view tube sections, in [0, 1]:
    /// each sample draws its neck's (and shaft's) sections from this
    /// central fraction of the admissible family of ellipses (see
    /// "Unmeasured shape" in the module docs); 0 keeps the fitted sections
    /// (annotation noise and calibration error only). Default
    /// [`DEFAULT_SECTION_SHAPE_SPREAD`].
    pub section_shape_spread: f64,
    /// Judge rule 2 (clearance) and rule 3 (tip depth) on the cheap lower
    /// bound of the distance to the measured walls
    /// ([`measured_wall_depth_mm`]) instead of the exact distance to the
    /// sampled surface. The bound is loose where two walls meet (the
    /// head-neck junction: up to about 0.5 mm), so it overstates breaches;
    /// kept to compare with the estimate of earlier versions. Default
    /// false.
    pub wall_distance_lower_bound: bool,
}

impl Default for UncertaintyOptions {
    fn default() -> Self {
        Self {
            samples: DEFAULT_SAMPLES,
            seed: DEFAULT_SEED,
            noise_px: None,
            calibration: CalibrationError::default(),
            sample_shrink_mm: DEFAULT_SAMPLE_SHRINK_MM,
            line_step_mm: DEFAULT_LINE_STEP_MM,
            section_shape_spread: DEFAULT_SECTION_SHAPE_SPREAD,
            wall_distance_lower_bound: false,
        }
    }
}

/// One trajectory under the error model.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TrajectoryUncertainty {
    /// Fraction of samples on which a rule 1-5 fails, in [0, 1].
    pub breach_probability: f64,
    /// Monte Carlo standard error of it: `sqrt(p (1 - p) / n)`.
    pub breach_standard_error: f64,
    /// Fraction of samples whose lesion does not contain the tip (rule 6).
    pub miss_probability: f64,
    /// 5th percentile of the clearance (axis-to-surface distance past the
    /// entry allowance minus the needle radius), mm.
    pub clearance_p05_mm: f64,
    /// Mean of the clearance, mm.
    pub clearance_mean_mm: f64,
    /// Standard deviation of the clearance, mm.
    pub clearance_sd_mm: f64,
    /// Standard deviation of the tip's depth below the sampled head
    /// sphere (`radius - |tip - centre|`), mm: the Monte Carlo counterpart
    /// of [`tip_depth_sd_first_order_mm`].
    pub tip_depth_sd_mm: f64,
    /// Breach samples per failed rule.
    pub reasons: BTreeMap<RejectReason, usize>,
    /// Samples used.
    pub samples: usize,
}

/// The Monte Carlo result for a set of trajectories.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PlanUncertainty {
    /// One per trajectory, in the order given.
    pub trajectories: Vec<TrajectoryUncertainty>,
    /// Extra margin that would bring the 5th-percentile clearance to the
    /// requirement (see the module docs), mm, >= 0.
    pub recommended_margin_mm: f64,
    /// Samples drawn.
    pub samples: usize,
    /// Samples whose reconstruction failed (left out).
    pub failed_samples: usize,
    /// Whether the bone was known (CT mesh in the world frame).
    pub bone_known: bool,
}

/// What one sample says about one trajectory.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    breach: Option<RejectReason>,
    miss: bool,
    clearance_mm: f64,
    /// Depth of the tip below the sample's head sphere, mm.
    tip_depth_mm: f64,
}

/// Gaussian perturbation of every annotated coordinate.
fn perturb_annotations(a: &Annotations, sd: f64, rng: &mut ChaCha8Rng) -> Annotations {
    let mut out = a.clone();
    if sd <= 0.0 {
        return out;
    }
    let mut jiggle = |p: &mut Point2<f64>| {
        let du: f64 = StandardNormal.sample(rng);
        let dv: f64 = StandardNormal.sample(rng);
        p.x += sd * du;
        p.y += sd * dv;
    };
    out.head_outline_px.iter_mut().for_each(&mut jiggle);
    for edges in [&mut out.neck_edges_px, &mut out.shaft_edges_px]
        .into_iter()
        .flatten()
    {
        for side in edges.iter_mut() {
            side.iter_mut().for_each(&mut jiggle);
        }
    }
    out.lesion_outline_px.iter_mut().for_each(&mut jiggle);
    if let Some(e) = out.entry_px.as_mut() {
        jiggle(e);
    }
    out
}

/// A rigid motion about `pivot` drawn from the calibration error model, as
/// a 4x4 matrix acting on world points.
fn pose_error(c: &CalibrationError, pivot: &Point3<f64>, rng: &mut ChaCha8Rng) -> Matrix4<f64> {
    let g = |rng: &mut ChaCha8Rng| -> f64 { StandardNormal.sample(rng) };
    let axis = Vector3::new(g(rng), g(rng), g(rng));
    let angle = c.rotation_sd_rad * g(rng);
    let t = Vector3::new(g(rng), g(rng), g(rng)) * c.translation_sd_mm;
    let r = axis
        .try_normalize(1e-12)
        .map(|a| Rotation3::from_axis_angle(&Unit::new_unchecked(a), angle))
        .unwrap_or_else(Rotation3::identity);
    // x -> R (x - c) + c + t
    let shift = pivot.coords - r * pivot.coords + t;
    let mut m = Matrix4::identity();
    m.fixed_view_mut::<3, 3>(0, 0).copy_from(r.matrix());
    m.fixed_view_mut::<3, 1>(0, 3).copy_from(&shift);
    m
}

/// The perturbed views of sample `k`.
fn sample_views(
    case: &Case,
    noise: &[f64],
    cal: &CalibrationError,
    pivot: &Point3<f64>,
    seed: u64,
    k: usize,
) -> Result<Vec<View>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(k as u64);
    let mut views = Vec::with_capacity(case.views.len());
    for (v, &sd) in case.views.iter().zip(noise) {
        let mut w = v.clone();
        w.annotations = perturb_annotations(&v.annotations, sd, &mut rng);
        if cal.rotation_sd_rad > 0.0 || cal.translation_sd_mm > 0.0 {
            let m = pose_error(cal, pivot, &mut rng);
            w.projection = Projection::from_matrix(&(v.projection.matrix() * m))?;
        }
        views.push(w);
    }
    Ok(views)
}

/// Judges one trajectory on a known bone mesh (see the module docs).
fn judge(
    rules: &Rules,
    bone: &BoneSurface,
    lesion: Option<&Lesion>,
    head: &Sphere,
    entry: &Point3<f64>,
    tip: &Point3<f64>,
) -> Outcome {
    let miss = lesion.is_some_and(|l| !l.contains(tip));
    let tip_depth_mm = tip_depth_mm(head, tip);
    let v = tip - entry;
    let len = v.norm();
    let shallow = || Outcome {
        breach: Some(RejectReason::TipTooShallow),
        miss,
        clearance_mm: bone.segment_distance_mm(tip, tip)
            * if bone.contains(tip) { 1.0 } else { -1.0 }
            - rules.needle_radius_mm,
        tip_depth_mm,
    };
    let Some(d) = Unit::try_new(v, 1e-9) else {
        return shallow();
    };
    if !bone.contains(tip) {
        return shallow();
    }
    let origin = entry - d.into_inner() * BACKOFF_MM;
    if bone.contains(&origin) {
        return Outcome {
            breach: Some(RejectReason::LeavesBone),
            miss,
            clearance_mm: rules.min_clearance_mm(bone, &origin, tip),
            tip_depth_mm,
        };
    }
    let Some(hit) = bone.first_hit(&origin, &d, BACKOFF_MM + len) else {
        return shallow();
    };
    let e = Entry {
        point: hit.point,
        normal: hit.normal,
    };
    let clearance_mm = rules.min_clearance_mm(bone, &e.point, tip);
    let breach = if rules.tip_is_deep(bone, tip) {
        rules.check(bone, &e, tip).err()
    } else {
        Some(RejectReason::TipTooShallow)
    };
    Outcome {
        breach,
        miss,
        clearance_mm,
        tip_depth_mm,
    }
}

/// Depth of `tip` below the sphere `head` (`radius - |tip - centre|`), mm.
fn tip_depth_mm(head: &Sphere, tip: &Point3<f64>) -> f64 {
    head.radius_mm - (tip - head.center).norm()
}

/// The lesion of a sample: the case's explicit lesion, Kerboul arcs on the
/// sampled head and frame, or the sampled reconstruction's ellipsoid.
fn sample_lesion(
    case: &Case,
    model: &HipModel,
    r: &crate::reconstruction::Reconstruction,
) -> Option<Lesion> {
    match &case.lesion {
        Some(LesionSpec::Kerboul(k)) => {
            let (n, s) = (r.neck_axis()?, r.shaft_axis()?);
            let frame = HeadNeckFrame::new(
                r.head.sphere.center,
                &n.direction.into_inner(),
                &s.direction.into_inner(),
                case.side,
            )
            .ok()?;
            Lesion::kerboul(r.head.sphere, frame, *k).ok()
        }
        Some(_) => Some(model.lesion.clone()),
        None => r.lesion.as_ref().map(|l| Lesion::Ellipsoid(l.ellipsoid)),
    }
}

/// First-order standard deviation of the depth of `tip` below the fitted
/// head sphere (`radius - |tip - centre|`), mm, from the head fit's
/// covariance ([`HeadFit::sphere_covariance_mm2`], the Gauss-Newton
/// Jacobian of the silhouette fit scaled by the annotation noise): with
/// `n = (tip - centre) / |tip - centre|`, the gradient of the depth in
/// `(centre, radius)` is `(n, 1)` and the variance `g^T C g`. This is the
/// uncertainty of the subchondral distance (rule 3) the head carries; it
/// is cheap (no sampling) and matches the Monte Carlo's
/// [`TrajectoryUncertainty::tip_depth_sd_mm`] at `section_shape_spread`
/// any value (the head is a sphere: its shape is measured) within the
/// sampling error (see `tests/it/uncertainty.rs`). A tip at the centre
/// (no gradient of the distance) gets the radius's standard deviation.
///
/// # Example
/// ```
/// use avnplan::imaging::CArm;
/// use avnplan::geometry::Ellipsoid;
/// use avnplan::reconstruction::{ellipsoid_outline_px, fit_head};
/// use avnplan::uncertainty::tip_depth_sd_first_order_mm;
/// use nalgebra::Point3;
/// let carm = |primary_deg: f64| CArm {
///     sid_mm: 1000.0, sod_mm: 650.0, primary_angle_rad: primary_deg.to_radians(),
///     secondary_angle_rad: 0.0, pixel_spacing_mm: [0.3, 0.3],
///     isocenter_mm: Point3::origin(), principal_point_px: None, image_size_px: [1024, 1024],
/// }.projection().unwrap();
/// let head = Ellipsoid::sphere(Point3::new(0.0, 0.0, 0.0), 24.0)?;
/// let views: Vec<_> = [0.0, 90.0].iter().map(|&a| {
///     let p = carm(a);
///     (p, ellipsoid_outline_px(&p, &head, 40).unwrap())
/// }).collect();
/// let fit = fit_head(&views, 1.0)?;
/// let at_centre = tip_depth_sd_first_order_mm(&fit, &Point3::origin());
/// approx::assert_relative_eq!(at_centre, fit.radius_sd_mm, epsilon = 1e-12);
/// // Off centre the centre's uncertainty adds (about 0.1 mm at 1 px here).
/// let off = tip_depth_sd_first_order_mm(&fit, &Point3::new(0.0, 0.0, 18.0));
/// assert!(off > 0.0 && off < 0.5);
/// # Ok::<(), avnplan::Error>(())
/// ```
#[must_use]
pub fn tip_depth_sd_first_order_mm(head: &HeadFit, tip: &Point3<f64>) -> f64 {
    let c = head.sphere.center;
    let n = (tip - c).try_normalize(1e-9).unwrap_or_else(Vector3::zeros);
    let g = nalgebra::Vector4::new(n.x, n.y, n.z, 1.0);
    (g.transpose() * head.sphere_covariance_mm2 * g)[(0, 0)]
        .max(0.0)
        .sqrt()
}

/// Redraws the unmeasured shape of the sampled femur's two-view tube
/// sections (see "Unmeasured shape" in the module docs): one uniform
/// quantile per tube in the central `spread` of the admissible family,
/// from the sample's own stream.
fn redraw_shapes(
    femur: &mut crate::reconstruction::ReconstructedFemur,
    views: &[View],
    spread: f64,
    seed: u64,
    k: usize,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ SHAPE_SALT);
    rng.set_stream(k as u64);
    let sources = |neck: bool| -> Vec<Point3<f64>> {
        views
            .iter()
            .filter(|v| {
                if neck {
                    v.annotations.neck_edges_px.is_some()
                } else {
                    v.annotations.shaft_edges_px.is_some()
                }
            })
            .map(|v| v.projection.source_mm())
            .collect()
    };
    let mut quantile = || 0.5 + spread * (rng.random::<f64>() - 0.5);
    let (qn, qs) = (quantile(), quantile());
    shape::redraw_tube(&mut femur.neck, &sources(true), qn);
    shape::redraw_tube(&mut femur.shaft, &sources(false), qs);
}

/// Linear-interpolated quantile `q` of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let x = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let i = x.floor() as usize;
    let j = (i + 1).min(sorted.len() - 1);
    let f = x - i as f64;
    sorted[i] * (1.0 - f) + sorted[j] * f
}

/// Monte Carlo of the trajectories `segments` (entry, tip; world mm) of a
/// plan made on `model` for `case` (see the module docs). `recon` gives the
/// reconstruction options the model was built with (the shrink, mesh and
/// build flags are set here).
///
/// # Errors
/// [`Error::Invalid`] for `samples` = 0, a noise list of the wrong length, a
/// negative or non-finite sigma, step or shrink; [`Error::TooFew`] when every
/// sample's reconstruction failed.
///
/// # Example
/// ```no_run
/// use avnplan::phantom::{Phantom, PhantomOptions};
/// use avnplan::pipeline::{plan_case, PipelineOptions};
/// use avnplan::uncertainty::{monte_carlo, UncertaintyOptions};
/// let mut o = PhantomOptions::default();
/// o.with_mesh = false;
/// o.noise_px = 1.0;
/// let ph = Phantom::generate(1, &o)?;
/// let (built, plan) = plan_case(&ph.case, &PipelineOptions::default())?;
/// let segs: Vec<_> = plan.trajectories.iter().map(|t| (t.entry_mm, t.tip_mm)).collect();
/// let mut opts = UncertaintyOptions::default();
/// opts.samples = 50;
/// let u = monte_carlo(&ph.case, &built.model, &segs, &Default::default(), &opts)?;
/// let p = u.trajectories[0].breach_probability;
/// assert!((0.0..=1.0).contains(&p));
/// # Ok::<(), avnplan::Error>(())
/// ```
pub fn monte_carlo(
    case: &Case,
    model: &HipModel,
    segments: &[(Point3<f64>, Point3<f64>)],
    recon: &ReconstructionOptions,
    opts: &UncertaintyOptions,
) -> Result<PlanUncertainty> {
    if opts.samples == 0 {
        return Err(Error::invalid("samples", "must be >= 1"));
    }
    let noise: Vec<f64> = match &opts.noise_px {
        Some(v) if v.len() != case.views.len() => {
            return Err(Error::invalid(
                "noise_px",
                format!("{} values for {} views", v.len(), case.views.len()),
            ))
        }
        Some(v) => v.clone(),
        None => vec![case.annotation_noise_px; case.views.len()],
    };
    if noise.iter().any(|s| !(s.is_finite() && *s >= 0.0)) {
        return Err(Error::invalid("noise_px", "must be finite and >= 0"));
    }
    let cal = opts.calibration;
    if !(cal.rotation_sd_rad.is_finite()
        && cal.rotation_sd_rad >= 0.0
        && cal.translation_sd_mm.is_finite()
        && cal.translation_sd_mm >= 0.0)
    {
        return Err(Error::invalid(
            "calibration",
            "sigmas must be finite and >= 0",
        ));
    }
    if !(opts.sample_shrink_mm.is_finite() && opts.sample_shrink_mm >= 0.0) {
        return Err(Error::invalid(
            "sample_shrink_mm",
            "must be finite and >= 0",
        ));
    }
    if !(opts.line_step_mm.is_finite() && (0.01..=1.0).contains(&opts.line_step_mm)) {
        return Err(Error::invalid("line_step_mm", "must be in [0.01, 1] mm"));
    }
    let spread = opts.section_shape_spread;
    if !(spread.is_finite() && (0.0..=1.0).contains(&spread)) {
        return Err(Error::invalid("section_shape_spread", "must be in [0, 1]"));
    }
    let c = &case.constraints;
    let rules = Rules::new(c, &case.forbidden_zones, 0.0);
    let bone_known = matches!(case.bone_mesh, Some((_, MeshFrame::World)));
    let lesion_uncertain = !matches!(
        case.lesion,
        Some(LesionSpec::Ellipsoid(_)) | Some(LesionSpec::Mesh(..))
    );
    let need_recon = !bone_known || lesion_uncertain;
    let n = if need_recon { opts.samples } else { 1 };
    let ropts = ReconstructionOptions {
        shrink_mm: Some(opts.sample_shrink_mm),
        build_mesh: false,
        noise_px: noise.iter().copied().fold(0.0, f64::max),
        ..*recon
    };
    let pivot = model.head.center;
    let per_sample: Vec<Option<Vec<Outcome>>> = (0..n)
        .into_par_iter()
        .map(|k| -> Option<Vec<Outcome>> {
            if !need_recon {
                let lesion = Some(model.lesion.clone());
                return Some(
                    segments
                        .iter()
                        .map(|(e, t)| {
                            judge(&rules, &model.bone, lesion.as_ref(), &model.head, e, t)
                        })
                        .collect(),
                );
            }
            let views = sample_views(case, &noise, &cal, &pivot, opts.seed, k).ok()?;
            let r = reconstruct(&views, &ropts).ok()?;
            let lesion = sample_lesion(case, model, &r);
            let miss = |t: &Point3<f64>| lesion.as_ref().is_some_and(|l| !l.contains(t));
            if bone_known {
                return Some(
                    segments
                        .iter()
                        .map(|(e, t)| {
                            judge(&rules, &model.bone, lesion.as_ref(), &r.head.sphere, e, t)
                        })
                        .collect(),
                );
            }
            let mut sampled = r.femur.clone()?;
            if spread > 0.0 {
                redraw_shapes(&mut sampled, &views, spread, opts.seed, k);
            }
            let femur = SampledFemur::new(&sampled)?;
            Some(
                segments
                    .iter()
                    .map(|(e, t)| {
                        let v = femur.judge(
                            &rules,
                            e,
                            t,
                            opts.line_step_mm,
                            !opts.wall_distance_lower_bound,
                        );
                        Outcome {
                            breach: v.breach,
                            miss: miss(t),
                            clearance_mm: v.clearance_mm,
                            tip_depth_mm: tip_depth_mm(&r.head.sphere, t),
                        }
                    })
                    .collect(),
            )
        })
        .collect();
    let ok: Vec<&Vec<Outcome>> = per_sample.iter().flatten().collect();
    let failed = n - ok.len();
    if ok.is_empty() {
        return Err(Error::TooFew {
            what: "Monte Carlo samples with a successful reconstruction".into(),
            required: 1,
            actual: 0,
        });
    }
    let m = ok.len() as f64;
    let trajectories: Vec<TrajectoryUncertainty> = (0..segments.len())
        .map(|i| {
            let mut reasons = BTreeMap::new();
            let mut breaches = 0usize;
            let mut misses = 0usize;
            let mut cl: Vec<f64> = Vec::with_capacity(ok.len());
            let (mut dsum, mut dsq) = (0.0, 0.0);
            for s in &ok {
                let o = s[i];
                dsum += o.tip_depth_mm;
                dsq += o.tip_depth_mm * o.tip_depth_mm;
                if let Some(r) = o.breach {
                    breaches += 1;
                    *reasons.entry(r).or_insert(0) += 1;
                }
                misses += usize::from(o.miss);
                cl.push(o.clearance_mm);
            }
            cl.sort_by(f64::total_cmp);
            let p = breaches as f64 / m;
            let mean = cl.iter().sum::<f64>() / m;
            let var = cl.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (m - 1.0).max(1.0);
            let dmean = dsum / m;
            let dvar = ((dsq - m * dmean * dmean) / (m - 1.0).max(1.0)).max(0.0);
            TrajectoryUncertainty {
                breach_probability: p,
                breach_standard_error: (p * (1.0 - p) / m).sqrt(),
                miss_probability: misses as f64 / m,
                clearance_p05_mm: quantile(&cl, 0.05),
                clearance_mean_mm: mean,
                clearance_sd_mm: var.sqrt(),
                tip_depth_sd_mm: dvar.sqrt(),
                reasons,
                samples: ok.len(),
            }
        })
        .collect();
    let recommended_margin_mm = segments
        .iter()
        .zip(&trajectories)
        .map(|((e, t), u)| {
            let model_c = rules.min_clearance_mm(&model.bone, e, t);
            (model_c - u.clearance_p05_mm).max(0.0)
        })
        .fold(0.0, f64::max);
    Ok(PlanUncertainty {
        trajectories,
        recommended_margin_mm,
        samples: n,
        failed_samples: failed,
        bone_known,
    })
}

/// Estimates the breach probability of a plan's trajectories (and, when the
/// case sets `max_breach_probability`, of its alternatives) and applies that
/// constraint:
///
/// * every returned trajectory gets
///   [`crate::planning::Trajectory::breach_probability`] and
///   [`crate::planning::Trajectory::clearance_p05_mm`], and the plan
///   [`Plan::recommended_margin_mm`];
/// * with `max_breach_probability = q`, a trajectory or alternative whose
///   probability is above `q` is rejected (counted under
///   [`RejectReason::BreachProbability`]); a rejected trajectory is replaced
///   by the best remaining alternative (one pass), or dropped from a fan
///   (several passes, coverage recomputed); with nothing left the plan is
///   `no_safe_trajectory`. No other rule is relaxed; alternatives were safe on
///   the model under every rule already.
///
/// Does nothing when `opts.samples` is 0 or the plan found nothing.
/// Returns the estimate for the returned trajectories.
///
/// # Errors
/// As [`monte_carlo`].
pub fn assess_plan(
    case: &Case,
    model: &HipModel,
    plan: &mut Plan,
    recon: &ReconstructionOptions,
    opts: &UncertaintyOptions,
) -> Result<Option<PlanUncertainty>> {
    let limit = case.constraints.max_breach_probability;
    if opts.samples == 0 && limit.is_some() {
        // Never a silently skipped constraint.
        return Err(crate::Error::invalid(
            "constraints.max_breach_probability",
            "needs the Monte Carlo estimate, but it is disabled (samples = 0)",
        ));
    }
    if opts.samples == 0 || plan.status != PlanStatus::Ok || plan.trajectories.is_empty() {
        return Ok(None);
    }
    let n_main = plan.trajectories.len();
    let mut segs: Vec<(Point3<f64>, Point3<f64>)> = plan
        .trajectories
        .iter()
        .map(|t| (t.entry_mm, t.tip_mm))
        .collect();
    if limit.is_some() {
        segs.extend(plan.alternatives.iter().map(|t| (t.entry_mm, t.tip_mm)));
    }
    let mut u = monte_carlo(case, model, &segs, recon, opts)?;
    if u.failed_samples * 20 > u.samples {
        plan.warnings.push(format!(
            "uncertainty: {} of {} Monte Carlo reconstructions failed and were left out",
            u.failed_samples, u.samples
        ));
    }
    let set = |t: &mut crate::planning::Trajectory, tu: &TrajectoryUncertainty| {
        t.breach_probability = Some(tu.breach_probability.clamp(0.0, 1.0));
        t.clearance_p05_mm = tu
            .clearance_p05_mm
            .is_finite()
            .then_some(tu.clearance_p05_mm);
    };
    for (t, tu) in plan.trajectories.iter_mut().zip(&u.trajectories) {
        set(t, tu);
    }
    if limit.is_some() {
        for (t, tu) in plan.alternatives.iter_mut().zip(&u.trajectories[n_main..]) {
            set(t, tu);
        }
    }
    if let Some(q) = limit {
        let too_likely =
            |t: &crate::planning::Trajectory| t.breach_probability.is_some_and(|p| p > q);
        let before = plan.trajectories.len() + plan.alternatives.len();
        let kept_main: Vec<usize> = (0..n_main)
            .filter(|&i| !too_likely(&plan.trajectories[i]))
            .collect();
        let alt_ok: Vec<usize> = (0..plan.alternatives.len())
            .filter(|&i| !too_likely(&plan.alternatives[i]))
            .collect();
        let mut main: Vec<crate::planning::Trajectory> = kept_main
            .iter()
            .map(|&i| plan.trajectories[i].clone())
            .collect();
        let mut main_u: Vec<TrajectoryUncertainty> = kept_main
            .iter()
            .map(|&i| u.trajectories[i].clone())
            .collect();
        let mut alts: Vec<crate::planning::Trajectory> = alt_ok
            .iter()
            .map(|&i| plan.alternatives[i].clone())
            .collect();
        let mut alts_u: Vec<TrajectoryUncertainty> = alt_ok
            .iter()
            .map(|&i| u.trajectories[n_main + i].clone())
            .collect();
        if main.is_empty() && !alts.is_empty() {
            main.push(alts.remove(0));
            main_u.push(alts_u.remove(0));
            plan.warnings.push(format!(
                "the planner's best trajectory has a breach probability above {q}: the best alternative below it is returned"
            ));
        } else if main.len() < n_main {
            plan.warnings.push(format!(
                "{} of {n_main} passes have a breach probability above {q} and were dropped",
                n_main - main.len()
            ));
        }
        let rejected = before - main.len() - alts.len();
        if rejected > 0 {
            *plan
                .reasons
                .entry(RejectReason::BreachProbability)
                .or_default() += rejected as u64;
        }
        if main.is_empty() {
            plan.status = PlanStatus::NoSafeTrajectory;
            plan.trajectories.clear();
            plan.alternatives.clear();
            plan.coverage = 0.0;
            plan.recommended_margin_mm = None;
            u.trajectories.clear();
            return Ok(Some(u));
        }
        if main.len() != n_main || rejected > 0 {
            let passes: Vec<(Point3<f64>, Point3<f64>)> =
                main.iter().map(|t| (t.entry_mm, t.tip_mm)).collect();
            plan.coverage = crate::planning::coverage::coverage(
                &model.lesion,
                &passes,
                case.constraints.coverage_radius_mm,
            );
        }
        plan.trajectories = main;
        plan.alternatives = alts;
        u.trajectories = main_u;
    }
    u.recommended_margin_mm = plan
        .trajectories
        .iter()
        .zip(&u.trajectories)
        .map(|(t, tu)| (t.min_clearance_mm - tu.clearance_p05_mm).max(0.0))
        .filter(|x| x.is_finite())
        .fold(0.0, f64::max);
    plan.recommended_margin_mm = Some(u.recommended_margin_mm);
    Ok(Some(u))
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn quantile_interpolates_order_statistics() {
        let v: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_relative_eq!(quantile(&v, 0.05), 5.0, epsilon = 1e-12);
        assert_relative_eq!(quantile(&v, 0.5), 50.0, epsilon = 1e-12);
        assert_relative_eq!(quantile(&[1.0, 3.0], 0.25), 1.5, epsilon = 1e-12);
        assert!(quantile(&[], 0.05).is_nan());
    }

    #[test]
    fn zero_noise_keeps_annotations_and_noise_has_its_sigma() {
        let a = Annotations {
            head_outline_px: (0..2000).map(|i| Point2::new(f64::from(i), 0.0)).collect(),
            entry_px: Some(Point2::new(5.0, 6.0)),
            ..Annotations::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(perturb_annotations(&a, 0.0, &mut rng), a);
        let b = perturb_annotations(&a, 1.5, &mut rng);
        let d: Vec<f64> = a
            .head_outline_px
            .iter()
            .zip(&b.head_outline_px)
            .flat_map(|(p, q)| [q.x - p.x, q.y - p.y])
            .collect();
        let sd = (d.iter().map(|x| x * x).sum::<f64>() / d.len() as f64).sqrt();
        // 4000 draws: the sample sd is within 5% of 1.5 (about 4.5 sigma).
        assert_relative_eq!(sd, 1.5, max_relative = 0.05);
        assert_ne!(b.entry_px, a.entry_px);
    }

    #[test]
    fn pose_error_is_rigid_and_fixes_the_pivot_without_translation() {
        let c = CalibrationError {
            rotation_sd_rad: 0.05,
            translation_sd_mm: 0.0,
        };
        let pivot = Point3::new(10.0, -20.0, 30.0);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let m = pose_error(&c, &pivot, &mut rng);
        let r = m.fixed_view::<3, 3>(0, 0).into_owned();
        assert_relative_eq!(
            r.transpose() * r,
            nalgebra::Matrix3::identity(),
            epsilon = 1e-12
        );
        let p = m * pivot.to_homogeneous();
        assert_relative_eq!(Point3::from_homogeneous(p).unwrap(), pivot, epsilon = 1e-9);
        let none = pose_error(&CalibrationError::default(), &pivot, &mut rng);
        assert_relative_eq!(none, Matrix4::identity(), epsilon = 1e-15);
    }

    #[test]
    fn sampled_views_depend_on_seed_and_index_only() {
        let carm = crate::imaging::CArm {
            sid_mm: 1000.0,
            sod_mm: 650.0,
            primary_angle_rad: 0.0,
            secondary_angle_rad: 0.0,
            pixel_spacing_mm: [0.3, 0.3],
            isocenter_mm: Point3::origin(),
            principal_point_px: None,
            image_size_px: [512, 512],
        };
        let mut v = View::new("AP", [512, 512], carm.projection().unwrap());
        v.annotations.head_outline_px = vec![Point2::new(100.0, 100.0); 8];
        let case = Case::new(crate::Side::Left, vec![v.clone(), v]);
        let cal = CalibrationError {
            rotation_sd_rad: 0.01,
            translation_sd_mm: 0.5,
        };
        let o = Point3::origin();
        let a = sample_views(&case, &[1.0, 1.0], &cal, &o, 9, 4).unwrap();
        let b = sample_views(&case, &[1.0, 1.0], &cal, &o, 9, 4).unwrap();
        let c = sample_views(&case, &[1.0, 1.0], &cal, &o, 9, 5).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a[0].projection, case.views[0].projection);
    }
}
