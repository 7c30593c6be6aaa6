//! Exact point, segment and triangle primitives (f64, allocation-free).
//!
//! These are the leaf tests of [`crate::geometry::BoneSurface`]:
//!
//! * [`closest_point_on_triangle`]: Voronoi-region walk of Ericson,
//!   *Real-Time Collision Detection* (2005), section 5.1.5.
//! * [`segment_intersects_triangle`]: the watertight ray/triangle test of
//!   Woop, Benthin and Wald, *Watertight Ray/Triangle Intersection*, JCGT 2(1),
//!   2013, restricted to the parameter range `[0, 1]` of a segment. A segment
//!   that crosses a mesh exactly through a shared edge or vertex is reported by
//!   at least one of the triangles (no leaks between triangles).
//! * [`segment_triangle_distance_sq`]: exact squared distance. When a segment
//!   and a triangle do not intersect, the closest pair has one point on the
//!   segment's end points or on one of the triangle's edges, so the distance
//!   is the minimum of two point/triangle and three segment/segment distances
//!   (Ericson, section 5.1.10).
//!
//! All lengths are in the caller's unit (mm in this crate).

use nalgebra::{Point3, Vector3};

/// Which feature of a triangle a closest point lies on.
///
/// `Vertex(k)` is corner `k`; `Edge(k)` is the edge from corner `k` to
/// corner `(k + 1) % 3`; `Face` is the interior.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Feature {
    /// A corner, 0..3.
    Vertex(u8),
    /// The edge from corner `k` to corner `k + 1 (mod 3)`.
    Edge(u8),
    /// The open interior.
    Face,
}

/// Closest point of a triangle to `p` (Ericson 2005, section 5.1.5).
///
/// Exact up to rounding; works for degenerate (zero-area) triangles too.
///
/// # Units
/// Any consistent length unit (mm in this crate).
///
/// # Example
/// ```
/// use avnplan::geometry::closest_point_on_triangle;
/// use nalgebra::Point3;
/// use approx::assert_relative_eq;
/// let tri = [Point3::new(0.0, 0.0, 0.0), Point3::new(10.0, 0.0, 0.0), Point3::new(0.0, 10.0, 0.0)];
/// let q = closest_point_on_triangle(&Point3::new(2.0, 3.0, 5.0), &tri);
/// assert_relative_eq!(q, Point3::new(2.0, 3.0, 0.0), epsilon = 1e-12);
/// ```
#[must_use]
pub fn closest_point_on_triangle(p: &Point3<f64>, tri: &[Point3<f64>; 3]) -> Point3<f64> {
    closest_point_on_triangle_feature(p, tri).0
}

/// [`closest_point_on_triangle`] that also says which feature the point is on.
#[inline]
pub(crate) fn closest_point_on_triangle_feature(
    p: &Point3<f64>,
    tri: &[Point3<f64>; 3],
) -> (Point3<f64>, Feature) {
    let [a, b, c] = tri;
    let ab = b - a;
    let ac = c - a;
    let ap = p - a;
    let d1 = ab.dot(&ap);
    let d2 = ac.dot(&ap);
    if d1 <= 0.0 && d2 <= 0.0 {
        return (*a, Feature::Vertex(0));
    }
    let bp = p - b;
    let d3 = ab.dot(&bp);
    let d4 = ac.dot(&bp);
    if d3 >= 0.0 && d4 <= d3 {
        return (*b, Feature::Vertex(1));
    }
    let vc = d1 * d4 - d3 * d2;
    if vc <= 0.0 && d1 >= 0.0 && d3 <= 0.0 {
        let den = d1 - d3;
        let v = if den > 0.0 { d1 / den } else { 0.0 };
        return (a + ab * v, Feature::Edge(0));
    }
    let cp = p - c;
    let d5 = ab.dot(&cp);
    let d6 = ac.dot(&cp);
    if d6 >= 0.0 && d5 <= d6 {
        return (*c, Feature::Vertex(2));
    }
    let vb = d5 * d2 - d1 * d6;
    if vb <= 0.0 && d2 >= 0.0 && d6 <= 0.0 {
        let den = d2 - d6;
        let w = if den > 0.0 { d2 / den } else { 0.0 };
        return (a + ac * w, Feature::Edge(2));
    }
    let va = d3 * d6 - d5 * d4;
    if va <= 0.0 && (d4 - d3) >= 0.0 && (d5 - d6) >= 0.0 {
        let den = (d4 - d3) + (d5 - d6);
        let w = if den > 0.0 { (d4 - d3) / den } else { 0.0 };
        return (b + (c - b) * w, Feature::Edge(1));
    }
    let sum = va + vb + vc;
    if sum > 0.0 && sum.is_finite() {
        let denom = 1.0 / sum;
        let v = vb * denom;
        let w = vc * denom;
        return (a + ab * v + ac * w, Feature::Face);
    }
    // Degenerate triangle (zero area): the closest point lies on an edge.
    let mut best = (*a, Feature::Vertex(0));
    let mut best_d = f64::INFINITY;
    for k in 0..3u8 {
        let s = tri[k as usize];
        let e = tri[(k as usize + 1) % 3];
        let q = closest_point_on_segment(p, &s, &e);
        let d = (p - q).norm_squared();
        if d < best_d {
            best_d = d;
            best = (q, Feature::Edge(k));
        }
    }
    best
}

/// Closest point of segment `[a, b]` to `p`.
#[inline]
#[must_use]
pub(crate) fn closest_point_on_segment(
    p: &Point3<f64>,
    a: &Point3<f64>,
    b: &Point3<f64>,
) -> Point3<f64> {
    let d = b - a;
    let dd = d.norm_squared();
    if dd <= 0.0 {
        return *a;
    }
    let t = ((p - a).dot(&d) / dd).clamp(0.0, 1.0);
    a + d * t
}

/// Squared distance from `p` to segment `[a, b]` with `d = b - a`, `dd = |d|^2`.
#[inline]
pub(crate) fn point_segment_distance_sq(
    p: &Vector3<f64>,
    a: &Vector3<f64>,
    d: &Vector3<f64>,
    inv_dd: f64,
) -> f64 {
    let q = p - a;
    let t = (q.dot(d) * inv_dd).clamp(0.0, 1.0);
    (q - d * t).norm_squared()
}

/// Squared distance between segments `[p1, q1]` and `[p2, q2]`
/// (Ericson 2005, section 5.1.9, with degenerate segments handled).
#[inline]
#[must_use]
pub(crate) fn segment_segment_distance_sq(
    p1: &Point3<f64>,
    q1: &Point3<f64>,
    p2: &Point3<f64>,
    q2: &Point3<f64>,
) -> f64 {
    let d1 = q1 - p1;
    let d2 = q2 - p2;
    let r = p1 - p2;
    let a = d1.norm_squared();
    let e = d2.norm_squared();
    let f = d2.dot(&r);
    let (s, t);
    if a <= 0.0 && e <= 0.0 {
        return r.norm_squared();
    }
    if a <= 0.0 {
        s = 0.0;
        t = (f / e).clamp(0.0, 1.0);
    } else {
        let c = d1.dot(&r);
        if e <= 0.0 {
            t = 0.0;
            s = (-c / a).clamp(0.0, 1.0);
        } else {
            let b = d1.dot(&d2);
            let denom = a * e - b * b;
            let mut s0 = if denom > 0.0 {
                ((b * f - c * e) / denom).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let mut t0 = (b * s0 + f) / e;
            if t0 < 0.0 {
                t0 = 0.0;
                s0 = (-c / a).clamp(0.0, 1.0);
            } else if t0 > 1.0 {
                t0 = 1.0;
                s0 = ((b - c) / a).clamp(0.0, 1.0);
            }
            s = s0;
            t = t0;
        }
    }
    let c1 = p1 + d1 * s;
    let c2 = p2 + d2 * t;
    (c1 - c2).norm_squared()
}

/// Watertight intersection of segment `[a, b]` with a triangle (Woop et al. 2013).
///
/// Returns the segment parameter `t` in `[0, 1]` of the crossing point
/// `a + t (b - a)`, or `None` when they do not meet. Both windings count.
/// A segment lying in the triangle's plane is reported as `None` (use
/// [`segment_triangle_distance_sq`] for a test that covers that case too).
///
/// # Example
/// ```
/// use avnplan::geometry::segment_intersects_triangle;
/// use nalgebra::Point3;
/// use approx::assert_relative_eq;
/// let tri = [Point3::new(0.0, 0.0, 0.0), Point3::new(10.0, 0.0, 0.0), Point3::new(0.0, 10.0, 0.0)];
/// let t = segment_intersects_triangle(&Point3::new(1.0, 1.0, -1.0), &Point3::new(1.0, 1.0, 3.0), &tri);
/// assert_relative_eq!(t.unwrap(), 0.25, epsilon = 1e-12);
/// ```
#[must_use]
pub fn segment_intersects_triangle(
    a: &Point3<f64>,
    b: &Point3<f64>,
    tri: &[Point3<f64>; 3],
) -> Option<f64> {
    let d = b - a;
    watertight_hit(a, &d, tri, 1.0).map(|(t, _)| t)
}

/// Watertight ray/triangle test on `origin + t dir`, `t` in `[0, t_max]`.
/// Returns `(t, det)`; `det > 0` when `dir` goes against the triangle's
/// right-hand normal (entering a solid with outward normals).
#[inline]
pub(crate) fn watertight_hit(
    origin: &Point3<f64>,
    dir: &Vector3<f64>,
    tri: &[Point3<f64>; 3],
    t_max: f64,
) -> Option<(f64, f64)> {
    // Axis of largest |dir| becomes z; keep winding by swapping x, y if needed.
    let ad = dir.abs();
    let kz = if ad.x >= ad.y && ad.x >= ad.z {
        0
    } else if ad.y >= ad.z {
        1
    } else {
        2
    };
    if dir[kz] == 0.0 {
        return None;
    }
    let mut kx = (kz + 1) % 3;
    let mut ky = (kx + 1) % 3;
    if dir[kz] < 0.0 {
        std::mem::swap(&mut kx, &mut ky);
    }
    let sz = 1.0 / dir[kz];
    let sx = dir[kx] * sz;
    let sy = dir[ky] * sz;
    let pa = tri[0] - origin;
    let pb = tri[1] - origin;
    let pc = tri[2] - origin;
    let ax = pa[kx] - sx * pa[kz];
    let ay = pa[ky] - sy * pa[kz];
    let bx = pb[kx] - sx * pb[kz];
    let by = pb[ky] - sy * pb[kz];
    let cx = pc[kx] - sx * pc[kz];
    let cy = pc[ky] - sy * pc[kz];
    let u = cx * by - cy * bx;
    let v = ax * cy - ay * cx;
    let w = bx * ay - by * ax;
    if (u < 0.0 || v < 0.0 || w < 0.0) && (u > 0.0 || v > 0.0 || w > 0.0) {
        return None;
    }
    let det = u + v + w;
    if det == 0.0 || !det.is_finite() {
        return None;
    }
    let az = sz * pa[kz];
    let bz = sz * pb[kz];
    let cz = sz * pc[kz];
    let t_scaled = u * az + v * bz + w * cz;
    let t = t_scaled / det;
    if (0.0..=t_max).contains(&t) {
        // Orientation from the right-hand normal: > 0 when `dir` enters.
        let n = (tri[1] - tri[0]).cross(&(tri[2] - tri[0]));
        Some((t, -n.dot(dir)))
    } else {
        None
    }
}

/// Exact squared distance between segment `[a, b]` and a triangle; `0` when
/// they intersect (or touch).
///
/// # Units
/// Squared length in the caller's unit (mm^2 in this crate).
///
/// # Example
/// ```
/// use avnplan::geometry::segment_triangle_distance_sq;
/// use nalgebra::Point3;
/// use approx::assert_relative_eq;
/// let tri = [Point3::new(0.0, 0.0, 0.0), Point3::new(10.0, 0.0, 0.0), Point3::new(0.0, 10.0, 0.0)];
/// // Parallel to the plane, 2 mm above it.
/// let d2 = segment_triangle_distance_sq(&Point3::new(1.0, 1.0, 2.0), &Point3::new(3.0, 1.0, 2.0), &tri);
/// assert_relative_eq!(d2, 4.0, epsilon = 1e-12);
/// // Crossing it.
/// let d2 = segment_triangle_distance_sq(&Point3::new(1.0, 1.0, -1.0), &Point3::new(1.0, 1.0, 1.0), &tri);
/// assert_eq!(d2, 0.0);
/// ```
#[must_use]
pub fn segment_triangle_distance_sq(
    a: &Point3<f64>,
    b: &Point3<f64>,
    tri: &[Point3<f64>; 3],
) -> f64 {
    if segment_intersects_triangle(a, b, tri).is_some() {
        return 0.0;
    }
    segment_triangle_distance_sq_no_hit(a, b, tri, 0.0)
}

/// Squared distance assuming no intersection, with early exit: returns as soon
/// as a candidate squared distance `< stop_sq` is found (the value returned
/// is then some value `< stop_sq`, not necessarily the minimum). With
/// `stop_sq = 0` it returns the exact minimum.
#[inline]
pub(crate) fn segment_triangle_distance_sq_no_hit(
    a: &Point3<f64>,
    b: &Point3<f64>,
    tri: &[Point3<f64>; 3],
    stop_sq: f64,
) -> f64 {
    let mut best = (a - closest_point_on_triangle(a, tri)).norm_squared();
    if best < stop_sq {
        return best;
    }
    best = best.min((b - closest_point_on_triangle(b, tri)).norm_squared());
    if best < stop_sq {
        return best;
    }
    for k in 0..3 {
        let d = segment_segment_distance_sq(a, b, &tri[k], &tri[(k + 1) % 3]);
        if d < best {
            best = d;
            if best < stop_sq {
                return best;
            }
        }
    }
    best
}

/// Every candidate of [`segment_triangle_distance_sq_among`].
#[cfg(test)]
pub(crate) const ALL_CANDIDATES: u8 = 0b1_1111;

/// The minimum of the squared-distance candidates selected by `mask` of a
/// segment and a triangle that do not intersect: bit 0 end point `a` to the
/// triangle, bit 1 end point `b`, bit `2 + k` the segment to edge `k`
/// (corner `k` to corner `k + 1`) (Ericson 2005, section 5.1.10). With
/// `mask = 0b1_1111` (all five) this is the exact
/// squared distance, bit for bit the value of
/// `segment_triangle_distance_sq_no_hit(a, b, tri, 0.0)`; a caller that
/// drops only candidates it has proved to be at least some bound `r^2` gets
/// the exact minimum whenever that is below `r^2` (the same floating-point
/// candidates, so the same bits), and a value `>= r^2` otherwise.
/// `f64::INFINITY` for an empty mask.
#[inline]
pub(crate) fn segment_triangle_distance_sq_among(
    a: &Point3<f64>,
    b: &Point3<f64>,
    tri: &[Point3<f64>; 3],
    mask: u8,
) -> f64 {
    let mut best = f64::INFINITY;
    if mask & 1 != 0 {
        best = (a - closest_point_on_triangle(a, tri)).norm_squared();
    }
    if mask & 2 != 0 {
        best = best.min((b - closest_point_on_triangle(b, tri)).norm_squared());
    }
    for k in 0..3 {
        if mask & (4 << k) != 0 {
            let d = segment_segment_distance_sq(a, b, &tri[k], &tri[(k + 1) % 3]);
            if d < best {
                best = d;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn tri() -> [Point3<f64>; 3] {
        [
            Point3::new(0.0, 0.0, 0.0),
            Point3::new(4.0, 0.0, 0.0),
            Point3::new(0.0, 3.0, 0.0),
        ]
    }

    fn rand_pt(rng: &mut ChaCha8Rng, s: f64) -> Point3<f64> {
        Point3::new(
            rng.random_range(-s..s),
            rng.random_range(-s..s),
            rng.random_range(-s..s),
        )
    }

    /// Dense barycentric sampling: an upper bound on the distance.
    fn sampled_point_tri_sq(p: &Point3<f64>, t: &[Point3<f64>; 3], n: usize) -> f64 {
        let mut best = f64::INFINITY;
        for i in 0..=n {
            for j in 0..=(n - i) {
                let u = i as f64 / n as f64;
                let v = j as f64 / n as f64;
                let q = t[0] + (t[1] - t[0]) * u + (t[2] - t[0]) * v;
                best = best.min((p - q).norm_squared());
            }
        }
        best
    }

    #[test]
    fn closest_point_known_regions() {
        let t = tri();
        let cases = [
            (
                Point3::new(1.0, 1.0, 2.0),
                Point3::new(1.0, 1.0, 0.0),
                Feature::Face,
            ),
            (Point3::new(-1.0, -1.0, 0.0), t[0], Feature::Vertex(0)),
            (Point3::new(6.0, -1.0, 1.0), t[1], Feature::Vertex(1)),
            (Point3::new(-1.0, 5.0, 0.0), t[2], Feature::Vertex(2)),
            (
                Point3::new(2.0, -3.0, 0.0),
                Point3::new(2.0, 0.0, 0.0),
                Feature::Edge(0),
            ),
            (
                Point3::new(-2.0, 1.0, 0.0),
                Point3::new(0.0, 1.0, 0.0),
                Feature::Edge(2),
            ),
        ];
        for (p, q, f) in cases {
            let (c, feat) = closest_point_on_triangle_feature(&p, &t);
            assert_relative_eq!(c, q, epsilon = 1e-12);
            assert_eq!(feat, f, "p = {p}");
        }
        // Hypotenuse: closest point of (4, 3, 0) is its projection on the edge.
        let (c, feat) = closest_point_on_triangle_feature(&Point3::new(4.0, 3.0, 0.0), &t);
        assert_eq!(feat, Feature::Edge(1));
        assert_relative_eq!(
            (c - t[1]).cross(&(t[2] - t[1])).norm(),
            0.0,
            epsilon = 1e-12
        );
    }

    #[test]
    fn closest_point_beats_sampling() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..300 {
            let t = [
                rand_pt(&mut rng, 5.0),
                rand_pt(&mut rng, 5.0),
                rand_pt(&mut rng, 5.0),
            ];
            let p = rand_pt(&mut rng, 8.0);
            let q = closest_point_on_triangle(&p, &t);
            let d = (p - q).norm_squared();
            let s = sampled_point_tri_sq(&p, &t, 60);
            assert!(d <= s + 1e-9, "exact {d} > sampled {s}");
            // Sampling at spacing h is within h * diameter of the truth.
            let h = 10.0 * 2.0 * 3f64.sqrt() / 60.0;
            assert!(s.sqrt() <= d.sqrt() + h, "{} vs {}", s.sqrt(), d.sqrt());
        }
    }

    #[test]
    fn degenerate_triangle_is_handled() {
        let t = [
            Point3::new(0.0, 0.0, 0.0),
            Point3::new(1.0, 0.0, 0.0),
            Point3::new(2.0, 0.0, 0.0),
        ];
        let q = closest_point_on_triangle(&Point3::new(1.5, 1.0, 0.0), &t);
        assert_relative_eq!(q, Point3::new(1.5, 0.0, 0.0), epsilon = 1e-12);
    }

    #[test]
    fn segment_segment_known() {
        let d = segment_segment_distance_sq(
            &Point3::new(0.0, 0.0, 0.0),
            &Point3::new(1.0, 0.0, 0.0),
            &Point3::new(0.5, 1.0, 2.0),
            &Point3::new(0.5, -1.0, 2.0),
        );
        assert_relative_eq!(d, 4.0, epsilon = 1e-12);
        // Parallel overlapping.
        let d = segment_segment_distance_sq(
            &Point3::new(0.0, 0.0, 0.0),
            &Point3::new(2.0, 0.0, 0.0),
            &Point3::new(1.0, 3.0, 0.0),
            &Point3::new(5.0, 3.0, 0.0),
        );
        assert_relative_eq!(d, 9.0, epsilon = 1e-12);
        // Degenerate (points).
        let p = Point3::new(1.0, 1.0, 1.0);
        let d = segment_segment_distance_sq(&p, &p, &Point3::origin(), &Point3::new(2.0, 0.0, 0.0));
        assert_relative_eq!(d, 2.0, epsilon = 1e-12);
    }

    #[test]
    fn segment_triangle_agrees_with_sampling() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..200 {
            let t = [
                rand_pt(&mut rng, 5.0),
                rand_pt(&mut rng, 5.0),
                rand_pt(&mut rng, 5.0),
            ];
            let a = rand_pt(&mut rng, 8.0);
            let b = rand_pt(&mut rng, 8.0);
            let d = segment_triangle_distance_sq(&a, &b, &t).sqrt();
            let n = 200;
            let mut s = f64::INFINITY;
            for i in 0..=n {
                let p = a + (b - a) * (i as f64 / n as f64);
                s = s.min((p - closest_point_on_triangle(&p, &t)).norm());
            }
            // Exact <= sampled, and sampled within half a step of exact.
            assert!(d <= s + 1e-9, "exact {d} > sampled {s}");
            assert!(
                s <= d + 0.5 * (b - a).norm() / n as f64 + 1e-9,
                "{s} vs {d}"
            );
        }
    }

    #[test]
    fn intersection_parameter_and_edges() {
        let t = tri();
        let a = Point3::new(1.0, 1.0, -2.0);
        let b = Point3::new(1.0, 1.0, 2.0);
        assert_relative_eq!(
            segment_intersects_triangle(&a, &b, &t).unwrap(),
            0.5,
            epsilon = 1e-12
        );
        assert_relative_eq!(
            segment_intersects_triangle(&b, &a, &t).unwrap(),
            0.5,
            epsilon = 1e-12
        );
        // Too short.
        assert!(segment_intersects_triangle(&a, &Point3::new(1.0, 1.0, -0.5), &t).is_none());
        // Miss.
        assert!(segment_intersects_triangle(
            &Point3::new(5.0, 5.0, -1.0),
            &Point3::new(5.0, 5.0, 1.0),
            &t
        )
        .is_none());
        // Through the shared edge of two triangles: at least one reports it.
        let t2 = [t[1], Point3::new(4.0, 3.0, 0.0), t[2]];
        let a = Point3::new(2.0, 1.5, -1.0);
        let b = Point3::new(2.0, 1.5, 1.0);
        let h1 = segment_intersects_triangle(&a, &b, &t);
        let h2 = segment_intersects_triangle(&a, &b, &t2);
        assert!(h1.is_some() || h2.is_some());
        assert_eq!(segment_triangle_distance_sq(&a, &b, &t), 0.0);
        // Coplanar segment inside the triangle: distance 0 via endpoints.
        let d = segment_triangle_distance_sq(
            &Point3::new(0.5, 0.5, 0.0),
            &Point3::new(1.0, 0.5, 0.0),
            &t,
        );
        assert_eq!(d, 0.0);
    }

    #[test]
    fn candidates_among_match_the_full_distance_bit_for_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..500 {
            let t = [
                rand_pt(&mut rng, 5.0),
                rand_pt(&mut rng, 5.0),
                rand_pt(&mut rng, 5.0),
            ];
            let a = rand_pt(&mut rng, 8.0);
            let b = rand_pt(&mut rng, 8.0);
            let full = segment_triangle_distance_sq_among(&a, &b, &t, ALL_CANDIDATES);
            assert_eq!(
                full.to_bits(),
                segment_triangle_distance_sq_no_hit(&a, &b, &t, 0.0).to_bits()
            );
            // Each candidate alone, then every subset: the minimum of its
            // candidates.
            let single: Vec<f64> = (0..5)
                .map(|k| segment_triangle_distance_sq_among(&a, &b, &t, 1 << k))
                .collect();
            assert_eq!(
                single[0].to_bits(),
                (a - closest_point_on_triangle(&a, &t))
                    .norm_squared()
                    .to_bits()
            );
            assert_eq!(
                single[3].to_bits(),
                segment_segment_distance_sq(&a, &b, &t[1], &t[2]).to_bits()
            );
            for mask in 0u8..32 {
                let want = (0..5)
                    .filter(|k| mask & (1 << k) != 0)
                    .map(|k| single[k])
                    .fold(f64::INFINITY, f64::min);
                let got = segment_triangle_distance_sq_among(&a, &b, &t, mask);
                assert_eq!(got.to_bits(), want.to_bits(), "mask {mask:05b}");
            }
        }
        // Known answer: segment 2 mm above the triangle's plane, over it.
        let t = tri();
        let (a, b) = (Point3::new(0.5, 0.5, 2.0), Point3::new(1.0, 1.0, 2.0));
        assert_relative_eq!(
            segment_triangle_distance_sq_among(&a, &b, &t, ALL_CANDIDATES),
            4.0,
            epsilon = 1e-12
        );
        // Without the end points only the edges remain: (0.5, 0.5, 2) to
        // the legs of the triangle is sqrt(0.25 + 4).
        assert_relative_eq!(
            segment_triangle_distance_sq_among(&a, &b, &t, 0b1_1100),
            4.25,
            epsilon = 1e-12
        );
    }

    #[test]
    fn watertight_no_leak_on_fan() {
        // A fan of triangles around a vertex; rays through the centre vertex
        // and along the spokes hit at least one triangle.
        let c = Point3::new(0.0, 0.0, 0.0);
        let n = 7;
        let ring: Vec<Point3<f64>> = (0..n)
            .map(|i| {
                let a = i as f64 * std::f64::consts::TAU / n as f64;
                Point3::new(a.cos() * 3.0, a.sin() * 3.0, 0.3 * (i as f64).sin())
            })
            .collect();
        let tris: Vec<[Point3<f64>; 3]> = (0..n).map(|i| [c, ring[i], ring[(i + 1) % n]]).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..200 {
            let dir = Vector3::new(
                rng.random_range(-0.3..0.3),
                rng.random_range(-0.3..0.3),
                1.0,
            );
            let a = c - dir;
            let b = c + dir;
            assert!(tris
                .iter()
                .any(|t| segment_intersects_triangle(&a, &b, t).is_some()));
        }
    }
}
