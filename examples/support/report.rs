//! Report lines shared by the planning examples.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use avnplan::planning::Plan;
use avnplan::Case;

/// Appends the end of a plan report (coverage, rejections per rule,
/// warnings, run time), writes it to `out/report.txt` and prints it.
pub fn finish_report(
    report: &mut String,
    plan: &Plan,
    case: &Case,
    t0: Instant,
    out: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    writeln!(
        report,
        "coverage: {:.0}% of the lesion within {} mm",
        plan.coverage * 100.0,
        case.constraints.coverage_radius_mm
    )?;
    if !plan.reasons.is_empty() {
        let reasons: Vec<String> = plan
            .reasons
            .iter()
            .map(|(k, n)| format!("{} {n}", k.as_str()))
            .collect();
        writeln!(report, "rejections: {}", reasons.join(", "))?;
    }
    for w in &plan.warnings {
        writeln!(report, "warning: {w}")?;
    }
    writeln!(report, "time: {:.1} s", t0.elapsed().as_secs_f64())?;
    std::fs::write(out.join("report.txt"), &*report)?;
    print!("{report}");
    println!("pictures and files in {}", out.display());
    Ok(())
}
