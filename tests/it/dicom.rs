//! DICOM views (issue 8) and distortion in case files (issue 2):
//! NOT YET WIRED into tests/it/main.rs: 9 of 16 tests failed on their first run (see the dicom branch report); fix, then add `mod dicom;`.
//! files the crate writes (known geometry, exact round trip), files it did
//! not write (pydicom's bundled test files, when `AVNPLAN_PYDICOM_DIR`
//! points at the unpacked `pydicom/data` folder; `.ci/run` downloads it),
//! form 4 against form 3, and undistortion of annotations.

use std::path::{Path, PathBuf};

use approx::assert_relative_eq;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use nalgebra::{Point2, Point3};

use avnplan::imaging::{CArm, PolynomialDistortion};
use avnplan::io::case::{
    case_to_file, load_case, CArmWire, CaseFile, DistortionWire, MeshFileNames,
};
use avnplan::io::dicom::{dewarp_image, write_xa_dicom, DicomView};
use avnplan::io::json::to_json_string;
use avnplan::phantom::{Phantom, PhantomOptions};
use avnplan::render::GrayImage;
use avnplan::Error;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("avnplan-dicom-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn carm(primary_deg: f64, secondary_deg: f64, size: [u32; 2]) -> CArm {
    CArm {
        sid_mm: 1012.5,
        sod_mm: 641.25,
        primary_angle_rad: primary_deg.to_radians(),
        secondary_angle_rad: secondary_deg.to_radians(),
        pixel_spacing_mm: [0.308, 0.296],
        isocenter_mm: Point3::origin(),
        principal_point_px: None,
        image_size_px: size,
    }
}

fn ramp(w: u32, h: u32) -> GrayImage {
    GrayImage::new(w, h, (0..w * h).map(|i| ((i * 7) % 256) as u8).collect()).unwrap()
}

/// A DICOM object with the given elements, written as explicit VR LE.
fn write_obj(path: &Path, elements: Vec<DataElement<InMemDicomObject>>, sop: &str) {
    let mut obj = InMemDicomObject::new_empty();
    obj.put(DataElement::new(
        tags::SOP_CLASS_UID,
        VR::UI,
        PrimitiveValue::from(sop),
    ));
    obj.put(DataElement::new(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from("2.25.42"),
    ));
    for e in elements {
        obj.put(e);
    }
    obj.with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .unwrap()
        .write_to_file(path)
        .unwrap();
}

fn s(tag: dicom_core::Tag, vr: VR, v: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(v))
}

fn us(tag: dicom_core::Tag, v: u16) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::US, PrimitiveValue::from(v))
}

/// A 16-bit XA image with the given geometry tags (keyword, value) and
/// pixel bytes.
fn xa16(
    path: &Path,
    geometry: &[(dicom_core::Tag, &str)],
    rows: u16,
    cols: u16,
    pixels: Vec<u16>,
    modality: &str,
) {
    let mut el = vec![
        s(tags::MODALITY, VR::CS, modality),
        us(tags::SAMPLES_PER_PIXEL, 1),
        s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        us(tags::ROWS, rows),
        us(tags::COLUMNS, cols),
        us(tags::BITS_ALLOCATED, 16),
        us(tags::BITS_STORED, 12),
        us(tags::HIGH_BIT, 11),
        us(tags::PIXEL_REPRESENTATION, 0),
        s(tags::WINDOW_CENTER, VR::DS, "2048"),
        s(tags::WINDOW_WIDTH, VR::DS, "4096"),
        DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(pixels.into())),
    ];
    for (t, v) in geometry {
        el.push(s(*t, VR::DS, v));
    }
    write_obj(path, el, uids::X_RAY_ANGIOGRAPHIC_IMAGE_STORAGE);
}

const ALL_TAGS: [(dicom_core::Tag, &str); 5] = [
    (tags::DISTANCE_SOURCE_TO_DETECTOR, "1012.5"),
    (tags::DISTANCE_SOURCE_TO_PATIENT, "641.25"),
    (tags::POSITIONER_PRIMARY_ANGLE, "-31.5"),
    (tags::POSITIONER_SECONDARY_ANGLE, "7.25"),
    (tags::IMAGER_PIXEL_SPACING, "0.308\\0.296"),
];

#[test]
fn dicom_written_file_round_trips_exactly() {
    let d = tmp("rt");
    for (k, (a, b)) in [(0.0, 0.0), (-31.5, 7.25), (90.0, -20.125), (179.5, 44.0)]
        .into_iter()
        .enumerate()
    {
        let c = carm(a, b, [48, 36]);
        let path = d.join(format!("v{k}.dcm"));
        let frames = [
            ramp(48, 36),
            GrayImage::new(48, 36, vec![9; 48 * 36]).unwrap(),
        ];
        write_xa_dicom(&path, &c, &frames).unwrap();
        let v = DicomView::open(&path).unwrap();
        assert_eq!(v.sop_class_uid, uids::X_RAY_ANGIOGRAPHIC_IMAGE_STORAGE);
        assert_eq!(v.transfer_syntax_uid, uids::EXPLICIT_VR_LITTLE_ENDIAN);
        assert_eq!((v.columns, v.rows, v.frames), (48, 36, 2));
        assert_eq!(v.modality.as_deref(), Some("XA"));
        // Exact: the decimal strings hold these values exactly.
        assert_eq!(v.geometry.sid_mm, Some(1012.5));
        assert_eq!(v.geometry.sod_mm, Some(641.25));
        assert_eq!(v.geometry.primary_angle_deg, Some(a));
        assert_eq!(v.geometry.secondary_angle_deg, Some(b));
        assert_eq!(v.geometry.imager_pixel_spacing_mm, Some([0.308, 0.296]));
        let back = v.carm(Point3::origin(), None).unwrap();
        assert_eq!(back.sid_mm, c.sid_mm);
        assert_eq!(back.pixel_spacing_mm, c.pixel_spacing_mm);
        assert_eq!(back.primary_angle_rad, c.primary_angle_rad);
        assert_eq!(back.secondary_angle_rad, c.secondary_angle_rad);
        assert_eq!(back.image_size_px, [48, 36]);
        // The pixels: the 8-bit ramp stretched min-max to 0..255.
        let img = v.image(0).unwrap();
        let ramp_max = f64::from(*frames[0].pixels().iter().max().unwrap());
        for (x, y) in img.pixels().iter().zip(frames[0].pixels()) {
            let want = (f64::from(*y) * 255.0 / ramp_max).round() as i32;
            assert!((i32::from(*x) - want).abs() <= 1, "{x} vs {y}");
        }
        // A flat frame maps to black, not to NaN.
        assert!(v.image(1).unwrap().pixels().iter().all(|&p| p == 0));
        let info = v.info("v.dcm");
        assert_eq!(info.carm, Some(CArmWire::from_carm(&back)));
        assert!(info.missing.is_empty());
        assert_eq!(info.tags_used.len(), 5);
    }
    // A principal point has no XA tag: refused, not silently dropped.
    let mut c = carm(0.0, 0.0, [8, 8]);
    c.principal_point_px = Some(Point2::new(3.0, 4.0));
    let e = write_xa_dicom(&d.join("pp.dcm"), &c, &[ramp(8, 8)]).unwrap_err();
    assert!(e.to_string().starts_with("principal_point_px"), "{e}");
    // A frame of the wrong size is refused.
    let e = write_xa_dicom(&d.join("sz.dcm"), &carm(0.0, 0.0, [8, 8]), &[ramp(8, 9)]).unwrap_err();
    assert!(e.to_string().starts_with("frames[0]"), "{e}");
}

#[test]
fn dicom_tags_read_from_a_sixteen_bit_file() {
    let d = tmp("16");
    let path = d.join("xa16.dcm");
    let px: Vec<u16> = (0..20 * 10).map(|i| (i * 20) as u16).collect();
    xa16(&path, &ALL_TAGS, 10, 20, px.clone(), "XA");
    let v = DicomView::open(&path).unwrap();
    let c = v
        .carm(Point3::new(1.0, 2.0, 3.0), Some(Point2::new(9.0, 4.0)))
        .unwrap();
    assert_eq!(c.sid_mm, 1012.5);
    assert_eq!(c.primary_angle_rad, (-31.5f64).to_radians());
    assert_eq!(c.isocenter_mm, Point3::new(1.0, 2.0, 3.0));
    assert_eq!(c.principal_point_px, Some(Point2::new(9.0, 4.0)));
    assert_eq!(c.image_size_px, [20, 10]);
    // Window centre 2048, width 4096: y = (x - 2047.5) / 4095 + 0.5.
    let img = v.image(0).unwrap();
    for (g, x) in img.pixels().iter().zip(&px) {
        let t = ((f64::from(*x) - 2047.5) / 4095.0 + 0.5).clamp(0.0, 1.0);
        assert_eq!(i32::from(*g), (t * 255.0).round() as i32);
    }
}

#[test]
fn dicom_missing_and_unusable_geometry_is_named() {
    let d = tmp("missing");
    // No Distance Source to Patient, no angles.
    let path = d.join("partial.dcm");
    xa16(&path, &[ALL_TAGS[0], ALL_TAGS[4]], 4, 4, vec![0; 16], "XA");
    let v = DicomView::open(&path).unwrap();
    assert_eq!(
        v.tags_used,
        ["DistanceSourceToDetector", "ImagerPixelSpacing"]
    );
    assert_eq!(
        v.missing,
        [
            "DistanceSourceToPatient",
            "PositionerPrimaryAngle",
            "PositionerSecondaryAngle"
        ]
    );
    let e = v.carm(Point3::origin(), None).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Dicom { .. }));
    assert!(msg.contains("DistanceSourceToPatient (0018,1111)"), "{msg}");
    assert!(
        msg.contains("PositionerSecondaryAngle (0018,1511)"),
        "{msg}"
    );
    assert!(v.info("partial.dcm").carm.is_none());

    // Pixel Spacing is never used in place of Imager Pixel Spacing.
    let path = d.join("pixel_spacing.dcm");
    let mut geo = ALL_TAGS[..4].to_vec();
    geo.push((tags::PIXEL_SPACING, "0.2\\0.2"));
    xa16(&path, &geo, 4, 4, vec![0; 16], "XA");
    let v = DicomView::open(&path).unwrap();
    assert_eq!(v.missing, ["ImagerPixelSpacing"]);

    // DX: all five tags, but the distance is to the table: no C-arm.
    let path = d.join("dx.dcm");
    xa16(&path, &ALL_TAGS, 4, 4, vec![0; 16], "DX");
    let v = DicomView::open(&path).unwrap();
    assert!(v.missing.is_empty());
    let e = v.carm(Point3::origin(), None).unwrap_err().to_string();
    assert!(e.contains("Modality DX"), "{e}");
    let info = v.info("dx.dcm");
    assert!(info.carm.is_none());
    assert_eq!(info.missing, ["Modality"]);

    // SOD >= SID.
    let path = d.join("sod.dcm");
    let mut geo = ALL_TAGS.to_vec();
    geo[1] = (tags::DISTANCE_SOURCE_TO_PATIENT, "2000");
    xa16(&path, &geo, 4, 4, vec![0; 16], "XA");
    let v = DicomView::open(&path).unwrap();
    let e = v.carm(Point3::origin(), None).unwrap_err().to_string();
    assert!(e.contains("DistanceSourceToPatient"), "{e}");
    assert_eq!(v.info("sod.dcm").missing, ["DistanceSourceToPatient"]);

    // Not a number.
    let path = d.join("nan.dcm");
    let mut geo = ALL_TAGS.to_vec();
    geo[2] = (tags::POSITIONER_PRIMARY_ANGLE, "NaN");
    xa16(&path, &geo, 4, 4, vec![0; 16], "XA");
    let v = DicomView::open(&path).unwrap();
    assert_eq!(v.missing, ["PositionerPrimaryAngle"]);
}

#[test]
fn dicom_inconsistent_pixel_data_is_an_error() {
    let d = tmp("pixels");
    // 4 x 4 x 2 bytes needed, 10 values given.
    let path = d.join("short.dcm");
    xa16(&path, &ALL_TAGS, 4, 4, vec![0; 10], "XA");
    let e = DicomView::open(&path).unwrap_err().to_string();
    assert!(e.starts_with("PixelData: has 20 bytes"), "{e}");
    assert!(e.contains("= 32"), "{e}");
    // Too many bytes is inconsistent too.
    let path = d.join("long.dcm");
    xa16(&path, &ALL_TAGS, 4, 4, vec![0; 40], "XA");
    assert!(DicomView::open(&path).is_err());
    // Not DICOM at all.
    let path = d.join("text.dcm");
    std::fs::write(&path, b"hello, not DICOM").unwrap();
    let e = DicomView::open(&path).unwrap_err();
    assert!(matches!(e, Error::Dicom { .. }), "{e}");
    assert!(
        e.to_string().contains("cannot be read as a DICOM file"),
        "{e}"
    );
    // Frame out of range.
    let path = d.join("ok.dcm");
    write_xa_dicom(&path, &carm(0.0, 0.0, [4, 4]), &[ramp(4, 4)]).unwrap();
    let v = DicomView::open(&path).unwrap();
    assert!(v
        .image(1)
        .unwrap_err()
        .to_string()
        .contains("frame 1 does not exist"));
    assert!(v.carm_for_frame(1, Point3::origin(), None).is_err());
}

fn small_phantom_options() -> PhantomOptions {
    let mut opts = PhantomOptions::default();
    opts.image_size_px = 256;
    opts.mesh_step_mm = 1.5;
    opts
}

/// A two-view case on phantom `seed`, every view as form 3 and as form 4.
fn phantom_cases(seed: u64, dir: &Path) -> (Phantom, PathBuf, PathBuf) {
    let opts = small_phantom_options();
    let ph = Phantom::generate(seed, &opts).unwrap();
    let mut views_only = ph.case.clone();
    views_only.bone_mesh = None;
    let mut file = case_to_file(
        &views_only,
        &MeshFileNames {
            bone_mesh: None,
            lesion_mesh: None,
        },
    )
    .unwrap();
    file.bone_mesh = None;
    let mut form3 = file.clone();
    let mut form4 = file;
    for (k, c) in ph.carms.iter().enumerate() {
        // Values the decimal strings hold exactly (1e-9 degree, 1e-9 mm).
        let r = |x: f64| (x * 1e9).round() / 1e9;
        let mut c = *c;
        c.sid_mm = r(c.sid_mm);
        c.sod_mm = r(c.sod_mm);
        c.primary_angle_rad = r(c.primary_angle_rad.to_degrees()).to_radians();
        c.secondary_angle_rad = r(c.secondary_angle_rad.to_degrees()).to_radians();
        c.pixel_spacing_mm = c.pixel_spacing_mm.map(r);
        let iso = c.isocenter_mm;
        c.isocenter_mm = Point3::origin();
        let pp = c.principal_point_px.take();
        let name = format!("view{k}.dcm");
        let rg = ph.radiograph(k).unwrap();
        let img = GrayImage::new(rg.width, rg.height, rg.pixels).unwrap();
        write_xa_dicom(&dir.join(&name), &c, &[img]).unwrap();
        let v3 = &mut form3.views[k];
        v3.projection = None;
        let mut w = CArmWire::from_carm(&c);
        w.isocenter_mm = iso.coords.into();
        w.principal_point_px = pp.map(|p| p.coords.into());
        // Form 3 with the values the file holds (as dicom-info prints them).
        let v = DicomView::open(&dir.join(&name)).unwrap();
        let read = v.info(&name).carm.unwrap();
        w.primary_angle_deg = read.primary_angle_deg;
        w.secondary_angle_deg = read.secondary_angle_deg;
        v3.carm = Some(w);
        let v4 = &mut form4.views[k];
        v4.projection = None;
        v4.image_size_px = None;
        v4.dicom = Some(name);
        v4.isocenter_mm = Some(iso.coords.into());
        v4.principal_point_px = pp.map(|p| p.coords.into());
    }
    let p3 = dir.join("form3.json");
    let p4 = dir.join("form4.json");
    std::fs::write(&p3, to_json_string(&form3).unwrap()).unwrap();
    std::fs::write(&p4, to_json_string(&form4).unwrap()).unwrap();
    (ph, p3, p4)
}

#[test]
fn dicom_view_projects_like_the_carm_form() {
    let d = tmp("form4");
    let (ph, p3, p4) = phantom_cases(3, &d);
    let (c3, w3) = load_case(&p3).unwrap();
    let (c4, w4) = load_case(&p4).unwrap();
    assert_eq!(w3, w4);
    assert_eq!(c3.views.len(), c4.views.len());
    let mut worst: f64 = 0.0;
    for (a, b) in c3.views.iter().zip(&c4.views) {
        assert_eq!(a.image_size_px, b.image_size_px);
        assert_eq!(a.annotations, b.annotations);
        for x in ph.mesh.vertices.iter().step_by(7) {
            let (pa, pb) = (
                a.projection.project(x).unwrap(),
                b.projection.project(x).unwrap(),
            );
            worst = worst.max((pa - pb).norm());
        }
    }
    assert!(worst <= 1e-9, "form 4 differs from form 3 by {worst:e} px");
    // And against the phantom's own (unrounded) C-arms: within the rounding.
    for (k, v) in c4.views.iter().enumerate() {
        let truth = ph.carms[k].projection().unwrap();
        let x = Point3::from(ph.truth.head.center_mm);
        let e = (v.projection.project(&x).unwrap() - truth.project(&x).unwrap()).norm();
        assert!(e < 1e-5, "view {k}: {e} px");
    }
}

#[test]
fn dicom_case_rules() {
    let d = tmp("rules");
    let (_, _, p4) = phantom_cases(5, &d);
    let base: CaseFile = serde_json::from_str(&std::fs::read_to_string(&p4).unwrap()).unwrap();
    let run = |f: &CaseFile| {
        let p = d.join("edited.json");
        std::fs::write(&p, to_json_string(f).unwrap()).unwrap();
        load_case(&p)
    };
    // image_size_px must equal Columns x Rows.
    let mut f = base.clone();
    f.views[0].image_size_px = Some([
        avnplan::io::json::Integer(255),
        avnplan::io::json::Integer(256),
    ]);
    let e = run(&f).unwrap_err().to_string();
    assert!(
        e.starts_with("views[0].image_size_px: [255, 256] differs"),
        "{e}"
    );
    // Frame out of range.
    let mut f = base.clone();
    f.views[1].frame = Some(avnplan::io::json::Integer(1));
    let e = run(&f).unwrap_err().to_string();
    assert!(e.starts_with("views[1].frame"), "{e}");
    // A file without geometry, and no explicit geometry beside it.
    let partial = d.join("partial.dcm");
    xa16(&partial, &[ALL_TAGS[0]], 256, 256, vec![0; 256 * 256], "XA");
    let mut f = base.clone();
    f.views[0].dicom = Some("partial.dcm".into());
    let e = run(&f).unwrap_err().to_string();
    assert!(e.starts_with("views[0].dicom: `partial.dcm`: geometry: incomplete, missing DistanceSourceToPatient (0018,1111)"), "{e}");
    // ... with the user's own calibration beside it: accepted, the file gives the image.
    let (c, _) = run(&base).unwrap();
    let m = c.views[0].projection.matrix();
    f.views[0].projection = Some(std::array::from_fn(|r| std::array::from_fn(|k| m[(r, k)])));
    f.views[0].isocenter_mm = None;
    let (c2, _) = run(&f).unwrap();
    assert_eq!(c2.views[0].projection, c.views[0].projection);
    // dicom with carm is refused; a missing file is named.
    let mut g = base.clone();
    g.views[0].carm = Some(CArmWire::from_carm(&carm(0.0, 0.0, [256, 256])));
    assert!(run(&g).unwrap_err().to_string().contains("not with carm"));
    let mut g = base.clone();
    g.views[0].dicom = Some("nope.dcm".into());
    let e = run(&g).unwrap_err().to_string();
    assert!(
        e.starts_with("views[0].dicom: cannot read `nope.dcm`"),
        "{e}"
    );
}

#[test]
fn dicom_plan_draws_on_the_dicom_pixels() {
    let d = tmp("plan");
    let (_, p3, p4) = phantom_cases(2, &d);
    let (plan3, _) = avnplan::pipeline::plan_file(&p3, false).unwrap();
    let (plan4, pics) = avnplan::pipeline::plan_file(&p4, true).unwrap();
    assert_eq!(
        to_json_string(&plan3).unwrap(),
        to_json_string(&plan4).unwrap(),
        "the plan must not depend on the form the geometry was given in"
    );
    let bgs = avnplan::io::dicom::case_view_images(&p4).unwrap();
    assert!(bgs.iter().all(Option::is_some));
    let svg = pics
        .iter()
        .find(|p| p.name.ends_with(".svg") && p.name != "scene3d.svg")
        .unwrap();
    let text = String::from_utf8(svg.bytes.clone()).unwrap();
    assert!(
        text.contains("data:image/png;base64,"),
        "the overlay has no background image"
    );
}

// ---------------------------------------------------------------- distortion

/// A pincushion-plus-twist distortion of a 256 px image, as a dewarping
/// polynomial of degree 4 (a few pixels at the edge).
fn distortion_256() -> PolynomialDistortion {
    let c = Point2::new(127.5, 127.5);
    let warp = |p: &Point2<f64>| {
        let v = p - c;
        let r2 = v.norm_squared() / 128.0f64.powi(2);
        let t = 0.02 * r2;
        let rot = nalgebra::Matrix2::new(t.cos(), -t.sin(), t.sin(), t.cos());
        c + rot * v * (1.0 + 0.04 * r2)
    };
    let und: Vec<Point2<f64>> = (0..17)
        .flat_map(|i| (0..17).map(move |j| Point2::new(f64::from(i) * 16.0, f64::from(j) * 16.0)))
        .collect();
    let dist: Vec<_> = und.iter().map(warp).collect();
    PolynomialDistortion::fit(&dist, &und, 4, [256, 256])
        .unwrap()
        .model
}

#[test]
fn distortion_undistorted_annotations_give_the_same_model() {
    let d = tmp("distortion");
    let opts = small_phantom_options();
    let ph = Phantom::generate(4, &opts).unwrap();
    let m = distortion_256();
    let mut views_only = ph.case.clone();
    views_only.bone_mesh = None;
    let clean = case_to_file(&views_only, &MeshFileNames::default()).unwrap();
    // What a user measures on the distorted images.
    let mut distorted = clean.clone();
    let mut shift_max: f64 = 0.0;
    for v in &mut distorted.views {
        v.distortion = Some(DistortionWire::from_model(&m));
        let a = v.annotations.as_mut().unwrap();
        let mut map = |pts: &mut Vec<[f64; 2]>| {
            for q in pts.iter_mut() {
                let p = m.distort(&Point2::new(q[0], q[1])).unwrap();
                shift_max = shift_max.max((p - Point2::new(q[0], q[1])).norm());
                *q = [p.x, p.y];
            }
        };
        if let Some(h) = &mut a.head_outline_px {
            map(h);
        }
        if let Some(l) = &mut a.lesion_outline_px {
            map(l);
        }
        for e in [&mut a.neck_edges_px, &mut a.shaft_edges_px]
            .into_iter()
            .flatten()
        {
            map(&mut e[0]);
            map(&mut e[1]);
        }
        if let Some(e) = &mut a.entry_px {
            let mut v = vec![*e];
            map(&mut v);
            *e = v[0];
        }
    }
    assert!(
        shift_max > 2.0,
        "the distortion moves annotations by {shift_max} px only"
    );
    let write = |f: &CaseFile, name: &str| {
        let p = d.join(name);
        std::fs::write(&p, to_json_string(f).unwrap()).unwrap();
        p
    };
    let (c_clean, _) = load_case(&write(&clean, "clean.json")).unwrap();
    let (c_dist, _) = load_case(&write(&distorted, "distorted.json")).unwrap();
    // Annotations come back to within the inverse's tolerance (1e-10 px).
    let mut worst: f64 = 0.0;
    for (a, b) in c_clean.views.iter().zip(&c_dist.views) {
        for (p, q) in a
            .annotations
            .head_outline_px
            .iter()
            .zip(&b.annotations.head_outline_px)
        {
            worst = worst.max((p - q).norm());
        }
    }
    assert!(worst < 1e-8, "{worst}");
    let mut opts = avnplan::reconstruction::ReconstructionOptions::default();
    opts.build_mesh = false;
    let r_clean = avnplan::reconstruction::reconstruct(&c_clean.views, &opts).unwrap();
    let r_dist = avnplan::reconstruction::reconstruct(&c_dist.views, &opts).unwrap();
    // Stated tolerance: 1e-6 mm on the head (annotations agree to 1e-8 px).
    assert_relative_eq!(
        r_clean.head.sphere.center,
        r_dist.head.sphere.center,
        epsilon = 1e-6
    );
    assert_relative_eq!(
        r_clean.head.sphere.radius_mm,
        r_dist.head.sphere.radius_mm,
        epsilon = 1e-6
    );
    // Control: the same distorted annotations without the model are off by
    // much more, so the test can fail.
    let mut ignored = distorted.clone();
    for v in &mut ignored.views {
        v.distortion = None;
    }
    let (c_ign, _) = load_case(&write(&ignored, "ignored.json")).unwrap();
    let r_ign = avnplan::reconstruction::reconstruct(&c_ign.views, &opts).unwrap();
    let off = (r_ign.head.sphere.center - r_clean.head.sphere.center).norm()
        + (r_ign.head.sphere.radius_mm - r_clean.head.sphere.radius_mm).abs();
    assert!(
        off > 0.05,
        "ignoring the distortion changed the head by {off} mm only"
    );
}

#[test]
fn distortion_bad_model_is_named() {
    let d = tmp("distortion-bad");
    let opts = small_phantom_options();
    let ph = Phantom::generate(4, &opts).unwrap();
    let mut views_only = ph.case.clone();
    views_only.bone_mesh = None;
    let mut f = case_to_file(&views_only, &MeshFileNames::default()).unwrap();
    let mut w = DistortionWire::from_model(&distortion_256());
    w.coeffs_u.pop();
    w.coeffs_v.pop();
    f.views[1].distortion = Some(w);
    let p = d.join("bad.json");
    std::fs::write(&p, to_json_string(&f).unwrap()).unwrap();
    let e = load_case(&p).unwrap_err().to_string();
    assert!(
        e.starts_with("views[1].distortion.coeffs_u: must have 15 coefficients"),
        "{e}"
    );
}

#[test]
fn distortion_dewarped_image_lines_up() {
    // A bright dot drawn at distorted position d(p) lands at p after dewarping.
    let m = distortion_256();
    let p = Point2::new(40.0, 200.0);
    let q = m.distort(&p).unwrap();
    let mut px = vec![0u8; 256 * 256];
    for j in 0..256usize {
        for i in 0..256usize {
            let r2 = (i as f64 - q.x).powi(2) + (j as f64 - q.y).powi(2);
            px[j * 256 + i] = (255.0 * (-r2 / 8.0).exp()).round() as u8;
        }
    }
    let out = dewarp_image(&GrayImage::new(256, 256, px).unwrap(), &m);
    let (mut sw, mut su, mut sv) = (0.0, 0.0, 0.0);
    for (k, &g) in out.pixels().iter().enumerate() {
        let w = f64::from(g);
        sw += w;
        su += w * (k % 256) as f64;
        sv += w * (k / 256) as f64;
    }
    let c = Point2::new(su / sw, sv / sw);
    assert!(
        (c - p).norm() < 0.3,
        "dot at {c}, expected {p} (distorted at {q})"
    );
    assert!((q - p).norm() > 2.0);
}

// ------------------------------------------------- files the crate did not write

/// pydicom's `data` folder (the wheel unpacked), or `None` (the caller says
/// it skipped).
fn pydicom_data() -> Option<PathBuf> {
    let dir = std::env::var_os("AVNPLAN_PYDICOM_DIR").map(PathBuf::from)?;
    let d = if dir.join("test_files").is_dir() {
        dir
    } else {
        dir.join("pydicom").join("data")
    };
    d.join("test_files").is_dir().then_some(d)
}

macro_rules! pydicom_or_skip {
    () => {
        match pydicom_data() {
            Some(d) => d,
            None => {
                eprintln!("skipping: AVNPLAN_PYDICOM_DIR is not set to an unpacked pydicom wheel (see .ci/run)");
                return;
            }
        }
    };
}

#[test]
fn dicom_pydicom_computed_radiographs() {
    let data = pydicom_or_skip!();
    // Real CR files (DICOMDIR test set, charset tests): Imager Pixel Spacing
    // only, MONOCHROME1, 12 bits stored in 16.
    for (rel, size, spacing) in [
        ("test_files/dicomdirtests/77654033/CR1/6154", 16, 0.1),
        ("test_files/dicomdirtests/77654033/CR2/6247", 16, 0.1),
        ("test_files/dicomdirtests/77654033/CR3/6278", 16, 0.1),
    ] {
        let v = DicomView::open(&data.join(rel)).unwrap();
        assert_eq!(v.modality.as_deref(), Some("CR"), "{rel}");
        assert_eq!(v.sop_class_uid, "1.2.840.10008.5.1.4.1.1.1", "{rel}");
        assert_eq!(v.transfer_syntax_uid, uids::EXPLICIT_VR_LITTLE_ENDIAN);
        assert_eq!((v.columns, v.rows, v.frames), (size, size, 1), "{rel}");
        assert_eq!(v.tags_used, ["ImagerPixelSpacing"], "{rel}");
        assert_eq!(v.geometry.imager_pixel_spacing_mm, Some([spacing, spacing]));
        assert_eq!(
            v.missing,
            [
                "DistanceSourceToDetector",
                "DistanceSourceToPatient",
                "PositionerPrimaryAngle",
                "PositionerSecondaryAngle"
            ]
        );
        let e = v.carm(Point3::origin(), None).unwrap_err().to_string();
        assert!(e.contains("DistanceSourceToDetector (0018,1110)"), "{e}");
        let img = v.image(0).unwrap();
        assert_eq!((img.width(), img.height()), (size, size));
        // Not a flat image: the window or the stretch kept its contrast.
        let (lo, hi) = img
            .pixels()
            .iter()
            .fold((255u8, 0u8), |(a, b), &p| (a.min(p), b.max(p)));
        assert!(hi > lo + 30, "{rel}: {lo}..{hi}");
    }
}

#[test]
fn dicom_pydicom_other_files() {
    let data = pydicom_or_skip!();
    let t = data.join("test_files");
    // CT: distances present but not an XA/RF positioner.
    let v = DicomView::open(&t.join("CT_small.dcm")).unwrap();
    assert_eq!(v.modality.as_deref(), Some("CT"));
    assert_eq!(
        v.tags_used,
        ["DistanceSourceToDetector", "DistanceSourceToPatient"]
    );
    assert!(v.info("CT_small.dcm").carm.is_none());
    // Uncompressed little endian, big endian and RLE: the same pixels.
    let native = DicomView::open(&t.join("MR_small.dcm"))
        .unwrap()
        .image(0)
        .unwrap();
    for f in [
        "MR_small_bigendian.dcm",
        "MR_small_RLE.dcm",
        "MR_small_implicit.dcm",
    ] {
        let v = DicomView::open(&t.join(f)).unwrap();
        assert_eq!(v.image(0).unwrap(), native, "{f}");
    }
    // Compressed syntaxes without a decoder are refused by name.
    for (f, name) in [("JPEG2000.dcm", "JPEG 2000"), ("JPEG-lossy.dcm", "JPEG")] {
        let v = DicomView::open(&t.join(f)).unwrap();
        let e = v.image(0).unwrap_err().to_string();
        assert!(
            e.contains(name) && e.contains("cannot be decoded"),
            "{f}: {e}"
        );
    }
    // Multi-frame RLE RGB: frame 1 decodes, frame 2 does not exist.
    let v = DicomView::open(&t.join("SC_rgb_rle_2frame.dcm")).unwrap();
    assert_eq!(v.frames, 2);
    assert!(v.image(1).is_ok());
    assert!(v.image(2).is_err());
    // Not an image; not DICOM.
    assert!(DicomView::open(&t.join("rtplan.dcm")).is_err());
    let e = DicomView::open(&t.join("README.txt")).unwrap_err();
    assert!(matches!(e, Error::Dicom { .. }), "{e}");
}

#[test]
fn dicom_pydicom_file_with_a_user_calibration() {
    let data = pydicom_or_skip!();
    let d = tmp("pydicom-case");
    let cr = data.join("test_files/dicomdirtests/77654033/CR1/6154");
    let view = |name: &str, primary: f64| {
        let mut c = carm(primary, 0.0, [16, 16]);
        c.sid_mm = 1000.0;
        c.sod_mm = 600.0;
        let m = c.projection().unwrap();
        let m = m.matrix();
        serde_json::json!({
            "name": name,
            "dicom": cr.to_str().unwrap(),
            "projection": (0..3).map(|r| (0..4).map(|k| m[(r, k)]).collect::<Vec<_>>()).collect::<Vec<_>>(),
        })
    };
    let case = serde_json::json!({
        "schema": "avnplan.case/1", "side": "left",
        "views": [view("AP", 0.0), view("LAT", 80.0)],
    });
    let p = d.join("case.json");
    std::fs::write(&p, case.to_string()).unwrap();
    let (c, w) = load_case(&p).unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.views[0].image_size_px, [16, 16]);
    // Without the calibration the file's missing tags are named.
    let mut case2 = case.clone();
    case2["views"][0]
        .as_object_mut()
        .unwrap()
        .remove("projection");
    std::fs::write(&p, case2.to_string()).unwrap();
    let e = load_case(&p).unwrap_err().to_string();
    assert!(
        e.contains("missing DistanceSourceToDetector (0018,1110)"),
        "{e}"
    );
    // A compressed file is refused by name even with a calibration.
    let mut case3 = case;
    case3["views"][1]["dicom"] =
        serde_json::json!(data.join("test_files/JPEG2000.dcm").to_str().unwrap());
    std::fs::write(&p, case3.to_string()).unwrap();
    let e = load_case(&p).unwrap_err().to_string();
    assert!(
        e.contains("JPEG 2000") && e.starts_with("views[1].dicom"),
        "{e}"
    );
}

#[cfg(feature = "cli")]
#[test]
fn dicom_info_command() {
    use std::process::Command;
    let d = tmp("cli");
    let good = d.join("ap.dcm");
    write_xa_dicom(&good, &carm(-31.5, 7.25, [16, 8]), &[ramp(16, 8)]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_avnplan"))
        .arg("dicom-info")
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["schema"], "avnplan.dicom-info/1");
    assert_eq!(j["rows"], 8);
    assert_eq!(j["columns"], 16);
    assert_eq!(j["frames"], 1);
    assert_eq!(j["carm"]["primary_angle_deg"], -31.5);
    assert_eq!(
        j["carm"]["pixel_spacing_mm"],
        serde_json::json!([0.308, 0.296])
    );
    assert_eq!(j["missing"], serde_json::json!([]));
    // Incomplete geometry: still 0, no carm, missing says why.
    let partial = d.join("partial.dcm");
    xa16(&partial, &[ALL_TAGS[0]], 4, 4, vec![0; 16], "XA");
    let out = Command::new(env!("CARGO_BIN_EXE_avnplan"))
        .args(["dicom-info"])
        .arg(&partial)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(j.get("carm").is_none());
    assert_eq!(j["missing"].as_array().unwrap().len(), 4);
    // Not DICOM: 2 and one line naming the file.
    let bad = d.join("bad.dcm");
    std::fs::write(&bad, b"not dicom").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_avnplan"))
        .arg("dicom-info")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("bad.dcm") && err.contains("cannot be read as a DICOM file"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}
