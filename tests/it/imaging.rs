//! Integration tests of the imaging layer (issue 2): the DICOM convention,
//! projection round trips, decomposition, the three view forms, calibration
//! (exact recovery, noise behaviour), distortion, and known answers from
//! OpenCV (`tests/data/opencv/vectors.json`, made by
//! `scripts/make_opencv_vectors.py`).

use approx::assert_relative_eq;
use avnplan::imaging::{
    angles_for_detector_direction, calibrate, detector_direction, CArm, PolynomialDistortion,
    Projection,
};
use avnplan::io::fiducials::{calibrate_file, FiducialPoint, FiducialsFile};
use nalgebra::{Matrix3, Matrix3x4, Point2, Point3, Rotation3, Unit, Vector3};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// Bounded, physically plausible C-arm geometries (issue 2).
mod strategies {
    use super::*;

    /// Source to detector distance range, mm.
    pub const SID_MM: std::ops::Range<f64> = 900.0..1200.0;
    /// SOD as a fraction of SID.
    pub const SOD_FRACTION: std::ops::Range<f64> = 0.5..0.85;
    /// Imager pixel spacing range, mm.
    pub const SPACING_MM: std::ops::Range<f64> = 0.1..0.5;
    /// Isocentre anywhere in a 200 mm cube about the world origin.
    pub const ISO_MM: std::ops::Range<f64> = -100.0..100.0;
    /// Principal point offset from the image centre, px.
    pub const PP_OFFSET_PX: std::ops::Range<f64> = -50.0..50.0;

    prop_compose! {
        pub fn carm()(
            sid in SID_MM,
            sod_f in SOD_FRACTION,
            primary_deg in -180.0f64..180.0,
            secondary_deg in -90.0f64..90.0,
            sr in SPACING_MM,
            sc in SPACING_MM,
            iso in prop::array::uniform3(ISO_MM),
            pp in prop::array::uniform2(PP_OFFSET_PX),
            w in 512u32..2048,
            h in 512u32..2048,
        ) -> CArm {
            CArm {
                sid_mm: sid,
                sod_mm: sid * sod_f,
                primary_angle_rad: primary_deg.to_radians(),
                secondary_angle_rad: secondary_deg.to_radians(),
                pixel_spacing_mm: [sr, sc],
                isocenter_mm: Point3::from(iso),
                principal_point_px: Some(Point2::new(
                    (f64::from(w) - 1.0) / 2.0 + pp[0],
                    (f64::from(h) - 1.0) / 2.0 + pp[1],
                )),
                image_size_px: [w, h],
            }
        }
    }

    /// An offset within 100 mm of the isocentre (a hip phantom's extent).
    pub fn offset_mm() -> impl Strategy<Value = Vector3<f64>> {
        prop::array::uniform3(-100.0f64..100.0).prop_map(Vector3::from)
    }
}

fn carm(primary_deg: f64, secondary_deg: f64) -> CArm {
    CArm {
        sid_mm: 1000.0,
        sod_mm: 600.0,
        primary_angle_rad: primary_deg.to_radians(),
        secondary_angle_rad: secondary_deg.to_radians(),
        pixel_spacing_mm: [0.3, 0.3],
        isocenter_mm: Point3::origin(),
        principal_point_px: None,
        image_size_px: [1024, 1024],
    }
}

/// Relative Frobenius distance of two normalised projections.
fn rel_diff(a: &Projection, b: &Projection) -> f64 {
    (a.matrix() - b.matrix()).norm() / b.matrix().norm()
}

/// DICOM PS3.3 C.8.7.5.1.2 (Positioner Primary and Secondary Angles), the
/// sentences this crate relies on:
///
/// > "The Positioner Primary Angle is defined in the transaxial plane at the
/// > isocenter with zero degrees in the direction perpendicular to the
/// > patient's chest and + 90 degrees at the patient left hand side (LAO) and
/// > -90 at the patient right hand side (RAO)."
/// > "The Positioner Secondary Angle is defined in the Sagittal Plane at the
/// > isocenter with zero degrees in the direction perpendicular to the
/// > patient's chest. +90 degrees corresponds to the cranial direction."
/// > "At a 0 angle for both Primary Angle (0018,1510) and Secondary Angle
/// > (0018,1511), the patient faces the Image Intensifier or digital
/// > detector."
/// > "The Positioner Primary Angle definition is like longitude (in the
/// > equatorial plan); the Positioner Secondary Angle definition is like
/// > latitude (in the sagittal plane)."
///
/// and Table C.8-30: Positioner Primary Angle (0018,1510) is the "Position of
/// the X-Ray Image Intensifier about the patient from the RAO to LAO
/// direction". So the angles place the *detector*: longitude `a` about the
/// patient's long axis (z), then latitude `b` towards the head, i.e.
/// `d = (sin a cos b, -cos a cos b, sin b)` in LPS = `R_z(a) R_x(-b) (0,-1,0)`.
///
/// Image axes: XA images are displayed patient-oriented ("heads-up",
/// PS3.17 FFF.2.1.3.1.2) and, as in the Enhanced XA positioner frame
/// (C.8.19.6.13.1.2), rows run "from left to right of the detector plane
/// looking towards the source": at 0/0 the viewer faces the patient's chest,
/// so `u` points to the patient's left (+x) and `v` (down) to the feet (-z);
/// the axes turn with the detector by the same rotation.
#[test]
fn dicom_convention_is_pinned() {
    let dir = |v: Vector3<f64>| v.normalize();
    // SID 1000 mm, SOD 600 mm, isocentre at the origin, 1024 x 1024 px of 0.3 mm.
    let centre = |c: &CArm| {
        let g = c.geometry().unwrap();
        let pp = c.principal_point();
        g.detector_origin_mm + g.u_axis_mm * pp.x + g.v_axis_mm * pp.y
    };

    // 0/0: the source is 600 mm posterior (+y), the detector centre 400 mm
    // anterior (-y): the beam travels posterior -> anterior. u = patient's
    // left (+x), v = feet (-z).
    let c = carm(0.0, 0.0);
    let g = c.geometry().unwrap();
    assert_relative_eq!(g.source_mm, Point3::new(0.0, 600.0, 0.0), epsilon = 1e-9);
    assert_relative_eq!(centre(&c), Point3::new(0.0, -400.0, 0.0), epsilon = 1e-9);
    assert_relative_eq!(
        dir(g.u_axis_mm),
        Vector3::new(1.0, 0.0, 0.0),
        epsilon = 1e-12
    );
    assert_relative_eq!(
        dir(g.v_axis_mm),
        Vector3::new(0.0, 0.0, -1.0),
        epsilon = 1e-12
    );
    let p = c.projection().unwrap();
    assert_relative_eq!(
        p.viewing_direction().into_inner(),
        Vector3::new(0.0, -1.0, 0.0),
        epsilon = 1e-12
    );
    // The isocentre projects to the image centre; 10 mm to the patient's
    // left moves 10 * (1000/600) / 0.3 = 55.56 px to the right.
    let o = p.project(&Point3::origin()).unwrap();
    assert_relative_eq!(o, Point2::new(511.5, 511.5), epsilon = 1e-9);
    let l = p.project(&Point3::new(10.0, 0.0, 0.0)).unwrap();
    assert_relative_eq!(
        l - o,
        nalgebra::Vector2::new(10.0 * 1000.0 / 600.0 / 0.3, 0.0),
        epsilon = 1e-9
    );
    let head = p.project(&Point3::new(0.0, 0.0, 10.0)).unwrap();
    assert!(head.y < o.y, "the head is up in the image");

    // LAO 90: the detector is at the patient's left (+x), 400 mm from the
    // isocentre, the source 600 mm to the right (-x). u = posterior (+y),
    // v = feet (-z).
    let c = carm(90.0, 0.0);
    let g = c.geometry().unwrap();
    assert_relative_eq!(g.source_mm, Point3::new(-600.0, 0.0, 0.0), epsilon = 1e-9);
    assert_relative_eq!(centre(&c), Point3::new(400.0, 0.0, 0.0), epsilon = 1e-9);
    assert_relative_eq!(
        dir(g.u_axis_mm),
        Vector3::new(0.0, 1.0, 0.0),
        epsilon = 1e-12
    );
    assert_relative_eq!(
        dir(g.v_axis_mm),
        Vector3::new(0.0, 0.0, -1.0),
        epsilon = 1e-12
    );

    // CRA 30: the detector is tilted 30 degrees towards the head:
    // centre 400 (0, -cos 30, sin 30) = (0, -346.41, 200), source
    // -600 (0, -cos 30, sin 30) = (0, 519.62, -300). u = patient's left
    // (+x), v = (0, -sin 30, -cos 30) (mostly feet, a little anterior).
    let c = carm(0.0, 30.0);
    let g = c.geometry().unwrap();
    let (s30, c30) = (0.5, 3f64.sqrt() / 2.0);
    assert_relative_eq!(
        g.source_mm,
        Point3::new(0.0, 600.0 * c30, -300.0),
        epsilon = 1e-9
    );
    assert_relative_eq!(
        centre(&c),
        Point3::new(0.0, -400.0 * c30, 200.0),
        epsilon = 1e-9
    );
    assert_relative_eq!(
        dir(g.u_axis_mm),
        Vector3::new(1.0, 0.0, 0.0),
        epsilon = 1e-12
    );
    assert_relative_eq!(
        dir(g.v_axis_mm),
        Vector3::new(0.0, -s30, -c30),
        epsilon = 1e-12
    );

    // Rotation order: primary first about the long axis, then secondary
    // about the turned C-arm axis: LAO 90 + CRA 30 puts the detector at
    // (cos 30, 0, sin 30), not at (cos 30, -sin..., ...).
    let d = detector_direction(90f64.to_radians(), 30f64.to_radians());
    assert_relative_eq!(d.into_inner(), Vector3::new(c30, 0.0, s30), epsilon = 1e-12);
    let d = detector_direction(-90f64.to_radians(), -30f64.to_radians());
    assert_relative_eq!(
        d.into_inner(),
        Vector3::new(-c30, 0.0, -s30),
        epsilon = 1e-12
    );

    // The displayed image is the mirror of the pinhole view from the source.
    let (_, pose) = carm(37.0, -12.0).projection().unwrap().decompose();
    assert!(pose.mirrored);
}

#[test]
fn angles_inverse_at_the_poles_and_back() {
    // Straight cranial: the primary angle is free, reported as 0.
    let up = Unit::new_normalize(Vector3::new(0.0, 0.0, 1.0));
    let (a, b) = angles_for_detector_direction(&up);
    assert_eq!(a, 0.0);
    assert_relative_eq!(b, std::f64::consts::FRAC_PI_2, epsilon = 1e-12);
    // Posterior detector (PA view): primary 180.
    let post = Unit::new_normalize(Vector3::new(0.0, 1.0, 0.0));
    let (a, b) = angles_for_detector_direction(&post);
    assert_relative_eq!(a.abs(), std::f64::consts::PI, epsilon = 1e-12);
    assert_relative_eq!(b, 0.0, epsilon = 1e-12);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn angles_round_trip(primary_deg in -179.9f64..180.0, secondary_deg in -89.9f64..89.9) {
        let (a, b) = (primary_deg.to_radians(), secondary_deg.to_radians());
        let d = detector_direction(a, b);
        let (a2, b2) = angles_for_detector_direction(&d);
        prop_assert!((a2 - a).abs() < 1e-9, "{} vs {}", a2, a);
        prop_assert!((b2 - b).abs() < 1e-9);
        // and direction -> angles -> direction for any unit vector.
        let d2 = detector_direction(a2, b2);
        prop_assert!((d2.into_inner() - d.into_inner()).norm() < 1e-12);
    }

    #[test]
    fn direction_round_trip(v in prop::array::uniform3(-1.0f64..1.0)) {
        let v = Vector3::from(v);
        prop_assume!(v.norm() > 0.1);
        let d = Unit::new_normalize(v);
        let (a, b) = angles_for_detector_direction(&d);
        prop_assert!((detector_direction(a, b).into_inner() - d.into_inner()).norm() < 1e-9);
    }

    #[test]
    fn project_back_project_round_trip(c in strategies::carm(), off in strategies::offset_mm()) {
        let p = c.projection().unwrap();
        let x = c.isocenter_mm + off;
        let uv = p.project(&x).unwrap();
        let depth = p.depth_mm(&x);
        prop_assert!(depth > 0.0);
        let y = p.back_project_at_depth(&uv, depth);
        prop_assert!((y - x).norm() < 1e-9 * c.sid_mm);
        let ray = p.back_project(&uv);
        prop_assert!((ray.origin - p.source_mm()).norm() < 1e-9);
        let t = (x - ray.origin).norm();
        prop_assert!((ray.at(t) - x).norm() < 1e-8);
        // A point behind the source is refused.
        let behind = p.source_mm() - p.viewing_direction().into_inner() * 10.0;
        prop_assert!(p.project(&behind).is_err());
    }

    #[test]
    fn decompose_recompose(c in strategies::carm()) {
        let p = c.projection().unwrap();
        let (k, pose) = p.decompose();
        prop_assert!(pose.mirrored, "the DICOM form is mirrored");
        prop_assert!(k.focal_px[0] > 0.0 && k.focal_px[1] > 0.0);
        // fu = SID / column spacing, fv = SID / row spacing, no skew.
        prop_assert!((k.focal_px[0] - c.sid_mm / c.pixel_spacing_mm[1]).abs() < 1e-8 * k.focal_px[0]);
        prop_assert!((k.focal_px[1] - c.sid_mm / c.pixel_spacing_mm[0]).abs() < 1e-8 * k.focal_px[1]);
        prop_assert!(k.skew.abs() < 1e-8 * k.focal_px[0]);
        let pp = c.principal_point();
        prop_assert!((k.principal_point_px - pp).norm() < 1e-7);
        let r = pose.camera_from_world.rotation.to_rotation_matrix();
        prop_assert!((r.matrix().determinant() - 1.0).abs() < 1e-12);
        // Camera centre = source.
        let src = pose.camera_from_world.inverse() * Point3::origin();
        prop_assert!((src - p.source_mm()).norm() < 1e-8);
        let back = Projection::from_intrinsics_pose(&k, &pose).unwrap();
        prop_assert!(rel_diff(&back, &p) < 1e-12, "{}", rel_diff(&back, &p));
    }

    #[test]
    fn decompose_recompose_any_camera(
        f in 1000.0f64..6000.0, aspect in 0.8f64..1.25, skew in -5.0f64..5.0,
        pp in prop::array::uniform2(0.0f64..2000.0),
        rot in prop::array::uniform3(-3.0f64..3.0),
        t in prop::array::uniform3(-100.0f64..100.0), dist in 500.0f64..1200.0,
        mirrored in any::<bool>(), scale in 1e-3f64..1e3,
    ) {
        let k = avnplan::imaging::Intrinsics {
            focal_px: [f, f * aspect],
            principal_point_px: Point2::from(pp),
            skew,
        };
        let pose = avnplan::imaging::Pose {
            camera_from_world: nalgebra::Isometry3::new(
                Vector3::new(t[0], t[1], dist), Vector3::from(rot)),
            mirrored,
        };
        let p = Projection::from_intrinsics_pose(&k, &pose).unwrap();
        // Any positive scale of the matrix is the same projection.
        let p2 = Projection::from_matrix(&(p.matrix() * scale)).unwrap();
        let (k2, pose2) = p2.decompose();
        prop_assert_eq!(pose2.mirrored, mirrored);
        prop_assert!((k2.focal_px[0] - f).abs() < 1e-9 * f);
        prop_assert!((k2.focal_px[1] - f * aspect).abs() < 1e-9 * f);
        prop_assert!((k2.skew - skew).abs() < 1e-8 * f);
        prop_assert!(pose2.camera_from_world.rotation.angle_to(&pose.camera_from_world.rotation) < 1e-10);
        let back = Projection::from_intrinsics_pose(&k2, &pose2).unwrap();
        prop_assert!(rel_diff(&back, &p) < 1e-12);
    }

    #[test]
    fn three_forms_agree(c in strategies::carm(), scale in 1e-4f64..1e4, depth_f in 0.2f64..3.0) {
        // Form 3 (DICOM) -> form 2 (geometry) -> form 1 (matrix of any
        // positive scale): one projection.
        let p3 = c.projection().unwrap();
        let g = c.geometry().unwrap();
        let p2 = Projection::from_geometry(&g.source_mm, &g.detector_origin_mm, &g.u_axis_mm, &g.v_axis_mm).unwrap();
        let p1 = Projection::from_matrix(&(p3.matrix() * scale)).unwrap();
        prop_assert!(rel_diff(&p2, &p3) < 1e-12);
        prop_assert!(rel_diff(&p1, &p3) < 1e-12);
        // Back to geometry at the true SID gives the DICOM geometry; any
        // other depth gives the same projection.
        let gs = p3.detector_geometry(c.sid_mm).unwrap();
        prop_assert!((gs.u_axis_mm - g.u_axis_mm).norm() < 1e-9);
        prop_assert!((gs.detector_origin_mm - g.detector_origin_mm).norm() < 1e-7);
        let gd = p3.detector_geometry(c.sid_mm * depth_f).unwrap();
        let pd = Projection::from_geometry(&gd.source_mm, &gd.detector_origin_mm, &gd.u_axis_mm, &gd.v_axis_mm).unwrap();
        prop_assert!(rel_diff(&pd, &p3) < 1e-12);
    }
}

/// `n` fiducials spread through a 120 mm cube about `centre` (seeded).
fn phantom(rng: &mut ChaCha8Rng, centre: &Point3<f64>, n: usize) -> Vec<Point3<f64>> {
    (0..n)
        .map(|_| {
            centre
                + Vector3::new(
                    rng.random_range(-60.0..60.0),
                    rng.random_range(-60.0..60.0),
                    rng.random_range(-60.0..60.0),
                )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn calibration_recovers_noise_free_projection(c in strategies::carm(), seed in any::<u64>(), n in 8usize..40) {
        let truth = c.projection().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let world = phantom(&mut rng, &c.isocenter_mm, n);
        let px: Vec<_> = world.iter().map(|x| truth.project(x).unwrap()).collect();
        let cal = calibrate(&world, &px, c.image_size_px).unwrap();
        let rel = rel_diff(&cal.projection, &truth);
        prop_assert!(rel < 1e-9, "relative error {:e}", rel);
        prop_assert!(cal.rms_px < 1e-7);
        prop_assert!((cal.projection.source_mm() - truth.source_mm()).norm() < 1e-6);
    }
}

/// Noise vs. calibration accuracy. Prints a table; asserts that the RMS
/// residual matches its expectation `sigma sqrt(2) sqrt((2N - 11) / (2N))`
/// (averaged over trials) and that errors grow with the noise.
#[test]
fn calibration_accuracy_table() {
    const TRIALS: usize = 20;
    let sigmas: [f64; 4] = [0.0, 0.5, 1.0, 2.0];
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    println!("N   sigma_px  rms_px  expected_rms_px  source_err_mm  iso_reproj_err_px  (mean of {TRIALS})");
    for n in [20usize, 50] {
        let mut last_src = -1.0;
        for &sigma in &sigmas {
            let (mut ms_ratio, mut src_err, mut iso_err, mut rms_mean) = (0.0, 0.0, 0.0, 0.0);
            for trial in 0..TRIALS {
                let mut c = carm(rng.random_range(-90.0..90.0), rng.random_range(-30.0..30.0));
                c.isocenter_mm = Point3::new(10.0, -5.0, 20.0);
                let truth = c.projection().unwrap();
                let world = phantom(&mut rng, &c.isocenter_mm, n);
                let noise = Normal::new(0.0, sigma.max(1e-300)).unwrap();
                let px: Vec<_> = world
                    .iter()
                    .map(|x| {
                        let mut uv = truth.project(x).unwrap();
                        if sigma > 0.0 {
                            uv.x += noise.sample(&mut rng);
                            uv.y += noise.sample(&mut rng);
                        }
                        uv
                    })
                    .collect();
                let cal = calibrate(&world, &px, c.image_size_px)
                    .unwrap_or_else(|e| panic!("trial {trial}: {e}"));
                let expected = sigma * 2f64.sqrt() * ((2 * n - 11) as f64 / (2 * n) as f64).sqrt();
                if sigma > 0.0 {
                    ms_ratio += (cal.rms_px / expected).powi(2) / TRIALS as f64;
                }
                rms_mean += cal.rms_px / TRIALS as f64;
                src_err += (cal.projection.source_mm() - truth.source_mm()).norm() / TRIALS as f64;
                let iso_t = truth.project(&c.isocenter_mm).unwrap();
                let iso_c = cal.projection.project(&c.isocenter_mm).unwrap();
                iso_err += (iso_t - iso_c).norm() / TRIALS as f64;
            }
            let expected = sigma * 2f64.sqrt() * ((2 * n - 11) as f64 / (2 * n) as f64).sqrt();
            println!(
                "{n:<3} {sigma:>8.1}  {rms_mean:>6.3}  {expected:>15.3}  {src_err:>13.3}  {iso_err:>17.3}"
            );
            if sigma == 0.0 {
                assert!(rms_mean < 1e-8 && src_err < 1e-6 && iso_err < 1e-8);
            } else {
                // Mean of rms^2 / E[rms^2] over 20 trials: standard error
                // about sqrt(2 / (20 (2N - 11))) < 4 %.
                assert!(
                    (0.85..1.15).contains(&ms_ratio),
                    "N {n} sigma {sigma}: mean (rms/expected)^2 = {ms_ratio}"
                );
                // Reprojection at the isocentre is better than one
                // measurement: averaging over N points.
                assert!(iso_err < sigma, "iso error {iso_err} px at sigma {sigma}");
                assert!(src_err > last_src, "source error grows with noise");
            }
            last_src = src_err;
        }
    }
}

fn json_matrix(v: &serde_json::Value, rows: usize, cols: usize) -> nalgebra::DMatrix<f64> {
    nalgebra::DMatrix::from_fn(rows, cols, |r, c| v[r][c].as_f64().unwrap())
}

/// Known answers from OpenCV 4/5 (`cv2.projectPoints`,
/// `cv2.decomposeProjectionMatrix`, `cv2.Rodrigues`).
#[test]
fn opencv_known_answers() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/opencv/vectors.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cams = doc["cameras"].as_array().unwrap();
    assert!(cams.len() >= 4);
    let mut projected = 0;
    for cam in cams {
        let name = cam["name"].as_str().unwrap();
        let pm = json_matrix(&cam["projection"], 3, 4);
        let p = Projection::from_matrix(&Matrix3x4::from_fn(|r, c| pm[(r, c)])).unwrap();
        // Rodrigues vector -> rotation matrix.
        let rv = &cam["rvec"];
        let rvec = Vector3::new(
            rv[0].as_f64().unwrap(),
            rv[1].as_f64().unwrap(),
            rv[2].as_f64().unwrap(),
        );
        let r_cv = json_matrix(&cam["rotation"], 3, 3);
        let r_na = Rotation3::new(rvec);
        for i in 0..3 {
            for j in 0..3 {
                assert!(
                    (r_na[(i, j)] - r_cv[(i, j)]).abs() < 1e-12,
                    "{name}: Rodrigues"
                );
            }
        }
        // Decomposition vs cv2.decomposeProjectionMatrix.
        let (k, pose) = p.decompose();
        assert!(!pose.mirrored, "{name}");
        let kd = json_matrix(&cam["decomposition"]["k"], 3, 3);
        let km = k.matrix();
        for i in 0..3 {
            for j in 0..3 {
                let tol = 1e-9 * kd[(0, 0)];
                assert!(
                    (km[(i, j)] - kd[(i, j)]).abs() < tol,
                    "{name}: K[{i}][{j}] {} vs {}",
                    km[(i, j)],
                    kd[(i, j)]
                );
            }
        }
        let rd = json_matrix(&cam["decomposition"]["rotation"], 3, 3);
        let rm: Matrix3<f64> = pose
            .camera_from_world
            .rotation
            .to_rotation_matrix()
            .into_inner();
        for i in 0..3 {
            for j in 0..3 {
                assert!(
                    (rm[(i, j)] - rd[(i, j)]).abs() < 1e-9,
                    "{name}: R[{i}][{j}]"
                );
            }
        }
        let cd = &cam["decomposition"]["center_mm"];
        let centre = Point3::new(
            cd[0].as_f64().unwrap(),
            cd[1].as_f64().unwrap(),
            cd[2].as_f64().unwrap(),
        );
        assert_relative_eq!(p.source_mm(), centre, max_relative = 1e-9, epsilon = 1e-9);
        // Projection vs cv2.projectPoints.
        if let (Some(pts), Some(pix)) = (cam["points_mm"].as_array(), cam["pixels"].as_array()) {
            let world: Vec<Point3<f64>> = pts
                .iter()
                .map(|q| {
                    Point3::new(
                        q[0].as_f64().unwrap(),
                        q[1].as_f64().unwrap(),
                        q[2].as_f64().unwrap(),
                    )
                })
                .collect();
            let px: Vec<Point2<f64>> = pix
                .iter()
                .map(|q| Point2::new(q[0].as_f64().unwrap(), q[1].as_f64().unwrap()))
                .collect();
            for (x, m) in world.iter().zip(&px) {
                let uv = p.project(x).unwrap();
                assert!(
                    (uv - m).norm() < 1e-9 * m.coords.norm(),
                    "{name}: {uv} vs {m}"
                );
            }
            // And calibration from OpenCV's pixels gives back the matrix.
            let cal = calibrate(&world, &px, [2048, 2048]).unwrap();
            assert!(rel_diff(&cal.projection, &p) < 1e-9, "{name}: calibration");
            projected += 1;
        }
    }
    assert!(projected >= 3);
}

#[test]
fn calibrate_file_end_to_end() {
    let c = carm(25.0, -15.0);
    let truth = c.projection().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let world = phantom(&mut rng, &c.isocenter_mm, 30);
    let f = FiducialsFile {
        schema: "avnplan.fiducials/1".into(),
        image_size_px: [1024, 1024],
        pixel_spacing_mm: Some([0.3, 0.3]),
        points: world
            .iter()
            .map(|x| {
                let uv = truth.project(x).unwrap();
                FiducialPoint {
                    world_mm: [x.x, x.y, x.z],
                    px: [uv.x, uv.y],
                }
            })
            .collect(),
    };
    let out = calibrate_file(&f).unwrap();
    assert!(out.mirrored);
    assert_relative_eq!(out.focal_px[0], 1000.0 / 0.3, max_relative = 1e-9);
    assert_relative_eq!(out.source_mm[1], truth.source_mm().y, epsilon = 1e-6);
    // With the true spacing the geometry is the DICOM one: the detector plane
    // at SID from the source, 0.3 mm pixels.
    let g = c.geometry().unwrap();
    assert_relative_eq!(
        Vector3::from(out.geometry.u_axis_mm),
        g.u_axis_mm,
        epsilon = 1e-9
    );
    assert_relative_eq!(
        Point3::from(out.geometry.detector_origin_mm),
        g.detector_origin_mm,
        epsilon = 1e-6
    );
    // w > 0 for every fiducial, third row unit norm.
    for pt in &f.points {
        let x = pt.world_mm;
        let w: f64 =
            (0..3).map(|j| out.projection[2][j] * x[j]).sum::<f64>() + out.projection[2][3];
        assert!(w > 0.0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Dewarp then warp back (Newton inverse) is the identity for mild,
    /// image-intensifier-like models.
    #[test]
    fn distortion_inverse_round_trip(
        k1 in -0.04f64..0.04, twist in -0.02f64..0.02, shift in prop::array::uniform2(-3.0f64..3.0),
        p in prop::array::uniform2(0.0f64..1023.0),
    ) {
        let c = Point2::new(511.5, 511.5);
        let warp = |q: &Point2<f64>| {
            let d = q - c;
            let r2 = d.norm_squared() / 512.0f64.powi(2);
            let a = twist * r2;
            let rot = nalgebra::Matrix2::new(a.cos(), -a.sin(), a.sin(), a.cos());
            c + rot * d * (1.0 + k1 * r2) + nalgebra::Vector2::from(shift)
        };
        let und: Vec<Point2<f64>> = (0..13)
            .flat_map(|i| (0..13).map(move |j| Point2::new(10.0 + 83.5 * f64::from(i), 10.0 + 83.5 * f64::from(j))))
            .collect();
        let dist: Vec<_> = und.iter().map(warp).collect();
        let fit = PolynomialDistortion::fit(&dist, &und, 5, [1024, 1024]).unwrap();
        prop_assert!(fit.rms_px < 0.1, "rms {}", fit.rms_px);
        let q = Point2::from(p);
        let d = fit.model.distort(&q).unwrap();
        prop_assert!((fit.model.undistort(&d) - q).norm() < 1e-8);
        // The fitted model undoes the true warp well inside the grid.
        prop_assert!((fit.model.undistort(&warp(&q)) - q).norm() < 0.5);
    }
}
