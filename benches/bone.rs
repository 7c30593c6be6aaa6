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

#[path = "support/reference.rs"]
mod reference;

/// Segments of the brute-force reference of `decision` (the first ones of
/// the 1,000-candidate set).
const REF_DECISION_SEGMENTS: usize = 100;
/// Segments of the brute-force reference of `exact_clearance`.
const REF_DISTANCE_SEGMENTS: usize = 10;

/// Reference of `decision` (issue 12): the same decision by brute force
/// over every triangle (box pre-filter, early exit; code in
/// `support/reference.rs`, no avnplan code) on the first
/// [`REF_DECISION_SEGMENTS`] benched candidates. Before timing, asserts
/// that the BVH's decisions equal it on those candidates.
fn decision_reference(c: &mut Criterion) {
    let mut g = c.benchmark_group("ref/decision");
    for f in femurs() {
        let m = f.surface.mesh();
        let brute = reference::Brute::new(&m.vertices, &m.triangles);
        let segs: Vec<_> = needle_segments(&f, COUNTS[0], 7 + COUNTS[0] as u64)
            .into_iter()
            .take(REF_DECISION_SEGMENTS)
            .collect();
        for (k, (a, b)) in segs.iter().enumerate() {
            let (hot, slow) = (
                f.surface.segment_clears(a, b, THRESHOLD_MM),
                brute.clears(a, b, THRESHOLD_MM),
            );
            assert!(
                hot == slow,
                "{}: candidate {k}: the BVH decision ({hot}) differs from the brute-force reference ({slow}) at {THRESHOLD_MM} mm",
                f.name
            );
        }
        g.throughput(Throughput::Elements(segs.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(f.name), &segs, |b, segs| {
            b.iter(|| {
                segs.iter()
                    .filter(|(a, e)| brute.clears(black_box(a), black_box(e), THRESHOLD_MM))
                    .count()
            });
        });
    }
    g.finish();
}

/// Reference of `exact_clearance` (issue 12): the exact distance by brute
/// force over every triangle, no pruning, on the first
/// [`REF_DISTANCE_SEGMENTS`] candidates. Before timing, asserts that
/// `segment_distance_mm` equals the brute-force minimum within 1e-9 mm on
/// every benched candidate (both counts), in parallel.
fn exact_clearance_reference(c: &mut Criterion) {
    let mut g = c.benchmark_group("ref/exact_clearance");
    g.sample_size(10);
    for f in femurs() {
        let m = f.surface.mesh();
        let brute = reference::Brute::new(&m.vertices, &m.triangles);
        for &n in &COUNTS {
            let segs = needle_segments(&f, n, 7 + n as u64);
            let worst = segs
                .par_iter()
                .enumerate()
                .map(|(k, (a, b))| {
                    let hot = f.surface.segment_distance_mm(a, b);
                    // Exact when the true distance is <= hot + 1e-6; larger
                    // (or infinite) otherwise, which the check then reports.
                    let slow = brute.distance_within(a, b, hot + 1e-6);
                    ((hot - slow).abs(), k, hot, slow)
                })
                .reduce(|| (0.0, 0, 0.0, 0.0), |x, y| if y.0 > x.0 { y } else { x });
            assert!(
                worst.0 <= 1e-9,
                "{}/{n}: candidate {}: segment_distance_mm = {} mm but brute force over every triangle gives {} mm (|diff| {:e} > 1e-9)",
                f.name,
                worst.1,
                worst.2,
                worst.3,
                worst.0
            );
            eprintln!(
                "exact_clearance {}/{n}: equal to brute force within {:.1e} mm (tolerance 1e-9)",
                f.name, worst.0
            );
        }
        let segs: Vec<_> = needle_segments(&f, COUNTS[0], 7 + COUNTS[0] as u64)
            .into_iter()
            .take(REF_DISTANCE_SEGMENTS)
            .collect();
        g.throughput(Throughput::Elements(segs.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(f.name), &segs, |b, segs| {
            b.iter(|| {
                segs.iter()
                    .map(|(a, e)| brute.distance(black_box(a), black_box(e)))
                    .sum::<f64>()
            });
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bvh_build,
    decision,
    exact_clearance,
    decision_reference,
    exact_clearance_reference
);
criterion_main!(benches);
