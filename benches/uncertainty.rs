//! Criterion bench of a 1000-sample Monte Carlo of the breach probability
//! (annotation noise 1 px through reconstruction to the planner's rules) for
//! the planned trajectory of a views-only phantom. Also one sample's cost
//! (a 10-sample run). Run: `cargo bench --bench uncertainty`.

use std::time::Duration;

use avnplan::phantom::{Phantom, PhantomOptions};
use avnplan::pipeline::{plan_case, PipelineOptions};
use avnplan::uncertainty::{monte_carlo, UncertaintyOptions};
use criterion::{criterion_group, criterion_main, Criterion};

fn bench_uncertainty(c: &mut Criterion) {
    let mut po = PhantomOptions::default();
    po.noise_px = 1.0;
    po.with_mesh = false;
    let ph = Phantom::generate(3, &po).expect("phantom");
    let mut opts = PipelineOptions::default();
    opts.uncertainty.samples = 0;
    let (built, plan) = plan_case(&ph.case, &opts).expect("plan");
    let Some(t) = plan.trajectories.first() else {
        eprintln!("uncertainty bench: the phantom has no plan; skipped");
        return;
    };
    let segs = [(t.entry_mm, t.tip_mm)];
    let mut g = c.benchmark_group("uncertainty");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    // About 12 ms of CPU per sample (one reconstruction; the rules are
    // evaluated on the analytic femur, no meshing): 1000 samples take about
    // 3.9 s per iteration on 2 cores (quiet machine), 80 s of criterion's
    // quick run: over CI's budget for one bench, so
    // they are measured with AVNPLAN_BENCH_FULL=1.
    let sizes: &[usize] = if std::env::var_os("AVNPLAN_BENCH_FULL").is_some() {
        &[10, 100, 1000]
    } else {
        &[10, 100]
    };
    for &n in sizes {
        let mut uo = UncertaintyOptions::default();
        uo.samples = n;
        g.bench_function(format!("monte_carlo/{n}"), |b| {
            b.iter(|| {
                monte_carlo(&ph.case, &built.model, &segs, &opts.reconstruction, &uo)
                    .expect("monte carlo")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_uncertainty);
criterion_main!(benches);
