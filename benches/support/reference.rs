//! Reference workloads for the benches (issue 12): slow, exact, written here
//! without any avnplan code, so that a change to the crate's hot path (its
//! BVH, its segment-triangle distance, its projection) moves the hot time but
//! not the reference time. `cargo xtask bench` reports `hot / reference`
//! ratios, which stay comparable across runs on a shared, noisy machine when
//! absolute times do not.
//!
//! Included by the bench files with `#[path = "support/reference.rs"] mod
//! reference;`; each bench uses a part of it.

#![allow(dead_code, reason = "each bench file uses a part of this module")]

use nalgebra::{Point3, Vector3};

/// Every triangle of a mesh with its axis-aligned box, for brute-force
/// queries (no hierarchy).
pub struct Brute {
    tris: Vec<[Point3<f64>; 3]>,
    lo: Vec<[f64; 3]>,
    hi: Vec<[f64; 3]>,
}

impl Brute {
    /// Copies the triangles of a mesh given as vertices (mm) and index
    /// triples.
    pub fn new(vertices: &[Point3<f64>], triangles: &[[u32; 3]]) -> Self {
        let tris: Vec<[Point3<f64>; 3]> = triangles
            .iter()
            .map(|t| t.map(|i| vertices[i as usize]))
            .collect();
        let lo = tris
            .iter()
            .map(|t| [0, 1, 2].map(|a| t[0][a].min(t[1][a]).min(t[2][a])))
            .collect();
        let hi = tris
            .iter()
            .map(|t| [0, 1, 2].map(|a| t[0][a].max(t[1][a]).max(t[2][a])))
            .collect();
        Self { tris, lo, hi }
    }

    /// Exact distance from the segment `[a, b]` to the surface, mm: every
    /// triangle, no pruning (the fixed reference workload of the exact
    /// clearance).
    pub fn distance(&self, a: &Point3<f64>, b: &Point3<f64>) -> f64 {
        self.tris
            .iter()
            .map(|t| segment_triangle_distance(a, b, t))
            .fold(f64::INFINITY, f64::min)
    }

    /// Exact distance from `[a, b]` to the surface when it is at most
    /// `bound_mm`; a value above `bound_mm` (possibly infinity) otherwise.
    /// Only triangles whose box comes within `bound_mm` of the segment's box
    /// are measured, which is exact: a triangle closer than `bound_mm` has
    /// such a box.
    pub fn distance_within(&self, a: &Point3<f64>, b: &Point3<f64>, bound_mm: f64) -> f64 {
        let slo = [0, 1, 2].map(|k| a[k].min(b[k]) - bound_mm);
        let shi = [0, 1, 2].map(|k| a[k].max(b[k]) + bound_mm);
        let mut best = f64::INFINITY;
        for (i, t) in self.tris.iter().enumerate() {
            let (l, h) = (&self.lo[i], &self.hi[i]);
            if (0..3).any(|k| l[k] > shi[k] || h[k] < slo[k]) {
                continue;
            }
            best = best.min(segment_triangle_distance(a, b, t));
        }
        best
    }

    /// Exact clearance decision: is every triangle at least `thr_mm` from
    /// `[a, b]`? Box pre-filter and early exit, no hierarchy.
    pub fn clears(&self, a: &Point3<f64>, b: &Point3<f64>, thr_mm: f64) -> bool {
        let slo = [0, 1, 2].map(|k| a[k].min(b[k]) - thr_mm);
        let shi = [0, 1, 2].map(|k| a[k].max(b[k]) + thr_mm);
        for (i, t) in self.tris.iter().enumerate() {
            let (l, h) = (&self.lo[i], &self.hi[i]);
            if (0..3).any(|k| l[k] > shi[k] || h[k] < slo[k]) {
                continue;
            }
            if segment_triangle_distance(a, b, t) < thr_mm {
                return false;
            }
        }
        true
    }
}

/// Exact distance between the segment `[a, b]` and the triangle `t`, mm:
/// zero when they cross, else the smallest of the endpoint-triangle and
/// segment-edge distances (the closest pair of a segment and a triangle that
/// do not cross has a point on the segment's ends or the triangle's edges).
pub fn segment_triangle_distance(a: &Point3<f64>, b: &Point3<f64>, t: &[Point3<f64>; 3]) -> f64 {
    if segment_crosses_triangle(a, b, t) {
        return 0.0;
    }
    let mut d2 = point_triangle_distance_sq(a, t).min(point_triangle_distance_sq(b, t));
    for k in 0..3 {
        d2 = d2.min(segment_segment_distance_sq(a, b, &t[k], &t[(k + 1) % 3]));
    }
    d2.sqrt()
}

/// Möller-Trumbore: does `[a, b]` cross the triangle's interior? Coplanar
/// segments answer `false` (their distance is then measured by the edge and
/// endpoint terms, which reach zero when they touch).
fn segment_crosses_triangle(a: &Point3<f64>, b: &Point3<f64>, t: &[Point3<f64>; 3]) -> bool {
    let d = b - a;
    let e1 = t[1] - t[0];
    let e2 = t[2] - t[0];
    let p = d.cross(&e2);
    let det = e1.dot(&p);
    if det.abs() < 1e-300 {
        return false;
    }
    let inv = 1.0 / det;
    let s = a - t[0];
    let u = s.dot(&p) * inv;
    if !(0.0..=1.0).contains(&u) {
        return false;
    }
    let q = s.cross(&e1);
    let v = d.dot(&q) * inv;
    if v < 0.0 || u + v > 1.0 {
        return false;
    }
    let w = e2.dot(&q) * inv;
    (0.0..=1.0).contains(&w)
}

/// Squared distance from `p` to the triangle (Ericson, Real-Time Collision
/// Detection, 5.1.5: Voronoi regions of the vertices, edges and face).
fn point_triangle_distance_sq(p: &Point3<f64>, t: &[Point3<f64>; 3]) -> f64 {
    let (a, b, c) = (t[0], t[1], t[2]);
    let ab = b - a;
    let ac = c - a;
    let ap = p - a;
    let d1 = ab.dot(&ap);
    let d2 = ac.dot(&ap);
    if d1 <= 0.0 && d2 <= 0.0 {
        return ap.norm_squared();
    }
    let bp = p - b;
    let d3 = ab.dot(&bp);
    let d4 = ac.dot(&bp);
    if d3 >= 0.0 && d4 <= d3 {
        return bp.norm_squared();
    }
    let vc = d1 * d4 - d3 * d2;
    if vc <= 0.0 && d1 >= 0.0 && d3 <= 0.0 {
        let v = d1 / (d1 - d3);
        return (p - (a + ab * v)).norm_squared();
    }
    let cp = p - c;
    let d5 = ab.dot(&cp);
    let d6 = ac.dot(&cp);
    if d6 >= 0.0 && d5 <= d6 {
        return cp.norm_squared();
    }
    let vb = d5 * d2 - d1 * d6;
    if vb <= 0.0 && d2 >= 0.0 && d6 <= 0.0 {
        let w = d2 / (d2 - d6);
        return (p - (a + ac * w)).norm_squared();
    }
    let va = d3 * d6 - d5 * d4;
    if va <= 0.0 && (d4 - d3) >= 0.0 && (d5 - d6) >= 0.0 {
        let w = (d4 - d3) / ((d4 - d3) + (d5 - d6));
        return (p - (b + (c - b) * w)).norm_squared();
    }
    let denom = 1.0 / (va + vb + vc);
    let v = vb * denom;
    let w = vc * denom;
    (p - (a + ab * v + ac * w)).norm_squared()
}

/// Squared distance between the segments `[p1, q1]` and `[p2, q2]`
/// (Ericson, 5.1.9, with degenerate segments handled).
fn segment_segment_distance_sq(
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
    let eps = 1e-300;
    let (s, t);
    if a <= eps && e <= eps {
        return r.norm_squared();
    }
    if a <= eps {
        s = 0.0;
        t = (f / e).clamp(0.0, 1.0);
    } else {
        let c = d1.dot(&r);
        if e <= eps {
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

/// Plain pinhole projection with a 3x4 matrix given row by row: `None`
/// behind `min_depth` or when not finite (the reference of
/// `Projection::try_project`, written out by hand).
pub fn project_rows(p: &[[f64; 4]; 3], x: &Point3<f64>, min_depth: f64) -> Option<[f64; 2]> {
    let h = |r: &[f64; 4]| r[0] * x.x + r[1] * x.y + r[2] * x.z + r[3];
    let w = h(&p[2]);
    if w.is_nan() || w <= min_depth {
        return None;
    }
    let uv = [h(&p[0]) / w, h(&p[1]) / w];
    (uv[0].is_finite() && uv[1].is_finite()).then_some(uv)
}

/// A fixed dense workload for the reconstruction bench: Gauss-Newton fits
/// of a sphere (centre and radius) to `points`, `iters` iterations from the
/// centroid, normal equations solved by hand (4x4 Gaussian elimination with
/// partial pivoting). Returns the centre and radius, mm.
#[allow(
    clippy::needless_range_loop,
    reason = "4x4 normal equations read best with explicit indices"
)]
pub fn sphere_fit_gauss_newton(points: &[Point3<f64>], iters: usize) -> ([f64; 3], f64) {
    let n = points.len().max(1) as f64;
    let c0 = points.iter().fold(Vector3::zeros(), |s, p| s + p.coords) / n;
    let r0 = points.iter().map(|p| (p.coords - c0).norm()).sum::<f64>() / n;
    let mut x = [c0.x, c0.y, c0.z, r0];
    for _ in 0..iters {
        let mut jtj = [[0.0f64; 4]; 4];
        let mut jtr = [0.0f64; 4];
        for p in points {
            let d = Vector3::new(p.x - x[0], p.y - x[1], p.z - x[2]);
            let len = d.norm().max(1e-12);
            let res = len - x[3];
            let j = [-d.x / len, -d.y / len, -d.z / len, -1.0];
            for r in 0..4 {
                jtr[r] += j[r] * res;
                for c in 0..4 {
                    jtj[r][c] += j[r] * j[c];
                }
            }
        }
        let step = solve4(jtj, jtr.map(|v| -v));
        for k in 0..4 {
            x[k] += step[k];
        }
    }
    ([x[0], x[1], x[2]], x[3])
}

/// Solves a 4x4 system by Gaussian elimination with partial pivoting; a
/// singular pivot gives a zero step in that unknown.
#[allow(
    clippy::needless_range_loop,
    reason = "Gaussian elimination reads best with explicit indices"
)]
fn solve4(mut a: [[f64; 4]; 4], mut b: [f64; 4]) -> [f64; 4] {
    for col in 0..4 {
        let piv = (col..4)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        a.swap(col, piv);
        b.swap(col, piv);
        if a[col][col].abs() < 1e-300 {
            continue;
        }
        for r in col + 1..4 {
            let f = a[r][col] / a[col][col];
            for c in col..4 {
                a[r][c] -= f * a[col][c];
            }
            b[r] -= f * b[col];
        }
    }
    let mut x = [0.0; 4];
    for r in (0..4).rev() {
        let s: f64 = (r + 1..4).map(|c| a[r][c] * x[c]).sum();
        x[r] = if a[r][r].abs() < 1e-300 {
            0.0
        } else {
            (b[r] - s) / a[r][r]
        };
    }
    x
}
