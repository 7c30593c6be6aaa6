//! The necrotic lesion: an ellipsoid, a closed mesh, or the Kerboul
//! description on the femoral head.
//!
//! All three answer the same questions: inside test, volume (mL), bounds,
//! centroid, fraction of the head, deterministic grid points, seeded random
//! points, and the equivalent ellipsoid (same centroid and second moments).
//!
//! # Accuracy
//!
//! * Ellipsoid and mesh: volume, centroid and second moments are exact
//!   (closed forms; for meshes the divergence theorem over tetrahedra).
//! * Kerboul: the volume is exact (closed-form solid angle of the arcs times
//!   the shell volume); the centroid and second moments use the exact radial
//!   integral and adaptive 16x16-point Gauss-Legendre quadrature over the
//!   arcs (a cell is split until its four children agree with it to 1e-13
//!   relative), geometrically refined towards the equator corners where the
//!   integrand is singular; the tests check the quadrature against the
//!   closed-form solid angle to 1e-9 relative and the centroid's additivity
//!   over split arcs to 1e-6 mm.
//! * [`Lesion::head_fraction`]: exact when the lesion lies inside the head
//!   sphere; otherwise a midpoint rule on a grid of at most 128 points per
//!   axis (mesh lesions integrate exactly along z per column), about 1% of
//!   the lesion volume.

use std::collections::HashMap;

use nalgebra::{Isometry3, Matrix3, Point3, Rotation3, Vector3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::anatomy::HeadNeckFrame;
use crate::case::{Kerboul, LesionSpec, MeshFrame};
use crate::error::{ensure_finite, ensure_positive, Error, Result};
use crate::geometry::{sorted_eigen, Ellipsoid, Sphere, TriMesh};

/// Largest triangle count of a lesion mesh (inside tests loop over all
/// triangles, so lesion meshes must stay small).
pub const MAX_LESION_TRIANGLES: usize = 200_000;

/// Largest number of lattice nodes [`Lesion::grid_points`] visits (the
/// spacing is widened to stay below it).
pub const MAX_GRID_NODES: usize = 1 << 24;

/// A necrotic lesion in world mm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Lesion {
    /// An ellipsoid.
    Ellipsoid(Ellipsoid),
    /// A closed, outward-oriented triangle mesh.
    Mesh(LesionMesh),
    /// The Kerboul description on a head sphere, in a head-neck frame (see
    /// [`crate::anatomy::frame`]): the points `p` with
    /// `R - depth_mm <= |p - head.center| < R` whose Kerboul coronal angle
    /// lies in `coronal_arc_deg` and sagittal angle in `sagittal_arc_deg`.
    /// Angles are taken about `head.center` with the frame's axes. Build it
    /// with [`Lesion::kerboul`], which validates.
    Kerboul {
        /// The head sphere.
        head: Sphere,
        /// The head-neck frame (its axes orient the arcs).
        frame: HeadNeckFrame,
        /// Arcs (degrees, `from < to`, within `[-180, 180]`) and depth.
        spec: Kerboul,
    },
}

/// A closed, consistently and outwardly oriented lesion mesh with its
/// precomputed moments.
#[derive(Debug, Clone, PartialEq)]
pub struct LesionMesh {
    mesh: TriMesh,
    moments: Moments,
    bounds: (Point3<f64>, Point3<f64>),
}

/// Volume, centroid and central second moment (per unit volume), mm.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Moments {
    volume_mm3: f64,
    centroid: Point3<f64>,
    covariance: Matrix3<f64>,
}

impl LesionMesh {
    /// Checks and wraps a lesion mesh.
    ///
    /// # Errors
    /// * [`Error::LimitExceeded`] (`lesion.mesh.triangles`) above
    ///   [`MAX_LESION_TRIANGLES`];
    /// * [`Error::Mesh`] (`lesion.mesh`) when the mesh has no triangles, an
    ///   index out of range or a non-finite vertex, when an edge is not shared by
    ///   exactly two triangles with opposite directions (open or
    ///   inconsistently oriented), or when the signed volume is not positive
    ///   (normals point inwards).
    ///
    /// # Example
    /// ```
    /// use avnplan::anatomy::{Lesion, LesionMesh};
    /// use avnplan::geometry::TriMesh;
    /// use nalgebra::Point3;
    /// // A tetrahedron with outward winding: volume 1/6 * 10^3 mm^3.
    /// let v = vec![Point3::origin(), Point3::new(10.0, 0.0, 0.0), Point3::new(0.0, 10.0, 0.0), Point3::new(0.0, 0.0, 10.0)];
    /// let t = vec![[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]];
    /// let lesion = Lesion::Mesh(LesionMesh::new(TriMesh::new(v, t)?)?);
    /// approx::assert_relative_eq!(lesion.volume_ml(), 1.0 / 6.0, epsilon = 1e-12);
    /// assert!(lesion.contains(&Point3::new(1.0, 1.0, 1.0)));
    /// # Ok::<(), avnplan::Error>(())
    /// ```
    pub fn new(mesh: TriMesh) -> Result<Self> {
        if mesh.triangles.len() > MAX_LESION_TRIANGLES {
            return Err(Error::LimitExceeded {
                what: "lesion.mesh.triangles".into(),
                limit: MAX_LESION_TRIANGLES,
                actual: mesh.triangles.len(),
            });
        }
        // The mesh's fields are public: re-check what `TriMesh::new` checks
        // (an empty or out-of-range mesh would otherwise index out of bounds).
        if mesh.triangles.is_empty() {
            return Err(Error::mesh("lesion.mesh", "has no triangles"));
        }
        let nv = mesh.vertices.len();
        if mesh.triangles.iter().flatten().any(|&i| i as usize >= nv) {
            return Err(Error::mesh(
                "lesion.mesh",
                "a triangle refers to a missing vertex",
            ));
        }
        if mesh
            .vertices
            .iter()
            .any(|v| !(v.x.is_finite() && v.y.is_finite() && v.z.is_finite()))
        {
            return Err(Error::mesh(
                "lesion.mesh",
                "a vertex is not finite (NaN or infinity)",
            ));
        }
        let mut directed: HashMap<(u32, u32), u32> = HashMap::new();
        for t in &mesh.triangles {
            for k in 0..3 {
                *directed.entry((t[k], t[(k + 1) % 3])).or_insert(0) += 1;
            }
        }
        for (&(a, b), &n) in &directed {
            if n != 1 || directed.get(&(b, a)) != Some(&1) {
                return Err(Error::mesh(
                    "lesion.mesh",
                    format!("edge {a}-{b} is not shared by exactly two oppositely oriented triangles (open or inconsistent winding)"),
                ));
            }
        }
        let o = mesh.vertices[mesh.triangles[0][0] as usize].coords;
        let (mut v, mut m1, mut m2) = (0.0, Vector3::zeros(), Matrix3::zeros());
        for &[a, b, c] in &mesh.triangles {
            let pa = mesh.vertices[a as usize].coords - o;
            let pb = mesh.vertices[b as usize].coords - o;
            let pc = mesh.vertices[c as usize].coords - o;
            let vt = pa.dot(&pb.cross(&pc)) / 6.0;
            let s = pa + pb + pc;
            v += vt;
            m1 += s * (vt / 4.0);
            m2 += (pa * pa.transpose()
                + pb * pb.transpose()
                + pc * pc.transpose()
                + s * s.transpose())
                * (vt / 20.0);
        }
        if !greater(v, 0.0) {
            return Err(Error::mesh(
                "lesion.mesh",
                format!("signed volume is {v:.3} mm^3: it must be > 0 (normals pointing outward)"),
            ));
        }
        let cen = m1 / v;
        let covariance = m2 / v - cen * cen.transpose();
        let moments = Moments {
            volume_mm3: v,
            centroid: Point3::from(o + cen),
            covariance,
        };
        let bounds = mesh.bounds_mm();
        Ok(Self {
            mesh,
            moments,
            bounds,
        })
    }

    /// The mesh.
    #[must_use]
    pub fn mesh(&self) -> &TriMesh {
        &self.mesh
    }

    /// The sorted z values where the vertical line through `(x, y)` crosses
    /// the surface. A half-open (top-left) rule on canonically ordered edges
    /// makes a line through a shared edge or vertex count exactly once.
    fn z_crossings(&self, x: f64, y: f64, out: &mut Vec<f64>) {
        out.clear();
        let (lo, hi) = self.bounds;
        if x < lo.x || x > hi.x || y < lo.y || y > hi.y {
            return;
        }
        let vs = &self.mesh.vertices;
        for t in &self.mesh.triangles {
            let [ia, ib, ic] = *t;
            let (a, b, c) = (vs[ia as usize], vs[ib as usize], vs[ic as usize]);
            if (a.x < x && b.x < x && c.x < x)
                || (a.x > x && b.x > x && c.x > x)
                || (a.y < y && b.y < y && c.y < y)
                || (a.y > y && b.y > y && c.y > y)
            {
                continue;
            }
            let area = (b.x - a.x) * (c.y - a.y) - (b.y - a.y) * (c.x - a.x);
            if area == 0.0 {
                continue;
            }
            let sign = area.signum();
            let mut w = [0.0; 3];
            let mut inside = true;
            for (k, (i0, i1)) in [(ib, ic), (ic, ia), (ia, ib)].into_iter().enumerate() {
                // Canonical order: the lower vertex index first, so that both
                // triangles sharing an edge compute the same number.
                let (u, v, flip) = if i0 < i1 {
                    (i0, i1, 1.0)
                } else {
                    (i1, i0, -1.0)
                };
                let (pu, pv) = (vs[u as usize], vs[v as usize]);
                let e = (pv.x - pu.x) * (y - pu.y) - (pv.y - pu.y) * (x - pu.x);
                let wk = e * flip * sign;
                // Direction of the edge as traversed counter-clockwise.
                let (dx, dy) = ((pv.x - pu.x) * flip * sign, (pv.y - pu.y) * flip * sign);
                let owned = dy < 0.0 || (dy == 0.0 && dx < 0.0);
                if wk < 0.0 || (wk == 0.0 && !owned) {
                    inside = false;
                    break;
                }
                w[k] = wk;
            }
            if !inside {
                continue;
            }
            let s = w[0] + w[1] + w[2];
            if s > 0.0 {
                out.push((w[0] * a.z + w[1] * b.z + w[2] * c.z) / s);
            }
        }
        out.sort_by(f64::total_cmp);
    }

    fn contains(&self, p: &Point3<f64>) -> bool {
        let (lo, hi) = self.bounds;
        if p.z < lo.z || p.z > hi.z {
            return false;
        }
        let mut zs = Vec::new();
        self.z_crossings(p.x, p.y, &mut zs);
        zs.iter().filter(|&&z| z > p.z).count() % 2 == 1
    }
}

impl Lesion {
    /// The lesion of a case's explicit [`LesionSpec`], in the world frame.
    ///
    /// `world_from_mesh` maps a mesh given in the bone mesh's own frame
    /// ([`MeshFrame::Own`]) to the world (from registration); `head` is the
    /// head sphere and head-neck frame a Kerboul description is placed on.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `lesion.mesh` when an own-frame mesh comes
    /// without `world_from_mesh`, or `lesion.kerboul` when a Kerboul lesion
    /// comes without `head`; otherwise the errors of [`LesionMesh::new`] and
    /// [`Lesion::kerboul`] (field paths under `lesion`).
    pub fn from_spec(
        spec: &LesionSpec,
        world_from_mesh: Option<&Isometry3<f64>>,
        head: Option<(Sphere, HeadNeckFrame)>,
    ) -> Result<Self> {
        match spec {
            LesionSpec::Ellipsoid(e) => Ok(Lesion::Ellipsoid(*e)),
            LesionSpec::Mesh(m, MeshFrame::World) => Ok(Lesion::Mesh(LesionMesh::new(m.clone())?)),
            LesionSpec::Mesh(m, MeshFrame::Own) => {
                let iso = world_from_mesh.ok_or_else(|| {
                    Error::invalid(
                        "lesion.mesh",
                        "is in the bone mesh's own frame: a registration (world_from_mesh) is needed",
                    )
                })?;
                Ok(Lesion::Mesh(LesionMesh::new(m.transformed(iso))?))
            }
            LesionSpec::Kerboul(k) => {
                let (h, f) = head.ok_or_else(|| {
                    Error::invalid(
                        "lesion.kerboul",
                        "needs the head sphere and head-neck frame to be placed on",
                    )
                })?;
                Lesion::kerboul(h, f, *k).map_err(|e| match e {
                    Error::Invalid { field, reason } => Error::Invalid {
                        field: format!("lesion.{field}"),
                        reason,
                    },
                    other => other,
                })
            }
            // A spec kind added later: say so rather than guess.
            #[allow(unreachable_patterns, reason = "LesionSpec is non_exhaustive")]
            _ => Err(Error::invalid(
                "lesion",
                "this lesion kind is not supported",
            )),
        }
    }

    /// A validated Kerboul lesion.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `kerboul.coronal_arc_deg`,
    /// `kerboul.sagittal_arc_deg` (each must have `from < to` within
    /// `[-180, 180]`) or `kerboul.depth_mm` (> 0); [`Error::Degenerate`]
    /// (`kerboul`) when the arcs select no direction (e.g. a coronal arc
    /// within 90 degrees of the pole with a sagittal arc beyond it).
    ///
    /// # Example
    /// ```
    /// use avnplan::anatomy::{HeadNeckFrame, Lesion};
    /// use avnplan::case::Kerboul;
    /// use avnplan::geometry::Sphere;
    /// use avnplan::Side;
    /// use nalgebra::{Point3, Vector3};
    /// let head = Sphere::new(Point3::origin(), 23.0)?;
    /// let frame = HeadNeckFrame::new(head.center, &Vector3::x(), &Vector3::z(), Side::Right)?;
    /// // The whole upper hemisphere, full depth: half the head (about 25.5 mL).
    /// let spec = Kerboul { coronal_arc_deg: [-90.0, 90.0], sagittal_arc_deg: [-90.0, 90.0], depth_mm: 23.0 };
    /// let l = Lesion::kerboul(head, frame, spec)?;
    /// approx::assert_relative_eq!(l.head_fraction(&head), 0.5, epsilon = 1e-12);
    /// # Ok::<(), avnplan::Error>(())
    /// ```
    pub fn kerboul(head: Sphere, frame: HeadNeckFrame, spec: Kerboul) -> Result<Self> {
        for (name, arc) in [
            ("kerboul.coronal_arc_deg", spec.coronal_arc_deg),
            ("kerboul.sagittal_arc_deg", spec.sagittal_arc_deg),
        ] {
            ensure_finite(name, &arc)?;
            if !(arc[0] < arc[1] && arc[0] >= -180.0 && arc[1] <= 180.0) {
                return Err(Error::invalid(
                    name,
                    "must be [from, to] with -180 <= from < to <= 180",
                ));
            }
        }
        ensure_positive("kerboul.depth_mm", spec.depth_mm)?;
        let head = Sphere::new(head.center, head.radius_mm)?;
        let l = Lesion::Kerboul { head, frame, spec };
        if !greater(l.volume_ml(), 0.0) {
            return Err(Error::degenerate(
                "kerboul",
                "the coronal and sagittal arcs select no direction (one within 90 degrees of the superior pole, the other beyond)",
            ));
        }
        Ok(l)
    }

    /// Whether `p` (world mm) is inside the lesion (mesh: ray parity with a
    /// half-open rule; Kerboul: the radius is half-open, `[R - depth, R)`).
    #[must_use]
    pub fn contains(&self, p: &Point3<f64>) -> bool {
        match self {
            Lesion::Ellipsoid(e) => e.contains(p),
            Lesion::Mesh(m) => m.contains(p),
            Lesion::Kerboul { head, frame, spec } => {
                let d = p - head.center;
                let r = d.norm();
                let inner = (head.radius_mm - spec.depth_mm).max(0.0);
                if !(r < head.radius_mm && r >= inner) {
                    return false;
                }
                let (x, z, a) = (
                    d.dot(&frame.x_axis()),
                    d.dot(&frame.z_axis()),
                    d.dot(&frame.anterior()),
                );
                let (c, s) = (x.atan2(z).to_degrees(), a.atan2(z).to_degrees());
                let [c0, c1] = spec.coronal_arc_deg;
                let [s0, s1] = spec.sagittal_arc_deg;
                c >= c0 && c <= c1 && s >= s0 && s <= s1
            }
        }
    }

    fn moments(&self) -> Moments {
        match self {
            Lesion::Ellipsoid(e) => {
                let r = e.rotation.matrix();
                let d = Matrix3::from_diagonal(&e.semi_axes_mm.map(|a| a * a / 5.0));
                Moments {
                    volume_mm3: e.volume_ml() * 1000.0,
                    centroid: e.center,
                    covariance: r * d * r.transpose(),
                }
            }
            Lesion::Mesh(m) => m.moments,
            Lesion::Kerboul { head, frame, spec } => kerboul_moments(head, frame, spec),
        }
    }

    /// Volume, mL (1 mL = 1000 mm^3). Exact for all three kinds (module docs).
    #[must_use]
    pub fn volume_ml(&self) -> f64 {
        match self {
            Lesion::Kerboul { head, spec, .. } => {
                let omega: f64 = kerboul_pieces(spec)
                    .iter()
                    .map(|&(c, s)| solid_angle(c, s))
                    .sum();
                let (r, rho) = shell(head, spec);
                omega * (r.powi(3) - rho.powi(3)) / 3.0 / 1000.0
            }
            _ => self.moments().volume_mm3 / 1000.0,
        }
    }

    /// Axis-aligned bounding box `(min, max)`, world mm (Kerboul: conservative,
    /// within 0.05 mm of tight).
    #[must_use]
    pub fn bounds_mm(&self) -> (Point3<f64>, Point3<f64>) {
        match self {
            Lesion::Ellipsoid(e) => e.bounds_mm(),
            Lesion::Mesh(m) => m.bounds,
            Lesion::Kerboul { head, frame, spec } => kerboul_bounds(head, frame, spec),
        }
    }

    /// Centroid (centre of volume), world mm.
    #[must_use]
    pub fn centroid_mm(&self) -> Point3<f64> {
        self.moments().centroid
    }

    /// Fraction of the head sphere's volume occupied by the lesion, in
    /// `[0, 1]` (the part of the lesion outside the head does not count).
    /// Exact when the lesion lies inside the sphere; otherwise a grid
    /// estimate (module docs).
    #[must_use]
    pub fn head_fraction(&self, head: &Sphere) -> f64 {
        let hv = head.volume_ml();
        if !greater(hv, 0.0) {
            return 0.0;
        }
        let inside_head = match self {
            Lesion::Ellipsoid(e) => {
                (e.center - head.center).norm() + e.semi_axes_mm.max() <= head.radius_mm
            }
            Lesion::Mesh(m) => m.mesh.vertices.iter().all(|v| head.contains(v)),
            Lesion::Kerboul { head: h, .. } => {
                (h.center - head.center).norm() + h.radius_mm <= head.radius_mm * (1.0 + 1e-12)
            }
        };
        let inter_ml = if inside_head {
            self.volume_ml()
        } else {
            self.intersection_with_sphere_ml(head)
        };
        (inter_ml / hv).clamp(0.0, 1.0)
    }

    fn intersection_with_sphere_ml(&self, head: &Sphere) -> f64 {
        const N: usize = 128;
        let (lo, hi) = self.bounds_mm();
        let r = Vector3::repeat(head.radius_mm);
        let lo = lo.sup(&(head.center - r));
        let hi = hi.inf(&(head.center + r));
        let ext = hi - lo;
        if ext.iter().any(|&e| !greater(e, 0.0)) {
            return 0.0;
        }
        let h = ext / N as f64;
        let mut volume_mm3 = 0.0;
        let mut zs = Vec::new();
        for i in 0..N {
            let x = lo.x + (i as f64 + 0.5) * h.x;
            for j in 0..N {
                let y = lo.y + (j as f64 + 0.5) * h.y;
                let d2 = head.radius_mm.powi(2)
                    - (x - head.center.x).powi(2)
                    - (y - head.center.y).powi(2);
                if d2 <= 0.0 {
                    continue;
                }
                if let Lesion::Mesh(m) = self {
                    // Exact along z: the mesh's inside intervals cut by the sphere chord.
                    m.z_crossings(x, y, &mut zs);
                    let (z0, z1) = (head.center.z - d2.sqrt(), head.center.z + d2.sqrt());
                    let len: f64 = zs
                        .chunks_exact(2)
                        .map(|p| (p[1].min(z1) - p[0].max(z0)).max(0.0))
                        .sum();
                    volume_mm3 += len * h.x * h.y;
                } else {
                    let n_in = (0..N)
                        .filter(|&k| {
                            let p = Point3::new(x, y, lo.z + (k as f64 + 0.5) * h.z);
                            head.contains(&p) && self.contains(&p)
                        })
                        .count();
                    volume_mm3 += n_in as f64 * h.x * h.y * h.z;
                }
            }
        }
        volume_mm3 / 1000.0
    }

    /// Appends to `out` the lattice points `spacing_mm * (i, j, k)` (integer
    /// `i, j, k`, anchored at the world origin) that lie inside the lesion,
    /// in x-fastest-last order (i outermost, then j, then k). Deterministic.
    ///
    /// A non-finite or non-positive spacing adds nothing; the spacing is
    /// widened (doubled) until the bounding box holds at most
    /// [`MAX_GRID_NODES`] lattice nodes.
    pub fn grid_points(&self, spacing_mm: f64, out: &mut Vec<Point3<f64>>) {
        if !(spacing_mm.is_finite() && spacing_mm > 0.0) {
            return;
        }
        let (lo, hi) = self.bounds_mm();
        let mut h = spacing_mm;
        let range = |h: f64| -> [(i64, i64); 3] {
            let mut r = [(0i64, -1i64); 3];
            for a in 0..3 {
                r[a] = ((lo[a] / h).ceil() as i64, (hi[a] / h).floor() as i64);
            }
            r
        };
        let count = |r: &[(i64, i64); 3]| -> f64 {
            // In f64: far from the origin the bounds saturate i64 and
            // `b - a + 1` would overflow.
            r.iter()
                .map(|&(a, b)| (b as f64 - a as f64 + 1.0).max(0.0))
                .product()
        };
        let mut r = range(h);
        while count(&r) > MAX_GRID_NODES as f64 {
            h *= 2.0;
            r = range(h);
        }
        // No node when an axis holds no lattice plane: return before the
        // outer loops walk the other axes (astronomically long for a lesion
        // that is huge along them and thinner than `h` across).
        if r.iter().any(|&(a, b)| a > b) {
            return;
        }
        let mut zs = Vec::new();
        for i in r[0].0..=r[0].1 {
            let x = i as f64 * h;
            for j in r[1].0..=r[1].1 {
                let y = j as f64 * h;
                if let Lesion::Mesh(m) = self {
                    m.z_crossings(x, y, &mut zs);
                    if zs.is_empty() {
                        continue;
                    }
                    for k in r[2].0..=r[2].1 {
                        let z = k as f64 * h;
                        if zs.iter().filter(|&&c| c > z).count() % 2 == 1 {
                            out.push(Point3::new(x, y, z));
                        }
                    }
                    continue;
                }
                for k in r[2].0..=r[2].1 {
                    let p = Point3::new(x, y, k as f64 * h);
                    if self.contains(&p) {
                        out.push(p);
                    }
                }
            }
        }
    }

    /// `n` points drawn uniformly inside the lesion with a seeded ChaCha8
    /// generator (same seed, same points). Ellipsoids are sampled directly;
    /// meshes and Kerboul lesions by rejection in their bounding box, giving
    /// up after `1000 n + 10^5` draws (so a lesion with no volume yields
    /// fewer points, possibly none).
    #[must_use]
    pub fn sample_points(&self, n: usize, seed: u64) -> Vec<Point3<f64>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(n);
        if let Lesion::Ellipsoid(e) = self {
            while out.len() < n {
                let q = Vector3::new(
                    rng.random_range(-1.0..=1.0),
                    rng.random_range(-1.0..=1.0),
                    rng.random_range(-1.0..=1.0),
                );
                if q.norm_squared() <= 1.0 {
                    out.push(e.from_unit(&q));
                }
            }
            return out;
        }
        let (lo, hi) = self.bounds_mm();
        if (hi - lo).iter().any(|&e| !greater(e, 0.0)) {
            return out;
        }
        let max_draws = n.saturating_mul(1000).saturating_add(100_000);
        let mut draws = 0usize;
        while out.len() < n && draws < max_draws {
            draws += 1;
            let p = Point3::new(
                rng.random_range(lo.x..=hi.x),
                rng.random_range(lo.y..=hi.y),
                rng.random_range(lo.z..=hi.z),
            );
            if self.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    /// The ellipsoid with the same centroid and second moments as the lesion
    /// (for a solid ellipsoid the covariance is `R diag(a_i^2 / 5) R^T`, so
    /// `a_i = sqrt(5 lambda_i)`). Its volume generally differs from the
    /// lesion's (equal for an ellipsoid). Semi-axes are sorted decreasing
    /// and at least 1e-6 mm; the rotation is proper (det +1).
    #[must_use]
    pub fn equivalent_ellipsoid(&self) -> Ellipsoid {
        if let Lesion::Ellipsoid(e) = self {
            return *e;
        }
        let m = self.moments();
        let (vals, mut vecs) = sorted_eigen(&m.covariance);
        if vecs.determinant() < 0.0 {
            vecs.set_column(2, &(-vecs.column(2)));
        }
        let axes = vals.map(|l| (5.0 * l.max(0.0)).sqrt().max(1e-6));
        let rot = Rotation3::from_matrix_unchecked(vecs);
        Ellipsoid {
            center: m.centroid,
            semi_axes_mm: axes,
            rotation: rot,
        }
    }
}

/// Outer and inner radius of the Kerboul shell, mm.
fn shell(head: &Sphere, spec: &Kerboul) -> (f64, f64) {
    let r = head.radius_mm.max(0.0);
    let depth = if spec.depth_mm.is_finite() {
        spec.depth_mm.max(0.0)
    } else {
        0.0
    };
    (r, (r - depth).max(0.0))
}

/// The arcs (radians) split into angle rectangles on which both cosines keep
/// one sign; only same-sign pairs are directions (frame module docs).
fn kerboul_pieces(spec: &Kerboul) -> Vec<([f64; 2], [f64; 2])> {
    use std::f64::consts::{FRAC_PI_2, PI};
    let split = |arc: [f64; 2]| -> (Option<[f64; 2]>, Vec<[f64; 2]>) {
        let (a, b) = (arc[0].to_radians().max(-PI), arc[1].to_radians().min(PI));
        let cut = |lo: f64, hi: f64| -> Option<[f64; 2]> {
            let (x, y) = (a.max(lo), b.min(hi));
            (x < y).then_some([x, y])
        };
        let up = cut(-FRAC_PI_2, FRAC_PI_2);
        let down = [cut(FRAC_PI_2, PI), cut(-PI, -FRAC_PI_2)]
            .into_iter()
            .flatten()
            .collect();
        (up, down)
    };
    if !(spec.coronal_arc_deg.iter().all(|v| v.is_finite())
        && spec.sagittal_arc_deg.iter().all(|v| v.is_finite()))
    {
        return Vec::new();
    }
    let (cu, cd) = split(spec.coronal_arc_deg);
    let (su, sd) = split(spec.sagittal_arc_deg);
    let mut out = Vec::new();
    if let (Some(c), Some(s)) = (cu, su) {
        out.push((c, s));
    }
    for c in &cd {
        for s in &sd {
            out.push((*c, *s));
        }
    }
    out
}

/// Antiderivative of the solid-angle density in Kerboul angles:
/// `G = atan2(sin c sin s, sqrt(cos^2 s + sin^2 s cos^2 c))`, the gnomonic
/// `atan(u v / sqrt(1 + u^2 + v^2))` with `u = tan c`, `v = tan s`.
fn solid_angle_g(c: f64, s: f64) -> f64 {
    let (sc, cc) = c.sin_cos();
    let (ss, cs) = s.sin_cos();
    (sc * ss).atan2((cs * cs + ss * ss * cc * cc).sqrt())
}

/// Solid angle of one angle rectangle (steradians), exact.
fn solid_angle(c: [f64; 2], s: [f64; 2]) -> f64 {
    solid_angle_g(c[1], s[1]) - solid_angle_g(c[0], s[1]) - solid_angle_g(c[1], s[0])
        + solid_angle_g(c[0], s[0])
}

/// 16-point Gauss-Legendre nodes and weights on [-1, 1] (Newton on P_16).
fn gauss_legendre_16() -> ([f64; 16], [f64; 16]) {
    const N: usize = 16;
    let mut x = [0.0; N];
    let mut w = [0.0; N];
    for i in 0..N {
        let mut t = (std::f64::consts::PI * (i as f64 + 0.75) / (N as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, t);
            for k in 2..=N {
                let p2 = ((2 * k - 1) as f64 * t * p1 - (k - 1) as f64 * p0) / k as f64;
                p0 = p1;
                p1 = p2;
            }
            dp = N as f64 * (t * p1 - p0) / (t * t - 1.0);
            let dt = p1 / dp;
            t -= dt;
            if dt.abs() < 1e-16 {
                break;
            }
        }
        x[i] = t;
        w[i] = 2.0 / ((1.0 - t * t) * dp * dp);
    }
    (x, w)
}

/// Angular moments over one rectangle in (x, a, z) head coordinates:
/// `(int dOmega, int d dOmega, int d d^T dOmega)`.
type Angular = (f64, Vector3<f64>, Matrix3<f64>);

fn angular_moments_rect(
    c: [f64; 2],
    s: [f64; 2],
    gl: &([f64; 16], [f64; 16]),
    depth: u32,
) -> Angular {
    let singular = |t: f64| t.cos().abs() < 1e-12;
    let corner = [(0, 0), (0, 1), (1, 0), (1, 1)]
        .into_iter()
        .find(|&(i, j)| singular(c[i]) && singular(s[j]));
    if let (Some(_), true) = (corner, depth < 48) {
        let (cm, sm) = ((c[0] + c[1]) / 2.0, (s[0] + s[1]) / 2.0);
        let mut acc: Angular = (0.0, Vector3::zeros(), Matrix3::zeros());
        for cc in [[c[0], cm], [cm, c[1]]] {
            for ss in [[s[0], sm], [sm, s[1]]] {
                let m = angular_moments_rect(cc, ss, gl, depth + 1);
                acc.0 += m.0;
                acc.1 += m.1;
                acc.2 += m.2;
            }
        }
        return acc;
    }
    if corner.is_some() {
        return (0.0, Vector3::zeros(), Matrix3::zeros());
    }
    // Adaptive: accept the four children when they agree with the parent.
    let whole = gl_rect(c, s, gl);
    let (cm, sm) = ((c[0] + c[1]) / 2.0, (s[0] + s[1]) / 2.0);
    let quads = [
        ([c[0], cm], [s[0], sm]),
        ([cm, c[1]], [s[0], sm]),
        ([c[0], cm], [sm, s[1]]),
        ([cm, c[1]], [sm, s[1]]),
    ];
    let parts: Vec<Angular> = quads.iter().map(|&(a, b)| gl_rect(a, b, gl)).collect();
    let sum = parts.iter().fold(
        (0.0, Vector3::zeros(), Matrix3::zeros()),
        |acc: Angular, p| (acc.0 + p.0, acc.1 + p.1, acc.2 + p.2),
    );
    // Absolute tolerance scaled by the rectangle's angular area (the
    // integrands are bounded by 1), so round-off in tiny rectangles never
    // forces further splits.
    let tol = 1e-12 * ((c[1] - c[0]) * (s[1] - s[0])).abs();
    let err = (whole.0 - sum.0).abs() + (whole.1 - sum.1).norm() + (whole.2 - sum.2).norm();
    if err <= tol || depth >= 16 {
        return sum;
    }
    let mut acc: Angular = (0.0, Vector3::zeros(), Matrix3::zeros());
    for &(a, b) in &quads {
        let m = angular_moments_rect(a, b, gl, depth + 1);
        acc.0 += m.0;
        acc.1 += m.1;
        acc.2 += m.2;
    }
    acc
}

/// Tensor 16x16 Gauss-Legendre over one angle rectangle.
fn gl_rect(c: [f64; 2], s: [f64; 2], gl: &([f64; 16], [f64; 16])) -> Angular {
    let (x, w) = gl;
    let (hc, hs) = ((c[1] - c[0]) / 2.0, (s[1] - s[0]) / 2.0);
    let (mc, ms) = ((c[1] + c[0]) / 2.0, (s[1] + s[0]) / 2.0);
    let mut acc: Angular = (0.0, Vector3::zeros(), Matrix3::zeros());
    for i in 0..16 {
        let (sc, cc) = (mc + hc * x[i]).sin_cos();
        for j in 0..16 {
            let (ss, cs) = (ms + hs * x[j]).sin_cos();
            let n = (cs * cs + ss * ss * cc * cc).sqrt();
            if n == 0.0 {
                continue;
            }
            let dens = (cc * cs).abs() / (n * n * n) * w[i] * w[j] * hc * hs;
            let d = Vector3::new(sc * cs.abs(), ss * cc.abs(), cc * cs.abs()) / n;
            acc.0 += dens;
            acc.1 += d * dens;
            acc.2 += d * d.transpose() * dens;
        }
    }
    acc
}

fn kerboul_moments(head: &Sphere, frame: &HeadNeckFrame, spec: &Kerboul) -> Moments {
    let gl = gauss_legendre_16();
    let mut ang: Angular = (0.0, Vector3::zeros(), Matrix3::zeros());
    for (c, s) in kerboul_pieces(spec) {
        let m = angular_moments_rect(c, s, &gl, 0);
        ang.0 += m.0;
        ang.1 += m.1;
        ang.2 += m.2;
    }
    let (r, rho) = shell(head, spec);
    let v = ang.0 * (r.powi(3) - rho.powi(3)) / 3.0;
    if !greater(v, 0.0) {
        return Moments {
            volume_mm3: 0.0,
            centroid: head.center,
            covariance: Matrix3::zeros(),
        };
    }
    let m1 = ang.1 * (r.powi(4) - rho.powi(4)) / 4.0;
    let m2 = ang.2 * (r.powi(5) - rho.powi(5)) / 5.0;
    // Head (x, a, z) -> world.
    let basis = Matrix3::from_columns(&[
        frame.x_axis().into_inner(),
        frame.anterior().into_inner(),
        frame.z_axis().into_inner(),
    ]);
    let cen_local = m1 / v;
    let cov_local = m2 / v - cen_local * cen_local.transpose();
    Moments {
        volume_mm3: v,
        centroid: head.center + basis * cen_local,
        covariance: basis * cov_local * basis.transpose(),
    }
}

fn kerboul_bounds(
    head: &Sphere,
    frame: &HeadNeckFrame,
    spec: &Kerboul,
) -> (Point3<f64>, Point3<f64>) {
    const K: usize = 64;
    let (r, rho) = shell(head, spec);
    let mut pts: Vec<Point3<f64>> = Vec::new();
    let mut max_step: f64 = 0.0;
    let mut add = |p: Point3<f64>| pts.push(p);
    for (c, s) in kerboul_pieces(spec) {
        let (hc, hs) = ((c[1] - c[0]) / K as f64, (s[1] - s[0]) / K as f64);
        max_step = max_step.max(hc + hs);
        for i in 0..=K {
            for j in 0..=K {
                let d =
                    frame.direction_from_kerboul_rad(c[0] + i as f64 * hc, s[0] + j as f64 * hs);
                add(head.center + d.into_inner() * r);
                add(head.center + d.into_inner() * rho);
            }
        }
    }
    // Extreme points along +-world axes when those directions are in the arcs.
    let l = Lesion::Kerboul {
        head: *head,
        frame: *frame,
        spec: *spec,
    };
    for k in 0..3 {
        for sgn in [-1.0, 1.0] {
            let mut e = Vector3::zeros();
            e[k] = sgn;
            let p = head.center + e * (r * (1.0 - 1e-12));
            if l.contains(&p) {
                add(head.center + e * r);
            }
        }
    }
    if pts.is_empty() {
        return (head.center, head.center);
    }
    let mut lo = pts[0];
    let mut hi = pts[0];
    for p in &pts {
        lo = lo.inf(p);
        hi = hi.sup(p);
    }
    // Between samples the sphere bulges by at most r (1 - cos(step / 2)).
    let pad = r * (1.0 - (max_step / 2.0).cos()) + 1e-9;
    (lo - Vector3::repeat(pad), hi + Vector3::repeat(pad))
}

/// `a > b`, false when either is NaN (negated, it also catches NaN).
fn greater(a: f64, b: f64) -> bool {
    a > b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::Side;
    use approx::assert_relative_eq;

    fn frame() -> HeadNeckFrame {
        HeadNeckFrame::new(
            Point3::new(10.0, 20.0, 30.0),
            &Vector3::new(0.9, -0.2, 0.5),
            &Vector3::new(0.1, 0.05, 1.0),
            Side::Right,
        )
        .unwrap()
    }

    #[test]
    fn from_spec_needs_head_and_registration() {
        let k = Kerboul {
            coronal_arc_deg: [-30.0, 60.0],
            sagittal_arc_deg: [-20.0, 70.0],
            depth_mm: 10.0,
        };
        let head = Sphere::new(Point3::new(10.0, 20.0, 30.0), 23.0).unwrap();
        let e = Lesion::from_spec(&LesionSpec::Kerboul(k), None, None).unwrap_err();
        assert!(e.to_string().starts_with("lesion.kerboul"), "{e}");
        let l = Lesion::from_spec(&LesionSpec::Kerboul(k), None, Some((head, frame()))).unwrap();
        assert!(l.volume_ml() > 0.0);
        let bad = Kerboul {
            depth_mm: -1.0,
            ..k
        };
        let e =
            Lesion::from_spec(&LesionSpec::Kerboul(bad), None, Some((head, frame()))).unwrap_err();
        assert!(e.to_string().starts_with("lesion.kerboul.depth_mm"), "{e}");
        let v: Vec<_> = [
            [0.0, 0.0, 0.0],
            [10.0, 0.0, 0.0],
            [0.0, 10.0, 0.0],
            [0.0, 0.0, 10.0],
        ]
        .iter()
        .map(|p| Point3::new(p[0], p[1], p[2]))
        .collect();
        let tet = TriMesh::new(v, vec![[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]).unwrap();
        let own = LesionSpec::Mesh(tet.clone(), MeshFrame::Own);
        assert!(Lesion::from_spec(&own, None, None).is_err());
        let iso = Isometry3::translation(5.0, 0.0, 0.0);
        let l = Lesion::from_spec(&own, Some(&iso), None).unwrap();
        assert!(l.contains(&Point3::new(6.0, 1.0, 1.0)));
        assert!(!l.contains(&Point3::new(1.0, 1.0, 1.0)));
    }

    #[test]
    fn solid_angle_full_sphere_and_octant() {
        let all = Kerboul {
            coronal_arc_deg: [-180.0, 180.0],
            sagittal_arc_deg: [-180.0, 180.0],
            depth_mm: 1.0,
        };
        let omega: f64 = kerboul_pieces(&all)
            .iter()
            .map(|&(c, s)| solid_angle(c, s))
            .sum();
        assert_relative_eq!(omega, 4.0 * std::f64::consts::PI, epsilon = 1e-12);
        // One octant: coronal [0, 90] x sagittal [0, 90] = pi / 2.
        let o = solid_angle(
            [0.0, std::f64::consts::FRAC_PI_2],
            [0.0, std::f64::consts::FRAC_PI_2],
        );
        assert_relative_eq!(o, std::f64::consts::FRAC_PI_2, epsilon = 1e-12);
    }

    #[test]
    fn quadrature_matches_closed_form() {
        let gl = gauss_legendre_16();
        for spec in [
            ([-30.0, 60.0], [-20.0, 70.0]),
            ([-90.0, 90.0], [-90.0, 90.0]),
            ([-180.0, 180.0], [-180.0, 180.0]),
            ([10.0, 150.0], [-170.0, 100.0]),
        ] {
            let k = Kerboul {
                coronal_arc_deg: spec.0,
                sagittal_arc_deg: spec.1,
                depth_mm: 5.0,
            };
            let (mut q, mut exact) = (0.0, 0.0);
            for (c, s) in kerboul_pieces(&k) {
                q += angular_moments_rect(c, s, &gl, 0).0;
                exact += solid_angle(c, s);
            }
            assert_relative_eq!(q, exact, max_relative = 1e-9);
        }
    }

    #[test]
    fn kerboul_symmetric_centroid_on_pole() {
        let head = Sphere::new(Point3::new(10.0, 20.0, 30.0), 23.0).unwrap();
        let f = frame();
        let spec = Kerboul {
            coronal_arc_deg: [-40.0, 40.0],
            sagittal_arc_deg: [-40.0, 40.0],
            depth_mm: 10.0,
        };
        let l = Lesion::kerboul(head, f, spec).unwrap();
        let c = l.centroid_mm() - head.center;
        assert_relative_eq!(c.normalize(), f.z_axis().into_inner(), epsilon = 1e-9);
        // The whole sphere at full depth is the head.
        let all = Lesion::kerboul(
            head,
            f,
            Kerboul {
                coronal_arc_deg: [-180.0, 180.0],
                sagittal_arc_deg: [-180.0, 180.0],
                depth_mm: 30.0,
            },
        )
        .unwrap();
        assert_relative_eq!(all.volume_ml(), head.volume_ml(), max_relative = 1e-12);
        assert_relative_eq!(all.centroid_mm(), head.center, epsilon = 1e-9);
        let e = all.equivalent_ellipsoid();
        assert_relative_eq!(e.semi_axes_mm, Vector3::repeat(23.0), epsilon = 1e-7);
    }

    #[test]
    fn kerboul_rejects_bad_specs() {
        let head = Sphere::new(Point3::origin(), 23.0).unwrap();
        let mk = |c: [f64; 2], s: [f64; 2], d: f64| {
            Lesion::kerboul(
                head,
                frame(),
                Kerboul {
                    coronal_arc_deg: c,
                    sagittal_arc_deg: s,
                    depth_mm: d,
                },
            )
        };
        assert!(mk([10.0, 0.0], [0.0, 10.0], 5.0).is_err());
        assert!(mk([0.0, 10.0], [0.0, 10.0], 0.0).is_err());
        assert!(mk([0.0, 10.0], [0.0, 200.0], 5.0).is_err());
        assert!(matches!(
            mk([0.0, 30.0], [100.0, 120.0], 5.0),
            Err(Error::Degenerate { .. })
        ));
    }

    #[test]
    fn mesh_lesion_cube_moments_and_inside() {
        // Cube [0, 2]^3 built with shared-vertex diagonals (rays hit edges).
        let cube = TriMesh::cuboid(Point3::origin(), Point3::new(2.0, 2.0, 2.0)).unwrap();
        let m = LesionMesh::new(cube.clone()).unwrap();
        let l = Lesion::Mesh(m);
        assert_relative_eq!(l.volume_ml(), 0.008, epsilon = 1e-15);
        assert_relative_eq!(l.centroid_mm(), Point3::new(1.0, 1.0, 1.0), epsilon = 1e-12);
        // Through the diagonal of the top and bottom faces: exactly one hit each.
        assert!(l.contains(&Point3::new(1.0, 1.0, 1.0)));
        assert!(l.contains(&Point3::new(0.5, 0.5, 0.5)));
        assert!(!l.contains(&Point3::new(1.0, 1.0, 2.5)));
        let e = l.equivalent_ellipsoid();
        // Cube variance 4/12 per axis -> semi-axis sqrt(5/3).
        assert_relative_eq!(
            e.semi_axes_mm,
            Vector3::repeat((5.0f64 / 3.0).sqrt()),
            epsilon = 1e-9
        );
        let mut g = Vec::new();
        l.grid_points(0.5, &mut g);
        // Lattice 0, 0.5, .. 2 in each axis; the half-open rule keeps 4 per axis in z.
        assert!(g.len() >= 64 && g.len() <= 125, "{}", g.len());
        // Open mesh and inverted mesh are rejected.
        let open = TriMesh::new(cube.vertices.clone(), cube.triangles[..11].to_vec()).unwrap();
        assert!(LesionMesh::new(open).is_err());
        let mut inv = cube;
        inv.flip_orientation();
        assert!(matches!(LesionMesh::new(inv), Err(Error::Mesh { .. })));
    }

    #[test]
    fn ellipsoid_fraction_inside_and_straddling() {
        let head = Sphere::new(Point3::origin(), 23.0).unwrap();
        let e = Ellipsoid::sphere(Point3::new(0.0, 0.0, 10.0), 5.0).unwrap();
        let l = Lesion::Ellipsoid(e);
        assert_relative_eq!(
            l.head_fraction(&head),
            (5.0f64 / 23.0).powi(3),
            epsilon = 1e-12
        );
        // A sphere of radius 23 centred on the head surface: the lens is
        // 5/16 of a sphere's volume (two caps of height r/2).
        let s = Lesion::Ellipsoid(Ellipsoid::sphere(Point3::new(0.0, 0.0, 23.0), 23.0).unwrap());
        assert_relative_eq!(s.head_fraction(&head), 5.0 / 16.0, epsilon = 0.005);
    }
}
