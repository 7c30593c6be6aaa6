//! The projected silhouette of a posed mesh as a set of image segments (the
//! contour-generator edges), with a nearest-segment query.

use std::collections::HashMap;

use nalgebra::{Isometry3, Point2, Point3, Vector2, Vector3};

use crate::geometry::TriMesh;
use crate::imaging::Projection;

/// Side of a grid cell of the nearest-segment search, px.
const CELL_PX: f64 = 8.0;
/// Points farther than this from every projected contour edge have no
/// residual, px.
const MAX_SEARCH_PX: f64 = 400.0;

/// A mesh prepared for contour extraction (mesh frame).
pub(crate) struct ContourMesh {
    vertices: Vec<Point3<f64>>,
    /// First corner and (unnormalised) outward normal of each face.
    faces: Vec<(Point3<f64>, Vector3<f64>)>,
    /// Edges shared by exactly two faces: (vertex a, vertex b, face 1, face 2).
    edges: Vec<[u32; 4]>,
}

impl ContourMesh {
    /// Builds the edge-face adjacency; edges not shared by exactly two
    /// faces are left out.
    pub(crate) fn new(mesh: &TriMesh) -> Self {
        let faces: Vec<(Point3<f64>, Vector3<f64>)> = (0..mesh.triangles.len())
            .map(|i| {
                let [a, b, c] = mesh.triangle(i);
                (a, (b - a).cross(&(c - a)))
            })
            .collect();
        let mut map: HashMap<(u32, u32), Vec<u32>> =
            HashMap::with_capacity(mesh.triangles.len() * 2);
        for (f, t) in mesh.triangles.iter().enumerate() {
            for k in 0..3 {
                let (a, b) = (t[k], t[(k + 1) % 3]);
                let key = if a < b { (a, b) } else { (b, a) };
                map.entry(key).or_default().push(f as u32);
            }
        }
        let mut edges: Vec<[u32; 4]> = map
            .into_iter()
            .filter(|(_, fs)| fs.len() == 2)
            .map(|((a, b), fs)| [a, b, fs[0], fs[1]])
            .collect();
        // Deterministic order (the map's is not).
        edges.sort_unstable();
        Self {
            vertices: mesh.vertices.clone(),
            faces,
            edges,
        }
    }
}

/// One projected contour edge: image end points and world end points.
struct Segment {
    a: Point2<f64>,
    b: Point2<f64>,
    wa: Point3<f64>,
    wb: Point3<f64>,
}

/// The projected contour of a posed mesh in one view.
pub(crate) struct ViewContour {
    segments: Vec<Segment>,
    origin: Point2<f64>,
    dims: (i64, i64),
    cells: Vec<Vec<u32>>,
}

impl ViewContour {
    /// Projects the contour generator of `cm` under `pose` (mesh -> world)
    /// seen from `proj`'s source.
    pub(crate) fn new(cm: &ContourMesh, proj: &Projection, pose: &Isometry3<f64>) -> Self {
        let s = pose.inverse_transform_point(&proj.source_mm());
        let front: Vec<bool> = cm
            .faces
            .iter()
            .map(|(p, n)| n.dot(&(s - p)) > 0.0)
            .collect();
        let mut segments = Vec::new();
        for e in &cm.edges {
            if front[e[2] as usize] == front[e[3] as usize] {
                continue;
            }
            let wa = pose * cm.vertices[e[0] as usize];
            let wb = pose * cm.vertices[e[1] as usize];
            let (Some(a), Some(b)) = (proj.try_project(&wa), proj.try_project(&wb)) else {
                continue;
            };
            if a.coords
                .iter()
                .chain(b.coords.iter())
                .all(|c| c.is_finite())
            {
                segments.push(Segment { a, b, wa, wb });
            }
        }
        let (mut lo, mut hi) = (
            Point2::new(f64::INFINITY, f64::INFINITY),
            Point2::new(f64::NEG_INFINITY, f64::NEG_INFINITY),
        );
        for sg in &segments {
            lo = lo.inf(&sg.a).inf(&sg.b);
            hi = hi.sup(&sg.a).sup(&sg.b);
        }
        if segments.is_empty() {
            return Self {
                segments,
                origin: Point2::origin(),
                dims: (0, 0),
                cells: Vec::new(),
            };
        }
        let nx = (((hi.x - lo.x) / CELL_PX).floor() as i64 + 1).clamp(1, 4096);
        let ny = (((hi.y - lo.y) / CELL_PX).floor() as i64 + 1).clamp(1, 4096);
        let mut cells = vec![Vec::new(); (nx * ny) as usize];
        let cell_of = |p: f64, o: f64, n: i64| (((p - o) / CELL_PX).floor() as i64).clamp(0, n - 1);
        for (i, sg) in segments.iter().enumerate() {
            let (x0, x1) = (
                cell_of(sg.a.x.min(sg.b.x), lo.x, nx),
                cell_of(sg.a.x.max(sg.b.x), lo.x, nx),
            );
            let (y0, y1) = (
                cell_of(sg.a.y.min(sg.b.y), lo.y, ny),
                cell_of(sg.a.y.max(sg.b.y), lo.y, ny),
            );
            for y in y0..=y1 {
                for x in x0..=x1 {
                    cells[(y * nx + x) as usize].push(i as u32);
                }
            }
        }
        Self {
            segments,
            origin: lo,
            dims: (nx, ny),
            cells,
        }
    }

    /// Number of projected contour edges.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.segments.len()
    }

    /// The nearest projected contour edge to `q`: the distance (px), the
    /// world point on the edge at the nearest image point, and the unit
    /// image direction from `q` to it (the edge's normal when `q` is on
    /// it). `None` when no edge lies within 400 px.
    pub(crate) fn nearest(&self, q: &Point2<f64>) -> Option<(f64, Point3<f64>, Vector2<f64>)> {
        let (nx, ny) = self.dims;
        if nx == 0 {
            return None;
        }
        let cx = ((q.x - self.origin.x) / CELL_PX).floor() as i64;
        let cy = ((q.y - self.origin.y) / CELL_PX).floor() as i64;
        let mut best: Option<(f64, u32, f64)> = None; // (d2, segment, lambda)
        let max_ring = (MAX_SEARCH_PX / CELL_PX).ceil() as i64 + 1;
        for ring in 0..=max_ring {
            // Cells at Chebyshev distance `ring` lie at least (ring - 1)
            // cells away.
            if let Some((d2, _, _)) = best {
                let reach = (ring - 1).max(0) as f64 * CELL_PX;
                if d2 <= reach * reach {
                    break;
                }
            }
            let (x0, x1, y0, y1) = (cx - ring, cx + ring, cy - ring, cy + ring);
            if x1 < 0 || y1 < 0 || x0 >= nx || y0 >= ny {
                // The whole ring is outside the grid: farther rings too,
                // unless the point is outside the grid itself.
                let inside = cx >= 0 && cy >= 0 && cx < nx && cy < ny;
                if inside {
                    break;
                }
                continue;
            }
            for y in y0.max(0)..=y1.min(ny - 1) {
                for x in x0.max(0)..=x1.min(nx - 1) {
                    let on_ring = x == x0 || x == x1 || y == y0 || y == y1;
                    if !on_ring {
                        continue;
                    }
                    for &i in &self.cells[(y * nx + x) as usize] {
                        let sg = &self.segments[i as usize];
                        let d = sg.b - sg.a;
                        let l2 = d.norm_squared();
                        let lam = if l2 > 0.0 {
                            ((q - sg.a).dot(&d) / l2).clamp(0.0, 1.0)
                        } else {
                            0.0
                        };
                        let c = sg.a + d * lam;
                        let d2 = (c - q).norm_squared();
                        let better = match best {
                            None => true,
                            Some((bd, bi, _)) => d2 < bd || (d2 == bd && i < bi),
                        };
                        if better {
                            best = Some((d2, i, lam));
                        }
                    }
                }
            }
        }
        let (d2, i, lam) = best?;
        let dist = d2.sqrt();
        if !(dist <= MAX_SEARCH_PX) {
            return None;
        }
        let sg = &self.segments[i as usize];
        let c = sg.a + (sg.b - sg.a) * lam;
        let n = if dist > 1e-9 {
            (c - q) / dist
        } else {
            let d = sg.b - sg.a;
            Vector2::new(-d.y, d.x).try_normalize(1e-15)?
        };
        let x = sg.wa + (sg.wb - sg.wa) * lam;
        Some((dist, x, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::mesh_implicit;
    use crate::imaging::CArm;

    #[test]
    fn sphere_contour_is_its_outline() {
        let r = 20.0;
        let mesh = mesh_implicit(
            |p: &Point3<f64>| p.coords.norm() - r,
            Point3::new(-22.0, -22.0, -22.0),
            Point3::new(22.0, 22.0, 22.0),
            0.7,
        )
        .unwrap();
        let proj = CArm {
            sid_mm: 1000.0,
            sod_mm: 650.0,
            primary_angle_rad: 0.0,
            secondary_angle_rad: 0.0,
            pixel_spacing_mm: [0.3, 0.3],
            isocenter_mm: Point3::origin(),
            principal_point_px: None,
            image_size_px: [1024, 1024],
        }
        .projection()
        .unwrap();
        let cm = ContourMesh::new(&mesh);
        let vc = ViewContour::new(&cm, &proj, &Isometry3::identity());
        assert!(vc.len() > 100);
        // The exact outline of the sphere: radius rho at distance D.
        let c = proj.project(&Point3::origin()).unwrap();
        let dist = (proj.source_mm() - Point3::origin()).norm();
        let j = proj.jacobian(&Point3::origin());
        let scale = j.row(0).norm();
        let rho_px = scale * r / (1.0 - r * r / (dist * dist)).sqrt();
        for k in 0..36 {
            let th = f64::from(k) * 10f64.to_radians();
            let dir = Vector2::new(th.cos(), th.sin());
            // A point 5 px outside the outline: about 5 px from the contour.
            let q = c + dir * (rho_px + 5.0);
            let (d, x, n) = vc.nearest(&q).unwrap();
            assert!((d - 5.0).abs() < 0.6, "{k}: {d}");
            assert!((x.coords.norm() - r).abs() < 0.3);
            assert!(n.dot(&dir) < -0.95);
        }
    }
}
