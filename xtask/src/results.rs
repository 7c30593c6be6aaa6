//! Reading criterion's JSON outputs and printing the tables.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::regress::{Measurement, Report, Row, Verdict};

/// Reads every `<dir>/**/new/{benchmark,estimates}.json` under `root`
/// (criterion's output directory), sorted by id.
///
/// # Errors
/// A file that cannot be read or parsed, with its path.
pub fn read_criterion_dir(root: &Path) -> Result<Vec<Measurement>, String> {
    let mut dirs = Vec::new();
    collect_new_dirs(root, &mut dirs)?;
    let mut out = Vec::new();
    for d in dirs {
        out.push(read_one(&d)?);
    }
    out.sort_by_key(Measurement::id);
    Ok(out)
}

fn collect_new_dirs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries {
        let p = e.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if !p.is_dir() {
            continue;
        }
        if p.file_name().is_some_and(|n| n == "new") && p.join("benchmark.json").is_file() {
            out.push(p);
        } else {
            collect_new_dirs(&p, out)?;
        }
    }
    Ok(())
}

fn read_json(p: &Path) -> Result<Value, String> {
    let s = fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&s).map_err(|e| format!("{}: {e}", p.display()))
}

/// One `new/` directory: ids and throughput from `benchmark.json`, the
/// median from `estimates.json`.
fn read_one(dir: &Path) -> Result<Measurement, String> {
    let b = read_json(&dir.join("benchmark.json"))?;
    let e = read_json(&dir.join("estimates.json"))?;
    let bad = |what: &str| format!("{}: no {what}", dir.display());
    let group = b["group_id"].as_str().ok_or_else(|| bad("group_id"))?;
    let function = [&b["function_id"], &b["value_str"]]
        .iter()
        .filter_map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join("/");
    let median_ns = e["median"]["point_estimate"]
        .as_f64()
        .ok_or_else(|| bad("median.point_estimate"))?;
    let t = &b["throughput"];
    let elements = t["Elements"]
        .as_u64()
        .or_else(|| t["ElementsAndBytes"]["elements"].as_u64());
    let bytes = t["Bytes"]
        .as_u64()
        .or_else(|| t["BytesDecimal"].as_u64())
        .or_else(|| t["ElementsAndBytes"]["bytes"].as_u64());
    Ok(Measurement {
        bytes,
        ..Measurement::new(group, &function, median_ns, elements)
    })
}

/// `1.23 ms`-style time from nanoseconds (three significant digits).
#[must_use]
pub fn fmt_time(ns: f64) -> String {
    let (v, unit) = if ns >= 1e9 {
        (ns / 1e9, "s")
    } else if ns >= 1e6 {
        (ns / 1e6, "ms")
    } else if ns >= 1e3 {
        (ns / 1e3, "us")
    } else {
        (ns, "ns")
    };
    format!("{} {unit}", sig3(v))
}

/// `1.23 M/s`-style rate from a count per iteration and nanoseconds.
#[must_use]
pub fn fmt_rate(count: u64, ns: f64, unit: &str) -> String {
    let r = count as f64 / (ns * 1e-9);
    let (v, p) = if r >= 1e9 {
        (r / 1e9, "G")
    } else if r >= 1e6 {
        (r / 1e6, "M")
    } else if r >= 1e3 {
        (r / 1e3, "k")
    } else {
        (r, "")
    };
    format!("{} {p}{unit}/s", sig3(v))
}

fn sig3(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn throughput(m: &Measurement) -> String {
    match (m.elements, m.bytes) {
        (Some(n), _) => fmt_rate(n, m.median_ns, "elem"),
        (None, Some(n)) => fmt_rate(n, m.median_ns, "B"),
        _ => "-".to_owned(),
    }
}

/// Left-aligned text table with a header and a rule.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (k, c) in r.iter().enumerate() {
            w[k] = w[k].max(c.len());
        }
    }
    let line = |cells: Vec<String>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(k, c)| format!("{c:<width$}", width = w[k]))
            .collect();
        s.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    out += &line(w.iter().map(|n| "-".repeat(*n)).collect());
    for r in rows {
        out += &line(r.clone());
    }
    out
}

/// The table of every bench of the run: group, id, median, throughput.
#[must_use]
pub fn times_table(results: &[Measurement]) -> String {
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|m| {
            vec![
                m.group.clone(),
                if m.function.is_empty() {
                    "-".to_owned()
                } else {
                    m.function.clone()
                },
                fmt_time(m.median_ns),
                throughput(m),
            ]
        })
        .collect();
    table(&["group", "id", "median", "throughput"], &rows)
}

/// The table of the ratios: hot bench, reference, ratio, baseline, change,
/// verdict.
#[must_use]
pub fn ratio_table(report: &Report) -> String {
    let rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .filter(|r| r.ratio.is_some() || r.baseline.is_some())
        .map(|r: &Row| {
            vec![
                r.bench.id(),
                r.reference.clone().unwrap_or_else(|| "-".to_owned()),
                r.ratio.map_or("-".to_owned(), |q| format!("{q:.4e}")),
                r.baseline.map_or("-".to_owned(), |q| format!("{q:.4e}")),
                r.change
                    // `+0 %` rather than `-0 %` for a change under 0.5 %.
                    .map_or("-".to_owned(), |c| {
                        format!("{:+.0} %", (100.0 * c).round() + 0.0)
                    }),
                r.verdict.label().to_owned(),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "bench",
            "reference",
            "ratio",
            "baseline",
            "change",
            "verdict",
        ],
        &rows,
    );
    let timed: Vec<String> = report
        .rows
        .iter()
        .filter(|r| r.ratio.is_none() && r.baseline.is_none() && r.verdict == Verdict::New)
        .map(|r| r.bench.id())
        .collect();
    if !timed.is_empty() {
        let _ = writeln!(
            out,
            "(benches without reference or baseline: {})",
            timed.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_and_rates() {
        assert_eq!(fmt_time(950.0), "950 ns");
        assert_eq!(fmt_time(1_234.0), "1.23 us");
        assert_eq!(fmt_time(45_600_000.0), "45.6 ms");
        assert_eq!(fmt_time(2.5e9), "2.50 s");
        // 1000 elements in 4 ms: 250 k/s.
        assert_eq!(fmt_rate(1000, 4.0e6, "elem"), "250 kelem/s");
    }

    #[test]
    fn ratio_table_shows_change_and_verdict() {
        use crate::regress::{compare, Baseline};
        let run = |hot_ns: f64| {
            vec![
                Measurement::new("decision", "lhdl/1000", hot_ns, Some(1000)),
                Measurement::new("ref/decision", "lhdl", 2.0e7, Some(100)),
            ]
        };
        let b = Baseline::from_results(&run(4.0e6), "m", "t", "c", 0.25);
        let t = ratio_table(&compare(&b, &run(4.0e6 * 1.4)));
        assert!(
            t.contains(
                "decision/lhdl/1000  ref/decision/lhdl  2.8000e-2  2.0000e-2  +40 %   REGRESSION"
            ),
            "{t}"
        );
        // A change under half a percent either way prints as +0 %.
        let t = ratio_table(&compare(&b, &run(4.0e6 * 0.999)));
        assert!(t.contains("+0 %    ok"), "{t}");
    }

    #[test]
    fn reads_criterion_json() {
        let dir = std::env::temp_dir().join(format!("xtask-results-{}", std::process::id()));
        let new = dir.join("decision").join("lhdl_1000").join("new");
        fs::create_dir_all(&new).unwrap();
        fs::write(
            new.join("benchmark.json"),
            r#"{"group_id":"decision","function_id":"lhdl","value_str":"1000",
               "throughput":{"Elements":1000},"full_id":"decision/lhdl/1000",
               "directory_name":"decision/lhdl_1000","title":"decision/lhdl/1000"}"#,
        )
        .unwrap();
        let est = r#"{"point_estimate":4000000.0,"standard_error":1.0,
               "confidence_interval":{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":2.0}}"#;
        fs::write(
            new.join("estimates.json"),
            format!(
                r#"{{"mean":{est},"median":{est},"median_abs_dev":{est},"slope":null,"std_dev":{est}}}"#
            ),
        )
        .unwrap();
        // A stale `base` directory is not read.
        fs::create_dir_all(dir.join("decision").join("lhdl_1000").join("base")).unwrap();
        let r = read_criterion_dir(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].id(), "decision/lhdl/1000");
        assert_eq!(r[0].elements, Some(1000));
        assert!((r[0].median_ns - 4.0e6).abs() < 1e-6);
        let t = times_table(&r);
        assert!(
            t.contains("decision  lhdl/1000  4.00 ms  250 kelem/s"),
            "{t}"
        );
    }
}
