//! Benchmarks of the planner's hot path on the real femur meshes.
//!
//! Groups: `plan/decision` (the safety decision of [`Rules::check`] over
//! candidate pairs, single thread, BenchmarkId = candidate count) and
//! `plan/whole` (a whole plan: entry and tip sampling, every pair decided in
//! parallel, ranking, refinement; BenchmarkId = threads).
//!
//! Run: `cargo bench --bench planning` (meshes from `../shared/data/femur`
//! or `$AVNPLAN_FEMUR_DIR`; the bench says so and does nothing without them).

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nalgebra::{Point3, Rotation3, Vector3};

use avnplan::anatomy::{BoneSource, FemurLandmarks, HipModel, Lesion};
use avnplan::geometry::{BoneSurface, Ellipsoid};
use avnplan::planning::{candidates, plan_with, PlanOptions, Rules};
use avnplan::{Case, Side};

fn femur_dir() -> Option<PathBuf> {
    let env = std::env::var_os("AVNPLAN_FEMUR_DIR").map(PathBuf::from);
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let local = [
        manifest.join("../shared/data/femur"),
        manifest.join("../../shared/data/femur"),
    ];
    env.into_iter().chain(local).find(|p| p.is_dir())
}

/// A real femur with an anterosuperior ellipsoid lesion (3.7 mL).
pub fn real_model(name: &str) -> Option<(HipModel, Case)> {
    let path = femur_dir()?.join(name).join("femur_r.stl");
    let (mesh, _) = avnplan::io::mesh::load_mesh(&path).ok()?;
    let lm = FemurLandmarks::from_mesh(&mesh, Some(Side::Right)).ok()?;
    let sup = lm.frame.world_from_head.rotation * Vector3::z();
    let ant = lm.frame.anterior().into_inner();
    let dir = (sup * 0.8 + ant * 0.6).normalize();
    let center = lm.head.center + dir * (0.4 * lm.head.radius_mm);
    let rot = Rotation3::face_towards(&dir, &sup);
    let lesion = Lesion::Ellipsoid(Ellipsoid::new(center, Vector3::new(9.0, 9.0, 11.0), rot).ok()?);
    let bone = BoneSurface::new(mesh).ok()?;
    let mut model = HipModel::new(Side::Right, bone, BoneSource::Mesh, lm.head, lesion);
    model.neck_axis = Some(lm.neck_axis);
    model.shaft_axis = Some(lm.shaft_axis);
    model.lesser_trochanter_level_mm = Some(lm.lesser_trochanter_level_mm);
    Some((model, Case::new(Side::Right, Vec::new())))
}

fn bench_planning(c: &mut Criterion) {
    for name in ["lhdl_ct_right", "tlem2_right"] {
        let Some((model, case)) = real_model(name) else {
            eprintln!("planning bench: femur mesh {name} not found; skipped");
            continue;
        };
        let rules = Rules::new(&case.constraints, &[], 0.0);
        let zone = candidates::default_entry_zone(&model).expect("entry zone");
        let (entries, _) = candidates::sample_entries(&model, &zone.sphere, 1.0);
        let tips: Vec<Point3<f64>> = candidates::sample_tips(&model, 2.0)
            .into_iter()
            .filter(|t| rules.tip_is_deep(&model.bone, t))
            .collect();
        let pairs: Vec<(usize, usize)> = (0..entries.len())
            .flat_map(|i| (0..tips.len()).map(move |j| (i, j)))
            .collect();
        let mut g = c.benchmark_group(format!("plan/decision/{name}"));
        for n in [1_000usize, 20_000] {
            let n = n.min(pairs.len());
            let stride = (pairs.len() / n).max(1);
            let sel: Vec<(usize, usize)> = pairs.iter().step_by(stride).take(n).copied().collect();
            g.throughput(Throughput::Elements(sel.len() as u64));
            g.bench_with_input(BenchmarkId::from_parameter(sel.len()), &sel, |b, sel| {
                b.iter(|| {
                    sel.iter()
                        .filter(|(i, j)| rules.check(&model.bone, &entries[*i], &tips[*j]).is_ok())
                        .count()
                })
            });
        }
        g.finish();
        let mut g = c.benchmark_group(format!("plan/whole/{name}"));
        g.sample_size(10);
        for threads in [1usize, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            g.bench_with_input(BenchmarkId::new("threads", threads), &threads, |b, _| {
                b.iter(|| {
                    pool.install(|| {
                        plan_with(&model, &case, &PlanOptions::default()).expect("plan")
                    })
                })
            });
        }
        g.finish();
    }
}

#[path = "support/reference.rs"]
mod reference;

/// Candidate pairs of the planning references.
const REF_PLAN_PAIRS: usize = 50;

/// References of `plan/decision/<femur>` and `plan/whole/<femur>` (issue
/// 12): the clearance part of the decision (rule 2, past the entry
/// allowance, at `Rules::axis_clearance_mm`) by brute force over every
/// triangle (`support/reference.rs`, no avnplan code), single thread, on
/// the first [`REF_PLAN_PAIRS`] pairs of the 1,000-pair selection that reach
/// past the allowance. Before timing, asserts on those pairs that
/// `Rules::check` agrees with it: `Ok` only where the brute force clears,
/// `CorticalClearance` only where it does not.
fn bench_planning_reference(c: &mut Criterion) {
    for name in ["lhdl_ct_right", "tlem2_right"] {
        let Some((model, case)) = real_model(name) else {
            eprintln!("planning reference bench: femur mesh {name} not found; skipped");
            continue;
        };
        let rules = Rules::new(&case.constraints, &[], 0.0);
        let zone = candidates::default_entry_zone(&model).expect("entry zone");
        let (entries, _) = candidates::sample_entries(&model, &zone.sphere, 1.0);
        let tips: Vec<Point3<f64>> = candidates::sample_tips(&model, 2.0)
            .into_iter()
            .filter(|t| rules.tip_is_deep(&model.bone, t))
            .collect();
        let pairs: Vec<(usize, usize)> = (0..entries.len())
            .flat_map(|i| (0..tips.len()).map(move |j| (i, j)))
            .collect();
        let n = 1_000usize.min(pairs.len());
        let stride = (pairs.len() / n.max(1)).max(1);
        let segs: Vec<(usize, Point3<f64>, Point3<f64>)> = pairs
            .iter()
            .step_by(stride)
            .take(n)
            .filter_map(|&(i, j)| {
                let (e, t) = (&entries[i], tips[j]);
                let len = (t - e.point).norm();
                (len > rules.entry_allowance_mm && len <= rules.max_length_mm).then(|| {
                    let split = e.point + (t - e.point) * (rules.entry_allowance_mm / len);
                    (i, split, t)
                })
            })
            .take(REF_PLAN_PAIRS)
            .collect();
        let m = model.bone.mesh();
        let brute = reference::Brute::new(&m.vertices, &m.triangles);
        let thr = rules.axis_clearance_mm;
        let mut passed = 0;
        for (k, (i, split, tip)) in segs.iter().enumerate() {
            let clears = brute.clears(split, tip, thr);
            match rules.check(&model.bone, &entries[*i], tip) {
                Ok(()) => {
                    passed += 1;
                    assert!(
                        clears,
                        "{name}: pair {k}: Rules::check accepts it but brute force finds the surface closer than {thr} mm past the entry allowance"
                    );
                }
                Err(avnplan::planning::RejectReason::CorticalClearance) => assert!(
                    !clears,
                    "{name}: pair {k}: Rules::check rejects it for cortical clearance but brute force clears {thr} mm"
                ),
                Err(_) => {}
            }
        }
        eprintln!(
            "planning reference {name}: {} pairs, {passed} accepted, Rules::check consistent with brute force",
            segs.len()
        );
        for group in ["ref/plan/decision", "ref/plan/whole"] {
            let mut g = c.benchmark_group(group);
            g.throughput(Throughput::Elements(segs.len() as u64));
            g.bench_with_input(BenchmarkId::from_parameter(name), &segs, |b, segs| {
                b.iter(|| {
                    segs.iter()
                        .filter(|(_, a, t)| brute.clears(std::hint::black_box(a), t, thr))
                        .count()
                })
            });
            g.finish();
        }
    }
}

criterion_group!(benches, bench_planning, bench_planning_reference);
criterion_main!(benches);
