//! Seeded synthetic hip cases with known truth ("phantoms").
//!
//! [`Phantom::generate`] draws a proximal femur (left or right) from the
//! ranges of domain.md §2 and §7, puts a lesion in the anterolateral,
//! weight-bearing part of its head (domain.md §3), places C-arm views around
//! it (domain.md §4) and traces the contract's annotations from the truth:
//!
//! * `head_outline_px`: points of the exact silhouette of the head sphere
//!   (its tangent cone from the source), only where that silhouette is the
//!   bone's outline (not over the neck);
//! * `neck_edges_px`, `shaft_edges_px`: the two silhouette edges, found on
//!   scan lines perpendicular to the projected axis by bisection on "does the
//!   ray through this pixel hit the bone" (sphere tracing the implicit bone,
//!   to 0.01 px), kept where the neck (shaft) forms the outline (the blend
//!   with neighbouring parts adds less than 0.3 mm there); `None` when a
//!   side has fewer than 3 such points (the neck in some lateral views);
//! * `lesion_outline_px`: the exact projected contour of the lesion ellipsoid;
//! * `entry_px`: the projection of the true entry point, where the neck axis
//!   extended laterally leaves the lateral cortex.
//!
//! Optional Gaussian pixel noise (seeded) is then added. Each view also gets a
//! simulated radiograph ([`Phantom::radiograph`]): the length of bone along
//! each ray plus extra attenuation in a cortical shell, as 8-bit grayscale.
//!
//! Entry points: [`Phantom::generate`], [`PhantomOptions`], [`Truth`],
//! [`write_phantom_dir`].
//!
//! Everything is in patient LPS world mm (x left, y posterior, z superior).
//! Same seed and options, same bytes (whatever the number of threads).

mod femur;
mod mesh;
mod radiograph;
mod trace;
mod write;

pub use femur::FemurParams;
pub use radiograph::Radiograph;
pub use write::{case_file, write_phantom_dir};

use std::sync::Arc;

use nalgebra::{Isometry3, Matrix3, Point2, Point3, Rotation3, Vector2, Vector3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::Serialize;

use crate::case::{Case, MeshFrame, Side};
use crate::error::{ensure_finite, Error, Result};
use crate::geometry::{mesh_implicit, BoneSurface, Ellipsoid, Sphere, TriMesh};
use crate::imaging::{Annotations, CArm, Projection, View};

use femur::Femur;

/// Options of [`Phantom::generate`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PhantomOptions {
    /// Which femur; `None` draws it from the seed. Default `None`.
    pub side: Option<Side>,
    /// Standard deviation of the Gaussian noise added to every annotated
    /// coordinate, pixels (>= 0). Default 0.
    pub noise_px: f64,
    /// Put the bone mesh in the case (`bone_mesh`, world frame). Default true.
    pub with_mesh: bool,
    /// Grid step of the bone mesh, mm (0.2-2). Default 0.8.
    pub mesh_step_mm: f64,
    /// Image width and height, pixels (64-2048). Default 1024 (DICOM
    /// Supplement 20, domain.md §4).
    pub image_size_px: u32,
    /// Add two oblique views (primary +30 and -30 degrees). Default false.
    pub oblique_views: bool,
    /// [`Phantom::around_mesh`] only: give the case's bone mesh in its own
    /// frame (`bone_mesh.frame = "own"`), moved by a seeded random rigid
    /// motion of up to 20 mm and 15 degrees about the head centre; the true
    /// `world_from_mesh` goes into [`Truth::world_from_mesh`]. Default false.
    pub own_frame: bool,
    /// [`Phantom::around_mesh`] only: the source mesh's file name, recorded
    /// as [`Truth::source_mesh`]. Default `None`.
    pub source_name: Option<String>,
}

impl Default for PhantomOptions {
    fn default() -> Self {
        Self {
            side: None,
            noise_px: 0.0,
            with_mesh: true,
            mesh_step_mm: 0.8,
            image_size_px: 1024,
            oblique_views: false,
            own_frame: false,
            source_name: None,
        }
    }
}

impl PhantomOptions {
    fn validate(&self) -> Result<()> {
        if !(self.noise_px.is_finite() && self.noise_px >= 0.0) {
            return Err(Error::invalid("noise_px", "must be a finite number >= 0"));
        }
        if !(self.mesh_step_mm.is_finite() && (0.2..=2.0).contains(&self.mesh_step_mm)) {
            return Err(Error::invalid("mesh_step_mm", "must be in [0.2, 2] mm"));
        }
        if !(64..=2048).contains(&self.image_size_px) {
            return Err(Error::invalid("image_size_px", "must be in [64, 2048]"));
        }
        Ok(())
    }
}

/// A sphere in `truth.json`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TruthSphere {
    /// Centre, world mm.
    pub center_mm: [f64; 3],
    /// Radius, mm.
    pub radius_mm: f64,
}

/// An axis (line) in `truth.json`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TruthAxis {
    /// A point on the axis, world mm.
    pub point_mm: [f64; 3],
    /// Unit direction (neck: towards the head; shaft: superior).
    pub direction: [f64; 3],
}

/// The lesion in `truth.json`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TruthLesion {
    /// Ellipsoid centre, world mm.
    pub center_mm: [f64; 3],
    /// Semi-axes along the local x (radial), y, z axes, mm.
    pub semi_axes_mm: [f64; 3],
    /// `world_from_local` rotation, row-major.
    pub rotation: [[f64; 3]; 3],
    /// Volume, mL.
    pub volume_ml: f64,
    /// Fraction of the head sphere's volume.
    pub head_fraction: f64,
    /// Smallest distance from the lesion to the head sphere (the articular
    /// surface), mm.
    pub depth_mm: f64,
}

impl TruthLesion {
    /// The lesion's record for a head of centre `head_center` (world mm) and
    /// radius `head_radius_mm`.
    fn of(lesion: &Ellipsoid, head_center: &Point3<f64>, head_radius_mm: f64) -> Self {
        let r = head_radius_mm;
        let head_vol_ml = 4.0 / 3.0 * std::f64::consts::PI * r.powi(3) / 1000.0;
        let rot = lesion.rotation.matrix();
        TruthLesion {
            center_mm: arr(&lesion.center.coords),
            semi_axes_mm: arr(&lesion.semi_axes_mm),
            rotation: std::array::from_fn(|i| std::array::from_fn(|j| rot[(i, j)])),
            volume_ml: lesion.volume_ml(),
            head_fraction: lesion.volume_ml() / head_vol_ml,
            depth_mm: r - ellipsoid_max_distance(lesion, head_center),
        }
    }
}

/// One view's C-arm geometry in `truth.json` (contract form 3 values).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TruthView {
    /// View name, e.g. `"AP"`.
    pub name: String,
    /// Source to detector distance, mm.
    pub sid_mm: f64,
    /// Source to isocentre distance, mm.
    pub sod_mm: f64,
    /// Positioner primary angle, degrees (+ LAO).
    pub primary_angle_deg: f64,
    /// Positioner secondary angle, degrees (+ CRA).
    pub secondary_angle_deg: f64,
    /// Imager pixel spacing `[row, column]`, mm.
    pub pixel_spacing_mm: [f64; 2],
    /// Isocentre, world mm.
    pub isocenter_mm: [f64; 3],
    /// Image width and height, pixels.
    pub image_size_px: [u32; 2],
    /// The simulated radiograph's file name.
    pub radiograph: String,
}

/// The known truth of a phantom (written as `truth.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Truth {
    /// `"avnplan.truth/1"`.
    pub schema: String,
    /// The seed.
    pub seed: u64,
    /// Which femur.
    pub side: Side,
    /// Annotation noise, pixels (standard deviation per coordinate).
    pub noise_px: f64,
    /// The head sphere.
    pub head: TruthSphere,
    /// The lesion ellipsoid.
    pub lesion: TruthLesion,
    /// Neck axis (through the head centre, towards the head).
    pub neck_axis: TruthAxis,
    /// Shaft axis (superior direction).
    pub shaft_axis: TruthAxis,
    /// Height (world z) of the lesser trochanter's centre, mm.
    pub lt_level_z_mm: f64,
    /// The lesser trochanter's centre on the shaft axis, world mm.
    pub lt_point_mm: [f64; 3],
    /// Height (world z) of the lesser trochanter's lower edge, mm (the hard
    /// entry limit of domain.md §7).
    pub lt_lower_edge_z_mm: f64,
    /// True entry point: the neck axis leaves the lateral cortex here, world mm.
    pub entry_mm: [f64; 3],
    /// Every drawn femur parameter (`None` for a phantom built around a
    /// given mesh, [`Phantom::around_mesh`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<FemurParams>,
    /// Bone mesh file name (outer surface, world mm).
    pub bone_mesh: String,
    /// [`Phantom::around_mesh`]: the file name of the mesh the phantom was
    /// built around (when given in [`PhantomOptions::source_name`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_mesh: Option<String>,
    /// [`Phantom::around_mesh`] with [`PhantomOptions::own_frame`]: the file
    /// name of the case's bone mesh, in its own frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub own_frame_mesh: Option<String>,
    /// [`Phantom::around_mesh`] with [`PhantomOptions::own_frame`]: the true
    /// rigid map from the case mesh's own frame to the world, 4x4 row-major
    /// (mesh mm -> world mm).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub world_from_mesh: Option<[[f64; 4]; 4]>,
    /// [`Phantom::around_mesh`]: the rigid map that put the given mesh into
    /// the world (standard anatomical pose, patient LPS), 4x4 row-major.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub world_from_source: Option<[[f64; 4]; 4]>,
    /// Grid step of the bone mesh, mm.
    pub mesh_step_mm: f64,
    /// The views.
    pub views: Vec<TruthView>,
}

/// The true bone of a phantom.
#[derive(Debug, Clone)]
enum Body {
    /// A synthetic implicit femur.
    Synthetic(Box<Femur>),
    /// A given mesh (world frame) with its head sphere.
    Mesh(Arc<MeshBody>),
}

/// A given bone mesh as the phantom's truth.
#[derive(Debug)]
struct MeshBody {
    surface: BoneSurface,
    head: Sphere,
    shell_mm: f64,
}

/// A synthetic hip case with its truth.
#[derive(Debug, Clone)]
pub struct Phantom {
    body: Body,
    /// The case the planner sees.
    pub case: Case,
    /// The truth the planner never sees.
    pub truth: Truth,
    /// The bone's outer surface, world mm (closed, outward).
    pub mesh: TriMesh,
    /// The lesion, world mm.
    pub lesion: Ellipsoid,
    /// The C-arm of each view (same order as `case.views`).
    pub carms: Vec<CArm>,
    /// [`Phantom::around_mesh`] with [`PhantomOptions::own_frame`]: the true
    /// pose of the case's bone mesh (own frame mm -> world mm).
    pub world_from_mesh: Option<Isometry3<f64>>,
}

/// Unit vector as an array.
fn arr(v: &Vector3<f64>) -> [f64; 3] {
    [v.x, v.y, v.z]
}

impl Phantom {
    /// Draws a phantom from `seed`.
    ///
    /// # Units
    /// World mm (patient LPS), pixels, as in the contract.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming a bad option; errors of the mesher or of
    /// the projections (not expected for valid options).
    ///
    /// # Example
    /// ```
    /// use avnplan::phantom::{Phantom, PhantomOptions};
    /// let mut opts = PhantomOptions::default();
    /// opts.mesh_step_mm = 1.5; // coarse and quick
    /// opts.image_size_px = 256;
    /// let ph = Phantom::generate(7, &opts).unwrap();
    /// assert!(ph.mesh.signed_volume_mm3() > 0.0);
    /// let r = ph.truth.head.radius_mm;
    /// assert!((20.0..=27.0).contains(&r));
    /// approx::assert_relative_eq!(ph.bone_sdf(&nalgebra::Point3::from(ph.truth.head.center_mm)), -r, epsilon = 1e-9);
    /// ```
    pub fn generate(seed: u64, opts: &PhantomOptions) -> Result<Phantom> {
        opts.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let side = match opts.side {
            Some(s) => s,
            None if rng.random::<bool>() => Side::Left,
            None => Side::Right,
        };
        let femur = Femur::new(FemurParams::draw(&mut rng, side));
        let lesion = draw_lesion(side, &femur.head(), &mut rng)?;
        let entry = find_entry(&femur)?;
        let (lo, hi) = femur.bounds(2.0 * opts.mesh_step_mm);
        let mesh = mesh_implicit(|p| femur.sdf(p), lo, hi, opts.mesh_step_mm)?;

        // Views (domain.md §4).
        let h = femur.head_center;
        let (angles, carms) = place_carms(&mut rng, side, &h, &entry, opts);
        let size = opts.image_size_px;

        let mut noise_rng = ChaCha8Rng::seed_from_u64(seed);
        noise_rng.set_stream(1);
        let noise = Normal::new(0.0, opts.noise_px.max(f64::MIN_POSITIVE))
            .map_err(|e| Error::invalid("noise_px", e.to_string()))?;
        let mut views = Vec::new();
        for ((name, _, _), carm) in angles.iter().zip(&carms) {
            let proj = carm.projection()?;
            let mut ann = trace_annotations(&femur, &lesion, &entry, &proj, [size, size])
                .map_err(|e| e.in_field(&format!("views[{name}]")))?;
            if opts.noise_px > 0.0 {
                add_noise(&mut ann, &noise, &mut noise_rng);
            }
            let mut view = View::new(*name, [size, size], proj);
            view.annotations = ann;
            views.push(view);
        }

        let mut case = Case::new(side, views);
        case.cortical_thickness_mm = femur.params.cortical_thickness_mm;
        if opts.with_mesh {
            case.bone_mesh = Some((mesh.clone(), MeshFrame::World));
        }
        let r = femur.params.head_radius_mm;
        let lt_point = Point3::new(femur.shaft_point.x, femur.shaft_point.y, femur.lt_z);
        let truth = Truth {
            schema: "avnplan.truth/1".into(),
            seed,
            side,
            noise_px: opts.noise_px,
            head: TruthSphere {
                center_mm: arr(&h.coords),
                radius_mm: r,
            },
            lesion: TruthLesion::of(&lesion, &h, r),
            neck_axis: TruthAxis {
                point_mm: arr(&h.coords),
                direction: arr(&femur.neck_dir),
            },
            shaft_axis: TruthAxis {
                point_mm: arr(&femur.shaft_point.coords),
                direction: arr(&femur.shaft_dir),
            },
            lt_level_z_mm: femur.lt_z,
            lt_point_mm: arr(&lt_point.coords),
            lt_lower_edge_z_mm: femur.lt_z - femur.lt.semi.z,
            entry_mm: arr(&entry.coords),
            params: Some(femur.params),
            bone_mesh: "femur.stl".into(),
            source_mesh: None,
            own_frame_mesh: None,
            world_from_mesh: None,
            world_from_source: None,
            mesh_step_mm: opts.mesh_step_mm,
            views: truth_views(&angles, &carms),
        };
        Ok(Phantom {
            body: Body::Synthetic(Box::new(femur)),
            case,
            truth,
            mesh,
            lesion,
            carms,
            world_from_mesh: None,
        })
    }

    /// The bone's implicit function at `p` (world mm): negative inside,
    /// positive outside, zero on the outer surface; a lower bound on the
    /// distance to the surface (exact on the head sphere and the cylinders).
    #[must_use]
    ///
    /// For a phantom built around a mesh ([`Phantom::around_mesh`]) it is the
    /// mesh's exact signed distance.
    pub fn bone_sdf(&self, p: &Point3<f64>) -> f64 {
        match &self.body {
            Body::Synthetic(f) => f.sdf(p),
            Body::Mesh(m) => m.surface.signed_distance_mm(p),
        }
    }

    /// Whether the ray from the source through pixel `uv` of view `view`
    /// touches the bone (to within 1e-5 mm).
    ///
    /// # Errors
    /// [`Error::Invalid`] if `view` is out of range.
    pub fn pixel_hits_bone(&self, view: usize, uv: &Point2<f64>) -> Result<bool> {
        let v = self
            .case
            .views
            .get(view)
            .ok_or_else(|| Error::invalid("view", "index out of range"))?;
        match &self.body {
            Body::Synthetic(f) => {
                let (lo, hi) = f.bounds(1.0);
                Ok(trace::pixel_hits(
                    &|p: &Point3<f64>| f.sdf(p),
                    &v.projection,
                    uv,
                    &lo,
                    &hi,
                ))
            }
            Body::Mesh(m) => Ok(mesh::ray_hits(&m.surface, &v.projection, uv)),
        }
    }

    /// The head sphere (truth).
    #[must_use]
    pub fn head(&self) -> crate::geometry::Sphere {
        match &self.body {
            Body::Synthetic(f) => f.head(),
            Body::Mesh(m) => m.head,
        }
    }

    /// The true entry point on the lateral cortex, world mm.
    #[must_use]
    pub fn entry_mm(&self) -> Point3<f64> {
        Point3::from(self.truth.entry_mm)
    }
}

/// The truth file's record of each view (geometry and radiograph name).
fn truth_views(angles: &[ViewAngles], carms: &[CArm]) -> Vec<TruthView> {
    angles
        .iter()
        .zip(carms)
        .map(|(&(name, a, b), c)| TruthView {
            name: name.into(),
            sid_mm: c.sid_mm,
            sod_mm: c.sod_mm,
            primary_angle_deg: a,
            secondary_angle_deg: b,
            pixel_spacing_mm: c.pixel_spacing_mm,
            isocenter_mm: arr(&c.isocenter_mm.coords),
            image_size_px: c.image_size_px,
            radiograph: format!("{name}.png"),
        })
        .collect()
}

/// One view's name and positioner angles (primary, secondary), degrees.
type ViewAngles = (&'static str, f64, f64);

/// The C-arms of a phantom (domain.md §4): SID ~1000 mm, SOD 600-700 mm,
/// isocentre at the middle of the neck axis between head centre and entry;
/// AP and a cross-table-like lateral, plus two obliques when asked.
fn place_carms(
    rng: &mut ChaCha8Rng,
    side: Side,
    h: &Point3<f64>,
    entry: &Point3<f64>,
    opts: &PhantomOptions,
) -> (Vec<ViewAngles>, Vec<CArm>) {
    let iso = h + (entry - h) * 0.5;
    let sid = 980.0 + 40.0 * rng.random::<f64>();
    let spacing = (0.28 + 0.06 * rng.random::<f64>()) * 1024.0 / f64::from(opts.image_size_px);
    let m = match side {
        Side::Right => 1.0,
        Side::Left => -1.0,
    };
    // Cross-table-like lateral: horizontal beam perpendicular to a
    // nominal neck axis (NSA 125 deg, domain.md §7), detector lateral
    // and cranial: primary -+90, secondary 180 - 125 = 55 deg.
    let mut angles: Vec<ViewAngles> = vec![("AP", 0.0, 0.0), ("LAT", -m * 90.0, 55.0)];
    if opts.oblique_views {
        angles.push(("OBL+30", 30.0, 0.0));
        angles.push(("OBL-30", -30.0, 0.0));
    }
    let size = opts.image_size_px;
    let sods: Vec<f64> = angles
        .iter()
        .map(|_| 600.0 + 100.0 * rng.random::<f64>())
        .collect();
    let carms = angles
        .iter()
        .zip(sods)
        .map(|(&(_, a, b), sod)| CArm {
            sid_mm: sid,
            sod_mm: sod,
            primary_angle_rad: a.to_radians(),
            secondary_angle_rad: b.to_radians(),
            pixel_spacing_mm: [spacing, spacing],
            isocenter_mm: iso,
            principal_point_px: None,
            image_size_px: [size, size],
        })
        .collect();
    (angles, carms)
}

/// Largest distance from `c` to a point of the ellipsoid, mm (dense sampling
/// of the surface, 4000 points, then a local refinement).
fn ellipsoid_max_distance(e: &Ellipsoid, c: &Point3<f64>) -> f64 {
    let n = 4000;
    let golden = std::f64::consts::PI * (3.0 - 5f64.sqrt());
    let dir = |z: f64, phi: f64| {
        let s = (1.0 - z * z).max(0.0).sqrt();
        Vector3::new(s * phi.cos(), s * phi.sin(), z)
    };
    let mut best = (0.0, 0.0, 0.0);
    for i in 0..n {
        let z = 1.0 - 2.0 * (i as f64 + 0.5) / n as f64;
        let phi = golden * i as f64;
        let d = (e.from_unit(&dir(z, phi)) - c).norm();
        if d > best.0 {
            best = (d, z, phi);
        }
    }
    // Local refinement by pattern search on (z, phi).
    let (mut d, mut z, mut phi) = best;
    let mut h = 0.05;
    while h > 1e-7 {
        let mut improved = false;
        for (dz, dp) in [(h, 0.0), (-h, 0.0), (0.0, h), (0.0, -h)] {
            let (z2, p2) = ((z + dz).clamp(-1.0, 1.0), phi + dp);
            let d2 = (e.from_unit(&dir(z2, p2)) - c).norm();
            if d2 > d {
                (d, z, phi) = (d2, z2, p2);
                improved = true;
            }
        }
        if !improved {
            h *= 0.5;
        }
    }
    d
}

/// Draws the lesion: an ellipsoid in the anterolateral, superior
/// (weight-bearing) head (domain.md §3), 5-30 % of the head volume, its
/// outermost point 1-4 mm below the articular surface.
fn draw_lesion(side: Side, head: &Sphere, rng: &mut ChaCha8Rng) -> Result<Ellipsoid> {
    let m = match side {
        Side::Right => 1.0,
        Side::Left => -1.0,
    };
    let r = head.radius_mm;
    let h = head.center;
    let head_vol = 4.0 / 3.0 * std::f64::consts::PI * r.powi(3);
    let anterior = Vector3::new(0.0, -1.0, 0.0);
    let lateral = Vector3::new(-m, 0.0, 0.0);
    for _ in 0..64 {
        let jitter = Vector3::new(
            rng.random::<f64>() - 0.5,
            rng.random::<f64>() - 0.5,
            rng.random::<f64>() - 0.5,
        ) * 0.3;
        let dl = (Vector3::z() + anterior * 0.4 + lateral * 0.25 + jitter).normalize();
        let fraction = 0.05 + 0.25 * rng.random::<f64>();
        let ratio = 0.6 + 0.35 * rng.random::<f64>(); // radial / tangential
        let elong = 0.8 + 0.4 * rng.random::<f64>();
        let depth = 1.0 + 3.0 * rng.random::<f64>();
        let spin = std::f64::consts::TAU * rng.random::<f64>();
        // 4/3 pi a b c = fraction * head_vol with a = ratio b, c = elong b.
        let b = (fraction * head_vol / (4.0 / 3.0 * std::f64::consts::PI * ratio * elong)).cbrt();
        let semi = Vector3::new(ratio * b, b, elong * b);
        let t1 = (anterior - dl * dl.dot(&anterior)).normalize();
        let t2 = dl.cross(&t1);
        let (s, c) = spin.sin_cos();
        let (u1, u2) = (t1 * c + t2 * s, -t1 * s + t2 * c);
        let rot = Rotation3::from_matrix_unchecked(Matrix3::from_columns(&[dl, u1, u2]));
        let limit = r - depth;
        // Move the centre inwards from the surface until it fits.
        let place = |c0: f64| Ellipsoid::new(h + dl * c0, semi, rot);
        let mut hi_c = (limit - semi.x).max(0.0);
        let e = place(hi_c)?;
        if ellipsoid_max_distance(&e, &h) <= limit {
            return Ok(e);
        }
        let e0 = place(0.0)?;
        if ellipsoid_max_distance(&e0, &h) > limit {
            continue; // too big for this head at this depth: draw again
        }
        let mut lo_c = 0.0;
        for _ in 0..50 {
            let mid = 0.5 * (lo_c + hi_c);
            if ellipsoid_max_distance(&place(mid)?, &h) <= limit {
                lo_c = mid;
            } else {
                hi_c = mid;
            }
        }
        return place(lo_c);
    }
    Err(Error::degenerate(
        "lesion",
        "no lesion fits in the head after 64 draws",
    ))
}

/// Where the neck axis, extended laterally from the head centre, leaves the
/// bone (the lateral cortex), world mm.
fn find_entry(f: &Femur) -> Result<Point3<f64>> {
    let h = f.head_center;
    let back = -f.neck_dir.into_inner();
    let step = 0.25;
    let mut t = 0.0;
    while t < 400.0 {
        let p = h + back * (t + step);
        if f.sdf(&p) > 0.0 {
            let (mut a, mut b) = (t, t + step);
            for _ in 0..60 {
                let m = 0.5 * (a + b);
                if f.sdf(&(h + back * m)) > 0.0 {
                    b = m;
                } else {
                    a = m;
                }
            }
            return Ok(h + back * (0.5 * (a + b)));
        }
        t += step;
    }
    Err(Error::degenerate(
        "entry",
        "the neck axis never leaves the bone",
    ))
}

/// Whether a pixel lies inside the image (pixel centres at integers).
fn in_image(p: &Point2<f64>, size: [u32; 2]) -> bool {
    p.x >= -0.5 && p.y >= -0.5 && p.x <= f64::from(size[0]) - 0.5 && p.y <= f64::from(size[1]) - 0.5
}

/// Traces the contract annotations of one view from the truth (no noise).
fn trace_annotations(
    f: &Femur,
    lesion: &Ellipsoid,
    entry: &Point3<f64>,
    proj: &Projection,
    size: [u32; 2],
) -> Result<Annotations> {
    let sdf = |p: &Point3<f64>| f.sdf(p);
    let (lo, hi) = f.bounds(1.0);
    let src = proj.source_mm();
    let mut ann = Annotations::default();

    // Head: the tangent circle of the cone from the source.
    let h = f.head_center;
    let r = f.params.head_radius_mm;
    let dist = (h - src).norm();
    let axis = (h - src) / dist;
    let cc = h - axis * (r * r / dist);
    let rho = r * (1.0 - r * r / (dist * dist)).sqrt();
    let e1 = axis
        .cross(&Vector3::x())
        .try_normalize(1e-9)
        .unwrap_or_else(|| axis.cross(&Vector3::y()).normalize());
    let e2 = axis.cross(&e1);
    let hc_px = proj.project(&h)?;
    for k in 0..120 {
        let th = std::f64::consts::TAU * k as f64 / 120.0;
        let x = cc + (e1 * th.cos() + e2 * th.sin()) * rho;
        // Only where the bone's surface is the sphere itself ...
        if f.sdf(&x) != f.head_sdf(&x) {
            continue;
        }
        let Some(uv) = proj.try_project(&x) else {
            continue;
        };
        let out: Vector2<f64> = (uv - hc_px).normalize();
        // ... and nothing of the bone lies just outside it in the image.
        if trace::pixel_hits(&sdf, proj, &(uv + out * 0.5), &lo, &hi) || !in_image(&uv, size) {
            continue;
        }
        ann.head_outline_px.push(uv);
    }
    if ann.head_outline_px.len() < 20 {
        return Err(Error::too_few(
            "head_outline_px",
            20,
            ann.head_outline_px.len(),
        ));
    }

    // Neck and shaft edges on scan lines across the projected axis.
    let n = f.neck_dir.into_inner();
    let neck_len = (f.neck_base - h).norm();
    let neck_points: Vec<(Point3<f64>, Point3<f64>)> = (0..30)
        .map(|i| {
            let t = -(0.75 * r + (neck_len - 0.75 * r) * i as f64 / 29.0);
            (h + n * t, h + n * (t - 1.0))
        })
        .collect();
    ann.neck_edges_px = trace_edges(f, proj, size, &neck_points, &|p| f.neck_sdf(p))?;
    let sp = f.shaft_point;
    let shaft_points: Vec<(Point3<f64>, Point3<f64>)> = (0..30)
        .map(|i| {
            let z = f.lt_z - 15.0 - 55.0 * i as f64 / 29.0;
            (Point3::new(sp.x, sp.y, z), Point3::new(sp.x, sp.y, z - 1.0))
        })
        .collect();
    ann.shaft_edges_px = trace_edges(f, proj, size, &shaft_points, &|p| f.shaft_sdf(p))?;

    ann.lesion_outline_px = lesion_contour(lesion, proj)?;
    let e = proj.project(entry)?;
    ann.entry_px = in_image(&e, size).then_some(e);
    Ok(ann)
}

/// The exact projected contour of the lesion ellipsoid, 64 points.
fn lesion_contour(lesion: &Ellipsoid, proj: &Projection) -> Result<Vec<Point2<f64>>> {
    let src = proj.source_mm();
    let s_unit = lesion.to_unit(&src);
    let s2 = s_unit.norm_squared();
    if s2 <= 1.0 {
        return Err(Error::degenerate(
            "lesion",
            "the X-ray source is inside the lesion",
        ));
    }
    let c0 = s_unit / s2;
    let mut out = Vec::with_capacity(64);
    let rad = (1.0 - 1.0 / s2).sqrt();
    let a = s_unit / s2.sqrt();
    let b1 = a
        .cross(&Vector3::x())
        .try_normalize(1e-9)
        .unwrap_or_else(|| a.cross(&Vector3::y()).normalize());
    let b2 = a.cross(&b1);
    for k in 0..64 {
        let th = std::f64::consts::TAU * k as f64 / 64.0;
        let q = c0 + (b1 * th.cos() + b2 * th.sin()) * rad;
        let uv = proj.project(&lesion.from_unit(&q))?;
        out.push(uv);
    }
    Ok(out)
}

/// Largest amount of blending (mm) between the neck (shaft) primitive and
/// the bone at an edge's touching point: the edges follow the neck's (shaft's)
/// own surface to within this.
const EDGE_BLEND_TOL_MM: f64 = 0.3;

/// Silhouette edges across a projected axis given as (point, next point
/// distally) pairs; keeps an edge point only where `part` alone forms the
/// bone's surface at the touching point (within [`EDGE_BLEND_TOL_MM`]). `None` if a side has < 3 points.
fn trace_edges(
    f: &Femur,
    proj: &Projection,
    size: [u32; 2],
    axis: &[(Point3<f64>, Point3<f64>)],
    part: &dyn Fn(&Point3<f64>) -> f64,
) -> Result<Option<[Vec<Point2<f64>>; 2]>> {
    let sdf = |p: &Point3<f64>| f.sdf(p);
    let (lo, hi) = f.bounds(1.0);
    let mut sides: [Vec<Point2<f64>>; 2] = [Vec::new(), Vec::new()];
    for (a, b) in axis {
        let (Some(pa), Some(pb)) = (proj.try_project(a), proj.try_project(b)) else {
            continue;
        };
        let Some(d) = (pb - pa).try_normalize(1e-12) else {
            continue;
        };
        let perp = Vector2::new(-d.y, d.x);
        for (s, dir) in [perp, -perp].iter().enumerate() {
            let Some((edge, inside)) =
                trace::silhouette_along(&sdf, proj, &pa, dir, 3.0, 400.0, 0.01, (&lo, &hi))
            else {
                continue;
            };
            let ray = proj.back_project(&inside);
            let Some(t) = trace::first_hit(&sdf, &ray, &lo, &hi) else {
                continue;
            };
            let x = ray.at(t);
            if part(&x) - f.sdf(&x) < EDGE_BLEND_TOL_MM && in_image(&edge, size) {
                sides[s].push(edge);
            }
        }
    }
    if sides.iter().any(|s| s.len() < 3) {
        return Ok(None);
    }
    for s in &sides {
        for p in s {
            ensure_finite("edges_px", p.coords.as_slice())?;
        }
    }
    Ok(Some(sides))
}

/// Adds Gaussian noise to every annotated coordinate.
fn add_noise(ann: &mut Annotations, noise: &Normal<f64>, rng: &mut ChaCha8Rng) {
    let mut jitter = |p: &mut Point2<f64>| {
        p.x += noise.sample(rng);
        p.y += noise.sample(rng);
    };
    ann.head_outline_px.iter_mut().for_each(&mut jitter);
    for edges in [&mut ann.neck_edges_px, &mut ann.shaft_edges_px]
        .into_iter()
        .flatten()
    {
        edges.iter_mut().flatten().for_each(&mut jitter);
    }
    ann.lesion_outline_px.iter_mut().for_each(&mut jitter);
    if let Some(e) = ann.entry_px.as_mut() {
        jitter(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lesions_and_entries_over_many_seeds() {
        for seed in 0..60u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let side = if seed % 2 == 0 {
                Side::Left
            } else {
                Side::Right
            };
            let f = Femur::new(FemurParams::draw(&mut rng, side));
            let r = f.params.head_radius_mm;
            let h = f.head_center;
            let e = draw_lesion(side, &f.head(), &mut rng).unwrap();
            let frac = e.volume_ml() * 1000.0 / (4.0 / 3.0 * std::f64::consts::PI * r.powi(3));
            assert!(
                (0.05..=0.30).contains(&frac),
                "seed {seed}: fraction {frac}"
            );
            let depth = r - ellipsoid_max_distance(&e, &h);
            assert!(
                (1.0 - 1e-6..=r).contains(&depth),
                "seed {seed}: depth {depth}"
            );
            // Superior, in the weight-bearing dome.
            assert!(e.center.z > h.z, "seed {seed}");
            let entry = find_entry(&f).unwrap();
            assert!(f.sdf(&entry).abs() < 1e-9);
            // Lateral to the shaft axis and above the lesser trochanter's
            // lower edge (domain.md §7, hard entry rule).
            let lateral = if side == Side::Right { -1.0 } else { 1.0 };
            assert!((entry.x - f.shaft_point.x) * lateral > 0.0, "seed {seed}");
            assert!(
                entry.z > f.lt_z - f.lt.semi.z,
                "seed {seed}: {} vs {}",
                entry.z,
                f.lt_z
            );
        }
    }

    #[test]
    fn ellipsoid_max_distance_known_answer() {
        let e = Ellipsoid::new(
            Point3::new(1.0, 2.0, 3.0),
            Vector3::new(2.0, 5.0, 3.0),
            Rotation3::from_euler_angles(0.3, -0.2, 1.1),
        )
        .unwrap();
        // From the centre: the largest semi-axis.
        approx::assert_relative_eq!(ellipsoid_max_distance(&e, &e.center), 5.0, epsilon = 1e-6);
        let s = Ellipsoid::sphere(Point3::origin(), 2.0).unwrap();
        approx::assert_relative_eq!(
            ellipsoid_max_distance(&s, &Point3::new(3.0, 0.0, 0.0)),
            5.0,
            epsilon = 1e-6
        );
    }

    #[test]
    fn rejects_bad_options() {
        let o = PhantomOptions {
            mesh_step_mm: 0.0,
            ..PhantomOptions::default()
        };
        assert!(matches!(
            Phantom::generate(1, &o),
            Err(Error::Invalid { .. })
        ));
        let o = PhantomOptions {
            image_size_px: 10,
            ..PhantomOptions::default()
        };
        assert!(matches!(
            Phantom::generate(1, &o),
            Err(Error::Invalid { .. })
        ));
        let o = PhantomOptions {
            noise_px: f64::NAN,
            ..PhantomOptions::default()
        };
        assert!(matches!(
            Phantom::generate(1, &o),
            Err(Error::Invalid { .. })
        ));
    }
}
