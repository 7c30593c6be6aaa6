//! Replays every committed fuzz corpus file through the fuzz entry points
//! (the same code the cargo-fuzz targets run, `fuzz/src/entries.rs`), on
//! the stable toolchain: this is CI's fuzz check. A file that once crashed
//! the crate lives in `fuzz/regressions/<target>/` and is replayed too.
//!
//! `cargo test --test it fuzz_corpus -- --ignored write_seed_corpus`
//! rewrites the phantom-derived seeds in `fuzz/seeds/`.

use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/entries.rs"]
mod entries;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every file of `dir` (not recursive), sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn replay(target: &str) -> usize {
    let f = entries::TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .map(|(_, f)| *f)
        .expect("known target");
    let mut n = 0;
    for sub in ["corpus", "seeds", "regressions"] {
        for p in files(&fuzz_dir().join(sub).join(target)) {
            let bytes = std::fs::read(&p).expect("corpus file");
            let r = std::panic::catch_unwind(|| f(&bytes));
            assert!(r.is_ok(), "{target}: {} panics", p.display());
            n += 1;
        }
    }
    n
}

#[test]
fn every_target_has_a_corpus() {
    for (t, _) in entries::TARGETS {
        assert!(
            !files(&fuzz_dir().join("corpus").join(t)).is_empty()
                || !files(&fuzz_dir().join("seeds").join(t)).is_empty(),
            "no corpus for {t}"
        );
    }
}

#[test]
fn replay_case_json() {
    assert!(replay("case_json") > 0);
}

#[test]
fn replay_plan_json() {
    assert!(replay("plan_json") > 0);
}

#[test]
fn replay_needle_json() {
    assert!(replay("needle_json") > 0);
}

#[test]
fn replay_fiducials_json() {
    assert!(replay("fiducials_json") > 0);
}

#[test]
fn replay_mesh() {
    assert!(replay("mesh") > 0);
}

#[test]
fn replay_plan_small() {
    assert!(replay("plan_small") > 0);
}

#[test]
fn replay_dicom() {
    assert!(replay("dicom") > 0);
}

/// The decoder is total: every byte string gives bounded parameters.
#[test]
fn decoder_values_stay_in_range_or_are_the_listed_specials() {
    let bytes: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let mut d = entries::Decoder::new(&bytes);
    for _ in 0..900 {
        let v = d.f64_in(-2.0, 3.0);
        assert!(
            (-2.0..=3.0).contains(&v)
                || v.is_nan()
                || [0.0, -1.0, 1e300, f64::INFINITY, f64::MIN_POSITIVE].contains(&v),
            "{v}"
        );
    }
}

/// Writes the seeds derived from phantoms and the test fixtures into
/// `fuzz/seeds/<target>/` (run by hand after a format change).
#[test]
#[ignore = "writes fuzz/seeds; run by hand"]
fn write_seed_corpus() {
    use avnplan::io::mesh::write_stl;
    use avnplan::phantom::{Phantom, PhantomOptions};
    use avnplan::pipeline::{plan_case, plan_to_file, PipelineOptions};
    let seeds = fuzz_dir().join("seeds");
    let put = |t: &str, name: &str, bytes: &[u8]| {
        let d = seeds.join(t);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), bytes).unwrap();
    };
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cases");
    for p in files(&fixtures) {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(&p).unwrap();
        let target = if name.starts_with("plan") {
            "plan_json"
        } else if name.starts_with("needle") {
            "needle_json"
        } else if name.ends_with(".stl") {
            let mut b = vec![0u8];
            b.extend_from_slice(&bytes);
            put("mesh", &name, &b);
            continue;
        } else {
            "case_json"
        };
        put(target, &name, &bytes);
    }
    // Phantom cases: with and without a mesh, with noise; their plans.
    for (seed, with_mesh) in [(1u64, false), (2, true), (3, false)] {
        let mut o = PhantomOptions::default();
        o.mesh_step_mm = 1.5;
        o.image_size_px = 256;
        o.with_mesh = with_mesh;
        o.noise_px = 0.5;
        let ph = Phantom::generate(seed, &o).unwrap();
        let names = avnplan::io::case::MeshFileNames {
            bone_mesh: with_mesh.then(|| "femur.stl".to_string()),
            ..Default::default()
        };
        let file = avnplan::io::case_to_file(&ph.case, &names).unwrap();
        let json = avnplan::io::to_json_string(&file).unwrap();
        put("case_json", &format!("phantom{seed}.json"), json.as_bytes());
        if seed == 2 {
            let (built, plan) = plan_case(&ph.case, &PipelineOptions::default()).unwrap();
            let pf = plan_to_file(&built, &plan);
            put(
                "plan_json",
                "phantom2_plan.json",
                avnplan::io::to_json_string(&pf).unwrap().as_bytes(),
            );
            // The bone mesh, coarse, as binary STL.
            let tmp = std::env::temp_dir().join("avnplan_seed_femur.stl");
            write_stl(&tmp, &ph.mesh).unwrap();
            let mut b = vec![0u8];
            b.extend(std::fs::read(&tmp).unwrap());
            put("mesh", "phantom2_femur.stl", &b);
        }
        // Fiducials: 12 points around the head seen in the first view.
        let v = &ph.case.views[0];
        let c = ph.head().center;
        let pts: Vec<String> = (0..12)
            .map(|i| {
                let f = i as f64;
                let x = c + nalgebra::Vector3::new(
                    30.0 * (f * 1.3).cos(),
                    30.0 * (f * 0.7).sin(),
                    10.0 * f - 60.0,
                );
                let uv = v.projection.project(&x).unwrap();
                format!(
                    r#"{{"world_mm": [{}, {}, {}], "px": [{}, {}]}}"#,
                    x.x, x.y, x.z, uv.x, uv.y
                )
            })
            .collect();
        let fid = format!(
            r#"{{"schema": "avnplan.fiducials/1", "image_size_px": [256, 256], "pixel_spacing_mm": [1.2, 1.2], "points": [{}]}}"#,
            pts.join(", ")
        );
        put(
            "fiducials_json",
            &format!("phantom{seed}.json"),
            fid.as_bytes(),
        );
    }
    // Needle: two views.
    put(
        "needle_json",
        "two_views.json",
        br#"{"schema": "avnplan.needle/1", "views": [
  {"name": "AP", "tip_px": [500, 400], "shaft_px": [[600, 450], [700, 500]]},
  {"name": "LAT", "tip_px": [510, 420], "shaft_px": [[610, 430], [710, 440]]}]}"#,
    );
    // Small meshes: a 40 mm tetrahedron in OBJ, ASCII STL and ASCII PLY.
    put(
        "mesh",
        "tet.obj",
        b"\x01v 0 0 0\nv 40 0 0\nv 0 40 0\nv 0 0 40\nf 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n",
    );
    let tri = |a: [i32; 3], b: [i32; 3], c: [i32; 3]| {
        format!(
            "facet normal 0 0 0\nouter loop\nvertex {} {} {}\nvertex {} {} {}\nvertex {} {} {}\nendloop\nendfacet\n",
            a[0], a[1], a[2], b[0], b[1], b[2], c[0], c[1], c[2]
        )
    };
    let (p0, p1, p2, p3) = ([0, 0, 0], [40, 0, 0], [0, 40, 0], [0, 0, 40]);
    let ascii = format!(
        "\x00solid tet\n{}{}{}{}endsolid tet\n",
        tri(p0, p2, p1),
        tri(p0, p1, p3),
        tri(p0, p3, p2),
        tri(p1, p2, p3)
    );
    put("mesh", "tet_ascii.stl", ascii.as_bytes());
    put(
        "mesh",
        "tet.ply",
        b"\x02ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\nelement face 4\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n40 0 0\n0 40 0\n0 0 40\n3 0 2 1\n3 0 1 3\n3 0 3 2\n3 1 2 3\n",
    );
    // plan_small: a few byte strings (all-default options, and a mixed one).
    put("plan_small", "zeros", &[0u8; 64]);
    put("plan_small", "ramp", &(0..=255u8).collect::<Vec<_>>());
    let mut mid = vec![1u8];
    mid.extend(std::iter::repeat_n([0u8, 0x80, 0x00], 40).flatten());
    put("plan_small", "mid", &mid);
}

/// Writes the DICOM seeds into `fuzz/seeds/dicom/` (run by hand): small
/// files of `write_xa_dicom` (one and three frames, with and without the
/// preamble) and variants patched by bytes (DX modality, RLE transfer
/// syntax with a short fragment, a Pixel Data length past the end).
#[test]
#[ignore = "writes fuzz/seeds/dicom; run by hand"]
fn write_dicom_seeds() {
    use avnplan::imaging::CArm;
    use avnplan::io::dicom::write_xa_dicom;
    use avnplan::render::GrayImage;
    let d = fuzz_dir().join("seeds").join("dicom");
    std::fs::create_dir_all(&d).unwrap();
    let carm = |w: u32, h: u32| CArm {
        sid_mm: 1000.0,
        sod_mm: 600.0,
        primary_angle_rad: 0.5,
        secondary_angle_rad: -0.25,
        pixel_spacing_mm: [0.3, 0.3],
        isocenter_mm: nalgebra::Point3::origin(),
        principal_point_px: None,
        image_size_px: [w, h],
    };
    let tmp = std::env::temp_dir().join("avnplan_seed.dcm");
    let write = |w: u32, h: u32, frames: usize| {
        let img = GrayImage::new(w, h, (0..w * h).map(|i| (i * 37 % 256) as u8).collect()).unwrap();
        write_xa_dicom(&tmp, &carm(w, h), &vec![img; frames]).unwrap();
        std::fs::read(&tmp).unwrap()
    };
    let find = |hay: &[u8], n: &[u8]| hay.windows(n.len()).position(|w| w == n).unwrap();
    let one = write(8, 6, 1);
    std::fs::write(d.join("xa_8x6.dcm"), &one).unwrap();
    std::fs::write(d.join("xa_6x4x3.dcm"), write(6, 4, 3)).unwrap();
    std::fs::write(d.join("xa_no_preamble.dcm"), &one[128..]).unwrap();
    let mut dx = one.clone();
    let m = find(&dx, b"XA");
    dx[m..m + 2].copy_from_slice(b"DX");
    std::fs::write(d.join("dx_8x6.dcm"), &dx).unwrap();
    let px = find(&one, &[0xE0, 0x7F, 0x10, 0x00, b'O', b'B']);
    let mut long = one.clone();
    long[px + 8..px + 12].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    std::fs::write(d.join("pixel_length_past_end.dcm"), &long).unwrap();
    let ts = find(&one, b"1.2.840.10008.1.2.1");
    let mut rle = one[..px].to_vec();
    rle[ts..ts + 19].copy_from_slice(b"1.2.840.10008.1.2.5");
    rle.extend_from_slice(&[
        0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
    ]);
    rle.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]);
    // An RLE frame: header of 64 bytes (1 segment at offset 64), then a
    // replicate run of 48 bytes of value 9 (-47 as i8) and padding.
    let mut frag = vec![0u8; 64];
    frag[0] = 1;
    frag[4] = 64;
    frag.extend_from_slice(&[(256 - 47) as u8, 9]);
    rle.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
    rle.extend_from_slice(&(frag.len() as u32).to_le_bytes());
    rle.extend_from_slice(&frag);
    rle.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    std::fs::write(d.join("xa_rle_8x6.dcm"), &rle).unwrap();
}

/// Fuzz crash (plan_small, session 3): a trajectory shorter than the entry
/// allowance was accepted without its tip's clearance, so the plan reported
/// `min_clearance_mm` below the constraint. The entry asserts every
/// trajectory's clearance; this input planned an 8.7 mm path with 3.13 mm
/// clearance against 3.48 mm required.
#[test]
fn plan_small_short_path_keeps_its_clearance() {
    let p = fuzz_dir().join("regressions/plan_small/short_path_tip_clearance");
    entries::plan_small(&std::fs::read(p).unwrap());
}

/// Per-input cost of `plan_small` over its committed corpus (run by hand:
/// `cargo test --release --test it fuzz_corpus -- --ignored
/// plan_small_cost --nocapture`): the base models are built first, then
/// every file is timed; prints the total, the mean and the slowest inputs.
/// `AVNPLAN_FUZZ_LIMIT=n` replays only the first `n` files (for callgrind).
#[test]
#[ignore = "prints timings; run by hand"]
fn plan_small_cost() {
    let limit: usize = std::env::var("AVNPLAN_FUZZ_LIMIT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(usize::MAX);
    entries::plan_small(&[]);
    let mut times = Vec::new();
    for sub in ["corpus", "seeds", "regressions"] {
        for p in files(&fuzz_dir().join(sub).join("plan_small")) {
            let bytes = std::fs::read(&p).expect("corpus file");
            let t = std::time::Instant::now();
            entries::plan_small(&bytes);
            times.push((t.elapsed().as_secs_f64() * 1e3, p));
        }
    }
    times.truncate(limit);
    let total: f64 = times.iter().map(|t| t.0).sum();
    println!(
        "{} inputs, {total:.1} ms, mean {:.3} ms",
        times.len(),
        total / times.len() as f64
    );
    times.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (ms, p) in times.iter().take(15) {
        println!("{ms:9.3} ms  {}", p.display());
    }
}

/// Fuzz timeout (plan_small, session 4; inputs
/// `regressions/plan_small/needle_lesion_empty_grid_axis` and
/// `huge_lesion_axis*`): a lesion thinner than the tip spacing across and
/// astronomically long along one axis holds no lattice node, yet the tip
/// grid walked its two long axes node by node (~10^38 empty steps: a
/// hang). `Lesion::grid_points` now returns at once when an axis holds no
/// lattice plane, and the planner bounds the lattice nodes by
/// `MAX_TIP_NODES_PER_CANDIDATE` per allowed candidate.
#[test]
fn plan_small_needle_lesion_does_not_walk_an_empty_grid() {
    for name in [
        "needle_lesion_empty_grid_axis",
        "huge_lesion_axis",
        "huge_lesion_axis_refine",
    ] {
        let p = fuzz_dir().join("regressions/plan_small").join(name);
        entries::plan_small(&std::fs::read(p).unwrap());
    }
}

/// The lattice of an axis-aligned needle lesion thinner than the spacing
/// across holds no node: no point, found without walking the long axis.
#[test]
fn needle_lesion_grid_is_empty() {
    use avnplan::anatomy::Lesion;
    use avnplan::geometry::Ellipsoid;
    use nalgebra::{Point3, Rotation3, Vector3};
    let e = Ellipsoid::new(
        Point3::new(0.5, 0.0, 0.5),
        Vector3::new(1e-4, 1e300, 1e-4),
        Rotation3::identity(),
    )
    .unwrap();
    let mut out = Vec::new();
    Lesion::Ellipsoid(e).grid_points(1.0, &mut out);
    assert!(out.is_empty(), "{} points", out.len());
}

/// A lesion whose bounding box dwarfs the candidate limit (one semi-axis
/// of 1e300 mm, thin across) is planned with the tip spacing coarsened
/// until the lattice has at most `MAX_TIP_NODES_PER_CANDIDATE` nodes per
/// allowed pair, with a warning saying so; every number stays finite.
#[test]
fn huge_lesion_lattice_is_bounded_by_the_candidate_limit() {
    use avnplan::anatomy::Lesion;
    use avnplan::geometry::Ellipsoid;
    use avnplan::phantom::{Phantom, PhantomOptions};
    use avnplan::pipeline::{build_model, PipelineOptions};
    use avnplan::planning::{plan_with, PlanOptions, MAX_TIP_NODES_PER_CANDIDATE};
    use nalgebra::{Rotation3, Vector3};
    let mut o = PhantomOptions::default();
    o.mesh_step_mm = 2.0;
    o.image_size_px = 256;
    o.with_mesh = false;
    let ph = Phantom::generate(2, &o).unwrap();
    let mut po = PipelineOptions::default();
    po.reconstruction.mesh_step_mm = 6.0;
    let mut built = build_model(&ph.case, &po).unwrap();
    let head = built.model.head;
    built.model.lesion = Lesion::Ellipsoid(
        Ellipsoid::new(
            head.center + Vector3::new(-4.0, -4.0, -4.0),
            Vector3::new(1e300, 6.5, 3.0),
            Rotation3::from_euler_angles(0.0, 0.6, -2.7),
        )
        .unwrap(),
    );
    let mut opts = PlanOptions::default();
    opts.max_candidates = 25;
    opts.refine = false;
    let plan = plan_with(&built.model, &ph.case, &opts).unwrap();
    let tag = format!("at most {MAX_TIP_NODES_PER_CANDIDATE} lattice nodes per candidate");
    assert!(
        plan.warnings.iter().any(|w| w.contains(&tag)),
        "{:?}",
        plan.warnings
    );
    assert!(plan.candidates <= 25);
    assert!(plan.coverage.is_finite());
}
