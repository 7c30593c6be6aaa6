//! Calibration of the predicted breach probability on phantoms (issue 6):
//! predicted probabilities, grouped in bins, against the breach frequency
//! observed on the phantoms' TRUE bone.
//!
//! Sample: for each seed, a phantom (side from the seed, annotation noise
//! cycling through 0.5, 1, 1.5, 2 px) without its bone mesh (views-only
//! model), planned with the default pipeline (coarser search grid for speed).
//! The trajectories judged are the plan's trajectory and its Pareto
//! alternatives, plus deliberately risky ones, to get breaches at all: the
//! best trajectory's line shifted sideways by 1-4 mm (four directions
//! perpendicular to it). Each is judged by the Monte Carlo of
//! `avnplan::uncertainty` (with the case's noise) and, independently, on the
//! true mesh by the integration tests' checker (`tests/it/checker.rs`):
//! the entry is where the line meets the true surface, and a breach is any
//! violation of rules 1-5.
//!
//! Run: `cargo run --release --example uncertainty_calibration -- [SEEDS [SAMPLES [SHRINK_MM]]]`
//! (defaults 25 seeds, 100 samples, the default sample shrink).

#[path = "../tests/it/checker.rs"]
#[allow(dead_code)]
mod checker;

use avnplan::geometry::BoneSurface;
use avnplan::phantom::{Phantom, PhantomOptions};
use avnplan::pipeline::{plan_case, PipelineOptions};
use avnplan::planning::{PlanStatus, Rules};
use avnplan::uncertainty::{monte_carlo, UncertaintyOptions, BACKOFF_MM};
use nalgebra::{Point3, Unit, Vector3};

/// Start of the needle's line outside the true bone, mm before the planned entry.
const FAR_MM: f64 = 150.0;

/// Whether the line `entry -> tip` breaks rules 1-5 on the true bone.
fn true_breach(
    truth: &BoneSurface,
    checker: &checker::Checker,
    ph: &Phantom,
    entry: &Point3<f64>,
    tip: &Point3<f64>,
) -> bool {
    let Some(d) = Unit::try_new(tip - entry, 1e-9) else {
        return true;
    };
    // From far outside: a views-only model lacks the greater trochanter, so
    // the true entry may lie well lateral of the planned one.
    let origin = entry - d.into_inner() * FAR_MM;
    if truth.contains(&origin) || !truth.contains(tip) {
        return true;
    }
    let len = (tip - origin).norm();
    let Some(hit) = truth.first_hit(&origin, &d, len) else {
        return true;
    };
    let c = &ph.case.constraints;
    let v = checker.check(&hit.point, tip, c, &ph.case.forbidden_zones, &|_| true);
    v.violations.iter().any(|(r, _)| *r <= 5)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let seeds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(25);
    let samples: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(100);
    let shrink: Option<f64> = args.next().map(|s| s.parse()).transpose()?;
    let mut rows: Vec<(f64, bool, f64, String)> = Vec::new();
    let mut plans = 0;
    for seed in 0..seeds {
        let noise = [0.5, 1.0, 1.5, 2.0][(seed % 4) as usize];
        let mut po = PhantomOptions::default();
        po.noise_px = noise;
        po.with_mesh = false;
        let mut ph = Phantom::generate(1000 + seed, &po)?;
        ph.case.annotation_noise_px = noise;
        let mut opts = PipelineOptions::default();
        opts.reconstruction.noise_px = noise;
        opts.planning.entry_spacing_mm = 1.5;
        opts.planning.target_tips = 60;
        opts.uncertainty.samples = 0;
        let (built, plan) = match plan_case(&ph.case, &opts) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("seed {seed}: {e}");
                continue;
            }
        };
        if plan.status != PlanStatus::Ok {
            eprintln!("seed {seed}: no safe trajectory");
            continue;
        }
        plans += 1;
        let mut segs: Vec<(Point3<f64>, Point3<f64>, String)> = plan
            .trajectories
            .iter()
            .map(|t| (t.entry_mm, t.tip_mm, "plan".to_string()))
            .chain(
                plan.alternatives
                    .iter()
                    .map(|t| (t.entry_mm, t.tip_mm, "alternative".to_string())),
            )
            .collect();
        // Risky lines: the best line shifted sideways until its clearance
        // on the model reaches a target (bisection on the shift).
        let best = &plan.trajectories[0];
        let d = Unit::new_normalize(best.tip_mm - best.entry_mm);
        let a = d.cross(&Vector3::z()).normalize();
        let b = d.cross(&a);
        let rules = Rules::new(&ph.case.constraints, &[], 0.0);
        let bone = &built.model.bone;
        let model_clearance = |s: &Vector3<f64>| -> Option<f64> {
            let o = best.entry_mm + s - d.into_inner() * BACKOFF_MM;
            let tip = best.tip_mm + s;
            if bone.contains(&o) || !bone.contains(&tip) {
                return None;
            }
            let hit = bone.first_hit(&o, &d, 2.0 * BACKOFF_MM + best.length_mm)?;
            Some(rules.min_clearance_mm(bone, &hit.point, &tip))
        };
        for (j, dir) in [a, -a, b, -b, (a + b).normalize(), (a - b).normalize()]
            .into_iter()
            .enumerate()
        {
            for target in [-0.5, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0] {
                let (mut lo, mut hi) = (0.0_f64, 12.0_f64);
                if model_clearance(&(dir * lo)).is_none_or(|c| c < target) {
                    continue;
                }
                for _ in 0..25 {
                    let mid = 0.5 * (lo + hi);
                    if model_clearance(&(dir * mid)).is_some_and(|c| c >= target) {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                let s = dir * lo;
                if (j + (target * 2.0) as usize) % 2 == 0 || target >= 1.0 {
                    segs.push((best.entry_mm + s, best.tip_mm + s, format!("risky{target}")));
                }
            }
        }
        let pairs: Vec<_> = segs.iter().map(|(e, t, _)| (*e, *t)).collect();
        let mut uo = UncertaintyOptions::default();
        uo.samples = samples;
        if let Some(s) = shrink {
            uo.sample_shrink_mm = s;
        }
        let u = monte_carlo(&ph.case, &built.model, &pairs, &opts.reconstruction, &uo)?;
        let truth = BoneSurface::new(ph.mesh.clone())?;
        let checker = checker::Checker::new(&ph.mesh);
        let mut line = format!("seed {seed} noise {noise}: failed {} |", u.failed_samples);
        for ((e, t, kind), tu) in segs.iter().zip(&u.trajectories) {
            let obs = true_breach(&truth, &checker, &ph, e, t);
            rows.push((tu.breach_probability, obs, noise, kind.clone()));
            line.push_str(&format!(
                " {:.2}{}",
                tu.breach_probability,
                if obs { "B" } else { "" }
            ));
        }
        eprintln!("{line}");
    }
    let edges = [0.0, 0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98, 1.0001];
    println!(
        "{plans} plans, {} trajectories, {samples} MC samples each",
        rows.len()
    );
    println!("| bin | n | mean predicted | observed frequency | |diff| |");
    println!("|---|---|---|---|---|");
    let mut worst: f64 = 0.0;
    let mut brier = 0.0;
    for w in edges.windows(2) {
        let sel: Vec<_> = rows.iter().filter(|r| r.0 >= w[0] && r.0 < w[1]).collect();
        if sel.is_empty() {
            continue;
        }
        let n = sel.len() as f64;
        let pred = sel.iter().map(|r| r.0).sum::<f64>() / n;
        let obs = sel.iter().filter(|r| r.1).count() as f64 / n;
        worst = worst.max((pred - obs).abs());
        println!(
            "| [{:.2}, {:.2}) | {} | {:.3} | {:.3} | {:.3} |",
            w[0],
            w[1].min(1.0),
            sel.len(),
            pred,
            obs,
            (pred - obs).abs()
        );
    }
    for r in &rows {
        brier += (r.0 - f64::from(u8::from(r.1))).powi(2);
    }
    println!(
        "largest bin error {worst:.3}; Brier score {:.4}; observed breaches {} of {}",
        brier / rows.len() as f64,
        rows.iter().filter(|r| r.1).count(),
        rows.len()
    );
    for kind in ["plan", "alternative"] {
        let sel: Vec<_> = rows.iter().filter(|r| r.3 == kind).collect();
        println!(
            "{kind}: {} trajectories, mean predicted {:.4}, observed breaches {}",
            sel.len(),
            sel.iter().map(|r| r.0).sum::<f64>() / sel.len().max(1) as f64,
            sel.iter().filter(|r| r.1).count()
        );
    }
    Ok(())
}
