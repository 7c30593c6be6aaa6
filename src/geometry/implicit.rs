//! Watertight meshes of implicit surfaces (marching tetrahedra).
//!
//! [`mesh_implicit`] turns a scalar function `f` (negative inside, positive
//! outside, zero on the surface) into a closed, consistently outward-oriented
//! [`TriMesh`] of its zero level set.
//!
//! # Method
//!
//! The box `[lo, hi]` is sampled on a regular grid (spacing at most
//! `step_mm` on each axis; `f` is evaluated in parallel). Every grid cube is
//! split into the six tetrahedra of the Kuhn (Freudenthal) triangulation,
//! `0 -> e_i -> e_i + e_j -> (1,1,1)` for the six axis orders. The split is
//! the same in every cube, so neighbouring cubes cut their shared face along
//! the same diagonal and the surface pieces meet edge to edge: the result is
//! a closed 2-manifold whenever `f > 0` on the whole box boundary.
//!
//! Surface vertices sit on grid edges whose ends have opposite signs; each
//! such edge gets exactly one vertex (deduplicated by edge id), placed by
//! linear interpolation and then refined by a few Illinois (regula falsi)
//! steps on `f` itself. The edge parameter is clamped to
//! `[1e-6, 1 - 1e-6]`, so no vertex coincides with a grid point and no
//! triangle is degenerate (three points on three distinct edges of a
//! tetrahedron, strictly inside those edges, are never collinear). Grid
//! values that are exactly zero are treated as a tiny positive value
//! (outside), which keeps the sign classification strict.
//!
//! Accuracy: for a smooth `f` whose zero set has curvature radius `R`, the
//! vertices lie on the true surface up to the refinement tolerance (see the
//! sphere test: below `1e-4 * step` for a sphere of radius `20 * step`); the
//! faceting error between vertices is about `step^2 / (8 R)`.

use nalgebra::{Point3, Vector3};
use rayon::prelude::*;
use std::collections::HashMap;

use crate::error::{ensure_finite, ensure_positive, Error, Result};
use crate::geometry::TriMesh;

/// Largest number of grid points [`mesh_implicit`] accepts (5e7, i.e. about
/// 400 MB of samples; a 368^3 grid).
pub const MAX_IMPLICIT_GRID_POINTS: usize = 50_000_000;

/// Clamp of the edge parameter away from the grid points.
const EDGE_T_MIN: f64 = 1e-6;

/// Number of Illinois refinement steps per surface vertex.
const REFINE_STEPS: usize = 8;

/// The six Kuhn tetrahedra of the unit cube, corners as bit masks
/// (bit 0 = x, bit 1 = y, bit 2 = z), each positively oriented.
const KUHN_TETS: [[u8; 4]; 6] = kuhn_tets();

const fn kuhn_tets() -> [[u8; 4]; 6] {
    // Axis orders (i, j, k); odd permutations get two corners swapped so
    // that every tetrahedron has a positive determinant.
    let perms: [[u8; 3]; 6] = [
        [0, 1, 2],
        [1, 2, 0],
        [2, 0, 1],
        [0, 2, 1],
        [2, 1, 0],
        [1, 0, 2],
    ];
    let mut out = [[0u8; 4]; 6];
    let mut n = 0;
    while n < 6 {
        let [i, j, _] = perms[n];
        let a = 0u8;
        let b = 1u8 << i;
        let c = b | (1u8 << j);
        let d = 7u8;
        // The first three perms are even (positive), the last three odd.
        out[n] = if n < 3 { [a, b, c, d] } else { [a, c, b, d] };
        n += 1;
    }
    out
}

/// Parity of a permutation of `0..4`: `true` if even.
fn is_even(p: [usize; 4]) -> bool {
    let mut inv = 0;
    for i in 0..4 {
        for j in i + 1..4 {
            if p[i] > p[j] {
                inv += 1;
            }
        }
    }
    inv % 2 == 0
}

/// Meshes the zero level set of `f` inside the box `[lo, hi]`, mm.
///
/// `f` must be negative inside the solid and positive outside (a signed
/// distance is ideal but not required; it must be continuous). The result is
/// a closed 2-manifold with outward (counter-clockwise seen from outside)
/// triangles: every edge is shared by exactly two triangles in opposite
/// directions, and the signed volume is positive. The grid spacing on each
/// axis is the largest value `<= step_mm` that divides the box extent.
/// See the module docs for the method and its accuracy.
///
/// # Errors
/// * [`Error::Invalid`] for non-finite corners, `hi <= lo` on some axis,
///   a non-positive `step_mm`, or `f` returning NaN (naming the point);
/// * [`Error::LimitExceeded`] if the grid has more than
///   [`MAX_IMPLICIT_GRID_POINTS`] points;
/// * [`Error::Mesh`] if `f <= 0` somewhere on the box boundary (the surface
///   would be cut open: enlarge the box) or `f < 0` nowhere on the grid.
///
/// # Example
/// ```
/// use avnplan::geometry::mesh_implicit;
/// use nalgebra::Point3;
/// let r = 10.0;
/// let m = mesh_implicit(
///     |p: &Point3<f64>| p.coords.norm() - r,
///     Point3::new(-12.0, -12.0, -12.0),
///     Point3::new(12.0, 12.0, 12.0),
///     0.5,
/// )
/// .unwrap();
/// let v = 4.0 / 3.0 * std::f64::consts::PI * r * r * r;
/// approx::assert_relative_eq!(m.signed_volume_mm3(), v, max_relative = 0.01);
/// ```
pub fn mesh_implicit<F: Fn(&Point3<f64>) -> f64 + Sync>(
    f: F,
    lo: Point3<f64>,
    hi: Point3<f64>,
    step_mm: f64,
) -> Result<TriMesh> {
    ensure_finite("lo", lo.coords.as_slice())?;
    ensure_finite("hi", hi.coords.as_slice())?;
    ensure_positive("step_mm", step_mm)?;
    let extent = hi - lo;
    if extent.iter().any(|&e| e <= 0.0) {
        return Err(Error::invalid("hi", "must be > lo on every axis"));
    }
    // Cells per axis and the actual spacing (<= step_mm).
    let mut cells = [0usize; 3];
    let mut h = Vector3::zeros();
    let mut total: f64 = 1.0;
    for a in 0..3 {
        let c = (extent[a] / step_mm).ceil().max(1.0);
        total *= c + 1.0;
        if !total.is_finite() || total > MAX_IMPLICIT_GRID_POINTS as f64 {
            return Err(Error::LimitExceeded {
                what: "implicit mesher grid points".into(),
                limit: MAX_IMPLICIT_GRID_POINTS,
                actual: if total.is_finite() && total < usize::MAX as f64 {
                    total as usize
                } else {
                    usize::MAX
                },
            });
        }
        cells[a] = c as usize;
        h[a] = extent[a] / c;
    }
    let n = [cells[0] + 1, cells[1] + 1, cells[2] + 1];
    let npts = n[0] * n[1] * n[2];
    let idx = |i: usize, j: usize, k: usize| i + n[0] * (j + n[1] * k);
    let pos = |i: usize, j: usize, k: usize| {
        Point3::new(
            if i == cells[0] {
                hi.x
            } else {
                lo.x + h.x * i as f64
            },
            if j == cells[1] {
                hi.y
            } else {
                lo.y + h.y * j as f64
            },
            if k == cells[2] {
                hi.z
            } else {
                lo.z + h.z * k as f64
            },
        )
    };
    let unflat = |p: usize| (p % n[0], (p / n[0]) % n[1], p / (n[0] * n[1]));

    // Sample f on the grid (parallel); zero -> tiny positive.
    let values: Vec<f64> = (0..npts)
        .into_par_iter()
        .map(|p| {
            let (i, j, k) = unflat(p);
            let v = f(&pos(i, j, k));
            if v == 0.0 {
                f64::MIN_POSITIVE
            } else {
                v
            }
        })
        .collect();
    if let Some(p) = values.iter().position(|v| v.is_nan()) {
        let (i, j, k) = unflat(p);
        let x = pos(i, j, k);
        return Err(Error::invalid(
            "f",
            format!("returned NaN at ({:.3}, {:.3}, {:.3}) mm", x.x, x.y, x.z),
        ));
    }
    // The surface must not reach the box boundary.
    for (p, &v) in values.iter().enumerate() {
        if v < 0.0 {
            let (i, j, k) = unflat(p);
            if i == 0 || j == 0 || k == 0 || i == cells[0] || j == cells[1] || k == cells[2] {
                let x = pos(i, j, k);
                return Err(Error::mesh(
                    "implicit surface",
                    format!(
                        "inside (f < 0) on the box boundary at ({:.3}, {:.3}, {:.3}) mm; enlarge the box",
                        x.x, x.y, x.z
                    ),
                ));
            }
        }
    }
    if !values.iter().any(|&v| v < 0.0) {
        return Err(Error::mesh(
            "implicit surface",
            "f < 0 nowhere on the grid (empty solid or thinner than the step)",
        ));
    }

    // Extract triangles; vertices are grid edges (lower point, offset mask).
    let mut edge_ids: HashMap<u64, u32> = HashMap::new();
    let mut edges: Vec<(usize, usize)> = Vec::new();
    let mut triangles: Vec<[u32; 3]> = Vec::new();
    let mut vertex_of = |a: usize, b: usize, mask: u8, edges: &mut Vec<(usize, usize)>| -> u32 {
        let key = (a as u64) * 8 + u64::from(mask);
        *edge_ids.entry(key).or_insert_with(|| {
            edges.push((a, b));
            (edges.len() - 1) as u32
        })
    };
    for k in 0..cells[2] {
        for j in 0..cells[1] {
            for i in 0..cells[0] {
                let mut corner = [0usize; 8];
                let mut neg = 0;
                for (c, slot) in corner.iter_mut().enumerate() {
                    *slot = idx(i + (c & 1), j + ((c >> 1) & 1), k + ((c >> 2) & 1));
                    if values[*slot] < 0.0 {
                        neg += 1;
                    }
                }
                if neg == 0 || neg == 8 {
                    continue;
                }
                for tet in &KUHN_TETS {
                    let inside: [bool; 4] =
                        std::array::from_fn(|q| values[corner[tet[q] as usize]] < 0.0);
                    let nin = inside.iter().filter(|&&b| b).count();
                    if nin == 0 || nin == 4 {
                        continue;
                    }
                    // Vertex on the tet edge (q, r): the Kuhn corners are
                    // nested bit masks, so the lower end is the subset.
                    let mut ev = |q: usize, r: usize, edges: &mut Vec<(usize, usize)>| {
                        let (mq, mr) = (tet[q], tet[r]);
                        let (ml, mh) = if mq & mr == mq { (mq, mr) } else { (mr, mq) };
                        vertex_of(corner[ml as usize], corner[mh as usize], mh & !ml, edges)
                    };
                    let ins: Vec<usize> = (0..4).filter(|&q| inside[q]).collect();
                    let outs: Vec<usize> = (0..4).filter(|&q| !inside[q]).collect();
                    match nin {
                        1 | 3 => {
                            // The lone vertex a and the other three.
                            let (a, rest) = if nin == 1 {
                                (ins[0], outs)
                            } else {
                                (outs[0], ins)
                            };
                            let (b, c, d) = (rest[0], rest[1], rest[2]);
                            let mut t = [
                                ev(a, b, &mut edges),
                                ev(a, c, &mut edges),
                                ev(a, d, &mut edges),
                            ];
                            // (ab, ac, ad) points away from a iff (a,b,c,d) is even.
                            let away = is_even([a, b, c, d]);
                            if away != (nin == 1) {
                                t.swap(1, 2);
                            }
                            triangles.push(t);
                        }
                        _ => {
                            let (a, b, c, d) = (ins[0], ins[1], outs[0], outs[1]);
                            let q = [
                                ev(a, c, &mut edges),
                                ev(a, d, &mut edges),
                                ev(b, d, &mut edges),
                                ev(b, c, &mut edges),
                            ];
                            // (ac, ad, bd, bc) is outward iff (a,b,c,d) is even.
                            let q = if is_even([a, b, c, d]) {
                                q
                            } else {
                                [q[0], q[3], q[2], q[1]]
                            };
                            triangles.push([q[0], q[1], q[2]]);
                            triangles.push([q[0], q[2], q[3]]);
                        }
                    }
                }
            }
        }
    }

    // Place the vertices (parallel): interpolation + Illinois refinement.
    let vertices: Vec<Point3<f64>> = edges
        .par_iter()
        .map(|&(a, b)| {
            let (ia, ja, ka) = unflat(a);
            let (ib, jb, kb) = unflat(b);
            let pa = pos(ia, ja, ka);
            let pb = pos(ib, jb, kb);
            edge_root(&f, &pa, &pb, values[a], values[b])
        })
        .collect();
    TriMesh::new(vertices, triangles)
}

/// Root of `f` on the segment `[pa, pb]` with `fa`, `fb` of opposite signs.
fn edge_root<F: Fn(&Point3<f64>) -> f64>(
    f: &F,
    pa: &Point3<f64>,
    pb: &Point3<f64>,
    fa: f64,
    fb: f64,
) -> Point3<f64> {
    let d = pb - pa;
    let (mut t0, mut t1, mut f0, mut f1) = (0.0f64, 1.0f64, fa, fb);
    let mut side = 0i8;
    let mut t = 0.5;
    for _ in 0..REFINE_STEPS {
        t = f0 / (f0 - f1) * (t1 - t0) + t0;
        if !t.is_finite() {
            t = 0.5 * (t0 + t1);
        }
        let ft = f(&(pa + d * t));
        if ft.is_nan() || ft == 0.0 {
            break;
        }
        if (ft < 0.0) == (f0 < 0.0) {
            t0 = t;
            f0 = ft;
            if side == -1 {
                f1 *= 0.5;
            }
            side = -1;
        } else {
            t1 = t;
            f1 = ft;
            if side == 1 {
                f0 *= 0.5;
            }
            side = 1;
        }
        if t1 - t0 < 1e-12 {
            break;
        }
    }
    let t = if t.is_finite() { t } else { 0.5 };
    pa + d * t.clamp(EDGE_T_MIN, 1.0 - EDGE_T_MIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    /// Every directed edge appears once and its reverse once; returns the
    /// Euler characteristic V - E + F.
    pub(crate) fn check_closed_manifold(m: &TriMesh) -> i64 {
        let mut directed: HashMap<(u32, u32), usize> = HashMap::new();
        for t in &m.triangles {
            for e in 0..3 {
                let (a, b) = (t[e], t[(e + 1) % 3]);
                assert_ne!(a, b, "degenerate triangle {t:?}");
                *directed.entry((a, b)).or_insert(0) += 1;
            }
        }
        for (&(a, b), &c) in &directed {
            assert_eq!(c, 1, "directed edge ({a},{b}) used {c} times");
            assert_eq!(
                directed.get(&(b, a)),
                Some(&1),
                "edge ({a},{b}) has no opposite half-edge"
            );
        }
        let e = directed.len() / 2;
        m.vertices.len() as i64 - e as i64 + m.triangles.len() as i64
    }

    fn min_area(m: &TriMesh) -> f64 {
        (0..m.triangles.len())
            .map(|i| {
                let [a, b, c] = m.triangle(i);
                (b - a).cross(&(c - a)).norm() * 0.5
            })
            .fold(f64::INFINITY, f64::min)
    }

    #[test]
    fn kuhn_tets_positive_and_fill_cube() {
        let corner = |m: u8| {
            Vector3::new(
                f64::from(m & 1),
                f64::from((m >> 1) & 1),
                f64::from((m >> 2) & 1),
            )
        };
        let mut vol = 0.0;
        for t in &KUHN_TETS {
            let [a, b, c, d] = t.map(corner);
            let det = (b - a).dot(&(c - a).cross(&(d - a)));
            assert!(det > 0.0, "{t:?}");
            vol += det / 6.0;
        }
        assert_relative_eq!(vol, 1.0, epsilon = 1e-12);
    }

    #[test]
    fn sphere_closed_outward_accurate() {
        let r = 10.0;
        let step = r / 20.0;
        let c = Point3::new(1.3, -2.1, 0.7);
        let m = mesh_implicit(
            |p: &Point3<f64>| (p - c).norm() - r,
            c + Vector3::repeat(-r - 1.7),
            c + Vector3::repeat(r + 1.9),
            step,
        )
        .unwrap();
        assert_eq!(check_closed_manifold(&m), 2);
        let v = m.signed_volume_mm3();
        let exact = 4.0 / 3.0 * std::f64::consts::PI * r.powi(3);
        assert!(v > 0.0);
        assert_relative_eq!(v, exact, max_relative = 0.01);
        // Vertices on the sphere (refined roots): far below step / 10.
        let worst = m
            .vertices
            .iter()
            .map(|p| ((p - c).norm() - r).abs())
            .fold(0.0, f64::max);
        assert!(worst < step * 1e-4, "worst vertex error {worst}");
        assert!(min_area(&m) > 0.0);
    }

    #[test]
    fn torus_has_euler_zero() {
        let (big, small) = (8.0, 3.0);
        let torus = |p: &Point3<f64>| {
            let q = (p.x * p.x + p.y * p.y).sqrt() - big;
            (q * q + p.z * p.z).sqrt() - small
        };
        let m = mesh_implicit(
            torus,
            Point3::new(-12.0, -12.0, -4.0),
            Point3::new(12.0, 12.0, 4.0),
            0.4,
        )
        .unwrap();
        assert_eq!(check_closed_manifold(&m), 0);
        let exact = 2.0 * std::f64::consts::PI.powi(2) * big * small * small;
        assert_relative_eq!(m.signed_volume_mm3(), exact, max_relative = 0.01);
    }

    #[test]
    fn grid_corner_zeros_stay_manifold() {
        // A cube-ish level set passing exactly through grid points: f = 0
        // at many samples (nudged outside), and a non-SDF function.
        let f = |p: &Point3<f64>| p.x.abs().max(p.y.abs()).max(p.z.abs()) - 2.0;
        let m = mesh_implicit(
            f,
            Point3::new(-3.0, -3.0, -3.0),
            Point3::new(3.0, 3.0, 3.0),
            0.5,
        )
        .unwrap();
        assert_eq!(check_closed_manifold(&m), 2);
        assert!(m.signed_volume_mm3() > 0.0);
        assert!(min_area(&m) > 0.0);
    }

    #[test]
    fn two_components_and_errors() {
        let two = |p: &Point3<f64>| {
            let a = (p - Point3::new(-3.0, 0.0, 0.0)).norm() - 2.0;
            let b = (p - Point3::new(3.0, 0.0, 0.0)).norm() - 2.0;
            a.min(b)
        };
        let lo = Point3::new(-6.0, -3.0, -3.0);
        let hi = Point3::new(6.0, 3.0, 3.0);
        let m = mesh_implicit(two, lo, hi, 0.3).unwrap();
        assert_eq!(check_closed_manifold(&m), 4);

        // Touches the boundary.
        let big = |p: &Point3<f64>| p.coords.norm() - 5.0;
        assert!(matches!(
            mesh_implicit(big, lo, hi, 0.5),
            Err(Error::Mesh { .. })
        ));
        // Empty.
        let none = |_: &Point3<f64>| 1.0;
        assert!(matches!(
            mesh_implicit(none, lo, hi, 0.5),
            Err(Error::Mesh { .. })
        ));
        // Bad input.
        assert!(mesh_implicit(two, hi, lo, 0.5).is_err());
        assert!(mesh_implicit(two, lo, hi, 0.0).is_err());
        assert!(mesh_implicit(two, lo, hi, f64::NAN).is_err());
        assert!(matches!(
            mesh_implicit(two, lo, hi, 1e-4),
            Err(Error::LimitExceeded { .. })
        ));
        let nan = |p: &Point3<f64>| if p.x > 1.0 { f64::NAN } else { 1.0 };
        assert!(matches!(
            mesh_implicit(nan, lo, hi, 0.5),
            Err(Error::Invalid { .. })
        ));
    }
}
