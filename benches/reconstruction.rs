//! Criterion bench of one full reconstruction (head, neck, shaft, lesion,
//! entry and the conservative femur mesh) from an AP + lateral pair of
//! synthetic annotated views. Run: `cargo bench --bench reconstruction`.

use avnplan::geometry::Ellipsoid;
use avnplan::imaging::{CArm, Projection, View};
use avnplan::reconstruction::{ellipsoid_outline_px, reconstruct, ReconstructionOptions};
use criterion::{criterion_group, criterion_main, Criterion};
use nalgebra::{Point2, Point3, Rotation3, Vector3};

fn carm(primary_deg: f64) -> Projection {
    CArm {
        sid_mm: 1000.0,
        sod_mm: 650.0,
        primary_angle_rad: primary_deg.to_radians(),
        secondary_angle_rad: 0.0,
        pixel_spacing_mm: [0.3, 0.3],
        isocenter_mm: Point3::origin(),
        principal_point_px: None,
        image_size_px: [1024, 1024],
    }
    .projection()
    .expect("valid C-arm")
}

/// Silhouette edges of a circular cylinder `a0 + t d`, radius `r`.
fn edges(
    p: &Projection,
    a0: Point3<f64>,
    d: Vector3<f64>,
    r: f64,
    t: [f64; 2],
) -> [Vec<Point2<f64>>; 2] {
    let d = d.normalize();
    let e1 = (Vector3::z() - d * d.z).normalize();
    let e2 = d.cross(&e1);
    let o = p.source_mm() - a0;
    let (xs, ys) = (o.dot(&e1) / r, o.dot(&e2) / r);
    let phi = ys.atan2(xs);
    let da = (1.0 / xs.hypot(ys)).acos();
    [phi - da, phi + da].map(|th| {
        (0..=20)
            .map(|i| {
                let tt = t[0] + (t[1] - t[0]) * f64::from(i) / 20.0;
                p.project(&(a0 + d * tt + e1 * (r * th.cos()) + e2 * (r * th.sin())))
                    .expect("in front of the source")
            })
            .collect()
    })
}

fn scene() -> Vec<View> {
    let c = Point3::new(30.0, 0.0, 45.0);
    let head = Ellipsoid::sphere(c, 24.0).expect("sphere");
    let un = Vector3::new(0.72, -0.2, 0.6).normalize();
    let j = c - un * 55.0;
    let us = Vector3::new(-0.12, 0.05, 1.0).normalize();
    let lesion = Ellipsoid::new(
        c + Vector3::new(0.0, -6.0, 7.0),
        Vector3::new(9.0, 6.0, 5.0),
        Rotation3::from_euler_angles(0.3, -0.2, 0.4),
    )
    .expect("ellipsoid");
    let entry = j - us * 30.0 - Vector3::new(14.0, 0.0, 0.0);
    [("AP", 0.0), ("LAT", 90.0)]
        .iter()
        .map(|&(name, a)| {
            let p = carm(a);
            let mut v = View::new(name, [1024, 1024], p);
            v.annotations.head_outline_px = ellipsoid_outline_px(&p, &head, 48).expect("outline");
            v.annotations.neck_edges_px = Some(edges(&p, c, un, 12.0, [-40.0, -20.0]));
            v.annotations.shaft_edges_px = Some(edges(&p, j, us, 14.0, [-95.0, -30.0]));
            v.annotations.lesion_outline_px =
                ellipsoid_outline_px(&p, &lesion, 40).expect("outline");
            v.annotations.entry_px = Some(p.project(&entry).expect("entry"));
            v
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let views = scene();
    let mut no_mesh = ReconstructionOptions::default();
    no_mesh.build_mesh = false;
    c.bench_function("reconstruct/models_only", |b| {
        b.iter(|| reconstruct(&views, &no_mesh).expect("reconstruction"))
    });
    let full = ReconstructionOptions::default();
    c.bench_function("reconstruct/with_femur_mesh_1mm", |b| {
        b.iter(|| reconstruct(&views, &full).expect("reconstruction"))
    });
}

#[path = "support/reference.rs"]
mod reference;

/// Reference of `reconstruct/*` (issue 12): a fixed dense workload of the
/// same kind (a least-squares fit solved by hand, `support/reference.rs`, no
/// avnplan code): 20 Gauss-Newton iterations of a sphere fit to 2,000 points
/// of a 60-degree cap of the scene's head sphere. Before timing, asserts
/// that `reconstruct` recovers the scene's head (centre within 0.05 mm,
/// radius within 0.05 mm of the noise-free truth) and that the reference
/// fit recovers its sphere within 1e-6 mm.
fn bench_reference(c: &mut Criterion) {
    let (centre, radius_mm) = (Point3::new(30.0, 0.0, 45.0), 24.0);
    let mut no_mesh = ReconstructionOptions::default();
    no_mesh.build_mesh = false;
    let r = reconstruct(&scene(), &no_mesh).expect("reconstruction");
    let (dc, dr) = (
        (r.head.sphere.center - centre).norm(),
        (r.head.sphere.radius_mm - radius_mm).abs(),
    );
    assert!(
        dc <= 0.05 && dr <= 0.05,
        "reconstruct: head centre off by {dc} mm, radius by {dr} mm (tolerance 0.05 mm each)"
    );
    let pts: Vec<Point3<f64>> = (0..2_000)
        .map(|i| {
            // Golden-angle spiral on the cap within 60 degrees of +z.
            let k = f64::from(i) + 0.5;
            let cos_t = 1.0 - (1.0 - 60f64.to_radians().cos()) * k / 2_000.0;
            let sin_t = (1.0 - cos_t * cos_t).sqrt();
            let phi = k * std::f64::consts::PI * (3.0 - 5f64.sqrt());
            centre + Vector3::new(sin_t * phi.cos(), sin_t * phi.sin(), cos_t) * radius_mm
        })
        .collect();
    let (c_fit, r_fit) = reference::sphere_fit_gauss_newton(&pts, 20);
    let err = (Point3::from(c_fit) - centre)
        .norm()
        .max((r_fit - radius_mm).abs());
    assert!(err <= 1e-6, "reference sphere fit off by {err} mm");
    c.bench_function("ref/reconstruct", |b| {
        b.iter(|| reference::sphere_fit_gauss_newton(std::hint::black_box(&pts), 20))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench, bench_reference
}
criterion_main!(benches);
