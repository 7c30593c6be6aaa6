//! The bone surface: a closed, outward-oriented triangle mesh with the
//! queries the planner's hot path runs on.
//!
//! [`BoneSurface`] checks the mesh once (closed, consistently oriented,
//! outward, no zero-area triangles), builds a flat AABB hierarchy
//! (binned SAH, at most 4 triangles per leaf) and angle-weighted
//! pseudo-normals, and then answers allocation-free queries through `&self`
//! (it is `Send + Sync`; share one per case between threads).
//!
//! * Inside test and signed distance: closest point plus the sign of the
//!   angle-weighted pseudo-normal at the closest feature (face, edge or
//!   vertex), Baerentzen and Aanaes, *Signed distance computation using the
//!   angle weighted pseudonormal*, IEEE TVCG 11(3), 2005. Exact for a closed,
//!   consistently oriented mesh; no ray-parity ambiguity at edges.
//! * Segment clearance decision ([`BoneSurface::segment_clears`]): depth-first
//!   traversal that prunes a node when the segment misses its box inflated by
//!   the threshold (a slab test: box ⊕ cube contains box ⊕ ball, so pruning
//!   is conservative) or its circumscribed sphere, a triangle when the segment is farther than the
//!   threshold from the triangle's bounding sphere, and stops at the first
//!   triangle closer than the threshold. The answer equals the exact
//!   comparison `segment_distance_mm(a, b) >= threshold_mm`.
//! * Exact segment distance ([`BoneSurface::segment_distance_mm`]): a
//!   crossing test first (distance 0), then depth-first branch and bound
//!   with true lower bounds, started below a cap just above the distance to
//!   the triangle closest to the segment's midpoint (a point query), so that
//!   pruning bites from the first node; that triangle lies below the cap, so
//!   the result is the exact minimum. Node bound: the segment is clipped to
//!   the box inflated by the best distance so far (only that part can come
//!   closer), then bounded along a separating direction (box centre towards
//!   the segment) and by the node's oriented slab. Triangle bounds: bounding
//!   sphere, separating direction, plane; of the five candidates of the exact
//!   segment-triangle distance only those not proved farther are computed.
//! * Rays ([`BoneSurface::first_hit`], [`BoneSurface::ray_crossings`]):
//!   watertight ray/triangle tests (see [`crate::geometry::segment_intersects_triangle`]).
//!
//! All coordinates are in mm in the mesh's frame.

use std::collections::HashMap;
use std::fmt;

use nalgebra::{Point3, Unit, Vector3};

use super::bvh::{Bvh, Node, STACK_SIZE};
use super::distance::{
    closest_point_on_triangle, closest_point_on_triangle_feature, point_segment_distance_sq,
    segment_triangle_distance_sq_among, segment_triangle_distance_sq_no_hit, watertight_hit,
    Feature,
};
use super::mesh::TriMesh;
use crate::error::{Error, Result};

/// Relative tolerance below which a triangle counts as zero-area:
/// `|AB x AC| <= DEGENERATE_REL * (longest edge)^2`, i.e. the triangle's
/// smallest height is below about `1e-12` of its longest edge.
pub(crate) const DEGENERATE_REL: f64 = 1e-12;

/// Absolute slack (mm) added to every box test so that rounding in the slab
/// test can never prune a box that the segment touches.
const SLACK_MM: f64 = 1e-9;

/// Slack of [`BoneSurface::plane_gap`], mm: above the rounding of a plane
/// distance on bone-sized coordinates (about `1e-13` mm at 1 m).
const PLANE_SLACK_MM: f64 = 1e-9;

/// Nodes with more triangles than this get no oriented slab (their
/// triangles are not flat enough for it to help).
const SLAB_MAX_TRIANGLES: usize = 256;

/// The oriented slab of every node of `bvh` (see `BoneSurface::node_slabs`):
/// the area-weighted mean normal of the node's triangles and the range of
/// their corners along it, widened by [`PLANE_SLACK_MM`] plus a relative
/// `1e-12`.
fn node_slabs(bvh: &Bvh, tris: &[[Point3<f64>; 3]]) -> Vec<[f64; 5]> {
    let nodes = &bvh.nodes;
    let none = [0.0, 0.0, 0.0, f64::NEG_INFINITY, f64::INFINITY];
    let mut range = vec![(0usize, 0usize); nodes.len()];
    // Children come after their parent: fill the leaf-order ranges bottom up.
    for ni in (0..nodes.len()).rev() {
        let n = &nodes[ni];
        range[ni] = if n.is_leaf() {
            (n.first as usize, (n.first + n.count) as usize)
        } else {
            let (l, r) = (range[n.first as usize], range[n.first as usize + 1]);
            (l.0.min(r.0), l.1.max(r.1))
        };
    }
    range
        .iter()
        .map(|&(s, e)| {
            if e - s > SLAB_MAX_TRIANGLES || e <= s {
                return none;
            }
            let sum: Vector3<f64> = tris[s..e]
                .iter()
                .map(|t| (t[1] - t[0]).cross(&(t[2] - t[0])))
                .sum();
            let Some(n) = sum.try_normalize(1e-300) else {
                return none;
            };
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for t in &tris[s..e] {
                for p in t {
                    let v = n.dot(&p.coords);
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
            }
            let w = PLANE_SLACK_MM + 1e-12 * lo.abs().max(hi.abs());
            [n.x, n.y, n.z, lo - w, hi + w]
        })
        .collect()
}

/// A point on the bone surface closest to a query point.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct SurfacePoint {
    /// The closest point on the surface, mm.
    pub point: Point3<f64>,
    /// Outward unit normal of the triangle that holds `point`.
    pub normal: Unit<Vector3<f64>>,
    /// Index of that triangle in [`BoneSurface::mesh`].
    pub triangle: u32,
    /// Unsigned distance from the query point to `point`, mm.
    pub distance_mm: f64,
}

/// Where a ray meets the bone surface.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RayHit {
    /// Distance from the ray origin along the (unit) direction, mm.
    pub t_mm: f64,
    /// The hit point, mm.
    pub point: Point3<f64>,
    /// Outward unit normal of the hit triangle.
    pub normal: Unit<Vector3<f64>>,
    /// Index of the hit triangle in [`BoneSurface::mesh`].
    pub triangle: u32,
}

/// A closed bone surface (outer, periosteal) with fast exact queries.
///
/// # Units
/// mm, in the frame of the mesh it was built from.
///
/// # Example
/// ```
/// use avnplan::geometry::{BoneSurface, TriMesh};
/// use nalgebra::Point3;
/// use approx::assert_relative_eq;
/// // A 10 mm cube, corner at the origin, outward counter-clockwise triangles.
/// let v: Vec<Point3<f64>> = (0..8)
///     .map(|i| Point3::new((i & 1) as f64, ((i >> 1) & 1) as f64, ((i >> 2) & 1) as f64) * 10.0)
///     .collect();
/// let t = vec![[0, 2, 1], [1, 2, 3], [4, 5, 6], [5, 7, 6], [0, 1, 4], [1, 5, 4],
///              [2, 6, 3], [3, 6, 7], [0, 4, 2], [2, 4, 6], [1, 3, 5], [3, 7, 5]];
/// let bone = BoneSurface::new(TriMesh::new(v, t)?)?;
/// let c = Point3::new(5.0, 5.0, 5.0);
/// assert!(bone.contains(&c));
/// assert_relative_eq!(bone.signed_distance_mm(&c), -5.0, epsilon = 1e-12);
/// // A segment 2 mm from the x = 0 face.
/// let (a, b) = (Point3::new(2.0, 3.0, 3.0), Point3::new(2.0, 7.0, 7.0));
/// assert_relative_eq!(bone.segment_distance_mm(&a, &b), 2.0, epsilon = 1e-12);
/// assert!(bone.segment_clears(&a, &b, 1.9));
/// assert!(!bone.segment_clears(&a, &b, 2.1));
/// # Ok::<(), avnplan::Error>(())
/// ```
#[derive(Clone)]
pub struct BoneSurface {
    mesh: TriMesh,
    bvh: Bvh,
    /// Triangle corners in leaf order.
    tris: Vec<[Point3<f64>; 3]>,
    /// Bounding sphere (centre, radius) per triangle, leaf order.
    spheres: Vec<[f64; 4]>,
    /// Plane per triangle, leaf order: outward unit normal `n` and offset
    /// `n . corner0`, for the cheap lower bound of [`BoneSurface::plane_gap`].
    planes: Vec<[f64; 4]>,
    /// Per BVH node: a unit direction `n` and the range `[lo, hi]` of
    /// `n . v` over the vertices of the node's triangles (an oriented slab
    /// that holds them; tight for the flat patches of a cortex). Unbounded
    /// for nodes above [`SLAB_MAX_TRIANGLES`] triangles.
    node_slabs: Vec<[f64; 5]>,
    /// Outward unit normal per triangle, mesh order.
    face_normals: Vec<Unit<Vector3<f64>>>,
    /// Angle-weighted pseudo-normal per vertex.
    vertex_normals: Vec<Vector3<f64>>,
    /// Pseudo-normal (sum of the two face normals) per triangle edge `k`
    /// (corner `k` to corner `k + 1`), mesh order.
    edge_normals: Vec<[Vector3<f64>; 3]>,
    bounds: (Point3<f64>, Point3<f64>),
}

impl fmt::Debug for BoneSurface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoneSurface")
            .field("triangles", &self.mesh.triangles.len())
            .field("vertices", &self.mesh.vertices.len())
            .field("bvh_nodes", &self.bvh.nodes.len())
            .field("bvh_depth", &self.bvh.depth)
            .field("bounds_mm", &self.bounds)
            .finish()
    }
}

/// A segment prepared for box tests.
struct Seg {
    a: Point3<f64>,
    d: Vector3<f64>,
    inv_dd: f64,
    inv_d: Vector3<f64>,
    flat: [bool; 3],
}

impl Seg {
    #[inline]
    fn new(a: &Point3<f64>, b: &Point3<f64>) -> Self {
        let d = b - a;
        let dd = d.norm_squared();
        Self {
            a: *a,
            d,
            inv_dd: if dd > 0.0 { 1.0 / dd } else { 0.0 },
            inv_d: d.map(|x| if x != 0.0 { 1.0 / x } else { 0.0 }),
            flat: [d.x == 0.0, d.y == 0.0, d.z == 0.0],
        }
    }

    /// Entry parameter if the segment meets the box inflated by `r` on every
    /// side (box ⊕ cube of half-side `r`), `None` otherwise.
    #[inline]
    fn slab(&self, n: &Node, r: f64) -> Option<f64> {
        let mut t0 = 0.0f64;
        let mut t1 = 1.0f64;
        for i in 0..3 {
            let l = n.lo[i] - r;
            let h = n.hi[i] + r;
            let ai = self.a[i];
            if self.flat[i] {
                if ai < l || ai > h {
                    return None;
                }
                continue;
            }
            let ta = (l - ai) * self.inv_d[i];
            let tb = (h - ai) * self.inv_d[i];
            let (tn, tf) = if ta < tb { (ta, tb) } else { (tb, ta) };
            t0 = t0.max(tn);
            t1 = t1.min(tf);
            if t0 > t1 {
                return None;
            }
        }
        Some(t0)
    }

    /// Parameter range `[t0, t1]` of the part of the segment inside the box
    /// inflated by `r` on every side (box ⊕ cube of half-side `r`), `None`
    /// when the segment misses it. The same slab arithmetic as
    /// [`Seg::slab`]; a point of the segment within `r` of the box lies in
    /// box ⊕ cube, so it has a parameter in the range (callers inflate `r`
    /// by a slack above the rounding of the parameters).
    #[inline]
    fn clip(&self, n: &Node, r: f64) -> Option<(f64, f64)> {
        let mut t0 = 0.0f64;
        let mut t1 = 1.0f64;
        for i in 0..3 {
            let l = n.lo[i] - r;
            let h = n.hi[i] + r;
            let ai = self.a[i];
            if self.flat[i] {
                if ai < l || ai > h {
                    return None;
                }
                continue;
            }
            let ta = (l - ai) * self.inv_d[i];
            let tb = (h - ai) * self.inv_d[i];
            let (tn, tf) = if ta < tb { (ta, tb) } else { (tb, ta) };
            t0 = t0.max(tn);
            t1 = t1.min(tf);
            if t0 > t1 {
                return None;
            }
        }
        Some((t0, t1))
    }

    /// `q - p` for the point `q` of the segment closest to `p`.
    #[inline]
    fn offset_from(&self, p: &Vector3<f64>) -> Vector3<f64> {
        let q = p - self.a.coords;
        let t = (q.dot(&self.d) * self.inv_dd).clamp(0.0, 1.0);
        self.d * t - q
    }

    /// Squared distance from `p` to the segment.
    #[inline]
    fn dist_sq(&self, p: &Vector3<f64>) -> f64 {
        point_segment_distance_sq(p, &self.a.coords, &self.d, self.inv_dd)
    }

    /// Whether the segment provably stays farther than `r` from a node's
    /// box: farther than `r` from its circumscribed sphere (the squared
    /// comparison is widened by a relative `1e-12`).
    #[inline]
    fn misses_sphere(&self, n: &Node, r: f64) -> bool {
        let c = (n.lo + n.hi) * 0.5;
        let rr = n.radius + r;
        self.dist_sq(&c) > rr * rr * (1.0 + 1e-12)
    }
}

/// The best distance of a branch and bound so far, mm, and its square.
struct Best {
    d: f64,
    d_sq: f64,
}

/// Squared distance from `p` to a node's box.
#[inline]
fn point_box_dist_sq(p: &Point3<f64>, n: &Node) -> f64 {
    let mut s = 0.0;
    for i in 0..3 {
        let v = p[i];
        let g = if v < n.lo[i] {
            n.lo[i] - v
        } else if v > n.hi[i] {
            v - n.hi[i]
        } else {
            0.0
        };
        s += g * g;
    }
    s
}

/// The answer of [`BoneSurface::segment_band_query`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Band {
    /// The distance is at least the threshold plus the band.
    Clear,
    /// This leaf triangle comes closer than the threshold minus the band
    /// (or crosses the segment).
    Blocked(u32),
    /// The distance may lie within the band.
    Undecided,
}

/// The per-triangle test of [`BoneSurface::segment_clears`]: whether
/// triangle `tri` crosses `[a, b]` (`d = b - a`) or comes closer than
/// `threshold_mm` to it, decided on the same rounded value as
/// `segment_distance_mm` (`thr_sq_hi` is `threshold_mm^2 (1 + 1e-12)`).
#[inline(always)]
fn breaks_clearance(
    a: &Point3<f64>,
    b: &Point3<f64>,
    d: &Vector3<f64>,
    tri: &[Point3<f64>; 3],
    threshold_mm: f64,
    thr_sq_hi: f64,
) -> bool {
    if watertight_hit(a, d, tri, 1.0).is_some() {
        return true;
    }
    let d2 = segment_triangle_distance_sq_no_hit(a, b, tri, thr_sq_hi);
    if d2 < thr_sq_hi {
        // Decide on the same rounded value as segment_distance_mm:
        // sqrt(min d^2) < threshold.
        let m = if d2.sqrt() < threshold_mm {
            d2
        } else {
            segment_triangle_distance_sq_no_hit(a, b, tri, 0.0)
        };
        if m.sqrt() < threshold_mm {
            return true;
        }
    }
    false
}

fn finite(p: &Point3<f64>) -> bool {
    p.x.is_finite() && p.y.is_finite() && p.z.is_finite()
}

/// Twice the area vector of a triangle and whether it counts as zero-area.
pub(crate) fn is_degenerate(t: &[Point3<f64>; 3]) -> bool {
    let n = (t[1] - t[0]).cross(&(t[2] - t[0]));
    let l = (t[1] - t[0])
        .norm_squared()
        .max((t[2] - t[1]).norm_squared())
        .max((t[0] - t[2]).norm_squared());
    let a = n.norm();
    a.is_nan() || l.is_nan() || a <= DEGENERATE_REL * l
}

/// Checks that a mesh bounds a solid: finite, no zero-area triangle, closed
/// (every edge shared by exactly two triangles) and consistently oriented.
/// Returns, per triangle edge `k`, the neighbouring triangle across it.
///
/// `what` names the mesh in the error.
pub(crate) fn check_closed_oriented(mesh: &TriMesh, what: &str) -> Result<Vec<[u32; 3]>> {
    let nv = mesh.vertices.len();
    if mesh.triangles.is_empty() {
        return Err(Error::mesh(what, "has no triangles"));
    }
    if let Some(i) = mesh.vertices.iter().position(|v| !finite(v)) {
        return Err(Error::mesh(
            what,
            format!("vertex {i} is not finite (NaN or infinity)"),
        ));
    }
    for (i, t) in mesh.triangles.iter().enumerate() {
        if t.iter().any(|&k| k as usize >= nv) {
            return Err(Error::mesh(
                what,
                format!("triangle {i} refers to a missing vertex"),
            ));
        }
        if is_degenerate(&mesh.triangle(i)) {
            return Err(Error::mesh(
                what,
                format!(
                    "triangle {i} has zero area (vertices {} {} {})",
                    t[0], t[1], t[2]
                ),
            ));
        }
    }
    // Directed edge -> (triangle, edge slot).
    let mut directed: HashMap<(u32, u32), u32> = HashMap::with_capacity(mesh.triangles.len() * 3);
    let mut undirected: HashMap<(u32, u32), u32> = HashMap::with_capacity(mesh.triangles.len() * 2);
    for t in &mesh.triangles {
        for k in 0..3 {
            let (i, j) = (t[k], t[(k + 1) % 3]);
            *undirected.entry((i.min(j), i.max(j))).or_insert(0) += 1;
        }
    }
    let bad: Vec<_> = undirected.iter().filter(|(_, &c)| c != 2).collect();
    if !bad.is_empty() {
        let (&(i, j), &c) = bad
            .iter()
            .min_by_key(|(e, _)| **e)
            .map(|(e, c)| (*e, *c))
            .unwrap_or((&(0, 0), &0));
        return Err(Error::mesh(
            what,
            format!(
                "not closed (watertight): {} edges are not shared by exactly 2 triangles \
                 (edge {i}-{j} is used by {c})",
                bad.len()
            ),
        ));
    }
    for (ti, t) in mesh.triangles.iter().enumerate() {
        for k in 0..3 {
            let e = (t[k], t[(k + 1) % 3]);
            if let Some(other) = directed.insert(e, (ti * 3 + k) as u32) {
                return Err(Error::mesh(
                    what,
                    format!(
                        "inconsistently oriented: triangles {} and {ti} both run edge {}->{} \
                         the same way",
                        other / 3,
                        e.0,
                        e.1
                    ),
                ));
            }
        }
    }
    let mut nbr = vec![[0u32; 3]; mesh.triangles.len()];
    for (ti, t) in mesh.triangles.iter().enumerate() {
        for k in 0..3 {
            let rev = (t[(k + 1) % 3], t[k]);
            match directed.get(&rev) {
                Some(&o) => nbr[ti][k] = o / 3,
                None => {
                    return Err(Error::mesh(
                        what,
                        format!("inconsistently oriented near triangle {ti}"),
                    ))
                }
            }
        }
    }
    Ok(nbr)
}

impl BoneSurface {
    /// Checks the mesh and builds the hierarchy and pseudo-normals.
    ///
    /// # Errors
    /// [`Error::Mesh`] when the mesh has a non-finite vertex or a zero-area
    /// triangle, is not closed (an edge not shared by exactly two triangles),
    /// is inconsistently oriented, or is inside out (signed volume <= 0).
    /// Use [`crate::io::mesh::repair_and_check`] first on meshes from files.
    pub fn new(mesh: TriMesh) -> Result<Self> {
        let nbr = check_closed_oriented(&mesh, "mesh")?;
        let vol = mesh.signed_volume_mm3();
        if vol.is_nan() || vol <= 0.0 {
            return Err(Error::mesh(
                "mesh",
                format!("inside out: normals point inwards (signed volume {vol:.6} mm^3 <= 0)"),
            ));
        }
        let n = mesh.triangles.len();
        let corners: Vec<[Point3<f64>; 3]> = (0..n).map(|i| mesh.triangle(i)).collect();
        let face_normals: Vec<Unit<Vector3<f64>>> = corners
            .iter()
            .map(|t| Unit::new_normalize((t[1] - t[0]).cross(&(t[2] - t[0]))))
            .collect();
        let mut vertex_normals = vec![Vector3::zeros(); mesh.vertices.len()];
        for (ti, t) in mesh.triangles.iter().enumerate() {
            let c = &corners[ti];
            for k in 0..3 {
                let e1 = c[(k + 1) % 3] - c[k];
                let e2 = c[(k + 2) % 3] - c[k];
                let ang = e1.angle(&e2);
                vertex_normals[t[k] as usize] += face_normals[ti].into_inner() * ang;
            }
        }
        let edge_normals: Vec<[Vector3<f64>; 3]> = (0..n)
            .map(|ti| {
                [0, 1, 2].map(|k| {
                    face_normals[ti].into_inner() + face_normals[nbr[ti][k] as usize].into_inner()
                })
            })
            .collect();
        let bvh = Bvh::build(&corners);
        let tris: Vec<[Point3<f64>; 3]> = bvh.order.iter().map(|&i| corners[i as usize]).collect();
        let spheres = tris
            .iter()
            .map(|t| {
                let c = Point3::from((t[0].coords + t[1].coords + t[2].coords) / 3.0);
                let r = t.iter().map(|p| (p - c).norm()).fold(0.0, f64::max);
                // Widen by a relative ulp-scale margin to stay conservative.
                let r = r * (1.0 + 1e-12) + SLACK_MM;
                [c.x, c.y, c.z, r]
            })
            .collect();
        let planes = bvh
            .order
            .iter()
            .zip(&tris)
            .map(|(&i, t)| {
                let n = face_normals[i as usize];
                [n.x, n.y, n.z, n.dot(&t[0].coords)]
            })
            .collect();
        let node_slabs = node_slabs(&bvh, &tris);
        let bounds = mesh.bounds_mm();
        Ok(Self {
            mesh,
            bvh,
            tris,
            spheres,
            planes,
            node_slabs,
            face_normals,
            vertex_normals,
            edge_normals,
            bounds,
        })
    }

    /// The mesh the surface was built from (triangle indices of query results
    /// refer to it).
    #[must_use]
    pub fn mesh(&self) -> &TriMesh {
        &self.mesh
    }

    /// Axis-aligned bounding box `(min, max)` of the mesh, mm.
    #[must_use]
    pub fn bounds_mm(&self) -> (Point3<f64>, Point3<f64>) {
        self.bounds
    }

    /// Number of nodes and depth of the bounding-volume hierarchy.
    #[must_use]
    pub fn bvh_stats(&self) -> (usize, usize) {
        (self.bvh.nodes.len(), self.bvh.depth)
    }

    /// Outward unit normal of triangle `triangle` (mesh index).
    ///
    /// # Panics
    /// When `triangle` is not an index of [`BoneSurface::mesh`].
    #[must_use]
    pub fn face_normal(&self, triangle: u32) -> Unit<Vector3<f64>> {
        self.face_normals[triangle as usize]
    }

    /// Closest point with its triangle (leaf index) and feature.
    fn closest(&self, p: &Point3<f64>) -> (Point3<f64>, u32, Feature, f64) {
        let mut best_sq = f64::INFINITY;
        let mut best = (Point3::origin(), 0u32, Feature::Face);
        self.point_branch_and_bound(p, &mut best_sq, |k, best_sq| {
            let (q, f) = closest_point_on_triangle_feature(p, &self.tris[k as usize]);
            let d = (p - q).norm_squared();
            if d < *best_sq {
                *best_sq = d;
                best = (q, k, f);
            }
        });
        (best.0, best.1, best.2, best_sq)
    }

    /// Near-first branch and bound of point `p` over the hierarchy: calls
    /// `leaf(k, best_sq)` for every leaf triangle `k` of each node whose box
    /// lies closer than `*best_sq` (squared distance, mm^2); `leaf` lowers
    /// `*best_sq` when triangle `k` comes closer, and the traversal prunes
    /// by the lowered value. No allocation.
    #[inline(always)]
    fn point_branch_and_bound(
        &self,
        p: &Point3<f64>,
        best_sq: &mut f64,
        mut leaf: impl FnMut(u32, &mut f64),
    ) {
        let nodes = &self.bvh.nodes;
        let mut stack = [(0u32, 0.0f64); STACK_SIZE];
        let mut sp = 0;
        let mut cur = (0u32, point_box_dist_sq(p, &nodes[0]));
        loop {
            let (ni, lb) = cur;
            if lb < *best_sq {
                let n = &nodes[ni as usize];
                if n.is_leaf() {
                    for k in n.first..n.first + n.count {
                        leaf(k, best_sq);
                    }
                } else {
                    let l = n.first;
                    let dl = point_box_dist_sq(p, &nodes[l as usize]);
                    let dr = point_box_dist_sq(p, &nodes[l as usize + 1]);
                    let (near, far) = if dl <= dr {
                        ((l, dl), (l + 1, dr))
                    } else {
                        ((l + 1, dr), (l, dl))
                    };
                    if far.1 < *best_sq {
                        stack[sp] = far;
                        sp += 1;
                    }
                    cur = near;
                    continue;
                }
            }
            if sp == 0 {
                break;
            }
            sp -= 1;
            cur = stack[sp];
        }
    }

    /// Sign of `p` relative to the surface at its closest point `q` on leaf
    /// triangle `k`, feature `f`: `true` when inside or on the surface.
    fn inside_from(&self, p: &Point3<f64>, q: &Point3<f64>, k: u32, f: Feature) -> bool {
        let v = p - q;
        if v.norm_squared() == 0.0 {
            return true;
        }
        let ti = self.bvh.order[k as usize] as usize;
        let n = match f {
            Feature::Face => self.face_normals[ti].into_inner(),
            Feature::Edge(e) => self.edge_normals[ti][e as usize],
            Feature::Vertex(c) => self.vertex_normals[self.mesh.triangles[ti][c as usize] as usize],
        };
        v.dot(&n) <= 0.0
    }

    /// Whether `p` is inside the closed surface (points on the surface count
    /// as inside); `false` for a non-finite point.
    ///
    /// Robust: decided by the angle-weighted pseudo-normal at the closest
    /// point (module docs), not by ray parity.
    #[must_use]
    pub fn contains(&self, p: &Point3<f64>) -> bool {
        if !finite(p) {
            return false;
        }
        let (q, k, f, _) = self.closest(p);
        self.inside_from(p, &q, k, f)
    }

    /// Signed distance from `p` to the surface, mm: negative inside, positive
    /// outside, 0 on it. `NaN` input gives `f64::INFINITY` (far outside).
    #[must_use]
    pub fn signed_distance_mm(&self, p: &Point3<f64>) -> f64 {
        if !finite(p) {
            return f64::INFINITY;
        }
        let (q, k, f, d2) = self.closest(p);
        let d = d2.sqrt();
        if self.inside_from(p, &q, k, f) {
            -d
        } else {
            d
        }
    }

    /// The closest surface point to `p`.
    ///
    /// For a non-finite `p` the result has `distance_mm = f64::INFINITY` and
    /// triangle 0's centroid.
    #[must_use]
    pub fn closest_point(&self, p: &Point3<f64>) -> SurfacePoint {
        if !finite(p) {
            let t = self.mesh.triangle(0);
            return SurfacePoint {
                point: Point3::from((t[0].coords + t[1].coords + t[2].coords) / 3.0),
                normal: self.face_normals[0],
                triangle: 0,
                distance_mm: f64::INFINITY,
            };
        }
        let (q, k, _, d2) = self.closest(p);
        let ti = self.bvh.order[k as usize];
        SurfacePoint {
            point: q,
            normal: self.face_normals[ti as usize],
            triangle: ti,
            distance_mm: d2.sqrt(),
        }
    }

    /// Length used for a ray of length `max_mm`: no longer than needed to
    /// leave the bounding box.
    fn ray_len(&self, origin: &Point3<f64>, max_mm: f64) -> f64 {
        let (lo, hi) = self.bounds;
        let c = nalgebra::center(&lo, &hi);
        let reach = (origin - c).norm() + (hi - lo).norm() * 0.5 + 1.0;
        max_mm.min(reach)
    }

    /// First crossing of the ray `origin + t dir`, `0 <= t <= max_mm`, with
    /// the surface (either direction of crossing). `None` when there is none
    /// or an input is not finite (`max_mm` may be `f64::INFINITY`).
    #[must_use]
    pub fn first_hit(
        &self,
        origin: &Point3<f64>,
        dir: &Unit<Vector3<f64>>,
        max_mm: f64,
    ) -> Option<RayHit> {
        if !finite(origin) || !dir.iter().all(|x| x.is_finite()) || max_mm.is_nan() || max_mm < 0.0
        {
            return None;
        }
        let len = self.ray_len(origin, max_mm);
        let end = origin + dir.into_inner() * len;
        let seg = Seg::new(origin, &end);
        let nodes = &self.bvh.nodes;
        let mut best_t = f64::INFINITY;
        let mut best_k = u32::MAX;
        let mut stack = [(0u32, 0.0f64); STACK_SIZE];
        let mut sp = 0;
        let mut cur = match seg.slab(&nodes[0], SLACK_MM) {
            Some(t) => (0u32, t),
            None => return None,
        };
        loop {
            let (ni, tin) = cur;
            if tin <= best_t {
                let n = &nodes[ni as usize];
                if n.is_leaf() {
                    for k in n.first..n.first + n.count {
                        let tmax = best_t.min(1.0);
                        if let Some((t, _)) =
                            watertight_hit(origin, &seg.d, &self.tris[k as usize], tmax)
                        {
                            if t < best_t || (t == best_t && k < best_k) {
                                best_t = t;
                                best_k = k;
                            }
                        }
                    }
                } else {
                    let l = n.first;
                    let hl = seg.slab(&nodes[l as usize], SLACK_MM);
                    let hr = seg.slab(&nodes[l as usize + 1], SLACK_MM);
                    match (hl, hr) {
                        (Some(a), Some(b)) => {
                            let (near, far) = if a <= b {
                                ((l, a), (l + 1, b))
                            } else {
                                ((l + 1, b), (l, a))
                            };
                            stack[sp] = far;
                            sp += 1;
                            cur = near;
                            continue;
                        }
                        (Some(a), None) => {
                            cur = (l, a);
                            continue;
                        }
                        (None, Some(b)) => {
                            cur = (l + 1, b);
                            continue;
                        }
                        (None, None) => {}
                    }
                }
            }
            if sp == 0 {
                break;
            }
            sp -= 1;
            cur = stack[sp];
        }
        if best_k == u32::MAX {
            return None;
        }
        let ti = self.bvh.order[best_k as usize];
        let t_mm = best_t * len;
        Some(RayHit {
            t_mm,
            point: origin + dir.into_inner() * t_mm,
            normal: self.face_normals[ti as usize],
            triangle: ti,
        })
    }

    /// All crossings of the ray `origin + t dir`, `0 <= t <= max_mm`, with the
    /// surface: their distances `t` in mm, ascending, written to `out`
    /// (cleared first).
    ///
    /// A crossing exactly through a shared edge or vertex is reported once
    /// (coincident hits of the same direction, entering or leaving, within
    /// `1e-9` relative, are merged); a ray grazing the surface gives an
    /// entering and a leaving hit at the same `t`. For a ray starting and
    /// ending outside, the count is even and consecutive pairs bound the
    /// chords inside the bone (radiograph line integrals, silhouettes).
    pub fn ray_crossings(
        &self,
        origin: &Point3<f64>,
        dir: &Unit<Vector3<f64>>,
        max_mm: f64,
        out: &mut Vec<f64>,
    ) {
        out.clear();
        if !finite(origin) || !dir.iter().all(|x| x.is_finite()) || max_mm.is_nan() || max_mm < 0.0
        {
            return;
        }
        let len = self.ray_len(origin, max_mm);
        let end = origin + dir.into_inner() * len;
        let seg = Seg::new(origin, &end);
        let nodes = &self.bvh.nodes;
        let mut stack = [0u32; STACK_SIZE];
        let mut sp = 0;
        if seg.slab(&nodes[0], SLACK_MM).is_none() {
            return;
        }
        let mut cur = 0u32;
        loop {
            let n = &nodes[cur as usize];
            if n.is_leaf() {
                for k in n.first..n.first + n.count {
                    if let Some((t, s)) =
                        watertight_hit(origin, &seg.d, &self.tris[k as usize], 1.0)
                    {
                        // Encode leaving hits with a negative sign (t >= 0; -0.0 is
                        // distinguishable by its sign bit).
                        let t_mm = t * len;
                        out.push(if s >= 0.0 { t_mm } else { -t_mm });
                    }
                }
            } else {
                let l = n.first;
                let hl = seg.slab(&nodes[l as usize], SLACK_MM).is_some();
                let hr = seg.slab(&nodes[l as usize + 1], SLACK_MM).is_some();
                match (hl, hr) {
                    (true, true) => {
                        stack[sp] = l + 1;
                        sp += 1;
                        cur = l;
                        continue;
                    }
                    (true, false) => {
                        cur = l;
                        continue;
                    }
                    (false, true) => {
                        cur = l + 1;
                        continue;
                    }
                    (false, false) => {}
                }
            }
            if sp == 0 {
                break;
            }
            sp -= 1;
            cur = stack[sp];
        }
        out.sort_by(|a, b| {
            a.abs()
                .total_cmp(&b.abs())
                .then(a.is_sign_negative().cmp(&b.is_sign_negative()))
        });
        // Merge coincident same-direction hits.
        let mut w = 0;
        for r in 0..out.len() {
            let v = out[r];
            let dup = (0..w)
                .rev()
                .take_while(|&j| (out[j].abs() - v.abs()).abs() <= 1e-9 * (1.0 + v.abs()))
                .any(|j| out[j].is_sign_negative() == v.is_sign_negative());
            if !dup {
                out[w] = v;
                w += 1;
            }
        }
        out.truncate(w);
        for v in out.iter_mut() {
            *v = v.abs();
        }
    }

    /// Exact minimum distance between segment `[a, b]` and the surface, mm;
    /// 0 when the segment crosses or touches it. `f64::INFINITY` for
    /// non-finite input.
    ///
    /// Branch and bound over the hierarchy with true lower bounds (module
    /// docs); exact up to floating-point rounding of the final
    /// segment-triangle distance.
    #[must_use]
    pub fn segment_distance_mm(&self, a: &Point3<f64>, b: &Point3<f64>) -> f64 {
        if !finite(a) || !finite(b) {
            return f64::INFINITY;
        }
        // Crossing segments (distance 0) are found fastest by a ray-like
        // traversal of the boxes the segment passes through.
        if self.segment_intersects(a, b) {
            return 0.0;
        }
        // Branch and bound below a cap just above the distance to one
        // triangle (the one closest to the midpoint): pruning bites from the
        // first node, and that triangle's own distance is below the cap, so
        // the result is the exact minimum.
        self.distance_below(&Seg::new(a, b), a, b, self.seed_cap(a, b))
    }

    /// An upper bound on the segment's distance to the surface, strictly
    /// above the distance to the triangle closest to the segment's midpoint.
    #[inline]
    fn seed_cap(&self, a: &Point3<f64>, b: &Point3<f64>) -> f64 {
        let mid = Point3::from((a.coords + b.coords) * 0.5);
        let (_, k, _, _) = self.closest(&mid);
        let d = segment_triangle_distance_sq_no_hit(a, b, &self.tris[k as usize], 0.0).sqrt();
        d * (1.0 + 1e-9) + 1e-9
    }

    /// `min(segment_distance_mm(a, b), cap_mm)`, bit for bit: the exact
    /// distance when it is below `cap_mm`, else `cap_mm` (`cap_mm` itself
    /// when `cap_mm <= 0`). Cheaper than the uncapped distance when only
    /// values up to a cap matter (ranking scores that saturate): the branch
    /// and bound prunes by the cap from the first node. `f64::INFINITY`
    /// (or `cap_mm`, whichever is smaller) for non-finite input; a NaN cap
    /// counts as no cap.
    ///
    /// # Units
    /// mm.
    #[must_use]
    pub fn segment_distance_below_mm(&self, a: &Point3<f64>, b: &Point3<f64>, cap_mm: f64) -> f64 {
        if cap_mm.is_nan() {
            return self.segment_distance_mm(a, b);
        }
        if !finite(a) || !finite(b) {
            return cap_mm;
        }
        if cap_mm <= 0.0 {
            return cap_mm;
        }
        if self.segment_intersects(a, b) {
            return 0.0;
        }
        // Below either cap the result is the same exact minimum.
        self.distance_below(&Seg::new(a, b), a, b, self.seed_cap(a, b).min(cap_mm))
    }

    /// Exact distance from the segment to the surface if it is below `cap`,
    /// else `cap`, bit for bit `min(exact, cap)`: depth-first branch and
    /// bound, near child first, started with `cap` as the best distance.
    /// The segment must not cross the surface (`segment_intersects` false):
    /// there is no crossing test here. No allocation.
    ///
    /// Exact because every prune uses a true lower bound ([`Self::node_gap`],
    /// [`Self::leaf_below`], slack included) compared with the best distance
    /// found so far, so no triangle closer than the final result is skipped,
    /// and the triangles tested give the same floating-point distances as an
    /// unpruned minimum.
    fn distance_below(&self, seg: &Seg, a: &Point3<f64>, b: &Point3<f64>, cap: f64) -> f64 {
        let mut best = Best {
            d: cap,
            d_sq: cap * cap,
        };
        let nodes = &self.bvh.nodes;
        let Some(g0) = self.node_gap(seg, 0, cap) else {
            return cap;
        };
        let mut stack = [(0u32, 0.0f64); STACK_SIZE];
        let mut sp = 0;
        let mut cur = (0u32, g0);
        loop {
            let (ni, lb) = cur;
            // `lb` was computed against an earlier (larger or equal) best
            // distance `r`: the node's triangles are at least `min(r, lb)`
            // away, so `lb >= best.d` still proves them no closer than best.
            if lb < best.d {
                let n = &nodes[ni as usize];
                if n.is_leaf() {
                    if self.leaf_below(seg, a, b, n, &mut best) {
                        return 0.0;
                    }
                } else {
                    let l = n.first;
                    let mut kids = [(l, 0.0f64), (l + 1, 0.0f64)];
                    let mut m = 0;
                    for c in [l, l + 1] {
                        if let Some(g) = self.node_gap(seg, c, best.d) {
                            if g < best.d {
                                kids[m] = (c, g);
                                m += 1;
                            }
                        }
                    }
                    match m {
                        2 => {
                            let (near, far) = if kids[0].1 <= kids[1].1 {
                                (kids[0], kids[1])
                            } else {
                                (kids[1], kids[0])
                            };
                            stack[sp] = far;
                            sp += 1;
                            cur = near;
                            continue;
                        }
                        1 => {
                            cur = kids[0];
                            continue;
                        }
                        _ => {}
                    }
                }
            }
            if sp == 0 {
                break;
            }
            sp -= 1;
            cur = stack[sp];
        }
        best.d
    }

    /// The triangles of leaf `n` against the best distance so far: lowers
    /// `best` to the distance of every triangle closer than it; `true` when
    /// one is at distance 0 (the segment touches it).
    ///
    /// Bounds, each a true lower bound on the segment-triangle distance
    /// (computed with slack `SLACK_MM` or `PLANE_SLACK_MM` above the rounding
    /// on bone-sized coordinates):
    /// * the part of the segment within `best` of the leaf's box lies in its
    ///   clip `[p0, p1]` to the box inflated by `best` (box ⊕ cube contains
    ///   box ⊕ ball); a triangle closer than `best` is closer to that part,
    ///   so a bound on `[p0, p1]` that reaches `best` proves
    ///   `distance >= best`;
    /// * the triangle's bounding sphere;
    /// * a separating direction `u` (unit, from the sphere centre `c`
    ///   towards the segment point closest to it): for `p` on `[p0, p1]` and
    ///   `x` in the triangle, `|p - x| >= u.(p - c) - u.(x - c) >=
    ///   min(u.(p0 - c), u.(p1 - c)) - max_k u.(v_k - c)` (a linear function
    ///   is extreme at the ends of a segment and at the corners of a
    ///   triangle); the same with one edge's two corners bounds the distance
    ///   to that edge;
    /// * the triangle's plane when `p0` and `p1` are on one side of it.
    ///
    /// The exact distance is the minimum of five candidates (end points to
    /// the triangle, segment to the edges; the segment does not cross the
    /// triangle). Only candidates not proved `>= best` are computed
    /// ([`segment_triangle_distance_sq_among`]): an end point outside
    /// `[p0, p1]` or farther than `best` from the sphere, and an edge whose
    /// `u`-bound reaches `best`, are skipped. The minimum of the others is
    /// the exact distance (same bits) whenever that is below `best`.
    #[inline(always)]
    fn leaf_below(
        &self,
        seg: &Seg,
        a: &Point3<f64>,
        b: &Point3<f64>,
        n: &Node,
        best: &mut Best,
    ) -> bool {
        let Some((t0, t1)) = seg.clip(n, best.d * (1.0 + 1e-12) + SLACK_MM) else {
            return false;
        };
        let p0 = a.coords + seg.d * t0;
        let p1 = a.coords + seg.d * t1;
        for k in n.first..n.first + n.count {
            let s = &self.spheres[k as usize];
            let c = Vector3::new(s[0], s[1], s[2]);
            let w = seg.offset_from(&c);
            let ww = w.norm_squared();
            let rad = s[3];
            if ww > rad * rad && ww.sqrt() - rad >= best.d {
                continue;
            }
            let tri = &self.tris[k as usize];
            // With `ww == 0` (the segment meets the centre) `u = 0` gives
            // the trivial bounds `-SLACK_MM`.
            let u = if ww > 0.0 {
                w / ww.sqrt()
            } else {
                Vector3::zeros()
            };
            let e = [
                u.dot(&(tri[0].coords - c)),
                u.dot(&(tri[1].coords - c)),
                u.dot(&(tri[2].coords - c)),
            ];
            let smin = u.dot(&(p0 - c)).min(u.dot(&(p1 - c)));
            // `|u| <= 1 + 1e-15`: the relative 1e-12 absorbs it.
            let gap = |top: f64| (smin - top) * (1.0 - 1e-12) - SLACK_MM;
            if gap(e[0].max(e[1]).max(e[2])) >= best.d {
                continue;
            }
            let pl = &self.planes[k as usize];
            let g0 = pl[0] * p0.x + pl[1] * p0.y + pl[2] * p0.z - pl[3];
            let g1 = pl[0] * p1.x + pl[1] * p1.y + pl[2] * p1.z - pl[3];
            let gp = if g0 > 0.0 && g1 > 0.0 {
                g0.min(g1)
            } else if g0 < 0.0 && g1 < 0.0 {
                (-g0).min(-g1)
            } else {
                0.0
            };
            if gp - PLANE_SLACK_MM >= best.d {
                continue;
            }
            let lim = best.d + rad;
            let mut mask = 0u8;
            if t0 == 0.0 && (a.coords - c).norm_squared() < lim * lim {
                mask |= 1;
            }
            if t1 == 1.0 && (b.coords - c).norm_squared() < lim * lim {
                mask |= 2;
            }
            for j in 0..3 {
                if gap(e[j].max(e[(j + 1) % 3])) < best.d {
                    mask |= 4 << j;
                }
            }
            if mask == 0 {
                continue;
            }
            let d2 = segment_triangle_distance_sq_among(a, b, tri, mask);
            // Compare the rounded distances (not their squares) so that the
            // result is bit for bit `min(sqrt(min d2), cap)`.
            if d2 <= best.d_sq * (1.0 + 1e-12) || best.d_sq == f64::INFINITY {
                let d = d2.sqrt();
                if d < best.d {
                    best.d = d;
                    best.d_sq = d2;
                    if d2 == 0.0 {
                        return true;
                    }
                }
            }
        }
        false
    }

    /// A lower bound on the distance from the segment to the triangles of
    /// node `ni` when that distance is below `r`: `None` when the segment
    /// misses the node's box inflated by `r` (then every such distance is
    /// at least `r`), else `Some(g)` with `distance >= min(r, g)`.
    ///
    /// Why it is a true bound: a segment point within `r` of a triangle of
    /// the node is within `r` of its box, so inside box ⊕ cube(`r`), so in
    /// the clip `[p0, p1]` (the slab arithmetic of [`Seg::slab`], `r`
    /// widened by `SLACK_MM` above the rounding of the parameters). For any
    /// direction `w`, `|p - x| >= (w.(p - c) - w.(x - c)) / |w|`; over the
    /// clip the first term is smallest at `p0` or `p1`, over the box the
    /// second is largest at `h . |w|` (`c` centre, `h` half extents). The
    /// node's triangles also lie in its oriented slab (`node_slabs`), so
    /// when `p0` and `p1` are beyond the same face, the gap to that face
    /// bounds the distance too. `w` points from the centre to the segment
    /// point closest to it (the best direction for a thin segment; any `w`
    /// is valid). The result is lowered by a relative `1e-12` and
    /// `SLACK_MM` for the rounding of these few products.
    #[inline(always)]
    fn node_gap(&self, seg: &Seg, ni: u32, r: f64) -> Option<f64> {
        let n = &self.bvh.nodes[ni as usize];
        let rr = r * (1.0 + 1e-12) + SLACK_MM;
        let mut t0 = 0.0f64;
        let mut t1 = 1.0f64;
        for i in 0..3 {
            let l = n.lo[i] - rr;
            let h = n.hi[i] + rr;
            let ai = seg.a[i];
            if seg.flat[i] {
                if ai < l || ai > h {
                    return None;
                }
            } else {
                let ta = (l - ai) * seg.inv_d[i];
                let tb = (h - ai) * seg.inv_d[i];
                let (tn, tf) = if ta < tb { (ta, tb) } else { (tb, ta) };
                if tn > t0 {
                    t0 = tn;
                }
                if tf < t1 {
                    t1 = tf;
                }
            }
        }
        if t0 > t1 {
            return None;
        }
        let p0 = seg.a.coords + seg.d * t0;
        let p1 = seg.a.coords + seg.d * t1;
        let lower = |g: f64| g * (1.0 - 1e-12) - SLACK_MM;
        // The slab first (cheaper): a bound `>= r` alone proves
        // `distance >= r`.
        let sl = &self.node_slabs[ni as usize];
        let s0 = sl[0] * p0.x + sl[1] * p0.y + sl[2] * p0.z;
        let s1 = sl[0] * p1.x + sl[1] * p1.y + sl[2] * p1.z;
        let gs = lower(if s0 > sl[4] && s1 > sl[4] {
            s0.min(s1) - sl[4]
        } else if s0 < sl[3] && s1 < sl[3] {
            sl[3] - s0.max(s1)
        } else {
            0.0
        });
        if gs >= r {
            return None;
        }
        let c = (n.lo + n.hi) * 0.5;
        let h = (n.hi - n.lo) * 0.5;
        let w = seg.offset_from(&c);
        let ww = w.norm_squared();
        if ww > 0.0 {
            let num = w.dot(&(p0 - c)).min(w.dot(&(p1 - c)))
                - (h.x * w.x.abs() + h.y * w.y.abs() + h.z * w.z.abs());
            // `num / |w| >= rr` without the square root and division, `rr`
            // above `r` by more than the slack and rounding of `lower`.
            let rr = (r + SLACK_MM) * (1.0 + 1e-11);
            if num > 0.0 && num * num >= rr * rr * ww {
                return None;
            }
            return Some(lower(num / ww.sqrt()).max(gs));
        }
        Some(gs)
    }

    /// Whether the exact minimum distance between segment `[a, b]` and the
    /// surface is at least `threshold_mm` (the clearance decision of the
    /// planner's hot path).
    ///
    /// Equals `segment_distance_mm(a, b) >= threshold_mm` but is much cheaper:
    /// conservative pruning by the threshold and exit at the first triangle
    /// closer than it; no allocation. `true` for `threshold_mm <= 0`; `false`
    /// for non-finite input.
    ///
    /// # Units
    /// mm.
    #[must_use]
    pub fn segment_clears(&self, a: &Point3<f64>, b: &Point3<f64>, threshold_mm: f64) -> bool {
        if !finite(a) || !finite(b) || threshold_mm.is_nan() {
            return false;
        }
        if threshold_mm <= 0.0 {
            return true;
        }
        if threshold_mm == f64::INFINITY {
            return false;
        }
        // Slightly above threshold^2 so that no d^2 with sqrt(d^2) < threshold
        // escapes the early exit through rounding.
        let thr_sq_hi = threshold_mm * threshold_mm * (1.0 + 1e-12);
        let r = threshold_mm * (1.0 + 1e-12) + SLACK_MM;
        let seg = Seg::new(a, b);
        self.visit_near_triangles(&seg, a, b, r, |_, tri| {
            !breaks_clearance(a, b, &seg.d, tri, threshold_mm, thr_sq_hi)
        })
    }

    /// Whether leaf triangle `k` alone makes [`BoneSurface::segment_clears`]
    /// answer `false` for `(a, b, threshold_mm)`: the very per-triangle test
    /// of that query (crossed, or closer than the threshold on the same
    /// rounded value). Since that query never prunes a triangle closer than
    /// the threshold, `true` here implies `segment_clears(a, b,
    /// threshold_mm) == false`, bit for bit the same decision. Needs finite
    /// input and `0 < threshold_mm < inf` (the range where `segment_clears`
    /// runs this test).
    #[inline]
    pub(crate) fn triangle_breaks_clearance(
        &self,
        k: u32,
        a: &Point3<f64>,
        b: &Point3<f64>,
        threshold_mm: f64,
    ) -> bool {
        let thr_sq_hi = threshold_mm * threshold_mm * (1.0 + 1e-12);
        breaks_clearance(
            a,
            b,
            &(b - a),
            &self.tris[k as usize],
            threshold_mm,
            thr_sq_hi,
        )
    }

    /// Visits every triangle that may come within `r` of segment `[a, b]`
    /// (`seg` its precomputed form), in near-first BVH order, pruned by node
    /// box, node sphere, node slab, triangle sphere and triangle plane; stops
    /// and returns `false` as soon as `visit` does, `true` otherwise. The one
    /// traversal of the threshold queries ([`BoneSurface::segment_clears`],
    /// `segment_band_query`); no allocation. `visit` gets the leaf index
    /// and the triangle.
    #[inline(always)]
    fn visit_near_triangles(
        &self,
        seg: &Seg,
        a: &Point3<f64>,
        b: &Point3<f64>,
        r: f64,
        mut visit: impl FnMut(u32, &[Point3<f64>; 3]) -> bool,
    ) -> bool {
        let nodes = &self.bvh.nodes;
        let mut stack = [0u32; STACK_SIZE];
        let mut sp = 0;
        if seg.slab(&nodes[0], r).is_none() {
            return true;
        }
        let mut cur = 0u32;
        loop {
            let n = &nodes[cur as usize];
            if n.is_leaf() {
                for k in n.first..n.first + n.count {
                    let s = &self.spheres[k as usize];
                    let rr = s[3] + r;
                    if seg.dist_sq(&Vector3::new(s[0], s[1], s[2])) >= rr * rr {
                        continue;
                    }
                    // Farther than `r` from its plane: neither crossed nor
                    // within `r`.
                    if self.plane_gap(k as usize, a, b) >= r {
                        continue;
                    }
                    if !visit(k, &self.tris[k as usize]) {
                        return false;
                    }
                }
            } else {
                let l = n.first;
                let (nl, nr) = (&nodes[l as usize], &nodes[l as usize + 1]);
                let hl = seg
                    .slab(nl, r)
                    .filter(|_| !seg.misses_sphere(nl, r) && self.slab_gap(l as usize, a, b) < r);
                let hr = seg.slab(nr, r).filter(|_| {
                    !seg.misses_sphere(nr, r) && self.slab_gap(l as usize + 1, a, b) < r
                });
                match (hl, hr) {
                    (Some(x), Some(y)) => {
                        let (near, far) = if x <= y { (l, l + 1) } else { (l + 1, l) };
                        stack[sp] = far;
                        sp += 1;
                        cur = near;
                        continue;
                    }
                    (Some(_), None) => {
                        cur = l;
                        continue;
                    }
                    (None, Some(_)) => {
                        cur = l + 1;
                        continue;
                    }
                    (None, None) => {}
                }
            }
            if sp == 0 {
                break;
            }
            sp -= 1;
            cur = stack[sp];
        }
        true
    }

    /// Whether segment `[a, b]` crosses or touches the surface (exact
    /// distance 0). `false` for non-finite input.
    #[must_use]
    pub fn segment_intersects(&self, a: &Point3<f64>, b: &Point3<f64>) -> bool {
        if !finite(a) || !finite(b) {
            return false;
        }
        self.crossing_among_boxes_near(a, b, &Seg::new(a, b), SLACK_MM)
    }

    /// The per-triangle crossing tests of [`BoneSurface::segment_intersects`]
    /// on `[a, b]`, over the triangles whose BVH boxes, inflated by `reach_mm`,
    /// meet the segment `part` (the whole of `[a, b]`, or the only part of
    /// it that may touch the surface). Inputs are finite.
    #[inline]
    fn crossing_among_boxes_near(
        &self,
        a: &Point3<f64>,
        b: &Point3<f64>,
        part: &Seg,
        reach_mm: f64,
    ) -> bool {
        let d = b - a;
        let nodes = &self.bvh.nodes;
        let mut stack = [0u32; STACK_SIZE];
        let mut sp = 0;
        if part.slab(&nodes[0], reach_mm).is_none() {
            return false;
        }
        let mut cur = 0u32;
        loop {
            let n = &nodes[cur as usize];
            if n.is_leaf() {
                for k in n.first..n.first + n.count {
                    // Both ends strictly on one side of the plane: no contact.
                    if self.plane_gap(k as usize, a, b) > 0.0 {
                        continue;
                    }
                    let tri = &self.tris[k as usize];
                    if watertight_hit(a, &d, tri, 1.0).is_some()
                        || segment_triangle_distance_sq_no_hit(a, b, tri, f64::MIN_POSITIVE) == 0.0
                    {
                        return true;
                    }
                }
            } else {
                let l = n.first;
                let hl = part.slab(&nodes[l as usize], reach_mm).is_some();
                let hr = part.slab(&nodes[l as usize + 1], reach_mm).is_some();
                match (hl, hr) {
                    (true, true) => {
                        stack[sp] = l + 1;
                        sp += 1;
                        cur = l;
                        continue;
                    }
                    (true, false) => {
                        cur = l;
                        continue;
                    }
                    (false, true) => {
                        cur = l + 1;
                        continue;
                    }
                    (false, false) => {}
                }
            }
            if sp == 0 {
                break;
            }
            sp -= 1;
            cur = stack[sp];
        }
        false
    }

    /// A lower bound on the distance from segment `[a, b]` to every triangle
    /// of BVH node `ni`, mm, from the node's oriented slab (0 when the
    /// segment meets the slab or the node has none).
    #[inline]
    fn slab_gap(&self, ni: usize, a: &Point3<f64>, b: &Point3<f64>) -> f64 {
        let p = &self.node_slabs[ni];
        let sa = p[0] * a.x + p[1] * a.y + p[2] * a.z;
        let sb = p[0] * b.x + p[1] * b.y + p[2] * b.z;
        if sa > p[4] && sb > p[4] {
            sa.min(sb) - p[4]
        } else if sa < p[3] && sb < p[3] {
            p[3] - sa.max(sb)
        } else {
            0.0
        }
    }

    /// A lower bound on the distance from segment `[a, b]` to leaf triangle
    /// `k`, mm: the smaller distance of the two ends to the triangle's plane
    /// when both lie strictly on one side of it (minus [`PLANE_SLACK_MM`]
    /// for rounding), otherwise a value `<= 0`. About 15 operations: it
    /// spares the full segment-triangle test for triangles that face the
    /// segment from farther than the threshold at hand.
    #[inline]
    fn plane_gap(&self, k: usize, a: &Point3<f64>, b: &Point3<f64>) -> f64 {
        let p = &self.planes[k];
        let sa = p[0] * a.x + p[1] * a.y + p[2] * a.z - p[3];
        let sb = p[0] * b.x + p[1] * b.y + p[2] * b.z - p[3];
        let g = if sa > 0.0 && sb > 0.0 {
            sa.min(sb)
        } else if sa < 0.0 && sb < 0.0 {
            (-sa).min(-sb)
        } else {
            0.0
        };
        g - PLANE_SLACK_MM
    }

    /// `min(distance from p to the surface, cap_mm)`, mm: the exact distance
    /// when it is below `cap_mm` (the same closest-point search as
    /// [`BoneSurface::closest_point`], pruned by the cap from the root).
    /// `p` must be finite.
    pub(crate) fn point_distance_below(&self, p: &Point3<f64>, cap_mm: f64) -> f64 {
        let mut best_sq = cap_mm * cap_mm;
        self.point_branch_and_bound(p, &mut best_sq, |k, best_sq| {
            let s = &self.spheres[k as usize];
            let dc = (p.coords - Vector3::new(s[0], s[1], s[2])).norm();
            let lbt = dc - s[3];
            if lbt > 0.0 && lbt * lbt >= *best_sq {
                return;
            }
            let q = closest_point_on_triangle(p, &self.tris[k as usize]);
            let d = (p - q).norm_squared();
            if d < *best_sq {
                *best_sq = d;
            }
        });
        best_sq.sqrt().min(cap_mm)
    }

    /// The clearance decision with a band: [`Band::Clear`] when the exact
    /// distance from `[a, b]` to the surface is at least `threshold_mm +
    /// band_mm`, [`Band::Blocked`] with a leaf index whose triangle comes
    /// closer than `threshold_mm - band_mm` (or crosses the segment) when
    /// the distance is below that, [`Band::Undecided`] when it may lie in
    /// between (up to rounding of the segment-triangle distances, far below
    /// `band_mm` for bone-sized coordinates and `band_mm >= 1e-9`). One
    /// traversal pruned at the upper end of the band. Needs finite input and
    /// `threshold_mm > band_mm > 0`.
    pub(crate) fn segment_band_query(
        &self,
        a: &Point3<f64>,
        b: &Point3<f64>,
        threshold_mm: f64,
        band_mm: f64,
    ) -> Band {
        let hi = threshold_mm + band_mm;
        let lo = threshold_mm - band_mm;
        let (lo_sq, hi_sq) = (lo * lo, hi * hi);
        let r = hi * (1.0 + 1e-12) + SLACK_MM;
        let seg = Seg::new(a, b);
        let mut in_band = false;
        let mut blocker = u32::MAX;
        let clear = self.visit_near_triangles(&seg, a, b, r, |k, tri| {
            if watertight_hit(a, &seg.d, tri, 1.0).is_some() {
                blocker = k;
                return false;
            }
            let d2 = segment_triangle_distance_sq_no_hit(a, b, tri, lo_sq);
            if d2 < lo_sq {
                blocker = k;
                return false;
            }
            in_band |= d2 < hi_sq;
            true
        });
        if !clear {
            Band::Blocked(blocker)
        } else if in_band {
            Band::Undecided
        } else {
            Band::Clear
        }
    }

    /// [`BoneSurface::segment_intersects`]`(a, b)` when every point of `[a,
    /// b]` outside the part between `p` and `q` (two points on `[a, b]`, `p`
    /// nearer `a`) is known to stay at a positive distance (far above
    /// rounding, say `>= 1e-6` mm) from the surface: the same per-triangle
    /// tests on `[a, b]`, over the triangles whose BVH boxes come within
    /// `1e-7` mm of `[p, q]` only (a triangle that `[a, b]` touches does so
    /// on that part). `false` for non-finite input.
    pub(crate) fn segment_intersects_near(
        &self,
        a: &Point3<f64>,
        b: &Point3<f64>,
        p: &Point3<f64>,
        q: &Point3<f64>,
    ) -> bool {
        if !finite(a) || !finite(b) || !finite(p) || !finite(q) {
            return false;
        }
        const REACH_MM: f64 = 1e-7;
        self.crossing_among_boxes_near(a, b, &Seg::new(p, q), REACH_MM)
    }

    /// Leaf indices of every triangle that may come within `SLACK_MM` of the
    /// region `{apex + s u : 0 <= s <= length_mm, u . axis >= cos_half}` (a
    /// solid cone of half-angle `acos(cos_half)` cut at `length_mm`), written
    /// to `out` (cleared first). Conservative: a triangle left out provably
    /// misses every segment inside that region (its bounding sphere does), so
    /// [`BoneSurface::segment_intersects_among`] over `out` answers like
    /// [`BoneSurface::segment_intersects`] for such segments. `axis` must be
    /// a unit vector and `cos_half` in `(0, 1]`.
    pub(crate) fn triangles_near_cone(
        &self,
        apex: &Point3<f64>,
        axis: &Vector3<f64>,
        cos_half: f64,
        length_mm: f64,
        out: &mut Vec<u32>,
    ) {
        out.clear();
        let sin_half = (1.0 - cos_half * cos_half).max(0.0).sqrt();
        // Lower bound on the distance from a ball (centre c, radius r) to the
        // cone: the distance from c to the cone's lateral surface extended
        // (|w| sin(angle(w, axis) - half)) and to the ball |x - apex| <= length.
        let misses = |c: &Vector3<f64>, r: f64| {
            let w = c - apex.coords;
            let ww = w.norm_squared();
            let reach = length_mm + r + SLACK_MM;
            if ww > reach * reach {
                return true;
            }
            let along = w.dot(axis);
            let perp = (ww - along * along).max(0.0).sqrt();
            let lb = perp * cos_half - along * sin_half;
            lb > (r + SLACK_MM) * (1.0 + 1e-9) + 1e-6
        };
        let nodes = &self.bvh.nodes;
        let node_misses = |n: &Node| misses(&((n.lo + n.hi) * 0.5), n.radius);
        let mut stack = [0u32; STACK_SIZE];
        let mut sp = 0;
        if node_misses(&nodes[0]) {
            return;
        }
        let mut cur = 0u32;
        loop {
            let n = &nodes[cur as usize];
            if n.is_leaf() {
                for k in n.first..n.first + n.count {
                    let s = &self.spheres[k as usize];
                    if !misses(&Vector3::new(s[0], s[1], s[2]), s[3]) {
                        out.push(k);
                    }
                }
            } else {
                let l = n.first;
                let hl = !node_misses(&nodes[l as usize]);
                let hr = !node_misses(&nodes[l as usize + 1]);
                match (hl, hr) {
                    (true, true) => {
                        stack[sp] = l + 1;
                        sp += 1;
                        cur = l;
                        continue;
                    }
                    (true, false) => {
                        cur = l;
                        continue;
                    }
                    (false, true) => {
                        cur = l + 1;
                        continue;
                    }
                    (false, false) => {}
                }
            }
            if sp == 0 {
                break;
            }
            sp -= 1;
            cur = stack[sp];
        }
    }

    /// [`BoneSurface::segment_intersects`] restricted to the leaf triangles
    /// `tris` (from [`BoneSurface::triangles_near_cone`]): the same
    /// per-triangle tests, so the same answer whenever every triangle the
    /// segment may touch is in `tris`.
    pub(crate) fn segment_intersects_among(
        &self,
        a: &Point3<f64>,
        b: &Point3<f64>,
        tris: &[u32],
    ) -> bool {
        if !finite(a) || !finite(b) {
            return false;
        }
        let d = b - a;
        tris.iter().any(|&k| {
            if self.plane_gap(k as usize, a, b) > 0.0 {
                return false;
            }
            let tri = &self.tris[k as usize];
            watertight_hit(a, &d, tri, 1.0).is_some()
                || segment_triangle_distance_sq_no_hit(a, b, tri, f64::MIN_POSITIVE) == 0.0
        })
    }

    /// Indices (into [`BoneSurface::mesh`]) of every triangle whose distance
    /// to `center` is at most `radius_mm`, ascending, written to `out`
    /// (cleared first). Nothing for non-finite input or a negative radius.
    pub fn triangles_in_sphere(&self, center: &Point3<f64>, radius_mm: f64, out: &mut Vec<u32>) {
        out.clear();
        if !finite(center) || !radius_mm.is_finite() || radius_mm < 0.0 {
            return;
        }
        let r2 = radius_mm * radius_mm;
        let nodes = &self.bvh.nodes;
        let mut stack = [0u32; STACK_SIZE];
        let mut sp = 0;
        if point_box_dist_sq(center, &nodes[0]) > r2 {
            return;
        }
        let mut cur = 0u32;
        loop {
            let n = &nodes[cur as usize];
            if n.is_leaf() {
                for k in n.first..n.first + n.count {
                    let (q, _) = closest_point_on_triangle_feature(center, &self.tris[k as usize]);
                    if (center - q).norm_squared() <= r2 {
                        out.push(self.bvh.order[k as usize]);
                    }
                }
            } else {
                let l = n.first;
                let hl = point_box_dist_sq(center, &nodes[l as usize]) <= r2;
                let hr = point_box_dist_sq(center, &nodes[l as usize + 1]) <= r2;
                match (hl, hr) {
                    (true, true) => {
                        stack[sp] = l + 1;
                        sp += 1;
                        cur = l;
                        continue;
                    }
                    (true, false) => {
                        cur = l;
                        continue;
                    }
                    (false, true) => {
                        cur = l + 1;
                        continue;
                    }
                    (false, false) => {}
                }
            }
            if sp == 0 {
                break;
            }
            sp -= 1;
            cur = stack[sp];
        }
        out.sort_unstable();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::segment_triangle_distance_sq;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A closed, outward, bumpy sphere (radius 20 +- 3 mm around the
    /// origin) of `2 + lat * lon` vertices: a few thousand triangles, so the
    /// hierarchy has many levels and flat and curved patches.
    fn bumpy_sphere(lat: usize, lon: usize) -> BoneSurface {
        let r =
            |th: f64, ph: f64| 20.0 + 2.0 * (3.0 * th).sin() * (2.0 * ph).cos() + (5.0 * ph).sin();
        let mut v = vec![Point3::new(0.0, 0.0, r(0.0, 0.0))];
        for i in 1..=lat {
            let th = std::f64::consts::PI * i as f64 / (lat + 1) as f64;
            for j in 0..lon {
                let ph = std::f64::consts::TAU * j as f64 / lon as f64;
                let rr = r(th, ph);
                v.push(Point3::new(
                    rr * th.sin() * ph.cos(),
                    rr * th.sin() * ph.sin(),
                    rr * th.cos(),
                ));
            }
        }
        v.push(Point3::new(0.0, 0.0, -r(std::f64::consts::PI, 0.0)));
        let last = (v.len() - 1) as u32;
        let at = |i: usize, j: usize| (1 + (i - 1) * lon + j % lon) as u32;
        let mut t = Vec::new();
        for j in 0..lon {
            t.push([0, at(1, j), at(1, j + 1)]);
            t.push([last, at(lat, j + 1), at(lat, j)]);
        }
        for i in 1..lat {
            for j in 0..lon {
                t.push([at(i, j), at(i + 1, j), at(i + 1, j + 1)]);
                t.push([at(i, j), at(i + 1, j + 1), at(i, j + 1)]);
            }
        }
        let mut mesh = TriMesh::new(v, t).unwrap();
        if mesh.signed_volume_mm3() < 0.0 {
            mesh.flip_orientation();
        }
        BoneSurface::new(mesh).unwrap()
    }

    fn rand_pt(rng: &mut ChaCha8Rng, s: f64) -> Point3<f64> {
        Point3::new(
            rng.random_range(-s..s),
            rng.random_range(-s..s),
            rng.random_range(-s..s),
        )
    }

    /// Leaf-order triangle indices below node `ni`.
    fn node_triangles(bone: &BoneSurface, ni: usize, out: &mut Vec<usize>) {
        let n = &bone.bvh.nodes[ni];
        if n.is_leaf() {
            out.extend(n.first as usize..(n.first + n.count) as usize);
        } else {
            node_triangles(bone, n.first as usize, out);
            node_triangles(bone, n.first as usize + 1, out);
        }
    }

    /// Exact distance from `[a, b]` to the leaf triangles `tris` of `bone`
    /// (0 when crossing).
    fn brute(bone: &BoneSurface, a: &Point3<f64>, b: &Point3<f64>, tris: &[usize]) -> f64 {
        tris.iter()
            .map(|&k| segment_triangle_distance_sq(a, b, &bone.tris[k]))
            .fold(f64::INFINITY, f64::min)
            .sqrt()
    }

    #[test]
    fn clip_holds_every_segment_point_near_the_box() {
        let bone = bumpy_sphere(20, 30);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..300 {
            let (a, b) = (rand_pt(&mut rng, 30.0), rand_pt(&mut rng, 30.0));
            // Axis-parallel segments too (the flat-axis branch).
            let b = if rng.random_bool(0.2) {
                Point3::new(a.x, b.y, a.z)
            } else {
                b
            };
            let seg = Seg::new(&a, &b);
            let ni = rng.random_range(0..bone.bvh.nodes.len());
            let n = &bone.bvh.nodes[ni];
            let r: f64 = rng.random_range(0.0..8.0);
            let clip = seg.clip(n, r);
            for i in 0..=400 {
                let t = i as f64 / 400.0;
                let p = a + (b - a) * t;
                let inside = (0..3).all(|k| p[k] >= n.lo[k] - r && p[k] <= n.hi[k] + r);
                if inside {
                    let (t0, t1) = clip.expect("a point inside, but no clip");
                    assert!(
                        t >= t0 - 1e-12 && t <= t1 + 1e-12,
                        "{t} outside [{t0}, {t1}]"
                    );
                }
            }
            if let Some((t0, t1)) = clip {
                assert!((0.0..=1.0).contains(&t0) && t0 <= t1 && t1 <= 1.0);
            }
        }
    }

    #[test]
    fn node_gap_is_a_lower_bound_below_r() {
        let bone = bumpy_sphere(16, 24);
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let mut tris = Vec::new();
        let (mut some, mut pruned) = (0, 0);
        for _ in 0..400 {
            // Inside, outside and through the surface; lengths 0 to ~100 mm.
            let a = rand_pt(&mut rng, 30.0);
            let b = if rng.random_bool(0.1) {
                a
            } else {
                rand_pt(&mut rng, 30.0)
            };
            let seg = Seg::new(&a, &b);
            let ni = rng.random_range(0..bone.bvh.nodes.len());
            tris.clear();
            node_triangles(&bone, ni, &mut tris);
            let exact = brute(&bone, &a, &b, &tris);
            for r in [0.3, 1.0, 3.0, 10.0, f64::INFINITY] {
                match bone.node_gap(&seg, ni as u32, r) {
                    None => {
                        pruned += 1;
                        assert!(exact >= r, "pruned at r = {r} but the distance is {exact}");
                    }
                    Some(g) => {
                        some += 1;
                        assert!(
                            exact >= g.min(r),
                            "node {ni}: bound {g} above the distance {exact} (r = {r})"
                        );
                    }
                }
            }
        }
        // Both outcomes occur.
        assert!(
            some > 100 && pruned > 100,
            "{some} bounded, {pruned} pruned"
        );
    }

    #[test]
    fn node_gap_is_tight_beside_a_flat_patch() {
        // A 10 mm cube; the segment runs 2 mm above its top face, parallel
        // to it: every bound is within slack of 2 mm at the root and the
        // distance is exactly 2 mm.
        let bone = BoneSurface::new(
            TriMesh::cuboid(Point3::origin(), Point3::new(10.0, 10.0, 10.0)).unwrap(),
        )
        .unwrap();
        let (a, b) = (Point3::new(-5.0, 5.0, 12.0), Point3::new(15.0, 5.0, 12.0));
        let g = bone.node_gap(&Seg::new(&a, &b), 0, f64::INFINITY).unwrap();
        assert!((g - 2.0).abs() < 1e-8, "{g}");
        assert_eq!(bone.segment_distance_mm(&a, &b), 2.0);
        assert!(bone.node_gap(&Seg::new(&a, &b), 0, 1.5).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The branch and bound equals the brute-force minimum over every
        /// triangle bit for bit (crossing: 0), and the capped form is
        /// `min(exact, cap)` bit for bit.
        #[test]
        fn segment_distance_equals_brute_force_bit_for_bit(
            a in prop::array::uniform3(-30.0f64..30.0),
            b in prop::array::uniform3(-30.0f64..30.0),
            short in prop::bool::ANY,
            cap in 0.01f64..15.0,
        ) {
            let bone = bumpy_sphere(12, 18);
            let a = Point3::from(a);
            let b = Point3::from(b);
            // Short segments (1/20 of the span) too: mostly far from the
            // surface or well inside.
            let b = if short { a + (b - a) / 20.0 } else { b };
            let all: Vec<usize> = (0..bone.tris.len()).collect();
            let exact = bone.segment_distance_mm(&a, &b);
            let slow = brute(&bone, &a, &b, &all);
            prop_assert_eq!(exact.to_bits(), slow.to_bits(), "{} vs {}", exact, slow);
            let capped = bone.segment_distance_below_mm(&a, &b, cap);
            prop_assert_eq!(capped.to_bits(), exact.min(cap).to_bits());
        }
    }
}
