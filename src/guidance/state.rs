//! The safety state of a straight needle on its current line: where it
//! entered, its signed clearance, whether it breached, and how far it may
//! still advance (the contract's `check` definitions, exactly).
//!
//! With the needle's tip `t` and unit direction `d` (entry towards tip):
//!
//! * **entry** `e`: where the axis crosses the outer surface `S`. A straight
//!   needle occupies its whole line behind the tip, so the physical entry
//!   is the *farthest* crossing of the ray `t - s d`, `s > 0`: the first
//!   time the line, followed from outside towards the tip, enters the bone.
//!   No crossing: the needle has not reached the bone (no entry).
//! * **covered part**: the axis from `s0 = e + entry_allowance_mm d` to `t`
//!   (empty while `|t - e| <= entry_allowance_mm`).
//! * **clearance**: `min over the covered part of depth(p) - R`, with
//!   `depth(p) = -signed_distance(p)` (positive inside) and `R` the needle
//!   radius; negative once the needle's body is outside. Inside, it is the
//!   exact segment distance ([`BoneSurface::segment_distance_mm`]) minus
//!   `R`; when part of the axis is outside, the largest outside distance is
//!   found by sampling `signed_distance` every [`OUTSIDE_SAMPLE_MM`] (it is
//!   1-Lipschitz, so the value is within half a step; its sign, which
//!   decides `breach`, is exact). An empty covered part breaches nothing:
//!   the clearance is then the tip's, floored at 0.
//! * **breach** exactly when the clearance is below 0.
//! * **advance**: the largest `a >= 0` such that every tip position
//!   `t + a' d`, `0 <= a' <= a`, keeps rules 1, 2, 3 and 5 of the safety
//!   definition and `max_length_mm` (rule 4's length), and 0 when one is
//!   already broken. Length and forbidden spheres are closed forms (a
//!   ray-sphere intersection); rules 1 to 3 reduce to "the new part
//!   `[t, t + a d]` keeps a distance of at least `tau` from `S`" with
//!   `tau = subchondral_margin_mm` (rule 3; rule 1 follows since `tau > 0`
//!   and the tip is inside) and `tau = max(subchondral_margin_mm, R +
//!   cortical_clearance_mm)` beyond the entry allowance (rule 2). That is
//!   monotone in `a`, and decided exactly by [`BoneSurface::segment_clears`]:
//!   bisection to [`ADVANCE_TOLERANCE_MM`], keeping the lower (safe) end, so
//!   the answer is never above the true one and at most the tolerance
//!   below it.

use nalgebra::{Point3, Unit, Vector3};

use crate::case::Constraints;
use crate::geometry::{BoneSurface, Sphere};
use crate::planning::evaluate::{RejectReason, ENTRY_STEP_MM};

/// Step of the samples that find how far outside the bone the axis goes,
/// mm (the outside depth is then exact to half this step).
pub const OUTSIDE_SAMPLE_MM: f64 = 0.05;

/// Bisection tolerance of [`NeedleState::advance_safe_mm`], mm: the value is
/// at most this much below the exact limit, never above it.
pub const ADVANCE_TOLERANCE_MM: f64 = 1e-3;

/// The state of a needle on its line against a bone surface (module docs).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NeedleState {
    /// Where the axis crosses the outer surface (the physical entry), world
    /// mm; `None` when the line never meets the bone.
    pub entry_mm: Option<Point3<f64>>,
    /// `|tip - entry|`, mm (0 without an entry).
    pub inserted_mm: f64,
    /// Signed depth of the tip below the surface, mm (negative outside).
    pub tip_depth_mm: f64,
    /// The contract's signed `min_clearance_mm`, mm.
    pub min_clearance_mm: f64,
    /// Distance from the entry of the axis point where the clearance is
    /// smallest, mm (`None` when the covered part is empty).
    pub min_clearance_at_mm: Option<f64>,
    /// `min_clearance_mm < 0`.
    pub breach: bool,
    /// Rules already broken at the current position (advance is then 0), in
    /// evaluation order.
    pub broken: Vec<RejectReason>,
    /// How far the needle may still advance along its direction, mm (>= 0).
    pub advance_safe_mm: f64,
    /// The rule that ends the safe advance (`None` when one is already
    /// broken).
    pub advance_limit: Option<RejectReason>,
}

/// Largest outside distance of the axis on `[a, b]` (>= 0), sampled every
/// [`OUTSIDE_SAMPLE_MM`], and where (distance from `a`).
fn max_outside(bone: &BoneSurface, a: &Point3<f64>, b: &Point3<f64>) -> (f64, f64) {
    let v = b - a;
    let len = v.norm();
    let n = ((len / OUTSIDE_SAMPLE_MM).ceil() as usize).clamp(1, 1_000_000);
    let mut best = (0.0, 0.0);
    for k in 0..=n {
        let s = len * k as f64 / n as f64;
        let p = if len > 0.0 { a + v * (s / len) } else { *a };
        let sd = bone.signed_distance_mm(&p);
        if sd > best.0 {
            best = (sd, s);
        }
    }
    best
}

/// Smallest `a >= 0` where the ray `t + a d` enters the sphere, if any.
fn ray_enters_sphere(t: &Point3<f64>, d: &Vector3<f64>, s: &Sphere) -> Option<f64> {
    let m = t - s.center;
    let b = m.dot(d);
    let c = m.norm_squared() - s.radius_mm * s.radius_mm;
    if c <= 0.0 {
        return Some(0.0);
    }
    let disc = b * b - c;
    if b >= 0.0 || disc < 0.0 {
        return None;
    }
    Some(-b - disc.sqrt())
}

/// The state of the needle with tip `tip_mm` and direction `direction`
/// (entry towards tip) against `bone` under `constraints` and the
/// `forbidden` spheres (their own radii; the rule adds `R +
/// cortical_clearance_mm`). See the module docs for the definitions.
///
/// Non-finite input gives a state with no entry, clearance 0, no breach and
/// no advance (never NaN).
///
/// # Example
/// ```
/// use avnplan::geometry::{BoneSurface, TriMesh};
/// use avnplan::guidance::needle_state;
/// use avnplan::Constraints;
/// use nalgebra::{Point3, Unit, Vector3};
/// // A 40 mm cube, corner at the origin; a needle along +x at y = z = 20.
/// let v: Vec<Point3<f64>> = (0..8)
///     .map(|i| Point3::new((i & 1) as f64, ((i >> 1) & 1) as f64, ((i >> 2) & 1) as f64) * 40.0)
///     .collect();
/// let t = vec![[0, 2, 1], [1, 2, 3], [4, 5, 6], [5, 7, 6], [0, 1, 4], [1, 5, 4],
///              [2, 6, 3], [3, 6, 7], [0, 4, 2], [2, 4, 6], [1, 3, 5], [3, 7, 5]];
/// let bone = BoneSurface::new(TriMesh::new(v, t)?)?;
/// let s = needle_state(&bone, &Constraints::default(), &[],
///     &Point3::new(20.0, 20.0, 20.0), &Unit::new_normalize(Vector3::x()));
/// approx::assert_relative_eq!(s.entry_mm.unwrap(), Point3::new(0.0, 20.0, 20.0), epsilon = 1e-9);
/// // Smallest at the allowance point, 10 mm from the entry face: 10 - R.
/// approx::assert_relative_eq!(s.min_clearance_mm, 10.0 - 1.6, epsilon = 1e-9);
/// assert!(!s.breach);
/// // The tip may go on until it is 5 mm from the far face (x = 35).
/// approx::assert_relative_eq!(s.advance_safe_mm, 15.0, epsilon = 2e-3);
/// # Ok::<(), avnplan::Error>(())
/// ```
#[must_use]
pub fn needle_state(
    bone: &BoneSurface,
    constraints: &Constraints,
    forbidden: &[Sphere],
    tip_mm: &Point3<f64>,
    direction: &Unit<Vector3<f64>>,
) -> NeedleState {
    let finite = tip_mm.iter().chain(direction.iter()).all(|x| x.is_finite());
    if !finite {
        return NeedleState {
            entry_mm: None,
            inserted_mm: 0.0,
            tip_depth_mm: 0.0,
            min_clearance_mm: 0.0,
            min_clearance_at_mm: None,
            breach: false,
            broken: vec![RejectReason::LeavesBone],
            advance_safe_mm: 0.0,
            advance_limit: None,
        };
    }
    let t = *tip_mm;
    let d = direction.into_inner();
    let r = constraints.needle_radius_mm();
    let allowance = constraints.entry_allowance_mm;
    let tip_depth = -bone.signed_distance_mm(&t);
    let tip_inside = bone.contains(&t);

    // Entry: the farthest crossing behind the tip.
    let back = Unit::new_unchecked(-d);
    let mut xs = Vec::new();
    bone.ray_crossings(&t, &back, f64::INFINITY, &mut xs);
    let entry = xs.last().map(|&s| t - d * s);
    let len = entry.map_or(0.0, |e| (t - e).norm());

    // Clearance over the covered part.
    let (clearance, at) = match entry {
        Some(e) if len > allowance => {
            let split = e + d * allowance;
            if tip_inside && !bone.segment_intersects(&split, &t) {
                let dist = bone.segment_distance_mm(&split, &t);
                // Where: the closest sample (for the advice only).
                (dist - r, Some(allowance + closest_along(bone, &split, &t)))
            } else {
                let (out, s) = max_outside(bone, &split, &t);
                (-out - r, Some(allowance + s))
            }
        }
        _ => ((tip_depth - r).max(0.0), None),
    };
    let breach = clearance < 0.0;

    // Rules already broken.
    let c = constraints;
    let grown: Vec<Sphere> = forbidden
        .iter()
        .map(|s| Sphere {
            center: s.center,
            radius_mm: s.radius_mm + r + c.cortical_clearance_mm,
        })
        .collect();
    let mut broken = Vec::new();
    if len > c.max_length_mm {
        broken.push(RejectReason::TooLong);
    }
    let rule1 = match entry {
        Some(e) => {
            tip_inside
                && (len <= ENTRY_STEP_MM || !bone.segment_intersects(&(e + d * ENTRY_STEP_MM), &t))
        }
        None => false,
    };
    if !rule1 {
        broken.push(RejectReason::LeavesBone);
    }
    let need_axis = r + c.cortical_clearance_mm;
    if rule1 {
        if let Some(e) = entry {
            if len > allowance && !bone.segment_clears(&(e + d * allowance), &t, need_axis) {
                broken.push(RejectReason::CorticalClearance);
            }
        }
    }
    if !(tip_inside && tip_depth >= c.subchondral_margin_mm) {
        broken.push(RejectReason::TipTooShallow);
    }
    let from = entry.unwrap_or(t);
    if grown
        .iter()
        .any(|s| s.segment_center_distance_mm(&from, &t) < s.radius_mm)
    {
        broken.push(RejectReason::ForbiddenZone);
    }
    broken.sort_by_key(|r| r.index());

    let (advance, limit) = if broken.is_empty() {
        let (a, l) = advance(bone, c, &grown, &t, &d, len);
        (a, Some(l))
    } else {
        (0.0, None)
    };
    NeedleState {
        entry_mm: entry,
        inserted_mm: len,
        tip_depth_mm: if tip_depth.is_finite() {
            tip_depth
        } else {
            0.0
        },
        min_clearance_mm: clearance,
        min_clearance_at_mm: at,
        breach,
        broken,
        advance_safe_mm: advance,
        advance_limit: limit,
    }
}

/// Distance from `a` of the point of `[a, b]` closest to the surface
/// (golden-section refinement of 1 mm samples; for the advice's wording).
fn closest_along(bone: &BoneSurface, a: &Point3<f64>, b: &Point3<f64>) -> f64 {
    let v = b - a;
    let len = v.norm();
    if len <= 0.0 {
        return 0.0;
    }
    let at = |s: f64| bone.closest_point(&(a + v * (s / len))).distance_mm;
    let n = (len.ceil() as usize).max(1);
    let mut best = (f64::INFINITY, 0.0);
    for k in 0..=n {
        let s = len * k as f64 / n as f64;
        let dd = at(s);
        if dd < best.0 {
            best = (dd, s);
        }
    }
    let (mut lo, mut hi) = ((best.1 - 1.0).max(0.0), (best.1 + 1.0).min(len));
    for _ in 0..40 {
        let m1 = lo + (hi - lo) / 3.0;
        let m2 = hi - (hi - lo) / 3.0;
        if at(m1) < at(m2) {
            hi = m2;
        } else {
            lo = m1;
        }
    }
    0.5 * (lo + hi)
}

/// The safe advance when no rule is broken now (module docs).
fn advance(
    bone: &BoneSurface,
    c: &Constraints,
    grown: &[Sphere],
    t: &Point3<f64>,
    d: &Vector3<f64>,
    len: f64,
) -> (f64, RejectReason) {
    let mut hi = (c.max_length_mm - len).max(0.0);
    let mut limit = RejectReason::TooLong;
    for s in grown {
        if let Some(a) = ray_enters_sphere(t, d, s) {
            if a < hi {
                hi = a;
                limit = RejectReason::ForbiddenZone;
            }
        }
    }
    let u = Unit::new_unchecked(*d);
    if let Some(h) = bone.first_hit(t, &u, hi) {
        if h.t_mm < hi {
            hi = h.t_mm;
            limit = RejectReason::LeavesBone;
        }
    }
    let margin = c.subchondral_margin_mm;
    let deep = margin.max(c.needle_radius_mm() + c.cortical_clearance_mm);
    // Advance left before the tip passes the entry allowance.
    let before = (c.entry_allowance_mm - len).max(0.0);
    let clears = |a: f64| -> bool {
        let end = t + d * a;
        if a <= before {
            bone.segment_clears(t, &end, margin)
        } else {
            let split = t + d * before;
            (before <= 0.0 || bone.segment_clears(t, &split, margin))
                && bone.segment_clears(&split, &end, deep)
        }
    };
    if clears(hi) {
        return (hi, limit);
    }
    let mut lo = 0.0;
    let mut top = hi;
    while top - lo > ADVANCE_TOLERANCE_MM {
        let mid = 0.5 * (lo + top);
        if clears(mid) {
            lo = mid;
        } else {
            top = mid;
        }
    }
    // Which threshold stopped it: the tip-depth margin, or the axis clearance.
    let end = t + d * top;
    let limit = if bone.segment_clears(t, &end, margin) {
        RejectReason::CorticalClearance
    } else {
        RejectReason::TipTooShallow
    };
    (lo, limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::TriMesh;
    use approx::assert_relative_eq;

    /// A box [0, 100] x [0, 30] x [0, 30], outward triangles.
    fn slab() -> BoneSurface {
        let m = TriMesh::cuboid(Point3::origin(), Point3::new(100.0, 30.0, 30.0)).unwrap();
        BoneSurface::new(m).unwrap()
    }

    fn dir(x: f64, y: f64, z: f64) -> Unit<Vector3<f64>> {
        Unit::new_normalize(Vector3::new(x, y, z))
    }

    #[test]
    fn straight_needle_known_answers() {
        let bone = slab();
        let c = Constraints::default();
        let s = needle_state(
            &bone,
            &c,
            &[],
            &Point3::new(40.0, 15.0, 15.0),
            &dir(1.0, 0.0, 0.0),
        );
        assert_relative_eq!(
            s.entry_mm.unwrap(),
            Point3::new(0.0, 15.0, 15.0),
            epsilon = 1e-9
        );
        assert_relative_eq!(s.inserted_mm, 40.0, epsilon = 1e-9);
        // Smallest at the allowance point, 10 mm from the entry face.
        assert_relative_eq!(s.min_clearance_mm, 10.0 - 1.6, epsilon = 1e-9);
        assert!(!s.breach && s.broken.is_empty());
        // Tip may go to x = 95 (5 mm subchondral margin at the far face).
        assert_relative_eq!(s.advance_safe_mm, 55.0, epsilon = ADVANCE_TOLERANCE_MM);
        assert!(s.advance_safe_mm <= 55.0);
        assert_eq!(s.advance_limit, Some(RejectReason::TipTooShallow));
    }

    #[test]
    fn clearance_limits_the_advance_when_the_axis_nears_a_wall() {
        let bone = slab();
        let c = Constraints::default();
        // Rising towards z = 30 at slope 0.1: axis-to-wall distance 3.6 reached
        // when z = 30 - 3.6 / cos -> from the tip at z = 15 + 4 = 19.
        let d = dir(1.0, 0.0, 0.2);
        let tip = Point3::new(40.0, 15.0, 19.0);
        let s = needle_state(&bone, &c, &[], &tip, &d);
        assert!(s.broken.is_empty(), "{:?}", s.broken);
        // Rule 3 (5 mm from the top face) binds before rule 2 (3.6 mm):
        // the tip may rise to z = 25, at d.z mm of height per mm of advance.
        let expect = (30.0 - c.subchondral_margin_mm - 19.0) / d.z;
        assert_relative_eq!(s.advance_safe_mm, expect, epsilon = 2e-3);
        assert!(s.advance_safe_mm <= expect + 1e-9);
    }

    #[test]
    fn breach_is_signed_and_exact_at_the_boundary() {
        let bone = slab();
        let c = Constraints::default();
        let r = c.needle_radius_mm();
        // Axis parallel to the z = 30 face at distance r +- 0.01.
        for (gap, expect_breach) in [(r + 0.01, false), (r - 0.01, true)] {
            let tip = Point3::new(60.0, 15.0, 30.0 - gap);
            let s = needle_state(&bone, &c, &[], &tip, &dir(1.0, 0.0, 0.0));
            assert_relative_eq!(s.min_clearance_mm, gap - r, epsilon = 1e-9);
            assert_eq!(s.breach, expect_breach);
            // Too close for the 2 mm cortical clearance: no advance.
            assert_eq!(s.advance_safe_mm, 0.0);
            assert!(s.broken.contains(&RejectReason::CorticalClearance));
        }
        // Axis leaving through the top: clearance is minus (outside depth + r).
        let tip = Point3::new(60.0, 15.0, 32.0);
        let s = needle_state(&bone, &c, &[], &tip, &dir(1.0, 0.0, 0.05));
        assert!(s.breach);
        assert_relative_eq!(s.min_clearance_mm, -2.0 - r, epsilon = OUTSIDE_SAMPLE_MM);
        assert!(s.broken.contains(&RejectReason::LeavesBone));
    }

    #[test]
    fn no_entry_and_short_needles() {
        let bone = slab();
        let c = Constraints::default();
        // Pointing at the bone from outside: no entry, nothing covered.
        let s = needle_state(
            &bone,
            &c,
            &[],
            &Point3::new(-5.0, 15.0, 15.0),
            &dir(1.0, 0.0, 0.0),
        );
        assert!(s.entry_mm.is_none() && !s.breach);
        assert_eq!(s.advance_safe_mm, 0.0);
        // 4 mm in: within the entry allowance, no breach, but the tip is
        // shallower than the subchondral margin (rule 3) so no advance.
        let s = needle_state(
            &bone,
            &c,
            &[],
            &Point3::new(4.0, 15.0, 15.0),
            &dir(1.0, 0.0, 0.0),
        );
        assert!(!s.breach);
        assert!(s.broken.contains(&RejectReason::TipTooShallow));
        // NaN never leaks.
        let s = needle_state(
            &bone,
            &c,
            &[],
            &Point3::new(f64::NAN, 0.0, 0.0),
            &dir(1.0, 0.0, 0.0),
        );
        assert!(s.min_clearance_mm.is_finite() && s.advance_safe_mm == 0.0);
    }

    #[test]
    fn forbidden_sphere_and_length_limit() {
        let bone = slab();
        let mut c = Constraints::default();
        let f = Sphere {
            center: Point3::new(80.0, 15.0, 15.0),
            radius_mm: 2.0,
        };
        let s = needle_state(
            &bone,
            &c,
            &[f],
            &Point3::new(40.0, 15.0, 15.0),
            &dir(1.0, 0.0, 0.0),
        );
        // Grown radius 2 + 1.6 + 2 = 5.6: tip may reach x = 74.4.
        assert_relative_eq!(s.advance_safe_mm, 34.4, epsilon = 1e-9);
        assert_eq!(s.advance_limit, Some(RejectReason::ForbiddenZone));
        c.max_length_mm = 50.0;
        let s = needle_state(
            &bone,
            &c,
            &[],
            &Point3::new(40.0, 15.0, 15.0),
            &dir(1.0, 0.0, 0.0),
        );
        assert_relative_eq!(s.advance_safe_mm, 10.0, epsilon = 1e-9);
        assert_eq!(s.advance_limit, Some(RejectReason::TooLong));
    }
}
