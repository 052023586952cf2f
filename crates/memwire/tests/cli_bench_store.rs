//! `memwire bench store` end to end: a quick run of every case against a real `memwire serve`
//! process, and its JSON; with a redis-server on PATH and without one.
//!
//! No timing is asserted (tests assert behaviour, never timing): only that every case ran and
//! reported the fields tools read.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};

use serde_json::Value;

/// The store's cases and the futex floor, in the order they run.
const STORE: &[(&str, &str)] = &[
    ("store", "local-get-8"),
    ("store", "local-get-4096"),
    ("store", "local-set"),
    ("store", "local-set-cold"),
    ("store", "watch-wake"),
    ("store", "watch-wake-cold"),
    ("store", "remote-get"),
    ("store", "remote-set"),
    ("store", "remote-set-16"),
    ("baseline", "floor-futex"),
];

/// The redis cases, after them when redis-server is on PATH.
const REDIS: &[(&str, &str)] = &[
    ("baseline", "redis-get"),
    ("baseline", "redis-set"),
    ("baseline", "redis-pubsub"),
];

fn redis_on(path: &std::ffi::OsStr) -> bool {
    std::env::split_paths(path).any(|d| d.join("redis-server").is_file())
}

/// Runs a quick `bench store` with PATH = `path`; checks its rows; returns its stdout.
fn quick_run(path: &std::ffi::OsStr) -> String {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("store.json");
    let out = Command::new(env!("CARGO_BIN_EXE_memwire"))
        .args(["bench", "store", "--quick", "--iters", "100"])
        .arg("--json")
        .arg(&json)
        .env("PATH", path)
        // The floor's peer and the server's socket live here.
        .env("MEMWIRE_RUNTIME_DIR", dir.path().join("run"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "memwire bench store failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains("remote-set-16") && stdout.contains("targets (issue 6"),
        "no table and targets on stdout: {stdout}"
    );

    let rows: Vec<Value> = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["suite"].as_str().unwrap(), r["case"].as_str().unwrap()))
        .collect();
    let mut want = STORE.to_vec();
    if redis_on(path) {
        want.extend_from_slice(REDIS);
    }
    assert_eq!(got, want);
    for r in &rows {
        let case = r["case"].as_str().unwrap();
        let (p50, p99, p999) = (
            r["rtt_p50_ns"].as_u64().unwrap(),
            r["rtt_p99_ns"].as_u64().unwrap(),
            r["rtt_p999_ns"].as_u64().unwrap(),
        );
        assert!(0 < p50 && p50 <= p99 && p99 <= p999, "percentiles: {r}");
        let samples = r["samples"].as_u64().unwrap();
        assert!((1..=100).contains(&samples), "{r}");
        let (mean, per_s) = (
            r["one_way_mean_ns"].as_f64().unwrap(),
            r["msgs_per_s"].as_f64().unwrap(),
        );
        assert!(mean.is_finite() && mean > 0.0, "{r}");
        assert!(per_s.is_finite() && per_s > 0.0, "{r}");
        let size = match case {
            "local-get-4096" => 4096,
            "floor-futex" => 64,
            _ => 8,
        };
        assert_eq!(r["size"], size, "{r}");
        let from = if case == "remote-set-16" {
            "in_flight"
        } else {
            "round_trip"
        };
        assert_eq!(r["throughput_from"], from, "{r}");
        assert!(r["gb_per_s"].is_null(), "{r}");
        if case == "floor-futex" {
            assert_eq!(r["payload"], "untouched", "{r}");
            assert!(r["wake_syscalls_per_msg"].as_f64().is_some(), "{r}");
        } else {
            assert_eq!(r["payload"], "touched", "{r}");
            assert!(r["wake_syscalls_per_msg"].is_null(), "{r}");
        }
        assert!(r["machine"]["cpu"].is_string(), "{r}");
    }
    stdout
}

#[test]
fn quick_run_writes_one_row_per_case() {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let stdout = quick_run(&path);
    if redis_on(&path) {
        assert!(stdout.contains("redis-pubsub"), "{stdout}");
        assert!(!stdout.contains("not found on PATH"), "{stdout}");
    } else {
        assert!(
            stdout.contains("redis-server: not found on PATH"),
            "{stdout}"
        );
    }
}

#[test]
fn without_redis_the_redis_rows_are_skipped_and_said_so() {
    let empty = tempfile::tempdir().unwrap();
    let stdout = quick_run(empty.path().as_os_str());
    assert!(
        stdout.contains("redis-server: not found on PATH"),
        "{stdout}"
    );
    assert!(
        stdout.contains("against Redis cannot be checked"),
        "{stdout}"
    );
}

#[test]
fn the_store_bench_is_listed_and_its_helper_hidden() {
    let bin = env!("CARGO_BIN_EXE_memwire");
    let help = Command::new(bin)
        .args(["bench", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("store"), "{help}");
    let help = Command::new(bin).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(!help.contains("__bench-pinned"), "{help}");
    let out = Command::new(bin)
        .args(["bench", "store", "--iters", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1"));
}
