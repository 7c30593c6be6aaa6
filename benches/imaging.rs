//! Imaging benches: projecting 10^6 points, and one calibration of 50
//! fiducials (DLT + Levenberg-Marquardt).
//!
//! Run: `cargo bench --bench imaging -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use avnplan::imaging::{calibrate, CArm, Projection};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nalgebra::{Point2, Point3, Vector3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

fn projection() -> Projection {
    CArm {
        sid_mm: 1000.0,
        sod_mm: 600.0,
        primary_angle_rad: 0.4,
        secondary_angle_rad: -0.2,
        pixel_spacing_mm: [0.3, 0.3],
        isocenter_mm: Point3::origin(),
        principal_point_px: None,
        image_size_px: [1024, 1024],
    }
    .projection()
    .expect("valid C-arm")
}

fn points(rng: &mut ChaCha8Rng, n: usize) -> Vec<Point3<f64>> {
    (0..n)
        .map(|_| {
            Point3::origin()
                + Vector3::new(
                    rng.random_range(-60.0..60.0),
                    rng.random_range(-60.0..60.0),
                    rng.random_range(-60.0..60.0),
                )
        })
        .collect()
}

fn bench_project(c: &mut Criterion) {
    let p = projection();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let pts = points(&mut rng, 1_000_000);
    let mut out: Vec<Point2<f64>> = Vec::with_capacity(pts.len());
    let mut g = c.benchmark_group("project");
    g.throughput(Throughput::Elements(pts.len() as u64));
    g.bench_function(BenchmarkId::new("try_project", pts.len()), |b| {
        b.iter(|| {
            out.clear();
            out.extend(pts.iter().filter_map(|x| p.try_project(black_box(x))));
            black_box(out.len())
        });
    });
    g.finish();
}

fn bench_calibrate(c: &mut Criterion) {
    let p = projection();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let world = points(&mut rng, 50);
    let noise = Normal::new(0.0, 0.5).expect("valid sigma");
    let px: Vec<Point2<f64>> = world
        .iter()
        .map(|x| {
            let uv = p.project(x).expect("in front");
            Point2::new(uv.x + noise.sample(&mut rng), uv.y + noise.sample(&mut rng))
        })
        .collect();
    let mut g = c.benchmark_group("calibrate");
    g.bench_function(BenchmarkId::new("dlt_lm", world.len()), |b| {
        b.iter(|| calibrate(black_box(&world), black_box(&px), [1024, 1024]).expect("calibrates"));
    });
    g.finish();
}

#[path = "support/reference.rs"]
mod reference;

/// Reference of `project/try_project` (issue 12): the same 10^6 points
/// projected by a hand-written 3x4 product (`support/reference.rs`, no
/// avnplan code). Before timing, asserts that `try_project` gives the same
/// pixels within 1e-9 px and refuses the same points.
fn bench_project_reference(c: &mut Criterion) {
    let p = projection();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let pts = points(&mut rng, 1_000_000);
    let m = p.matrix();
    let rows: [[f64; 4]; 3] = std::array::from_fn(|r| std::array::from_fn(|c| m[(r, c)]));
    let min_depth = avnplan::imaging::MIN_DEPTH_MM;
    for (k, x) in pts.iter().enumerate() {
        let (hot, slow) = (
            p.try_project(x),
            reference::project_rows(&rows, x, min_depth),
        );
        let same = match (hot, slow) {
            (Some(a), Some(b)) => (a.x - b[0]).abs() <= 1e-9 && (a.y - b[1]).abs() <= 1e-9,
            (None, None) => true,
            _ => false,
        };
        assert!(
            same,
            "point {k} {x}: try_project gives {hot:?}, the reference 3x4 product {slow:?}"
        );
    }
    let mut out: Vec<[f64; 2]> = Vec::with_capacity(pts.len());
    let mut g = c.benchmark_group("ref/project");
    g.throughput(Throughput::Elements(pts.len() as u64));
    g.bench_function("try_project", |b| {
        b.iter(|| {
            out.clear();
            out.extend(
                pts.iter()
                    .filter_map(|x| reference::project_rows(&rows, black_box(x), min_depth)),
            );
            black_box(out.len())
        });
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_project,
    bench_calibrate,
    bench_project_reference
);
criterion_main!(benches);
