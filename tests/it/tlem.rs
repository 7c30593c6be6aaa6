//! The whole plan on a real femur with default options (issue 5's
//! `plan/whole` case): a by-hand profile target and a dump of the plan for
//! before/after comparisons of the hot path (decisions must not change).
//!
//! `AVNPLAN_PROFILE_FEMUR=tlem2_right AVNPLAN_PROFILE_OUT=/tmp/plan.txt
//! RAYON_NUM_THREADS=1 valgrind --tool=callgrind <it binary> --ignored
//! --exact tlem::whole_plan_profile_target`

use avnplan::planning::{plan_with, PlanOptions};

use crate::data::real_model;

/// One default plan on `$AVNPLAN_PROFILE_FEMUR` (default `tlem2_right`);
/// writes the whole plan (`{:#?}`, every f64 to the bit) to
/// `$AVNPLAN_PROFILE_OUT` when set.
#[test]
#[ignore = "profile target; run by hand (release, under callgrind)"]
fn whole_plan_profile_target() {
    let name = std::env::var("AVNPLAN_PROFILE_FEMUR").unwrap_or_else(|_| "tlem2_right".into());
    let Some((model, case)) = real_model(&name) else {
        eprintln!("SKIPPED: femur mesh {name} not found");
        return;
    };
    let plan = plan_with(&model, &case, &PlanOptions::default()).unwrap();
    eprintln!(
        "{name}: {} candidates, {} safe, {:?}",
        plan.candidates, plan.safe_candidates, plan.reasons
    );
    if let Some(out) = std::env::var_os("AVNPLAN_PROFILE_OUT") {
        std::fs::write(out, format!("{plan:#?}\n")).unwrap();
    }
}

/// The whole plan with default options (trajectories, alternatives, scores,
/// coverage, rejection counts, warnings: its full `Debug` dump, every f64 to
/// the bit) is the same on one and on two threads, on both real femurs:
/// the per-entry state of the hot path (remembered blocking triangles) and
/// the lazily filled distance field never change an answer.
#[test]
fn whole_plan_is_identical_on_one_and_two_threads() {
    for name in ["lhdl_ct_right", "tlem2_right"] {
        let Some((model, case)) = real_model(name) else {
            eprintln!("SKIPPED: femur mesh {name} not found");
            continue;
        };
        let run = |n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
                .install(|| plan_with(&model, &case, &PlanOptions::default()).unwrap())
        };
        let one = format!("{:#?}", run(1));
        let two = format!("{:#?}", run(2));
        assert!(one.contains("status: Ok"), "{name}");
        assert_eq!(one, two, "{name}");
    }
}
