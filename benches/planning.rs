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

criterion_group!(benches, bench_planning);
criterion_main!(benches);
