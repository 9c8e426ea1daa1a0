//! The command line as scripts use it: `simulate` writes JSON Lines with ground truth,
//! and `bench pipeline --json` prints one JSON object, also with a training file that
//! contains a bad line.

use std::collections::BTreeSet;
use std::process::Command;

use fedics_core::{FlowRecord, decode};

const BIN: &str = env!("CARGO_BIN_EXE_fedics");

#[test]
fn simulate_writes_flows_with_ground_truth_deterministically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |name: &str| {
        let out = dir.path().join(name);
        let status = Command::new(BIN)
            .args([
                "simulate", "--flows", "30000", "--seed", "5", "--sites", "3", "--out",
            ])
            .arg(&out)
            .status()
            .expect("simulate runs");
        assert!(status.success());
        std::fs::read_to_string(out).expect("output written")
    };
    let a = run("a.jsonl");
    assert_eq!(a, run("b.jsonl"), "same seed, same flows");
    let flows: Vec<FlowRecord> = a
        .lines()
        .map(|l| decode::<FlowRecord>(l.as_bytes()).expect("every line is a valid flow"))
        .collect();
    assert_eq!(flows.len(), 30_000);
    let labels: BTreeSet<&str> = flows
        .iter()
        .map(|f| {
            f.ground_truth
                .as_ref()
                .expect("ground truth")
                .label
                .as_str()
        })
        .collect();
    assert!(labels.contains("benign"));
    assert!(labels.contains("T0846"), "{labels:?}");
    let facilities: BTreeSet<&str> = flows.iter().map(|f| f.facility_id.as_str()).collect();
    assert_eq!(facilities.len(), 3);
}

#[test]
fn bench_prints_one_json_object_and_trains_from_a_file_with_a_bad_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let train = dir.path().join("benign.jsonl");
    let ok = Command::new(BIN)
        .args(["simulate", "--flows", "3000", "--no-attacks", "--out"])
        .arg(&train)
        .status()
        .expect("simulate runs");
    assert!(ok.success());
    let mut text = std::fs::read_to_string(&train).expect("read");
    text.push_str("{\"schema_version\": 1, \"this is\": \"not a flow\"}\n");
    std::fs::write(&train, text).expect("write");

    let out = Command::new(BIN)
        .args([
            "bench",
            "pipeline",
            "--flows",
            "20000",
            "--json",
            "--iforest-train-file",
        ])
        .arg(&train)
        .env("RUST_LOG", "warn")
        .output()
        .expect("bench runs");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("line=3001"),
        "bad line reported with its number: {log}"
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "one JSON object: {stdout}"
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");
    assert_eq!(v["flows"], 20_000);
    assert!(v["flows_per_s"].as_f64().is_some_and(|x| x > 0.0));
    assert!(v["latency_ms"]["p50"].as_f64().is_some());
    assert!(v["latency_ms"]["p99"].as_f64().is_some());
    assert!(v["alerts"].as_u64().is_some_and(|a| a > 0));
    assert_eq!(v["drained"], true);
}
