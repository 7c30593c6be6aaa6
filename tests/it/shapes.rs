//! Test meshes shared by the integration tests: cubes, icospheres and UV
//! spheres (closed, outward winding, mm).

use nalgebra::{Isometry3, Point3, Vector3};

use avnplan::geometry::TriMesh;

/// A cube of side `s` mm with a corner at the origin, outward winding.
pub fn cube(s: f64) -> TriMesh {
    TriMesh::cuboid(Point3::origin(), Point3::new(s, s, s)).unwrap()
}

/// A cube of half-side `half` mm centred at the origin, moved by `pose`
/// (same vertex and triangle order as [`cube`]).
pub fn cube_posed(half: f64, pose: &Isometry3<f64>) -> TriMesh {
    let mut m = cube(2.0 * half);
    for v in &mut m.vertices {
        *v = pose * (*v - Vector3::repeat(half));
    }
    m
}

/// Icosphere of radius `r` centred at `c` (subdivided `k` times).
pub fn icosphere(c: Point3<f64>, r: f64, k: usize) -> TriMesh {
    let p = (1.0 + 5f64.sqrt()) / 2.0;
    let mut v: Vec<Vector3<f64>> = [
        [-1.0, p, 0.0],
        [1.0, p, 0.0],
        [-1.0, -p, 0.0],
        [1.0, -p, 0.0],
        [0.0, -1.0, p],
        [0.0, 1.0, p],
        [0.0, -1.0, -p],
        [0.0, 1.0, -p],
        [p, 0.0, -1.0],
        [p, 0.0, 1.0],
        [-p, 0.0, -1.0],
        [-p, 0.0, 1.0],
    ]
    .iter()
    .map(|a| Vector3::from(*a).normalize())
    .collect();
    let mut t: Vec<[u32; 3]> = vec![
        [0, 11, 5],
        [0, 5, 1],
        [0, 1, 7],
        [0, 7, 10],
        [0, 10, 11],
        [1, 5, 9],
        [5, 11, 4],
        [11, 10, 2],
        [10, 7, 6],
        [7, 1, 8],
        [3, 9, 4],
        [3, 4, 2],
        [3, 2, 6],
        [3, 6, 8],
        [3, 8, 9],
        [4, 9, 5],
        [2, 4, 11],
        [6, 2, 10],
        [8, 6, 7],
        [9, 8, 1],
    ];
    for _ in 0..k {
        let mut mid = std::collections::HashMap::new();
        let mut nt = Vec::new();
        let mut m = |a: u32, b: u32, v: &mut Vec<Vector3<f64>>| -> u32 {
            *mid.entry((a.min(b), a.max(b))).or_insert_with(|| {
                v.push(((v[a as usize] + v[b as usize]) * 0.5).normalize());
                (v.len() - 1) as u32
            })
        };
        for [a, b, c] in t {
            let ab = m(a, b, &mut v);
            let bc = m(b, c, &mut v);
            let ca = m(c, a, &mut v);
            nt.extend([[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]);
        }
        t = nt;
    }
    TriMesh::new(v.iter().map(|x| c + x * r).collect(), t).unwrap()
}

/// A UV sphere with `n_lon` x `n_lat` quads, outward triangles.
pub fn uv_sphere(c: Point3<f64>, r: f64, n_lon: u32, n_lat: u32) -> TriMesh {
    let mut v = vec![c + Vector3::new(0.0, 0.0, r)];
    for i in 1..n_lat {
        let th = std::f64::consts::PI * f64::from(i) / f64::from(n_lat);
        for j in 0..n_lon {
            let ph = std::f64::consts::TAU * f64::from(j) / f64::from(n_lon);
            v.push(c + r * Vector3::new(th.sin() * ph.cos(), th.sin() * ph.sin(), th.cos()));
        }
    }
    v.push(c - Vector3::new(0.0, 0.0, r));
    let south = v.len() as u32 - 1;
    let ring = |i: u32, j: u32| 1 + (i - 1) * n_lon + j % n_lon;
    let mut t = Vec::new();
    for j in 0..n_lon {
        t.push([0, ring(1, j), ring(1, j + 1)]);
        t.push([south, ring(n_lat - 1, j + 1), ring(n_lat - 1, j)]);
    }
    for i in 1..n_lat - 1 {
        for j in 0..n_lon {
            t.push([ring(i, j), ring(i + 1, j), ring(i + 1, j + 1)]);
            t.push([ring(i, j), ring(i + 1, j + 1), ring(i, j + 1)]);
        }
    }
    TriMesh::new(v, t).unwrap()
}
