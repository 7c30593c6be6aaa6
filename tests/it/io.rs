//! Contract v1 wire types: one test per documented rule, round trips for
//! every file type, and a fuzz property (mutated case files never panic).

use std::path::{Path, PathBuf};

use approx::assert_relative_eq;
use avnplan::case::LesionSpec;
use avnplan::imaging::{CArm, Projection};
use avnplan::io::case::{case_to_file, CaseFile, MeshFileNames, CASE_SCHEMA};
use avnplan::io::dicom_info::{DicomInfoFile, DICOM_INFO_SCHEMA};
use avnplan::io::json::{
    from_json_bytes, from_json_bytes_with_schema, one_line_error, read_json, to_json_string,
    write_json_atomic, MAX_ERROR_CHARS,
};
use avnplan::io::load_case;
use avnplan::io::model::{AxisWire, ModelFile, ModelHeadWire, MODEL_SCHEMA};
use avnplan::io::needle::{load_needle, CheckFile, NeedleFile, CHECK_SCHEMA};
use avnplan::io::plan::{load_plan, PlanFile, PlanStatus};
use avnplan::io::registration::{
    isometry_from_rows, isometry_to_rows, RegistrationFile, RegistrationStatus,
    RegistrationUncertaintyWire, RegistrationViewWire, REGISTRATION_SCHEMA,
};
use avnplan::{Constraints, Error, Side};
use nalgebra::{Isometry3, Point3, Vector3};
use proptest::prelude::*;
use serde_json::{json, Value};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/cases")
        .join(name)
}

fn fixture(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(data(name)).unwrap()).unwrap()
}

/// A scratch folder per test, with the cube mesh copied in.
fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join("avnplan_it_io").join(test);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(data("cube.stl"), d.join("cube.stl")).unwrap();
    d
}

fn load_value(test: &str, v: &Value) -> avnplan::Result<(avnplan::Case, Vec<String>)> {
    let dir = scratch(test);
    let path = dir.join("case.json");
    std::fs::write(&path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    load_case(&path)
}

/// The error's `FIELD: what is wrong`.
fn err_of(test: &str, v: &Value) -> String {
    match load_value(test, v) {
        Ok(_) => panic!("{test}: expected an error"),
        Err(e) => e.to_string(),
    }
}

/// Asserts that the case fails with an error on `field` whose message
/// contains `what`.
#[track_caller]
fn expect_err(test: &str, v: &Value, field: &str, what: &str) {
    let e = err_of(test, v);
    assert!(
        e.starts_with(&format!("{field}:")),
        "{test}: expected field `{field}`, got `{e}`"
    );
    assert!(e.contains(what), "{test}: expected `{what}` in `{e}`");
}

fn minimal() -> Value {
    fixture("valid_minimal.json")
}

#[test]
fn io_minimal_case_loads_with_every_default() {
    let (case, warnings) = load_case(&data("valid_minimal.json")).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(case.side, Side::Right);
    assert_eq!(case.views.len(), 2);
    let c = case.constraints;
    assert_relative_eq!(c.needle_diameter_mm, 3.2);
    assert_relative_eq!(c.cortical_clearance_mm, 2.0);
    assert_relative_eq!(c.subchondral_margin_mm, 5.0);
    assert_relative_eq!(c.entry_allowance_mm, 10.0);
    assert_relative_eq!(c.max_length_mm, 130.0);
    assert_relative_eq!(c.min_incidence_deg, 30.0);
    assert_eq!(c.passes, 1);
    assert_relative_eq!(c.coverage_radius_mm, 5.0);
    assert_eq!(c.max_breach_probability, None);
    assert_relative_eq!(case.cortical_thickness_mm, 3.0);
    assert_relative_eq!(case.annotation_noise_px, 1.0);
    assert!(case.bone_mesh.is_none() && case.lesion.is_none() && case.entry_zone.is_none());
    assert!(case.forbidden_zones.is_empty());
    // Form 3 in degrees = CArm in radians: LAT is primary 90 (LAO 90), the
    // source at the patient's right.
    assert_relative_eq!(
        case.views[1].projection.source_mm(),
        Point3::new(-600.0, 0.0, 0.0),
        epsilon = 1e-9
    );
}

#[test]
fn io_each_constraint_default_applies_alone() {
    let names = [
        ("needle_diameter_mm", 3.2),
        ("cortical_clearance_mm", 2.0),
        ("subchondral_margin_mm", 5.0),
        ("entry_allowance_mm", 10.0),
        ("max_length_mm", 130.0),
        ("min_incidence_deg", 30.0),
        ("coverage_radius_mm", 5.0),
    ];
    for (k, (name, _)) in names.iter().enumerate() {
        let mut v = minimal();
        v["constraints"] = json!({ *name: 7.0 });
        let (case, _) = load_value("constraint_default", &v).unwrap();
        let c = case.constraints;
        let got = [
            c.needle_diameter_mm,
            c.cortical_clearance_mm,
            c.subchondral_margin_mm,
            c.entry_allowance_mm,
            c.max_length_mm,
            c.min_incidence_deg,
            c.coverage_radius_mm,
        ];
        for (j, (other, def)) in names.iter().enumerate() {
            let want = if j == k { 7.0 } else { *def };
            assert_relative_eq!(got[j], want, epsilon = 0.0);
            let _ = other;
        }
        assert_eq!(c.passes, 1);
    }
    let mut v = minimal();
    v["constraints"] = json!({});
    let (case, _) = load_value("constraint_default_empty", &v).unwrap();
    assert_eq!(case.constraints, Constraints::default());
}

#[test]
fn io_full_case_loads_every_form() {
    let (case, warnings) = load_case(&data("valid_full.json")).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(case.side, Side::Left);
    // Form 1: the source is where P [S; 1] = 0; the view looks along +z.
    let p0 = &case.views[0].projection;
    assert_relative_eq!(
        p0.source_mm(),
        Point3::new(256.0, 192.0, -1000.0),
        epsilon = 1e-9
    );
    assert_relative_eq!(
        p0.viewing_direction().into_inner(),
        Vector3::z(),
        epsilon = 1e-12
    );
    assert_eq!(case.views[0].image_size_px, [1024, 768]);
    // Form 2: identical to Projection::from_geometry.
    let g = Projection::from_geometry(
        &Point3::new(600.0, 0.0, 0.0),
        &Point3::new(-400.0, -150.0, 150.0),
        &Vector3::new(0.0, 0.3, 0.0),
        &Vector3::new(0.0, 0.0, -0.3),
    )
    .unwrap();
    assert_relative_eq!(
        case.views[1].projection.matrix(),
        g.matrix(),
        epsilon = 1e-12
    );
    // Form 3: identical to CArm (degrees -> radians), principal point kept.
    let c = CArm {
        sid_mm: 1000.0,
        sod_mm: 600.0,
        primary_angle_rad: 10f64.to_radians(),
        secondary_angle_rad: (-5f64).to_radians(),
        pixel_spacing_mm: [0.3, 0.3],
        isocenter_mm: Point3::origin(),
        principal_point_px: Some(nalgebra::Point2::new(500.0, 520.0)),
        image_size_px: [1024, 1024],
    }
    .projection()
    .unwrap();
    assert_relative_eq!(
        case.views[2].projection.matrix(),
        c.matrix(),
        epsilon = 1e-12
    );
    let iso = case.views[2].projection.project(&Point3::origin()).unwrap();
    assert_relative_eq!(iso.x, 500.0, epsilon = 1e-9);
    assert_relative_eq!(iso.y, 520.0, epsilon = 1e-9);
    // Annotations.
    let a = &case.views[1].annotations;
    assert_eq!(a.head_outline_px.len(), 8);
    assert_eq!(a.neck_edges_px.as_ref().unwrap()[1].len(), 3);
    assert_eq!(case.views[0].annotations.lesion_outline_px.len(), 6);
    assert_relative_eq!(case.views[0].annotations.entry_px.unwrap().x, 700.0);
    // Mesh, lesion, zones, partial constraints, crate additions.
    let (mesh, _) = case.bone_mesh.as_ref().unwrap();
    assert_eq!(mesh.triangles.len(), 12);
    assert_relative_eq!(mesh.signed_volume_mm3(), 64_000.0, epsilon = 1e-6);
    match case.lesion.as_ref().unwrap() {
        LesionSpec::Ellipsoid(e) => {
            assert_relative_eq!(
                e.volume_ml(),
                4.0 / 3.0 * std::f64::consts::PI * 0.48,
                epsilon = 1e-12
            );
            // Local x (10 mm) along world y.
            assert!(e.contains(&Point3::new(1.0, 11.9, 3.0)));
            assert!(!e.contains(&Point3::new(10.9, 2.0, 3.0)));
        }
        other => panic!("expected an ellipsoid, got {other:?}"),
    }
    assert_relative_eq!(case.entry_zone.unwrap().radius_mm, 15.0);
    assert_relative_eq!(case.forbidden_zones[0].center.y, -30.0);
    assert_relative_eq!(case.constraints.needle_diameter_mm, 2.8);
    assert_eq!(case.constraints.passes, 3);
    assert_eq!(case.constraints.max_breach_probability, Some(0.01));
    assert_relative_eq!(case.constraints.max_length_mm, 130.0);
    assert_relative_eq!(case.cortical_thickness_mm, 2.5);
    assert_relative_eq!(case.annotation_noise_px, 1.5);
}

#[test]
fn io_kerboul_and_own_frame_mesh() {
    let (case, _) = load_case(&data("valid_kerboul_own_mesh.json")).unwrap();
    assert!(matches!(case.lesion, Some(LesionSpec::Kerboul(k)) if k.depth_mm == 12.0));
    assert!(matches!(
        case.bone_mesh,
        Some((_, avnplan::case::MeshFrame::Own))
    ));
}

#[test]
fn io_invalid_fixtures_name_their_field() {
    let cases = [
        (
            "invalid_unknown_field.json",
            "views[1].carm.sid_mn",
            "unknown field `sid_mn`",
        ),
        (
            "invalid_sod_ge_sid.json",
            "views[1].carm.sod_mm",
            "must be < sid_mm",
        ),
        (
            "invalid_same_direction.json",
            "views",
            "`AP` (views[0]) and `LAT` (views[1])",
        ),
        ("invalid_duplicate_name.json", "views[1].name", "duplicate"),
        ("invalid_passes.json", "constraints.passes", "integer 1-16"),
        (
            "invalid_two_forms.json",
            "views[0]",
            "exactly one geometry form",
        ),
        ("invalid_schema.json", "schema", "avnplan.case/1"),
        ("invalid_bom.json", ".", "byte-order mark"),
        ("invalid_duplicate_key.json", "side", "duplicate key `side`"),
        ("invalid_utf8.json", ".", "invalid UTF-8 at line"),
    ];
    for (file, field, what) in cases {
        let path = data(file);
        let e = load_case(&path)
            .err()
            .unwrap_or_else(|| panic!("{file} loaded"));
        let line = one_line_error(&path, &e);
        let want = format!("{}: {field}: ", path.display());
        assert!(
            line.starts_with(&want),
            "{file}: `{line}` should start with `{want}`"
        );
        assert!(
            line.contains(what),
            "{file}: `{line}` should contain `{what}`"
        );
        assert!(line.chars().count() <= MAX_ERROR_CHARS);
        assert!(!line.contains('\n'));
    }
}

#[test]
fn io_unknown_fields_rejected_everywhere() {
    let full = fixture("valid_full.json");
    // The path ends with the unknown key itself.
    type Edit = fn(&mut Value);
    let spots: [(&str, Edit); 9] = [
        ("colour", |v| v["colour"] = json!(1)),
        ("views[0].colour", |v| v["views"][0]["colour"] = json!(1)),
        ("views[0].annotations.head_outline", |v| {
            v["views"][0]["annotations"]["head_outline"] = json!([])
        }),
        ("views[1].geometry.w_axis_mm", |v| {
            v["views"][1]["geometry"]["w_axis_mm"] = json!([0, 0, 1])
        }),
        ("views[2].carm.sid", |v| {
            v["views"][2]["carm"]["sid"] = json!(1)
        }),
        ("bone_mesh.units", |v| v["bone_mesh"]["units"] = json!("mm")),
        ("lesion.ellipsoid.axes", |v| {
            v["lesion"]["ellipsoid"]["axes"] = json!(1)
        }),
        ("constraints.needle_diameter", |v| {
            v["constraints"]["needle_diameter"] = json!(3)
        }),
        ("entry_zone.radius", |v| {
            v["entry_zone"]["radius"] = json!(3)
        }),
    ];
    for (field, f) in spots {
        let mut v = full.clone();
        f(&mut v);
        let key = field.rsplit('.').next().unwrap();
        expect_err(
            "unknown_fields",
            &v,
            field,
            &format!("unknown field `{key}`"),
        );
    }
    // Two lesion forms at once.
    let mut v = full.clone();
    v["lesion"]["kerboul"] =
        json!({"coronal_arc_deg": [0, 10], "sagittal_arc_deg": [0, 10], "depth_mm": 3});
    let e = err_of("two_lesions", &v);
    assert!(e.starts_with("lesion"), "{e}");
    let mut v = full;
    v["lesion"] = json!({"sphere": {}});
    let e = err_of("unknown_lesion", &v);
    assert!(e.contains("unknown variant `sphere`"), "{e}");
}

#[test]
fn io_json_level_rules() {
    let mut v = minimal();
    v["lesion"] = Value::Null;
    expect_err("null", &v, "lesion", "null is not allowed");
    let mut v = minimal();
    v["side"] = json!("middle");
    expect_err("side", &v, "side", "unknown variant");
    let mut v = minimal();
    v.as_object_mut().unwrap().remove("views");
    expect_err("missing_views", &v, ".", "missing field `views`");
    let mut v = minimal();
    v.as_object_mut().unwrap().remove("schema");
    expect_err("missing_schema", &v, "schema", "missing");
    // Trailing garbage and truncation.
    let text = std::fs::read(data("valid_minimal.json")).unwrap();
    let mut t = text.clone();
    t.extend_from_slice(b"{}");
    assert!(from_json_bytes::<CaseFile>(&t)
        .unwrap_err()
        .to_string()
        .contains("trailing"));
    let e = from_json_bytes::<CaseFile>(&text[..text.len() / 2]).unwrap_err();
    assert!(e.to_string().contains("file ends inside"), "{e}");
    // Duplicate keys inside maps the planner never looks at are still refused.
    let e = from_json_bytes::<serde_json::Value>(br#"{"a": {"k": 1, "k": 1}}"#).unwrap_err();
    assert!(e.to_string().starts_with("a.k: duplicate key `k`"), "{e}");
}

#[test]
fn io_range_rules() {
    let carm = |f: &str, val: Value| {
        let mut v = minimal();
        v["views"][1]["carm"][f] = val;
        v
    };
    expect_err(
        "sid0",
        &carm("sid_mm", json!(0)),
        "views[1].carm.sid_mm",
        "> 0",
    );
    expect_err(
        "sod_neg",
        &carm("sod_mm", json!(-5)),
        "views[1].carm.sod_mm",
        "> 0",
    );
    expect_err(
        "sod_eq",
        &carm("sod_mm", json!(1000)),
        "views[1].carm.sod_mm",
        "< sid_mm",
    );
    expect_err(
        "spacing",
        &carm("pixel_spacing_mm", json!([0.3, 0])),
        "views[1].carm.pixel_spacing_mm[1]",
        "> 0",
    );
    expect_err(
        "spacing_len",
        &carm("pixel_spacing_mm", json!([0.3])),
        "views[1].carm.pixel_spacing_mm",
        "invalid length",
    );
    for (f, bad) in [
        ("needle_diameter_mm", json!(0)),
        ("cortical_clearance_mm", json!(-1)),
        ("subchondral_margin_mm", json!(0)),
        ("entry_allowance_mm", json!(-0.5)),
        ("max_length_mm", json!(0)),
        ("coverage_radius_mm", json!(0)),
    ] {
        let mut v = minimal();
        v["constraints"] = json!({ f: bad });
        expect_err(f, &v, &format!("constraints.{f}"), "> 0");
    }
    let mut v = minimal();
    v["constraints"] = json!({"min_incidence_deg": 91});
    expect_err("incidence", &v, "constraints.min_incidence_deg", "[0, 90]");
    for bad in [json!(0), json!(17), json!(-1)] {
        let mut v = minimal();
        v["constraints"] = json!({ "passes": bad });
        expect_err("passes", &v, "constraints.passes", "integer 1-16");
    }
    let mut v = minimal();
    v["constraints"] = json!({"passes": 1.5});
    expect_err(
        "passes_frac",
        &v,
        "constraints.passes",
        "expected an integer",
    );
    for ok in [json!(1), json!(16), json!(16.0)] {
        let mut v = minimal();
        v["constraints"] = json!({ "passes": ok });
        assert!(load_value("passes_ok", &v).is_ok(), "{ok}");
    }
    let mut v = minimal();
    v["constraints"] = json!({"max_breach_probability": 1.5});
    expect_err(
        "pbreach",
        &v,
        "constraints.max_breach_probability",
        "[0, 1]",
    );
    let mut v = minimal();
    v["views"][0]["image_size_px"] = json!([0, 1024]);
    expect_err("size0", &v, "views[0].image_size_px[0]", ">= 1");
    let mut v = minimal();
    v["views"][0]["image_size_px"] = json!([1024, 10.5]);
    expect_err("size_frac", &v, "views[0].image_size_px[1]", "integer");
    let mut v = minimal();
    v["views"][0]
        .as_object_mut()
        .unwrap()
        .remove("image_size_px");
    expect_err("size_missing", &v, "views[0].image_size_px", "missing");
    let mut v = minimal();
    v["cortical_thickness_mm"] = json!(0);
    expect_err("cortex", &v, "cortical_thickness_mm", "> 0");
    let mut v = minimal();
    v["annotation_noise_px"] = json!(-0.1);
    expect_err("noise", &v, "annotation_noise_px", ">= 0");
    let mut v = minimal();
    v["entry_zone"] = json!({"center_mm": [0, 0, 0], "radius_mm": 0});
    expect_err("entry_zone", &v, "entry_zone.radius_mm", "> 0");
    let mut v = minimal();
    v["forbidden_zones"] = json!([{"center_mm": [0, 0, 0], "radius_mm": 2}, {"center_mm": [0, 0, 0], "radius_mm": -2}]);
    expect_err("forbidden", &v, "forbidden_zones[1].radius_mm", "> 0");
}

#[test]
fn io_lesion_rules() {
    let full = fixture("valid_full.json");
    let mut v = full.clone();
    v["lesion"]["ellipsoid"]["semi_axes_mm"] = json!([10, 0, 6]);
    expect_err("semi", &v, "lesion.ellipsoid.semi_axes_mm[1]", "> 0");
    // Metres for millimetres, or an overflow bomb: refused on reading.
    for (k, big) in [(0, 150.0), (2, 1e300)] {
        let mut v = full.clone();
        v["lesion"]["ellipsoid"]["semi_axes_mm"][k] = json!(big);
        expect_err(
            "semi_big",
            &v,
            &format!("lesion.ellipsoid.semi_axes_mm[{k}]"),
            "larger than any femoral head",
        );
    }
    let mut v = full.clone();
    v["lesion"]["ellipsoid"]["rotation"] = json!([[1, 0, 0], [0, 1, 0.001], [0, 0, 1]]);
    expect_err(
        "rot",
        &v,
        "lesion.ellipsoid.rotation",
        "orthonormal within 1e-6",
    );
    let mut v = full.clone();
    v["lesion"]["ellipsoid"]["rotation"] = json!([[1, 0, 0], [0, 1, 0], [0, 0, -1]]);
    expect_err("refl", &v, "lesion.ellipsoid.rotation", "reflection");
    let mut v = full.clone();
    let s = 1e-7;
    v["lesion"]["ellipsoid"]["rotation"] = json!([[1.0 + s, 0, 0], [0, 1, 0], [0, 0, 1]]);
    assert!(load_value("rot_tolerance", &v).is_ok());
    let mut v = full.clone();
    v["lesion"] = json!({"kerboul": {"coronal_arc_deg": [40, -20], "sagittal_arc_deg": [0, 10], "depth_mm": 5}});
    expect_err("kerboul", &v, "lesion.kerboul.coronal_arc_deg", "from < to");
    let mut v = full.clone();
    v["lesion"] = json!({"kerboul": {"coronal_arc_deg": [0, 10], "sagittal_arc_deg": [0, 10], "depth_mm": 0}});
    expect_err("kerboul_depth", &v, "lesion.kerboul.depth_mm", "> 0");
    let mut v = full.clone();
    v["lesion"] = json!({"mesh": {"path": "cube.stl", "frame": "own"}});
    expect_err("lesion_own", &v, "lesion.mesh.frame", "own");
    let mut v = full.clone();
    v["lesion"] = json!({"mesh": {"path": "cube.stl"}});
    let (case, _) = load_value("lesion_mesh", &v).unwrap();
    assert!(
        matches!(case.lesion, Some(LesionSpec::Mesh(ref m, avnplan::case::MeshFrame::World)) if m.triangles.len() == 12)
    );
    let mut v = full;
    v["bone_mesh"]["path"] = json!("missing.stl");
    expect_err(
        "mesh_missing",
        &v,
        "bone_mesh.path",
        "cannot read `missing.stl`",
    );
}

#[test]
fn io_annotation_rules() {
    let full = fixture("valid_full.json");
    let mut v = full.clone();
    v["views"][1]["annotations"]["head_outline_px"] = json!([[1, 1], [2, 2], [3, 1], [4, 4]]);
    expect_err(
        "head4",
        &v,
        "views[1].annotations.head_outline_px",
        "need at least 5, got 4",
    );
    let mut v = full.clone();
    v["views"][1]["annotations"]["neck_edges_px"] = json!([[[1, 1], [2, 2]]]);
    expect_err(
        "neck1",
        &v,
        "views[1].annotations.neck_edges_px",
        "invalid length 1",
    );
    let mut v = full.clone();
    v["views"][1]["annotations"]["neck_edges_px"] = json!([[[1, 1], [2, 2]], [[1, 1]]]);
    expect_err(
        "neck_short",
        &v,
        "views[1].annotations.neck_edges_px[1]",
        "at least 2",
    );
    let mut v = full.clone();
    v["views"][0]["annotations"]["lesion_outline_px"] = json!([[1, 1], [2, 2]]);
    expect_err(
        "lesion2",
        &v,
        "views[0].annotations.lesion_outline_px",
        "at least 3",
    );
    let mut v = full.clone();
    let many: Vec<[f64; 2]> = (0..100_001).map(|i| [f64::from(i % 1000), 1.0]).collect();
    v["views"][0]["annotations"]["head_outline_px"] = json!(many);
    expect_err(
        "limit",
        &v,
        "views[0].annotations.head_outline_px",
        "limit is 100000, got 100001",
    );
    let mut v = full;
    v["views"][0]["annotations"]["entry_px"] = json!([5000, 10]);
    let (_, w) = load_value("outside", &v).unwrap();
    assert_eq!(
        w,
        vec!["views[0].annotations.entry_px: 1 of 1 points lie outside the image"]
    );
}

#[test]
fn io_view_name_and_count_rules() {
    let mut v = minimal();
    v["views"][0]["name"] = json!("");
    expect_err("empty", &v, "views[0].name", "must not be empty");
    let mut v = minimal();
    v["views"][0]["name"] = json!("é".repeat(65));
    expect_err("long", &v, "views[0].name", "at most 64 characters");
    let mut v = minimal();
    v["views"][0]["name"] = json!("é".repeat(64));
    assert!(load_value("name64", &v).is_ok());
    let mut v = minimal();
    v["views"].as_array_mut().unwrap().truncate(1);
    expect_err("one_view", &v, "views", "need at least 2, got 1");
    let mut v = minimal();
    let views: Vec<Value> = (0..65)
        .map(|i| {
            let mut w = v["views"][i % 2].clone();
            w["name"] = json!(format!("V{i}"));
            w
        })
        .collect();
    v["views"] = json!(views);
    expect_err("many_views", &v, "views", "limit is 64, got 65");
}

#[test]
fn io_view_direction_rule() {
    let with_primary = |a: f64, b: f64| {
        let mut v = minimal();
        v["views"][1]["carm"]["primary_angle_deg"] = json!(a);
        v["views"][1]["carm"]["secondary_angle_deg"] = json!(b);
        v
    };
    expect_err(
        "dir5",
        &with_primary(5.0, 0.0),
        "views",
        "differ by 5.00 degrees",
    );
    assert!(load_value("dir10", &with_primary(10.0, 0.0)).is_ok());
    assert!(load_value("dir_cra", &with_primary(0.0, 12.0)).is_ok());
    // Opposite views look along the same line: no depth, no pair.
    expect_err(
        "dir180",
        &with_primary(180.0, 0.0),
        "views",
        "differ by 0.00 degrees",
    );
    // A third, different view satisfies the rule.
    let mut v = with_primary(3.0, 0.0);
    let mut third = v["views"][0].clone();
    third["name"] = json!("OBL");
    third["carm"]["primary_angle_deg"] = json!(45);
    v["views"].as_array_mut().unwrap().push(third);
    assert!(load_value("dir_third", &v).is_ok());
}

#[test]
fn io_geometry_form_exclusivity() {
    let proj = json!([[2000, 0, 512, 0], [0, 2000, 384, 0], [0, 0, 1, 1000]]);
    let geom = json!({"source_mm": [600, 0, 0], "detector_origin_mm": [-400, -150, 150],
                      "u_axis_mm": [0, 0.3, 0], "v_axis_mm": [0, 0, -0.3]});
    let mut v = minimal();
    v["views"][0]["geometry"] = geom.clone();
    expect_err("carm_geom", &v, "views[0]", "exactly one geometry form");
    let mut v = minimal();
    v["views"][0].as_object_mut().unwrap().remove("carm");
    expect_err("none", &v, "views[0]", "has no geometry");
    let mut v = minimal();
    v["views"][0].as_object_mut().unwrap().remove("carm");
    v["views"][0]["dicom"] = json!("ap.dcm");
    expect_err("dicom_only", &v, "views[0].dicom", "cannot read");
    let mut v = minimal();
    v["views"][0]["dicom"] = json!("cube.stl");
    expect_err("dicom_carm", &v, "views[0]", "not with carm");
    // dicom + projection: the explicit geometry wins, but the file must
    // still be DICOM (it supplies the image; tests/it/dicom.rs has the
    // positive case).
    let mut v = minimal();
    v["views"][0].as_object_mut().unwrap().remove("carm");
    v["views"][0]["projection"] = proj.clone();
    v["views"][0]["dicom"] = json!("cube.stl");
    v["views"][0]["frame"] = json!(0);
    expect_err(
        "dicom_proj_not_dicom",
        &v,
        "views[0].dicom",
        "cannot be read as a DICOM file",
    );
    v["views"][0]["dicom"] = json!("nowhere.dcm");
    expect_err("dicom_missing", &v, "views[0].dicom", "cannot read");
    v["views"][0]["dicom"] = json!("cube.stl");
    v["views"][0]["frame"] = json!(-1);
    expect_err("dicom_frame", &v, "views[0].frame", ">= 0");
    // View-level dicom fields without dicom.
    let mut v = minimal();
    v["views"][0]["isocenter_mm"] = json!([0, 0, 0]);
    expect_err(
        "iso_no_dicom",
        &v,
        "views[0].isocenter_mm",
        "only allowed with dicom",
    );
    // Degenerate forms name the view.
    let mut v = minimal();
    v["views"][0].as_object_mut().unwrap().remove("carm");
    v["views"][0]["projection"] = json!([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]);
    let e = err_of("proj_degenerate", &v);
    assert!(e.starts_with("views[0].projection"), "{e}");
    let mut v = minimal();
    v["views"][0].as_object_mut().unwrap().remove("carm");
    let mut g = geom;
    g["v_axis_mm"] = json!([0, 0.6, 0]);
    v["views"][0]["geometry"] = g;
    let e = err_of("geom_parallel", &v);
    assert!(e.starts_with("views[0].geometry"), "{e}");
    // Distortion is parsed strictly (tests/it/dicom.rs has the model's use).
    let mut v = minimal();
    v["views"][0]["distortion"] = json!({"model": "poly", "degree": 3, "center_px": [512, 512],
        "scale_px": 512, "coeffs_u": [0.0], "coeffs_v": [0.0]});
    expect_err(
        "distortion",
        &v,
        "views[0].distortion.model",
        "unknown distortion model",
    );
    v["views"][0]["distortion"]["model"] = json!("polynomial");
    v["views"][0]["distortion"]["scale_px"] = json!(0);
    expect_err(
        "distortion_scale",
        &v,
        "views[0].distortion.scale_px",
        "> 0",
    );
    v["views"][0]["distortion"]["extra"] = json!(0);
    expect_err(
        "distortion_unknown",
        &v,
        "views[0].distortion.extra",
        "unknown field `extra`",
    );
}

#[test]
fn io_error_line_is_short_and_never_echoes_long_values() {
    let long = "z".repeat(200);
    let mut cases = Vec::new();
    let mut v = minimal();
    v["side"] = json!(long.clone());
    cases.push(v);
    let mut v = minimal();
    v[long.as_str()] = json!(1);
    cases.push(v);
    let mut v = minimal();
    v["views"][0]["carm"]["sid_mm"] = json!(long.clone());
    cases.push(v);
    let mut v = minimal();
    v["schema"] = json!(long.clone());
    cases.push(v);
    let mut v = minimal();
    v["views"][1]["name"] = json!("AP");
    v["views"][0]["name"] = json!("AP");
    cases.push(v);
    let mut v = minimal();
    v["views"][0]["name"] = json!(format!("{}\nX", "q".repeat(50)));
    v["views"][1]["carm"]["primary_angle_deg"] = json!(1);
    cases.push(v);
    for (i, v) in cases.iter().enumerate() {
        let dir = scratch("long_values");
        let path = dir.join("case.json");
        std::fs::write(&path, serde_json::to_vec(v).unwrap()).unwrap();
        let e = load_case(&path).unwrap_err();
        let line = one_line_error(&path, &e);
        assert!(line.chars().count() <= MAX_ERROR_CHARS, "{i}: {line}");
        assert!(!line.contains(&"z".repeat(41)), "{i}: {line}");
        assert!(!line.contains(&"q".repeat(41)), "{i}: {line}");
        assert!(!line.contains('\n'), "{i}: {line}");
    }
    // A long message is cut on a character boundary.
    let e = Error::invalid("f", "ü".repeat(1000));
    let line = one_line_error(Path::new("c.json"), &e);
    assert!(line.chars().count() <= MAX_ERROR_CHARS);
}

fn sample_plan() -> PlanFile {
    read_json(&data("plan_ok.json")).unwrap()
}

#[test]
fn io_plan_round_trip_and_optional_fields() {
    let plan = load_plan(&data("plan_ok.json")).unwrap();
    assert_eq!(plan.status, PlanStatus::Ok);
    assert_eq!(plan.reasons["cortical_clearance"], 120);
    let text = to_json_string(&plan).unwrap();
    assert!(!text.contains("null"));
    for absent in [
        "breach_probability",
        "clearance_p05_mm",
        "entry_zone_rule",
        "world_from_mesh",
        "registration_margin_mm",
    ] {
        assert!(!text.contains(absent), "{absent} written: {text}");
    }
    let back: PlanFile = from_json_bytes(text.as_bytes()).unwrap();
    assert_eq!(back, plan);
    // With every optional field.
    let mut full = plan.clone();
    full.trajectories[0].breach_probability = Some(0.002);
    full.trajectories[0].clearance_p05_mm = Some(2.4);
    full.entry_zone_rule = Some("annotated_entry".into());
    full.model.world_from_mesh = Some(isometry_to_rows(&Isometry3::new(
        Vector3::new(1.0, 2.0, 3.0),
        Vector3::new(0.0, 0.1, 0.0),
    )));
    full.model.registration_margin_mm = Some(0.7);
    let text = to_json_string(&full).unwrap();
    let back: PlanFile = from_json_bytes(text.as_bytes()).unwrap();
    assert_eq!(back, full);
    back.validate().unwrap();
    // Field order is the contract's, and writing is deterministic.
    let keys: Vec<usize> = [
        "\"schema\"",
        "\"status\"",
        "\"reasons\"",
        "\"trajectories\"",
        "\"coverage\"",
        "\"model\"",
        "\"warnings\"",
    ]
    .iter()
    .map(|k| text.find(k).unwrap())
    .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
    assert_eq!(to_json_string(&full).unwrap(), text);
}

#[test]
fn io_plan_reading_ignores_unknown_fields_only() {
    let newer = load_plan(&data("plan_newer_version.json")).unwrap();
    assert_eq!(newer, sample_plan());
    // Still strict about the document itself.
    let text = std::fs::read_to_string(data("plan_ok.json")).unwrap();
    let dup = text.replacen(
        "\"coverage\": 0.8,",
        "\"coverage\": 0.8,\n  \"coverage\": 0.9,",
        1,
    );
    let e = from_json_bytes_with_schema::<PlanFile>(dup.as_bytes(), "avnplan.plan/1").unwrap_err();
    assert!(e.to_string().contains("duplicate key `coverage`"), "{e}");
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(text.as_bytes());
    assert!(from_json_bytes::<PlanFile>(&bom).is_err());
    // Consistency rules.
    let mut p = sample_plan();
    p.status = PlanStatus::NoSafeTrajectory;
    assert!(p
        .validate()
        .unwrap_err()
        .to_string()
        .starts_with("trajectories:"));
    let mut p = sample_plan();
    p.trajectories.clear();
    assert!(p.validate().is_err());
    let mut p = sample_plan();
    p.coverage = 1.5;
    assert!(p
        .validate()
        .unwrap_err()
        .to_string()
        .starts_with("coverage:"));
    let mut p = sample_plan();
    p.schema = "avnplan.plan/2".into();
    assert!(p.validate().is_err());
}

#[test]
fn io_non_finite_refused_on_output() {
    let mut p = sample_plan();
    p.trajectories[0].tip_mm[2] = f64::NAN;
    let e = to_json_string(&p).unwrap_err();
    assert!(
        e.to_string().starts_with("trajectories[0].tip_mm[2]:"),
        "{e}"
    );
    let dir = scratch("non_finite");
    let out = dir.join("plan.json");
    let _ = std::fs::remove_file(&out);
    assert!(write_json_atomic(&out, &p).is_err());
    assert!(!out.exists());
    // No temporary file left behind either.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("plan.json"))
        .collect();
    assert!(leftovers.is_empty());
    // An existing file is untouched by a failed write, replaced by a good one.
    write_json_atomic(&out, &sample_plan()).unwrap();
    let before = std::fs::read(&out).unwrap();
    p.coverage = f64::INFINITY;
    assert!(write_json_atomic(&out, &p).is_err());
    assert_eq!(std::fs::read(&out).unwrap(), before);
    // Writing into a folder that does not exist is an error, not a panic.
    assert!(write_json_atomic(&dir.join("no/such/dir/plan.json"), &sample_plan()).is_err());
}

#[test]
fn io_case_round_trip_through_file() {
    let (case, _) = load_case(&data("valid_full.json")).unwrap();
    let names = MeshFileNames {
        bone_mesh: Some("cube.stl".into()),
        lesion_mesh: None,
    };
    let file = case_to_file(&case, &names).unwrap();
    assert_eq!(file.schema, CASE_SCHEMA);
    assert!(file
        .views
        .iter()
        .all(|v| v.projection.is_some() && v.carm.is_none()));
    let text = to_json_string(&file).unwrap();
    assert!(!text.contains("null"));
    let dir = scratch("round_trip");
    let path = dir.join("case.json");
    write_json_atomic(&path, &file).unwrap();
    let (back, w) = load_case(&path).unwrap();
    assert!(w.is_empty());
    assert_eq!(back.views.len(), case.views.len());
    for (a, b) in case.views.iter().zip(&back.views) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.image_size_px, b.image_size_px);
        assert_eq!(a.annotations, b.annotations);
        assert_relative_eq!(
            a.projection.matrix(),
            b.projection.matrix(),
            epsilon = 1e-12
        );
        assert_relative_eq!(
            a.projection.source_mm(),
            b.projection.source_mm(),
            epsilon = 1e-9
        );
    }
    assert_eq!(back.constraints, case.constraints);
    assert_eq!(back.lesion, case.lesion);
    assert_eq!(back.entry_zone, case.entry_zone);
    assert_eq!(back.forbidden_zones, case.forbidden_zones);
    assert_eq!(back.bone_mesh, case.bone_mesh);
    assert_relative_eq!(back.cortical_thickness_mm, case.cortical_thickness_mm);
    assert_relative_eq!(back.annotation_noise_px, case.annotation_noise_px);
    // Writing the same case again gives the same bytes.
    let again = case_to_file(&case, &names).unwrap();
    assert_eq!(to_json_string(&again).unwrap(), text);
    // A mesh without a file name is an error.
    assert!(case_to_file(&case, &MeshFileNames::default()).is_err());
}

#[test]
fn io_needle_and_check_files() {
    let needle = load_needle(&data("needle.json")).unwrap();
    let (case, _) = load_case(&data("valid_minimal.json")).unwrap();
    needle.check_against(&case).unwrap();
    let text = to_json_string(&needle).unwrap();
    assert_eq!(
        from_json_bytes::<NeedleFile>(text.as_bytes()).unwrap(),
        needle
    );
    let mut n = needle.clone();
    n.views[1].name = "OBL".into();
    assert_eq!(
        n.check_against(&case).unwrap_err().to_string(),
        "views[1].name: no view named `OBL` in the case"
    );
    let mut n = needle.clone();
    n.views[0].shaft_px[1] = n.views[0].shaft_px[0];
    assert!(n
        .validate()
        .unwrap_err()
        .to_string()
        .starts_with("views[0].shaft_px"));
    let mut n = needle.clone();
    n.views[1].shaft_px[0] = n.views[1].tip_px;
    assert!(n
        .validate()
        .unwrap_err()
        .to_string()
        .starts_with("views[1].shaft_px[0]"));
    let mut n = needle.clone();
    n.views.truncate(1);
    assert!(n.validate().is_err());
    let mut n = needle;
    n.views[1].name = "AP".into();
    assert!(n.validate().unwrap_err().to_string().contains("duplicate"));
    let bad = br#"{"schema": "avnplan.needle/1", "views": [{"name": "AP", "tip_px": [1, 2], "shaft_px": [[1, 2]]}]}"#;
    let e = from_json_bytes::<NeedleFile>(bad).unwrap_err();
    assert!(e.to_string().starts_with("views[0].shaft_px"), "{e}");

    let check = CheckFile {
        schema: CHECK_SCHEMA.into(),
        tip_mm: [1.0, 2.0, 3.0],
        direction: [0.0, 0.6, 0.8],
        tip_to_target_mm: 2.5,
        angle_error_deg: 3.0,
        entry_offset_mm: None,
        min_clearance_mm: -0.4,
        breach: true,
        advance_safe_mm: 0.0,
        advice: "withdraw".into(),
        trajectory_index: 1,
    };
    let text = to_json_string(&check).unwrap();
    assert!(!text.contains("entry_offset_mm"));
    assert_eq!(
        from_json_bytes::<CheckFile>(text.as_bytes()).unwrap(),
        check
    );
    let mut c2 = check;
    c2.entry_offset_mm = Some(1.25);
    let text = to_json_string(&c2).unwrap();
    assert_eq!(from_json_bytes::<CheckFile>(text.as_bytes()).unwrap(), c2);
}

#[test]
fn io_model_registration_dicom_info_round_trips() {
    let model = ModelFile {
        schema: MODEL_SCHEMA.into(),
        head: ModelHeadWire {
            center_mm: [1.0, 2.0, 3.0],
            radius_mm: 24.0,
            rms_px: 0.8,
            center_sd_mm: [0.1, 0.2, 0.3],
        },
        neck_axis: Some(AxisWire {
            point_mm: [0.0, 0.0, 0.0],
            direction: [1.0, 0.0, 0.0],
        }),
        shaft_axis: None,
        lesion: None,
        entry_mm: Some([-50.0, 0.0, -40.0]),
    };
    let text = to_json_string(&model).unwrap();
    assert!(!text.contains("shaft_axis") && !text.contains("null"));
    assert_eq!(
        from_json_bytes::<ModelFile>(text.as_bytes()).unwrap(),
        model
    );

    let iso = Isometry3::new(Vector3::new(5.0, -3.0, 2.0), Vector3::new(0.2, 0.1, -0.3));
    let reg = RegistrationFile {
        schema: REGISTRATION_SCHEMA.into(),
        status: RegistrationStatus::NotConverged,
        world_from_mesh: isometry_to_rows(&iso),
        rms_px: 1.3,
        views: vec![RegistrationViewWire {
            name: "AP".into(),
            rms_px: 1.1,
        }],
        warnings: vec!["slow".into()],
        uncertainty: RegistrationUncertaintyWire {
            head_center_sd_mm: 0.4,
            rotation_sd_deg: 0.9,
        },
    };
    let text = to_json_string(&reg).unwrap();
    assert!(text.contains("\"not_converged\""));
    let back: RegistrationFile = from_json_bytes(text.as_bytes()).unwrap();
    assert_eq!(back, reg);
    let iso2 = isometry_from_rows("world_from_mesh", &back.world_from_mesh).unwrap();
    assert_relative_eq!(iso2.to_homogeneous(), iso.to_homogeneous(), epsilon = 1e-12);
    let mut rows = back.world_from_mesh;
    rows[3][0] = 0.5;
    assert_eq!(
        isometry_from_rows("m", &rows).unwrap_err().to_string(),
        "m[3]: must be [0, 0, 0, 1]"
    );

    let info = DicomInfoFile {
        schema: DICOM_INFO_SCHEMA.into(),
        file: "ap.dcm".into(),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.12.1".into(),
        transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
        rows: 1024,
        columns: 1024,
        frames: 1,
        carm: None,
        tags_used: vec!["DistanceSourceToDetector".into()],
        missing: vec!["PositionerPrimaryAngle".into()],
    };
    let text = to_json_string(&info).unwrap();
    assert!(!text.contains("carm"));
    assert_eq!(
        from_json_bytes::<DicomInfoFile>(text.as_bytes()).unwrap(),
        info
    );
}

#[test]
fn io_real_femur_mesh_as_bone_mesh() {
    let femur = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/femur/lhdl_ct_right/femur_r.stl");
    let femur = if femur.exists() {
        femur
    } else {
        PathBuf::from("/work/shared/data/femur/lhdl_ct_right/femur_r.stl")
    };
    if !femur.exists() {
        eprintln!("skipping: real femur mesh not found at {}", femur.display());
        return;
    }
    let mut v = minimal();
    v["bone_mesh"] = json!({"path": femur.to_str().unwrap()});
    let (case, _) = load_value("real_femur", &v).unwrap();
    let (mesh, _) = case.bone_mesh.unwrap();
    eprintln!(
        "real femur: {} triangles, volume {:.0} mm^3",
        mesh.triangles.len(),
        mesh.signed_volume_mm3()
    );
    assert!(mesh.triangles.len() > 1000);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random byte edits and truncations of a valid case file give an
    /// error or a case, never a panic.
    #[test]
    fn io_mutated_case_files_never_panic(
        edits in prop::collection::vec((0usize..4, any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = std::fs::read(data("valid_full.json")).unwrap();
        for (kind, at, byte) in edits {
            let i = at.index(bytes.len().max(1));
            match kind {
                0 if i < bytes.len() => bytes[i] = byte,
                1 if i < bytes.len() => { bytes.remove(i); }
                2 => bytes.insert(i, byte),
                _ if i < bytes.len() => bytes[i] = b"0123456789-.e,:[]{}\""[usize::from(byte) % 20],
                _ => {}
            }
        }
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len() + 1));
        }
        let base = data("");
        if let Ok(file) = from_json_bytes::<CaseFile>(&bytes) {
            let _ = file.to_case(&base);
        }
        let e = from_json_bytes_with_schema::<CaseFile>(&bytes, CASE_SCHEMA).err();
        if let Some(e) = e {
            let line = one_line_error(Path::new("case.json"), &e);
            prop_assert!(line.chars().count() <= MAX_ERROR_CHARS);
        }
    }

    /// Any number in any field of the minimal case loads or fails cleanly.
    #[test]
    fn io_random_numbers_never_panic(
        which in 0usize..8,
        x in prop_oneof![-1e9f64..1e9, Just(0.0), Just(-0.0), Just(1e308), Just(-1e308), Just(5e-324)],
    ) {
        let mut v = minimal();
        let c = &mut v["views"][1]["carm"];
        match which {
            0 => c["sid_mm"] = json!(x),
            1 => c["sod_mm"] = json!(x),
            2 => c["primary_angle_deg"] = json!(x),
            3 => c["secondary_angle_deg"] = json!(x),
            4 => c["pixel_spacing_mm"] = json!([x, 0.3]),
            5 => c["isocenter_mm"] = json!([x, 0, 0]),
            6 => c["principal_point_px"] = json!([x, x]),
            _ => v["views"][1]["image_size_px"] = json!([x, 1024]),
        }
        let _ = load_value("random_numbers", &v);
    }
}

#[test]
fn io_input_file_size_limit() {
    // A sparse file just above 1 GiB: refused from its size, before reading.
    let dir = scratch("size_limit");
    let path = dir.join("huge.json");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len((1u64 << 30) + 1).unwrap();
    drop(f);
    let e = load_case(&path).unwrap_err();
    let _ = std::fs::remove_file(&path);
    assert!(
        matches!(e, Error::LimitExceeded { limit, .. } if limit == 1 << 30),
        "{e:?}"
    );
    let line = one_line_error(&path, &e);
    assert!(
        line.ends_with("file size (bytes): limit is 1073741824, got 1073741825"),
        "{line}"
    );
    // A missing file is one line naming the file.
    let missing = dir.join("absent.json");
    let e = load_case(&missing).unwrap_err();
    let line = one_line_error(&missing, &e);
    assert!(
        line.starts_with(&format!("{}: .: cannot read", missing.display())),
        "{line}"
    );
}
