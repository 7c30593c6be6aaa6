//! The hot path: the safety decision for one candidate trajectory.
//!
//! A candidate is an entry point `e` on the outer bone surface (with its
//! outward normal `n`) and a tip `t`. With `L = |t - e|`, `d = (t - e) / L`,
//! `R` the needle radius and `s = e + d min(L, entry_allowance_mm)`, the
//! rules of the contract's safety definition are checked in this order, the
//! cheapest first, and the first that fails is the candidate's
//! [`RejectReason`]:
//!
//! | rule | test | reason |
//! |---|---|---|
//! | 4 | `L <= max_length_mm` | [`RejectReason::TooLong`] |
//! | 4 | `-d . n >= sin(min_incidence)` | [`RejectReason::LowIncidence`] |
//! | 6, 3 | tip inside the lesion, tip inside the bone at depth `>= subchondral_margin_mm + margin` (decided once per tip) | [`RejectReason::TipOutsideLesion`], [`RejectReason::TipTooShallow`] |
//! | 5 | segment-to-centre distance `>= r + R + cortical_clearance_mm` for every forbidden sphere | [`RejectReason::ForbiddenZone`] |
//! | 1 | the segment `(e + delta d, s]` crosses no triangle | [`RejectReason::LeavesBone`] |
//! | 2 | the exact distance from `[s, t]` to the surface is `>= R + cortical_clearance_mm + margin` | [`RejectReason::CorticalClearance`] (or [`RejectReason::LeavesBone`] when `[s, t]` crosses the surface) |
//!
//! Rule 1 then holds on all of `(e, t]`: the tip is inside, `[s, t]` keeps a
//! positive distance from the surface (so it never crosses it), and `(e, s]`
//! crosses nothing. The clearance test is the exact threshold query of
//! [`BoneSurface::segment_clears`] (exact segment-triangle distances behind a
//! conservative BVH prune), never a sampled check that could step over a
//! thin wall. `delta` is [`ENTRY_STEP_MM`].
//!
//! Evaluation allocates nothing; the caller owns every buffer. The planner
//! calls the same decision through a per-entry form (crate internal) that
//! gives the same answers for less work (see `plan` and `field`).

use nalgebra::{Point3, Unit, Vector3};
use serde::{Deserialize, Serialize};

use super::field::{ClearanceField, Rule2, Witnesses};
use crate::case::Constraints;
use crate::geometry::{BoneSurface, Sphere};

/// Distance past the entry at which the crossing test of rule 1 starts, mm:
/// the entry itself lies on the surface.
pub const ENTRY_STEP_MM: f64 = 1e-3;

/// Why a candidate trajectory was rejected (one per rule of the safety
/// definition; counted into the plan's `reasons`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RejectReason {
    /// Rule 4: longer than `max_length_mm`.
    TooLong,
    /// Rule 4: the angle to the entry's tangent plane is below `min_incidence_deg`.
    LowIncidence,
    /// Rule 6: the tip is outside the lesion.
    TipOutsideLesion,
    /// Rule 3 (or rule 1 at the tip): the tip is closer than
    /// `subchondral_margin_mm` to the surface, or outside the bone.
    TipTooShallow,
    /// Rule 5: the axis comes too close to a forbidden sphere.
    ForbiddenZone,
    /// Rule 1: the axis leaves the bone after entering it.
    LeavesBone,
    /// Rule 2: the axis comes closer than `R + cortical_clearance_mm` to the
    /// outer surface past the entry allowance.
    CorticalClearance,
    /// The entry point lies below the level of the lesser trochanter
    /// (domain.md §7: never distal to the lesser trochanter).
    EntryBelowLesserTrochanter,
    /// The predicted breach probability is above `max_breach_probability`.
    BreachProbability,
}

impl RejectReason {
    /// Every reason, in evaluation order.
    pub const ALL: [RejectReason; 9] = [
        RejectReason::TooLong,
        RejectReason::LowIncidence,
        RejectReason::TipOutsideLesion,
        RejectReason::TipTooShallow,
        RejectReason::ForbiddenZone,
        RejectReason::LeavesBone,
        RejectReason::CorticalClearance,
        RejectReason::EntryBelowLesserTrochanter,
        RejectReason::BreachProbability,
    ];

    /// The snake_case name written in the plan's `reasons`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::TooLong => "too_long",
            RejectReason::LowIncidence => "low_incidence",
            RejectReason::TipOutsideLesion => "tip_outside_lesion",
            RejectReason::TipTooShallow => "tip_too_shallow",
            RejectReason::ForbiddenZone => "forbidden_zone",
            RejectReason::LeavesBone => "leaves_bone",
            RejectReason::CorticalClearance => "cortical_clearance",
            RejectReason::EntryBelowLesserTrochanter => "entry_below_lesser_trochanter",
            RejectReason::BreachProbability => "breach_probability",
        }
    }

    /// Index into [`RejectReason::ALL`].
    #[must_use]
    pub fn index(self) -> usize {
        RejectReason::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or(0)
    }
}

/// A candidate entry point on the outer bone surface.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    /// The point on the surface, world mm.
    pub point: Point3<f64>,
    /// The outward unit normal of the surface there.
    pub normal: Unit<Vector3<f64>>,
}

/// The thresholds of the safety definition, derived once from
/// [`Constraints`] and the model's extra margin.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Needle radius `R`, mm.
    pub needle_radius_mm: f64,
    /// Required axis-to-surface distance past the allowance:
    /// `R + cortical_clearance_mm + margin_mm`.
    pub axis_clearance_mm: f64,
    /// Required tip depth: `subchondral_margin_mm + margin_mm`.
    pub tip_depth_mm: f64,
    /// `entry_allowance_mm`.
    pub entry_allowance_mm: f64,
    /// `max_length_mm`.
    pub max_length_mm: f64,
    /// `sin(min_incidence)`.
    pub min_incidence_sin: f64,
    /// Forbidden spheres with their radius grown by `R + cortical_clearance_mm`.
    pub forbidden: Vec<Sphere>,
    /// The extra margin for model uncertainty, mm, included above.
    pub margin_mm: f64,
}

impl Rules {
    /// Thresholds for the given constraints, forbidden spheres and extra
    /// model margin (mm, >= 0).
    #[must_use]
    pub fn new(c: &Constraints, forbidden: &[Sphere], margin_mm: f64) -> Self {
        let r = c.needle_radius_mm();
        let grow = r + c.cortical_clearance_mm;
        Self {
            needle_radius_mm: r,
            axis_clearance_mm: grow + margin_mm,
            tip_depth_mm: c.subchondral_margin_mm + margin_mm,
            entry_allowance_mm: c.entry_allowance_mm,
            max_length_mm: c.max_length_mm,
            min_incidence_sin: c.min_incidence_deg.to_radians().sin(),
            forbidden: forbidden
                .iter()
                .map(|s| Sphere {
                    center: s.center,
                    radius_mm: s.radius_mm + grow,
                })
                .collect(),
            margin_mm,
        }
    }

    /// Rules 3 and 1 at the tip: the tip lies inside the bone at a depth of
    /// at least [`Rules::tip_depth_mm`]. (Rule 6 is the lesion's business.)
    #[must_use]
    pub fn tip_is_deep(&self, bone: &BoneSurface, tip: &Point3<f64>) -> bool {
        bone.contains(tip) && bone.segment_clears(tip, tip, self.tip_depth_mm)
    }

    /// The full decision for one candidate whose tip already passed rules 3
    /// and 6 (see the module docs). Allocation-free.
    ///
    /// # Errors
    /// The first rule that fails, as a [`RejectReason`].
    pub fn check(
        &self,
        bone: &BoneSurface,
        entry: &Entry,
        tip: &Point3<f64>,
    ) -> Result<(), RejectReason> {
        self.check_by(
            entry,
            tip,
            |a, b| bone.segment_intersects(a, b),
            |a, b, thr| {
                if bone.segment_clears(a, b, thr) {
                    Ok(())
                } else if bone.segment_intersects(a, b) {
                    Err(RejectReason::LeavesBone)
                } else {
                    Err(RejectReason::CorticalClearance)
                }
            },
        )
    }

    /// [`Rules::check`] with the per-entry shortcuts of the planner's hot
    /// path: the crossing test of rule 1 over the entry's nearby triangles
    /// only, and rule 2 proved by the distance field where it can, its
    /// rejections proved by the entry's remembered blocking triangles where
    /// they can (the exact threshold query otherwise), and the crossing test
    /// of a rejection run only where the field could not prove clearance.
    /// The same decision as [`Rules::check`] for every tip the
    /// [`EntryLocal`] was built with.
    pub(crate) fn check_local(
        &self,
        bone: &BoneSurface,
        local: &mut EntryLocal,
        field: Option<&ClearanceField<'_>>,
        tip: &Point3<f64>,
    ) -> Result<(), RejectReason> {
        let EntryLocal {
            entry,
            near,
            witnesses,
        } = local;
        self.check_by(
            entry,
            tip,
            |a, b| match &*near {
                Some(tris) => bone.segment_intersects_among(a, b, tris),
                None => bone.segment_intersects(a, b),
            },
            |a, b, thr| {
                let crosses = match field {
                    None if bone.segment_clears(a, b, thr) => return Ok(()),
                    None => bone.segment_intersects(a, b),
                    Some(f) => match f.decide(a, b, thr, witnesses) {
                        Rule2::Clear => return Ok(()),
                        Rule2::Blocked {
                            unproved: Some((p, q)),
                        } => bone.segment_intersects_near(a, b, &p, &q),
                        Rule2::Blocked { unproved: None } => bone.segment_intersects(a, b),
                    },
                };
                Err(if crosses {
                    RejectReason::LeavesBone
                } else {
                    RejectReason::CorticalClearance
                })
            },
        )
    }

    /// The decision with the bone queries given: `intersects(start, split)`
    /// for rule 1 near the entry, `rule2(split, tip, threshold)` for rule 2
    /// (`LeavesBone` when `[split, tip]` crosses the surface,
    /// `CorticalClearance` when it only comes too close).
    #[inline]
    fn check_by(
        &self,
        entry: &Entry,
        tip: &Point3<f64>,
        intersects: impl Fn(&Point3<f64>, &Point3<f64>) -> bool,
        mut rule2: impl FnMut(&Point3<f64>, &Point3<f64>, f64) -> Result<(), RejectReason>,
    ) -> Result<(), RejectReason> {
        let v = tip - entry.point;
        let len = v.norm();
        if len.is_nan() || len > self.max_length_mm {
            return Err(RejectReason::TooLong);
        }
        if len <= ENTRY_STEP_MM {
            return Err(RejectReason::LeavesBone);
        }
        let d = v / len;
        if -d.dot(&entry.normal) < self.min_incidence_sin {
            return Err(RejectReason::LowIncidence);
        }
        for f in &self.forbidden {
            if f.segment_center_distance_mm(&entry.point, tip) < f.radius_mm {
                return Err(RejectReason::ForbiddenZone);
            }
        }
        let start = entry.point + d * ENTRY_STEP_MM;
        let split = self.clearance_start(&entry.point, tip, &v, len);
        if intersects(&start, &split) {
            return Err(RejectReason::LeavesBone);
        }
        // Rule 2. A path shorter than the allowance has `split == tip`: its
        // tip must still have the clearance (the contract's
        // `min_clearance_mm` of such a path is the tip's; found by fuzzing,
        // plan_small).
        rule2(&split, tip, self.axis_clearance_mm)
    }

    /// Where rule 2 starts on the axis `entry -> tip` (`v = tip - entry`,
    /// `len = |v|`): `entry_allowance_mm` past the entry, or the tip itself
    /// when the axis is shorter. One expression for the decision and the
    /// reported clearance.
    #[inline]
    fn clearance_start(
        &self,
        entry: &Point3<f64>,
        tip: &Point3<f64>,
        v: &Vector3<f64>,
        len: f64,
    ) -> Point3<f64> {
        if len > self.entry_allowance_mm {
            entry + v * (self.entry_allowance_mm / len)
        } else {
            *tip
        }
    }

    /// Where the clearance part of the axis `entry -> tip` starts (rule 2
    /// and [`Rules::min_clearance_mm`] measure `[split, tip]`).
    #[inline]
    pub(crate) fn clearance_split(&self, entry: &Point3<f64>, tip: &Point3<f64>) -> Point3<f64> {
        let v = tip - entry;
        self.clearance_start(entry, tip, &v, v.norm())
    }

    /// The contract's `min_clearance_mm` of a trajectory: the exact smallest
    /// distance from the axis past the entry allowance to the surface, minus
    /// the needle radius. For a trajectory shorter than the allowance, the
    /// clearance of the tip alone.
    #[must_use]
    pub fn min_clearance_mm(
        &self,
        bone: &BoneSurface,
        entry: &Point3<f64>,
        tip: &Point3<f64>,
    ) -> f64 {
        let v = tip - entry;
        let split = self.clearance_start(entry, tip, &v, v.norm());
        bone.segment_distance_mm(&split, tip) - self.needle_radius_mm
    }

    /// [`Rules::min_clearance_mm`] when the distance behind it is below
    /// `cap_mm + needle_radius_mm`, bit for bit (same split point, same
    /// expression); otherwise a value `>= cap_mm` up to one rounding of the
    /// subtraction (about `1e-15` relative). For scores that saturate: pass a
    /// cap slightly above the saturation point.
    #[must_use]
    pub fn min_clearance_below_mm(
        &self,
        bone: &BoneSurface,
        entry: &Point3<f64>,
        tip: &Point3<f64>,
        cap_mm: f64,
    ) -> f64 {
        let v = tip - entry;
        let split = self.clearance_start(entry, tip, &v, v.norm());
        bone.segment_distance_below_mm(&split, tip, cap_mm + self.needle_radius_mm)
            - self.needle_radius_mm
    }
    /// [`Rules::min_clearance_below_mm`], bit for bit, with the distance
    /// field: when its balls prove the axis past the allowance at least
    /// `cap_mm + needle_radius_mm` from the surface (by more than the
    /// rounding of the exact distance), the capped distance is the cap
    /// itself and no distance query runs.
    pub(crate) fn min_clearance_below_with(
        &self,
        bone: &BoneSurface,
        field: Option<&ClearanceField<'_>>,
        entry: &Point3<f64>,
        tip: &Point3<f64>,
        cap_mm: f64,
    ) -> f64 {
        let split = self.clearance_split(entry, tip);
        let cap = cap_mm + self.needle_radius_mm;
        if field.is_some_and(|f| f.proves_clear(&split, tip, cap)) {
            return cap - self.needle_radius_mm;
        }
        bone.segment_distance_below_mm(&split, tip, cap) - self.needle_radius_mm
    }
}

/// What the hot path precomputes once per entry for [`Rules::check_local`]:
/// the leaf triangles that may touch the first `entry_allowance_mm` of any
/// axis from the entry to one of the tips (a cone around those axes).
pub(crate) struct EntryLocal {
    entry: Entry,
    /// `None` when the tips' directions do not fit in a cone narrower than a
    /// half-space (then the full crossing test runs).
    near: Option<Vec<u32>>,
    /// Triangles that blocked rule 2 for earlier tips of this entry.
    witnesses: Witnesses,
}

impl EntryLocal {
    /// Precomputes the cone of the axes from `entry` to `tips` (tips at
    /// most [`ENTRY_STEP_MM`] away are ignored: [`Rules::check`] rejects them
    /// before any bone query).
    pub(crate) fn new(
        rules: &Rules,
        bone: &BoneSurface,
        entry: &Entry,
        tips: &[Point3<f64>],
    ) -> Self {
        let dirs = || {
            tips.iter().filter_map(|t| {
                let v = t - entry.point;
                let len = v.norm();
                (len > ENTRY_STEP_MM && len.is_finite()).then(|| v / len)
            })
        };
        let sum: Vector3<f64> = dirs().sum();
        let near = sum.try_normalize(1e-9).and_then(|axis| {
            let cos = dirs().map(|d| d.dot(&axis)).fold(1.0f64, f64::min);
            // Widen for rounding (the decision recomputes the directions).
            let cos = cos - 1e-9;
            (cos > 0.2).then(|| {
                let mut out = Vec::new();
                let len = rules.entry_allowance_mm * (1.0 + 1e-9) + 1e-6;
                bone.triangles_near_cone(&entry.point, &axis, cos, len, &mut out);
                out
            })
        });
        Self {
            entry: *entry,
            near,
            witnesses: Witnesses::default(),
        }
    }
}
