//! A flat axis-aligned bounding-volume hierarchy over triangles.
//!
//! Built once with a binned surface-area heuristic (Wald, *On fast
//! construction of SAH-based bounding volume hierarchies*, IEEE RT 2007),
//! at most [`MAX_LEAF`] triangles per leaf, nodes in one `Vec` (the two
//! children of an inner node are adjacent). Depth is bounded by
//! [`MAX_DEPTH`] (deeper splits fall back to an object-median split), so
//! traversals can use a fixed-size stack of [`STACK_SIZE`] entries.
//!
//! Boxes are f64 and exact (the min/max of the f64 vertex coordinates), so
//! every box test is conservative up to the slack documented at each query.

use nalgebra::{Point3, Vector3};

/// Most triangles in one leaf.
pub(crate) const MAX_LEAF: usize = 4;
/// Depth after which splits are object-median splits (guaranteed halving).
const SAH_DEPTH: usize = 40;
/// Bound on the tree depth (SAH_DEPTH + log2(MAX_TRIANGLES) + slack).
pub(crate) const MAX_DEPTH: usize = 72;
/// Traversal stack size (a depth-first traversal holds at most one pending
/// sibling per level).
pub(crate) const STACK_SIZE: usize = MAX_DEPTH + 8;
const BINS: usize = 16;

/// One node: a box, and either two children at `first, first + 1`
/// (`count == 0`) or the leaf triangles `first .. first + count`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node {
    pub lo: Vector3<f64>,
    pub hi: Vector3<f64>,
    /// Radius of the box's circumscribed sphere (centred at the box centre),
    /// widened by a relative `1e-12` so that it stays conservative.
    pub radius: f64,
    pub first: u32,
    pub count: u32,
}

impl Node {
    #[inline]
    pub(crate) fn is_leaf(&self) -> bool {
        self.count > 0
    }
}

/// The hierarchy: nodes (root at 0) and the triangle order of the leaves.
#[derive(Debug, Clone)]
pub(crate) struct Bvh {
    pub nodes: Vec<Node>,
    /// `order[k]` is the caller's index of the `k`-th triangle in leaf order.
    pub order: Vec<u32>,
    /// Depth of the deepest leaf (root = 0).
    pub depth: usize,
}

#[derive(Clone, Copy)]
struct Bounds {
    lo: Vector3<f64>,
    hi: Vector3<f64>,
}

impl Bounds {
    fn empty() -> Self {
        Self {
            lo: Vector3::repeat(f64::INFINITY),
            hi: Vector3::repeat(f64::NEG_INFINITY),
        }
    }
    fn grow(&mut self, o: &Bounds) {
        self.lo = self.lo.inf(&o.lo);
        self.hi = self.hi.sup(&o.hi);
    }
    fn grow_point(&mut self, p: &Vector3<f64>) {
        self.lo = self.lo.inf(p);
        self.hi = self.hi.sup(p);
    }
    fn half_area(&self) -> f64 {
        let e = self.hi - self.lo;
        if e.x < 0.0 {
            0.0
        } else {
            e.x * e.y + e.y * e.z + e.z * e.x
        }
    }
}

impl Bvh {
    /// Builds the hierarchy over `tris` (at least one).
    pub(crate) fn build(tris: &[[Point3<f64>; 3]]) -> Self {
        let n = tris.len();
        let boxes: Vec<Bounds> = tris
            .iter()
            .map(|t| {
                let mut b = Bounds::empty();
                for p in t {
                    b.grow_point(&p.coords);
                }
                b
            })
            .collect();
        let cents: Vec<Vector3<f64>> = boxes.iter().map(|b| (b.lo + b.hi) * 0.5).collect();
        let mut order: Vec<u32> = (0..n as u32).collect();
        let mut nodes = Vec::with_capacity(2 * n / MAX_LEAF.max(1) + 2);
        nodes.push(Node {
            lo: Vector3::zeros(),
            hi: Vector3::zeros(),
            radius: 0.0,
            first: 0,
            count: 0,
        });
        // (node index, start, end, depth)
        let mut work: Vec<(usize, usize, usize, usize)> = vec![(0, 0, n, 0)];
        let mut depth = 0;
        while let Some((ni, s, e, d)) = work.pop() {
            depth = depth.max(d);
            let mut bb = Bounds::empty();
            let mut cb = Bounds::empty();
            for &i in &order[s..e] {
                bb.grow(&boxes[i as usize]);
                cb.grow_point(&cents[i as usize]);
            }
            nodes[ni].lo = bb.lo;
            nodes[ni].hi = bb.hi;
            nodes[ni].radius = (bb.hi - bb.lo).norm() * 0.5 * (1.0 + 1e-12);
            let count = e - s;
            let split = if count <= MAX_LEAF {
                None
            } else if d >= SAH_DEPTH {
                Some(median_split(&mut order[s..e], &cents, &cb))
            } else {
                sah_split(&mut order[s..e], &boxes, &cents, &cb)
                    .or_else(|| Some(median_split(&mut order[s..e], &cents, &cb)))
            };
            match split {
                None => {
                    nodes[ni].first = s as u32;
                    nodes[ni].count = count as u32;
                }
                Some(m) => {
                    let l = nodes.len();
                    let blank = Node {
                        lo: Vector3::zeros(),
                        hi: Vector3::zeros(),
                        radius: 0.0,
                        first: 0,
                        count: 0,
                    };
                    nodes.push(blank);
                    nodes.push(blank);
                    nodes[ni].first = l as u32;
                    nodes[ni].count = 0;
                    work.push((l + 1, s + m, e, d + 1));
                    work.push((l, s, s + m, d + 1));
                }
            }
        }
        Self {
            nodes,
            order,
            depth,
        }
    }
}

/// Splits at the median centroid along the longest centroid axis; returns
/// the size of the left part (in `1..len`).
fn median_split(idx: &mut [u32], cents: &[Vector3<f64>], cb: &Bounds) -> usize {
    let ext = cb.hi - cb.lo;
    let axis = ext.imax();
    let m = idx.len() / 2;
    idx.select_nth_unstable_by(m, |&a, &b| {
        cents[a as usize][axis].total_cmp(&cents[b as usize][axis])
    });
    m
}

#[allow(
    clippy::needless_range_loop,
    reason = "the axis indexes centroids and bins alike"
)]
/// Binned SAH split (cost: child half-areas times triangle counts); `None`
/// when the centroids coincide.
fn sah_split(
    idx: &mut [u32],
    boxes: &[Bounds],
    cents: &[Vector3<f64>],
    cb: &Bounds,
) -> Option<usize> {
    let n = idx.len();
    let mut best: Option<(f64, usize, usize)> = None; // (cost, axis, bin)
    for axis in 0..3 {
        let lo = cb.lo[axis];
        let ext = cb.hi[axis] - lo;
        if ext.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            continue;
        }
        let scale = BINS as f64 / ext;
        let bin_of = |c: f64| (((c - lo) * scale) as usize).min(BINS - 1);
        let mut bb = [Bounds::empty(); BINS];
        let mut cnt = [0usize; BINS];
        for &i in idx.iter() {
            let b = bin_of(cents[i as usize][axis]);
            bb[b].grow(&boxes[i as usize]);
            cnt[b] += 1;
        }
        let mut right_area = [0.0; BINS];
        let mut right_cnt = [0usize; BINS];
        let mut acc = Bounds::empty();
        let mut c = 0;
        for b in (1..BINS).rev() {
            acc.grow(&bb[b]);
            c += cnt[b];
            right_area[b] = acc.half_area();
            right_cnt[b] = c;
        }
        let mut acc = Bounds::empty();
        let mut c = 0;
        for b in 0..BINS - 1 {
            acc.grow(&bb[b]);
            c += cnt[b];
            let rc = right_cnt[b + 1];
            if c == 0 || rc == 0 {
                continue;
            }
            let cost = acc.half_area() * c as f64 + right_area[b + 1] * rc as f64;
            if best.is_none_or(|(bc, _, _)| cost < bc) {
                best = Some((cost, axis, b));
            }
        }
    }
    let (_, axis, bin) = best?;
    let lo = cb.lo[axis];
    let scale = BINS as f64 / (cb.hi[axis] - lo);
    let bin_of = |c: f64| (((c - lo) * scale) as usize).min(BINS - 1);
    let mut left = 0;
    for k in 0..n {
        if bin_of(cents[idx[k] as usize][axis]) <= bin {
            idx.swap(k, left);
            left += 1;
        }
    }
    if left == 0 || left == n {
        None
    } else {
        Some(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn every_triangle_in_one_leaf_inside_its_boxes() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let tris: Vec<[Point3<f64>; 3]> = (0..1000)
            .map(|_| {
                let c = Vector3::new(
                    rng.random_range(-50.0..50.0),
                    rng.random_range(-50.0..50.0),
                    rng.random_range(-50.0..50.0),
                );
                [0, 1, 2].map(|_| {
                    Point3::from(
                        c + Vector3::new(
                            rng.random_range(-2.0..2.0),
                            rng.random_range(-2.0..2.0),
                            rng.random_range(-2.0..2.0),
                        ),
                    )
                })
            })
            .collect();
        let bvh = Bvh::build(&tris);
        let mut seen = vec![0u32; tris.len()];
        // Walk the tree, checking containment of children and triangles.
        let mut stack = vec![(0usize, 0usize)];
        while let Some((ni, d)) = stack.pop() {
            assert!(d <= MAX_DEPTH);
            let n = bvh.nodes[ni];
            if n.is_leaf() {
                assert!(n.count as usize <= MAX_LEAF);
                for k in n.first..n.first + n.count {
                    let t = &tris[bvh.order[k as usize] as usize];
                    seen[bvh.order[k as usize] as usize] += 1;
                    for p in t {
                        assert!((0..3).all(|a| p[a] >= n.lo[a] && p[a] <= n.hi[a]));
                    }
                }
            } else {
                for c in [n.first as usize, n.first as usize + 1] {
                    let ch = bvh.nodes[c];
                    assert!((0..3).all(|a| ch.lo[a] >= n.lo[a] && ch.hi[a] <= n.hi[a]));
                    stack.push((c, d + 1));
                }
            }
        }
        assert!(seen.iter().all(|&s| s == 1));
        assert!(bvh.depth < 30, "depth {}", bvh.depth);
    }

    #[test]
    fn identical_triangles_terminate() {
        let t = [
            Point3::new(0.0, 0.0, 0.0),
            Point3::new(1.0, 0.0, 0.0),
            Point3::new(0.0, 1.0, 0.0),
        ];
        let tris = vec![t; 100];
        let bvh = Bvh::build(&tris);
        assert!(bvh.depth <= MAX_DEPTH);
        assert_eq!(bvh.order.len(), 100);
    }
}
