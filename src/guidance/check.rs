//! A needle seen in two or more views, against the plan: where it is, where
//! it aims, whether it breached, how far it may go, and what to do, in the
//! words of the views the surgeon looks at.
//!
//! # Geometry
//!
//! The needle's tip `t` and direction `d` come from
//! [`crate::reconstruction::reconstruct_needle`]; its safety state from
//! [`needle_state`]. Against planned trajectory `k` (entry `e_k`, tip `p_k`):
//!
//! * `trajectory_index`: the planned trajectory whose tip lies closest to
//!   the needle's line ahead of its tip (the aim miss below; ties: lower
//!   index), i.e. the one the needle is heading for;
//! * `tip_to_target_mm = |t - p_k|`; `angle_error = angle(d, p_k - e_k)`;
//!   `entry_offset_mm = |entry - e_k|` (none without an entry);
//! * aim point `q = t + ((p_k - t) . d) d`, the point of the needle's line
//!   nearest the planned tip; aim miss `|p_k - q|`; depth to target
//!   `(p_k - t) . d` (negative once past it).
//!
//! # Advice in the views
//!
//! In a view whose ray through the target has unit direction `n`, the image
//! of the needle is a line and the direction perpendicular to it in the
//! image is, in the world, `w = n x d / |n x d|` (it lies in the image plane
//! and is perpendicular to the needle). The view shows:
//!
//! * the miss `(p_k - q) . w` mm (magnification-corrected: measured at the
//!   target), named by the patient direction closest to `w`;
//! * the redirection about the entry that aims the needle at the target,
//!   as seen in that view: `atan2(g . w, g . d)` with
//!   `g = (p_k - entry) / |p_k - entry|`, named the same way.
//!
//! Patient directions are the world's LPS axes: `+z` cranial, `-z` caudal,
//! `-y` anterior, `+y` posterior, and medial towards the midline (`+x` for a
//! right femur, `-x` for a left one).

use nalgebra::{Point3, Unit, Vector3};

use super::state::{needle_state, NeedleState};
use crate::case::{Constraints, Side};
use crate::error::{Error, Result};
use crate::geometry::{BoneSurface, Sphere};
use crate::planning::RejectReason;
use crate::reconstruction::{reconstruct_needle, NeedleImage};

/// Aim misses below this, mm, and angle errors below
/// [`ON_LINE_ANGLE_DEG`] count as "on the planned line" in the advice.
pub const ON_LINE_MISS_MM: f64 = 1.0;
/// See [`ON_LINE_MISS_MM`], degrees.
pub const ON_LINE_ANGLE_DEG: f64 = 1.5;

/// A planned trajectory to compare with, world mm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedPath {
    /// Planned entry on the outer surface.
    pub entry_mm: Point3<f64>,
    /// Planned tip.
    pub tip_mm: Point3<f64>,
}

/// The needle in one named view.
#[derive(Debug, Clone, PartialEq)]
pub struct NeedleObservation {
    /// The view's name (used in the advice).
    pub view_name: String,
    /// The needle's image and the view's projection.
    pub image: NeedleImage,
}

/// What is needed besides the needle: the bone, the side, the rules.
#[derive(Debug, Clone, Copy)]
pub struct CheckContext<'a> {
    /// The outer bone surface the rules are checked against.
    pub bone: &'a BoneSurface,
    /// Which femur (names medial and lateral).
    pub side: Side,
    /// The safety constraints.
    pub constraints: &'a Constraints,
    /// Forbidden spheres (their own radii).
    pub forbidden: &'a [Sphere],
}

/// The check seen in one view.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ViewAdvice {
    /// The view's name.
    pub view_name: String,
    /// How far the needle's line passes from the planned tip in this view,
    /// mm at the target (>= 0).
    pub miss_mm: f64,
    /// Patient direction in which the needle's line passes the planned tip
    /// in this view, e.g. `"caudal"` or `"caudal-anterior"`.
    pub aims_direction: String,
    /// Patient direction of the redirection (opposite of
    /// `aims_direction`): from the needle's line towards the planned tip.
    pub redirect_direction: String,
    /// Redirection about the entry that aims at the target, as seen in this
    /// view, radians (>= 0), towards `redirect_direction`.
    pub redirect_rad: f64,
}

/// The result of a needle check (contract `avnplan.check/1` plus detail).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NeedleCheck {
    /// The reconstructed tip, world mm.
    pub tip_mm: Point3<f64>,
    /// Unit direction from the entry towards the tip.
    pub direction: Unit<Vector3<f64>>,
    /// RMS distance of the clicked points from the reprojected needle, px.
    pub rms_px: f64,
    /// The safety state on the current line (entry, clearance, breach,
    /// advance).
    pub state: NeedleState,
    /// The planned trajectory compared with (0-based).
    pub trajectory_index: usize,
    /// Distance from the tip to the planned tip, mm.
    pub tip_to_target_mm: f64,
    /// Angle between the needle and the planned trajectory, radians.
    pub angle_error_rad: f64,
    /// Distance from the needle's entry to the planned entry, mm.
    pub entry_offset_mm: Option<f64>,
    /// Distance from the planned tip to the needle's line, mm.
    pub aim_miss_mm: f64,
    /// How far the planned tip lies ahead of the tip along the needle, mm
    /// (negative once past it).
    pub depth_to_target_mm: f64,
    /// One entry per observed view, in input order.
    pub views: Vec<ViewAdvice>,
    /// The advice in words.
    pub advice: String,
}

/// Name of the patient direction closest to world direction `w` (LPS),
/// with a second term when that one is also substantial (> 0.5).
fn patient_direction(w: &Vector3<f64>, side: Side) -> String {
    let medial_x = match side {
        Side::Right => 1.0,
        Side::Left => -1.0,
    };
    let terms = [
        (w.z, "cranial", "caudal"),
        (w.x * medial_x, "medial", "lateral"),
        (-w.y, "anterior", "posterior"),
    ];
    let mut idx = [0usize, 1, 2];
    idx.sort_by(|&a, &b| terms[b].0.abs().total_cmp(&terms[a].0.abs()));
    let name = |k: usize| {
        let (v, pos, neg) = terms[k];
        if v >= 0.0 {
            pos
        } else {
            neg
        }
    };
    let n = w.norm().max(1e-300);
    if terms[idx[1]].0.abs() / n > 0.5 {
        format!("{}-{}", name(idx[0]), name(idx[1]))
    } else {
        name(idx[0]).to_string()
    }
}

/// What a broken rule means, in words.
fn broken_words(r: RejectReason, s: &NeedleState, c: &Constraints) -> String {
    match r {
        RejectReason::TooLong => format!(
            "the needle is {:.1} mm into the bone, beyond max_length {:.0} mm",
            s.inserted_mm, c.max_length_mm
        ),
        RejectReason::LeavesBone => {
            if s.entry_mm.is_none() {
                "the needle's line does not enter the bone".into()
            } else if s.tip_depth_mm < 0.0 {
                format!("the tip is {:.1} mm outside the bone", -s.tip_depth_mm)
            } else {
                "the axis leaves the bone between the entry and the tip".into()
            }
        }
        RejectReason::CorticalClearance => format!(
            "the axis comes within {:.1} mm of the outer cortex (needs {:.1} mm: radius {:.1} + clearance {:.1})",
            s.min_clearance_mm + c.needle_radius_mm(),
            c.needle_radius_mm() + c.cortical_clearance_mm,
            c.needle_radius_mm(),
            c.cortical_clearance_mm
        ),
        RejectReason::TipTooShallow => format!(
            "the tip is {:.1} mm from the bone surface, closer than the {:.1} mm subchondral margin",
            s.tip_depth_mm.max(0.0),
            c.subchondral_margin_mm
        ),
        RejectReason::ForbiddenZone => "the axis comes too close to a forbidden zone".into(),
        other => other.as_str().replace('_', " "),
    }
}

/// What ends the safe advance, in words.
fn limit_words(r: RejectReason, c: &Constraints) -> String {
    match r {
        RejectReason::TooLong => format!("max_length {:.0} mm", c.max_length_mm),
        RejectReason::LeavesBone => "the axis would leave the bone".into(),
        RejectReason::CorticalClearance => format!(
            "the axis would come within {:.1} mm of the cortex",
            c.needle_radius_mm() + c.cortical_clearance_mm
        ),
        RejectReason::TipTooShallow => format!(
            "the tip would come within the {:.1} mm subchondral margin",
            c.subchondral_margin_mm
        ),
        RejectReason::ForbiddenZone => "a forbidden zone".into(),
        other => other.as_str().replace('_', " "),
    }
}

/// Checks a needle seen in two or more views against the planned
/// trajectories (module docs).
///
/// # Units
/// World mm; angles in radians.
///
/// # Errors
/// * [`Error::TooFew`] for an empty `planned`;
/// * as [`reconstruct_needle`] (fewer than 2 views, degenerate geometry).
///
/// # Example
/// ```
/// use avnplan::geometry::{BoneSurface, TriMesh};
/// use avnplan::guidance::{check_needle, CheckContext, NeedleObservation, PlannedPath};
/// use avnplan::imaging::CArm;
/// use avnplan::reconstruction::NeedleImage;
/// use avnplan::{Constraints, Side};
/// use nalgebra::{Point3, Vector3};
/// // A 60 mm bone cube centred at the origin; the plan runs up and medial.
/// let v: Vec<Point3<f64>> = (0..8)
///     .map(|i| Point3::new((i & 1) as f64, ((i >> 1) & 1) as f64, ((i >> 2) & 1) as f64) * 60.0
///         - Vector3::repeat(30.0))
///     .collect();
/// let t = vec![[0, 2, 1], [1, 2, 3], [4, 5, 6], [5, 7, 6], [0, 1, 4], [1, 5, 4],
///              [2, 6, 3], [3, 6, 7], [0, 4, 2], [2, 4, 6], [1, 3, 5], [3, 7, 5]];
/// let bone = BoneSurface::new(TriMesh::new(v, t)?)?;
/// let (e, p) = (Point3::new(-30.0, 0.0, -10.0), Point3::new(15.0, 0.0, 12.0));
/// let plan = [PlannedPath { entry_mm: e, tip_mm: p }];
/// // The needle: on the planned line, 25 mm in, seen in AP and lateral.
/// let d = (p - e).normalize();
/// let tip = e + d * 25.0;
/// let views: Vec<NeedleObservation> = [("AP", 0.0), ("LAT", 90.0)].iter().map(|&(n, a): &(&str, f64)| {
///     let pr = CArm { sid_mm: 1000.0, sod_mm: 650.0, primary_angle_rad: a.to_radians(),
///         secondary_angle_rad: 0.0, pixel_spacing_mm: [0.3, 0.3], isocenter_mm: Point3::origin(),
///         principal_point_px: None, image_size_px: [1024, 1024] }.projection().unwrap();
///     let back = [tip - d * 30.0, tip - d * 60.0];
///     NeedleObservation { view_name: n.into(), image: NeedleImage {
///         projection: pr, tip_px: pr.project(&tip).unwrap(),
///         shaft_px: back.iter().map(|b| pr.project(b).unwrap()).collect() } }
/// }).collect();
/// let c = Constraints::default();
/// let ctx = CheckContext { bone: &bone, side: Side::Right, constraints: &c, forbidden: &[] };
/// let chk = check_needle(&ctx, &plan, &views)?;
/// approx::assert_relative_eq!(chk.tip_to_target_mm, (p - e).norm() - 25.0, epsilon = 1e-6);
/// approx::assert_relative_eq!(chk.angle_error_rad, 0.0, epsilon = 1e-6);
/// approx::assert_relative_eq!(chk.entry_offset_mm.unwrap(), 0.0, epsilon = 1e-6);
/// assert!(!chk.state.breach);
/// // The tip may go on until it is 5 mm from the face x = 30.
/// approx::assert_relative_eq!(chk.state.advance_safe_mm, (25.0 - tip.x) / d.x, epsilon = 1e-2);
/// # Ok::<(), avnplan::Error>(())
/// ```
pub fn check_needle(
    ctx: &CheckContext<'_>,
    planned: &[PlannedPath],
    seen: &[NeedleObservation],
) -> Result<NeedleCheck> {
    if planned.is_empty() {
        return Err(Error::too_few("planned trajectories", 1, 0));
    }
    let images: Vec<NeedleImage> = seen.iter().map(|o| o.image.clone()).collect();
    let n3 = reconstruct_needle(&images)?;
    let t = n3.tip_mm;
    let d = n3.direction.into_inner();
    let state = needle_state(ctx.bone, ctx.constraints, ctx.forbidden, &t, &n3.direction);
    let miss_to = |p: &Point3<f64>| {
        let q = t + d * (p - t).dot(&d);
        (p - q).norm()
    };
    let (k, _) = planned
        .iter()
        .enumerate()
        .map(|(k, pp)| (k, miss_to(&pp.tip_mm)))
        .fold(
            (0usize, f64::INFINITY),
            |best, x| {
                if x.1 < best.1 {
                    x
                } else {
                    best
                }
            },
        );
    let target = planned[k];
    let p = target.tip_mm;
    let plan_dir = (target.tip_mm - target.entry_mm).normalize();
    let angle = d.dot(&plan_dir).clamp(-1.0, 1.0).acos();
    let depth = (p - t).dot(&d);
    let q = t + d * depth;
    let aim_miss = (p - q).norm();
    let pivot = state.entry_mm.unwrap_or(t);
    let g = (p - pivot).try_normalize(1e-9).unwrap_or(d);
    let mut views = Vec::with_capacity(seen.len());
    for o in seen {
        let proj = &o.image.projection;
        let n = (p - proj.source_mm()).normalize();
        let Some(w) = n.cross(&d).try_normalize(1e-9) else {
            continue;
        };
        let miss = (p - q).dot(&w);
        let w = if miss < 0.0 { -w } else { w };
        let redirect = g.dot(&w).atan2(g.dot(&d));
        views.push(ViewAdvice {
            view_name: o.view_name.clone(),
            miss_mm: miss.abs(),
            aims_direction: patient_direction(&-w, ctx.side),
            redirect_direction: patient_direction(&w, ctx.side),
            redirect_rad: redirect.max(0.0),
        });
    }
    let check = NeedleCheck {
        tip_mm: t,
        direction: n3.direction,
        rms_px: n3.rms_px,
        entry_offset_mm: state.entry_mm.map(|e| (e - target.entry_mm).norm()),
        state,
        trajectory_index: k,
        tip_to_target_mm: (t - p).norm(),
        angle_error_rad: angle,
        aim_miss_mm: aim_miss,
        depth_to_target_mm: depth,
        views,
        advice: String::new(),
    };
    let advice = advice_text(&check, ctx.constraints, planned.len());
    Ok(NeedleCheck { advice, ..check })
}

/// The advice in words (see [`NeedleCheck::advice`]).
fn advice_text(c: &NeedleCheck, cons: &Constraints, n_planned: usize) -> String {
    let s = &c.state;
    let mut out: Vec<String> = Vec::new();
    if n_planned > 1 {
        out.push(format!(
            "Compared with planned trajectory {} of {}.",
            c.trajectory_index + 1,
            n_planned
        ));
    }
    if s.breach {
        let at = s
            .min_clearance_at_mm
            .map(|a| format!(" {a:.0} mm from the entry"))
            .unwrap_or_default();
        out.push(format!(
            "BREACH: the needle's body is outside the bone{at} (clearance {:.1} mm). Do not advance; withdraw and redirect.",
            s.min_clearance_mm
        ));
    } else if !s.broken.is_empty() {
        let why: Vec<String> = s.broken.iter().map(|r| broken_words(*r, s, cons)).collect();
        out.push(format!("Do not advance: {}.", why.join("; ")));
    } else {
        let lim = s
            .advance_limit
            .map(|r| format!(" (then {})", limit_words(r, cons)))
            .unwrap_or_default();
        out.push(format!(
            "May advance up to {:.1} mm on this line{lim}.",
            s.advance_safe_mm
        ));
    }
    if !s.breach && s.entry_mm.is_some() && s.min_clearance_at_mm.is_some() {
        let clr = s.min_clearance_mm;
        if clr < cons.cortical_clearance_mm {
            out.push(format!(
                "Clearance {clr:.1} mm is below the {:.1} mm cortical clearance.",
                cons.cortical_clearance_mm
            ));
        }
    }
    if c.depth_to_target_mm >= 0.0 {
        let reach = if s.breach || c.depth_to_target_mm <= s.advance_safe_mm {
            String::new()
        } else {
            format!("; stop after {:.1} mm, short of it", s.advance_safe_mm)
        };
        out.push(format!(
            "The planned tip is {:.1} mm ahead along the needle{reach}.",
            c.depth_to_target_mm
        ));
    } else {
        out.push(format!(
            "The tip is {:.1} mm past the planned depth.",
            -c.depth_to_target_mm
        ));
    }
    let angle_deg = c.angle_error_rad.to_degrees();
    if c.aim_miss_mm <= ON_LINE_MISS_MM && angle_deg <= ON_LINE_ANGLE_DEG {
        out.push(format!(
            "On the planned line (aim within {:.1} mm, angle {angle_deg:.1} degrees).",
            c.aim_miss_mm
        ));
    } else {
        for v in &c.views {
            out.push(format!(
                "In {} the needle aims {:.1} mm {} of the planned tip; redirect {:.1} degrees {}.",
                v.view_name,
                v.miss_mm,
                v.aims_direction,
                v.redirect_rad.to_degrees(),
                v.redirect_direction
            ));
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_directions_follow_lps_and_side() {
        let r = Side::Right;
        assert_eq!(patient_direction(&Vector3::z(), r), "cranial");
        assert_eq!(patient_direction(&-Vector3::z(), r), "caudal");
        assert_eq!(patient_direction(&-Vector3::y(), r), "anterior");
        assert_eq!(patient_direction(&Vector3::y(), r), "posterior");
        // A right femur lies at -x: medial is towards +x (the midline).
        assert_eq!(patient_direction(&Vector3::x(), r), "medial");
        assert_eq!(patient_direction(&Vector3::x(), Side::Left), "lateral");
        assert_eq!(
            patient_direction(&Vector3::new(0.0, -0.6, 0.8), r),
            "cranial-anterior"
        );
    }
}
