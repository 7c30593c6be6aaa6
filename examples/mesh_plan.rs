//! Planning on a user's femur mesh: the CT case.
//!
//! Loads a closed femur surface (STL, OBJ or PLY, mm, in the world frame),
//! finds the anatomy on it (head sphere, neck and shaft axes, lesser
//! trochanter level), places a lesion (by default an ellipsoid of 9 x 9 x 11
//! mm in the anterosuperior head, the usual site of necrosis, domain.md; or
//! a sphere given with `--lesion X,Y,Z,R` in mesh mm), builds an AP and a
//! lateral C-arm view centred on the head for the pictures, plans, and
//! writes into `OUT_DIR` (default `out/mesh_plan/<mesh file stem>`):
//! `plan.json`, one overlay per view over a simulated radiograph of the
//! mesh (`AP.svg/png`, `LAT.svg/png`), the 3D view `scene3d.svg`, an OBJ
//! scene `scene.obj` and `report.txt`.
//!
//! Run: `cargo run --release --example mesh_plan -- PATH_TO_FEMUR.stl [OUT_DIR]
//! [--side left|right] [--lesion X,Y,Z,R]`
//! (try it on `../shared/data/femur/*/femur_r.stl`).

mod support {
    pub mod report;
}

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use nalgebra::{Point2, Point3, Rotation3, Unit, Vector3};
use rayon::prelude::*;

use avnplan::anatomy::FemurLandmarks;
use avnplan::case::{LesionSpec, MeshFrame};
use avnplan::geometry::{BoneSurface, Ellipsoid};
use avnplan::imaging::{DetectorGeometry, View};
use avnplan::io::to_json_string;
use avnplan::pipeline::{overlays, plan_case, plan_to_file, write_pictures, PipelineOptions};
use avnplan::render::{write_obj_scene, GrayImage};
use avnplan::{Case, Side};

/// Source-to-image and source-to-object distances of the simulated C-arm, mm.
const SID_MM: f64 = 1000.0;
const SOD_MM: f64 = 600.0;
/// Image size, pixels, and detector pixel spacing, mm.
const SIZE_PX: u32 = 600;
const SPACING_MM: f64 = 0.45;

struct Args {
    mesh: PathBuf,
    out: Option<PathBuf>,
    side: Side,
    lesion: Option<[f64; 4]>,
}

fn parse_args() -> Result<Args, String> {
    let mut mesh = None;
    let mut out = None;
    let mut side = Side::Right;
    let mut lesion = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--side" => {
                side = match it.next().as_deref() {
                    Some("left") => Side::Left,
                    Some("right") => Side::Right,
                    other => return Err(format!("--side: expected left or right, got {other:?}")),
                }
            }
            "--lesion" => {
                let v: Vec<f64> = it
                    .next()
                    .ok_or("--lesion needs X,Y,Z,R")?
                    .split(',')
                    .map(|s| s.trim().parse::<f64>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--lesion: {e}"))?;
                let v: [f64; 4] = v
                    .try_into()
                    .map_err(|_| "--lesion needs exactly 4 numbers X,Y,Z,R (mm)".to_string())?;
                lesion = Some(v);
            }
            _ if mesh.is_none() => mesh = Some(PathBuf::from(a)),
            _ if out.is_none() => out = Some(PathBuf::from(a)),
            _ => return Err(format!("unexpected argument {a}")),
        }
    }
    let mesh = mesh.ok_or(
        "usage: mesh_plan PATH_TO_FEMUR.stl [OUT_DIR] [--side left|right] [--lesion X,Y,Z,R]",
    )?;
    Ok(Args {
        mesh,
        out,
        side,
        lesion,
    })
}

/// A view looking along `-towards_detector` at `iso`, image rows running
/// distally (`v` opposite `proximal`), as the C-arm displays it (`u x v =
/// -d`, see `avnplan::imaging::carm`).
fn view(
    name: &str,
    iso: &Point3<f64>,
    towards_detector: &Unit<Vector3<f64>>,
    proximal: &Vector3<f64>,
) -> Result<View, avnplan::Error> {
    let d = towards_detector.into_inner();
    let v = -(proximal - d * proximal.dot(&d)).normalize();
    let u = d.cross(&v);
    let centre = iso + d * (SID_MM - SOD_MM);
    let pp = (f64::from(SIZE_PX) - 1.0) / 2.0;
    let g = DetectorGeometry {
        source_mm: iso - d * SOD_MM,
        detector_origin_mm: centre - u * SPACING_MM * pp - v * SPACING_MM * pp,
        u_axis_mm: u * SPACING_MM,
        v_axis_mm: v * SPACING_MM,
    };
    Ok(View::new(name, [SIZE_PX, SIZE_PX], g.projection()?))
}

/// A simulated radiograph of the mesh: per pixel, the chord length `L` of
/// the ray through the bone, gray `20 + 235 (1 - exp(-0.03 L))`.
fn radiograph(bone: &BoneSurface, v: &View) -> Option<GrayImage> {
    let [w, h] = v.image_size_px;
    let pixels: Vec<u8> = (0..h)
        .into_par_iter()
        .flat_map_iter(|row| {
            let mut hits = Vec::new();
            (0..w)
                .map(|col| {
                    let ray = v
                        .projection
                        .back_project(&Point2::new(f64::from(col), f64::from(row)));
                    bone.ray_crossings(&ray.origin, &ray.dir, SID_MM, &mut hits);
                    let chord: f64 = hits.chunks_exact(2).map(|p| p[1] - p[0]).sum();
                    (20.0 + 235.0 * (1.0 - (-0.03 * chord).exp())).round() as u8
                })
                .collect::<Vec<u8>>()
        })
        .collect();
    GrayImage::new(w, h, pixels).ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let t0 = std::time::Instant::now();
    let stem = args
        .mesh
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "mesh".into());
    let parent = args
        .mesh
        .parent()
        .and_then(Path::file_name)
        .map(|s| s.to_string_lossy().into_owned());
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("out/mesh_plan").join(match &parent {
            Some(p) => format!("{p}_{stem}"),
            None => stem.clone(),
        })
    });
    std::fs::create_dir_all(&out)?;

    // 1. The mesh and its anatomy.
    let (mesh, load_warnings) = avnplan::io::mesh::load_mesh(&args.mesh)?;
    let lm = FemurLandmarks::from_mesh(&mesh, Some(args.side))?;
    let proximal = lm.shaft_axis.direction.into_inner();
    let ant = lm.frame.anterior().into_inner();
    let ant = (ant - proximal * ant.dot(&proximal)).normalize();
    let mut lateral = ant.cross(&proximal);
    if lateral.dot(&lm.neck_axis.direction) > 0.0 {
        lateral = -lateral;
    }

    // 2. The lesion: given, or anterosuperior in the head.
    let lesion = match args.lesion {
        Some([x, y, z, r]) => Ellipsoid::sphere(Point3::new(x, y, z), r)?,
        None => {
            let sup = lm.frame.world_from_head.rotation * Vector3::z();
            let dir = (sup * 0.8 + ant * 0.6).normalize();
            let centre = lm.head.center + dir * (0.4 * lm.head.radius_mm);
            Ellipsoid::new(
                centre,
                Vector3::new(9.0, 9.0, 11.0),
                Rotation3::face_towards(&dir, &sup),
            )?
        }
    };

    // 3. AP and lateral views centred between the head and the entry side.
    let iso = lm.head.center - lm.neck_axis.direction.into_inner() * 25.0;
    let views = vec![
        view("AP", &iso, &Unit::new_normalize(ant), &proximal)?,
        view("LAT", &iso, &Unit::new_normalize(lateral), &proximal)?,
    ];
    let mut case = Case::new(args.side, views);
    case.bone_mesh = Some((mesh, MeshFrame::World));
    case.lesion = Some(LesionSpec::Ellipsoid(lesion));

    // 4. Plan, and write the plan, pictures and scene.
    let t_plan = std::time::Instant::now();
    let (built, plan) = plan_case(&case, &PipelineOptions::default())?;
    let plan_s = t_plan.elapsed().as_secs_f64();
    std::fs::write(
        out.join("plan.json"),
        to_json_string(&plan_to_file(&built, &plan))?,
    )?;
    let backgrounds: Vec<Option<GrayImage>> = case
        .views
        .iter()
        .map(|v| radiograph(&built.model.bone, v))
        .collect();
    write_pictures(&out, &overlays(&case, &built, &plan, &backgrounds, true))?;
    let needles: Vec<_> = plan
        .trajectories
        .iter()
        .map(|t| (t.entry_mm, t.tip_mm, case.constraints.needle_radius_mm()))
        .collect();
    write_obj_scene(&out.join("scene.obj"), built.model.bone.mesh(), &needles)?;

    // 5. The report.
    let m = &built.model;
    let mut r = String::new();
    writeln!(r, "avnplan mesh_plan: {}", args.mesh.display())?;
    writeln!(
        r,
        "mesh: {} triangles, {} vertices{}",
        m.bone.mesh().triangles.len(),
        m.bone.mesh().vertices.len(),
        if load_warnings.is_empty() {
            String::new()
        } else {
            format!(" (repaired: {})", load_warnings.join("; "))
        }
    )?;
    writeln!(
        r,
        "anatomy: head centre ({:.1}, {:.1}, {:.1}) mm, radius {:.1} mm (fit rms {:.2} mm); lesser trochanter level {:.1} mm on the shaft axis",
        lm.head.center.x,
        lm.head.center.y,
        lm.head.center.z,
        lm.head.radius_mm,
        lm.head_fit_rms_mm,
        lm.lesser_trochanter_level_mm
    )?;
    let lc = m.lesion.centroid_mm();
    writeln!(
        r,
        "lesion: {:.2} mL at ({:.1}, {:.1}, {:.1}) mm ({})",
        m.lesion.volume_ml(),
        lc.x,
        lc.y,
        lc.z,
        if args.lesion.is_some() {
            "given"
        } else {
            "default anterosuperior ellipsoid 9 x 9 x 11 mm"
        }
    )?;
    if let Some(z) = &plan.entry_zone {
        writeln!(
            r,
            "entry zone: {:.0} mm sphere at ({:.1}, {:.1}, {:.1}) mm, rule {}",
            z.sphere.radius_mm,
            z.sphere.center.x,
            z.sphere.center.y,
            z.sphere.center.z,
            z.rule.as_str()
        )?;
    }
    writeln!(
        r,
        "candidates: {} evaluated, {} safe; plan time {:.2} s",
        plan.candidates, plan.safe_candidates, plan_s
    )?;
    writeln!(r, "status: {}", plan.status.as_str())?;
    for (i, t) in plan.trajectories.iter().enumerate() {
        writeln!(
            r,
            "N{}: entry ({:.1}, {:.1}, {:.1}) tip ({:.1}, {:.1}, {:.1}) mm, length {:.1} mm, clearance {:.2} mm (needs {:.2}), tip {:.1} mm below the surface, incidence {:.0} deg, down the barrel primary {:.1} deg secondary {:.1} deg",
            i + 1,
            t.entry_mm.x,
            t.entry_mm.y,
            t.entry_mm.z,
            t.tip_mm.x,
            t.tip_mm.y,
            t.tip_mm.z,
            t.length_mm,
            t.min_clearance_mm,
            case.constraints.cortical_clearance_mm,
            t.tip_to_surface_mm,
            t.incidence_rad.to_degrees(),
            t.down_the_barrel_rad.0.to_degrees(),
            t.down_the_barrel_rad.1.to_degrees()
        )?;
    }
    support::report::finish_report(&mut r, &plan, &case, t0, &out)?;
    Ok(())
}
