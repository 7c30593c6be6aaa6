//! Degenerate geometry, resource limits and determinism (issue 9).
//!
//! Every public function fed a degenerate configuration must give a typed
//! [`Error`] or a correct answer, never a panic or a NaN. Cases covered:
//!
//! * coincident sources (two views from the same C-arm pose);
//! * views 0-5 degrees apart (below the contract's 10 degrees);
//! * points at infinity (huge coordinates), at the source and behind it;
//! * NaN and infinite coordinates in constructors, fits, projections;
//! * zero-area triangles (repaired away; refused by `BoneSurface::new`);
//! * inside-out meshes (flipped with a warning), self-intersecting meshes
//!   (queries stay finite), empty meshes and out-of-range indices;
//! * lesions crossing the head surface or leaving the bone (planner);
//! * zero-radius (zero-diameter) needles and needle images with no length;
//! * limits: a binary STL header counting 10^7 triangles, a case with 10^4
//!   views, a constraint set that makes the candidates explode;
//! * determinism: byte-identical plan JSON for 1, 2 and 8 threads and on
//!   repeated runs, for a case with a mesh and a views-only case.

use std::sync::OnceLock;

use avnplan::anatomy::{HipModel, Lesion, LesionMesh};
use avnplan::geometry::{
    fit_circle_2d, fit_line, fit_sphere, BoneSurface, Ellipsoid, Sphere, TriMesh, MAX_TRIANGLES,
};
use avnplan::imaging::{CArm, Projection};
use avnplan::io::case::{check_view_directions, CaseFile, ConstraintsWire, CASE_SCHEMA, MAX_VIEWS};
use avnplan::io::json::{from_json_bytes_with_schema, to_json_string};
use avnplan::io::mesh::{load_mesh_bytes, repair_and_check, MeshFormat};
use avnplan::phantom::{Phantom, PhantomOptions};
use avnplan::pipeline::{build_model, plan_to_file, BuiltModel, PipelineOptions};
use avnplan::planning::{plan_with, PlanOptions, PlanStatus};
use avnplan::reconstruction::{reconstruct_needle, triangulate, NeedleImage};
use avnplan::{Case, Error};
use nalgebra::{Matrix3x4, Point2, Point3, Rotation3, Vector3};
use proptest::prelude::*;

use crate::surface::shapes::{cube, icosphere};

fn carm(primary_deg: f64, secondary_deg: f64) -> CArm {
    crate::recon::carm(primary_deg, secondary_deg, 650.0)
}

fn proj(primary_deg: f64, secondary_deg: f64) -> Projection {
    carm(primary_deg, secondary_deg).projection().unwrap()
}

fn view(name: &str, p: Projection) -> avnplan::imaging::View {
    avnplan::imaging::View::new(name, [1024, 1024], p)
}

fn finite3(p: &Point3<f64>) -> bool {
    p.iter().all(|c| c.is_finite())
}

/// A typed error or a finite point, never a NaN.
fn ok_or_typed<T>(r: &avnplan::Result<T>, finite: impl Fn(&T) -> bool) {
    if let Ok(v) = r {
        assert!(finite(v), "non-finite answer");
    }
}

// ---------------------------------------------------------------------
// Views: coincident sources, 0-5 degrees apart.
// ---------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Two views 0-5 degrees apart (the same source when 0) are refused by
    /// the view check, naming both; triangulation through them refuses or
    /// answers within the stated noise, never NaN.
    #[test]
    fn views_under_five_degrees_apart_are_refused(
        a in -90.0f64..90.0, sec in -30.0f64..30.0, delta in 0.0f64..5.0,
        x in -30.0f64..30.0, y in -30.0f64..30.0, z in -30.0f64..30.0,
    ) {
        let (p0, p1) = (proj(a, sec), proj(a + delta, sec));
        let e = check_view_directions(&[view("A", p0), view("B", p1)]).unwrap_err();
        let msg = e.to_string();
        prop_assert!(matches!(e, Error::Invalid { .. }), "{msg}");
        prop_assert!(msg.contains("`A`") && msg.contains("`B`"), "{msg}");
        let xw = Point3::new(x, y, z);
        let obs = [(p0, p0.project(&xw).unwrap()), (p1, p1.project(&xw).unwrap())];
        match triangulate(&obs, 1.0) {
            Ok(t) => {
                prop_assert!(finite3(&t.point));
                prop_assert!(t.covariance_mm2.iter().all(|c| c.is_finite()));
            }
            Err(e) => prop_assert!(matches!(e, Error::Degenerate { .. } | Error::Invalid { .. }), "{e}"),
        }
    }

    /// A needle seen in two views 0-5 degrees apart: typed error or a
    /// finite needle.
    #[test]
    fn needle_in_near_parallel_views(a in -60.0f64..60.0, delta in 0.0f64..5.0, tx in -20.0f64..20.0) {
        let tip = Point3::new(tx, 5.0, 20.0);
        let d = Vector3::new(0.3, -0.2, 0.93).normalize();
        let img = |p: Projection| NeedleImage {
            projection: p,
            tip_px: p.project(&tip).unwrap(),
            shaft_px: vec![p.project(&(tip - 40.0 * d)).unwrap()],
        };
        let r = reconstruct_needle(&[img(proj(a, 0.0)), img(proj(a + delta, 0.0))]);
        ok_or_typed(&r, |n| finite3(&n.tip_mm) && n.direction.iter().all(|c| c.is_finite()) && n.rms_px.is_finite());
    }

    /// Points far away, at the source or behind it: a typed error or a
    /// finite pixel, and `try_project` agrees with `project`.
    #[test]
    fn far_and_behind_points_project_or_refuse(
        a in -90.0f64..90.0, s in -1.5f64..1.5, k in 0usize..7,
    ) {
        let p = proj(a, 0.0);
        let src = p.source_mm();
        let axis = p.viewing_direction().into_inner();
        let pts = [
            src,                                  // at the source
            src - axis * 10.0f64.powf(s + 2.0),   // behind it
            src + axis * 1e-9,                    // just in front
            Point3::new(1e300, -1e300, 1e300),    // "at infinity"
            Point3::new(f64::INFINITY, 0.0, 0.0),
            Point3::new(f64::NAN, 0.0, 0.0),
            src + axis * 10.0f64.powf(s + 2.0),   // in front
        ];
        let x = pts[k];
        match p.project(&x) {
            Ok(uv) => {
                prop_assert!(uv.x.is_finite() && uv.y.is_finite());
                prop_assert_eq!(p.try_project(&x), Some(uv));
            }
            Err(e) => {
                prop_assert!(matches!(e, Error::Degenerate { .. } | Error::Invalid { .. }), "{e}");
                prop_assert_eq!(p.try_project(&x), None);
            }
        }
        prop_assert!(k != 1 || p.project(&x).is_err(), "behind the source must be refused");
    }
}

#[test]
fn coincident_sources_are_refused_everywhere() {
    let p = proj(20.0, 10.0);
    let e = check_view_directions(&[view("AP", p), view("AP2", p)]).unwrap_err();
    assert!(e.to_string().contains("0.00 degrees"), "{e}");
    let x = Point3::new(3.0, 4.0, 5.0);
    let uv = p.project(&x).unwrap();
    let e = triangulate(&[(p, uv), (p, uv)], 1.0).unwrap_err();
    assert!(matches!(e, Error::Degenerate { .. }), "{e}");
}

#[test]
fn nan_and_huge_values_in_constructors_are_typed_errors() {
    let nan = f64::NAN;
    assert!(Sphere::new(Point3::new(nan, 0.0, 0.0), 1.0).is_err());
    assert!(Sphere::new(Point3::origin(), 0.0).is_err());
    assert!(Sphere::new(Point3::origin(), f64::INFINITY).is_err());
    assert!(Ellipsoid::new(
        Point3::origin(),
        Vector3::new(1.0, 0.0, 1.0),
        Rotation3::identity()
    )
    .is_err());
    assert!(Ellipsoid::new(
        Point3::origin(),
        Vector3::new(1.0, nan, 1.0),
        Rotation3::identity()
    )
    .is_err());
    assert!(TriMesh::new(vec![Point3::new(nan, 0.0, 0.0); 3], vec![[0, 1, 2]]).is_err());
    assert!(TriMesh::new(vec![Point3::origin(); 3], vec![[0, 1, 3]]).is_err());
    assert!(TriMesh::new(vec![], vec![]).is_err());
    // Projections from NaN, zero and rank-deficient matrices.
    for m in [
        Matrix3x4::repeat(nan),
        Matrix3x4::zeros(),
        Matrix3x4::from_row_slice(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]),
        Matrix3x4::from_row_slice(&[
            1e300, 0.0, 0.0, 0.0, 0.0, 1e300, 0.0, 0.0, 0.0, 0.0, 1e-300, 1.0,
        ]),
    ] {
        if let Ok(p) = Projection::from_matrix(&m) {
            assert!(finite3(&p.source_mm()), "{m}");
            assert!(p.viewing_direction().iter().all(|c| c.is_finite()));
        }
    }
    // C-arms with NaN or absurd distances.
    for (sid, sod) in [
        (nan, 650.0),
        (1000.0, 1000.0),
        (1e300, 1.0),
        (0.0, 0.0),
        (1000.0, -1.0),
    ] {
        let mut c = carm(0.0, 0.0);
        c.sid_mm = sid;
        c.sod_mm = sod;
        if let Ok(p) = c.projection() {
            assert!(finite3(&p.source_mm()));
        }
    }
    // Fits of NaN, coincident and collinear points.
    let same = vec![Point3::new(1.0, 2.0, 3.0); 10];
    assert!(fit_sphere(&same).is_err());
    assert!(fit_line(&same).is_err());
    let mut with_nan = same.clone();
    with_nan[3].x = nan;
    assert!(fit_sphere(&with_nan).is_err());
    assert!(fit_line(&with_nan).is_err());
    let coplanar: Vec<Point3<f64>> = (0..20)
        .map(|i| Point3::new(i as f64, (i * i) as f64, 0.0))
        .collect();
    ok_or_typed(&fit_sphere(&coplanar), |(s, r)| {
        s.radius_mm.is_finite() && r.is_finite()
    });
    let collinear: Vec<Point2<f64>> = (0..10)
        .map(|i| Point2::new(i as f64, 2.0 * i as f64))
        .collect();
    assert!(fit_circle_2d(&collinear).is_err());
    let huge: Vec<Point2<f64>> = (0..10)
        .map(|i| Point2::new(1e300 * (i as f64).cos(), 1e300 * (i as f64).sin()))
        .collect();
    ok_or_typed(&fit_circle_2d(&huge), |(c, r, rms)| {
        c.x.is_finite() && r.is_finite() && rms.is_finite()
    });
    // Triangulation of NaN pixels.
    let (p0, p1) = (proj(0.0, 0.0), proj(90.0, 0.0));
    let r = triangulate(
        &[(p0, Point2::new(nan, 1.0)), (p1, Point2::new(3.0, 4.0))],
        1.0,
    );
    assert!(r.is_err());
    let r = triangulate(
        &[(p0, Point2::new(1e300, 1.0)), (p1, Point2::new(3.0, 4.0))],
        1.0,
    );
    ok_or_typed(&r, |t| finite3(&t.point));
}

// ---------------------------------------------------------------------
// Meshes: zero-area, inside-out, self-intersecting, empty.
// ---------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Zero-area triangles (a collinear sliver on an edge, a repeated
    /// vertex) are dropped by the repair with a warning; `BoneSurface::new`
    /// refuses them unrepaired; the repaired mesh has the cube's volume.
    #[test]
    fn zero_area_triangles_are_dropped(s in 30.0f64..200.0, f in 0.01f64..0.99, inside_out: bool) {
        let mut m = cube(s);
        m.vertices.push(Point3::new(s * f, 0.0, 0.0));
        let n = m.vertices.len() as u32 - 1;
        m.triangles.push([0, n, 1]);
        m.triangles.push([2, 2, 3]);
        if inside_out {
            m.flip_orientation();
        }
        prop_assert!(BoneSurface::new(m.clone()).is_err());
        let (r, w) = repair_and_check(m, "c.stl").unwrap();
        prop_assert!(w.iter().any(|w| w.contains("zero-area")), "{w:?}");
        prop_assert_eq!(w.iter().any(|w| w.contains("inside out")), inside_out);
        prop_assert!((r.signed_volume_mm3() - s.powi(3)).abs() < 1e-6 * s.powi(3));
        prop_assert!(BoneSurface::new(r).is_ok());
    }

    /// A closed, oriented but self-intersecting mesh (one cube vertex pushed
    /// through the opposite face): queries stay finite; `contains` agrees
    /// with the sign of the distance.
    #[test]
    fn self_intersecting_mesh_queries_are_finite(
        push in 1.2f64..3.0, qx in -60.0f64..100.0, qy in -60.0f64..100.0, qz in -60.0f64..100.0,
    ) {
        let s = 40.0;
        let mut m = cube(s);
        m.vertices[7] = Point3::new(s, s, s) - Vector3::new(s, s, s) * push;
        let q = Point3::new(qx, qy, qz);
        match BoneSurface::new(m.clone()) {
            Ok(b) => {
                let d = b.signed_distance_mm(&q);
                prop_assert!(d.is_finite());
                let cp = b.closest_point(&q);
                prop_assert!(finite3(&cp.point));
                let seg = b.segment_distance_mm(&q, &Point3::new(20.0, 20.0, 20.0));
                prop_assert!(seg.is_finite() && seg >= 0.0);
            }
            Err(e) => prop_assert!(matches!(e, Error::Mesh { .. }), "{e}"),
        }
        match repair_and_check(m, "x.stl") {
            Ok((r, _)) => prop_assert!(r.signed_volume_mm3() > 0.0),
            Err(e) => prop_assert!(matches!(e, Error::Mesh { .. }), "{e}"),
        }
    }
}

#[test]
fn empty_and_broken_meshes_are_typed_errors() {
    let empty = TriMesh {
        vertices: vec![],
        triangles: vec![],
    };
    assert!(matches!(
        BoneSurface::new(empty.clone()),
        Err(Error::Mesh { .. })
    ));
    assert!(matches!(
        LesionMesh::new(empty.clone()),
        Err(Error::Mesh { .. })
    ));
    assert!(matches!(
        repair_and_check(empty, "e"),
        Err(Error::Mesh { .. })
    ));
    // Out-of-range index and NaN vertex behind the public fields.
    let mut m = icosphere(Point3::origin(), 10.0, 1);
    m.triangles[3][1] = 10_000;
    assert!(matches!(
        LesionMesh::new(m.clone()),
        Err(Error::Mesh { .. })
    ));
    assert!(matches!(
        BoneSurface::new(m.clone()),
        Err(Error::Mesh { .. })
    ));
    let mut m = icosphere(Point3::origin(), 10.0, 1);
    m.vertices[2].z = f64::NAN;
    assert!(matches!(
        LesionMesh::new(m.clone()),
        Err(Error::Mesh { .. })
    ));
    assert!(matches!(BoneSurface::new(m), Err(Error::Mesh { .. })));
    // Inside-out lesion mesh.
    let mut m = icosphere(Point3::origin(), 10.0, 1);
    m.flip_orientation();
    assert!(matches!(LesionMesh::new(m), Err(Error::Mesh { .. })));
}

/// Mesh files of nothing, of one triangle, of garbage, with NaN: typed.
#[test]
fn degenerate_mesh_files_are_typed_errors() {
    let tri = |xyz: [f32; 9]| {
        let mut b = vec![0u8; 80];
        b.extend(1u32.to_le_bytes());
        b.extend([0u8; 12]);
        for c in xyz {
            b.extend(c.to_le_bytes());
        }
        b.extend([0u8; 2]);
        b
    };
    for (bytes, fmt) in [
        (Vec::new(), MeshFormat::Stl),
        (b"solid x\nendsolid x\n".to_vec(), MeshFormat::Stl),
        (
            tri([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 2.0, 0.0, 0.0]),
            MeshFormat::Stl,
        ),
        (
            tri([f32::NAN, 0.0, 0.0, 50.0, 0.0, 0.0, 0.0, 50.0, 0.0]),
            MeshFormat::Stl,
        ),
        (
            b"v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n".to_vec(),
            MeshFormat::Obj,
        ),
        (b"v 0 0 0\nf 1 2 3\n".to_vec(), MeshFormat::Obj),
        (
            b"ply\nformat ascii 1.0\nelement vertex 0\nelement face 0\nend_header\n".to_vec(),
            MeshFormat::Ply,
        ),
    ] {
        let e = load_mesh_bytes(&bytes, fmt, "m").unwrap_err();
        assert!(
            matches!(e, Error::Mesh { .. } | Error::Invalid { .. }),
            "{e}"
        );
    }
}

// ---------------------------------------------------------------------
// Needles of zero radius; lesions crossing the head surface.
// ---------------------------------------------------------------------

#[test]
fn zero_radius_needles_are_refused() {
    for d in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let c = ConstraintsWire {
            needle_diameter_mm: Some(d),
            ..Default::default()
        };
        let e = c.to_constraints().unwrap_err();
        assert!(e.to_string().contains("needle_diameter_mm"), "{e}");
    }
    // A needle image whose shaft point is its tip: typed error.
    let p = proj(0.0, 0.0);
    let q = proj(90.0, 0.0);
    let tip = Point3::new(1.0, 2.0, 3.0);
    let img = |p: Projection| NeedleImage {
        projection: p,
        tip_px: p.project(&tip).unwrap(),
        shaft_px: vec![p.project(&tip).unwrap()],
    };
    assert!(reconstruct_needle(&[img(p), img(q)]).is_err());
}

/// One phantom model (coarse mesh, small images), built once.
fn phantom_model() -> &'static (Case, HipModel) {
    static M: OnceLock<(Case, HipModel)> = OnceLock::new();
    M.get_or_init(|| {
        let mut o = PhantomOptions::default();
        o.mesh_step_mm = 1.5;
        o.image_size_px = 256;
        let ph = Phantom::generate(11, &o).unwrap();
        let built = build_model(&ph.case, &PipelineOptions::default()).unwrap();
        (ph.case, built.model)
    })
}

fn with_lesion(m: &HipModel, lesion: Lesion) -> HipModel {
    let mut c = HipModel::new(m.side, m.bone.clone(), m.bone_source, m.head, lesion);
    c.neck_axis = m.neck_axis;
    c.shaft_axis = m.shaft_axis;
    c.lesser_trochanter_level_mm = m.lesser_trochanter_level_mm;
    c.margin_mm = m.margin_mm;
    c
}

fn small_opts() -> PlanOptions {
    let mut o = PlanOptions::default();
    o.entry_spacing_mm = 2.0;
    o.target_tips = 30;
    o.exact_ranked = 16;
    o
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// A lesion that crosses the head surface (or lies partly or wholly
    /// outside the bone): a typed error or a plan whose trajectories keep
    /// every rule — tip inside the bone and the lesion, finite numbers.
    #[test]
    fn lesion_crossing_the_head_surface(
        dir in prop::array::uniform3(-1.0f64..1.0), out in 0.6f64..1.6, r in 2.0f64..12.0,
    ) {
        let (case, model) = phantom_model();
        let d = Vector3::from(dir);
        prop_assume!(d.norm() > 0.2);
        let c = model.head.center + d.normalize() * model.head.radius_mm * out;
        let e = Ellipsoid::sphere(c, r).unwrap();
        let m = with_lesion(model, Lesion::Ellipsoid(e));
        match plan_with(&m, case, &small_opts()) {
            Ok(plan) => {
                prop_assert_eq!(plan.status == PlanStatus::Ok, !plan.trajectories.is_empty());
                prop_assert!(plan.coverage.is_finite());
                for t in &plan.trajectories {
                    prop_assert!(m.bone.contains(&t.tip_mm));
                    prop_assert!(e.contains(&t.tip_mm));
                    prop_assert!(t.min_clearance_mm.is_finite() && t.length_mm.is_finite());
                    prop_assert!(t.min_clearance_mm + 1e-9 >= case.constraints.cortical_clearance_mm);
                }
            }
            Err(e) => prop_assert!(matches!(e, Error::Degenerate { .. } | Error::Invalid { .. }), "{e}"),
        }
    }
}

// ---------------------------------------------------------------------
// Resource limits.
// ---------------------------------------------------------------------

/// A binary STL header claiming 10^7 triangles is refused from the header
/// alone (nothing of the size is allocated); so is a header claiming more
/// than the bytes hold.
#[test]
fn binary_stl_header_of_ten_million_triangles_is_refused() {
    let mut b = vec![0u8; 80];
    b.extend(10_000_000u32.to_le_bytes());
    b.extend(vec![0u8; 50 * 4]);
    match load_mesh_bytes(&b, MeshFormat::Stl, "big.stl").unwrap_err() {
        Error::LimitExceeded {
            what,
            limit,
            actual,
        } => {
            assert_eq!(what, "big.stl.triangles");
            assert_eq!(limit, MAX_TRIANGLES);
            assert_eq!(actual, 10_000_000);
        }
        e => panic!("{e}"),
    }
    // Within the limit but more than the file holds.
    let mut b = vec![0u8; 80];
    b.extend(1000u32.to_le_bytes());
    b.extend(vec![0u8; 50 * 4]);
    let e = load_mesh_bytes(&b, MeshFormat::Stl, "short.stl").unwrap_err();
    assert!(e.to_string().contains("counts 1000 triangles"), "{e}");
    // A binary STL whose header starts with "solid" is still binary.
    let mut b = b"solid but binary".to_vec();
    b.resize(80, b' ');
    let m = icosphere(Point3::origin(), 30.0, 1);
    b.extend((m.triangles.len() as u32).to_le_bytes());
    for i in 0..m.triangles.len() {
        b.extend([0u8; 12]);
        for p in m.triangle(i) {
            for c in [p.x, p.y, p.z] {
                b.extend((c as f32).to_le_bytes());
            }
        }
        b.extend([0u8; 2]);
    }
    let (back, w) = load_mesh_bytes(&b, MeshFormat::Stl, "solid.stl").unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(back.triangles.len(), m.triangles.len());
}

/// A case with 10^4 views is refused naming the limit, after parsing only.
#[test]
fn case_with_ten_thousand_views_is_refused() {
    let views: Vec<String> = (0..10_000)
        .map(|i| {
            format!(
                r#"{{"name": "v{i}", "image_size_px": [256, 256], "projection": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1000]]}}"#
            )
        })
        .collect();
    let text = format!(
        r#"{{"schema": "avnplan.case/1", "side": "left", "views": [{}]}}"#,
        views.join(",")
    );
    let f: CaseFile = from_json_bytes_with_schema(text.as_bytes(), CASE_SCHEMA).unwrap();
    match f.to_case(std::path::Path::new(".")).unwrap_err() {
        Error::LimitExceeded {
            what,
            limit,
            actual,
        } => {
            assert_eq!((what.as_str(), limit, actual), ("views", MAX_VIEWS, 10_000));
        }
        e => panic!("{e}"),
    }
}

/// The finest options the planner accepts (0.05 mm entries, 0.1 mm tips:
/// millions of tips times thousands of entries) evaluate at most
/// `max_candidates` pairs, with a warning.
#[test]
fn exploding_candidates_stay_within_the_limit() {
    let (case, model) = phantom_model();
    let mut o = small_opts();
    o.entry_spacing_mm = 0.05;
    o.tip_spacing_mm = Some(0.1);
    o.max_candidates = 20_000;
    o.refine = false;
    let plan = plan_with(model, case, &o).unwrap();
    assert!(plan.candidates <= 20_000, "{}", plan.candidates);
    assert!(
        plan.warnings.iter().any(|w| w.contains("candidate limit")),
        "{:?}",
        plan.warnings
    );
    // Too fine for the options' own floor: typed errors.
    o.entry_spacing_mm = 0.0;
    assert!(plan_with(model, case, &o).is_err());
    o.entry_spacing_mm = 1.0;
    o.tip_spacing_mm = Some(f64::NAN);
    assert!(plan_with(model, case, &o).is_err());
}

/// Fuzz crash (plan_small, session 3): a lesion far from the origin made
/// the lattice count `b - a + 1` overflow i64 in `Lesion::grid_points`
/// (a panic with overflow checks, a wrong count without). Input:
/// `fuzz/regressions/plan_small/lesion_far_away_grid_overflow`.
#[test]
fn lesion_grid_far_from_the_origin_does_not_overflow() {
    for c in [1e300, -1e300, 1e19, f64::MAX / 4.0] {
        let e = Ellipsoid::new(
            Point3::new(c, -c, 0.5 * c),
            Vector3::new(5.0, 6.0, 7.0),
            Rotation3::identity(),
        )
        .unwrap();
        let mut pts = Vec::new();
        Lesion::Ellipsoid(e).grid_points(1.0, &mut pts);
        assert!(
            pts.len() <= avnplan::anatomy::MAX_GRID_NODES,
            "{c}: {}",
            pts.len()
        );
        assert!(pts.iter().all(finite3));
    }
    // Astronomic axes: the bounds saturate i64 at both ends (the crash).
    let e = Ellipsoid::new(
        Point3::origin(),
        Vector3::new(1e300, 5.0, 5.0),
        Rotation3::identity(),
    )
    .unwrap();
    let mut pts = Vec::new();
    Lesion::Ellipsoid(e).grid_points(1.0, &mut pts);
    assert!(pts.len() <= avnplan::anatomy::MAX_GRID_NODES);
    // And the planner on such a lesion: a plan (none safe) or a typed error.
    let (case, model) = phantom_model();
    let far = Ellipsoid::new(
        Point3::new(1e300, 0.0, 0.0),
        Vector3::new(5.0, 5.0, 5.0),
        Rotation3::identity(),
    )
    .unwrap();
    let m = with_lesion(model, Lesion::Ellipsoid(far));
    let mut o = small_opts();
    o.refine = false;
    if let Ok(p) = plan_with(&m, case, &o) {
        assert_eq!(p.status, PlanStatus::NoSafeTrajectory);
    }
}

/// Fuzz crash (plan_small, session 3): a lesion of astronomic axes has an
/// infinite volume; the plan file refuses to write it with a typed error
/// naming the field, never a NaN/inf in JSON. Input:
/// `fuzz/regressions/plan_small/lesion_infinite_volume_in_plan_file`.
#[test]
fn lesion_of_infinite_volume_is_a_typed_error_when_written() {
    let (case, model) = phantom_model();
    let e = Ellipsoid::new(
        model.head.center,
        Vector3::new(1e300, 1e300, 5.0),
        Rotation3::identity(),
    )
    .unwrap();
    let m = with_lesion(model, Lesion::Ellipsoid(e));
    let mut o = small_opts();
    o.refine = false;
    o.max_candidates = 50;
    let Ok(plan) = plan_with(&m, case, &o) else {
        return;
    };
    assert!(plan.coverage.is_finite());
    let mut built = build_model(case, &PipelineOptions::default()).unwrap();
    built.model = m;
    match to_json_string(&plan_to_file(&built, &plan)) {
        Ok(json) => assert!(!json.contains("NaN") && !json.contains("inf")),
        Err(Error::Invalid { field, .. }) => assert!(field.contains("lesion_volume_ml"), "{field}"),
        Err(e) => panic!("{e}"),
    }
}

/// An entry zone of 1 km radius at the default 0.75 mm spacing would cast
/// ~5 x 10^12 rays: the spacing is widened to stay within
/// `MAX_ENTRY_RAYS`, with a warning (found while reading the fuzz target's
/// decoder: its specials include 1e300 for a radius).
#[test]
fn huge_entry_zone_is_bounded_by_the_ray_limit() {
    let (case, model) = phantom_model();
    let mut case = case.clone();
    for r in [1e6, 1e300] {
        case.entry_zone = Some(Sphere::new(model.head.center, r).unwrap());
        let mut o = small_opts();
        o.entry_spacing_mm = 0.75;
        o.refine = false;
        let plan = plan_with(model, &case, &o).unwrap();
        assert!(
            plan.warnings
                .iter()
                .any(|w| w.contains("entry spacing widened")),
            "{:?}",
            plan.warnings
        );
        assert!(plan.coverage.is_finite());
    }
}

// ---------------------------------------------------------------------
// Determinism.
// ---------------------------------------------------------------------

fn plan_json(case: &Case, threads: usize) -> String {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let opts = PipelineOptions::default();
        let built: BuiltModel = build_model(case, &opts).unwrap();
        let plan = plan_with(&built.model, case, &opts.planning).unwrap();
        let mut w = built.warnings.clone();
        w.extend(plan.warnings.iter().cloned());
        let mut pf = plan_to_file(&built, &plan);
        pf.warnings = w;
        to_json_string(&pf).unwrap()
    })
}

fn assert_deterministic(case: &Case) {
    let one = plan_json(case, 1);
    assert!(one.contains("\"schema\""));
    for threads in [2, 8, 1] {
        let other = plan_json(case, threads);
        assert!(one == other, "plan JSON differs with {threads} threads");
    }
}

#[test]
fn plan_json_is_identical_for_1_2_8_threads_with_a_mesh() {
    let mut o = PhantomOptions::default();
    o.mesh_step_mm = 1.5;
    o.image_size_px = 256;
    let ph = Phantom::generate(5, &o).unwrap();
    assert!(ph.case.bone_mesh.is_some());
    assert_deterministic(&ph.case);
}

#[test]
fn plan_json_is_identical_for_1_2_8_threads_views_only() {
    let mut o = PhantomOptions::default();
    o.with_mesh = false;
    o.image_size_px = 256;
    o.noise_px = 0.5;
    let ph = Phantom::generate(6, &o).unwrap();
    assert!(ph.case.bone_mesh.is_none());
    assert_deterministic(&ph.case);
}
