//! Bone-surface benchmarks on the real femur meshes (issue 5, "Speed").
//!
//! Groups:
//! * `bvh_build`: [`BoneSurface::new`] (checks, SAH hierarchy, pseudo-normals)
//!   per mesh;
//! * `decision`: the clearance decision `segment_clears(entry, tip, 3.6 mm)`
//!   on seeded needle-like segments (tip within 15 mm of the head centre, other end 40-75
//!   mm down the neck within 25 degrees of its axis), candidate counts as `BenchmarkId`s;
//!   before timing, the decisions are checked once against an exact
//!   brute-force reference over every triangle;
//! * `exact_clearance`: the exact `segment_distance_mm` on the same segments.
//!
//! Run: `cargo bench --bench bone -- --warm-up-time 1 --measurement-time 3`
//! (one thread: each query runs on the bench thread). The meshes are read from
//! `/work/shared/data/femur/` (or `AVNPLAN_FEMUR_DIR`); absent meshes are
//! skipped with a message.

use std::hint::black_box;

use avnplan::geometry::BoneSurface;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use rayon::prelude::*;

#[allow(
    dead_code,
    unused_imports,
    reason = "only the `fixtures` module is used here; the tests compile away outside cfg(test)"
)]
#[path = "../tests/it/surface.rs"]
mod surface_it;

use surface_it::fixtures::{load_femur, needle_segments, BruteForce, Femur, FEMURS, THRESHOLD_MM};

const COUNTS: [usize; 2] = [1_000, 20_000];

fn femurs() -> Vec<Femur> {
    (0..FEMURS.len()).filter_map(load_femur).collect()
}

fn bvh_build(c: &mut Criterion) {
    let mut g = c.benchmark_group("bvh_build");
    g.sample_size(10);
    for f in femurs() {
        let mesh = f.surface.mesh().clone();
        g.throughput(Throughput::Elements(mesh.triangles.len() as u64));
        g.bench_function(BenchmarkId::from_parameter(f.name), |b| {
            b.iter_batched(
                || mesh.clone(),
                |m| BoneSurface::new(m).expect("valid mesh"),
                BatchSize::LargeInput,
            );
        });
    }
    g.finish();
}

fn decision(c: &mut Criterion) {
    let mut g = c.benchmark_group("decision");
    for f in femurs() {
        let brute = BruteForce::new(f.surface.mesh());
        for &n in &COUNTS {
            let segs = needle_segments(&f, n, 7 + n as u64);
            // Checked once, outside the timed loop: zero differing decisions.
            let differ = segs
                .par_iter()
                .filter(|(a, b)| {
                    f.surface.segment_clears(a, b, THRESHOLD_MM) != brute.clears(a, b, THRESHOLD_MM)
                })
                .count();
            assert_eq!(differ, 0, "{}: decisions differ from brute force", f.name);
            let pass = segs
                .iter()
                .filter(|(a, b)| f.surface.segment_clears(a, b, THRESHOLD_MM))
                .count();
            eprintln!(
                "decision {}/{n}: {pass} of {n} clear {THRESHOLD_MM} mm ({:.1} %), equal to brute force",
                f.name,
                100.0 * pass as f64 / n as f64
            );
            g.throughput(Throughput::Elements(n as u64));
            g.bench_with_input(BenchmarkId::new(f.name, n), &segs, |b, segs| {
                b.iter(|| {
                    segs.iter()
                        .filter(|(a, e)| {
                            f.surface
                                .segment_clears(black_box(a), black_box(e), THRESHOLD_MM)
                        })
                        .count()
                });
            });
        }
    }
    g.finish();
}

fn exact_clearance(c: &mut Criterion) {
    let mut g = c.benchmark_group("exact_clearance");
    g.sample_size(10);
    for f in femurs() {
        for &n in &COUNTS {
            let segs = needle_segments(&f, n, 7 + n as u64);
            g.throughput(Throughput::Elements(n as u64));
            g.bench_with_input(BenchmarkId::new(f.name, n), &segs, |b, segs| {
                b.iter(|| {
                    segs.iter()
                        .map(|(a, e)| f.surface.segment_distance_mm(black_box(a), black_box(e)))
                        .sum::<f64>()
                });
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bvh_build, decision, exact_clearance);
criterion_main!(benches);
