//! A simulated insertion checked step by step: a phantom is planned on its
//! mesh, then a needle goes in through an entry 1.5 mm off the plan and
//! 5 degrees off its direction. After every advance the needle's tip and
//! two shaft points are "clicked" in AP and lateral with 1 px noise and
//! checked against the plan ([`avnplan::guidance::check_needle`]); when the
//! check advises a redirection, the simulated surgeon withdraws to 25 mm,
//! follows the advice (with a residual error of 0.7 degrees) and goes on.
//!
//! Writes into `out/intraop_check/` (or the folder given as first
//! argument): per step and view an overlay `stepNN_VIEW.svg` / `.png`
//! (simulated radiograph, bone outline, lesion, planned needle in blue, the
//! seen needle in magenta with its clicked points, and the step's verdict),
//! `stepNN_check.json` (the contract's `avnplan.check/1`), `plan.json`
//! (with the check views) and `report.txt` (the truth beside each check).
//!
//! Run: `cargo run --release --example intraop_check [-- OUT_DIR [SEED]]`

use std::fmt::Write as _;
use std::path::PathBuf;

use nalgebra::{Point2, Point3, Rotation3, Unit, Vector3};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use avnplan::geometry::BoneSurface;
use avnplan::guidance::{check_needle, needle_state, CheckContext, NeedleObservation, PlannedPath};
use avnplan::io::to_json_string;
use avnplan::phantom::{Phantom, PhantomOptions};
use avnplan::pipeline::{
    add_check_views, check_to_file, plan_case, plan_to_file, safe_file_stem, PipelineOptions,
};
use avnplan::reconstruction::{ellipsoid_outline_px, NeedleImage};
use avnplan::render::{view_overlay, Colour, GrayImage, Marker, NeedleDraw};

/// Magenta: the needle as seen (the plan is blue, [`Colour::NEEDLES`]\[0\]).
const SEEN: Colour = Colour::NEEDLES[1];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().unwrap_or_else(|| "out/intraop_check".into()));
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(7);
    std::fs::create_dir_all(&out)?;

    // 1. Phantom and plan (on its CT-like mesh).
    let ph = Phantom::generate(seed, &PhantomOptions::default())?;
    let case = &ph.case;
    let (built, plan) = plan_case(case, &PipelineOptions::default())?;
    let t0 = plan
        .trajectories
        .first()
        .ok_or("the phantom has no safe trajectory; try another seed")?;
    let mut file = plan_to_file(&built, &plan);
    add_check_views(&mut file, &built, case);
    std::fs::write(out.join("plan.json"), to_json_string(&file)?)?;
    let planned = [PlannedPath {
        entry_mm: t0.entry_mm,
        tip_mm: t0.tip_mm,
    }];
    let c = case.constraints;
    let ctx = CheckContext {
        bone: &built.model.bone,
        side: case.side,
        constraints: &c,
        forbidden: &case.forbidden_zones,
    };
    let truth = BoneSurface::new(ph.mesh.clone())?;
    let backgrounds: Vec<Option<GrayImage>> = (0..case.views.len())
        .map(|k| {
            ph.radiograph(k)
                .ok()
                .and_then(|r| GrayImage::new(r.width, r.height, r.pixels).ok())
        })
        .collect();
    let lesion = built.model.lesion.equivalent_ellipsoid();

    // 2. The insertion: entry 1.5 mm off, direction 5 degrees off.
    let d0 = (t0.tip_mm - t0.entry_mm).normalize();
    let side_axis = d0.cross(&Vector3::z()).normalize();
    let tilt = Rotation3::from_axis_angle(&Unit::new_normalize(side_axis), 5f64.to_radians())
        * Rotation3::from_axis_angle(&Unit::new_normalize(Vector3::z()), 2f64.to_radians());
    let mut start = t0.entry_mm + side_axis * 1.5 - d0 * 15.0; // line starts in soft tissue
    let mut dir = Unit::new_normalize(tilt * d0);
    let mut depth = 15.0 + 25.0; // 25 mm into the bone
    let noise = Normal::new(0.0, 1.0)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut report = String::new();
    writeln!(
        report,
        "intraop_check: phantom seed {seed}, {} femur; plan: entry {:.1?}, tip {:.1?}, length {:.1} mm, clearance {:.2} mm\n",
        format!("{:?}", case.side).to_lowercase(),
        t0.entry_mm.coords.as_slice(),
        t0.tip_mm.coords.as_slice(),
        t0.length_mm,
        t0.min_clearance_mm
    )?;
    let mut redirected = false;
    for step in 1..=8 {
        let tip = start + dir.into_inner() * depth;
        let back = [tip - dir.into_inner() * 30.0, tip - dir.into_inner() * 70.0];
        let mut seen = Vec::new();
        for v in &case.views {
            let p = &v.projection;
            let mut px = |x: &Point3<f64>| -> Result<Point2<f64>, avnplan::Error> {
                let q = p.project(x)?;
                Ok(Point2::new(
                    q.x + noise.sample(&mut rng),
                    q.y + noise.sample(&mut rng),
                ))
            };
            seen.push(NeedleObservation {
                view_name: v.name.clone(),
                image: NeedleImage {
                    projection: *p,
                    tip_px: px(&tip)?,
                    shaft_px: vec![px(&back[0])?, px(&back[1])?],
                },
            });
        }
        let chk = check_needle(&ctx, &planned, &seen)?;
        let st_true = needle_state(&truth, &c, &case.forbidden_zones, &tip, &dir);
        std::fs::write(
            out.join(format!("step{step:02}_check.json")),
            to_json_string(&check_to_file(&chk))?,
        )?;
        writeln!(
            report,
            "step {step}: {:.1} mm in; truth: clearance {:.2} mm, breach {}, advance {:.1} mm | check: tip error {:.2} mm, angle error vs plan {:.1} deg, clearance {:.2} mm, breach {}, advance {:.1} mm\n  advice: {}\n",
            st_true.inserted_mm,
            st_true.min_clearance_mm,
            st_true.breach,
            st_true.advance_safe_mm,
            (chk.tip_mm - tip).norm(),
            chk.angle_error_rad.to_degrees(),
            chk.state.min_clearance_mm,
            chk.state.breach,
            chk.state.advance_safe_mm,
            chk.advice
        )?;
        // Pictures.
        for (k, (v, o)) in case.views.iter().zip(&seen).enumerate() {
            let p = &v.projection;
            let mm_per_px = 1.0 / px_per_mm(p, &t0.tip_mm);
            let planned_draw = NeedleDraw {
                entry_px: p.project(&t0.entry_mm)?,
                tip_px: p.project(&t0.tip_mm)?,
                width_px: c.needle_diameter_mm / mm_per_px,
                label: "plan".into(),
                colour: Colour::NEEDLES[0],
            };
            let outline = ellipsoid_outline_px(p, &lesion, 96).ok();
            let mut pic = view_overlay(
                v,
                Some(built.model.bone.mesh()),
                outline.as_deref(),
                &[planned_draw],
                backgrounds[k].as_ref(),
                mm_per_px,
            );
            // The seen needle: from its reconstructed entry (or the far shaft
            // point) to the reconstructed tip, and the clicked points.
            let from = chk
                .state
                .entry_mm
                .map(|e| e - chk.direction.into_inner() * 20.0)
                .unwrap_or(chk.tip_mm - chk.direction.into_inner() * 70.0);
            let f = pic.font_px();
            pic = pic
                .needle(
                    p.project(&from)?,
                    p.project(&chk.tip_mm)?,
                    c.needle_diameter_mm / mm_per_px,
                    SEEN,
                    Some("seen"),
                )
                .marker(o.image.tip_px, Marker::Cross, 0.9 * f, SEEN, None);
            for s in &o.image.shaft_px {
                pic = pic.marker(*s, Marker::Cross, 0.9 * f, SEEN, None);
            }
            if let Some(e) = chk.state.entry_mm {
                pic = pic.marker(p.project(&e)?, Marker::Circle, 1.2 * f, SEEN, None);
            }
            let verdict = if chk.state.breach {
                "BREACH".to_string()
            } else {
                format!(
                    "clearance {:.1} mm, may advance {:.1} mm",
                    chk.state.min_clearance_mm, chk.state.advance_safe_mm
                )
            };
            let line2 = chk
                .views
                .iter()
                .find(|a| a.view_name == v.name)
                .map(|a| {
                    format!(
                        "{:.1} mm {}; redirect {:.1} deg {}",
                        a.miss_mm,
                        a.aims_direction,
                        a.redirect_rad.to_degrees(),
                        a.redirect_direction
                    )
                })
                .unwrap_or_default();
            let h = f64::from(v.image_size_px[1]);
            pic = pic
                .legend_entry("needle seen", SEEN, avnplan::render::LegendSwatch::Band)
                .text(
                    Point2::new(f, h - 6.0 * f),
                    &format!("step {step}: {verdict}"),
                    0.8 * f,
                    Colour::WHITE,
                )
                .text(Point2::new(f, h - 4.6 * f), &line2, 0.8 * f, Colour::WHITE);
            let stem = format!("step{step:02}_{}", safe_file_stem(&v.name));
            std::fs::write(out.join(format!("{stem}.svg")), pic.to_svg())?;
            std::fs::write(out.join(format!("{stem}.png")), pic.to_png()?)?;
        }
        // The simulated surgeon.
        if chk.state.breach || (!redirected && chk.aim_miss_mm > 2.0) {
            if redirected {
                writeln!(report, "stop: breach after redirection")?;
                break;
            }
            // Withdraw to 25 mm in bone and follow the advice: aim from the
            // seen entry at the planned tip (residual error 0.7 degrees).
            let e_seen = chk.state.entry_mm.unwrap_or(start);
            let aim = (t0.tip_mm - e_seen).normalize();
            let wobble = Rotation3::from_axis_angle(
                &Unit::new_normalize(aim.cross(&Vector3::y())),
                0.7f64.to_radians(),
            );
            // The needle pivots about its true entry in the cortex.
            let e_true = st_true.entry_mm.unwrap_or(start);
            dir = Unit::new_normalize(wobble * aim);
            start = e_true - dir.into_inner() * 15.0;
            depth = 15.0 + 25.0;
            writeln!(
                report,
                "-> redirect: withdraw to 25 mm, re-aim at the planned tip\n"
            )?;
            redirected = true;
            continue;
        }
        if chk.state.advance_safe_mm <= 0.5 {
            writeln!(report, "-> stop: no safe advance left")?;
            break;
        }
        let to_target = chk.depth_to_target_mm;
        let stepmm = 15.0f64
            .min(chk.state.advance_safe_mm - 0.5)
            .min(if to_target > 0.5 { to_target } else { 15.0 });
        depth += stepmm.max(0.5);
        if to_target <= 0.5 {
            writeln!(report, "-> at the planned depth: stop")?;
            break;
        }
    }
    std::fs::write(out.join("report.txt"), &report)?;
    print!("{report}");
    println!("wrote {}", out.display());
    Ok(())
}

/// Pixels per mm of a view at a world point.
fn px_per_mm(p: &avnplan::imaging::Projection, at: &Point3<f64>) -> f64 {
    let j = p.jacobian(at);
    0.5 * (j.row(0).norm() + j.row(1).norm())
}
