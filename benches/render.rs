//! Render timings on the real femur mesh: silhouette + contours in one
//! 1024 x 1024 view, and the shaded 3D scene SVG (600 x 800).
//!
//! Run: `cargo bench --bench render` (skips when the mesh is absent).

use avnplan::geometry::TriMesh;
use avnplan::imaging::Projection;
use avnplan::render::{contours, scene_svg, silhouette_mask};
use criterion::{criterion_group, criterion_main, Criterion};
use nalgebra::{Point3, Vector3};

const FEMUR: &str = "/work/shared/data/femur/lhdl_ct_right/femur_r.stl";

fn load() -> Option<TriMesh> {
    let mut f = std::fs::File::open(FEMUR).ok()?;
    let m = stl_io::read_stl(&mut f).ok()?;
    let v = m
        .vertices
        .iter()
        .map(|p| Point3::new(f64::from(p[0]), f64::from(p[1]), f64::from(p[2])))
        .collect();
    let t = m
        .faces
        .iter()
        .map(|f| f.vertices.map(|i| i as u32))
        .collect();
    TriMesh::new(v, t).ok()
}

fn bench(c: &mut Criterion) {
    let Some(mesh) = load() else {
        eprintln!("skipping render bench: {FEMUR} not found");
        return;
    };
    let (lo, hi) = mesh.bounds_mm();
    let centre = nalgebra::center(&lo, &hi);
    let p = Projection::from_geometry(
        &(centre + Vector3::new(0.0, -600.0, 0.0)),
        &(centre + Vector3::new(-0.5 * 0.5 * 1023.0, 400.0, 0.5 * 0.5 * 1023.0)),
        &Vector3::new(0.5, 0.0, 0.0),
        &Vector3::new(0.0, 0.0, -0.5),
    )
    .expect("valid geometry");
    let mut g = c.benchmark_group(format!("render_femur_{}_triangles", mesh.triangles.len()));
    g.sample_size(10);
    g.bench_function("silhouette_mask_1024", |b| {
        b.iter(|| silhouette_mask(&mesh, &p, [1024, 1024]))
    });
    let mask = silhouette_mask(&mesh, &p, [1024, 1024]);
    g.bench_function("contours_1024", |b| b.iter(|| contours(&mask)));
    g.bench_function("scene_svg_600x800", |b| {
        b.iter(|| scene_svg(&mesh, &Vector3::y_axis(), &Vector3::z(), &[], [600, 800]))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
