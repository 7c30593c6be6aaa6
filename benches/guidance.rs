//! Benchmarks of the intra-operative check on a phantom (no external data).
//!
//! Groups: `guidance/check_needle` (one whole check: needle reconstruction
//! from AP + lateral, entry, signed clearance, safe advance by bisection,
//! advice), `guidance/needle_state` (the safety state alone) and
//! `guidance/check_views` (the four check views of one trajectory). Inputs
//! are made outside the timed closures: phantom seed 1 (bone mesh step
//! 0.8 mm), a needle 3 degrees off the line from the true entry to the
//! lesion centre, 60 mm into the bone, projected without noise.
//!
//! Run: `cargo bench --bench guidance`

use criterion::{criterion_group, criterion_main, Criterion};
use nalgebra::{Point3, Rotation3, Unit, Vector3};

use avnplan::geometry::BoneSurface;
use avnplan::guidance::{
    check_needle, check_views, needle_state, CheckContext, NeedleObservation, PlannedPath,
};
use avnplan::phantom::{Phantom, PhantomOptions};
use avnplan::reconstruction::NeedleImage;

fn bench_guidance(c: &mut Criterion) {
    let ph = Phantom::generate(1, &PhantomOptions::default()).expect("phantom");
    let bone = BoneSurface::new(ph.mesh.clone()).expect("bone");
    let entry = ph.entry_mm();
    let target = ph.lesion.center;
    let d0 = (target - entry).normalize();
    let axis = Unit::new_normalize(d0.cross(&Vector3::z()));
    let d = Rotation3::from_axis_angle(&axis, 3f64.to_radians()) * d0;
    let tip = entry + d * 60.0;
    let seen: Vec<NeedleObservation> = ph
        .case
        .views
        .iter()
        .map(|v| {
            let p = v.projection;
            let px = |x: &Point3<f64>| p.project(x).expect("in front");
            NeedleObservation {
                view_name: v.name.clone(),
                image: NeedleImage {
                    projection: p,
                    tip_px: px(&tip),
                    shaft_px: vec![px(&(tip - d * 30.0)), px(&(tip - d * 70.0))],
                },
            }
        })
        .collect();
    let planned = [PlannedPath {
        entry_mm: entry,
        tip_mm: target,
    }];
    let cons = ph.case.constraints;
    let ctx = CheckContext {
        bone: &bone,
        side: ph.case.side,
        constraints: &cons,
        forbidden: &[],
    };
    let dir = Unit::new_normalize(d);
    let mut g = c.benchmark_group("guidance");
    g.bench_function("check_needle", |b| {
        b.iter(|| check_needle(&ctx, &planned, &seen).expect("check"))
    });
    g.bench_function("needle_state", |b| {
        b.iter(|| needle_state(&bone, &cons, &[], &tip, &dir))
    });
    g.bench_function("check_views", |b| {
        b.iter(|| check_views(&bone, ph.case.side, &cons, &entry, &target))
    });
    g.finish();
}

criterion_group!(benches, bench_guidance);
criterion_main!(benches);
