//! Benches of the anatomy stage: femur landmarks on the real meshes, and the
//! Kerboul lesion's moments.
//!
//! Run: `cargo bench --bench anatomy`. The real meshes are read from
//! `$AVNPLAN_FEMUR_DIR` or `../shared/data/femur`; absent meshes are skipped
//! with a message.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use avnplan::anatomy::{FemurLandmarks, HeadNeckFrame, Lesion};
use avnplan::case::Kerboul;
use avnplan::geometry::{Sphere, TriMesh};
use avnplan::Side;
use criterion::{criterion_group, criterion_main, Criterion};
use nalgebra::{Point3, Vector3};

fn femur(name: &str) -> Option<TriMesh> {
    let dir = std::env::var_os("AVNPLAN_FEMUR_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/femur"));
    let mut p = dir.join(name).join("femur_r.stl");
    if !p.exists() {
        p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/femur")
            .join(name)
            .join("femur_r.stl");
    }
    let Ok(mut f) = std::fs::File::open(&p) else {
        eprintln!("skipping: {} not found", p.display());
        return None;
    };
    let m = stl_io::read_stl(&mut f).ok()?;
    let v = m
        .vertices
        .iter()
        .map(|p| Point3::new(p.0[0] as f64, p.0[1] as f64, p.0[2] as f64))
        .collect();
    let t = m
        .faces
        .iter()
        .map(|f| f.vertices.map(|i| i as u32))
        .collect();
    TriMesh::new(v, t).ok()
}

fn landmarks(c: &mut Criterion) {
    for name in ["lhdl_ct_right", "tlem2_right"] {
        if let Some(m) = femur(name) {
            c.bench_function(&format!("femur_landmarks/{name}"), |b| {
                b.iter(|| FemurLandmarks::from_mesh(black_box(&m), None).ok())
            });
        }
    }
}

fn kerboul(c: &mut Criterion) {
    let head = Sphere::new(Point3::origin(), 23.0).expect("head");
    let frame =
        HeadNeckFrame::new(head.center, &Vector3::x(), &Vector3::z(), Side::Right).expect("frame");
    let spec = Kerboul {
        coronal_arc_deg: [-30.0, 60.0],
        sagittal_arc_deg: [-20.0, 70.0],
        depth_mm: 15.0,
    };
    let l = Lesion::kerboul(head, frame, spec).expect("lesion");
    c.bench_function("kerboul/centroid", |b| {
        b.iter(|| black_box(&l).centroid_mm())
    });
    c.bench_function("kerboul/grid_1mm", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            out.clear();
            black_box(&l).grid_points(1.0, &mut out);
            out.len()
        })
    });
}

criterion_group!(benches, landmarks, kerboul);
criterion_main!(benches);
