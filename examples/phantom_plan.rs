//! The main job on a built-in phantom: a synthetic proximal femur with an
//! anterosuperior lesion, seen in an AP and a lateral C-arm view with 1 px
//! annotation noise; the femur and lesion are reconstructed from the views
//! alone (no CT mesh), a needle trajectory is planned on that conservative
//! model, and the plan is checked against the phantom's true bone.
//!
//! Writes into `out/phantom_plan/` (or the folder given as first argument):
//! the phantom's files (`case.json`, `truth.json`, `femur.stl`, one simulated
//! radiograph PNG per view), `plan.json`, one overlay per view (`AP.svg`,
//! `AP.png`, ...), a 3D view `scene3d.svg`, an OBJ scene and `report.txt`.
//!
//! Run: `cargo run --release --example phantom_plan [-- OUT_DIR [SEED]]`

mod support {
    pub mod report;
}

use std::fmt::Write as _;
use std::path::PathBuf;

use avnplan::geometry::BoneSurface;
use avnplan::io::{load_case, to_json_string};
use avnplan::phantom::{write_phantom_dir, Phantom, PhantomOptions};
use avnplan::pipeline::{overlays, plan_case, plan_to_file, write_pictures, PipelineOptions};
use avnplan::planning::PlanStatus;
use avnplan::render::{write_obj_scene, GrayImage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().unwrap_or_else(|| "out/phantom_plan".into()));
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(7);
    let t0 = std::time::Instant::now();

    // 1. A phantom with known truth, written as a user would receive it.
    let mut opts = PhantomOptions::default();
    opts.noise_px = 1.0;
    opts.with_mesh = true;
    let ph = Phantom::generate(seed, &opts)?;
    write_phantom_dir(&ph, &out)?;

    // 2. Read the case back through the contract and plan on its CT-like mesh.
    let (case, _) = load_case(&out.join("case.json"))?;
    let (built, plan) = plan_case(&case, &PipelineOptions::default())?;
    // The same case from the views alone (no mesh): the reconstructed model.
    let mut fluoro = case.clone();
    fluoro.bone_mesh = None;
    let fluoro_plan = plan_case(&fluoro, &PipelineOptions::default());
    let file = plan_to_file(&built, &plan);
    std::fs::write(out.join("plan.json"), to_json_string(&file)?)?;

    // 3. Pictures: overlays on the simulated radiographs, a 3D view, an OBJ scene.
    let backgrounds: Vec<Option<GrayImage>> = (0..case.views.len())
        .map(|k| {
            ph.radiograph(k)
                .ok()
                .and_then(|r| GrayImage::new(r.width, r.height, r.pixels).ok())
        })
        .collect();
    write_pictures(&out, &overlays(&case, &built, &plan, &backgrounds, true))?;
    let needles: Vec<_> = plan
        .trajectories
        .iter()
        .map(|t| (t.entry_mm, t.tip_mm, case.constraints.needle_radius_mm()))
        .collect();
    write_obj_scene(&out.join("scene.obj"), built.model.bone.mesh(), &needles)?;

    // 4. The truth the planner never saw: is the plan safe on the true bone?
    let truth = BoneSurface::new(ph.mesh.clone())?;
    let mut report = String::new();
    writeln!(
        report,
        "avnplan phantom_plan, seed {seed}, annotation noise 1 px"
    )?;
    writeln!(
        report,
        "views: {}",
        case.views
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    let h = &built.model.head;
    let th = ph.head();
    writeln!(
        report,
        "head: reconstructed r = {:.2} mm, true r = {:.2} mm, centre error {:.2} mm",
        h.radius_mm,
        th.radius_mm,
        (h.center - th.center).norm()
    )?;
    writeln!(
        report,
        "lesion: reconstructed {:.2} mL, true {:.2} mL",
        built.model.lesion.volume_ml(),
        ph.lesion.volume_ml()
    )?;
    writeln!(
        report,
        "bone model: {} ({} triangles)",
        built.model.bone_source.as_str(),
        built.model.bone.mesh().triangles.len()
    )?;
    writeln!(
        report,
        "candidates: {} evaluated, {} safe on the model",
        plan.candidates, plan.safe_candidates
    )?;
    writeln!(report, "status: {}", plan.status.as_str())?;
    for (i, t) in plan.trajectories.iter().enumerate() {
        let req = case.constraints.required_axis_distance_mm();
        let v = t.tip_mm - t.entry_mm;
        let len = v.norm();
        let split = t.entry_mm + v * (case.constraints.entry_allowance_mm.min(len) / len);
        let true_clear =
            truth.segment_distance_mm(&split, &t.tip_mm) - case.constraints.needle_radius_mm();
        let inside = truth.contains(&t.tip_mm)
            && !truth.segment_intersects(&(t.entry_mm + v * (1e-3 / len)), &t.tip_mm);
        writeln!(
            report,
            "N{}: length {:.1} mm, clearance {:.2} mm on the model, {:.2} mm on the true bone (needs {:.2}), tip {:.1} mm below the surface, incidence {:.0} deg, in lesion (truth): {}, inside true bone: {}",
            i + 1,
            t.length_mm,
            t.min_clearance_mm,
            true_clear,
            req - case.constraints.needle_radius_mm(),
            t.tip_to_surface_mm,
            t.incidence_rad.to_degrees(),
            ph.lesion.contains(&t.tip_mm),
            inside,
        )?;
        writeln!(
            report,
            "    down the barrel: primary {:.1} deg, secondary {:.1} deg",
            t.down_the_barrel_rad.0.to_degrees(),
            t.down_the_barrel_rad.1.to_degrees()
        )?;
    }
    match &fluoro_plan {
        Ok((fb, fp)) => {
            writeln!(
                report,
                "from the views alone (reconstructed femur, shrunk {:.2} mm): status {}",
                fb.reconstruction.as_ref().map_or(0.0, |r| r.shrink_mm),
                fp.status.as_str()
            )?;
            for t in &fp.trajectories {
                let v = t.tip_mm - t.entry_mm;
                let len = v.norm();
                let split = t.entry_mm + v * (case.constraints.entry_allowance_mm.min(len) / len);
                let true_clear = truth.segment_distance_mm(&split, &t.tip_mm)
                    - case.constraints.needle_radius_mm();
                // How far inside the true bone the model's entry lies: the
                // reconstructed femur is shrunk inside the bone.
                let entry_depth = -truth.signed_distance_mm(&t.entry_mm);
                writeln!(report, "    length {:.1} mm, clearance {:.2} mm on the model, {:.2} mm on the true bone; entry {:.1} mm inside the true lateral cortex (see README, limits)", t.length_mm, t.min_clearance_mm, true_clear, entry_depth)?;
            }
        }
        Err(e) => writeln!(report, "from the views alone: {e}")?,
    }
    support::report::finish_report(&mut report, &plan, &case, t0, &out)?;
    if plan.status != PlanStatus::Ok {
        println!("(no safe trajectory on this phantom: see the rejections above)");
    }
    Ok(())
}
