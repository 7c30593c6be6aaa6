//! Breach probability by Monte Carlo (issue 6, "Uncertainty").
//!
//! Default run: one views-only phantom at 1 px noise; a line grazing the
//! model's cortex has a high breach probability, the planned one a low one;
//! the same seed gives the same numbers on 1 and 2 threads; the standard
//! error is the binomial one; `max_breach_probability` rejects and never
//! relaxes. The calibration over hundreds of phantom trajectories is
//! `examples/uncertainty_calibration.rs` (table in the CHANGELOG/README).

use avnplan::phantom::{Phantom, PhantomOptions};
use avnplan::pipeline::{plan_case, plan_to_file, BuiltModel, PipelineOptions};
use avnplan::planning::{Plan, PlanStatus, RejectReason, Rules};
use avnplan::uncertainty::{monte_carlo, UncertaintyOptions, BACKOFF_MM};
use nalgebra::{Point3, Unit, Vector3};

fn quick_pipeline() -> PipelineOptions {
    let mut o = PipelineOptions::default();
    o.planning.entry_spacing_mm = 1.5;
    o.planning.target_tips = 60;
    o.uncertainty.samples = 0;
    o
}

fn phantom_plan(seed: u64) -> (Phantom, BuiltModel, Plan) {
    let mut po = PhantomOptions::default();
    po.noise_px = 1.0;
    po.with_mesh = false;
    let ph = Phantom::generate(seed, &po).unwrap();
    let (built, plan) = plan_case(&ph.case, &quick_pipeline()).unwrap();
    assert_eq!(plan.status, PlanStatus::Ok, "{:?}", plan.reasons);
    (ph, built, plan)
}

/// The best line moved sideways until its clearance on the model is `target` mm.
fn grazing(built: &BuiltModel, plan: &Plan, target: f64) -> (Point3<f64>, Point3<f64>) {
    let best = &plan.trajectories[0];
    let d = Unit::new_normalize(best.tip_mm - best.entry_mm);
    let a = d.cross(&Vector3::z()).normalize();
    let rules = Rules::new(&avnplan::Constraints::default(), &[], 0.0);
    let bone = &built.model.bone;
    let clearance = |s: f64| -> Option<f64> {
        let o = best.entry_mm + a * s - d.into_inner() * BACKOFF_MM;
        let tip = best.tip_mm + a * s;
        if bone.contains(&o) || !bone.contains(&tip) {
            return None;
        }
        let hit = bone.first_hit(&o, &d, 2.0 * BACKOFF_MM + best.length_mm)?;
        Some(rules.min_clearance_mm(bone, &hit.point, &tip))
    };
    let (mut lo, mut hi) = (0.0, 15.0);
    for _ in 0..30 {
        let mid = 0.5 * (lo + hi);
        if clearance(mid).is_some_and(|c| c >= target) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (best.entry_mm + a * lo, best.tip_mm + a * lo)
}

#[test]
fn uncertainty_grazing_line_is_likely_to_breach_the_planned_one_is_not() {
    let (ph, built, plan) = phantom_plan(11);
    let best = &plan.trajectories[0];
    let graze = grazing(&built, &plan, 0.0);
    let mut uo = UncertaintyOptions::default();
    uo.samples = 40;
    let segs = [(best.entry_mm, best.tip_mm), graze];
    let u = monte_carlo(
        &ph.case,
        &built.model,
        &segs,
        &quick_pipeline().reconstruction,
        &uo,
    )
    .unwrap();
    eprintln!("{u:#?}");
    assert_eq!(u.failed_samples, 0);
    let (good, bad) = (&u.trajectories[0], &u.trajectories[1]);
    // The planned line keeps >= 2 mm on a model shrunk inside the bone.
    assert!(good.breach_probability <= 0.05, "{good:?}");
    assert!(good.clearance_p05_mm >= 2.0, "{good:?}");
    // Axis at the needle radius from the model's cortex: no sample keeps 2 mm.
    assert!(bad.breach_probability >= 0.9, "{bad:?}");
    assert!(bad.clearance_p05_mm < 2.0, "{bad:?}");
    // Each sample breaks rule 2 one way or the other: the body too close to
    // the cortex, or the axis itself outside that sample's bone.
    assert!(
        bad.reasons.contains_key(&RejectReason::CorticalClearance)
            || bad.reasons.contains_key(&RejectReason::LeavesBone),
        "{bad:?}"
    );
    for t in &u.trajectories {
        let p = t.breach_probability;
        approx::assert_relative_eq!(
            t.breach_standard_error,
            (p * (1.0 - p) / 40.0).sqrt(),
            epsilon = 1e-12
        );
        assert!(t.clearance_sd_mm >= 0.0 && t.clearance_p05_mm <= t.clearance_mean_mm);
    }
}

#[test]
fn uncertainty_same_seed_same_numbers_on_one_and_two_threads() {
    let (ph, built, plan) = phantom_plan(12);
    let t = &plan.trajectories[0];
    let segs = [(t.entry_mm, t.tip_mm), grazing(&built, &plan, 1.5)];
    let mut uo = UncertaintyOptions::default();
    uo.samples = 12;
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            monte_carlo(
                &ph.case,
                &built.model,
                &segs,
                &quick_pipeline().reconstruction,
                &uo,
            )
            .unwrap()
        })
    };
    let a = run(1);
    let b = run(2);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    // Another seed gives other samples.
    uo.seed += 1;
    let c = monte_carlo(
        &ph.case,
        &built.model,
        &segs,
        &quick_pipeline().reconstruction,
        &uo,
    )
    .unwrap();
    assert_ne!(
        a.trajectories[0].clearance_mean_mm,
        c.trajectories[0].clearance_mean_mm
    );
}

#[test]
fn uncertainty_in_the_plan_and_max_breach_probability_never_relaxes() {
    let mut po = PhantomOptions::default();
    po.noise_px = 1.0;
    po.with_mesh = false;
    let ph = Phantom::generate(13, &po).unwrap();
    let mut opts = quick_pipeline();
    opts.uncertainty.samples = 16;
    let (built, plan) = plan_case(&ph.case, &opts).unwrap();
    assert_eq!(plan.status, PlanStatus::Ok);
    for t in &plan.trajectories {
        let p = t.breach_probability.expect("estimated");
        assert!((0.0..=1.0).contains(&p));
        assert!(t.clearance_p05_mm.is_some());
    }
    let m = plan.recommended_margin_mm.expect("margin");
    assert!(m >= 0.0 && m.is_finite());
    let file = plan_to_file(&built, &plan);
    assert_eq!(file.recommended_margin_mm, Some(m));
    assert!(file.trajectories[0].breach_probability.is_some());

    // A zero limit: only trajectories with p = 0 survive, none with p > 0
    // is admitted, and every rejection is counted.
    let mut strict = ph.case.clone();
    strict.constraints.max_breach_probability = Some(0.0);
    let (_, sp) = plan_case(&strict, &opts).unwrap();
    for t in sp.trajectories.iter().chain(&sp.alternatives) {
        assert_eq!(t.breach_probability, Some(0.0));
    }
    if sp.status == PlanStatus::NoSafeTrajectory {
        assert!(
            sp.reasons
                .get(&RejectReason::BreachProbability)
                .copied()
                .unwrap_or(0)
                > 0
        );
        assert!(sp.trajectories.is_empty());
    }
    // A limit of 1 rejects nothing and changes nothing.
    let mut loose = ph.case.clone();
    loose.constraints.max_breach_probability = Some(1.0);
    let (_, lp) = plan_case(&loose, &opts).unwrap();
    // Same trajectories and probabilities (the clearance quantile may move by
    // the local mesh, which then also covers the alternatives).
    let key = |p: &Plan| -> Vec<_> {
        p.trajectories
            .iter()
            .map(|t| (t.entry_mm, t.tip_mm, t.breach_probability))
            .collect()
    };
    assert_eq!(key(&lp), key(&plan));
    assert!(!lp.reasons.contains_key(&RejectReason::BreachProbability));
}

#[test]
fn uncertainty_with_a_ct_mesh_only_the_lesion_is_uncertain() {
    let mut po = PhantomOptions::default();
    po.noise_px = 1.0;
    let ph = Phantom::generate(14, &po).unwrap();
    let (built, plan) = plan_case(&ph.case, &quick_pipeline()).unwrap();
    let t = &plan.trajectories[0];
    let mut uo = UncertaintyOptions::default();
    uo.samples = 10;
    let u = monte_carlo(
        &ph.case,
        &built.model,
        &[(t.entry_mm, t.tip_mm)],
        &quick_pipeline().reconstruction,
        &uo,
    )
    .unwrap();
    assert!(u.bone_known);
    let tu = &u.trajectories[0];
    assert_eq!(tu.breach_probability, 0.0);
    // The bone is fixed: the clearance does not vary.
    assert!(tu.clearance_sd_mm < 1e-9, "{tu:?}");
    approx::assert_relative_eq!(tu.clearance_p05_mm, t.min_clearance_mm, epsilon = 1e-6);
}

#[test]
fn uncertainty_a_limit_is_never_skipped_when_the_monte_carlo_is_off() {
    let (ph, built, mut plan) = phantom_plan(5);
    let mut case = ph.case.clone();
    case.constraints.max_breach_probability = Some(0.1);
    let mut uo = UncertaintyOptions::default();
    uo.samples = 0;
    let e = avnplan::uncertainty::assess_plan(
        &case,
        &built.model,
        &mut plan,
        &quick_pipeline().reconstruction,
        &uo,
    )
    .unwrap_err();
    assert!(e.to_string().contains("max_breach_probability"), "{e}");
}
