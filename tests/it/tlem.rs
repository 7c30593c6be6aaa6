//! The whole plan on a real femur with default options (issue 5's
//! `plan/whole` case): a by-hand profile target and a dump of the plan for
//! before/after comparisons of the hot path (decisions must not change).
//!
//! `AVNPLAN_PROFILE_FEMUR=tlem2_right AVNPLAN_PROFILE_OUT=/tmp/plan.txt
//! RAYON_NUM_THREADS=1 valgrind --tool=callgrind <it binary> --ignored
//! --exact tlem::whole_plan_profile_target`

use nalgebra::{Rotation3, Vector3};

use avnplan::anatomy::{BoneSource, FemurLandmarks, HipModel, Lesion};
use avnplan::geometry::{BoneSurface, Ellipsoid};
use avnplan::planning::{plan_with, PlanOptions};
use avnplan::{Case, Side};

use crate::data::femur_mesh;

/// A real femur with the anterosuperior 3.7 mL lesion of the planning bench.
pub fn real_model(name: &str) -> Option<(HipModel, Case)> {
    let mesh = femur_mesh(name)?;
    let lm = FemurLandmarks::from_mesh(&mesh, Some(Side::Right)).expect("landmarks");
    let sup = lm.frame.world_from_head.rotation * Vector3::z();
    let ant = lm.frame.anterior().into_inner();
    let dir = (sup * 0.8 + ant * 0.6).normalize();
    let center = lm.head.center + dir * (0.4 * lm.head.radius_mm);
    let rot = Rotation3::face_towards(&dir, &sup);
    let lesion =
        Lesion::Ellipsoid(Ellipsoid::new(center, Vector3::new(9.0, 9.0, 11.0), rot).unwrap());
    let bone = BoneSurface::new(mesh).expect("bone surface");
    let mut model = HipModel::new(Side::Right, bone, BoneSource::Mesh, lm.head, lesion);
    model.neck_axis = Some(lm.neck_axis);
    model.shaft_axis = Some(lm.shaft_axis);
    model.lesser_trochanter_level_mm = Some(lm.lesser_trochanter_level_mm);
    Some((model, Case::new(Side::Right, Vec::new())))
}

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
