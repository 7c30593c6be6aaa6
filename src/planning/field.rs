//! A conservative certificate for the clearance decision of rule 2: a
//! lazily filled grid of exact point-to-surface distances over the candidate
//! region, stepped at its Lipschitz bound.
//!
//! The unsigned distance `d` to the surface is 1-Lipschitz, so a grid node
//! `g` with exact distance `D(g)` proves `d(x) >= threshold` for every `x` in
//! the ball of radius `D(g) - threshold` around `g`. [`ClearanceField::certifies`]
//! walks a segment from one end through such balls (each ball from the grid
//! node nearest to the current point, the walk continues from where the
//! segment leaves the ball) and answers `true` only when consecutive balls
//! cover the whole segment. The balls overlap (each starting point lies
//! strictly inside the next ball), so no part of the segment is skipped and
//! a thin wall can never be stepped over: `true` is a proof, with a margin
//! of [`MARGIN_MM`] that absorbs every rounding, that the exact distance is
//! at least the threshold. When the proof fails (a ball too small, the
//! segment leaving the grid, too many steps), the caller runs the exact
//! threshold query; the decision is therefore always the exact one.
//!
//! Near the surface, where the nearest node's ball is too small,
//! [`ClearanceField::prove_fine`] continues the walk with the best ball of
//! the eight corners of the current cell (a corner on the far side from the
//! surface often holds a point its nearest node cannot): the same proof by
//! overlapping balls, for segments that pass the surface closely and
//! nearly parallel (the usual case in a narrow femoral neck).
//!
//! [`ClearanceField::decide`] turns this into the exact decision with the
//! reason of a rejection in mind: clearance is proved by the balls (coarse
//! walks from both ends, then the fine ones), a rejection by a triangle
//! that blocked an earlier tip of the same entry ([`Witnesses`], the very
//! per-triangle test of `BoneSurface::segment_clears`) or by one banded
//! exact query over the part the balls left, and the part left is handed
//! on so that the crossing test of a rejection runs only there.
//!
//! Node distances are computed on first use (an exact closest-point query)
//! and stored in atomics: a node's value does not depend on which thread
//! or walk computed it, so the answers do not depend on the thread count.

use std::sync::atomic::{AtomicU64, Ordering};

use nalgebra::{Point3, Vector3};

use crate::geometry::{BoneSurface, SurfaceBand};

/// Slack subtracted from every ball radius, mm: far above the rounding of
/// the node distances and of the walk (about `1e-13` mm on bone-sized
/// coordinates), far below any clinical quantity.
pub(crate) const MARGIN_MM: f64 = 1e-6;

/// Most grid nodes (memory bound: 8 bytes each).
const MAX_NODES: usize = 1 << 23;

/// Most balls one walk may use before it gives up (the exact query then
/// decides).
const MAX_STEPS: usize = 48;

/// Most steps of one [`ClearanceField::prove_fine`] walk.
const MAX_FINE_STEPS: usize = 64;

/// A [`ClearanceField::prove_fine`] walk stops at a step shorter than this,
/// mm (the banded exact query takes the rest).
const FINE_MIN_STEP_MM: f64 = 0.05;

/// Marks a node whose distance is not computed yet (a NaN pattern that no
/// distance computation yields).
const EMPTY: u64 = u64::MAX;

/// A lazily filled grid of exact distances to a bone surface (module docs).
pub(crate) struct ClearanceField<'a> {
    bone: &'a BoneSurface,
    origin: Point3<f64>,
    h: f64,
    inv_h: f64,
    dims: [usize; 3],
    /// Node values are `min(distance, cap_mm)` (a lower bound all the same).
    cap_mm: f64,
    values: Vec<AtomicU64>,
}

impl<'a> ClearanceField<'a> {
    /// A grid of spacing `h_mm` over the box `[lo, hi]` (grown by one
    /// spacing), with node distances capped at `cap_mm` (cheaper queries;
    /// balls then have radius at most `cap_mm - threshold`); `None` when the
    /// box is not finite or needs more than [`MAX_NODES`] nodes.
    pub(crate) fn new(
        bone: &'a BoneSurface,
        lo: &Point3<f64>,
        hi: &Point3<f64>,
        h_mm: f64,
        cap_mm: f64,
    ) -> Option<Self> {
        if !(h_mm.is_finite() && h_mm > 0.0 && cap_mm > 0.0) {
            return None;
        }
        let origin = lo - Vector3::repeat(h_mm);
        let ext = hi - origin + Vector3::repeat(h_mm);
        if !(ext.iter().all(|e| e.is_finite() && *e >= 0.0)) {
            return None;
        }
        let dims = [0, 1, 2].map(|i| (ext[i] / h_mm).ceil() as usize + 1);
        let n = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
        if n > MAX_NODES {
            return None;
        }
        Some(Self {
            bone,
            origin,
            h: h_mm,
            inv_h: 1.0 / h_mm,
            dims,
            cap_mm,
            values: (0..n).map(|_| AtomicU64::new(EMPTY)).collect(),
        })
    }

    /// The grid node nearest to `p` (its index and position), `None` outside
    /// the grid.
    #[inline]
    fn nearest(&self, p: &Point3<f64>) -> Option<(usize, Point3<f64>)> {
        let mut idx = 0usize;
        let mut g = Point3::origin();
        for i in (0..3).rev() {
            // Rounding to the nearest node: +0.5 then truncation (f >= 0).
            let f = (p[i] - self.origin[i]) * self.inv_h + 0.5;
            if !(f >= 0.0 && f < self.dims[i] as f64) {
                return None;
            }
            let k = f as usize;
            idx = idx * self.dims[i] + k;
            g[i] = self.origin[i] + k as f64 * self.h;
        }
        Some((idx, g))
    }

    /// The exact distance from node `idx` (at `g`) to the surface, mm.
    #[inline]
    fn value(&self, idx: usize, g: &Point3<f64>) -> f64 {
        let bits = self.values[idx].load(Ordering::Relaxed);
        if bits != EMPTY {
            return f64::from_bits(bits);
        }
        let d = self.bone.point_distance_below(g, self.cap_mm);
        self.values[idx].store(d.to_bits(), Ordering::Relaxed);
        d
    }

    /// `true` only if the exact distance from segment `[a, b]` to the surface
    /// is at least `threshold_mm` (proved by overlapping clear balls, module
    /// docs); `false` means "not proved", not "closer".
    #[cfg(test)]
    pub(crate) fn certifies(&self, a: &Point3<f64>, b: &Point3<f64>, threshold_mm: f64) -> bool {
        let len = (b - a).norm();
        let t = self.prove(a, b, threshold_mm);
        len.is_finite() && t > 0.0 && t >= len
    }

    /// How far from `a` towards `b` the segment is proved to stay at least
    /// `threshold_mm` from the surface, mm: `[a, a + t (b - a) / |b - a|]`
    /// is proved for the returned `t` (0 when nothing is proved, also for a
    /// zero-length segment; `> 0` and `>= |b - a|` when all of it is). Needs
    /// finite input.
    pub(crate) fn prove(&self, a: &Point3<f64>, b: &Point3<f64>, threshold_mm: f64) -> f64 {
        let v = b - a;
        let len = v.norm();
        let u = if len > 0.0 { v / len } else { Vector3::zeros() };
        let mut t = 0.0f64;
        let mut last = usize::MAX;
        for _ in 0..MAX_STEPS {
            let p = a + u * t;
            let Some((idx, g)) = self.nearest(&p) else {
                return t;
            };
            if idx == last {
                return t;
            }
            last = idx;
            let Some(step) = self.exit(idx, &g, &p, &u, threshold_mm) else {
                return t;
            };
            let exit = t + step;
            if exit >= len {
                return exit;
            }
            t = exit;
        }
        t
    }

    /// The ball of node `idx` (at `g`) for `threshold_mm`: when it holds `p`
    /// strictly, how far along `u` from `p` the line leaves it; `None`
    /// otherwise (NaN included).
    #[inline]
    fn exit(
        &self,
        idx: usize,
        g: &Point3<f64>,
        p: &Point3<f64>,
        u: &Vector3<f64>,
        threshold_mm: f64,
    ) -> Option<f64> {
        let r = self.value(idx, g) - threshold_mm - MARGIN_MM;
        // (NaN fails too.)
        if r.is_nan() || r <= 0.0 {
            return None;
        }
        // Where the line p + u s leaves the ball |x - g| <= r.
        let w = p - g;
        let s = w.dot(u);
        let c = w.norm_squared() - r * r;
        if c.is_nan() || c >= 0.0 {
            return None;
        }
        Some((s * s - c).sqrt() - s)
    }

    /// The grid cell holding `p`: the index and position of its lowest
    /// corner node, `None` outside the grid (or on its upper faces).
    #[inline]
    fn cell(&self, p: &Point3<f64>) -> Option<usize> {
        let mut idx = 0usize;
        for i in (0..3).rev() {
            let f = (p[i] - self.origin[i]) * self.inv_h;
            if !(f >= 0.0 && f < (self.dims[i] - 1) as f64) {
                return None;
            }
            idx = idx * self.dims[i] + f as usize;
        }
        Some(idx)
    }

    /// The position of node `idx` (the same expression as
    /// [`ClearanceField::nearest`], so a node's value never depends on which
    /// walk filled it).
    #[inline]
    fn node_position(&self, idx: usize) -> Point3<f64> {
        let k0 = idx % self.dims[0];
        let k1 = (idx / self.dims[0]) % self.dims[1];
        let k2 = idx / (self.dims[0] * self.dims[1]);
        Point3::new(
            self.origin[0] + k0 as f64 * self.h,
            self.origin[1] + k1 as f64 * self.h,
            self.origin[2] + k2 as f64 * self.h,
        )
    }

    /// [`ClearanceField::prove`] for the stretches near the surface where the
    /// nearest node's ball is too small: each step takes, of the balls of
    /// the eight corners of the cell holding the current point that hold it
    /// strictly, the one the segment leaves last (a corner on the far side
    /// from the surface often holds a point that its nearest node cannot).
    /// The same proof (overlapping clear balls); stops when a step gains
    /// less than [`FINE_MIN_STEP_MM`] or after [`MAX_FINE_STEPS`] steps.
    pub(crate) fn prove_fine(&self, a: &Point3<f64>, b: &Point3<f64>, threshold_mm: f64) -> f64 {
        let v = b - a;
        let len = v.norm();
        let u = if len > 0.0 { v / len } else { Vector3::zeros() };
        let (dx, dxy) = (self.dims[0], self.dims[0] * self.dims[1]);
        let mut t = 0.0f64;
        for _ in 0..MAX_FINE_STEPS {
            let p = a + u * t;
            let Some(base) = self.cell(&p) else {
                return t;
            };
            let mut best = t;
            for corner in [0, 1, dx, dx + 1, dxy, dxy + 1, dxy + dx, dxy + dx + 1] {
                let idx = base + corner;
                let g = self.node_position(idx);
                if let Some(step) = self.exit(idx, &g, &p, &u, threshold_mm) {
                    best = best.max(t + step);
                }
            }
            if best >= len || best - t < FINE_MIN_STEP_MM {
                return best;
            }
            t = best;
        }
        t
    }

    /// The part of `[a, b]` (finite, `a` first) that the balls cannot prove
    /// at least `threshold_mm` from the surface, walked from both ends
    /// ([`ClearanceField::prove`], or [`ClearanceField::prove_fine`] when
    /// `fine`): `None` when they prove all of it, else `Some((p, q))` with
    /// `p` nearer `a`. A proof always has `t > 0` (the first ball holds its
    /// start strictly inside); `t == 0` proves nothing, even for a
    /// zero-length segment.
    #[inline]
    fn unproved_part(
        &self,
        a: &Point3<f64>,
        b: &Point3<f64>,
        threshold_mm: f64,
        fine: bool,
    ) -> Option<(Point3<f64>, Point3<f64>)> {
        let walk = |from: &Point3<f64>, to: &Point3<f64>| {
            if fine {
                self.prove_fine(from, to, threshold_mm)
            } else {
                self.prove(from, to, threshold_mm)
            }
        };
        let v = b - a;
        let len = v.norm();
        let t1 = walk(a, b);
        if t1 > 0.0 && t1 >= len {
            return None;
        }
        let p = if t1 > 0.0 { a + v * (t1 / len) } else { *a };
        let t2 = walk(b, &p);
        let rest = (b - p).norm();
        if t2 > 0.0 && t2 >= rest {
            return None;
        }
        let q = if t2 > 0.0 {
            b + (p - b) * (t2 / rest)
        } else {
            *b
        };
        Some((p, q))
    }

    /// `true` only if the exact distance from `[a, b]` to the surface is at
    /// least `threshold_mm` (by at least [`MARGIN_MM`]), proved by the balls
    /// alone (from both ends, then the finer walk); `false` means "not
    /// proved".
    pub(crate) fn proves_clear(&self, a: &Point3<f64>, b: &Point3<f64>, threshold_mm: f64) -> bool {
        if !walkable(a, b, threshold_mm) {
            return false;
        }
        match self.unproved_part(a, b, threshold_mm, false) {
            None => true,
            Some((p, q)) => self.unproved_part(&p, &q, threshold_mm, true).is_none(),
        }
    }

    /// `true` only if the exact distance from `[a, b]` to the surface is
    /// below `threshold_mm` (by more than [`MARGIN_MM`]: a triangle of the
    /// part the balls cannot prove clear comes that close); `false` means
    /// "not proved", not "farther". Cheaper than the distance itself: the
    /// balls, then one banded threshold query at most.
    pub(crate) fn proves_below(&self, a: &Point3<f64>, b: &Point3<f64>, threshold_mm: f64) -> bool {
        if !walkable(a, b, threshold_mm) {
            return false;
        }
        let Some((p, q)) = self.unproved_part(a, b, threshold_mm, false) else {
            return false;
        };
        matches!(
            self.bone
                .segment_band_query(&p, &q, threshold_mm, MARGIN_MM),
            SurfaceBand::Blocked(_)
        )
    }

    /// The exact clearance decision `bone.segment_clears(a, b, threshold_mm)`
    /// ([`ClearanceField::decide`] without remembered blocking triangles).
    #[cfg(test)]
    pub(crate) fn clears(&self, a: &Point3<f64>, b: &Point3<f64>, threshold_mm: f64) -> bool {
        self.decide(a, b, threshold_mm, &mut Witnesses::default()) == Rule2::Clear
    }
}

/// Whether the balls may be walked on `[a, b]` for `threshold_mm`: finite
/// points and length, and a threshold above twice [`MARGIN_MM`].
#[inline]
fn walkable(a: &Point3<f64>, b: &Point3<f64>, threshold_mm: f64) -> bool {
    (b - a).norm().is_finite()
        && threshold_mm.is_finite()
        && threshold_mm > 2.0 * MARGIN_MM
        && a.coords.iter().all(|x| x.is_finite())
}

/// Blocking triangles remembered across the tips of one entry (most
/// recently useful first): a rule-2 rejection of one tip is often caused by
/// the same stretch of cortex as its neighbour's, and re-running the exact
/// per-triangle test of [`BoneSurface::segment_clears`] on that triangle
/// proves the rejection without a BVH traversal.
#[derive(Debug, Clone, Default)]
pub(crate) struct Witnesses {
    tris: [u32; WITNESSES],
    len: usize,
}

/// How many blocking triangles [`Witnesses`] keeps.
const WITNESSES: usize = 4;

impl Witnesses {
    /// Whether a remembered triangle alone makes `bone.segment_clears(a, b,
    /// threshold_mm)` false (then it moves to the front).
    fn reject(
        &mut self,
        bone: &BoneSurface,
        a: &Point3<f64>,
        b: &Point3<f64>,
        threshold_mm: f64,
    ) -> bool {
        for i in 0..self.len {
            let k = self.tris[i];
            if bone.triangle_breaks_clearance(k, a, b, threshold_mm) {
                self.tris.copy_within(0..i, 1);
                self.tris[0] = k;
                return true;
            }
        }
        false
    }

    /// Remembers `k` in front (the oldest one drops out when full).
    fn push(&mut self, k: u32) {
        let n = self.len.min(WITNESSES - 1);
        self.tris.copy_within(0..n, 1);
        self.tris[0] = k;
        self.len = n + 1;
    }
}

/// The answer of [`ClearanceField::decide`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Rule2 {
    /// `bone.segment_clears(a, b, threshold)` holds.
    Clear,
    /// It does not; `unproved` is `Some((p, q))` when every point of `[a,
    /// b]` outside `[p, q]` is proved at distance `>= threshold` (for
    /// `BoneSurface::segment_intersects_near`).
    Blocked {
        /// The part of `[a, b]` not proved clear, `p` nearer `a`.
        unproved: Option<(Point3<f64>, Point3<f64>)>,
    },
}

impl ClearanceField<'_> {
    /// [`ClearanceField::clears`] with the blocking triangles of earlier
    /// queries (`witnesses`, updated) tried before the exact query, and the
    /// part of `[a, b]` the balls could not prove reported with a
    /// rejection. Decides exactly as `bone.segment_clears(a, b,
    /// threshold_mm)`: the balls prove clearance, a witness or the banded
    /// exact query proves a rejection (a triangle closer than the threshold
    /// by the same per-triangle test, or by more than [`MARGIN_MM`]), and
    /// whatever is left goes to the exact query.
    pub(crate) fn decide(
        &self,
        a: &Point3<f64>,
        b: &Point3<f64>,
        threshold_mm: f64,
        witnesses: &mut Witnesses,
    ) -> Rule2 {
        if !walkable(a, b, threshold_mm) {
            return if self.bone.segment_clears(a, b, threshold_mm) {
                Rule2::Clear
            } else {
                Rule2::Blocked { unproved: None }
            };
        }
        let Some((p, q)) = self.unproved_part(a, b, threshold_mm, false) else {
            return Rule2::Clear;
        };
        let blocked = Rule2::Blocked {
            unproved: Some((p, q)),
        };
        if witnesses.reject(self.bone, a, b, threshold_mm) {
            return blocked;
        }
        // Near the surface: the finer walk over cell corners, from both ends
        // of the unproved part.
        let Some((p, q)) = self.unproved_part(&p, &q, threshold_mm, true) else {
            return Rule2::Clear;
        };
        let blocked = Rule2::Blocked {
            unproved: Some((p, q)),
        };
        match self
            .bone
            .segment_band_query(&p, &q, threshold_mm, MARGIN_MM)
        {
            SurfaceBand::Clear => Rule2::Clear,
            SurfaceBand::Blocked(k) => {
                witnesses.push(k);
                blocked
            }
            SurfaceBand::Undecided => {
                if self.bone.segment_clears(a, b, threshold_mm) {
                    Rule2::Clear
                } else {
                    blocked
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::TriMesh;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A closed cube of side `size` mm with a corner at the origin.
    fn cube(size: f64) -> BoneSurface {
        let m = TriMesh::cuboid(Point3::origin(), Point3::new(size, size, size)).unwrap();
        BoneSurface::new(m).unwrap()
    }

    #[test]
    fn certified_segments_clear_exactly_and_most_clear_ones_are_certified() {
        let bone = cube(40.0);
        let lo = Point3::new(0.0, 0.0, 0.0);
        let hi = Point3::new(40.0, 40.0, 40.0);
        let field = ClearanceField::new(&bone, &lo, &hi, 1.0, 30.0).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (mut cert, mut clear) = (0, 0);
        for _ in 0..4000 {
            let a = Point3::new(
                rng.random_range(2.0..38.0),
                rng.random_range(2.0..38.0),
                rng.random_range(2.0..38.0),
            );
            let b = Point3::new(
                rng.random_range(2.0..38.0),
                rng.random_range(2.0..38.0),
                rng.random_range(2.0..38.0),
            );
            let thr = rng.random_range(0.5..8.0);
            let exact = bone.segment_distance_mm(&a, &b);
            let c = field.certifies(&a, &b, thr);
            assert!(!c || exact >= thr, "certified but exact {exact} < {thr}");
            cert += c as usize;
            clear += (exact >= thr + 1.0) as usize;
        }
        assert!(
            cert * 10 >= clear * 7,
            "certified {cert} of {clear} clear by 1 mm"
        );
    }

    #[test]
    fn crossing_or_too_close_segments_are_not_certified() {
        let bone = cube(40.0);
        let field = ClearanceField::new(
            &bone,
            &Point3::new(10.0, 10.0, 10.0),
            &Point3::new(30.0, 30.0, 30.0),
            1.0,
            30.0,
        )
        .unwrap();
        // Crosses the wall at x = 40.
        assert!(!field.certifies(
            &Point3::new(20.0, 20.0, 20.0),
            &Point3::new(45.0, 20.0, 20.0),
            0.5
        ));
        // Ends 0.2 mm from the wall at y = 40, out of the grid.
        assert!(!field.certifies(
            &Point3::new(20.0, 20.0, 20.0),
            &Point3::new(20.0, 39.8, 20.0),
            0.5
        ));
        // Leaves the grid (which ends near 32 mm) but stays 4 mm from the
        // wall: the last balls reach past the grid, a valid proof.
        assert!(field.certifies(
            &Point3::new(20.0, 20.0, 20.0),
            &Point3::new(20.0, 36.0, 20.0),
            0.5
        ));
        // Deep inside: certified, and a point alone too.
        let p = Point3::new(20.0, 20.0, 20.0);
        assert!(field.certifies(&p, &Point3::new(20.0, 25.0, 20.0), 5.0));
        assert!(field.certifies(&p, &p, 5.0));
        assert!(!field.certifies(&p, &p, 20.5));
        // The decision on a point (a path shorter than the entry allowance).
        assert!(field.clears(&p, &p, 5.0));
        assert!(!field.clears(&p, &p, 20.5));
    }
}
