//! The ratio check of the CI bench run (issue 12).
//!
//! Absolute times on a shared, noisy machine are not comparable from run to
//! run, so every hot-path bench is paired with a *reference* bench measured
//! in the same run, and the check compares the ratio `hot / reference` with a
//! committed baseline of ratios.
//!
//! Pairing is by name: the reference of the bench `G/F/V` is the bench whose
//! id is [`REF_PREFIX`] followed by the longest prefix of `G/F/V` (whole
//! `/`-separated parts) that exists, e.g. `decision/lhdl_ct_right/1000`
//! pairs with `ref/decision/lhdl_ct_right`. When both benches declare an
//! element throughput, the ratio is per element (time per element of the
//! hot bench over time per element of the reference), so one reference can
//! serve several candidate counts; otherwise it is per iteration.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Prefix of the reference benches' ids.
pub const REF_PREFIX: &str = "ref/";

/// Regression tolerance of the committed baseline: a ratio more than 25 %
/// above its baseline is flagged.
pub const DEFAULT_TOLERANCE: f64 = 0.25;

/// One bench's result, as criterion wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Criterion's group id (for `bench_function`, the whole name).
    pub group: String,
    /// Function id and parameter, `/`-joined ("" for `bench_function`).
    pub function: String,
    /// Median time of one iteration, ns.
    pub median_ns: f64,
    /// Elements per iteration (`Throughput::Elements`), if declared.
    pub elements: Option<u64>,
    /// Bytes per iteration (`Throughput::Bytes*`), if declared.
    pub bytes: Option<u64>,
}

impl Measurement {
    /// A measurement without throughput (tests and simple callers).
    #[must_use]
    pub fn new(group: &str, function: &str, median_ns: f64, elements: Option<u64>) -> Self {
        Self {
            group: group.to_owned(),
            function: function.to_owned(),
            median_ns,
            elements,
            bytes: None,
        }
    }

    /// Criterion's full id: `group/function` (or `group`).
    #[must_use]
    pub fn id(&self) -> String {
        if self.function.is_empty() {
            self.group.clone()
        } else {
            format!("{}/{}", self.group, self.function)
        }
    }

    /// Whether this is a reference bench (id starts with [`REF_PREFIX`]).
    #[must_use]
    pub fn is_reference(&self) -> bool {
        self.group.starts_with(REF_PREFIX)
    }
}

/// The id of the reference of the hot bench `hot` among `ids`: `ref/`
/// followed by the longest `/`-prefix of `hot` that is in `ids`.
#[must_use]
pub fn reference_of(hot: &str, ids: &BTreeSet<String>) -> Option<String> {
    if hot.starts_with(REF_PREFIX) {
        return None;
    }
    let parts: Vec<&str> = hot.split('/').collect();
    (1..=parts.len())
        .rev()
        .map(|k| format!("{REF_PREFIX}{}", parts[..k].join("/")))
        .find(|cand| ids.contains(cand))
}

/// `hot / reference`, per element when both declare elements, else per
/// iteration.
#[must_use]
pub fn ratio(hot: &Measurement, reference: &Measurement) -> f64 {
    match (hot.elements, reference.elements) {
        (Some(h), Some(r)) if h > 0 && r > 0 => {
            (hot.median_ns / h as f64) / (reference.median_ns / r as f64)
        }
        _ => hot.median_ns / reference.median_ns,
    }
}

/// One baseline ratio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineRatio {
    /// The reference bench's id.
    pub reference: String,
    /// `hot / reference` when the baseline was measured.
    pub ratio: f64,
}

/// The committed baseline (`.ci/bench-baseline.json`): ratios, never
/// times, with the machine and command they came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// What the file is, for a reader who opens it.
    pub about: String,
    /// The machine the ratios were measured on.
    pub machine: String,
    /// When (UTC).
    pub measured_utc: String,
    /// The command that measured them.
    pub command: String,
    /// Relative tolerance: a ratio above `baseline * (1 + tolerance)` is a
    /// regression.
    pub tolerance: f64,
    /// Hot bench id -> its reference and baseline ratio.
    pub ratios: BTreeMap<String, BaselineRatio>,
    /// Benches reported by time only (no reference): listed so that a
    /// missing or new one is noticed.
    pub timed_only: Vec<String>,
}

impl Baseline {
    /// A baseline from the results of one run.
    #[must_use]
    pub fn from_results(
        results: &[Measurement],
        machine: &str,
        measured_utc: &str,
        command: &str,
        tolerance: f64,
    ) -> Self {
        let by_id: BTreeMap<String, &Measurement> = results.iter().map(|m| (m.id(), m)).collect();
        let ids: BTreeSet<String> = by_id.keys().cloned().collect();
        let mut ratios = BTreeMap::new();
        let mut timed_only = Vec::new();
        for (id, m) in &by_id {
            if m.is_reference() {
                continue;
            }
            match reference_of(id, &ids) {
                Some(r) => {
                    let q = ratio(m, by_id[&r]);
                    ratios.insert(
                        id.clone(),
                        BaselineRatio {
                            reference: r,
                            ratio: q,
                        },
                    );
                }
                None => timed_only.push(id.clone()),
            }
        }
        // References that serve no hot bench are kept as timed benches.
        let used: BTreeSet<&str> = ratios.values().map(|r| r.reference.as_str()).collect();
        for (id, m) in &by_id {
            if m.is_reference() && !used.contains(id.as_str()) {
                timed_only.push(id.clone());
            }
        }
        Self {
            about: "Ratios hot/reference (per element when both benches declare elements) \
                    measured by `cargo xtask bench`; times are never compared. \
                    Refresh with `cargo xtask bench --write-baseline` after an intended change."
                .to_owned(),
            machine: machine.to_owned(),
            measured_utc: measured_utc.to_owned(),
            command: command.to_owned(),
            tolerance,
            ratios,
            timed_only,
        }
    }

    /// Every bench id the baseline knows: hot, reference and timed-only.
    #[must_use]
    pub fn known_ids(&self) -> BTreeSet<String> {
        let mut s: BTreeSet<String> = self.timed_only.iter().cloned().collect();
        for (k, v) in &self.ratios {
            s.insert(k.clone());
            s.insert(v.reference.clone());
        }
        s
    }
}

/// The verdict on one bench of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Ratio within the tolerance of its baseline.
    Ok,
    /// Ratio below `baseline / (1 + tolerance)`: faster than the baseline
    /// by more than the tolerance (refresh the baseline if intended).
    Faster,
    /// Ratio above `baseline * (1 + tolerance)`.
    Regression,
    /// A reference bench, or a timed-only bench the baseline knows.
    Timed,
    /// A bench (or a ratio) the baseline does not know.
    New,
    /// Paired with another reference than in the baseline: not compared.
    ReferenceChanged,
    /// Has a baseline ratio but its reference is not in the run: not
    /// compared (the reference is listed as missing).
    NoReference,
}

impl Verdict {
    /// Short label for the table.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Faster => "faster",
            Verdict::Regression => "REGRESSION",
            Verdict::Timed => "-",
            Verdict::New => "NEW (no baseline)",
            Verdict::ReferenceChanged => "REFERENCE CHANGED",
            Verdict::NoReference => "NOT COMPARED (reference missing)",
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The bench.
    pub bench: Measurement,
    /// Its reference's id, when it has one (for `NoReference`, the one the
    /// baseline expected).
    pub reference: Option<String>,
    /// `hot / reference`.
    pub ratio: Option<f64>,
    /// The baseline ratio, when known.
    pub baseline: Option<f64>,
    /// `ratio / baseline - 1`.
    pub change: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
}

/// The result of comparing a run with the baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// One row per bench of the run, in id order.
    pub rows: Vec<Row>,
    /// Benches the baseline knows that the run did not produce.
    pub missing: Vec<String>,
    /// The tolerance used.
    pub tolerance: f64,
}

impl Report {
    /// Rows with a given verdict.
    pub fn with(&self, v: Verdict) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(move |r| r.verdict == v)
    }

    /// Number of ratios compared with a baseline.
    #[must_use]
    pub fn compared(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| {
                matches!(
                    r.verdict,
                    Verdict::Ok | Verdict::Faster | Verdict::Regression
                )
            })
            .count()
    }

    /// No regression, nothing missing, nothing new or re-paired.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self
                .rows
                .iter()
                .all(|r| matches!(r.verdict, Verdict::Ok | Verdict::Faster | Verdict::Timed))
    }

    /// The verdict paragraph: one line per finding, then a summary line
    /// starting with `bench verdict:`.
    #[must_use]
    pub fn verdict_text(&self) -> String {
        let pct = 100.0 * self.tolerance;
        let mut out = String::new();
        for r in self.with(Verdict::Regression) {
            out += &format!(
                "REGRESSION: {} is {:.0} % slower relative to its reference {} \
                 (ratio {:.4e}, baseline {:.4e}, tolerance {pct:.0} %)\n",
                r.bench.id(),
                100.0 * r.change.unwrap_or(f64::NAN),
                r.reference.as_deref().unwrap_or("?"),
                r.ratio.unwrap_or(f64::NAN),
                r.baseline.unwrap_or(f64::NAN),
            );
        }
        for id in &self.missing {
            out += &format!(
                "MISSING: {id} is in the baseline but not in this run \
                 (bench removed, renamed, skipped for absent data, or failed)\n"
            );
        }
        for r in self.with(Verdict::New) {
            out += &format!(
                "NEW: {} has no baseline{} (add it with `cargo xtask bench --write-baseline`)\n",
                r.bench.id(),
                r.ratio
                    .map(|q| format!(
                        " (ratio {q:.4e} to {})",
                        r.reference.as_deref().unwrap_or("?")
                    ))
                    .unwrap_or_default()
            );
        }
        for r in self.with(Verdict::ReferenceChanged) {
            out += &format!(
                "REFERENCE CHANGED: {} now pairs with {}; not compared\n",
                r.bench.id(),
                r.reference.as_deref().unwrap_or("?")
            );
        }
        for r in self.with(Verdict::NoReference) {
            out += &format!(
                "NOT COMPARED: {} (its reference {} is missing from this run)\n",
                r.bench.id(),
                r.reference.as_deref().unwrap_or("?")
            );
        }
        for r in self.with(Verdict::Faster) {
            out += &format!(
                "faster: {} needs {:.0} % less time relative to its reference than in the \
                 baseline (refresh the baseline if intended)\n",
                r.bench.id(),
                -100.0 * r.change.unwrap_or(f64::NAN),
            );
        }
        let n_reg = self.with(Verdict::Regression).count();
        let n_new = self.with(Verdict::New).count()
            + self.with(Verdict::ReferenceChanged).count()
            + self.with(Verdict::NoReference).count();
        out += &if self.is_clean() {
            format!(
                "bench verdict: OK, {} ratios within {pct:.0} % of the baseline (or faster)\n",
                self.compared()
            )
        } else {
            format!(
                "bench verdict: ATTENTION, {n_reg} regression(s) beyond {pct:.0} %, {} missing, \
                 {n_new} new, re-paired or without reference, of {} ratios compared\n",
                self.missing.len(),
                self.compared()
            )
        };
        out
    }
}

/// Compares the results of a run with the baseline.
#[must_use]
pub fn compare(baseline: &Baseline, results: &[Measurement]) -> Report {
    let tol = baseline.tolerance;
    let by_id: BTreeMap<String, &Measurement> = results.iter().map(|m| (m.id(), m)).collect();
    let ids: BTreeSet<String> = by_id.keys().cloned().collect();
    let known = baseline.known_ids();
    let mut rows = Vec::new();
    for (id, m) in &by_id {
        let reference = reference_of(id, &ids);
        let q = reference.as_ref().map(|r| ratio(m, by_id[r]));
        let base = baseline.ratios.get(id);
        let (verdict, baseline_ratio, change) = match (&reference, q, base) {
            (Some(r), Some(q), Some(b)) if *r == b.reference => {
                let change = q / b.ratio - 1.0;
                let v = if q.is_nan() || q > b.ratio * (1.0 + tol) {
                    // A NaN ratio (a broken measurement) is flagged too.
                    Verdict::Regression
                } else if q < b.ratio / (1.0 + tol) {
                    Verdict::Faster
                } else {
                    Verdict::Ok
                };
                (v, Some(b.ratio), Some(change))
            }
            (Some(_), Some(_), Some(b)) => (Verdict::ReferenceChanged, Some(b.ratio), None),
            (Some(_), _, None) => (Verdict::New, None, None),
            (None, _, Some(b)) => (Verdict::NoReference, Some(b.ratio), None),
            (None, _, _) if known.contains(id) => (Verdict::Timed, None, None),
            _ => (Verdict::New, None, None),
        };
        let reference = match verdict {
            // The reference the baseline expected, for the message.
            Verdict::NoReference => base.map(|b| b.reference.clone()),
            _ => reference,
        };
        rows.push(Row {
            bench: (*m).clone(),
            reference,
            ratio: q,
            baseline: baseline_ratio,
            change,
            verdict,
        });
    }
    let missing = known.into_iter().filter(|k| !ids.contains(k)).collect();
    Report {
        rows,
        missing,
        tolerance: tol,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run: decision (two counts) with a per-element reference, a whole
    /// plan with a per-iteration reference, and a timed-only bench.
    fn run(decision_scale: f64, plan_scale: f64) -> Vec<Measurement> {
        vec![
            Measurement::new("decision", "lhdl/1000", 4.0e6 * decision_scale, Some(1000)),
            Measurement::new(
                "decision",
                "lhdl/20000",
                8.0e7 * decision_scale,
                Some(20000),
            ),
            Measurement::new("ref/decision", "lhdl", 2.0e7, Some(100)),
            Measurement::new("plan/whole/lhdl", "threads/1", 3.0e8 * plan_scale, None),
            Measurement::new("ref/plan/whole", "lhdl", 1.0e7, None),
            Measurement::new("phantom", "radiograph", 5.0e7, None),
        ]
    }

    fn baseline() -> Baseline {
        Baseline::from_results(&run(1.0, 1.0), "test machine", "now", "test", 0.25)
    }

    #[test]
    fn pairs_by_longest_prefix_and_ratios_per_element() {
        let b = baseline();
        assert_eq!(b.ratios.len(), 3);
        let d = &b.ratios["decision/lhdl/1000"];
        assert_eq!(d.reference, "ref/decision/lhdl");
        // 4 us per element over 200 us per element.
        assert!((d.ratio - 0.02).abs() < 1e-12, "{}", d.ratio);
        let p = &b.ratios["plan/whole/lhdl/threads/1"];
        assert_eq!(p.reference, "ref/plan/whole/lhdl");
        assert!((p.ratio - 30.0).abs() < 1e-12);
        assert_eq!(b.timed_only, vec!["phantom/radiograph".to_owned()]);
        // A reference never has a reference itself.
        let ids: BTreeSet<String> = run(1.0, 1.0).iter().map(Measurement::id).collect();
        assert_eq!(reference_of("ref/decision/lhdl", &ids), None);
        assert_eq!(reference_of("phantom/radiograph", &ids), None);
    }

    #[test]
    fn forty_percent_slower_is_flagged() {
        let r = compare(&baseline(), &run(1.4, 1.0));
        let flagged: Vec<String> = r.with(Verdict::Regression).map(|x| x.bench.id()).collect();
        assert_eq!(flagged, vec!["decision/lhdl/1000", "decision/lhdl/20000"]);
        let row = r.with(Verdict::Regression).next().unwrap();
        assert!((row.change.unwrap() - 0.4).abs() < 1e-9);
        assert!(!r.is_clean());
        let text = r.verdict_text();
        assert!(
            text.contains("REGRESSION: decision/lhdl/1000 is 40 % slower"),
            "{text}"
        );
        assert!(
            text.contains("bench verdict: ATTENTION, 2 regression(s)"),
            "{text}"
        );
        // The same slowdown of the whole plan (per-iteration ratio).
        let r = compare(&baseline(), &run(1.0, 1.4));
        assert_eq!(r.with(Verdict::Regression).count(), 1);
    }

    #[test]
    fn ten_percent_slower_is_not_flagged() {
        let r = compare(&baseline(), &run(1.1, 1.1));
        assert_eq!(r.with(Verdict::Regression).count(), 0);
        assert_eq!(r.with(Verdict::Ok).count(), 3);
        assert!(r.is_clean());
        assert!(r.verdict_text().contains("bench verdict: OK, 3 ratios"));
    }

    #[test]
    fn noise_in_the_reference_moves_the_ratio() {
        // The reference 40 % faster means the hot path got relatively slower.
        let mut res = run(1.0, 1.0);
        res[2].median_ns *= 1.0 / 1.4;
        let r = compare(&baseline(), &res);
        assert_eq!(r.with(Verdict::Regression).count(), 2);
        // A uniformly slower machine changes nothing.
        let mut res = run(2.0, 2.0);
        for m in &mut res {
            if m.is_reference() || m.group == "phantom" {
                m.median_ns *= 2.0;
            }
        }
        assert!(compare(&baseline(), &res).is_clean());
    }

    #[test]
    fn faster_beyond_tolerance_is_reported_not_flagged() {
        let r = compare(&baseline(), &run(0.5, 1.0));
        assert_eq!(r.with(Verdict::Faster).count(), 2);
        assert_eq!(r.with(Verdict::Regression).count(), 0);
        assert!(r.is_clean());
        assert!(r
            .verdict_text()
            .contains("faster: decision/lhdl/1000 needs 50 % less time"));
    }

    #[test]
    fn missing_bench_is_reported() {
        let mut res = run(1.0, 1.0);
        res.retain(|m| m.id() != "decision/lhdl/20000" && m.group != "phantom");
        let r = compare(&baseline(), &res);
        assert_eq!(
            r.missing,
            vec![
                "decision/lhdl/20000".to_owned(),
                "phantom/radiograph".to_owned()
            ]
        );
        assert!(!r.is_clean());
        let text = r.verdict_text();
        assert!(text.contains("MISSING: decision/lhdl/20000"), "{text}");
        assert!(text.contains("2 missing"), "{text}");
    }

    #[test]
    fn missing_reference_is_reported_and_its_hot_benches_not_compared() {
        let mut res = run(1.4, 1.0);
        res.retain(|m| m.group != "ref/decision");
        let r = compare(&baseline(), &res);
        assert_eq!(r.missing, vec!["ref/decision/lhdl".to_owned()]);
        // Without their reference, the decision benches have no ratio.
        assert_eq!(r.with(Verdict::Regression).count(), 0);
        assert_eq!(r.with(Verdict::NoReference).count(), 2);
        let text = r.verdict_text();
        assert!(
            text.contains("NOT COMPARED: decision/lhdl/1000 (its reference ref/decision/lhdl"),
            "{text}"
        );
        assert!(!r.is_clean());
    }

    #[test]
    fn new_bench_without_baseline_is_reported() {
        let mut res = run(1.0, 1.0);
        res.push(Measurement::new(
            "exact_clearance",
            "lhdl/1000",
            5.0e7,
            Some(1000),
        ));
        res.push(Measurement::new(
            "ref/exact_clearance",
            "lhdl",
            3.0e7,
            Some(10),
        ));
        res.push(Measurement::new("render", "svg", 1.0e8, None));
        let r = compare(&baseline(), &res);
        let new: Vec<String> = r.with(Verdict::New).map(|x| x.bench.id()).collect();
        assert_eq!(
            new,
            vec![
                "exact_clearance/lhdl/1000",
                "ref/exact_clearance/lhdl",
                "render/svg"
            ]
        );
        assert!(!r.is_clean());
        let text = r.verdict_text();
        assert!(
            text.contains("NEW: exact_clearance/lhdl/1000 has no baseline (ratio"),
            "{text}"
        );
        assert!(text.contains("NEW: render/svg has no baseline"), "{text}");
    }

    #[test]
    fn re_paired_bench_is_not_compared() {
        let mut res = run(1.4, 1.0);
        res.push(Measurement::new(
            "ref/decision",
            "lhdl/1000",
            1.0e6,
            Some(10),
        ));
        let r = compare(&baseline(), &res);
        let row = r
            .rows
            .iter()
            .find(|x| x.bench.id() == "decision/lhdl/1000")
            .unwrap();
        assert_eq!(row.verdict, Verdict::ReferenceChanged);
        assert_eq!(row.reference.as_deref(), Some("ref/decision/lhdl/1000"));
    }

    #[test]
    fn nan_ratio_is_a_regression() {
        let mut res = run(1.0, 1.0);
        res[0].median_ns = f64::NAN;
        let r = compare(&baseline(), &res);
        assert_eq!(r.with(Verdict::Regression).count(), 1);
    }

    #[test]
    fn baseline_round_trips_through_json() {
        let b = baseline();
        let s = serde_json::to_string_pretty(&b).unwrap();
        let back: Baseline = serde_json::from_str(&s).unwrap();
        assert_eq!(back, b);
    }
}
