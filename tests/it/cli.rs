//! The `avnplan` binary end to end: exit codes, one-line errors, outputs.
#![cfg(feature = "cli")]

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_avnplan"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("avnplan-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn phantom_then_plan_then_reconstruct() {
    let d = tmp("e2e");
    let st = bin()
        .args([
            "phantom",
            "--seed",
            "2",
            "--noise-px",
            "1",
            "--with-mesh",
            "-o",
        ])
        .arg(&d)
        .status()
        .unwrap();
    assert!(st.success());
    for f in ["case.json", "truth.json", "femur.stl"] {
        assert!(d.join(f).is_file(), "{f} missing");
    }
    let out = bin()
        .arg("plan")
        .arg(d.join("case.json"))
        .arg("-o")
        .arg(d.join("plan.json"))
        .arg("--svg")
        .arg(d.join("svg"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["schema"], "avnplan.plan/1");
    assert_eq!(plan["status"], "ok");
    assert!(d.join("svg/AP.svg").is_file());
    let out = bin()
        .arg("reconstruct")
        .arg(d.join("case.json"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let model: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(model["schema"], "avnplan.model/1");
    assert!(model["head"]["radius_mm"].as_f64().unwrap() > 15.0);
}

#[test]
fn bad_input_is_status_2_with_one_line() {
    let d = tmp("bad");
    let case = d.join("case.json");
    std::fs::write(
        &case,
        r#"{"schema": "avnplan.case/1", "side": "left", "views": [], "colour": 1}"#,
    )
    .unwrap();
    let out = bin()
        .arg("plan")
        .arg(&case)
        .arg("-o")
        .arg(d.join("p.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with(&case.display().to_string()), "{err}");
    assert!(err.len() <= 301);
    assert!(!d.join("p.json").exists(), "no partial output on status 2");
    let out = bin()
        .arg("plan")
        .arg(d.join("missing.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bin().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
