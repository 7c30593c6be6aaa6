//! Femur landmarks found automatically on a bone mesh.
//!
//! The method assumes nothing about the mesh's pose or world axes:
//!
//! 1. **Long axis.** The principal axis of the area-weighted vertices.
//! 2. **Head.** At each end of the long axis (the last 80 mm), a RANSAC
//!    search over pairs of oriented vertices: two inward normals that meet
//!    at a point 18-30 mm deep propose a sphere; the proposal covering the
//!    largest surface area (vertices within 1 mm of it whose normal is
//!    within 25 degrees of radial) wins. The end holding it is proximal.
//!    The sphere is then refined by [`fit_sphere`] on the vertices within
//!    2 mm, then within 1 mm, of it whose normal is radial (which drops
//!    the neck and the fovea).
//! 3. **Shaft axis.** Twelve planar cross-sections of the diaphysis, from
//!    85 mm below the head centre down to 250 mm below it (or to 10 mm above
//!    the distal end of a proximal-only mesh), each perpendicular to the
//!    current axis; a line is fitted to the area centroids of the sections
//!    ([`fit_line`]); three rounds.
//! 4. **Neck axis.** The line through the head centre and the area centroids
//!    of seven sections perpendicular to it, 2 to 14 mm beyond the head
//!    sphere (the neck), fitted through the head centre; four rounds from a
//!    start at a neck-shaft angle of 125 degrees.
//! 5. **Lesser trochanter.** With `medial` the neck direction made normal
//!    to the shaft and `y = shaft x medial`, the vertex most prominent along
//!    `(medial + posterior) / sqrt 2` (normal to the shaft) among those
//!    40-90 mm below the head centre and away from the neck, for each of the
//!    two hypotheses `posterior = +y` and `posterior = -y`.
//! 6. **Side** (when not given), from three cues, each a vote on whether
//!    `+y` is posterior (then the femur is a right one, in any pose):
//!    * the condyles bulge posterior to the shaft axis (centroid of the
//!      distal 40 mm; whole femurs, i.e. meshes reaching 300 mm below the
//!      head centre; decisive above 3 mm: 25-33 mm on the real meshes);
//!    * the lesser trochanter is posteromedial: its prominence under one
//!      hypothesis exceeds the other's (decisive above 3 mm; 6-19 mm on the
//!      real meshes);
//!    * the neck axis passes anterior to the shaft axis (5-8 mm, domain.md
//!      §2; decisive above 2 mm).
//!
//!    The condyles decide when present; otherwise the lesser trochanter and
//!    the neck, which must not disagree; with no decisive cue, or
//!    disagreeing ones, [`Error::Degenerate`] (`femur_mesh.side`) asks for
//!    the side. Pass the side when it is known (a retroverted or unusual
//!    proximal femur could be mis-sided by these rules).
//! 7. **Anteversion** (whole femurs only): the angle, in the plane normal to
//!    the shaft axis, from the posterior condylar line to the neck axis,
//!    positive when the neck points anterior.

use nalgebra::{Matrix3, Point2, Point3, Vector2, Vector3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::anatomy::{Axis, HeadNeckFrame};
use crate::case::Side;
use crate::error::{Error, Result};
use crate::geometry::{fit_line, fit_sphere, sorted_eigen, Sphere, TriMesh};

/// Length of each end searched for the head, mm.
const END_LENGTH_MM: f64 = 80.0;
/// Head radius range searched, mm (domain.md §2: diameters 40-49 mm, with margin).
const HEAD_RADIUS_RANGE_MM: (f64, f64) = (18.0, 30.0);
/// Shaft sections: from this far below the head centre, mm ...
const SHAFT_START_MM: f64 = 85.0;
/// ... to at most this far, mm.
const SHAFT_END_MM: f64 = 250.0;
/// Smallest condyle bulge that decides the side, mm.
const CONDYLE_CUE_MM: f64 = 3.0;
/// Smallest lesser-trochanter asymmetry that decides the side, mm.
const LT_CUE_MM: f64 = 3.0;
/// Smallest neck offset that decides the side, mm.
const NECK_CUE_MM: f64 = 2.0;
/// Distance below the head centre from which the mesh counts as a whole femur
/// (condyles present), mm.
const WHOLE_FEMUR_MM: f64 = 300.0;

/// Landmarks of a proximal femur, world mm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FemurLandmarks {
    /// Which femur (given, or found from the geometry).
    pub side: Side,
    /// The femoral head sphere.
    pub head: Sphere,
    /// RMS distance of the head vertices used in the fit to the sphere, mm.
    pub head_fit_rms_mm: f64,
    /// The neck axis, through the head centre, directed from the neck into
    /// the head.
    pub neck_axis: Axis,
    /// The shaft (anatomical) axis, directed distal to proximal; its `point`
    /// is the projection of the head centre onto it.
    pub shaft_axis: Axis,
    /// The lesser trochanter's tip (most medial-posterior prominence), mm.
    pub lesser_trochanter_mm: Point3<f64>,
    /// The tip's coordinate along the shaft axis, mm, measured from the head
    /// centre's level (negative: below the head centre).
    pub lesser_trochanter_level_mm: f64,
    /// 3D angle between the neck axis and the distal shaft direction, radians
    /// (about 125 degrees, domain.md §2).
    pub neck_shaft_angle_rad: f64,
    /// Femoral anteversion against the posterior condylar line, radians
    /// (positive = neck anterior); `None` when the mesh lacks the condyles.
    pub anteversion_rad: Option<f64>,
    /// The head-neck frame built from the head centre, neck and shaft axes.
    pub frame: HeadNeckFrame,
    /// Signed distance of the neck axis from the shaft axis along their
    /// common normal, mm, positive when the neck passes anterior (domain.md
    /// §2: 5-8 mm anterior). One of the side cues.
    pub neck_offset_mm: f64,
    /// Offset of the centroid of the distal 40 mm from the shaft axis, mm,
    /// positive posterior (the condyles); `None` when the mesh is not a
    /// whole femur. The other side cue.
    pub condyle_offset_mm: Option<f64>,
    /// How much further the most prominent medial point 40-90 mm below the
    /// head reaches on the posterior side than on the anterior side, mm (the
    /// lesser trochanter is posteromedial). A side cue.
    pub lesser_trochanter_asymmetry_mm: f64,
    /// Smallest neck cross-section area found along the neck axis, mm^2.
    pub neck_min_area_mm2: f64,
}

/// One closed cross-section loop.
struct Section {
    area_mm2: f64,
    centroid: Point3<f64>,
    /// In-plane polygon, plane coordinates.
    polygon: Vec<Point2<f64>>,
}

fn plane_basis(n: &Vector3<f64>) -> (Vector3<f64>, Vector3<f64>) {
    let a = if n.x.abs() < 0.6 {
        Vector3::x()
    } else {
        Vector3::y()
    };
    let u = n.cross(&a).normalize();
    (u, n.cross(&u))
}

/// Cross-section loops of the mesh with the plane through `origin` with
/// unit normal `n`.
fn slice(mesh: &TriMesh, origin: &Point3<f64>, n: &Vector3<f64>) -> Vec<Section> {
    use std::collections::HashMap;
    let vs = &mesh.vertices;
    let d: Vec<f64> = vs.iter().map(|v| (v - origin).dot(n)).collect();
    let above = |i: u32| d[i as usize] >= 0.0;
    let key = |a: u32, b: u32| if a < b { (a, b) } else { (b, a) };
    let mut segs: Vec<[(u32, u32); 2]> = Vec::new();
    for t in &mesh.triangles {
        let s = [above(t[0]), above(t[1]), above(t[2])];
        if s[0] == s[1] && s[1] == s[2] {
            continue;
        }
        let mut ks = Vec::with_capacity(2);
        for k in 0..3 {
            let (a, b) = (t[k], t[(k + 1) % 3]);
            if above(a) != above(b) {
                ks.push(key(a, b));
            }
        }
        if ks.len() == 2 {
            segs.push([ks[0], ks[1]]);
        }
    }
    let point = |k: (u32, u32)| -> Point3<f64> {
        let (da, db) = (d[k.0 as usize], d[k.1 as usize]);
        let t = da / (da - db);
        vs[k.0 as usize] + (vs[k.1 as usize] - vs[k.0 as usize]) * t
    };
    let mut by_key: HashMap<(u32, u32), Vec<usize>> = HashMap::new();
    for (i, s) in segs.iter().enumerate() {
        by_key.entry(s[0]).or_default().push(i);
        by_key.entry(s[1]).or_default().push(i);
    }
    let (bu, bv) = plane_basis(n);
    let mut used = vec![false; segs.len()];
    let mut out = Vec::new();
    for start in 0..segs.len() {
        if used[start] {
            continue;
        }
        used[start] = true;
        let mut keys = vec![segs[start][0], segs[start][1]];
        loop {
            let last = keys[keys.len() - 1];
            let next = by_key
                .get(&last)
                .and_then(|l| l.iter().copied().find(|&j| !used[j]));
            let Some(j) = next else { break };
            used[j] = true;
            let nk = if segs[j][0] == last {
                segs[j][1]
            } else {
                segs[j][0]
            };
            if nk == keys[0] {
                break;
            }
            keys.push(nk);
        }
        if keys.len() < 3 {
            continue;
        }
        let pts: Vec<Point3<f64>> = keys.iter().map(|&k| point(k)).collect();
        let poly: Vec<Point2<f64>> = pts
            .iter()
            .map(|p| Point2::new((p - origin).dot(&bu), (p - origin).dot(&bv)))
            .collect();
        let (mut a2, mut cx, mut cy) = (0.0, 0.0, 0.0);
        for i in 0..poly.len() {
            let (p, q) = (poly[i], poly[(i + 1) % poly.len()]);
            let cr = p.x * q.y - q.x * p.y;
            a2 += cr;
            cx += (p.x + q.x) * cr;
            cy += (p.y + q.y) * cr;
        }
        if a2.abs() < 1e-9 {
            continue;
        }
        let c2 = Vector2::new(cx, cy) / (3.0 * a2);
        out.push(Section {
            area_mm2: a2.abs() / 2.0,
            centroid: origin + bu * c2.x + bv * c2.y,
            polygon: poly,
        });
    }
    out
}

fn polygon_contains(poly: &[Point2<f64>], p: &Point2<f64>) -> bool {
    let mut inside = false;
    let n = poly.len();
    for i in 0..n {
        let (a, b) = (poly[i], poly[(i + 1) % n]);
        if (a.y > p.y) != (b.y > p.y) {
            let x = a.x + (p.y - a.y) / (b.y - a.y) * (b.x - a.x);
            if x > p.x {
                inside = !inside;
            }
        }
    }
    inside
}

/// The section containing the plane origin, else the largest one.
fn central_section(mesh: &TriMesh, origin: &Point3<f64>, n: &Vector3<f64>) -> Option<Section> {
    let mut secs = slice(mesh, origin, n);
    let o = Point2::origin();
    if let Some(i) = secs.iter().position(|s| polygon_contains(&s.polygon, &o)) {
        return Some(secs.swap_remove(i));
    }
    secs.into_iter()
        .max_by(|a, b| a.area_mm2.total_cmp(&b.area_mm2))
}

/// Area-weighted outward vertex normals and vertex areas.
fn vertex_normals(mesh: &TriMesh) -> (Vec<Vector3<f64>>, Vec<f64>) {
    let mut normals = vec![Vector3::zeros(); mesh.vertices.len()];
    let mut areas = vec![0.0; mesh.vertices.len()];
    for (i, t) in mesh.triangles.iter().enumerate() {
        let [a, b, c] = mesh.triangle(i);
        let n2 = (b - a).cross(&(c - a));
        for &v in t {
            normals[v as usize] += n2;
            areas[v as usize] += n2.norm() / 6.0;
        }
    }
    for n in &mut normals {
        *n = n.try_normalize(1e-300).unwrap_or_else(Vector3::zeros);
    }
    (normals, areas)
}

/// Best sphere proposal among `idx` vertices: `(sphere, inlier area)`.
fn ransac_head(
    verts: &[Point3<f64>],
    normals: &[Vector3<f64>],
    areas: &[f64],
    idx: &[usize],
    rng: &mut ChaCha8Rng,
) -> Option<(Point3<f64>, f64, f64)> {
    if idx.len() < 10 {
        return None;
    }
    let stride = (idx.len() / 4000).max(1);
    let score_set: Vec<usize> = idx.iter().copied().step_by(stride).collect();
    let cos_tol = 25f64.to_radians().cos();
    let score = |c: &Point3<f64>, r: f64| -> f64 {
        score_set
            .iter()
            .filter_map(|&i| {
                let d = verts[i] - c;
                let dn = d.norm();
                ((dn - r).abs() < 1.0 && d.dot(&normals[i]) > cos_tol * dn).then_some(areas[i])
            })
            .sum::<f64>()
            * stride as f64
    };
    let mut best: Option<(Point3<f64>, f64, f64)> = None;
    for _ in 0..600 {
        let i = idx[rng.random_range(0..idx.len())];
        let j = idx[rng.random_range(0..idx.len())];
        let (p, q, m, n) = (verts[i], verts[j], -normals[i], -normals[j]);
        // Closest approach of p + s m and q + t n.
        let w = p - q;
        let (b, dd, e) = (m.dot(&n), m.dot(&w), n.dot(&w));
        let den = 1.0 - b * b;
        if den < 0.05 {
            continue;
        }
        let s = (b * e - dd) / den;
        let t = (e - b * dd) / den;
        let (a1, a2) = (p + m * s, q + n * t);
        let (lo, hi) = HEAD_RADIUS_RANGE_MM;
        if !(s > lo && s < hi && t > lo && t < hi) || (a1 - a2).norm() > 2.0 {
            continue;
        }
        let c = Point3::from((a1.coords + a2.coords) / 2.0);
        let r = ((p - c).norm() + (q - c).norm()) / 2.0;
        let sc = score(&c, r);
        if best.is_none_or(|b| sc > b.2) {
            best = Some((c, r, sc));
        }
    }
    best
}

/// Refines a head sphere on the vertices near it with radial normals.
fn refine_head(
    verts: &[Point3<f64>],
    normals: &[Vector3<f64>],
    c0: Point3<f64>,
    r0: f64,
) -> Result<(Sphere, f64, usize)> {
    let cos_tol = 30f64.to_radians().cos();
    let (mut c, mut r) = (c0, r0);
    let mut out: Option<(Sphere, f64, usize)> = None;
    for tol in [2.0, 1.0, 1.0, 1.0, 1.0, 1.0] {
        let pts: Vec<Point3<f64>> = verts
            .iter()
            .zip(normals)
            .filter(|(v, n)| {
                let d = *v - c;
                let dn = d.norm();
                (dn - r).abs() < tol && d.dot(n) > cos_tol * dn
            })
            .map(|(v, _)| *v)
            .collect();
        let (s, rms) = fit_sphere(&pts).map_err(|e| e.in_field("femur_mesh.head"))?;
        c = s.center;
        r = s.radius_mm;
        let converged = tol == 1.0 && out.is_some_and(|o| o.2 == pts.len());
        out = Some((s, rms, pts.len()));
        if converged {
            break;
        }
    }
    out.ok_or_else(|| Error::degenerate("femur_mesh.head", "no head vertices"))
}

impl FemurLandmarks {
    /// Finds the landmarks on a femur mesh (whole or proximal-only, either
    /// side, any pose). `side` is used when given; otherwise it is found
    /// from the geometry (module docs, step 5).
    ///
    /// # Units
    /// The mesh in mm; all outputs in the mesh's frame, mm and radians.
    ///
    /// # Errors
    /// * [`Error::TooFew`] (`femur_mesh.vertices`) below 500 vertices;
    /// * [`Error::Mesh`] (`femur_mesh`) when the signed volume is not positive
    ///   (normals point inward);
    /// * [`Error::Degenerate`] naming `femur_mesh.head` when no spherical head
    ///   of radius 18-30 mm is found, `femur_mesh.shaft` when the mesh does
    ///   not reach 115 mm below the head centre, `femur_mesh.neck` when the
    ///   neck sections fail, `femur_mesh.side` when the side cannot be told
    ///   and was not given.
    ///
    /// # Example
    /// ```no_run
    /// # fn load() -> avnplan::geometry::TriMesh { unimplemented!() }
    /// use avnplan::anatomy::FemurLandmarks;
    /// let lm = FemurLandmarks::from_mesh(&load(), None)?;
    /// println!("head {:?} r {:.1} mm", lm.head.center, lm.head.radius_mm);
    /// # Ok::<(), avnplan::Error>(())
    /// ```
    pub fn from_mesh(mesh: &TriMesh, side: Option<Side>) -> Result<Self> {
        let verts = &mesh.vertices;
        if verts.len() < 500 {
            return Err(Error::too_few("femur_mesh.vertices", 500, verts.len()));
        }
        let vol = mesh.signed_volume_mm3();
        if !greater(vol, 0.0) {
            return Err(Error::mesh(
                "femur_mesh",
                format!("signed volume {vol:.0} mm^3 is not positive: normals must point outward"),
            ));
        }
        let (normals, areas) = vertex_normals(mesh);
        // 1. Long axis.
        let total: f64 = areas.iter().sum();
        let mean = Point3::from(
            verts
                .iter()
                .zip(&areas)
                .fold(Vector3::zeros(), |s, (v, a)| s + v.coords * *a)
                / total,
        );
        let cov = verts
            .iter()
            .zip(&areas)
            .fold(Matrix3::zeros(), |s, (v, a)| {
                let d = v - mean;
                s + d * d.transpose() * *a
            })
            / total;
        let (_, vecs) = sorted_eigen(&cov);
        let e1: Vector3<f64> = vecs.column(0).into_owned();
        // 2. Head at either end.
        let mut best: Option<(Point3<f64>, f64, f64, f64)> = None;
        for sign in [1.0, -1.0] {
            let u = e1 * sign;
            let t: Vec<f64> = verts.iter().map(|v| (v - mean).dot(&u)).collect();
            let tmax = t.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let idx: Vec<usize> = (0..verts.len())
                .filter(|&i| t[i] >= tmax - END_LENGTH_MM)
                .collect();
            // A fresh generator per end: the head end draws the same vertex
            // pairs whatever the pose or the sign of the PCA axis.
            let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_fe3a);
            if let Some((c, r, sc)) = ransac_head(verts, &normals, &areas, &idx, &mut rng) {
                if best.is_none_or(|b| sc > b.2) {
                    best = Some((c, r, sc, sign));
                }
            }
        }
        let Some((c0, r0, score, sign)) = best else {
            return Err(Error::degenerate(
                "femur_mesh.head",
                "no spherical head of radius 18-30 mm at either end of the mesh",
            ));
        };
        let min_area = 0.25 * 4.0 * std::f64::consts::PI * r0 * r0;
        if score < min_area {
            return Err(Error::degenerate(
                "femur_mesh.head",
                format!("best sphere covers only {score:.0} mm^2 (need {min_area:.0})"),
            ));
        }
        let (head, head_rms, _n) = refine_head(verts, &normals, c0, r0)?;
        let c = head.center;
        let r = head.radius_mm;
        // 3. Shaft axis.
        let mut shaft = Axis::new(c, e1 * sign)?;
        let mut t_min = 0.0;
        for _ in 0..3 {
            let s = shaft.direction.into_inner();
            t_min = verts
                .iter()
                .map(|v| (v - c).dot(&s))
                .fold(f64::INFINITY, f64::min);
            let start = -SHAFT_START_MM;
            let end = (-SHAFT_END_MM).max(t_min + 10.0);
            if start - end < 20.0 {
                return Err(Error::degenerate(
                    "femur_mesh.shaft",
                    format!(
                        "the mesh must reach at least {} mm below the head centre (it reaches {:.0} mm)",
                        SHAFT_START_MM + 30.0,
                        -t_min
                    ),
                ));
            }
            let foot = shaft.closest_point(&c);
            let mut cents = Vec::new();
            for k in 0..12 {
                let lv = end + (start - end) * k as f64 / 11.0;
                let o = foot + s * lv;
                if let Some(sec) = central_section(mesh, &o, &s) {
                    cents.push(sec.centroid);
                }
            }
            let line = fit_line(&cents).map_err(|e| e.in_field("femur_mesh.shaft"))?;
            let dir = if line.direction.dot(&s) < 0.0 {
                -line.direction.into_inner()
            } else {
                line.direction.into_inner()
            };
            shaft = Axis::new(line.point, dir)?;
        }
        let s = shaft.direction.into_inner();
        let shaft = Axis::new(shaft.closest_point(&c), s)?;
        // 4. Neck axis.
        let foot = shaft.closest_point(&c);
        let lateral = (foot - c)
            .try_normalize(1e-9)
            .ok_or_else(|| Error::degenerate("femur_mesh.neck", "head centre on the shaft axis"))?;
        let nsa0 = 125f64.to_radians();
        let mut n = (s * nsa0.cos() + lateral * nsa0.sin()).normalize();
        let mut neck_area_min = f64::INFINITY;
        for _ in 0..4 {
            let mut m = Matrix3::zeros();
            let mut count = 0;
            neck_area_min = f64::INFINITY;
            for k in 0..7 {
                let dist = r + 2.0 + 2.0 * k as f64;
                let o = c + n * dist;
                if let Some(sec) = central_section(mesh, &o, &n) {
                    let q = sec.centroid - c;
                    m += q * q.transpose();
                    count += 1;
                    neck_area_min = neck_area_min.min(sec.area_mm2);
                }
            }
            if count < 3 {
                return Err(Error::degenerate(
                    "femur_mesh.neck",
                    "too few neck sections",
                ));
            }
            let (_, v) = sorted_eigen(&m);
            let mut nn: Vector3<f64> = v.column(0).into_owned();
            if nn.dot(&n) < 0.0 {
                nn = -nn;
            }
            n = nn;
        }
        let x = -n;
        let neck_axis = Axis::new(c, x)?;
        let neck_radius = (neck_area_min / std::f64::consts::PI).sqrt();
        let nsa = x.dot(&(-s)).clamp(-1.0, 1.0).acos();
        // 5. Side.
        let medial = (x - s * x.dot(&s)).normalize();
        let y = s.cross(&medial);
        let whole = -t_min >= WHOLE_FEMUR_MM;
        let distal: Vec<&Point3<f64>> = verts
            .iter()
            .filter(|v| (*v - c).dot(&s) < t_min + 40.0)
            .collect();
        let condyle_bulge = if whole && !distal.is_empty() {
            let cen =
                distal.iter().fold(Vector3::zeros(), |a, v| a + v.coords) / distal.len() as f64;
            let cen = Point3::from(cen);
            Some((cen - shaft.closest_point(&cen)).dot(&y))
        } else {
            None
        };
        let neck_offset = (c - shaft.point).dot(&y);
        // 6. Lesser trochanter, for either posterior hypothesis (+y or -y).
        let lt_search = |posterior: Vector3<f64>| -> Result<(Point3<f64>, f64)> {
            let dir = (medial + posterior).normalize();
            let mut lt: Option<(Point3<f64>, f64)> = None;
            for v in verts {
                let level = (v - c).dot(&s);
                if !(-90.0..=-40.0).contains(&level) {
                    continue;
                }
                if neck_axis.distance_mm(v) < neck_radius + 5.0
                    && neck_axis.coordinate_mm(v) > -(r + 40.0)
                {
                    continue;
                }
                let prom = (v - shaft.closest_point(v)).dot(&dir);
                if lt.is_none_or(|(_, p)| prom > p) {
                    lt = Some((*v, prom));
                }
            }
            lt.ok_or_else(|| {
                Error::degenerate(
                    "femur_mesh.lesser_trochanter",
                    "no vertices 40-90 mm below the head",
                )
            })
        };
        let lt_pos_y = lt_search(y)?;
        let lt_neg_y = lt_search(-y)?;
        // Positive: the medial prominence is on the +y side (posterior for a right femur).
        let lt_margin = lt_pos_y.1 - lt_neg_y.1;
        // Each cue as "is +y posterior?" (then the femur is a right one).
        let condyle_cue = condyle_bulge
            .filter(|b| b.abs() > CONDYLE_CUE_MM)
            .map(|b| b > 0.0);
        let lt_cue = (lt_margin.abs() > LT_CUE_MM).then_some(lt_margin > 0.0);
        // The neck passes anterior: -y for a right femur.
        let neck_cue = (neck_offset.abs() > NECK_CUE_MM).then_some(neck_offset < 0.0);
        let cannot = |why: &str| {
            Error::degenerate(
                "femur_mesh.side",
                format!(
                    "cannot tell left from right ({why}; condyle bulge {condyle_bulge:?} mm, lesser trochanter asymmetry {lt_margin:.1} mm, neck offset {neck_offset:.1} mm): give the side"
                ),
            )
        };
        let side = match side {
            Some(sd) => sd,
            None => {
                let plus_y_posterior = match (condyle_cue, lt_cue, neck_cue) {
                    (Some(c), _, _) => c,
                    (None, Some(l), Some(n)) if l != n => {
                        return Err(cannot("the proximal cues disagree"))
                    }
                    (None, Some(l), _) => l,
                    (None, None, Some(n)) => n,
                    (None, None, None) => return Err(cannot("no cue is strong enough")),
                };
                if plus_y_posterior {
                    Side::Right
                } else {
                    Side::Left
                }
            }
        };
        let frame = HeadNeckFrame::new(c, &x, &s, side)?;
        let anterior = frame.anterior().into_inner();
        let posterior_perp = {
            let p = -(anterior - s * anterior.dot(&s));
            p.normalize()
        };
        let (lt_pt, _) = if posterior_perp.dot(&y) > 0.0 {
            lt_pos_y
        } else {
            lt_neg_y
        };
        let lt_level = shaft.coordinate_mm(&lt_pt);
        // 7. Anteversion from the posterior condylar line.
        let anteversion_rad = if whole && distal.len() > 10 {
            let cen = Point3::from(
                distal.iter().fold(Vector3::zeros(), |a, v| a + v.coords) / distal.len() as f64,
            );
            let mut best_m: Option<(&Point3<f64>, f64)> = None;
            let mut best_l: Option<(&Point3<f64>, f64)> = None;
            for v in &distal {
                let post = (*v - cen).dot(&posterior_perp);
                let slot = if (*v - cen).dot(&medial) > 0.0 {
                    &mut best_m
                } else {
                    &mut best_l
                };
                if slot.is_none_or(|(_, p)| post > p) {
                    *slot = Some((v, post));
                }
            }
            match (best_m, best_l) {
                (Some((pm, _)), Some((pl, _))) => {
                    let k = pm - pl;
                    let k = k - s * k.dot(&s);
                    k.try_normalize(1e-9).map(|k| {
                        let a_perp =
                            (anterior - k * anterior.dot(&k) - s * anterior.dot(&s)).normalize();
                        let xp = x - s * x.dot(&s);
                        xp.dot(&a_perp).atan2(xp.dot(&k))
                    })
                }
                _ => None,
            }
        } else {
            None
        };
        Ok(Self {
            side,
            head,
            head_fit_rms_mm: head_rms,
            neck_axis,
            shaft_axis: shaft,
            lesser_trochanter_mm: lt_pt,
            lesser_trochanter_level_mm: lt_level,
            neck_shaft_angle_rad: nsa,
            anteversion_rad,
            frame,
            // y is posterior for a right femur, anterior for a left one.
            neck_offset_mm: match side {
                Side::Right => -neck_offset,
                Side::Left => neck_offset,
            },
            condyle_offset_mm: condyle_bulge.map(|b| match side {
                Side::Right => b,
                Side::Left => -b,
            }),
            lesser_trochanter_asymmetry_mm: match side {
                Side::Right => lt_margin,
                Side::Left => -lt_margin,
            },
            neck_min_area_mm2: neck_area_min,
        })
    }
}

/// `a > b`, false when either is NaN (negated, it also catches NaN).
fn greater(a: f64, b: f64) -> bool {
    a > b
}
