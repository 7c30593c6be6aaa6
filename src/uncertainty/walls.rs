//! Judging a line on a sampled reconstructed femur without meshing it:
//! the rules are evaluated on the femur's analytic parts, and only the
//! *measured* walls count as bone surface.
//!
//! A [`ReconstructedFemur`] is made of two kinds of surface:
//!
//! * **measured walls**, which the views see: the head sphere, the neck
//!   tube between its first measured section and the head centre, the shaft
//!   tube over its measured sections. Annotation noise moves them, and a
//!   Monte Carlo sample of them is a plausible position of the true wall;
//! * **fill**, which no view measures: the lateral trochanteric cone, the
//!   neck's continuation down to the neck-shaft junction and the shaft's
//!   continuation up to it (and their flat end caps). Fill is a deliberately
//!   conservative body *inside* the true trochanteric region, whose true
//!   surface lies outside it by an unknown amount (up to about 20 mm on the
//!   phantoms). A fill surface is not a position of the true bone's
//!   surface: a line crossing it, or passing close to it, tells nothing
//!   about a breach of the true bone.
//!
//! So, on a sampled femur (inside = `value_mm < 0`):
//!
//! * the **wall distance** `w(p)` is a lower bound of the distance from `p`
//!   to the measured walls: `max(-min_i f_i(p), min_j dist_j(p)) -
//!   shrink`, where `f_i` are the component functions (head, neck, shaft,
//!   lateral body; each `|f_i|` is at most the distance to that component's
//!   surface, so `-min_i f_i` is at most the distance to the union's
//!   surface) and `dist_j` the exact distances to the head sphere and to the
//!   measured lateral patches of the tubes (the elliptical wall of the
//!   nearest measured section, by Eberly's robust point-to-ellipse
//!   distance). Both terms are lower bounds, hence so is their maximum; the
//!   second one discards the fill surfaces.
//! * a crossing of the line with the solid's surface is a **wall crossing**
//!   when the crossing point lies within [`WALL_TOL_MM`] of a measured wall
//!   it is level with (the head sphere; a tube only between its first and
//!   last measured sections: beyond a rim the wall gives way to fill, where
//!   the true bone flares into the trochanter or metaphysis), otherwise a
//!   **fill crossing**.
//!
//! * the **exact wall distance** (rule 2, and rule 3 when the lower bound
//!   fails it) is the distance to the nearest measured-wall point of the
//!   sampled surface itself, its blend fillets included: rays are marched
//!   across the axis (a segment's nearest surface point is seen across the
//!   axis from an inner point, or from an end within the half-sphere facing
//!   away from the segment) to their first crossing that is a wall crossing
//!   (fill crossings are passed through). The lower bound `w` prunes the
//!   search (branch and bound over 0.3 mm cells of the axis). Why: where two
//!   walls meet, `w` is loose. Under the head-neck junction the nearest
//!   point of the sphere lies inside the neck and the nearest point of the
//!   neck wall inside the head, so the true distance (to the junction
//!   circle) exceeds both depths; on the phantoms the bound sat 0.42 mm
//!   below the truth there on average (and 0.04 mm mid-neck), which made
//!   lines with a true clearance of 2-3.5 mm look like breaches. The exact
//!   distance is computed up to `axis_clearance +` [`EXACT_BAND_MM`]; above
//!   it the larger of `w` and that limit stands for the clearance (it
//!   decides rule 2 all the same).
//!
//! The line is walked from `entry - BACKOFF_MM d` to the tip in steps of
//! `step` (crossings found by sign changes, refined by bisection): the
//! entry is the first crossing into the solid. Then, in the planner's order
//! ([`Rules::check`]): rule 4 length (entry to tip), rule 4 incidence (only
//! at a wall entry: the true bone's surface at a fill entry is not seen),
//! rule 5 (forbidden spheres), rule 1 (any wall crossing after the entry:
//! the axis left the measured bone or came back into it; fill crossings are
//! taken to stay inside the unseen trochanter), rule 2 (the exact wall
//! distance of the axis past the entry allowance minus `R`; with
//! [`super::UncertaintyOptions::wall_distance_lower_bound`], `min w - R`,
//! sampled at `step` and refined by a golden-section search around the
//! smallest sample), rule 3 (tip inside, `w(tip) >= tip_depth_mm`, else its
//! exact wall distance).
//!
//! A crossing chord shorter than `step` can be missed; it lies within
//! `step / 2` of a wall, which rule 2 then sees past the allowance.

use nalgebra::{Point3, Unit, Vector3};

use crate::planning::{RejectReason, Rules};
use crate::reconstruction::{ReconstructedFemur, Tube, BLEND_MM};

use super::BACKOFF_MM;

/// A crossing point closer than this to a measured wall is a wall
/// crossing, mm: the smooth union moves the surface by up to
/// `BLEND_MM / 4` in the fillets.
pub const WALL_TOL_MM: f64 = BLEND_MM / 4.0 + 0.05;

/// Lower bound of the distance from `p` (world mm) to the measured walls
/// of `femur` (head sphere, neck and shaft over their measured sections),
/// mm, minus the femur's shrink: positive inside, away from the walls (see
/// [`crate::uncertainty`], "One sample"). `None` for a femur whose tubes
/// have no sections.
///
/// # Example
/// See `tests/it/uncertainty.rs`; a femur needs fitted tubes.
#[must_use]
pub fn measured_wall_depth_mm(femur: &ReconstructedFemur, p: &Point3<f64>) -> Option<f64> {
    SampledFemur::new(femur).map(|s| s.wall_depth_mm(p))
}

/// Distance from `p` (world mm) to the nearest *measured wall* point of the
/// sampled surface of `femur` (see [`crate::uncertainty`], "One sample"),
/// minus the femur's shrink, mm: the first crossing of the surface that
/// lies on a measured wall, over a fan of 2048 rays (Fibonacci directions,
/// angular spacing about 0.08 rad, so the result exceeds the exact
/// distance by at most about 0.1 %; crossings of the fill are passed
/// through). Unlike [`measured_wall_depth_mm`] (a lower bound, loose by up
/// to about 0.5 mm near the head-neck junction) it follows the sampled
/// surface, its fillets included. `INFINITY` when no wall lies within
/// [`MAX_RAY_MM`]; `None` for a femur whose tubes have no sections.
///
/// # Example
/// See `tests/it/uncertainty.rs`; a femur needs fitted tubes.
#[must_use]
pub fn measured_wall_distance_mm(femur: &ReconstructedFemur, p: &Point3<f64>) -> Option<f64> {
    let s = SampledFemur::new(femur)?;
    let d = Vector3::z();
    let best = s
        .hemisphere_fan_mm(p, &d, 1024, MAX_RAY_MM)
        .min(s.hemisphere_fan_mm(p, &-d, 1024, MAX_RAY_MM));
    Some(best - femur.shrink_mm)
}

/// Longest ray of the exact wall distance, mm (well beyond the widest
/// section's diameter).
pub const MAX_RAY_MM: f64 = 60.0;

/// Smallest step of the ray march, mm: a surface sliver thinner than this
/// along a ray can be stepped over (a neighbouring ray meets it).
const MIN_RAY_STEP_MM: f64 = 0.02;

/// Rays of the coarse fan around the axis (10 degrees apart), refined by a
/// golden-section search around the nearest.
const FAN_RAYS: usize = 36;

/// Rays of the half-sphere fan at the ends of the judged axis.
const END_FAN_RAYS: usize = 128;

/// Length of the cells of the axis searched for the exact minimum, mm.
const CELL_MM: f64 = 0.3;

/// Band above rule 2's axis clearance within which the exact distance is
/// computed, mm: a lower bound above `axis_clearance + EXACT_BAND_MM`
/// already decides rule 2 (and then stands for the clearance).
pub const EXACT_BAND_MM: f64 = 1.0;

/// The femur's smooth minimum (blend [`BLEND_MM`]).
fn smin(a: f64, b: f64) -> f64 {
    let k = BLEND_MM;
    let h = (k - (a - b).abs()).max(0.0) / k;
    a.min(b) - k * h * h / 4.0
}

/// What one sample says about one trajectory.
#[derive(Debug, Clone, Copy)]
pub(super) struct LineVerdict {
    pub breach: Option<RejectReason>,
    pub clearance_mm: f64,
}

/// Unsigned distance from `(x, y)` to the ellipse `x^2/a^2 + y^2/b^2 = 1`
/// (Eberly, "Distance from a point to an ellipse", robust bisection).
pub(super) fn ellipse_distance(a: f64, b: f64, x: f64, y: f64) -> f64 {
    let (mut e0, mut e1, mut y0, mut y1) = (a.abs(), b.abs(), x.abs(), y.abs());
    if e0 < e1 {
        std::mem::swap(&mut e0, &mut e1);
        std::mem::swap(&mut y0, &mut y1);
    }
    if e1.is_nan() || e1 <= 0.0 {
        return f64::NAN;
    }
    if y1 > 0.0 {
        if y0 > 0.0 {
            let z0 = y0 / e0;
            let z1 = y1 / e1;
            let g = z0 * z0 + z1 * z1 - 1.0;
            if g == 0.0 {
                return 0.0;
            }
            let r0 = (e0 / e1).powi(2);
            let n0 = r0 * z0;
            let mut s0 = z1 - 1.0;
            let mut s1 = if g < 0.0 { 0.0 } else { n0.hypot(z1) - 1.0 };
            let mut s = 0.5 * (s0 + s1);
            for _ in 0..200 {
                s = 0.5 * (s0 + s1);
                if s == s0 || s == s1 {
                    break;
                }
                let g = (n0 / (s + r0)).powi(2) + (z1 / (s + 1.0)).powi(2) - 1.0;
                if g > 0.0 {
                    s0 = s;
                } else if g < 0.0 {
                    s1 = s;
                } else {
                    break;
                }
            }
            let x0 = r0 * y0 / (s + r0);
            let x1 = y1 / (s + 1.0);
            ((x0 - y0).powi(2) + (x1 - y1).powi(2)).sqrt()
        } else {
            (y1 - e1).abs()
        }
    } else {
        let numer0 = e0 * y0;
        let denom0 = e0 * e0 - e1 * e1;
        if numer0 < denom0 {
            let xde0 = numer0 / denom0;
            let x0 = e0 * xde0;
            let x1 = e1 * (1.0 - xde0 * xde0).max(0.0).sqrt();
            ((x0 - y0).powi(2) + x1 * x1).sqrt()
        } else {
            (y0 - e0).abs()
        }
    }
}

/// A tube's implicit value on its range, as the femur's but without the
/// section's visual-hull pull-in (see the module docs).
fn tube_value(tube: &Tube, range: [f64; 2], p: &Point3<f64>) -> f64 {
    let t = tube.axis.coordinate_mm(p);
    let d = tube.axis.direction.into_inner();
    let s = tube.section_at(t);
    let e1 = s.major_dir.into_inner();
    let e2 = d.cross(&e1);
    let o = p - s.center;
    let (x, y) = (o.dot(&e1), o.dot(&e2));
    let [a, b] = s.semi_axes_mm;
    let rho = ((x / a).powi(2) + (y / b).powi(2)).sqrt();
    let radial = (rho - 1.0) * a.min(b);
    radial.max(range[0] - t).max(t - range[1])
}

/// Distance from `p` to a tube's elliptical wall over the measured range
/// `wall` (axis coordinates), mm, and whether `p` lies level with that
/// range (not beyond its rims).
fn tube_wall_distance(tube: &Tube, wall: [f64; 2], p: &Point3<f64>) -> (f64, bool) {
    let t = tube.axis.coordinate_mm(p);
    let d = tube.axis.direction.into_inner();
    let tc = t.clamp(wall[0], wall[1]);
    let s = tube.section_at(tc);
    let e1 = s.major_dir.into_inner();
    let e2 = d.cross(&e1);
    let o = p - s.center;
    let (x, y, z) = (o.dot(&e1), o.dot(&e2), o.dot(&d));
    let [a, b] = s.semi_axes_mm;
    let dr = ellipse_distance(a, b, x, y);
    let beyond = (t - tc).abs() > 0.0;
    let dz = if beyond { z } else { 0.0 };
    (dr.hypot(dz), !beyond)
}

/// The sampled femur's parts at a point.
struct Parts {
    /// `value_mm` of the whole femur (smooth union, with the shrink).
    value: f64,
    /// Lower bound of the distance to the measured walls (see module docs).
    wall_depth: f64,
    /// Distance to the nearest measured wall (unsigned, no shrink).
    wall_dist: f64,
    /// Distance to the nearest measured wall among those `p` is level
    /// with (head; a tube only within its measured range), mm.
    level_wall_dist: f64,
}

/// A sampled femur with its measured ranges.
pub(super) struct SampledFemur<'a> {
    f: &'a ReconstructedFemur,
    neck_wall: [f64; 2],
    shaft_wall: [f64; 2],
}

impl<'a> SampledFemur<'a> {
    pub(super) fn new(f: &'a ReconstructedFemur) -> Option<Self> {
        let n0 = f.neck.sections.first()?.t_mm;
        let s0 = f.shaft.sections.first()?.t_mm;
        let s1 = f.shaft.sections.last()?.t_mm;
        Some(Self {
            f,
            neck_wall: [n0, f.neck_range_mm[1].max(n0)],
            shaft_wall: [s0, s1],
        })
    }

    /// Component values: head, neck, shaft, lateral body.
    fn components(&self, p: &Point3<f64>) -> [f64; 4] {
        let f = self.f;
        [
            (p - f.head.center).norm() - f.head.radius_mm,
            tube_value(&f.neck, f.neck_range_mm, p),
            tube_value(&f.shaft, f.shaft_range_mm, p),
            f.lateral.as_ref().map_or(f64::INFINITY, |l| l.value_mm(p)),
        ]
    }

    /// The sample's implicit function (the femur's smooth union without the
    /// sections' hull pull-in, plus the femur's shrink), mm.
    fn value(&self, p: &Point3<f64>) -> f64 {
        let [h, n, s, l] = self.components(p);
        smin(smin(smin(h, n), s), l) + self.f.shrink_mm
    }

    fn parts(&self, p: &Point3<f64>) -> Parts {
        let f = self.f;
        let [h, n, s, l] = self.components(p);
        let hard_min = h.min(n).min(s).min(l);
        let (nd, n_level) = tube_wall_distance(&f.neck, self.neck_wall, p);
        let (sd, s_level) = tube_wall_distance(&f.shaft, self.shaft_wall, p);
        let wall_dist = h.abs().min(nd).min(sd);
        let level = |d: f64, ok: bool| if ok { d } else { f64::INFINITY };
        let level_wall_dist = h.abs().min(level(nd, n_level)).min(level(sd, s_level));
        Parts {
            value: smin(smin(smin(h, n), s), l) + f.shrink_mm,
            wall_depth: (-hard_min).max(wall_dist) - f.shrink_mm,
            wall_dist,
            level_wall_dist,
        }
    }

    /// Lower bound of the distance to the measured walls, mm (see module docs).
    pub(super) fn wall_depth_mm(&self, p: &Point3<f64>) -> f64 {
        self.parts(p).wall_depth
    }

    fn inside(&self, p: &Point3<f64>) -> bool {
        self.value(p) < 0.0
    }

    /// Outward normal of the solid at `p` (central differences).
    fn normal(&self, p: &Point3<f64>) -> Option<Unit<Vector3<f64>>> {
        let h = 1e-3;
        let g = Vector3::from_fn(|i, _| {
            let mut e = Vector3::zeros();
            e[i] = h;
            self.value(&(p + e)) - self.value(&(p - e))
        });
        Unit::try_new(g, 1e-12)
    }

    /// Judges the line `entry -> tip` (see the module docs).
    pub(super) fn judge(
        &self,
        rules: &Rules,
        entry: &Point3<f64>,
        tip: &Point3<f64>,
        step: f64,
        exact: bool,
    ) -> LineVerdict {
        let tip_parts = self.parts(tip);
        let shallow = |depth: f64| LineVerdict {
            breach: Some(RejectReason::TipTooShallow),
            clearance_mm: depth - rules.needle_radius_mm,
        };
        if tip_parts.value.is_nan() || tip_parts.value >= 0.0 {
            return shallow(-tip_parts.wall_dist);
        }
        let Some(d) = Unit::try_new(tip - entry, 1e-9) else {
            return shallow(tip_parts.wall_depth);
        };
        let d = d.into_inner();
        let origin = entry - d * BACKOFF_MM;
        let total = (tip - origin).norm();
        if self.inside(&origin) {
            // The line is inside the bone well before the planned entry.
            let c = self.min_depth(&origin, &d, 0.0, total, step);
            return LineVerdict {
                breach: Some(RejectReason::LeavesBone),
                clearance_mm: c - rules.needle_radius_mm,
            };
        }
        // Walk: crossings (parameter along the line, entering?, wall?).
        let n = (total / step).ceil().max(1.0) as usize;
        let h = total / n as f64;
        let at = |s: f64| origin + d * s;
        let mut crossings: Vec<(f64, bool, bool)> = Vec::new();
        let mut prev_s = 0.0;
        let mut prev_in = false;
        for k in 1..=n {
            let s = k as f64 * h;
            let now_in = self.inside(&at(s));
            if now_in != prev_in {
                let (mut lo, mut hi) = (prev_s, s);
                for _ in 0..30 {
                    let mid = 0.5 * (lo + hi);
                    if self.inside(&at(mid)) == prev_in {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                let x = 0.5 * (lo + hi);
                let wall = self.parts(&at(x)).level_wall_dist <= WALL_TOL_MM;
                crossings.push((x, now_in, wall));
            }
            prev_s = s;
            prev_in = now_in;
        }
        let Some(&(s_entry, _, entry_wall)) = crossings.first() else {
            return shallow(tip_parts.wall_depth);
        };
        let e = at(s_entry);
        let len = total - s_entry;
        let split_s = s_entry + len.min(rules.entry_allowance_mm);
        let clearance_mm = if len > rules.entry_allowance_mm {
            if exact {
                let limit = rules.axis_clearance_mm + EXACT_BAND_MM;
                self.min_wall_distance(&origin, &d, split_s, total, step, limit)
            } else {
                self.min_depth(&origin, &d, split_s, total, step)
            }
        } else {
            tip_parts.wall_depth
        } - rules.needle_radius_mm;
        let verdict = |r: Option<RejectReason>| LineVerdict {
            breach: r,
            clearance_mm,
        };
        if len > rules.max_length_mm {
            return verdict(Some(RejectReason::TooLong));
        }
        if entry_wall {
            if let Some(nrm) = self.normal(&e) {
                if -d.dot(&nrm) < rules.min_incidence_sin {
                    return verdict(Some(RejectReason::LowIncidence));
                }
            }
        }
        for f in &rules.forbidden {
            if f.segment_center_distance_mm(&e, tip) < f.radius_mm {
                return verdict(Some(RejectReason::ForbiddenZone));
            }
        }
        if crossings[1..].iter().any(|c| c.2) {
            return verdict(Some(RejectReason::LeavesBone));
        }
        if len > rules.entry_allowance_mm
            && clearance_mm + rules.needle_radius_mm < rules.axis_clearance_mm
        {
            return verdict(Some(RejectReason::CorticalClearance));
        }
        if tip_parts.wall_depth < rules.tip_depth_mm {
            // The lower bound fails: the tip's exact depth decides.
            let depth = if exact {
                let cap = rules.tip_depth_mm + self.f.shrink_mm + 1.0;
                let e = self
                    .hemisphere_fan_mm(tip, &d, END_FAN_RAYS * 2, cap)
                    .min(self.hemisphere_fan_mm(tip, &-d, END_FAN_RAYS * 2, cap));
                e.min(cap) - self.f.shrink_mm
            } else {
                tip_parts.wall_depth
            };
            if depth < rules.tip_depth_mm {
                return verdict(Some(RejectReason::TipTooShallow));
            }
        }
        verdict(None)
    }

    /// Distance along the unit direction `u` from `p` to the first crossing
    /// of the sampled surface that lies on a measured wall (within
    /// [`WALL_TOL_MM`] of a wall it is level with), mm, or `INFINITY` when
    /// none lies within `max_mm`. Crossings of the fill are passed through.
    /// The march steps by 0.9 `|value|` (the implicit function is a
    /// 1-Lipschitz bound of the distance to the surface, up to the tubes'
    /// taper), at least [`MIN_RAY_STEP_MM`]; a sign change is refined by
    /// bisection.
    fn ray_to_wall_mm(&self, p: &Point3<f64>, u: &Vector3<f64>, max_mm: f64) -> f64 {
        let mut s_prev = 0.0;
        let mut v_prev = self.value(p);
        if v_prev.is_nan() {
            return f64::INFINITY;
        }
        while s_prev < max_mm {
            let s = s_prev + (0.9 * v_prev.abs()).max(MIN_RAY_STEP_MM);
            let v = self.value(&(p + u * s));
            if v.is_nan() {
                return f64::INFINITY;
            }
            if (v < 0.0) != (v_prev < 0.0) {
                let inside = v_prev < 0.0;
                let (mut lo, mut hi) = (s_prev, s);
                for _ in 0..24 {
                    let mid = 0.5 * (lo + hi);
                    if (self.value(&(p + u * mid)) < 0.0) == inside {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                let x = 0.5 * (lo + hi);
                if x > max_mm {
                    return f64::INFINITY;
                }
                if self.parts(&(p + u * x)).level_wall_dist <= WALL_TOL_MM {
                    return x;
                }
            }
            s_prev = s;
            v_prev = v;
        }
        f64::INFINITY
    }

    /// Nearest measured wall seen from `p` in the plane across the unit
    /// axis `d`: [`FAN_RAYS`] rays, then a golden-section search of the
    /// angle around the nearest, mm (unshrunk; `INFINITY` if none within
    /// `max_mm`).
    fn axis_fan_mm(&self, p: &Point3<f64>, d: &Vector3<f64>, max_mm: f64) -> f64 {
        let a = d
            .cross(&Vector3::x())
            .try_normalize(1e-6)
            .unwrap_or_else(|| d.cross(&Vector3::y()).normalize());
        let b = d.cross(&a);
        let dir = |th: f64| a * th.cos() + b * th.sin();
        let dth = std::f64::consts::TAU / FAN_RAYS as f64;
        let mut cap = max_mm;
        let (mut best, mut best_th) = (f64::INFINITY, 0.0);
        for k in 0..FAN_RAYS {
            let th = k as f64 * dth;
            let r = self.ray_to_wall_mm(p, &dir(th), cap);
            if r < best {
                best = r;
                best_th = th;
                cap = r;
            }
        }
        if !best.is_finite() {
            return best;
        }
        let f = |th: f64| self.ray_to_wall_mm(p, &dir(th), best + 1.0);
        let (x, fx) = golden_min(f, best_th - dth, best_th + dth, 14);
        let _ = x;
        best.min(fx)
    }

    /// Nearest measured wall seen from `p` over the half-sphere of
    /// directions `u` with `u . d >= 0` (`n` Fibonacci directions), mm
    /// (unshrunk; `INFINITY` if none within `max_mm`).
    fn hemisphere_fan_mm(&self, p: &Point3<f64>, d: &Vector3<f64>, n: usize, max_mm: f64) -> f64 {
        let Some(dn) = d.try_normalize(1e-12) else {
            return f64::INFINITY;
        };
        let a = dn
            .cross(&Vector3::x())
            .try_normalize(1e-6)
            .unwrap_or_else(|| dn.cross(&Vector3::y()).normalize());
        let b = dn.cross(&a);
        let golden = std::f64::consts::PI * (3.0 - 5f64.sqrt());
        let mut best = f64::INFINITY;
        for i in 0..n {
            let z = 1.0 - (i as f64 + 0.5) / n as f64;
            let r = (1.0 - z * z).max(0.0).sqrt();
            let ph = i as f64 * golden;
            let u = a * (r * ph.cos()) + b * (r * ph.sin()) + dn * z;
            best = best.min(self.ray_to_wall_mm(p, &u, best.min(max_mm)));
        }
        best
    }

    /// Smallest distance from the axis `origin + d s`, `s` in `[s0, s1]`,
    /// to the measured walls, mm, minus the shrink, exact below `limit`
    /// (unshrunk; above it, a lower bound no smaller than `limit`): the segment's nearest
    /// wall point is seen across the axis from an inner point (first-order
    /// condition), or from an end within the half-sphere facing away from
    /// the segment. Branch and bound on the lower bound
    /// ([`Self::wall_depth_mm`], 1-Lipschitz): the axis is cut into cells of
    /// [`CELL_MM`], each cell's bound is its smallest sampled lower bound
    /// minus the step and [`WALL_TOL_MM`]; cells are visited by increasing
    /// bound until the bound reaches the best exact distance found
    /// ([`Self::axis_fan_mm`] at the cell's lowest sample), then the best
    /// is refined by a golden-section search along the axis.
    fn min_wall_distance(
        &self,
        origin: &Point3<f64>,
        d: &Vector3<f64>,
        s0: f64,
        s1: f64,
        step: f64,
        limit: f64,
    ) -> f64 {
        let at = |s: f64| origin + d * s;
        let n = ((s1 - s0) / step).ceil().max(1.0) as usize;
        let h = (s1 - s0) / n as f64;
        let lb: Vec<f64> = (0..=n)
            .map(|k| self.wall_depth_mm(&at(s0 + k as f64 * h)) + self.f.shrink_mm)
            .collect();
        let per = ((CELL_MM / h).round() as usize).max(1);
        // (bound, s of the cell's lowest sample, end: -1 start, 1 tip, 0 inner)
        let mut cells: Vec<(f64, f64, i8)> = lb
            .chunks(per)
            .enumerate()
            .map(|(j, c)| {
                let (k, v) =
                    c.iter().enumerate().fold(
                        (0, f64::INFINITY),
                        |b, (i, &x)| if x < b.1 { (i, x) } else { b },
                    );
                (v - h - WALL_TOL_MM, s0 + (j * per + k) as f64 * h, 0)
            })
            .collect();
        cells.push((lb[0] - WALL_TOL_MM, s0, -1));
        cells.push((lb[n] - WALL_TOL_MM, s1, 1));
        cells.sort_by(|x, y| x.0.total_cmp(&y.0));
        let lb_min = lb.iter().copied().fold(f64::INFINITY, f64::min);
        let mut best = f64::INFINITY;
        let mut best_s = None;
        for &(bound, s, end) in &cells {
            if bound >= best.min(limit) {
                break;
            }
            let cap = best.min(limit);
            let e = match end {
                0 => self.axis_fan_mm(&at(s), d, cap),
                -1 => self.hemisphere_fan_mm(&at(s), &-d, END_FAN_RAYS, cap),
                _ => self.hemisphere_fan_mm(&at(s), d, END_FAN_RAYS, cap),
            };
            if e < best {
                best = e;
                best_s = (end == 0).then_some(s);
            }
        }
        if let Some(s) = best_s {
            let lo = (s - CELL_MM).max(s0);
            let hi = (s + CELL_MM).min(s1);
            let cap = best + 1.0;
            let (_, fx) = golden_min(|x| self.axis_fan_mm(&at(x), d, cap), lo, hi, 10);
            best = best.min(fx);
        }
        if best >= limit {
            // No wall below the limit: the distance is at least the limit.
            return lb_min.max(limit) - self.f.shrink_mm;
        }
        best - self.f.shrink_mm
    }

    /// Smallest wall depth on `origin + d s`, `s` in `[s0, s1]`: samples
    /// at about `step`, then a golden-section refinement around the
    /// smallest one.
    fn min_depth(
        &self,
        origin: &Point3<f64>,
        d: &Vector3<f64>,
        s0: f64,
        s1: f64,
        step: f64,
    ) -> f64 {
        let w = |s: f64| self.wall_depth_mm(&(origin + d * s));
        let n = ((s1 - s0) / step).ceil().max(1.0) as usize;
        let h = (s1 - s0) / n as f64;
        let (mut best_k, mut best) = (0, f64::INFINITY);
        for k in 0..=n {
            let v = w(s0 + k as f64 * h);
            if v < best {
                best = v;
                best_k = k;
            }
        }
        let a = s0 + best_k.saturating_sub(1) as f64 * h;
        let b = (s0 + (best_k + 1) as f64 * h).min(s1);
        best.min(golden_min(w, a, b, 25).1)
    }
}

/// Golden-section search of the minimum of `f` on `[a, b]` (`iters`
/// steps): the abscissa and value of the best point evaluated.
fn golden_min<F: Fn(f64) -> f64>(f: F, a: f64, b: f64, iters: usize) -> (f64, f64) {
    let g = 0.5 * (5f64.sqrt() - 1.0);
    let (mut a, mut b) = (a, b);
    let mut c = b - g * (b - a);
    let mut e = a + g * (b - a);
    let (mut fc, mut fe) = (f(c), f(e));
    for _ in 0..iters {
        if fc < fe {
            b = e;
            e = c;
            fe = fc;
            c = b - g * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = e;
            fc = fe;
            e = a + g * (b - a);
            fe = f(e);
        }
    }
    if fc < fe {
        (c, fc)
    } else {
        (e, fe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    /// Head sphere (radius 24) at the origin, a round neck (radius 14)
    /// along +x measured from x = -60 to -25, a round shaft (radius 15)
    /// along +z through (-70, 0, 0) measured from z = -80 to -30.
    fn t_femur() -> ReconstructedFemur {
        use crate::geometry::{Axis, Sphere};
        use crate::reconstruction::TubeSection;
        let tube =
            |point: Point3<f64>, dir: Vector3<f64>, major: Vector3<f64>, r: f64, t: [f64; 2]| {
                let axis = Axis {
                    point,
                    direction: Unit::new_normalize(dir),
                };
                Tube {
                    axis,
                    sections: (0..=5)
                        .map(|i| {
                            let tt = t[0] + (t[1] - t[0]) * f64::from(i) / 5.0;
                            TubeSection {
                                t_mm: tt,
                                center: axis.at(tt),
                                major_dir: Unit::new_normalize(major),
                                semi_axes_mm: [r, r],
                                hull_margin_mm: 0.0,
                            }
                        })
                        .collect(),
                    straightness_rms_mm: 0.0,
                }
            };
        let neck = tube(
            Point3::origin(),
            Vector3::x(),
            Vector3::z(),
            14.0,
            [-60.0, -25.0],
        );
        let shaft = tube(
            Point3::new(-70.0, 0.0, 0.0),
            Vector3::z(),
            Vector3::x(),
            15.0,
            [-80.0, -30.0],
        );
        let head = Sphere {
            center: Point3::origin(),
            radius_mm: 24.0,
        };
        ReconstructedFemur::new(head, neck, shaft, 0.0).unwrap()
    }

    /// Measured-wall points of the sampled surface in the plane y = 0 over
    /// `x` by `z`, by brute force: midpoints of the grid edges (spacing
    /// 0.01 mm) across which the implicit function changes sign, kept when
    /// they lie on a measured wall. The test femur is symmetric about the
    /// neck axis (x) near the head, so the nearest surface point of a point
    /// of that plane lies in it.
    fn planar_wall_points(s: &SampledFemur, x: [f64; 2], z: [f64; 2]) -> Vec<Point3<f64>> {
        let h = 0.01;
        let nx = ((x[1] - x[0]) / h) as usize;
        let nz = ((z[1] - z[0]) / h) as usize;
        let at = |i: usize, k: usize| Point3::new(x[0] + i as f64 * h, 0.0, z[0] + k as f64 * h);
        let v: Vec<Vec<bool>> = (0..=nx)
            .map(|i| (0..=nz).map(|k| s.inside(&at(i, k))).collect())
            .collect();
        let mut out = Vec::new();
        for i in 0..=nx {
            for k in 0..=nz {
                for (j, l) in [(i + 1, k), (i, k + 1)] {
                    if j <= nx && l <= nz && v[i][k] != v[j][l] {
                        let m = nalgebra::center(&at(i, k), &at(j, l));
                        if s.parts(&m).level_wall_dist <= WALL_TOL_MM {
                            out.push(m);
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn exact_wall_distance_known_answers() {
        let f = t_femur();
        // Mid-neck on the axis: the neck wall, 14 mm (the fan's directions
        // are within about 0.04 rad of the normal: < 0.02 mm).
        let p = Point3::new(-45.0, 0.0, 0.0);
        let e = measured_wall_distance_mm(&f, &p).unwrap();
        assert_relative_eq!(e, 14.0, epsilon = 0.02);
        assert_relative_eq!(
            measured_wall_depth_mm(&f, &p).unwrap(),
            14.0,
            epsilon = 1e-9
        );
        // Inside the head, away from the neck: the sphere.
        let q = Point3::new(10.0, 0.0, 5.0);
        let e = measured_wall_distance_mm(&f, &q).unwrap();
        assert_relative_eq!(e, 24.0 - 125f64.sqrt(), epsilon = 0.02);
        // Under the head-neck junction (the circle x = -sqrt(24^2 - 14^2),
        // radius 14): the nearest sphere point and the nearest neck-wall
        // point are both buried in the other part, so the lower bound (the
        // larger depth, 5 mm in the neck) is loose: the nearest measured
        // wall is the blend fillet over the junction circle, more than
        // sqrt(2.49^2 + 5^2) = 5.585 mm away (the circle itself).
        let j = (24f64 * 24.0 - 14.0 * 14.0).sqrt();
        let r = Point3::new(-17.0, 0.0, 9.0);
        let lb = measured_wall_depth_mm(&f, &r).unwrap();
        let e = measured_wall_distance_mm(&f, &r).unwrap();
        assert_relative_eq!(lb, 5.0, epsilon = 1e-9);
        let s = SampledFemur::new(&f).unwrap();
        let pts = planar_wall_points(&s, [-26.0, -10.0], [8.0, 20.0]);
        let brute = pts
            .iter()
            .map(|q| (q - r).norm())
            .fold(f64::INFINITY, f64::min);
        assert!(brute > ((j - 17.0).powi(2) + 25.0).sqrt(), "{brute}");
        // Edge midpoints are within 0.005 mm of the surface; the fan's
        // directions within about 0.04 rad of the nearest (< 0.01 mm here).
        assert_relative_eq!(e, brute, epsilon = 0.05);
    }

    #[test]
    fn exact_clearance_is_at_least_the_lower_bound_and_finds_the_junction() {
        let f = t_femur();
        let s = SampledFemur::new(&f).unwrap();
        // A line parallel to the neck axis, 9 mm above it, from the neck
        // into the head.
        let origin = Point3::new(-50.0, 0.0, 9.0);
        let d = Vector3::x();
        let lb = s.min_depth(&origin, &d, 0.0, 45.0, 0.1);
        let ex = s.min_wall_distance(&origin, &d, 0.0, 45.0, 0.1, 10.0);
        // Along the neck the wall is 5 mm away (14 - 9), exactly as the
        // bound says; the junction does not come closer.
        assert_relative_eq!(lb, 5.0, epsilon = 1e-6);
        assert_relative_eq!(ex, 5.0, epsilon = 0.02);
        // The same line from under the junction on (x = -18): the nearest
        // wall is the junction circle, behind the start; the bound is 5 mm.
        let j = (24f64 * 24.0 - 14.0 * 14.0).sqrt();
        let start = Point3::new(-18.0, 0.0, 9.0);
        let ex2 = s.min_wall_distance(&start, &d, 0.0, 10.0, 0.1, 10.0);
        let lb2 = s.min_depth(&start, &d, 0.0, 10.0, 0.1);
        assert_relative_eq!(lb2, 5.0, epsilon = 1e-6);
        let pts = planar_wall_points(&s, [-26.0, -10.0], [8.0, 20.0]);
        let seg = |q: &Point3<f64>| {
            let t = (q.x - start.x).clamp(0.0, 10.0);
            (q - (start + d * t)).norm()
        };
        let brute = pts.iter().map(seg).fold(f64::INFINITY, f64::min);
        assert!(brute > ((j - 18.0).powi(2) + 25.0).sqrt(), "{brute}");
        // The end fan's directions are about 0.2 rad apart (<= 1 % of the
        // distance), the rest as above.
        assert!(
            ex2 >= brute - 0.02 && ex2 <= brute + 0.1,
            "{ex2} vs {brute}"
        );
        // Below the limit it is exact; above it, no smaller than the limit.
        let capped = s.min_wall_distance(&origin, &d, 0.0, 45.0, 0.1, 3.0);
        assert!((3.0..=5.0 + 1e-9).contains(&capped), "{capped}");
    }

    #[test]
    fn ellipse_distance_known_answers() {
        // Circle: |r - |p||.
        assert_relative_eq!(ellipse_distance(5.0, 5.0, 3.0, 4.0), 0.0, epsilon = 1e-9);
        assert_relative_eq!(
            ellipse_distance(5.0, 5.0, 1.0, 1.0),
            5.0 - 2f64.sqrt(),
            epsilon = 1e-9
        );
        assert_relative_eq!(ellipse_distance(5.0, 5.0, 6.0, 8.0), 5.0, epsilon = 1e-9);
        // On the axes of an ellipse (inside, towards the near vertex).
        assert_relative_eq!(ellipse_distance(10.0, 6.0, 0.0, 2.0), 4.0, epsilon = 1e-9);
        assert_relative_eq!(ellipse_distance(10.0, 6.0, 9.0, 0.0), 1.0, epsilon = 1e-9);
        assert_relative_eq!(ellipse_distance(6.0, 10.0, 0.0, -9.0), 1.0, epsilon = 1e-9);
        // Centre: the semi-minor axis.
        assert_relative_eq!(ellipse_distance(10.0, 6.0, 0.0, 0.0), 6.0, epsilon = 1e-9);
    }

    #[test]
    fn ellipse_distance_matches_a_dense_polygon() {
        let (a, b) = (14.0, 9.5);
        for &(x, y) in &[
            (3.0, 2.0),
            (-12.0, 1.0),
            (7.0, -8.0),
            (20.0, 15.0),
            (0.5, 9.0),
        ] {
            let brute = (0..200_000)
                .map(|i| {
                    let t = f64::from(i) / 200_000.0 * std::f64::consts::TAU;
                    ((a * t.cos() - x).powi(2) + (b * t.sin() - y).powi(2)).sqrt()
                })
                .fold(f64::INFINITY, f64::min);
            assert_relative_eq!(ellipse_distance(a, b, x, y), brute, epsilon = 1e-6);
        }
    }
}
