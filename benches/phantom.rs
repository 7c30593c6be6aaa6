//! Phantom benches: implicit meshing of the synthetic femur and a 1024^2
//! simulated radiograph.
//!
//! Run: `cargo bench --bench phantom`.

use avnplan::geometry::mesh_implicit;
use avnplan::phantom::{Phantom, PhantomOptions};
use criterion::{criterion_group, criterion_main, Criterion};
use nalgebra::Point3;
use std::hint::black_box;

fn bench_phantom(c: &mut Criterion) {
    let mut g = c.benchmark_group("phantom");
    g.sample_size(10);
    g.bench_function("mesh_implicit_sphere_r20_step1", |b| {
        b.iter(|| {
            mesh_implicit(
                |p: &Point3<f64>| p.coords.norm() - 20.0,
                Point3::new(-22.0, -22.0, -22.0),
                Point3::new(22.0, 22.0, 22.0),
                black_box(1.0),
            )
            .unwrap()
        });
    });
    let opts = PhantomOptions::default();
    g.bench_function("generate_default_step0.8", |b| {
        b.iter(|| Phantom::generate(black_box(1), &opts).unwrap());
    });
    let ph = Phantom::generate(1, &opts).unwrap();
    g.bench_function("radiograph_ap_1024", |b| {
        b.iter(|| ph.radiograph(black_box(0)).unwrap());
    });
    g.finish();
}

criterion_group!(benches, bench_phantom);
criterion_main!(benches);
