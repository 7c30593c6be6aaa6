//! Reconstruction accuracy on phantoms (issue 4's table): AP + lateral views
//! of [`Phantom::generate`] at annotation noise 0 / 0.5 / 1 / 2 px, over
//! seeds; the views alone (no CT mesh) are reconstructed and compared with
//! the phantom's truth.
//!
//! Columns: head centre RMS error, radius RMS error, lesion centre RMS error
//! and volume RMS error (%), lesion outline RMS (px, mean), entry landmark
//! RMS error, neck axis RMS angle error (and worst), how far the
//! reconstructed femur lies inside the true one (worst vertex depth, mm;
//! positive = inside), and the planner's default entry (neck axis extended
//! laterally through the reconstructed femur): its distance to the true bone
//! surface (RMS and worst).
//!
//! Run: `cargo run --release --example recon_table [-- SEEDS [MESH_EVERY]]`
//! (defaults 50 seeds, every seed meshed).

use avnplan::phantom::{Phantom, PhantomOptions};
use avnplan::pipeline::{build_model, PipelineOptions};
use avnplan::planning::candidates::default_entry_zone;
use avnplan::reconstruction::{reconstruct, ReconstructionOptions};
use nalgebra::{Point3, Vector3};

#[derive(Default)]
struct Acc {
    n: usize,
    head_c: f64,
    head_r: f64,
    les_c: f64,
    les_v: f64,
    les_v_worst: f64,
    les_rms_px: f64,
    land: f64,
    neck_deg: f64,
    neck_worst_deg: f64,
    femurs: usize,
    worst_depth: f64,
    entries: usize,
    entry_sq: f64,
    entry_worst: f64,
    failures: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let seeds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(50);
    let mesh_every: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    println!(
        "noise_px | n  | head_c_rms_mm | radius_rms_mm | lesion_c_rms_mm | lesion_vol_rms_% (worst) | lesion_rms_px | entry_lm_rms_mm | neck_rms_deg (worst) | femur_worst_inside_mm (n) | default_entry_to_true_surface_rms_mm (worst, n) | shrink_mm"
    );
    for &noise in &[0.0, 0.5, 1.0, 2.0] {
        let mut a = Acc {
            worst_depth: f64::INFINITY,
            ..Acc::default()
        };
        let mut shrink = 0.0;
        for seed in 0..seeds {
            let mut po = PhantomOptions::default();
            po.noise_px = noise;
            po.with_mesh = false;
            let ph = Phantom::generate(seed, &po)?;
            let mut ro = ReconstructionOptions::default();
            ro.noise_px = noise;
            ro.build_mesh = seed % mesh_every == 0;
            let r = match reconstruct(&ph.case.views, &ro) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("seed {seed} noise {noise}: {e}");
                    a.failures += 1;
                    continue;
                }
            };
            shrink = r.shrink_mm;
            let t = &ph.truth;
            a.n += 1;
            a.head_c += (r.head.sphere.center - Point3::from(t.head.center_mm)).norm_squared();
            a.head_r += (r.head.sphere.radius_mm - t.head.radius_mm).powi(2);
            if let Some(l) = &r.lesion {
                a.les_c += (l.ellipsoid.center - ph.lesion.center).norm_squared();
                let dv = 100.0 * (l.volume_ml / ph.lesion.volume_ml() - 1.0);
                a.les_v += dv * dv;
                a.les_v_worst = a.les_v_worst.max(dv.abs());
                a.les_rms_px += l.rms_px;
            }
            if let Some(e) = &r.entry {
                a.land += (e.point - ph.entry_mm()).norm_squared();
            }
            if let Some(n) = r.neck_axis() {
                let d = n
                    .direction
                    .dot(&Vector3::from(t.neck_axis.direction))
                    .clamp(-1.0, 1.0)
                    .acos()
                    .to_degrees();
                a.neck_deg += d * d;
                a.neck_worst_deg = a.neck_worst_deg.max(d);
            }
            if let Some(m) = &r.bone_mesh {
                a.femurs += 1;
                for v in &m.vertices {
                    a.worst_depth = a.worst_depth.min(-ph.bone_sdf(v));
                }
                let mut po = PipelineOptions::default();
                po.reconstruction = ro;
                if let Ok(b) = build_model(&ph.case, &po) {
                    if let Some(z) = default_entry_zone(&b.model) {
                        let d = ph.bone_sdf(&z.sphere.center).abs();
                        a.entries += 1;
                        a.entry_sq += d * d;
                        a.entry_worst = a.entry_worst.max(d);
                    }
                }
            }
        }
        let rms = |x: f64, n: usize| (x / n.max(1) as f64).sqrt();
        println!(
            "{noise:8.1} | {:2} | {:13.3} | {:13.3} | {:15.3} | {:8.2} ({:6.2})        | {:13.3} | {:15.3} | {:8.3} ({:7.3})    | {:8.3} ({:2})             | {:8.3} ({:6.3}, {:2})                      | {:.2}  failures {}",
            a.n,
            rms(a.head_c, a.n),
            rms(a.head_r, a.n),
            rms(a.les_c, a.n),
            rms(a.les_v, a.n),
            a.les_v_worst,
            a.les_rms_px / a.n.max(1) as f64,
            rms(a.land, a.n),
            rms(a.neck_deg, a.n),
            a.neck_worst_deg,
            a.worst_depth,
            a.femurs,
            rms(a.entry_sq, a.entries),
            a.entry_worst,
            a.entries,
            shrink,
            a.failures,
        );
    }
    Ok(())
}
