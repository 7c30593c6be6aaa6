//! avnplan's developer tasks: `cargo xtask bench` runs every criterion
//! bench in a short mode, prints the table of times and the table of
//! `hot / reference` ratios, and checks the ratios against the committed
//! baseline `.ci/bench-baseline.json` (issue 12; README, "Benchmarks in CI").
//!
//! Exit status: 1 when a bench fails (the benches assert their own answers
//! against exact references before timing, so a fast-but-wrong change
//! fails here), or on bad usage; regressions, missing and new benches are
//! warnings (exit 0) unless `--strict`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod regress;
mod results;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use regress::{compare, Baseline, DEFAULT_TOLERANCE};
use serde_json::Value;

/// Criterion's arguments for the CI run: quick mode (no warm-up; doubles
/// the iteration count until two successive samples agree within 5 %, or
/// the measurement time has passed), 1 s cap per bench, a light bootstrap.
const SHORT_MODE: [&str; 5] = ["--quick", "--measurement-time", "1", "--nresamples", "1000"];

const USAGE: &str = "\
usage: cargo xtask bench [options] [-- <criterion arguments>]

Runs every criterion bench of avnplan in a short mode, prints the times and
the hot/reference ratios, and compares the ratios with the baseline.

options:
  --bench NAME        run only this [[bench]] target (repeatable)
  --report-only       do not run; report on the results of the last run
  --baseline PATH     baseline file [default: .ci/bench-baseline.json]
  --write-baseline    write the baseline from this run's ratios
  --machine TEXT      machine description for --write-baseline
                      [default: CPU model and core count from /proc/cpuinfo]
  --strict            exit 1 on a regression, a missing or a new bench
                      (default: print a warning and exit 0)
  -- ARGS             criterion arguments instead of the short mode
                      (default: --quick --measurement-time 1 --nresamples 1000)
";

struct Options {
    benches: Vec<String>,
    report_only: bool,
    baseline: Option<PathBuf>,
    write_baseline: bool,
    machine: Option<String>,
    strict: bool,
    criterion_args: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        benches: Vec::new(),
        report_only: false,
        baseline: None,
        write_baseline: false,
        machine: None,
        strict: false,
        criterion_args: SHORT_MODE.iter().map(|s| (*s).to_owned()).collect(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--bench" => o.benches.push(value("--bench")?),
            "--report-only" => o.report_only = true,
            "--baseline" => o.baseline = Some(PathBuf::from(value("--baseline")?)),
            "--write-baseline" => o.write_baseline = true,
            "--machine" => o.machine = Some(value("--machine")?),
            "--strict" => o.strict = true,
            "--" => {
                o.criterion_args = it.by_ref().cloned().collect();
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench") => match parse(&args[1..]).and_then(|o| bench(&o)) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("xtask bench: {e}");
                ExitCode::FAILURE
            }
        },
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprint!("{USAGE}");
            ExitCode::FAILURE
        }
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// The workspace root (the parent of this crate's manifest directory).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}

/// Target directory and the names of avnplan's bench targets, from
/// `cargo metadata`.
fn metadata() -> Result<(PathBuf, Vec<String>), String> {
    let out = Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root())
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let target = v["target_directory"]
        .as_str()
        .ok_or("cargo metadata: no target_directory")?;
    let mut benches = Vec::new();
    for p in v["packages"].as_array().into_iter().flatten() {
        if p["name"] != "avnplan" {
            continue;
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            let is_bench = t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|x| x == "bench"));
            if is_bench {
                if let Some(n) = t["name"].as_str() {
                    benches.push(n.to_owned());
                }
            }
        }
    }
    benches.sort();
    Ok((PathBuf::from(target), benches))
}

/// CPU model, logical cores and kernel, for the report and the baseline.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    format!("{model}, {cores} logical cores, {}", std::env::consts::OS)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn now_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or("unknown".to_owned(), |s| s.trim().to_owned())
}

fn bench(o: &Options) -> Result<ExitCode, String> {
    let (target, all) = metadata()?;
    let benches = if o.benches.is_empty() {
        all
    } else {
        for b in &o.benches {
            if !all.contains(b) {
                return Err(format!("no bench target `{b}` (have: {})", all.join(", ")));
            }
        }
        o.benches.clone()
    };
    // A fresh criterion directory per run: results of an earlier run (or
    // of a bench that no longer exists) can never stand in for this one.
    let home = target.join("xtask-bench").join("criterion");
    let mut bench_ok = true;
    let load_before = load_average();
    let started = Instant::now();
    if !o.report_only {
        if home.exists() {
            std::fs::remove_dir_all(&home).map_err(|e| format!("{}: {e}", home.display()))?;
        }
        std::fs::create_dir_all(&home).map_err(|e| format!("{}: {e}", home.display()))?;
        let mut cmd = Command::new(cargo());
        cmd.args(["bench", "--all-features", "--no-fail-fast"]);
        for b in &benches {
            cmd.args(["--bench", b]);
        }
        cmd.arg("--").args(&o.criterion_args);
        cmd.env("CRITERION_HOME", &home).current_dir(root());
        println!(
            "xtask bench: cargo bench --all-features --no-fail-fast --bench {} -- {}",
            benches.join(" --bench "),
            o.criterion_args.join(" ")
        );
        let status = cmd.status().map_err(|e| format!("cargo bench: {e}"))?;
        bench_ok = status.success();
    }
    let elapsed = started.elapsed().as_secs_f64();
    if !home.is_dir() {
        return Err(format!(
            "no results at {} (run without --report-only first)",
            home.display()
        ));
    }
    let results = results::read_criterion_dir(&home)?;
    println!();
    println!("=== bench results ({} benches)", results.len());
    println!(
        "machine: {}; load average before the run: {load_before}, after: {}; {}",
        machine(),
        load_average(),
        if o.report_only {
            "report only".to_owned()
        } else {
            format!("run took {elapsed:.0} s")
        }
    );
    println!("times are medians of this run on a shared machine: compare ratios, not times");
    println!();
    print!("{}", results::times_table(&results));

    let root = root();
    let path = o
        .baseline
        .clone()
        .unwrap_or_else(|| root.join(".ci").join("bench-baseline.json"));
    if o.write_baseline {
        let m = o.machine.clone().unwrap_or_else(|| {
            format!(
                "{}; load average {load_before} at the start (shared machine)",
                machine()
            )
        });
        let command = format!("cargo xtask bench -- {}", o.criterion_args.join(" "));
        let tol = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| serde_json::from_str::<Baseline>(&s).ok())
            .map_or(DEFAULT_TOLERANCE, |b| b.tolerance);
        let b = Baseline::from_results(&results, &m, &now_utc(), &command, tol);
        let text = serde_json::to_string_pretty(&b).map_err(|e| e.to_string())? + "\n";
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        println!();
        println!(
            "baseline written: {} ({} ratios, {} timed-only benches)",
            path.display(),
            b.ratios.len(),
            b.timed_only.len()
        );
    }
    let flagged = match std::fs::read_to_string(&path) {
        Ok(s) => {
            let b: Baseline =
                serde_json::from_str(&s).map_err(|e| format!("{}: {e}", path.display()))?;
            let report = compare(&b, &results);
            println!();
            println!(
                "=== ratios hot/reference vs {} (measured {} on {}; tolerance {:.0} %)",
                path.strip_prefix(&root).unwrap_or(&path).display(),
                b.measured_utc,
                b.machine,
                100.0 * b.tolerance
            );
            println!();
            print!("{}", results::ratio_table(&report));
            println!();
            print!("{}", report.verdict_text());
            !report.is_clean()
        }
        Err(e) => {
            println!();
            println!(
                "bench verdict: ATTENTION, no baseline at {} ({e}); \
                 create it with `cargo xtask bench --write-baseline`",
                path.display()
            );
            true
        }
    };
    if !bench_ok {
        println!(
            "bench verdict: FAIL, a bench failed (its error is above: a failed answer \
             check, the benches compare with exact references before timing, or a bench that \
             did not build or run)"
        );
        return Ok(ExitCode::FAILURE);
    }
    if flagged {
        if o.strict {
            println!("--strict: failing on the findings above");
            return Ok(ExitCode::FAILURE);
        }
        println!(
            "(warning only: times on this shared machine are noisy; see README, \
             \"Benchmarks in CI\")"
        );
    }
    Ok(ExitCode::SUCCESS)
}
