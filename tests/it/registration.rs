//! Phantoms built around the real femur meshes, and 2D/3D registration of
//! those meshes (given in their own frame) to the phantoms' views.

use nalgebra::{Isometry3, Point2, Point3, Translation3, Unit, UnitQuaternion, Vector2, Vector3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use avnplan::geometry::{BoneSurface, TriMesh};
use avnplan::io::json::to_json_string;
use avnplan::phantom::{case_file, write_phantom_dir, Phantom, PhantomOptions};
use avnplan::pipeline::{plan_case, plan_to_file, PipelineOptions, REGISTRATION_NOT_CONVERGED};
use avnplan::registration::{register, Registration, RegistrationOptions, RegistrationStatus};

use crate::checker::Checker;
use crate::data::femur_mesh;

const MESHES: [&str; 2] = ["lhdl_ct_right", "tlem2_right"];

fn load(name: &str) -> Option<TriMesh> {
    let m = femur_mesh(name);
    if m.is_none() {
        eprintln!("SKIPPED: femur mesh {name} not found (set AVNPLAN_FEMUR_DIR)");
    }
    m
}

fn opts(noise_px: f64, own: bool) -> PhantomOptions {
    let mut o = PhantomOptions::default();
    o.noise_px = noise_px;
    o.own_frame = own;
    o
}

/// Whether the phantom's silhouette boundary passes within `r` px of `p`:
/// among 16 points at distance `r` around it, some hit the bone, some miss.
fn near_boundary(ph: &Phantom, view: usize, p: &Point2<f64>, r: f64) -> bool {
    let (mut hit, mut miss) = (false, false);
    for k in 0..16 {
        let th = std::f64::consts::TAU * f64::from(k) / 16.0;
        let q = p + Vector2::new(th.cos(), th.sin()) * r;
        if ph.pixel_hits_bone(view, &q).unwrap() {
            hit = true;
        } else {
            miss = true;
        }
    }
    hit && miss
}

#[test]
fn around_mesh_annotations_lie_on_the_silhouette() {
    for name in MESHES {
        let Some(mesh) = load(name) else { return };
        let ph = Phantom::around_mesh(&mesh, 5, &opts(0.0, false)).unwrap();
        assert_eq!(ph.case.views.len(), 2);
        for (k, v) in ph.case.views.iter().enumerate() {
            let a = &v.annotations;
            assert!(a.head_outline_px.len() >= 20, "{name} {}", v.name);
            let mut pts: Vec<Point2<f64>> = a.head_outline_px.clone();
            for e in [&a.neck_edges_px, &a.shaft_edges_px].into_iter().flatten() {
                pts.extend(e.iter().flatten().copied());
            }
            for p in &pts {
                assert!(
                    near_boundary(&ph, k, p, 0.5),
                    "{name} view {}: {p} is not within 0.5 px of the silhouette",
                    v.name
                );
            }
            // The lesion's outline lies inside the bone's image.
            for p in &a.lesion_outline_px {
                assert!(ph.pixel_hits_bone(k, p).unwrap());
            }
            eprintln!(
                "{name} {}: {} head, {:?} neck, {:?} shaft points",
                v.name,
                a.head_outline_px.len(),
                a.neck_edges_px.as_ref().map(|e| [e[0].len(), e[1].len()]),
                a.shaft_edges_px.as_ref().map(|e| [e[0].len(), e[1].len()])
            );
        }
        // The AP view sees the neck and the shaft.
        assert!(ph.case.views[0].annotations.neck_edges_px.is_some());
        assert!(ph.case.views[0].annotations.shaft_edges_px.is_some());
        // The lesion is inside the mesh, in the superior head.
        let bone = BoneSurface::new(ph.mesh.clone()).unwrap();
        assert!(bone.signed_distance_mm(&ph.lesion.center) < -1.0);
        assert!(ph.lesion.center.z > ph.head().center.z);
        assert!(ph.truth.params.is_none());
        assert!((ph.truth.head.radius_mm - ph.head().radius_mm).abs() < 1e-12);
    }
}

#[test]
fn around_mesh_is_deterministic_and_writes_the_own_frame_mesh() {
    let Some(mesh) = load("tlem2_right") else {
        return;
    };
    let mut o = opts(1.0, true);
    o.image_size_px = 192;
    o.source_name = Some("femur_r.stl".into());
    let a = Phantom::around_mesh(&mesh, 11, &o).unwrap();
    let b = Phantom::around_mesh(&mesh, 11, &o).unwrap();
    let ja = to_json_string(&case_file(&a).unwrap()).unwrap();
    assert_eq!(ja, to_json_string(&case_file(&b).unwrap()).unwrap());
    assert_eq!(
        to_json_string(&a.truth).unwrap(),
        to_json_string(&b.truth).unwrap()
    );
    assert!(ja.contains("\"own\""));
    let c = Phantom::around_mesh(&mesh, 12, &o).unwrap();
    assert_ne!(ja, to_json_string(&case_file(&c).unwrap()).unwrap());
    // The own-frame mesh is the world mesh moved by the inverse of the
    // truth's pose: at most 20 mm at the head centre and 15 degrees.
    let pose = a.world_from_mesh.unwrap();
    let (own, _) = a.case.bone_mesh.clone().unwrap();
    for (p, q) in own.vertices.iter().zip(&a.mesh.vertices).step_by(97) {
        assert!((pose * p - q).norm() < 1e-9);
    }
    let h = a.head().center;
    assert!((pose.inverse() * h - h).norm() <= 20.0 + 1e-9);
    assert!(pose.rotation.angle() <= 15f64.to_radians() + 1e-12);
    // Written twice, same bytes.
    let base = std::env::temp_dir().join("avnplan_it_regist_det");
    let (d1, d2) = (base.join("a"), base.join("b"));
    write_phantom_dir(&a, &d1).unwrap();
    write_phantom_dir(&b, &d2).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(&d1)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert!(names.iter().any(|n| n == "femur_own.stl"));
    for n in &names {
        assert_eq!(
            std::fs::read(d1.join(n)).unwrap(),
            std::fs::read(d2.join(n)).unwrap(),
            "{n:?}"
        );
    }
    let truth = std::fs::read_to_string(d1.join("truth.json")).unwrap();
    assert!(truth.contains("\"source_mesh\": \"femur_r.stl\""));
    assert!(truth.contains("world_from_mesh"));
}

/// The true entry of a planned axis: where the line from 10 mm before the
/// planned entry towards the tip first meets the true surface.
fn true_entry(bone: &BoneSurface, entry: &Point3<f64>, tip: &Point3<f64>) -> Option<Point3<f64>> {
    let d = Unit::new_normalize(tip - entry);
    let start = entry - d.into_inner() * 10.0;
    bone.first_hit(&start, &d, (tip - start).norm())
        .map(|h| h.point)
}

/// Checks every trajectory of a plan against the true mesh (rules 1-5; rule
/// 6 against the model's lesion), from where its axis really enters the
/// bone. Returns the number checked.
fn assert_safe_on_truth(
    ph: &Phantom,
    case: &avnplan::Case,
    built: &avnplan::pipeline::BuiltModel,
    plan: &avnplan::planning::Plan,
    what: &str,
) -> usize {
    let checker = Checker::new(&ph.mesh);
    let bone = BoneSurface::new(ph.mesh.clone()).unwrap();
    let lesion = &built.model.lesion;
    let mut n = 0;
    for t in plan.trajectories.iter().chain(&plan.alternatives) {
        let e = true_entry(&bone, &t.entry_mm, &t.tip_mm).expect("the axis meets the true bone");
        assert!(
            (e - t.entry_mm).norm() < 2.0,
            "{what}: entry moved {e} vs {}",
            t.entry_mm
        );
        let v = checker.check(
            &e,
            &t.tip_mm,
            &case.constraints,
            &case.forbidden_zones,
            &|p| lesion.contains(p),
        );
        assert!(v.is_safe(), "{what}: {:?}", v.violations);
        n += 1;
    }
    n
}

#[test]
fn plans_on_around_mesh_phantoms_are_safe_on_the_true_mesh() {
    for name in MESHES {
        let Some(mesh) = load(name) else { return };
        let ph = Phantom::around_mesh(&mesh, 2, &opts(1.0, false)).unwrap();
        let (built, plan) = plan_case(&ph.case, &PipelineOptions::default()).unwrap();
        let n = assert_safe_on_truth(&ph, &ph.case, &built, &plan, name);
        eprintln!(
            "{name}: {} , {n} trajectories checked",
            plan.status.as_str()
        );
        assert_eq!(plan.status.as_str(), "ok", "{name}: {:?}", plan.reasons);
    }
}

/// Target registration errors of a registration against the truth: head
/// centre (mm), the largest along the neck axis from the head centre to
/// r + 10 mm behind it (mm), rotation (degrees).
fn tre(reg: &Registration, truth: &Isometry3<f64>) -> (f64, f64, f64) {
    let lm = &reg.landmarks;
    let h = lm.head.center;
    let e_head = (reg.world_from_mesh * h - truth * h).norm();
    let n = lm.neck_axis.direction.into_inner();
    let e_neck = (0..=10)
        .map(|i| {
            let p = h - n * ((lm.head.radius_mm + 10.0) * f64::from(i) / 10.0);
            (reg.world_from_mesh * p - truth * p).norm()
        })
        .fold(0.0, f64::max);
    let rot = (reg.world_from_mesh.rotation * truth.rotation.inverse())
        .angle()
        .to_degrees();
    (e_head, e_neck, rot)
}

fn reg_opts(ph: &Phantom, noise_px: f64) -> RegistrationOptions {
    let mut o = RegistrationOptions::default();
    o.side = Some(ph.case.side);
    o.noise_px = noise_px.max(0.5);
    o
}

#[test]
fn registration_recovers_the_pose_at_1px() {
    for name in MESHES {
        let Some(mesh) = load(name) else { return };
        for seed in [1u64, 2] {
            let ph = Phantom::around_mesh(&mesh, seed, &opts(1.0, true)).unwrap();
            let (own, _) = ph.case.bone_mesh.clone().unwrap();
            let truth = ph.world_from_mesh.unwrap();
            let reg = register(&own, &ph.case.views, &reg_opts(&ph, 1.0)).unwrap();
            let (eh, en, er) = tre(&reg, &truth);
            eprintln!(
                "{name} seed {seed}: {:?} rms {:.2} px, TRE head {eh:.2} mm neck {en:.2} mm rot {er:.2} deg, sd {:.2} mm {:.2} deg, {} it",
                reg.status,
                reg.rms_px,
                reg.head_center_sd_mm,
                reg.rotation_sd_rad.to_degrees(),
                reg.iterations
            );
            assert_eq!(reg.status, RegistrationStatus::Ok, "{:?}", reg.warnings);
            assert!(eh < 2.0 && en < 2.0, "{name} seed {seed}: {eh} {en}");
            assert!(er < 2.0, "{name} seed {seed}: {er}");
            assert!(reg.rms_px < 2.0);
            assert!(reg.head_center_sd_mm > 0.0 && reg.head_center_sd_mm < 1.0);
            // The wire form.
            let f = reg.to_file();
            assert_eq!(f.views.len(), 2);
            assert_eq!(f.world_from_mesh[3], [0.0, 0.0, 0.0, 1.0]);
        }
    }
}

#[test]
fn registration_is_exact_without_noise() {
    let Some(mesh) = load("lhdl_ct_right") else {
        return;
    };
    let ph = Phantom::around_mesh(&mesh, 4, &opts(0.0, true)).unwrap();
    let (own, _) = ph.case.bone_mesh.clone().unwrap();
    let reg = register(&own, &ph.case.views, &reg_opts(&ph, 0.0)).unwrap();
    let (eh, en, er) = tre(&reg, &ph.world_from_mesh.unwrap());
    eprintln!(
        "noise 0: rms {:.3} px TRE {eh:.3} {en:.3} mm {er:.3} deg",
        reg.rms_px
    );
    assert_eq!(reg.status, RegistrationStatus::Ok);
    assert!(reg.rms_px < 0.1, "{}", reg.rms_px);
    assert!(eh < 0.1 && en < 0.1 && er < 0.1, "{eh} {en} {er}");
}

#[test]
fn plans_on_the_registered_mesh_are_safe_on_the_true_mesh() {
    for name in MESHES {
        let Some(mesh) = load(name) else { return };
        let ph = Phantom::around_mesh(&mesh, 3, &opts(1.0, true)).unwrap();
        let (built, plan) = plan_case(&ph.case, &PipelineOptions::default()).unwrap();
        let reg = built.registration.as_ref().expect("registered");
        assert_eq!(reg.status, RegistrationStatus::Ok);
        let margin = built.registration_margin_mm.unwrap();
        assert!(margin > 0.0 && margin < 2.0, "{margin}");
        assert!((built.model.margin_mm - margin).abs() < 1e-12);
        let n = assert_safe_on_truth(&ph, &ph.case, &built, &plan, name);
        let file = plan_to_file(&built, &plan);
        assert!(file.model.world_from_mesh.is_some());
        assert_eq!(file.model.registration_margin_mm, Some(margin));
        file.validate().unwrap();
        eprintln!(
            "{name}: {} , margin {margin:.2} mm, {n} trajectories safe on the true mesh",
            plan.status.as_str()
        );
        assert_eq!(plan.status.as_str(), "ok", "{name}: {:?}", plan.reasons);
    }
}

#[test]
fn a_registration_that_does_not_fit_gives_no_plan() {
    let Some(mesh) = load("tlem2_right") else {
        return;
    };
    let mut ph = Phantom::around_mesh(&mesh, 6, &opts(0.5, true)).unwrap();
    // The lateral view's outlines are shifted by 30 px against the AP's
    // (a wrong calibration): no pose fits both.
    let a = &mut ph.case.views[1].annotations;
    let shift = Vector2::new(30.0, -20.0);
    a.head_outline_px.iter_mut().for_each(|p| *p += shift);
    for e in [&mut a.neck_edges_px, &mut a.shaft_edges_px]
        .into_iter()
        .flatten()
    {
        e.iter_mut().flatten().for_each(|p| *p += shift);
    }
    let (own, _) = ph.case.bone_mesh.clone().unwrap();
    let mut o = reg_opts(&ph, 0.5);
    o.max_rms_px = 1.5;
    let reg = register(&own, &ph.case.views, &o).unwrap();
    assert_eq!(
        reg.status,
        RegistrationStatus::NotConverged,
        "rms {}",
        reg.rms_px
    );
    assert!(!reg.warnings.is_empty());
    let mut po = PipelineOptions::default();
    po.registration.max_rms_px = 1.5;
    let (built, plan) = plan_case(&ph.case, &po).unwrap();
    assert!(plan.trajectories.is_empty());
    let file = plan_to_file(&built, &plan);
    assert_eq!(file.reasons.get(REGISTRATION_NOT_CONVERGED), Some(&1));
    assert!(file.warnings.iter().any(|w| w.contains("not converged")));
    assert!(file.model.world_from_mesh.is_some());
    file.validate().unwrap();
}

/// A start pose off the truth by up to 20 mm and 15 degrees (about the
/// head centre).
fn perturbed(truth: &Isometry3<f64>, head: &Point3<f64>, rng: &mut ChaCha8Rng) -> Isometry3<f64> {
    let unit = |rng: &mut ChaCha8Rng| loop {
        let v = Vector3::new(
            rng.random::<f64>() * 2.0 - 1.0,
            rng.random::<f64>() * 2.0 - 1.0,
            rng.random::<f64>() * 2.0 - 1.0,
        );
        if v.norm() > 0.1 && v.norm() <= 1.0 {
            return Unit::new_normalize(v);
        }
    };
    let r = UnitQuaternion::from_axis_angle(&unit(rng), 15f64.to_radians() * rng.random::<f64>());
    let t = unit(rng).into_inner() * (20.0 * rng.random::<f64>());
    let hw = truth * head;
    let m = Isometry3::from_parts(Translation3::from(hw.coords + t - r * hw.coords), r);
    m * truth
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i]
}

/// The full table: `cargo test --release --test it registration_table -- --ignored --nocapture`.
/// `AVNPLAN_REG_CASES` sets the cases per mesh and noise level (default 10).
#[test]
#[ignore = "statistics over many phantoms (minutes); run with --ignored"]
fn registration_table() {
    let cases: u64 = std::env::var("AVNPLAN_REG_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    println!("| start | noise px | n | not conv. | head TRE median / p95 mm | neck TRE median / p95 mm | rotation median / p95 deg | rms px | head sd mm |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for start in ["anatomy", "perturbed"] {
        for noise in [0.5, 1.0, 2.0] {
            let (mut eh, mut en, mut er, mut rms, mut sd) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let mut bad = 0;
            for name in MESHES {
                let Some(mesh) = load(name) else { return };
                for seed in 0..cases {
                    let ph = Phantom::around_mesh(&mesh, 1000 + seed, &opts(noise, true)).unwrap();
                    let (own, _) = ph.case.bone_mesh.clone().unwrap();
                    let truth = ph.world_from_mesh.unwrap();
                    let mut o = reg_opts(&ph, noise);
                    if start == "perturbed" {
                        let mut rng = ChaCha8Rng::seed_from_u64(seed);
                        let h_mesh = truth.inverse() * ph.head().center;
                        o.initial_world_from_mesh = Some(perturbed(&truth, &h_mesh, &mut rng));
                    }
                    let reg = register(&own, &ph.case.views, &o).unwrap();
                    if reg.status != RegistrationStatus::Ok {
                        bad += 1;
                    }
                    let (a, b, c) = tre(&reg, &truth);
                    eh.push(a);
                    en.push(b);
                    er.push(c);
                    rms.push(reg.rms_px);
                    sd.push(reg.head_center_sd_mm);
                }
            }
            let n = eh.len();
            println!(
                "| {start} | {noise} | {n} | {bad} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} | {:.2} |",
                percentile(&mut eh, 0.5),
                percentile(&mut eh, 0.95),
                percentile(&mut en, 0.5),
                percentile(&mut en, 0.95),
                percentile(&mut er, 0.5),
                percentile(&mut er, 0.95),
                percentile(&mut rms, 0.5),
                percentile(&mut sd, 0.5),
            );
        }
    }
}

/// Views-only plans on phantoms around the real femurs, checked on the true
/// mesh: `cargo test --release --test it around_mesh_views_only_safety_table
/// -- --ignored --nocapture`. `AVNPLAN_AROUND_SEEDS` sets the seeds per mesh
/// (default 10), `AVNPLAN_AROUND_NOISE_PX` the annotation noise (default 1).
#[test]
#[ignore = "statistics over many phantoms (minutes); run with --ignored"]
fn around_mesh_views_only_safety_table() {
    let env = |k: &str, d: f64| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let seeds = env("AVNPLAN_AROUND_SEEDS", 10.0) as u64;
    let noise = env("AVNPLAN_AROUND_NOISE_PX", 1.0);
    let mut unsafe_lines = Vec::new();
    println!("| mesh | seed | status | lines | min true clearance mm | model clearance mm |");
    println!("|---|---|---|---|---|---|");
    for name in MESHES {
        let Some(mesh) = load(name) else { return };
        for seed in 0..seeds {
            let ph = Phantom::around_mesh(&mesh, 2000 + seed, &opts(noise, false)).unwrap();
            let checker = Checker::new(&ph.mesh);
            let bone = BoneSurface::new(ph.mesh.clone()).unwrap();
            // Views only: the mesh stays the truth.
            let mut case = ph.case.clone();
            case.bone_mesh = None;
            let res = plan_case(&case, &PipelineOptions::default());
            let Ok((built, plan)) = res else {
                println!(
                    "| {name} | {seed} | error {} | 0 | - | - |",
                    res.err().unwrap()
                );
                continue;
            };
            let mut min_true = f64::INFINITY;
            let mut min_model = f64::INFINITY;
            let mut n = 0;
            for t in plan.trajectories.iter().chain(&plan.alternatives) {
                n += 1;
                min_model = min_model.min(t.min_clearance_mm);
                let Some(e) = true_entry(&bone, &t.entry_mm, &t.tip_mm) else {
                    unsafe_lines.push(format!("{name} {seed}: axis misses the true bone"));
                    continue;
                };
                let v = checker.check(
                    &e,
                    &t.tip_mm,
                    &ph.case.constraints,
                    &ph.case.forbidden_zones,
                    &|p| built.model.lesion.contains(p),
                );
                min_true = min_true.min(v.sampled_clearance_mm);
                if !v.is_safe() {
                    unsafe_lines.push(format!("{name} {seed}: {:?}", v.violations));
                }
            }
            println!(
                "| {name} | {seed} | {} | {n} | {min_true:.2} | {min_model:.2} |",
                plan.status.as_str()
            );
        }
    }
    println!("unsafe: {}", unsafe_lines.len());
    for u in &unsafe_lines {
        println!("  {u}");
    }
    assert!(unsafe_lines.is_empty());
}
