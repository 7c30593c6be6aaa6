//! Runs the exact segment-to-surface distance once on the first bench
//! segments of a real femur, for instruction counts under callgrind
//! (issue 5, "Speed"): the queries run in `run_queries` only, so
//!
//! ```text
//! cargo build --release --example exact_clearance_profile
//! valgrind --tool=callgrind --toggle-collect='*run_queries*' \
//!     target/release/examples/exact_clearance_profile lhdl_ct_right 1000
//! ```
//!
//! counts the queries alone (divide the total by the count). Arguments: mesh
//! name (`lhdl_ct_right` or `tlem2_right`), number of segments (the first ones
//! of the 20,000-segment `exact_clearance` bench set, default 1,000) and
//! optionally the flags `capped` (then `segment_distance_below_mm` with a
//! 3.6 mm cap) and `small` (the 1,000-segment bench set instead).
//! Prints the sum of the distances (bit-exact comparisons before/after a
//! change). Meshes come from `AVNPLAN_FEMUR_DIR` or `/work/shared/data/femur`.

use std::hint::black_box;

use nalgebra::Point3;

#[allow(
    dead_code,
    unused_imports,
    reason = "only the `fixtures` module is used here; the tests compile away outside cfg(test)"
)]
#[path = "../tests/it/surface.rs"]
mod surface_it;

use surface_it::fixtures::{load_femur, needle_segments, Femur, FEMURS, THRESHOLD_MM};

#[inline(never)]
fn run_queries(f: &Femur, segs: &[(Point3<f64>, Point3<f64>)], capped: bool) -> f64 {
    segs.iter()
        .map(|(a, b)| {
            if capped {
                f.surface
                    .segment_distance_below_mm(black_box(a), black_box(b), THRESHOLD_MM)
            } else {
                f.surface.segment_distance_mm(black_box(a), black_box(b))
            }
        })
        .sum()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("lhdl_ct_right", String::as_str);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1_000);
    let capped = args.iter().skip(3).any(|s| s == "capped");
    // `small`: the bench's 1,000-segment set (seed 1,007) instead.
    let (set, seed) = if args.iter().skip(3).any(|s| s == "small") {
        (1_000, 1_007)
    } else {
        (20_000, 20_007)
    };
    let Some(k) = FEMURS.iter().position(|f| f.0 == name) else {
        eprintln!("unknown mesh {name}; one of lhdl_ct_right, tlem2_right");
        std::process::exit(2);
    };
    let Some(f) = load_femur(k) else {
        return;
    };
    // The bench's segment sets use seed 7 + set size; first `n` of one.
    let segs: Vec<_> = needle_segments(&f, set, seed).into_iter().take(n).collect();
    let sum = run_queries(&f, &segs, capped);
    println!(
        "{name}: {} segments, {}sum of distances {sum:.12} mm ({:?})",
        segs.len(),
        if capped { "capped 3.6 mm, " } else { "" },
        sum.to_bits()
    );
}
