//! Registration bench: one 2D/3D registration of a real femur mesh (own
//! frame, about 70k triangles) to the AP and lateral views of a phantom
//! built around it (1 px noise), from the anatomical initialisation.
//!
//! Run: `cargo bench --bench registration`. Needs the real meshes
//! (`AVNPLAN_FEMUR_DIR` or `../shared/data/femur`); skipped otherwise.

use std::path::PathBuf;

use avnplan::phantom::{Phantom, PhantomOptions};
use avnplan::registration::{register, RegistrationOptions};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

fn femur_path() -> Option<PathBuf> {
    let env = std::env::var_os("AVNPLAN_FEMUR_DIR").map(PathBuf::from);
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    env.into_iter()
        .chain([
            manifest.join("../shared/data/femur"),
            manifest.join("../../shared/data/femur"),
        ])
        .map(|d| d.join("tlem2_right").join("femur_r.stl"))
        .find(|p| p.is_file())
}

fn bench_registration(c: &mut Criterion) {
    let Some(path) = femur_path() else {
        eprintln!("SKIPPED: real femur mesh not found (set AVNPLAN_FEMUR_DIR)");
        return;
    };
    let (mesh, _) = avnplan::io::mesh::load_mesh(&path).expect("femur mesh");
    let mut o = PhantomOptions::default();
    o.noise_px = 1.0;
    o.own_frame = true;
    let ph = Phantom::around_mesh(&mesh, 1, &o).expect("phantom");
    let (own, _) = ph.case.bone_mesh.clone().expect("mesh");
    let mut ro = RegistrationOptions::default();
    ro.side = Some(ph.case.side);
    let mut g = c.benchmark_group("registration");
    g.sample_size(10);
    g.bench_function("register_tlem2_ap_lat_1px", |b| {
        b.iter(|| register(black_box(&own), &ph.case.views, &ro).expect("registration"));
    });
    g.finish();
}

criterion_group!(benches, bench_registration);
criterion_main!(benches);
