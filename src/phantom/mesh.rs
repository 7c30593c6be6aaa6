//! Phantoms built around a given femur mesh (e.g. a real CT surface).

use std::sync::Arc;

use nalgebra::{
    Isometry3, Matrix3, Point2, Point3, Rotation3, Translation3, Unit, UnitQuaternion, Vector2,
    Vector3,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::Normal;

use super::{
    add_noise, arr, draw_lesion, in_image, lesion_contour, place_carms, trace, truth_views, Body,
    MeshBody, Phantom, PhantomOptions, Truth, TruthAxis, TruthLesion, TruthSphere,
};
use crate::anatomy::FemurLandmarks;
use crate::case::{Case, MeshFrame, Side};
use crate::error::{Error, Result};
use crate::geometry::{Axis, BoneSurface, Ellipsoid, Sphere, TriMesh};
use crate::imaging::{Annotations, Projection, View};
use crate::io::registration::isometry_to_rows;

/// Where the head centre of a right femur is put in the world (a left one at
/// `+85`), patient LPS mm: as for the synthetic femurs.
const HEAD_X_MM: f64 = 85.0;
/// A head-outline point is kept when the bone surface it grazes lies within
/// this distance of the head sphere, mm (real heads are not exact spheres).
const HEAD_SPHERE_TOL_MM: f64 = 1.0;
/// Largest rigid motion of an own-frame mesh: translation, mm ...
pub(crate) const OWN_FRAME_MAX_SHIFT_MM: f64 = 20.0;
/// ... and rotation, degrees.
pub(crate) const OWN_FRAME_MAX_ROTATION_DEG: f64 = 15.0;

/// Whether the ray through pixel `uv` crosses the mesh.
pub(crate) fn ray_hits(s: &BoneSurface, proj: &Projection, uv: &Point2<f64>) -> bool {
    let ray = proj.back_project(uv);
    s.first_hit(&ray.origin, &ray.dir, f64::INFINITY).is_some()
}

/// The first point where the ray through pixel `uv` meets the mesh.
fn ray_touch(s: &BoneSurface, proj: &Projection, uv: &Point2<f64>) -> Option<Point3<f64>> {
    let ray = proj.back_project(uv);
    s.first_hit(&ray.origin, &ray.dir, f64::INFINITY)
        .map(|h| h.point)
}

/// The landmarks the tracer needs, world mm.
struct Anatomy {
    head: Sphere,
    neck: Axis,
    shaft: Axis,
    /// Level of the lesser trochanter's tip along the shaft axis, from the
    /// head centre's level, mm (negative).
    lt_level_mm: f64,
    lt_point: Point3<f64>,
}

/// The rigid map that puts a femur into the standard anatomical pose in
/// patient LPS: shaft axis along +z, the head-neck frame's anterior along
/// -y (rotated about z by the anteversion when the mesh has its condyles),
/// the head centre at `(-+85, 0, 0)` mm.
fn standard_pose(lm: &FemurLandmarks) -> Result<Isometry3<f64>> {
    let m = match lm.side {
        Side::Right => 1.0,
        Side::Left => -1.0,
    };
    let z = lm.shaft_axis.direction.into_inner();
    let ant = lm.frame.anterior().into_inner();
    let ant = (ant - z * ant.dot(&z))
        .try_normalize(1e-9)
        .ok_or_else(|| Error::degenerate("mesh", "anterior direction along the shaft"))?;
    let y = -ant;
    let x = y.cross(&z);
    let r0 = Rotation3::from_matrix_unchecked(Matrix3::from_rows(&[
        x.transpose(),
        y.transpose(),
        z.transpose(),
    ]));
    let av = lm.anteversion_rad.unwrap_or(0.0);
    let rot = Rotation3::from_axis_angle(&Vector3::z_axis(), -m * av) * r0;
    let h = Point3::new(-m * HEAD_X_MM, 0.0, 0.0);
    Ok(Isometry3::from_parts(
        Translation3::from(h.coords - rot * lm.head.center.coords),
        UnitQuaternion::from_rotation_matrix(&rot),
    ))
}

/// A seeded rigid motion about `pivot` of at most
/// [`OWN_FRAME_MAX_SHIFT_MM`] and [`OWN_FRAME_MAX_ROTATION_DEG`]: uniform
/// axis, uniform angle, uniform direction and length of the shift.
pub(crate) fn random_motion(rng: &mut ChaCha8Rng, pivot: &Point3<f64>) -> Isometry3<f64> {
    let unit = |rng: &mut ChaCha8Rng| loop {
        let v = Vector3::new(
            2.0 * rng.random::<f64>() - 1.0,
            2.0 * rng.random::<f64>() - 1.0,
            2.0 * rng.random::<f64>() - 1.0,
        );
        let n = v.norm();
        if n > 1e-3 && n <= 1.0 {
            return Unit::new_normalize(v);
        }
    };
    let axis = unit(rng);
    let angle = OWN_FRAME_MAX_ROTATION_DEG.to_radians() * rng.random::<f64>();
    let shift = unit(rng).into_inner() * (OWN_FRAME_MAX_SHIFT_MM * rng.random::<f64>());
    let rot = UnitQuaternion::from_axis_angle(&axis, angle);
    // p -> pivot + R (p - pivot) + shift
    Isometry3::from_parts(
        Translation3::from(pivot.coords - rot * pivot.coords + shift),
        rot,
    )
}

impl Phantom {
    /// A phantom built around a given femur mesh (e.g. a real CT surface).
    ///
    /// The mesh's anatomy is found by [`FemurLandmarks::from_mesh`] (side
    /// from [`PhantomOptions::side`] when given, else from the geometry);
    /// the mesh is put into the standard anatomical pose in patient LPS
    /// (shaft along +z, anterior -y, the neck anteverted by the mesh's own
    /// anteversion, head centre at `(-+85, 0, 0)` mm; the map is
    /// [`Truth::world_from_source`]). Then, as for [`Phantom::generate`], a
    /// lesion is drawn in the anterolateral weight-bearing head (redrawn until
    /// it lies at least 0.5 mm inside the mesh), the C-arms are placed around
    /// the head and neck, and the annotations are traced on the mesh's exact
    /// silhouette (ray casts against the mesh, edges bisected to 0.01 px):
    ///
    /// * `head_outline_px`: along 120 rays from the projected head centre,
    ///   the outline where the grazed surface lies within 1 mm of the head
    ///   sphere;
    /// * `neck_edges_px`: on 30 scan lines across the projected neck axis,
    ///   0.75 r to r + 10 mm from the head centre, where the grazed surface
    ///   is neck (within 0.9 r of the axis, off the head sphere);
    /// * `shaft_edges_px`: on 30 scan lines across the shaft 15-70 mm below
    ///   the lesser trochanter's tip, within 30 mm of the shaft axis;
    /// * the lesion outline and the entry point as for synthetic phantoms
    ///   (the entry is where the neck axis leaves the mesh laterally).
    ///
    /// With [`PhantomOptions::own_frame`] the case's mesh is given in its
    /// own frame: moved by a seeded rigid motion (up to 20 mm and 15
    /// degrees about the head centre); [`Phantom::world_from_mesh`] and
    /// [`Truth::world_from_mesh`] hold the true pose, [`Phantom::mesh`] stays
    /// in the world frame. [`PhantomOptions::mesh_step_mm`] is not used.
    ///
    /// Same mesh, seed and options, same phantom (whatever the number of
    /// threads).
    ///
    /// # Errors
    /// [`Error::Invalid`] for bad options; the errors of
    /// [`FemurLandmarks::from_mesh`] and [`BoneSurface::new`] (field `mesh`);
    /// [`Error::TooFew`] when fewer than 20 head outline points are found in
    /// a view; [`Error::Degenerate`] when no lesion fits inside the mesh's
    /// head or the neck axis never leaves the mesh.
    ///
    /// # Example
    /// ```no_run
    /// use avnplan::phantom::{Phantom, PhantomOptions};
    /// let (mesh, _) = avnplan::io::mesh::load_mesh("femur_r.stl".as_ref())?;
    /// let ph = Phantom::around_mesh(&mesh, 1, &PhantomOptions::default())?;
    /// assert!(ph.case.views[0].annotations.head_outline_px.len() >= 20);
    /// # Ok::<(), avnplan::Error>(())
    /// ```
    pub fn around_mesh(mesh: &TriMesh, seed: u64, opts: &PhantomOptions) -> Result<Phantom> {
        opts.validate()?;
        let lm_src = FemurLandmarks::from_mesh(mesh, opts.side).map_err(|e| e.in_field("mesh"))?;
        let side = lm_src.side;
        let world_from_source = standard_pose(&lm_src)?;
        let wmesh = mesh.transformed(&world_from_source);
        let rot = world_from_source.rotation;
        let head = Sphere {
            center: world_from_source * lm_src.head.center,
            radius_mm: lm_src.head.radius_mm,
        };
        let neck = Axis {
            point: world_from_source * lm_src.neck_axis.point,
            direction: rot * lm_src.neck_axis.direction,
        };
        let shaft = Axis {
            point: world_from_source * lm_src.shaft_axis.point,
            direction: rot * lm_src.shaft_axis.direction,
        };
        let anatomy = Anatomy {
            head,
            neck,
            shaft,
            lt_level_mm: lm_src.lesser_trochanter_level_mm,
            lt_point: world_from_source * lm_src.lesser_trochanter_mm,
        };
        let surface = BoneSurface::new(wmesh.clone()).map_err(|e| e.in_field("mesh"))?;

        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let lesion = draw_lesion_inside(side, &head, &surface, &mut rng)?;
        let h = head.center;
        let entry = surface
            .first_hit(&h, &(-neck.direction), f64::INFINITY)
            .map(|hit| hit.point)
            .ok_or_else(|| Error::degenerate("entry", "the neck axis never leaves the mesh"))?;
        let (angles, carms) = place_carms(&mut rng, side, &h, &entry, opts);
        let size = opts.image_size_px;

        let mut noise_rng = ChaCha8Rng::seed_from_u64(seed);
        noise_rng.set_stream(1);
        let noise = Normal::new(0.0, opts.noise_px.max(f64::MIN_POSITIVE))
            .map_err(|e| Error::invalid("noise_px", e.to_string()))?;
        let mut views = Vec::new();
        for ((name, _, _), carm) in angles.iter().zip(&carms) {
            let proj = carm.projection()?;
            let mut ann = trace_mesh(&surface, &anatomy, &lesion, &entry, &proj, [size, size])
                .map_err(|e| e.in_field(&format!("views[{name}]")))?;
            if opts.noise_px > 0.0 {
                add_noise(&mut ann, &noise, &mut noise_rng);
            }
            let mut view = View::new(*name, [size, size], proj);
            view.annotations = ann;
            views.push(view);
        }

        let mut case = Case::new(side, views);
        let mut world_from_mesh = None;
        if opts.with_mesh {
            if opts.own_frame {
                let mut motion_rng = ChaCha8Rng::seed_from_u64(seed);
                motion_rng.set_stream(2);
                let mesh_from_world = random_motion(&mut motion_rng, &h);
                case.bone_mesh = Some((wmesh.transformed(&mesh_from_world), MeshFrame::Own));
                world_from_mesh = Some(mesh_from_world.inverse());
            } else {
                case.bone_mesh = Some((wmesh.clone(), MeshFrame::World));
            }
        }
        let r = head.radius_mm;
        let lt_z = anatomy.lt_point.z;
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
                direction: arr(&neck.direction),
            },
            shaft_axis: TruthAxis {
                point_mm: arr(&shaft.point.coords),
                direction: arr(&shaft.direction),
            },
            lt_level_z_mm: lt_z,
            lt_point_mm: arr(&anatomy.lt_point.coords),
            // The mesh gives the trochanter's tip, not its lower edge: the
            // tip's level is used (stricter for entries).
            lt_lower_edge_z_mm: lt_z,
            entry_mm: arr(&entry.coords),
            params: None,
            bone_mesh: "femur.stl".into(),
            source_mesh: opts.source_name.clone(),
            own_frame_mesh: world_from_mesh.map(|_| "femur_own.stl".to_string()),
            world_from_mesh: world_from_mesh.as_ref().map(isometry_to_rows),
            world_from_source: Some(isometry_to_rows(&world_from_source)),
            mesh_step_mm: mean_edge_mm(&wmesh),
            views: truth_views(&angles, &carms),
        };
        let shell_mm = case.cortical_thickness_mm;
        Ok(Phantom {
            body: Body::Mesh(Arc::new(MeshBody {
                surface,
                head,
                shell_mm,
            })),
            case,
            truth,
            mesh: wmesh,
            lesion,
            carms,
            world_from_mesh,
        })
    }
}

/// Mean edge length of a mesh, mm (its resolution, recorded as the truth's
/// `mesh_step_mm`).
fn mean_edge_mm(mesh: &TriMesh) -> f64 {
    let n = mesh.triangles.len().max(1) as f64;
    let sum: f64 = (0..mesh.triangles.len())
        .map(|i| {
            let [a, b, c] = mesh.triangle(i);
            (b - a).norm() + (c - b).norm() + (a - c).norm()
        })
        .sum();
    sum / (3.0 * n)
}

/// Draws lesions as [`draw_lesion`] until one lies at least 0.5 mm inside
/// the mesh (centre and 400 surface points), at most 32 draws.
fn draw_lesion_inside(
    side: Side,
    head: &Sphere,
    surface: &BoneSurface,
    rng: &mut ChaCha8Rng,
) -> Result<Ellipsoid> {
    let golden = std::f64::consts::PI * (3.0 - 5f64.sqrt());
    for _ in 0..32 {
        let e = draw_lesion(side, head, rng)?;
        let n = 400;
        let inside = std::iter::once(e.center)
            .chain((0..n).map(|i| {
                let z = 1.0 - 2.0 * (f64::from(i) + 0.5) / f64::from(n);
                let s = (1.0 - z * z).max(0.0).sqrt();
                let phi = golden * f64::from(i);
                e.from_unit(&Vector3::new(s * phi.cos(), s * phi.sin(), z))
            }))
            .all(|p| surface.signed_distance_mm(&p) < -0.5);
        if inside {
            return Ok(e);
        }
    }
    Err(Error::degenerate(
        "lesion",
        "no lesion fits inside the mesh's head after 32 draws",
    ))
}

/// Traces the contract annotations of one view on the mesh (no noise).
fn trace_mesh(
    s: &BoneSurface,
    a: &Anatomy,
    lesion: &Ellipsoid,
    entry: &Point3<f64>,
    proj: &Projection,
    size: [u32; 2],
) -> Result<Annotations> {
    let hits = |uv: &Point2<f64>| ray_hits(s, proj, uv);
    let mut ann = Annotations::default();
    let h = a.head.center;
    let r = a.head.radius_mm;
    let hc = proj.project(&h)?;
    let j = proj.jacobian(&h);
    let rho_px = r * 0.5 * (j.row(0).norm() + j.row(1).norm());
    for k in 0..120 {
        let th = std::f64::consts::TAU * f64::from(k) / 120.0;
        let dir = Vector2::new(th.cos(), th.sin());
        let Some((edge, inside)) =
            trace::silhouette_along_by(&hits, &hc, &dir, 2.0, 3.0 * rho_px, 0.01)
        else {
            continue;
        };
        let Some(x) = ray_touch(s, proj, &inside) else {
            continue;
        };
        if ((x - h).norm() - r).abs() < HEAD_SPHERE_TOL_MM && in_image(&edge, size) {
            ann.head_outline_px.push(edge);
        }
    }
    if ann.head_outline_px.len() < 20 {
        return Err(Error::too_few(
            "head_outline_px",
            20,
            ann.head_outline_px.len(),
        ));
    }
    // Neck: stations 0.75 r to r + 10 mm behind the head centre.
    let n = a.neck.direction.into_inner();
    let neck_stations: Vec<(Point3<f64>, Point3<f64>)> = (0..30)
        .map(|i| {
            let t = 0.75 * r + (0.25 * r + 10.0) * f64::from(i) / 29.0;
            (h - n * t, h - n * (t + 1.0))
        })
        .collect();
    let neck_ok = |x: &Point3<f64>| {
        let d = x - h;
        let t = d.dot(&n);
        let radial = (d - n * t).norm();
        radial < 0.9 * r
            && (-(r + 16.0)..=-0.5 * r).contains(&t)
            && ((x - h).norm() - r).abs() > 0.5
    };
    ann.neck_edges_px = trace_edges_mesh(s, proj, size, &neck_stations, &neck_ok);
    // Shaft: 15-70 mm below the lesser trochanter's tip.
    let sd = a.shaft.direction.into_inner();
    let shaft_stations: Vec<(Point3<f64>, Point3<f64>)> = (0..30)
        .map(|i| {
            let t = a.lt_level_mm - 15.0 - 55.0 * f64::from(i) / 29.0;
            (a.shaft.point + sd * t, a.shaft.point + sd * (t - 1.0))
        })
        .collect();
    let shaft_ok = |x: &Point3<f64>| {
        let d = x - a.shaft.point;
        (d - sd * d.dot(&sd)).norm() < 30.0
    };
    ann.shaft_edges_px = trace_edges_mesh(s, proj, size, &shaft_stations, &shaft_ok);
    ann.lesion_outline_px = lesion_contour(lesion, proj)?;
    let e = proj.project(entry)?;
    ann.entry_px = in_image(&e, size).then_some(e);
    Ok(ann)
}

/// Silhouette edges of the mesh across a projected axis given as (point,
/// next point distally) pairs, kept where the grazed surface point passes
/// `keep`; `None` when a side has fewer than 3 points.
fn trace_edges_mesh(
    s: &BoneSurface,
    proj: &Projection,
    size: [u32; 2],
    axis: &[(Point3<f64>, Point3<f64>)],
    keep: &dyn Fn(&Point3<f64>) -> bool,
) -> Option<[Vec<Point2<f64>>; 2]> {
    let hits = |uv: &Point2<f64>| ray_hits(s, proj, uv);
    let mut sides: [Vec<Point2<f64>>; 2] = [Vec::new(), Vec::new()];
    for (a, b) in axis {
        let (Some(pa), Some(pb)) = (proj.try_project(a), proj.try_project(b)) else {
            continue;
        };
        let Some(d) = (pb - pa).try_normalize(1e-12) else {
            continue;
        };
        let perp = Vector2::new(-d.y, d.x);
        for (k, dir) in [perp, -perp].iter().enumerate() {
            let Some((edge, inside)) =
                trace::silhouette_along_by(&hits, &pa, dir, 3.0, 400.0, 0.01)
            else {
                continue;
            };
            let Some(x) = ray_touch(s, proj, &inside) else {
                continue;
            };
            if keep(&x) && in_image(&edge, size) && edge.coords.iter().all(|c| c.is_finite()) {
                sides[k].push(edge);
            }
        }
    }
    (sides.iter().all(|v| v.len() >= 3)).then_some(sides)
}
