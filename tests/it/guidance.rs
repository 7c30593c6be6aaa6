//! The intra-operative check on phantoms: simulated insertions that deviate
//! from the plan by known angles (0-10 degrees), entry offsets and depths,
//! seen in AP + lateral with 1 px Gaussian noise on the tip and two shaft
//! points; the check must recover the tip and direction, and its `breach`
//! must match the truth's, computed on the TRUE mesh with the contract's
//! definition (and cross-checked by an independent sampled oracle).
//!
//! Default run: 2 phantoms x 12 needles, asserting. The full study (>= 200
//! needles, confusion table per clearance band) is
//! `cargo test --release --test it guidance::breach_study -- --ignored --nocapture`.

use nalgebra::{Point2, Point3, Rotation3, Unit, Vector3};
use parry3d_f64::math::Isometry;
use parry3d_f64::query::PointQuery;
use parry3d_f64::shape::{TriMesh as PTriMesh, TriMeshFlags};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use avnplan::geometry::BoneSurface;
use avnplan::guidance::{
    check_needle, check_views, needle_state, CheckContext, CheckViewKind, NeedleObservation,
    PlannedPath,
};
use avnplan::phantom::{Phantom, PhantomOptions};
use avnplan::pipeline::{plan_case, PipelineOptions};
use avnplan::reconstruction::NeedleImage;
use avnplan::Constraints;

/// One simulated needle and what the check said.
#[derive(Debug, Clone)]
struct Outcome {
    tip_err_mm: f64,
    angle_err_deg: f64,
    true_clearance_mm: f64,
    true_breach: bool,
    oracle_breach: bool,
    seen_breach: bool,
    seen_clearance_mm: f64,
}

/// Independent sampled oracle: the contract's clearance from parry's point
/// queries every 0.05 mm over the covered part (entry taken from the
/// crate; the sign of the minimum decides the breach).
fn oracle_breach(
    pm: &PTriMesh,
    entry: &Point3<f64>,
    tip: &Point3<f64>,
    c: &Constraints,
) -> Option<f64> {
    let v = tip - entry;
    let len = v.norm();
    if len <= c.entry_allowance_mm {
        return None;
    }
    let d = v / len;
    let n = ((len - c.entry_allowance_mm) / 0.05).ceil() as usize;
    let mut m = f64::INFINITY;
    for k in 0..=n {
        let s = c.entry_allowance_mm + (len - c.entry_allowance_mm) * k as f64 / n as f64;
        let p = entry + d * s;
        let dist = pm.distance_to_point(&Isometry::identity(), &p, false);
        let depth = if pm.contains_point(&Isometry::identity(), &p) {
            dist
        } else {
            -dist
        };
        m = m.min(depth);
    }
    Some(m - c.needle_radius_mm())
}

fn noisy(p: Point2<f64>, rng: &mut ChaCha8Rng, sigma: f64) -> Point2<f64> {
    let n = Normal::new(0.0, sigma).unwrap();
    Point2::new(p.x + n.sample(rng), p.y + n.sample(rng))
}

/// A unit vector perpendicular to `d`, at angle `phi` around it.
fn perpendicular(d: &Vector3<f64>, phi: f64) -> Vector3<f64> {
    let a = if d.x.abs() < 0.9 {
        Vector3::x()
    } else {
        Vector3::y()
    };
    let u = d.cross(&a).normalize();
    let w = d.cross(&u);
    u * phi.cos() + w * phi.sin()
}

/// Simulates `n` needles on phantom `seed` and checks each.
fn simulate(seed: u64, n: usize, noise_px: f64) -> Vec<Outcome> {
    // Noise-free annotations for the plan; the needle gets its own noise.
    let ph = Phantom::generate(seed, &PhantomOptions::default()).unwrap();
    let (built, plan) = plan_case(&ph.case, &PipelineOptions::default()).unwrap();
    let Some(t0) = plan.trajectories.first() else {
        eprintln!("phantom {seed}: no plan, skipped");
        return Vec::new();
    };
    let planned = [PlannedPath {
        entry_mm: t0.entry_mm,
        tip_mm: t0.tip_mm,
    }];
    // The TRUE bone: the phantom's mesh (the case carries it, so the check's
    // model bone is the same surface; only the needle is uncertain).
    let truth = BoneSurface::new(ph.mesh.clone()).unwrap();
    let pm = PTriMesh::with_flags(
        ph.mesh.vertices.clone(),
        ph.mesh.triangles.clone(),
        TriMeshFlags::ORIENTED | TriMeshFlags::MERGE_DUPLICATE_VERTICES,
    )
    .unwrap();
    let c = ph.case.constraints;
    let ctx = CheckContext {
        bone: &built.model.bone,
        side: ph.case.side,
        constraints: &c,
        forbidden: &[],
    };
    let d0 = (t0.tip_mm - t0.entry_mm).normalize();
    let l0 = t0.length_mm;
    let mut rng = ChaCha8Rng::seed_from_u64(1000 + seed);
    let mut out = Vec::new();
    for k in 0..n {
        let phi = rng.random::<f64>() * std::f64::consts::TAU;
        let axis = perpendicular(&d0, phi);
        let offset = perpendicular(&d0, rng.random::<f64>() * std::f64::consts::TAU)
            * (2.0 * rng.random::<f64>());
        let e = t0.entry_mm + offset;
        let depth = l0 * (0.4 + 0.7 * rng.random::<f64>());
        let tip_at = |alpha: f64| {
            let rot = Rotation3::from_axis_angle(&Unit::new_normalize(axis), alpha);
            let d = rot * d0;
            (e + d * depth, Unit::new_normalize(d))
        };
        // Three kinds in turn: a random angle in 0-10 degrees; near the
        // breach boundary (the angle where the true clearance crosses 0,
        // found by bisection, jittered by +-0.3 degrees); a clear breach
        // (1.5-4 degrees beyond that angle).
        let random = rng.random::<f64>() * 10f64.to_radians();
        let alpha = if k % 3 == 0 {
            random
        } else {
            let clr = |a: f64| {
                let (t, d) = tip_at(a);
                needle_state(&truth, &c, &[], &t, &d).min_clearance_mm
            };
            let (mut lo, mut hi) = (0.0f64, 20f64.to_radians());
            if clr(lo) > 0.0 && clr(hi) < 0.0 {
                for _ in 0..20 {
                    let m = 0.5 * (lo + hi);
                    if clr(m) >= 0.0 {
                        lo = m;
                    } else {
                        hi = m;
                    }
                }
                if k % 3 == 1 {
                    lo + (rng.random::<f64>() - 0.5) * 0.6f64.to_radians()
                } else {
                    lo + (1.5 + 2.5 * rng.random::<f64>()).to_radians()
                }
            } else {
                random
            }
        };
        let (tip, dir) = tip_at(alpha);
        let st = needle_state(&truth, &c, &[], &tip, &dir);
        let oracle = st
            .entry_mm
            .and_then(|en| oracle_breach(&pm, &en, &tip, &c))
            .map_or(st.breach, |m| m < 0.0);
        // The needle's images: tip and two shaft points 30 and 70 mm back.
        let seen: Vec<NeedleObservation> = ph
            .case
            .views
            .iter()
            .map(|v| {
                let p = &v.projection;
                let px = |x: &Point3<f64>| p.project(x).unwrap();
                NeedleObservation {
                    view_name: v.name.clone(),
                    image: NeedleImage {
                        projection: *p,
                        tip_px: noisy(px(&tip), &mut rng, noise_px),
                        shaft_px: vec![
                            noisy(px(&(tip - dir.into_inner() * 30.0)), &mut rng, noise_px),
                            noisy(px(&(tip - dir.into_inner() * 70.0)), &mut rng, noise_px),
                        ],
                    },
                }
            })
            .collect();
        let chk = check_needle(&ctx, &planned, &seen).unwrap();
        out.push(Outcome {
            tip_err_mm: (chk.tip_mm - tip).norm(),
            angle_err_deg: chk.direction.dot(&dir).clamp(-1.0, 1.0).acos().to_degrees(),
            true_clearance_mm: st.min_clearance_mm,
            true_breach: st.breach,
            oracle_breach: oracle,
            seen_breach: chk.state.breach,
            seen_clearance_mm: chk.state.min_clearance_mm,
        });
    }
    out
}

fn rms(x: &[f64]) -> f64 {
    (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

fn p95(x: &[f64]) -> f64 {
    let mut v = x.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * 0.95).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Prints the summary and confusion tables; returns (tip RMS, angle RMS,
/// agreement on clear cases).
fn report(all: &[Outcome]) -> (f64, f64, f64) {
    let tips: Vec<f64> = all.iter().map(|o| o.tip_err_mm).collect();
    let angs: Vec<f64> = all.iter().map(|o| o.angle_err_deg).collect();
    println!(
        "needles: {}  tip error RMS {:.3} mm, p95 {:.3} mm, max {:.3} mm;  angle error RMS {:.3} deg, p95 {:.3} deg, max {:.3} deg",
        all.len(),
        rms(&tips),
        p95(&tips),
        tips.iter().copied().fold(0.0, f64::max),
        rms(&angs),
        p95(&angs),
        angs.iter().copied().fold(0.0, f64::max)
    );
    let cl: Vec<f64> = all
        .iter()
        .map(|o| o.seen_clearance_mm - o.true_clearance_mm)
        .collect();
    println!(
        "clearance error (check - truth): RMS {:.3} mm, p95 |.| {:.3} mm",
        rms(&cl),
        p95(&cl.iter().map(|x| x.abs()).collect::<Vec<_>>())
    );
    let mut clear_agree = (0usize, 0usize);
    println!("band (true clearance)      n   TT   TF   FT   FF  agree   (T = breach; truth first, check second)");
    for (name, lo, hi) in [
        ("clear breach  (< -0.5 mm)", f64::NEG_INFINITY, -0.5),
        ("near boundary (|c|<=0.5)", -0.5, 0.5),
        ("clear safe    (> +0.5 mm)", 0.5, f64::INFINITY),
        ("all", f64::NEG_INFINITY, f64::INFINITY),
    ] {
        let b: Vec<&Outcome> = all
            .iter()
            .filter(|o| name == "all" || (o.true_clearance_mm > lo && o.true_clearance_mm <= hi))
            .collect();
        let cnt = |t: bool, s: bool| {
            b.iter()
                .filter(|o| o.true_breach == t && o.seen_breach == s)
                .count()
        };
        let (tt, tf, ft, ff) = (
            cnt(true, true),
            cnt(true, false),
            cnt(false, true),
            cnt(false, false),
        );
        let agree = tt + ff;
        println!(
            "{name:<26} {:>3} {tt:>4} {tf:>4} {ft:>4} {ff:>4}  {:>5.1}%",
            b.len(),
            100.0 * agree as f64 / b.len().max(1) as f64
        );
        if name.starts_with("clear") {
            clear_agree.0 += agree;
            clear_agree.1 += b.len();
        }
    }
    let oracle_disagree = all
        .iter()
        .filter(|o| o.oracle_breach != o.true_breach && o.true_clearance_mm.abs() > 0.05)
        .count();
    println!("truth vs independent sampled oracle: {oracle_disagree} disagreements beyond 0.05 mm");
    assert_eq!(
        oracle_disagree, 0,
        "the truth's breach must match the oracle"
    );
    (
        rms(&tips),
        rms(&angs),
        clear_agree.0 as f64 / clear_agree.1.max(1) as f64,
    )
}

#[test]
fn noiseless_views_recover_the_needle_exactly() {
    let all = simulate(3, 6, 1e-9);
    assert!(!all.is_empty());
    for o in &all {
        assert!(o.tip_err_mm < 1e-4, "{o:?}");
        assert!(o.angle_err_deg < 1e-4, "{o:?}");
        assert_eq!(o.seen_breach, o.true_breach, "{o:?}");
        assert!(
            (o.seen_clearance_mm - o.true_clearance_mm).abs() < 1e-3,
            "{o:?}"
        );
    }
}

#[test]
fn one_px_noise_recovers_tip_and_angle_and_breach() {
    let mut all = simulate(1, 12, 1.0);
    all.extend(simulate(2, 12, 1.0));
    assert!(all.len() >= 24);
    let (tip_rms, ang_rms, clear) = report(&all);
    assert!(tip_rms < 0.5, "tip RMS {tip_rms}");
    assert!(ang_rms < 1.0, "angle RMS {ang_rms}");
    assert!(clear >= 0.9, "agreement on clear cases {clear}");
    // The set covers clear breaches, clear non-breaches and the boundary.
    assert!(all.iter().any(|o| o.true_clearance_mm < -0.5));
    assert!(all.iter().any(|o| o.true_clearance_mm > 0.5));
    assert!(all.iter().any(|o| o.true_clearance_mm.abs() <= 0.5));
}

#[test]
#[ignore = "study: >= 200 needles on 8 phantoms, prints the confusion table"]
fn breach_study() {
    let mut all = Vec::new();
    for seed in 1..=8 {
        all.extend(simulate(seed, 26, 1.0));
    }
    assert!(all.len() >= 200, "only {} needles", all.len());
    let (tip_rms, ang_rms, _) = report(&all);
    assert!(tip_rms < 0.5 && ang_rms < 1.0);
}

#[test]
fn check_views_on_a_phantom_plan() {
    let ph = Phantom::generate(4, &PhantomOptions::default()).unwrap();
    let (built, plan) = plan_case(&ph.case, &PipelineOptions::default()).unwrap();
    let t = &plan.trajectories[0];
    let views = check_views(
        &built.model.bone,
        ph.case.side,
        &ph.case.constraints,
        &t.entry_mm,
        &t.tip_mm,
    );
    let d = (t.tip_mm - t.entry_mm).normalize();
    for v in &views {
        assert!(v.detector_direction.dot(&d).abs() < 1e-9);
    }
    let ant = views
        .iter()
        .find(|v| v.kind == CheckViewKind::AnteriorWall)
        .expect("anterior wall view");
    let ps = views
        .iter()
        .find(|v| v.kind == CheckViewKind::PosterosuperiorWall)
        .expect("posterosuperior wall view");
    // The planned needle is safe: each wall gap is at least the plan's clearance.
    for w in [ant, ps] {
        let gap = w.wall_clearance_mm.unwrap();
        assert!(
            gap >= t.min_clearance_mm - 1e-6,
            "{gap} < {}",
            t.min_clearance_mm
        );
    }
    println!(
        "check views (seed 4): {:?}",
        views
            .iter()
            .map(|v| (
                v.kind.as_str(),
                v.primary_rad.to_degrees().round(),
                v.secondary_rad.to_degrees().round()
            ))
            .collect::<Vec<_>>()
    );
}
