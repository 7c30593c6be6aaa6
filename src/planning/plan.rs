//! From a [`HipModel`] and a [`Case`] to a [`Plan`].
//!
//! Phases: tips on a grid in the lesion (rules 3 and 6 once per tip),
//! entries on a grid over the entry zone, every pair decided by
//! [`Rules::check`] in parallel over entries, then the ranking, the local
//! refinement of the best, and the outputs.
//!
//! The pair decisions run through the per-entry form of the check (crate
//! internal): the crossing test of rule 1 near the entry only over the
//! triangles in a cone around the entry's axes, and rule 2 first proved on
//! a lazily filled grid of exact point distances stepped at its Lipschitz
//! bound (overlapping clear balls, never a sampled check; a finer walk over
//! cell corners near the surface), its rejections first tried on the
//! triangles that blocked earlier tips of the same entry (the exact
//! per-triangle test), with the exact threshold query on whatever is left
//! and the crossing test of a rejection only over the part of the axis the
//! balls could not prove. The decisions are those of [`Rules::check`], pair
//! for pair (tested over more than 10^5 grid pairs per real femur); with
//! default options they cost 1.32 G instructions on tlem2_right (1.96 G
//! before the blocking triangles and the finer walk) and 1.09 G on
//! lhdl_ct_right (callgrind, one thread; 5.02 G before the field).
//!
//! Ranking (exact branch and bound): the clearance term of [`score`]
//! saturates at 4 mm, so `score(4 mm, ..)` bounds each safe candidate's
//! score from above without any bone query. Candidates are scored exactly,
//! best bound first (clearance queries capped just above the saturation,
//! which leaves the score unchanged), until the next bound is below the
//! [`PlanOptions::exact_ranked`]-th best exact score; a candidate whose
//! clearance provably cannot reach that score (a threshold query) is left
//! out without its distance. The ranked list is
//! therefore the exact top `exact_ranked` by score over every safe grid
//! candidate (ties by grid indices), and the best is the grid's true
//! maximum of the score. (Earlier versions pre-sorted the safe candidates by
//! 1 mm clearance buckets and only the best 256 by bucket were scored
//! exactly, which could miss the true maximum.)

use std::collections::BTreeMap;

use nalgebra::{Point2, Point3, Unit, Vector3};
use rayon::prelude::*;

use super::candidates::{
    default_entry_zone, sample_entries, sample_tips, EntryZone, EntryZoneRule,
};
use super::coverage;
use super::evaluate::{Entry, EntryLocal, RejectReason, Rules, ENTRY_STEP_MM};
use super::field::ClearanceField;
use crate::anatomy::{HipModel, MAX_GRID_NODES};
use crate::case::Case;
use crate::error::{Error, Result};
use crate::geometry::Sphere;
use crate::imaging::angles_for_detector_direction;

/// Options of the search (not of the safety rules, which are the case's
/// [`crate::Constraints`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PlanOptions {
    /// Spacing of the entry grid on the lateral cortex, mm. Default 0.75:
    /// a straight corridor 1 mm wide at the entry always contains a sampled
    /// entry (the grid's half diagonal, 0.53 mm, is below 0.5 mm + its
    /// projection slack on a surface inclined by at most 60°... see the
    /// module docs of `candidates`), and the search refines around the best.
    pub entry_spacing_mm: f64,
    /// Spacing of the tip grid in the lesion, mm; `None` chooses it so that
    /// about [`PlanOptions::target_tips`] tips are drawn.
    pub tip_spacing_mm: Option<f64>,
    /// Number of tips aimed at when `tip_spacing_mm` is `None`. Default 150.
    pub target_tips: usize,
    /// Hard limit on candidate pairs; above it the tip grid (when it alone
    /// holds more tips than this) and then the entry grid are coarsened and
    /// a warning says so, so that at most this many pairs are evaluated
    /// (plus the bounded local refinement). Default 1,000,000.
    pub max_candidates: usize,
    /// Size of the exactly ranked list: the best `exact_ranked` safe
    /// candidates by [`score`] (exact, by branch and bound; module docs),
    /// from which the Pareto alternatives are drawn. Default 256.
    pub exact_ranked: usize,
    /// Add a forbidden sphere over the retinacular vessels at the
    /// posterosuperior head-neck junction (domain.md §2, Gautier 2000).
    /// Default false.
    pub vessel_zone: bool,
    /// Local refinement of the best trajectory (finer tip and entry steps
    /// around it). Default true.
    pub refine: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            entry_spacing_mm: 0.75,
            tip_spacing_mm: None,
            target_tips: 150,
            max_candidates: 1_000_000,
            exact_ranked: 256,
            vessel_zone: false,
            refine: true,
        }
    }
}

/// Largest number of rays the entry grid casts onto the bone (about
/// `pi (radius / spacing)^2` for the entry zone): a larger zone widens the
/// entry spacing, with a warning, so that planning time stays bounded.
pub const MAX_ENTRY_RAYS: usize = 1 << 20;

/// Largest number of lattice nodes the tip grid evaluates per candidate
/// pair allowed ([`PlanOptions::max_candidates`]; never more than
/// [`crate::anatomy::MAX_GRID_NODES`]): the grid spans the lesion's bounding
/// box, so a thin, flat or huge lesion coarsens the tip spacing, with a
/// warning, so that planning time stays bounded by the candidate limit.
pub const MAX_TIP_NODES_PER_CANDIDATE: usize = 1024;

/// Lattice nodes of the tip grid at spacing `h_mm` (as
/// [`crate::anatomy::Lesion::grid_points`] counts them), in f64.
fn lattice_nodes(lesion: &crate::anatomy::Lesion, h_mm: f64) -> f64 {
    let (lo, hi) = lesion.bounds_mm();
    (0..3)
        .map(|a| {
            let first = (lo[a] / h_mm).ceil() as i64;
            let last = (hi[a] / h_mm).floor() as i64;
            (last as f64 - first as f64 + 1.0).max(0.0)
        })
        .product()
}

/// Whether a plan found a safe trajectory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanStatus {
    /// At least one trajectory meets every rule on the model.
    Ok,
    /// None does; see [`Plan::reasons`].
    NoSafeTrajectory,
}

impl PlanStatus {
    /// The contract's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Ok => "ok",
            PlanStatus::NoSafeTrajectory => "no_safe_trajectory",
        }
    }
}

/// Where a trajectory appears in one view.
#[derive(Debug, Clone, PartialEq)]
pub struct TrajectoryView {
    /// The view's name.
    pub name: String,
    /// The entry's pixel.
    pub entry_px: Point2<f64>,
    /// The tip's pixel.
    pub tip_px: Point2<f64>,
}

/// One planned needle path, world mm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Trajectory {
    /// Entry on the outer bone surface.
    pub entry_mm: Point3<f64>,
    /// Tip, inside the lesion.
    pub tip_mm: Point3<f64>,
    /// `|tip - entry|`, mm.
    pub length_mm: f64,
    /// Smallest axis-to-surface distance minus the needle radius, past the
    /// entry allowance, mm (exact).
    pub min_clearance_mm: f64,
    /// Distance from the tip to the outer surface, mm.
    pub tip_to_surface_mm: f64,
    /// Angle between the axis and the entry's tangent plane, radians.
    pub incidence_rad: f64,
    /// The entry and tip in every view where both are in front of the source.
    pub views: Vec<TrajectoryView>,
    /// C-arm angles `(primary, secondary)`, radians, that look along the
    /// needle with the detector on the entry (lateral) side.
    pub down_the_barrel_rad: (f64, f64),
    /// Ranking score (see [`score`]).
    pub score: f64,
    /// Predicted probability of breaching the true bone, when estimated.
    pub breach_probability: Option<f64>,
    /// 5th percentile of the clearance under the noise model, mm, when estimated.
    pub clearance_p05_mm: Option<f64>,
}

/// The planner's answer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Plan {
    /// `Ok` or `NoSafeTrajectory`.
    pub status: PlanStatus,
    /// Candidates rejected per rule.
    pub reasons: BTreeMap<RejectReason, u64>,
    /// Best first; one per pass; empty unless `Ok`.
    pub trajectories: Vec<Trajectory>,
    /// Other safe, Pareto-optimal trajectories (clearance, length, angle to
    /// the neck axis, tip distance to the lesion centre), best first.
    pub alternatives: Vec<Trajectory>,
    /// Fraction of the lesion within `coverage_radius_mm` of the trajectories.
    pub coverage: f64,
    /// The entry zone used.
    pub entry_zone: Option<EntryZone>,
    /// Number of candidate pairs evaluated.
    pub candidates: u64,
    /// Number of candidates that met every rule.
    pub safe_candidates: u64,
    /// Warnings for the user.
    pub warnings: Vec<String>,
    /// Extra margin, mm, that the Monte Carlo of [`crate::uncertainty`]
    /// recommends (set by [`crate::uncertainty::assess_plan`]).
    pub recommended_margin_mm: Option<f64>,
}

/// The ranking score of a safe trajectory (higher is better):
///
/// ```text
/// score = min(c - c_req, 4 mm) - 0.1 angle_deg - 0.02 L_mm - 0.1 t_mm
/// ```
///
/// with `c - c_req` the clearance beyond the requirement (saturating at 4 mm:
/// beyond that, more room buys nothing), `angle_deg` the angle between the
/// needle and the neck axis (0 when unknown), `L_mm` the length and `t_mm` the
/// tip's distance from the lesion centroid. Ties are broken by the candidate's
/// grid indices, so the same case always gives the same plan.
#[must_use]
pub fn score(
    excess_clearance_mm: f64,
    angle_deg: f64,
    length_mm: f64,
    tip_to_centroid_mm: f64,
) -> f64 {
    // Kept as written (left to right): plans are compared bit for bit.
    excess_clearance_mm.min(SATURATION_MM)
        - 0.1 * angle_deg
        - 0.02 * length_mm
        - 0.1 * tip_to_centroid_mm
}

/// The part of [`score`] that does not depend on the clearance (what a
/// candidate loses for its angle, length and tip position), equal to
/// `min(excess, 4 mm) - score` up to rounding (tested); the ranking's
/// shortcut uses it with a 1e-6 mm margin.
#[inline]
fn score_penalty(angle_deg: f64, length_mm: f64, tip_to_centroid_mm: f64) -> f64 {
    0.1 * angle_deg + 0.02 * length_mm + 0.1 * tip_to_centroid_mm
}

#[derive(Debug, Clone, Copy)]
struct Ranked {
    entry: usize,
    tip: usize,
    excess_mm: f64,
    angle_deg: f64,
    length_mm: f64,
    centrality_mm: f64,
    score: f64,
}

fn angle_to_neck_deg(model: &HipModel, d: &Vector3<f64>) -> f64 {
    model
        .neck_axis
        .as_ref()
        .map(|a| d.dot(&a.direction).clamp(-1.0, 1.0).acos().to_degrees())
        .unwrap_or(0.0)
}

/// The retinacular-vessel zone: a 4 mm sphere on the posterosuperior
/// head-neck junction (domain.md §2: the superior retinacular vessels enter
/// at the posterosuperior head-neck junction, Gautier et al. 2000).
#[must_use]
pub fn vessel_zone(model: &HipModel) -> Option<Sphere> {
    let n = model.neck_axis.as_ref()?.direction.into_inner();
    let up = model
        .shaft_axis
        .as_ref()
        .map(|a| a.direction.into_inner())
        .unwrap_or_else(Vector3::z);
    let sup = (up - n * up.dot(&n)).try_normalize(1e-9)?;
    // LPS: +y is posterior.
    let post = Vector3::y();
    let post = (post - n * post.dot(&n) - sup * post.dot(&sup)).try_normalize(1e-9)?;
    let r = model.head.radius_mm;
    let junction = model.head.center - n * r;
    let dir = (sup + post).normalize();
    let surface = model
        .bone
        .first_hit(&junction, &Unit::new_normalize(dir), 3.0 * r)?;
    Some(Sphere {
        center: surface.point,
        radius_mm: 4.0,
    })
}

/// Plans with default [`PlanOptions`]; see [`plan_with`].
///
/// # Errors
/// As [`plan_with`].
pub fn plan(model: &HipModel, case: &Case) -> Result<Plan> {
    plan_with(model, case, &PlanOptions::default())
}

/// Plans needle trajectories on `model` under the case's constraints,
/// forbidden zones, entry zone and views.
///
/// Returns `Ok` with status [`PlanStatus::NoSafeTrajectory`] (and the
/// rejection counts) when no candidate meets every rule; never relaxes a rule.
///
/// # Errors
/// [`Error::Invalid`] for unusable options; [`Error::Degenerate`] when the
/// lesion lies outside the bone.
pub fn plan_with(model: &HipModel, case: &Case, opts: &PlanOptions) -> Result<Plan> {
    if !(opts.entry_spacing_mm.is_finite() && opts.entry_spacing_mm >= 0.05) {
        return Err(Error::invalid("entry_spacing_mm", "must be >= 0.05"));
    }
    if let Some(h) = opts.tip_spacing_mm {
        if !(h.is_finite() && h >= 0.1) {
            return Err(Error::invalid("tip_spacing_mm", "must be >= 0.1"));
        }
    }
    let c = &case.constraints;
    let mut warnings = Vec::new();
    let mut forbidden: Vec<Sphere> = case.forbidden_zones.clone();
    if opts.vessel_zone {
        match vessel_zone(model) {
            Some(v) => forbidden.push(v),
            None => warnings.push("vessel zone requested but the neck axis is unknown".into()),
        }
    }
    let rules = Rules::new(c, &forbidden, model.margin_mm);
    let mut reasons: BTreeMap<RejectReason, u64> = BTreeMap::new();
    let zone = match case.entry_zone {
        Some(s) => Some(EntryZone {
            sphere: s,
            rule: EntryZoneRule::Case,
        }),
        None => default_entry_zone(model),
    };
    let Some(zone) = zone else {
        warnings.push("no entry zone: the case gives none and the neck axis is unknown".into());
        return Ok(empty_plan(reasons, None, warnings));
    };

    // Tips: grid in the lesion, rules 3 and 6 decided once per tip.
    let lesion_mm3 = model.lesion.volume_ml() * 1000.0;
    let tip_h = opts.tip_spacing_mm.unwrap_or_else(|| {
        (lesion_mm3 / opts.target_tips.max(1) as f64)
            .cbrt()
            .clamp(0.5, 5.0)
    });
    // Bound the tip count by the candidate limit too (one entry times every
    // tip is a candidate each): a fine tip spacing in a large lesion would
    // otherwise give millions of tips whatever the entry grid.
    let max_tips = opts.max_candidates.max(1);
    let mut tip_h = tip_h;
    if lesion_mm3.is_finite() && lesion_mm3 / tip_h.powi(3) > max_tips as f64 {
        tip_h = (lesion_mm3 / max_tips as f64).cbrt();
        warnings.push(format!(
            "candidate limit {}: tip spacing coarsened to {tip_h:.2} mm",
            opts.max_candidates
        ));
    }
    // The tip grid evaluates every lattice node of the lesion's bounding
    // box, which a thin, flat or astronomically large lesion makes far
    // larger than its volume: bound the nodes as well, so that the grid
    // costs what the candidate limit allows (and the loop below runs a
    // bounded number of times, each on at most that many nodes).
    let node_budget = max_tips
        .saturating_mul(MAX_TIP_NODES_PER_CANDIDATE)
        .min(MAX_GRID_NODES) as f64;
    if lattice_nodes(&model.lesion, tip_h) > node_budget {
        while lattice_nodes(&model.lesion, tip_h) > node_budget {
            tip_h *= 1.25;
        }
        warnings.push(format!(
            "candidate limit {}: tip spacing coarsened to {tip_h:.2} mm (at most {MAX_TIP_NODES_PER_CANDIDATE} lattice nodes per candidate)",
            opts.max_candidates
        ));
    }
    let mut all_tips = sample_tips(model, tip_h);
    while all_tips.len() > max_tips {
        tip_h *= 1.25;
        all_tips = sample_tips(model, tip_h);
        warnings.push(format!(
            "candidate limit {}: tip spacing coarsened to {tip_h:.2} mm",
            opts.max_candidates
        ));
    }
    let tip_ok: Vec<bool> = all_tips
        .par_iter()
        .map(|t| rules.tip_is_deep(&model.bone, t))
        .collect();
    let tips: Vec<Point3<f64>> = all_tips
        .iter()
        .zip(&tip_ok)
        .filter(|(_, ok)| **ok)
        .map(|(t, _)| *t)
        .collect();
    let shallow_tips = all_tips.len() - tips.len();

    // Entries, coarsened if the pair count would exceed the limit.
    let mut entry_h = opts.entry_spacing_mm;
    // The entry grid casts about pi (r / h)^2 rays before any entry is
    // counted: bound that first, so that a huge entry zone cannot hang.
    let min_h = zone.sphere.radius_mm * (std::f64::consts::PI / MAX_ENTRY_RAYS as f64).sqrt();
    if entry_h < min_h {
        entry_h = min_h;
        warnings.push(format!(
            "entry zone of radius {:.1} mm: entry spacing widened to {entry_h:.2} mm (at most {MAX_ENTRY_RAYS} entry rays)",
            zone.sphere.radius_mm
        ));
    }
    let (mut entries, mut below_lt) = sample_entries(model, &zone.sphere, entry_h);
    while entries.len().saturating_mul(tips.len().max(1)) > opts.max_candidates && entries.len() > 1
    {
        entry_h *= 1.5;
        (entries, below_lt) = sample_entries(model, &zone.sphere, entry_h);
        warnings.push(format!(
            "candidate limit {}: entry spacing coarsened to {entry_h:.2} mm",
            opts.max_candidates
        ));
    }
    let n_tips_all = all_tips.len() as u64;
    if below_lt > 0 {
        *reasons
            .entry(RejectReason::EntryBelowLesserTrochanter)
            .or_default() += below_lt as u64 * n_tips_all.max(1);
    }
    if shallow_tips > 0 {
        *reasons.entry(RejectReason::TipTooShallow).or_default() +=
            shallow_tips as u64 * entries.len() as u64;
    }
    if all_tips.is_empty() {
        warnings.push("the lesion holds no grid point at the tip spacing".into());
    }
    if entries.is_empty() {
        warnings.push("no bone surface point in the entry zone faces outwards".into());
    }
    let candidates = (entries.len() * tips.len()) as u64;

    // The hot path: every pair, in parallel over entries, allocation-free inside.
    // Rule 2 is first tried on a lazily filled distance field over the
    // candidate region (a proof by Lipschitz balls; the exact query decides
    // whatever it cannot prove), rule 1 near the entry over the entry's
    // nearby triangles only: the decisions are those of `Rules::check`.
    let field = candidate_box(&entries, &tips).and_then(|(lo, hi)| {
        ClearanceField::new(
            &model.bone,
            &lo,
            &hi,
            FIELD_SPACING_MM,
            rules.axis_clearance_mm + FIELD_CAP_ABOVE_MM,
        )
    });
    let per_entry: Vec<([u64; RejectReason::ALL.len()], Vec<u32>)> = entries
        .par_iter()
        .map(|e| {
            let mut counts = [0u64; RejectReason::ALL.len()];
            let mut ok = Vec::new();
            let mut local = EntryLocal::new(&rules, &model.bone, e, &tips);
            for (j, t) in tips.iter().enumerate() {
                match rules.check_local(&model.bone, &mut local, field.as_ref(), t) {
                    Ok(()) => ok.push(j as u32),
                    Err(r) => counts[r.index()] += 1,
                }
            }
            (counts, ok)
        })
        .collect();
    let mut safe: Vec<(usize, usize)> = Vec::new();
    for (i, (counts, ok)) in per_entry.iter().enumerate() {
        for (k, n) in counts.iter().enumerate() {
            if *n > 0 {
                *reasons.entry(RejectReason::ALL[k]).or_default() += n;
            }
        }
        safe.extend(ok.iter().map(|&j| (i, j as usize)));
    }
    let safe_candidates = safe.len() as u64;
    if safe.is_empty() {
        // A corridor narrower than the grid: search locally from the near misses.
        if opts.refine {
            if let Some(pair) = rescue(model, &rules, &entries, &tips, tip_h, entry_h, &zone) {
                warnings.push(
                    "the only safe corridor is narrower than the sampling grid: found by local search from near misses"
                        .into(),
                );
                let t = trajectory(model, case, &rules, &pair.0, &pair.1);
                let cov = coverage::coverage(
                    &model.lesion,
                    &[(pair.0.point, pair.1)],
                    c.coverage_radius_mm,
                );
                return Ok(Plan {
                    status: PlanStatus::Ok,
                    reasons,
                    trajectories: vec![t],
                    alternatives: Vec::new(),
                    coverage: cov,
                    entry_zone: Some(zone),
                    candidates,
                    safe_candidates: 0,
                    warnings,
                    recommended_margin_mm: None,
                });
            }
        }
        let mut p = empty_plan(reasons, Some(zone), warnings);
        p.candidates = candidates;
        return Ok(p);
    }

    // Ranking: branch and bound on the score. The clearance term saturates
    // at SATURATION_MM, so score(SATURATION_MM, ..) bounds every candidate's
    // score from above; exact (capped) clearances are computed best bound
    // first until the bound of the next candidate falls below the k-th best
    // exact score. The result is the exact top k by score (ties by grid
    // indices) over every safe candidate, whatever the thread count.
    let centroid = model.lesion.centroid_mm();
    let mut pending: Vec<Ranked> = safe
        .par_iter()
        .map(|&(i, j)| {
            let e = &entries[i];
            let t = &tips[j];
            let v = t - e.point;
            let len = v.norm();
            let d = v / len;
            let angle = angle_to_neck_deg(model, &d);
            let cen = (t - centroid).norm();
            Ranked {
                entry: i,
                tip: j,
                excess_mm: SATURATION_MM,
                angle_deg: angle,
                length_mm: len,
                centrality_mm: cen,
                // Upper bound until the clearance is known.
                score: score(SATURATION_MM, angle, len, cen),
            }
        })
        .collect();
    pending.par_sort_unstable_by(by_score);
    let ranked = rank_exact(
        model,
        &rules,
        field.as_ref(),
        &entries,
        &tips,
        &pending,
        opts.exact_ranked.max(1),
    );

    let mut best_pairs: Vec<(Entry, Point3<f64>)> = Vec::new();
    if c.passes <= 1 {
        let b = ranked[0];
        let mut pair = (entries[b.entry], tips[b.tip]);
        if opts.refine {
            if let Some((p, Merit::Safe(_))) =
                local_search(model, &rules, pair, tip_h, entry_h, &zone, 4, 8)
            {
                pair = p;
            }
        }
        best_pairs.push(pair);
    } else {
        best_pairs = fan(model, c, &entries, &tips, &safe, &ranked);
    }

    let trajectories: Vec<Trajectory> = best_pairs
        .iter()
        .map(|(e, t)| trajectory(model, case, &rules, e, t))
        .collect();
    // Pareto-optimal alternatives among the exactly ranked candidates.
    let alternatives = pareto(&ranked)
        .into_iter()
        .filter(|r| {
            !best_pairs
                .iter()
                .any(|(e, t)| e.point == entries[r.entry].point && *t == tips[r.tip])
        })
        .take(8)
        .map(|r| trajectory(model, case, &rules, &entries[r.entry], &tips[r.tip]))
        .collect();
    let passes: Vec<(Point3<f64>, Point3<f64>)> =
        best_pairs.iter().map(|(e, t)| (e.point, *t)).collect();
    let cov = coverage::coverage(&model.lesion, &passes, c.coverage_radius_mm);
    Ok(Plan {
        status: PlanStatus::Ok,
        reasons,
        trajectories,
        alternatives,
        coverage: cov,
        entry_zone: Some(zone),
        candidates,
        safe_candidates,
        warnings,
        recommended_margin_mm: None,
    })
}

fn empty_plan(
    reasons: BTreeMap<RejectReason, u64>,
    zone: Option<EntryZone>,
    warnings: Vec<String>,
) -> Plan {
    Plan {
        status: PlanStatus::NoSafeTrajectory,
        reasons,
        trajectories: Vec::new(),
        alternatives: Vec::new(),
        coverage: 0.0,
        entry_zone: zone,
        candidates: 0,
        safe_candidates: 0,
        warnings,
        recommended_margin_mm: None,
    }
}

/// Spacing of the distance field that proves rule 2 on the hot path, mm
/// (see `field`): a node is at most `0.87 h` from any point, so clearances
/// a few mm above the requirement are proved with few balls.
const FIELD_SPACING_MM: f64 = 1.5;

/// Node distances of that field are capped this far above the clearance
/// requirement, mm (cheaper node queries; balls up to this radius).
const FIELD_CAP_ABOVE_MM: f64 = 8.0;

/// The bounding box of the entries and tips (it holds every candidate axis),
/// `None` when there is no entry or no tip.
fn candidate_box(entries: &[Entry], tips: &[Point3<f64>]) -> Option<(Point3<f64>, Point3<f64>)> {
    let mut pts = entries.iter().map(|e| &e.point).chain(tips);
    let first = *pts.next()?;
    if entries.is_empty() || tips.is_empty() {
        return None;
    }
    Some(pts.fold((first, first), |(lo, hi), p| (lo.inf(p), hi.sup(p))))
}

/// Where the clearance term of [`score`] saturates, mm.
const SATURATION_MM: f64 = 4.0;

/// Best score first, ties by grid indices (entry, then tip).
fn by_score(a: &Ranked, b: &Ranked) -> std::cmp::Ordering {
    b.score
        .total_cmp(&a.score)
        .then(a.entry.cmp(&b.entry))
        .then(a.tip.cmp(&b.tip))
}

/// The clearance (axis distance minus the needle radius) at which the
/// excess of [`score`] saturates, plus 1 um: a clearance query capped there
/// gives the same score, bit for bit, as the exact one.
fn saturation_cap_mm(rules: &Rules) -> f64 {
    rules.axis_clearance_mm - rules.needle_radius_mm + SATURATION_MM + 1e-6
}

/// The exact top `k` of `pending` by [`score`] (ties by grid indices), best
/// first. `pending` holds every safe candidate with its score's upper bound
/// `score(SATURATION_MM, ..)` in `score`, sorted best bound first.
///
/// Branch and bound: candidates are scored exactly in bound order, in
/// blocks (in parallel within a block), until the next bound is below the
/// k-th best exact score; no candidate left out can then enter the top `k`
/// (its score is at most its bound). The scores need the clearance only up
/// to the saturation, so the distance queries are capped there (plus 1 um,
/// so a capped value saturates the score exactly as the exact one would;
/// where the distance field proves the cap, the cap itself, bit for bit);
/// once there is a k-th score, a candidate is left out without its
/// distance when a threshold query proves its clearance below the one
/// that score needs (its score is then below the k-th, which only rises).
/// The survivors then get their exact, unsaturated clearance (for the
/// Pareto alternatives). Deterministic: the result does not depend on the
/// block size or the thread count.
fn rank_exact(
    model: &HipModel,
    rules: &Rules,
    field: Option<&ClearanceField<'_>>,
    entries: &[Entry],
    tips: &[Point3<f64>],
    pending: &[Ranked],
    k: usize,
) -> Vec<Ranked> {
    let excess_of = |clear: f64| clear + rules.needle_radius_mm - rules.axis_clearance_mm;
    let cap = saturation_cap_mm(rules);
    let mut top: Vec<Ranked> = Vec::with_capacity(2 * k + 64);
    let mut pos = 0;
    // The first block fills the top k (no candidate can be left out before
    // there is a k-th score); later blocks are small so that each starts
    // from a recent k-th score.
    let step = 64usize.max(k / 4);
    let mut block = k.max(step);
    while pos < pending.len() {
        let kth = (top.len() >= k).then(|| top[k - 1].score);
        if kth.is_some_and(|s| pending[pos].score < s) {
            break;
        }
        let end = (pos + block).min(pending.len());
        let scored: Vec<Ranked> = pending[pos..end]
            .par_iter()
            .filter(|r| kth.is_none_or(|s| r.score >= s))
            .filter(|r| {
                // Left out when its clearance provably cannot reach the
                // k-th best score (a threshold query instead of the
                // distance; the clearance needed is widened by 1 um, far
                // above the rounding of the score).
                let (Some(s), Some(f)) = (kth, field) else {
                    return true;
                };
                let need = s
                    + score_penalty(r.angle_deg, r.length_mm, r.centrality_mm)
                    + rules.axis_clearance_mm
                    - 1e-6;
                if need.is_nan() || need <= rules.axis_clearance_mm {
                    return true;
                }
                let e = &entries[r.entry].point;
                let t = &tips[r.tip];
                let out = f.proves_below(&rules.clearance_split(e, t), t, need);
                !out
            })
            .map(|r| {
                let clear = rules.min_clearance_below_with(
                    &model.bone,
                    field,
                    &entries[r.entry].point,
                    &tips[r.tip],
                    cap,
                );
                let mut r = *r;
                r.excess_mm = excess_of(clear);
                r.score = score(r.excess_mm, r.angle_deg, r.length_mm, r.centrality_mm);
                r
            })
            .collect();
        top.extend(scored);
        top.sort_by(by_score);
        top.truncate(k);
        pos = end;
        block = step;
    }
    // Exact, unsaturated clearance where the cap may have cut it (the score
    // is unchanged: both saturate).
    top.par_iter_mut().for_each(|r| {
        if r.excess_mm + rules.axis_clearance_mm - rules.needle_radius_mm >= cap - 1e-9 {
            let clear = rules.min_clearance_mm(&model.bone, &entries[r.entry].point, &tips[r.tip]);
            r.excess_mm = excess_of(clear);
            r.score = score(r.excess_mm, r.angle_deg, r.length_mm, r.centrality_mm);
        }
    });
    top.sort_by(by_score);
    top
}

/// The Pareto-optimal subset of `ranked` (maximise excess clearance,
/// minimise angle, length and tip-to-centroid distance), in `ranked`'s order.
fn pareto(ranked: &[Ranked]) -> Vec<Ranked> {
    let dominates = |a: &Ranked, b: &Ranked| {
        a.excess_mm >= b.excess_mm
            && a.angle_deg <= b.angle_deg
            && a.length_mm <= b.length_mm
            && a.centrality_mm <= b.centrality_mm
            && (a.excess_mm > b.excess_mm
                || a.angle_deg < b.angle_deg
                || a.length_mm < b.length_mm
                || a.centrality_mm < b.centrality_mm)
    };
    ranked
        .iter()
        .filter(|b| !ranked.iter().any(|a| dominates(a, b)))
        .copied()
        .collect()
}

/// How good a pair is, for the local search: safe pairs by their score,
/// unsafe ones below every safe one by their continuous slack (the worst
/// shortfall of clearance, forbidden-sphere distance and tip depth, mm), and
/// pairs that break a rule without a continuous measure (length, incidence,
/// lesion, crossing near the entry) not at all.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Merit {
    Safe(f64),
    Unsafe(f64),
}

impl Merit {
    fn better_than(self, other: Merit) -> bool {
        match (self, other) {
            (Merit::Safe(a), Merit::Safe(b)) | (Merit::Unsafe(a), Merit::Unsafe(b)) => a > b + 1e-9,
            (Merit::Safe(_), Merit::Unsafe(_)) => true,
            (Merit::Unsafe(_), Merit::Safe(_)) => false,
        }
    }
}

fn merit(model: &HipModel, rules: &Rules, e: &Entry, t: &Point3<f64>) -> Option<Merit> {
    if !model.lesion.contains(t) || !model.bone.contains(t) {
        return None;
    }
    let v = t - e.point;
    let len = v.norm();
    if len <= rules.entry_allowance_mm || len > rules.max_length_mm {
        return None;
    }
    let d = v / len;
    if -d.dot(&e.normal) < rules.min_incidence_sin {
        return None;
    }
    let centroid = model.lesion.centroid_mm();
    match rules.check(&model.bone, e, t) {
        Ok(()) if rules.tip_is_deep(&model.bone, t) => {
            // The score saturates: a clearance capped just above the
            // saturation gives the same score, bit for bit, for less work.
            let clear =
                rules.min_clearance_below_mm(&model.bone, &e.point, t, saturation_cap_mm(rules));
            let excess = clear + rules.needle_radius_mm - rules.axis_clearance_mm;
            Some(Merit::Safe(score(
                excess,
                angle_to_neck_deg(model, &d),
                len,
                (t - centroid).norm(),
            )))
        }
        Err(RejectReason::TooLong | RejectReason::LowIncidence) => None,
        _ => {
            let start = e.point + d * ENTRY_STEP_MM;
            let split = e.point + d * rules.entry_allowance_mm;
            if model.bone.segment_intersects(&start, &split) {
                return None;
            }
            let clear = rules.min_clearance_mm(&model.bone, &e.point, t);
            let mut slack = clear + rules.needle_radius_mm - rules.axis_clearance_mm;
            slack = slack.min(-model.bone.signed_distance_mm(t) - rules.tip_depth_mm);
            for f in &rules.forbidden {
                slack = slack.min(f.segment_center_distance_mm(&e.point, t) - f.radius_mm);
            }
            Some(Merit::Unsafe(slack))
        }
    }
}

/// Local search around `start`: coordinate steps of the tip (from half the
/// tip spacing, halving) and of the entry along the surface (from half the
/// entry spacing, halving), keeping the entry in the zone and above the
/// lesser trochanter; accepts strict improvements of [`Merit`] only. Returns
/// the best pair found and whether it is safe.
#[allow(clippy::too_many_arguments)]
fn local_search(
    model: &HipModel,
    rules: &Rules,
    start: (Entry, Point3<f64>),
    tip_h: f64,
    entry_h: f64,
    zone: &EntryZone,
    scales: usize,
    rounds_per_scale: usize,
) -> Option<((Entry, Point3<f64>), Merit)> {
    let mut best_m = merit(model, rules, &start.0, &start.1)?;
    let mut best = start;
    let mut th = tip_h / 2.0;
    let mut eh = entry_h / 2.0;
    let lt = model.lesser_trochanter_limit();
    for _ in 0..scales {
        let mut rounds = 0;
        let mut improved = true;
        while improved && rounds < rounds_per_scale {
            improved = false;
            rounds += 1;
            let n = best.0.normal.into_inner();
            let helper = if n.x.abs() < 0.9 {
                Vector3::x()
            } else {
                Vector3::y()
            };
            let p = n.cross(&helper).normalize();
            let q = n.cross(&p);
            let mut trials: Vec<(Entry, Point3<f64>)> = Vec::new();
            for k in 0..3 {
                for s in [-1.0, 1.0] {
                    let mut t = best.1;
                    t[k] += s * th;
                    trials.push((best.0, t));
                }
            }
            for dir in [p, -p, q, -q] {
                let origin = best.0.point + dir * eh + n * 5.0;
                let Some(hit) = model
                    .bone
                    .first_hit(&origin, &Unit::new_unchecked(-n), 15.0)
                else {
                    continue;
                };
                if (hit.point - zone.sphere.center).norm() > zone.sphere.radius_mm
                    || hit.normal.dot(&n) <= 0.0
                {
                    continue;
                }
                if let Some((axis, level)) = &lt {
                    if (hit.point - axis.point).dot(&axis.direction) < *level {
                        continue;
                    }
                }
                let e = Entry {
                    point: hit.point,
                    normal: hit.normal,
                };
                // Move the entry alone, and together with the tip (keeps the direction).
                trials.push((e, best.1));
                trials.push((e, best.1 + (hit.point - best.0.point)));
            }
            for (e, t) in trials {
                if let Some(m) = merit(model, rules, &e, &t) {
                    if m.better_than(best_m) {
                        best_m = m;
                        best = (e, t);
                        improved = true;
                    }
                }
            }
        }
        th /= 2.0;
        eh /= 2.0;
    }
    Some((best, best_m))
}

/// Candidates that fail only by a small clearance or forbidden-zone
/// shortfall (at most [`RESCUE_SHORTFALL_MM`]) are the starting points of a
/// finer local search; the best [`RESCUE_STARTS`] of them are tried.
fn rescue(
    model: &HipModel,
    rules: &Rules,
    entries: &[Entry],
    tips: &[Point3<f64>],
    tip_h: f64,
    entry_h: f64,
    zone: &EntryZone,
) -> Option<(Entry, Point3<f64>)> {
    let mut near: Vec<(f64, usize, usize)> = entries
        .par_iter()
        .enumerate()
        .flat_map_iter(|(i, e)| {
            tips.iter()
                .enumerate()
                .filter_map(move |(j, t)| match rules.check(&model.bone, e, t) {
                    Err(RejectReason::CorticalClearance) => {
                        let v = t - e.point;
                        let len = v.norm();
                        let split = e.point + v * (rules.entry_allowance_mm.min(len) / len);
                        [0.25, 0.5, 1.0, RESCUE_SHORTFALL_MM]
                            .into_iter()
                            .find(|k| {
                                model
                                    .bone
                                    .segment_clears(&split, t, rules.axis_clearance_mm - k)
                            })
                            .map(|k| (k, i, j))
                    }
                    Err(RejectReason::ForbiddenZone) => {
                        let short = rules
                            .forbidden
                            .iter()
                            .map(|f| f.radius_mm - f.segment_center_distance_mm(&e.point, t))
                            .fold(0.0, f64::max);
                        (short <= RESCUE_SHORTFALL_MM).then_some((short, i, j))
                    }
                    _ => None,
                })
        })
        .collect();
    near.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut best: Option<((Entry, Point3<f64>), f64)> = None;
    for &(_, i, j) in near.iter().take(RESCUE_STARTS) {
        if let Some((pair, Merit::Safe(s))) = local_search(
            model,
            rules,
            (entries[i], tips[j]),
            tip_h,
            entry_h,
            zone,
            7,
            24,
        ) {
            if best.as_ref().is_none_or(|(_, b)| s > *b + 1e-9) {
                best = Some((pair, s));
            }
        }
    }
    best.map(|(p, _)| p)
}

/// Largest shortfall, mm, of a near miss that [`rescue`] starts from.
const RESCUE_SHORTFALL_MM: f64 = 2.0;
/// Number of near misses [`rescue`] starts from.
const RESCUE_STARTS: usize = 16;

/// One pass: an entry and a tip.
type Pass = (Entry, Point3<f64>);

/// Several passes through one entry: for each of the (up to 8) entries of
/// the best ranked candidates, greedily add the safe tip from that entry
/// that covers the most still-uncovered lesion samples (ties: higher
/// score), `passes` times; keep the entry whose fan covers most. Greedy
/// maximum coverage reaches at least `1 - 1/e` (63%) of the best coverage
/// achievable with the same number of passes from that entry's safe tips
/// (Nemhauser, Wolsey & Fisher 1978).
fn fan(
    model: &HipModel,
    c: &crate::case::Constraints,
    entries: &[Entry],
    tips: &[Point3<f64>],
    safe: &[(usize, usize)],
    ranked: &[Ranked],
) -> Vec<(Entry, Point3<f64>)> {
    let samples = model
        .lesion
        .sample_points(coverage::COVERAGE_SAMPLES, coverage::COVERAGE_SEED);
    let mut seen = Vec::new();
    for r in ranked {
        if !seen.contains(&r.entry) {
            seen.push(r.entry);
        }
        if seen.len() == 8 {
            break;
        }
    }
    let mut best: Option<(usize, Vec<Pass>)> = None;
    for &ei in &seen {
        let e = entries[ei];
        let my_tips: Vec<usize> = safe
            .iter()
            .filter(|(i, _)| *i == ei)
            .map(|(_, j)| *j)
            .collect();
        let parts: Vec<(Point3<f64>, Point3<f64>)> = my_tips
            .iter()
            .map(|&j| coverage::intralesional_part(&model.lesion, &e.point, &tips[j]))
            .collect();
        let mut covered = vec![false; samples.len()];
        let mut chosen: Vec<(Entry, Point3<f64>)> = Vec::new();
        let mut used = vec![false; my_tips.len()];
        for _ in 0..c.passes {
            let mut pick: Option<(usize, usize)> = None;
            for (k, (a, b)) in parts.iter().enumerate() {
                if used[k] {
                    continue;
                }
                let g = coverage::gain(&samples, &covered, a, b, c.coverage_radius_mm);
                if pick.is_none_or(|(_, bg)| g > bg) {
                    pick = Some((k, g));
                }
            }
            let Some((k, _)) = pick else { break };
            used[k] = true;
            coverage::mark_covered(
                &samples,
                &parts[k].0,
                &parts[k].1,
                c.coverage_radius_mm,
                &mut covered,
            );
            chosen.push((e, tips[my_tips[k]]));
        }
        let n_cov = covered.iter().filter(|x| **x).count();
        if best.as_ref().is_none_or(|(b, _)| n_cov > *b) {
            best = Some((n_cov, chosen));
        }
    }
    best.map(|(_, v)| v).unwrap_or_default()
}

fn trajectory(
    model: &HipModel,
    case: &Case,
    rules: &Rules,
    e: &Entry,
    t: &Point3<f64>,
) -> Trajectory {
    let v = t - e.point;
    let len = v.norm();
    let d = v / len;
    let views = case
        .views
        .iter()
        .filter_map(|view| {
            Some(TrajectoryView {
                name: view.name.clone(),
                entry_px: view.projection.try_project(&e.point)?,
                tip_px: view.projection.try_project(t)?,
            })
        })
        .collect();
    let dtb = angles_for_detector_direction(&Unit::new_normalize(-d));
    let clear = rules.min_clearance_mm(&model.bone, &e.point, t);
    let excess = clear + rules.needle_radius_mm - rules.axis_clearance_mm;
    Trajectory {
        entry_mm: e.point,
        tip_mm: *t,
        length_mm: len,
        min_clearance_mm: clear,
        tip_to_surface_mm: -model.bone.signed_distance_mm(t),
        incidence_rad: (-d.dot(&e.normal)).clamp(-1.0, 1.0).asin(),
        views,
        down_the_barrel_rad: dtb,
        score: score(
            excess,
            angle_to_neck_deg(model, &d),
            len,
            (t - model.lesion.centroid_mm()).norm(),
        ),
        breach_probability: None,
        clearance_p05_mm: None,
    }
}

#[cfg(test)]
mod tests {
    use super::{score, score_penalty, SATURATION_MM};
    use proptest::prelude::*;

    proptest! {
        /// The ranking shortcut's penalty is the score's, up to rounding far
        /// below the shortcut's 1e-6 mm margin.
        #[test]
        fn penalty_is_the_score_without_its_clearance(
            excess in -5.0f64..10.0,
            angle in 0.0f64..90.0,
            length in 0.0f64..200.0,
            t in 0.0f64..30.0,
        ) {
            let s = score(excess, angle, length, t);
            let p = score_penalty(angle, length, t);
            prop_assert!((excess.min(SATURATION_MM) - p - s).abs() < 1e-12);
        }
    }
}
