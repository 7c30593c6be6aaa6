//! The fuzz entry points: one function per target, each taking raw bytes.
//!
//! Shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`, nightly,
//! coverage-guided) and by the stable corpus replay test
//! (`tests/it/fuzz_corpus.rs`), which includes this file by path. Each entry
//! feeds the bytes through a public loader and asserts the crate's
//! robustness promises (SECURITY.md): no panic, a typed error or a valid
//! value, every number finite, every one-line error at most 300 characters.
//! A broken promise panics, which the fuzzer reports as a crash.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use avnplan::anatomy::Lesion;
use avnplan::geometry::{Ellipsoid, Sphere, MAX_TRIANGLES};
use avnplan::io::case::{CaseFile, ConstraintsWire, CASE_SCHEMA};
use avnplan::io::dicom::DicomView;
use avnplan::io::json::{
    from_json_bytes_with_schema, one_line_error, to_json_string, Integer, MAX_ERROR_CHARS,
};
use avnplan::io::mesh::{load_mesh_bytes, MeshFormat};
use avnplan::io::needle::{NeedleFile, NEEDLE_SCHEMA};
use avnplan::io::plan::{PlanFile, PLAN_SCHEMA};
use avnplan::phantom::{Phantom, PhantomOptions};
use avnplan::pipeline::{build_model, plan_to_file, BuiltModel, PipelineOptions};
use avnplan::planning::{plan_with, PlanOptions, PlanStatus};
use avnplan::{Case, Error};
use nalgebra::{Point3, Rotation3, Vector3};

/// Checks the contract's one-line error form for any error.
fn check_error(file: &str, e: &Error) {
    let line = one_line_error(Path::new(file), e);
    assert!(
        line.chars().count() <= MAX_ERROR_CHARS,
        "error line longer than {MAX_ERROR_CHARS} characters: {line}"
    );
    assert!(!line.contains('\n'), "error line has a newline: {line:?}");
}

/// An empty folder that relative mesh paths of fuzzed case files resolve
/// against (so they name nothing).
fn empty_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("avnplan-fuzz-empty-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    })
}

/// Case JSON: strict parse, every rule, conversion to the domain case and
/// back to a file that serialises (finite).
pub fn case_json(bytes: &[u8]) {
    let file: CaseFile = match from_json_bytes_with_schema(bytes, CASE_SCHEMA) {
        Ok(f) => f,
        Err(e) => return check_error("case.json", &e),
    };
    match file.to_case(empty_dir()) {
        Ok((case, _warnings)) => {
            assert!(case.views.len() >= 2 && case.views.len() <= 64);
            // Back to a file: must serialise (every number finite) when the
            // case has no meshes (those need file names).
            if case.bone_mesh.is_none()
                && !matches!(case.lesion, Some(avnplan::case::LesionSpec::Mesh(..)))
            {
                let back = avnplan::io::case_to_file(&case, &Default::default())
                    .expect("a loaded case converts back to a file");
                to_json_string(&back).expect("a loaded case serialises");
            }
        }
        Err(e) => check_error("case.json", &e),
    }
}

/// Plan JSON (input of `check`): strict parse, validation, re-serialisation.
pub fn plan_json(bytes: &[u8]) {
    let plan: PlanFile = match from_json_bytes_with_schema(bytes, PLAN_SCHEMA) {
        Ok(p) => p,
        Err(e) => return check_error("plan.json", &e),
    };
    match plan.validate() {
        Ok(()) => {
            to_json_string(&plan).expect("a valid plan serialises");
        }
        Err(e) => check_error("plan.json", &e),
    }
}

/// Needle JSON (input of `check`): strict parse and validation.
pub fn needle_json(bytes: &[u8]) {
    let n: NeedleFile = match from_json_bytes_with_schema(bytes, NEEDLE_SCHEMA) {
        Ok(n) => n,
        Err(e) => return check_error("needle.json", &e),
    };
    if let Err(e) = n.validate() {
        check_error("needle.json", &e);
    }
}

/// Fiducials JSON (input of `calibrate`): parse, then the calibration
/// solver; its output must serialise (finite).
pub fn fiducials_json(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let f = match avnplan::io::fiducials::parse_fiducials(text) {
        Ok(f) => f,
        Err(e) => return check_error("fiducials.json", &e),
    };
    match avnplan::io::fiducials::calibrate_file(&f) {
        Ok(c) => {
            to_json_string(&c).expect("a calibration serialises");
        }
        Err(e) => check_error("fiducials.json", &e),
    }
}

/// Mesh bytes: the first byte picks the format (STL, OBJ, PLY), the rest is
/// the file. A loaded mesh is finite, closed, outward and within limits.
pub fn mesh(bytes: &[u8]) {
    let Some((&sel, body)) = bytes.split_first() else {
        return;
    };
    let (format, name) = match sel % 3 {
        0 => (MeshFormat::Stl, "m.stl"),
        1 => (MeshFormat::Obj, "m.obj"),
        _ => (MeshFormat::Ply, "m.ply"),
    };
    match load_mesh_bytes(body, format, name) {
        Ok((m, _w)) => {
            assert!(m.triangles.len() <= MAX_TRIANGLES);
            assert!(m
                .vertices
                .iter()
                .all(|v| v.x.is_finite() && v.y.is_finite() && v.z.is_finite()));
            let vol = m.signed_volume_mm3();
            assert!(vol.is_finite() && vol > 0.0, "volume {vol}");
        }
        Err(e) => check_error(name, &e),
    }
}

/// Reads bounded parameters from fuzz bytes (zeros once they run out).
pub struct Decoder<'a> {
    bytes: &'a [u8],
}

impl<'a> Decoder<'a> {
    /// Wraps the bytes.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }
    /// Next byte, 0 past the end.
    pub fn u8(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => 0,
        }
    }
    /// Next 16-bit value.
    pub fn u16(&mut self) -> u16 {
        (u16::from(self.u8()) << 8) | u16::from(self.u8())
    }
    /// A value in `[lo, hi]` (65536 steps), or, for 6 in 256 draws, one of
    /// the values that break careless code: 0, a negative, a huge number,
    /// an infinity or NaN.
    pub fn f64_in(&mut self, lo: f64, hi: f64) -> f64 {
        let tag = self.u8();
        if tag >= 250 {
            return [0.0, -1.0, 1e300, f64::INFINITY, f64::NAN, f64::MIN_POSITIVE]
                [usize::from(tag - 250)];
        }
        lo + (hi - lo) * f64::from(self.u16()) / 65535.0
    }
    /// A flag.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }
}

/// A phantom case (views only) with the model the pipeline builds from it,
/// built once per process with a coarse reconstructed femur (6 mm mesh
/// step: distance queries visit few triangles; small images: quick), in
/// the world frame.
struct Base {
    case: Case,
    built: BuiltModel,
}

fn bases() -> &'static Mutex<Vec<Base>> {
    static BASES: OnceLock<Mutex<Vec<Base>>> = OnceLock::new();
    BASES.get_or_init(|| {
        let bases = (0..2u64)
            .map(|seed| {
                let mut o = PhantomOptions::default();
                o.mesh_step_mm = 2.0;
                o.image_size_px = 256;
                o.with_mesh = false;
                let ph = Phantom::generate(seed + 1, &o).expect("phantom");
                // The case goes through its file form, as a user's would.
                let file =
                    avnplan::io::case_to_file(&ph.case, &Default::default()).expect("case file");
                let json = to_json_string(&file).expect("case json");
                let file: CaseFile =
                    from_json_bytes_with_schema(json.as_bytes(), CASE_SCHEMA).expect("case parse");
                let (case, _) = file.to_case(empty_dir()).expect("case");
                let mut po = PipelineOptions::default();
                po.reconstruction.mesh_step_mm = 6.0;
                let built = build_model(&case, &po).expect("model");
                Base { case, built }
            })
            .collect();
        Mutex::new(bases)
    })
}

/// Builds the base models of [`plan_small`] (a few seconds, once per
/// process): the fuzz binary calls it before its first input, so that no
/// input is charged for it (libFuzzer's `-timeout`).
pub fn plan_small_init() {
    drop(bases().lock());
}

/// The whole planning path on a small fuzzed case around a phantom: the
/// case's constraints (through the case file's validation), lesion (an
/// ellipsoid that may cross the head surface or leave the bone, or have a
/// zero axis), entry zone, forbidden zones and search options are fuzzed;
/// the model is the pipeline's (reconstructed from the phantom's views,
/// coarse mesh) with the fuzzed lesion; the plan goes to its file form,
/// JSON text, and back through the `check` reader's validation. Candidate
/// counts are bounded (at most 32 pairs, 8 tips and 4 passes; refinement in
/// one run in 256 and then on one pair: its local search costs about a
/// hundred grid runs) so that a run costs a few million instructions
/// (fuzz/README.md). A plan is structurally sound and finite; anything
/// else is a typed error.
pub fn plan_small(bytes: &[u8]) {
    let mut d = Decoder::new(bytes);
    let mut guard = bases().lock().unwrap_or_else(|e| e.into_inner());
    let n = guard.len();
    let b = &mut guard[usize::from(d.u8()) % n];
    let head = b.built.model.head;
    let mut case = b.case.clone();
    // Constraints, through the same validation as a case file.
    let opt = |d: &mut Decoder, lo: f64, hi: f64| {
        if d.bool() {
            Some(d.f64_in(lo, hi))
        } else {
            None
        }
    };
    // Struct fields are evaluated in the order written: the decoder's order.
    let cw = ConstraintsWire {
        needle_diameter_mm: opt(&mut d, 0.0, 8.0),
        cortical_clearance_mm: opt(&mut d, 0.0, 8.0),
        subchondral_margin_mm: opt(&mut d, 0.0, 10.0),
        entry_allowance_mm: opt(&mut d, 0.0, 20.0),
        max_length_mm: opt(&mut d, 0.0, 200.0),
        min_incidence_deg: opt(&mut d, -10.0, 100.0),
        passes: if d.bool() {
            Some(Integer(i64::from(d.u8() % 5)))
        } else {
            None
        },
        coverage_radius_mm: opt(&mut d, 0.0, 10.0),
        max_breach_probability: opt(&mut d, -0.1, 1.1),
    };
    case.constraints = match cw.to_constraints() {
        Ok(c) => c,
        Err(e) => return check_error("case.json", &e),
    };
    // Lesion: an ellipsoid near the head.
    let off = Vector3::new(
        d.f64_in(-30.0, 30.0),
        d.f64_in(-30.0, 30.0),
        d.f64_in(-30.0, 30.0),
    );
    let axes = Vector3::new(
        d.f64_in(0.0, 15.0),
        d.f64_in(0.0, 15.0),
        d.f64_in(0.0, 15.0),
    );
    let rot = Rotation3::from_euler_angles(
        d.f64_in(-3.2, 3.2),
        d.f64_in(-3.2, 3.2),
        d.f64_in(-3.2, 3.2),
    );
    let ell = match Ellipsoid::new(head.center + off, axes, rot) {
        Ok(e) => e,
        Err(e) => return check_error("case.json", &e),
    };
    // Entry zone and forbidden zones.
    let sphere = |d: &mut Decoder| {
        let c = head.center
            + Vector3::new(
                d.f64_in(-120.0, 120.0),
                d.f64_in(-120.0, 120.0),
                d.f64_in(-120.0, 120.0),
            );
        Sphere::new(c, d.f64_in(0.0, 40.0))
    };
    case.entry_zone = None;
    if d.bool() {
        match sphere(&mut d) {
            Ok(s) => case.entry_zone = Some(s),
            Err(e) => return check_error("case.json", &e),
        }
    }
    case.forbidden_zones.clear();
    for _ in 0..d.u8() % 4 {
        match sphere(&mut d) {
            Ok(s) => case.forbidden_zones.push(s),
            Err(e) => return check_error("case.json", &e),
        }
    }
    let mut o = PlanOptions::default();
    o.entry_spacing_mm = d.f64_in(3.0, 10.0);
    o.tip_spacing_mm = if d.bool() {
        Some(d.f64_in(3.0, 8.0))
    } else {
        None
    };
    o.target_tips = 1 + usize::from(d.u8() % 8);
    o.max_candidates = 1 + usize::from(d.u8() % 32);
    o.exact_ranked = 1 + usize::from(d.u8() % 3);
    o.vessel_zone = d.bool();
    o.refine = d.u8() == 255;
    if o.refine {
        // The local search (rescue from near misses, up to 16 starts of up
        // to 7 x 24 rounds, each round up to 14 clearance evaluations)
        // costs a hundred times the grid: one pair keeps it to one start,
        // and one run in 256 refines.
        o.max_candidates = 1;
    }
    b.built.model.lesion = Lesion::Ellipsoid(ell);
    let plan = match plan_with(&b.built.model, &case, &o) {
        Ok(p) => p,
        Err(e) => return check_error("case.json", &e),
    };
    assert_eq!(plan.status == PlanStatus::Ok, !plan.trajectories.is_empty());
    assert!(plan.coverage.is_finite() && (0.0..=1.0).contains(&plan.coverage));
    assert!(plan.trajectories.len() <= case.constraints.passes as usize);
    for t in plan.trajectories.iter().chain(&plan.alternatives) {
        let nums = [
            t.entry_mm.x,
            t.entry_mm.y,
            t.entry_mm.z,
            t.tip_mm.x,
            t.tip_mm.y,
            t.tip_mm.z,
            t.length_mm,
            t.min_clearance_mm,
            t.tip_to_surface_mm,
            t.incidence_rad,
            t.down_the_barrel_rad.0,
            t.down_the_barrel_rad.1,
            t.score,
        ];
        assert!(
            nums.iter().all(|v| v.is_finite()),
            "non-finite trajectory {t:?}"
        );
        assert!(t.length_mm > 0.0);
        assert!(t.length_mm <= case.constraints.max_length_mm + 1e-9);
        assert!(
            t.min_clearance_mm + 1e-9 >= case.constraints.cortical_clearance_mm,
            "clearance {} below {} (refine {}, passes {}, margin {}): {t:?}",
            t.min_clearance_mm,
            case.constraints.cortical_clearance_mm,
            o.refine,
            case.constraints.passes,
            b.built.model.margin_mm
        );
        for v in &t.views {
            assert!(v
                .entry_px
                .iter()
                .chain(v.tip_px.iter())
                .all(|c| c.is_finite()));
        }
    }
    // The plan file: JSON text, read back by `check`'s reader, valid.
    let file = plan_to_file(&b.built, &plan);
    // A number that cannot be written (a lesion of astronomic axes has an
    // infinite volume) is a typed error naming the field, never a NaN.
    let json = match to_json_string(&file) {
        Ok(j) => j,
        Err(e) => return check_error("plan.json", &e),
    };
    let back: PlanFile = from_json_bytes_with_schema(json.as_bytes(), PLAN_SCHEMA)
        .expect("a written plan reads back");
    back.validate().expect("a written plan is valid");
    assert_eq!(back.trajectories.len(), plan.trajectories.len());
}

/// DICOM bytes: [`DicomView::from_bytes`], then the `dicom-info` report,
/// the C-arm of the first and last frame, and the first and last frame's
/// image. Each is a value (report serialisable, C-arm valid, image of
/// `Columns x Rows` pixels) or a typed one-line error.
pub fn dicom(bytes: &[u8]) {
    let v = match DicomView::from_bytes(bytes) {
        Ok(v) => v,
        Err(e) => return check_error("f.dcm", &e),
    };
    assert!(v.rows >= 1 && v.columns >= 1 && v.frames >= 1);
    let info = v.info("f.dcm");
    to_json_string(&info).expect("a DICOM report serialises");
    assert_eq!(info.carm.is_some(), info.missing.is_empty());
    let last = v.frames - 1;
    for frame in [0, last] {
        match v.carm_for_frame(frame, Point3::origin(), None) {
            Ok(c) => {
                c.validate().expect("a C-arm read from DICOM is valid");
                assert_eq!(c.image_size_px, [v.columns, v.rows]);
            }
            Err(e) => check_error("f.dcm", &e),
        }
        match v.image(frame) {
            Ok(img) => {
                assert_eq!((img.width(), img.height()), (v.columns, v.rows));
                assert_eq!(img.pixels().len(), v.columns as usize * v.rows as usize);
            }
            Err(e) => check_error("f.dcm", &e),
        }
    }
    assert!(v.image(v.frames).is_err(), "a frame past the end must fail");
}

/// A fuzz entry point.
pub type Entry = fn(&[u8]);

/// Every target by name, for the replay test and the fuzz binaries.
pub const TARGETS: [(&str, Entry); 7] = [
    ("case_json", case_json),
    ("plan_json", plan_json),
    ("needle_json", needle_json),
    ("fiducials_json", fiducials_json),
    ("mesh", mesh),
    ("plan_small", plan_small),
    ("dicom", dicom),
];
