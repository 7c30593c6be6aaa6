//! An independent, slow checker of the contract's safety definition.
//!
//! Written apart from the planner's fast path: it uses parry3d-f64's own
//! point queries (pseudo-normal inside test, closest point) on dense samples
//! of the axis, and a brute-force Möller-Trumbore crossing count over every
//! triangle. Sampling only ever *over*-estimates the smallest distance, so a
//! violation it reports is real; the exact crossing count catches thin walls
//! that sampling could step over.

use nalgebra::{Point3, Vector3};
use parry3d_f64::math::Isometry;
use parry3d_f64::query::PointQuery;
use parry3d_f64::shape::{TriMesh as PTriMesh, TriMeshFlags};

use avnplan::geometry::{Sphere, TriMesh};
use avnplan::Constraints;

/// Step between axis samples, mm.
pub const STEP_MM: f64 = 0.05;

/// The checker's own view of the true surface.
pub struct Checker {
    mesh: PTriMesh,
    tris: Vec<[Point3<f64>; 3]>,
}

/// What the checker found for one trajectory.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Violated rules (numbers of the contract's safety definition).
    pub violations: Vec<(u8, String)>,
    /// Smallest sampled axis-to-surface distance minus the radius, past the allowance.
    pub sampled_clearance_mm: f64,
}

impl Verdict {
    pub fn is_safe(&self) -> bool {
        self.violations.is_empty()
    }
}

impl Checker {
    pub fn new(mesh: &TriMesh) -> Self {
        let verts: Vec<_> = mesh
            .vertices
            .iter()
            .map(|p| Point3::new(p.x, p.y, p.z))
            .collect();
        let tris: Vec<[u32; 3]> = mesh.triangles.clone();
        let flags = TriMeshFlags::ORIENTED | TriMeshFlags::MERGE_DUPLICATE_VERTICES;
        let pm = PTriMesh::with_flags(verts, tris, flags).expect("parry trimesh");
        let tris = (0..mesh.triangles.len())
            .map(|i| mesh.triangle(i))
            .collect();
        Self { mesh: pm, tris }
    }

    fn inside(&self, p: &Point3<f64>) -> bool {
        self.mesh.contains_point(&Isometry::identity(), p)
    }

    fn distance(&self, p: &Point3<f64>) -> f64 {
        self.mesh.distance_to_point(&Isometry::identity(), p, false)
    }

    /// Parameters in (0, 1] where the segment crosses a triangle (brute force).
    fn crossings(&self, a: &Point3<f64>, b: &Point3<f64>) -> Vec<f64> {
        let d = b - a;
        let mut out = Vec::new();
        for t in &self.tris {
            let e1 = t[1] - t[0];
            let e2 = t[2] - t[0];
            let p = d.cross(&e2);
            let det = e1.dot(&p);
            if det.abs() < 1e-14 {
                continue;
            }
            let inv = 1.0 / det;
            let s = a - t[0];
            let u = s.dot(&p) * inv;
            if !(-1e-12..=1.0 + 1e-12).contains(&u) {
                continue;
            }
            let q = s.cross(&e1);
            let v = d.dot(&q) * inv;
            if v < -1e-12 || u + v > 1.0 + 1e-12 {
                continue;
            }
            let tt = e2.dot(&q) * inv;
            if tt > 0.0 && tt <= 1.0 {
                out.push(tt);
            }
        }
        out
    }

    /// Checks rules 1-6 for one trajectory. `in_lesion` decides rule 6.
    pub fn check(
        &self,
        entry: &Point3<f64>,
        tip: &Point3<f64>,
        c: &Constraints,
        forbidden: &[Sphere],
        in_lesion: &dyn Fn(&Point3<f64>) -> bool,
    ) -> Verdict {
        let mut v = Vec::new();
        let r = c.needle_diameter_mm / 2.0;
        let req = r + c.cortical_clearance_mm;
        let axis = tip - entry;
        let len = axis.norm();
        let dir: Vector3<f64> = axis / len;
        // Rule 1: enters once, never leaves: no crossing after a small step,
        // and the samples are inside.
        let start = entry + dir * 1e-3;
        let x = self.crossings(&start, tip);
        if !x.is_empty() {
            v.push((
                1,
                format!(
                    "axis crosses the surface {} time(s) after the entry",
                    x.len()
                ),
            ));
        }
        let n = (len / STEP_MM).ceil() as usize;
        let mut min_d = f64::INFINITY;
        for k in 1..=n {
            let s = (k as f64 * STEP_MM).min(len);
            let p = entry + dir * s;
            if s >= 0.01 && !self.inside(&p) {
                v.push((1, format!("axis point {s:.2} mm from the entry is outside")));
                break;
            }
            if s > c.entry_allowance_mm {
                min_d = min_d.min(self.distance(&p));
            }
        }
        if len > c.entry_allowance_mm {
            // The exact split point too.
            min_d = min_d.min(self.distance(&(entry + dir * c.entry_allowance_mm)));
        }
        // Rule 2 (sampled distances over-estimate the minimum: a shortfall is real).
        if min_d < req - 1e-6 {
            v.push((2, format!("clearance {min_d:.3} < {req:.3} mm")));
        }
        // Rule 3.
        let td = self.distance(tip);
        if td < c.subchondral_margin_mm - 1e-6 {
            v.push((3, format!("tip {td:.3} mm from the surface")));
        }
        // Rule 4.
        if len > c.max_length_mm + 1e-9 {
            v.push((4, format!("length {len:.1} mm")));
        }
        // Tangent plane at the entry: every triangle within 1e-6 mm of it
        // (more than one at an edge); the smallest incidence counts.
        let mut nearest = f64::INFINITY;
        let mut inc = f64::INFINITY;
        for t in &self.tris {
            let d = (closest_on_triangle(entry, t) - entry).norm();
            nearest = nearest.min(d);
            if d <= 1e-6 {
                let n = (t[1] - t[0]).cross(&(t[2] - t[0])).normalize();
                inc = inc.min((-dir.dot(&n)).clamp(-1.0, 1.0).asin().to_degrees());
            }
        }
        if nearest > 1e-6 {
            v.push((1, format!("entry is {nearest:.2e} mm off the surface")));
        } else if inc < c.min_incidence_deg - 1e-6 {
            v.push((4, format!("incidence {inc:.2} deg")));
        }
        // Rule 5.
        for f in forbidden {
            for k in 0..=n {
                let p = entry + dir * (k as f64 * STEP_MM).min(len);
                if (p - f.center).norm() < f.radius_mm + req - 1e-6 {
                    v.push((5, "axis too close to a forbidden sphere".into()));
                    break;
                }
            }
        }
        // Rule 6.
        if !in_lesion(tip) {
            v.push((6, "tip outside the lesion".into()));
        }
        Verdict {
            violations: v,
            sampled_clearance_mm: min_d - r,
        }
    }
}

/// Closest point on a triangle (Ericson, Real-Time Collision Detection 5.1.5),
/// written here again on purpose: the checker shares no code with the crate.
pub fn closest_on_triangle(p: &Point3<f64>, t: &[Point3<f64>; 3]) -> Point3<f64> {
    let (a, b, c) = (t[0], t[1], t[2]);
    let ab = b - a;
    let ac = c - a;
    let ap = p - a;
    let d1 = ab.dot(&ap);
    let d2 = ac.dot(&ap);
    if d1 <= 0.0 && d2 <= 0.0 {
        return a;
    }
    let bp = p - b;
    let d3 = ab.dot(&bp);
    let d4 = ac.dot(&bp);
    if d3 >= 0.0 && d4 <= d3 {
        return b;
    }
    let vc = d1 * d4 - d3 * d2;
    if vc <= 0.0 && d1 >= 0.0 && d3 <= 0.0 {
        return a + ab * (d1 / (d1 - d3));
    }
    let cp = p - c;
    let d5 = ab.dot(&cp);
    let d6 = ac.dot(&cp);
    if d6 >= 0.0 && d5 <= d6 {
        return c;
    }
    let vb = d5 * d2 - d1 * d6;
    if vb <= 0.0 && d2 >= 0.0 && d6 <= 0.0 {
        return a + ac * (d2 / (d2 - d6));
    }
    let va = d3 * d6 - d5 * d4;
    if va <= 0.0 && (d4 - d3) >= 0.0 && (d5 - d6) >= 0.0 {
        return b + (c - b) * ((d4 - d3) / ((d4 - d3) + (d5 - d6)));
    }
    let denom = 1.0 / (va + vb + vc);
    a + ab * (vb * denom) + ac * (vc * denom)
}
