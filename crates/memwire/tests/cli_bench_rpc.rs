//! `memwire bench rpc` end to end: a quick run of every case, and its JSON.
//!
//! No timing is asserted (tests assert behaviour, never timing): only that every case ran
//! against a real worker process and reported the fields tools read, with the documented
//! nulls and zeros where a field does not apply.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};

use serde_json::Value;

/// The cases and their suites, in the order they run.
const EXPECTED: &[(&str, &str)] = &[
    ("rpc", "typed-spin"),
    ("rpc", "by-name-spin"),
    ("rpc", "typed-block"),
    ("rpc", "typed-spin-16"),
    ("rpc", "spawn-to-first-call"),
    ("baseline", "transport-spin"),
    ("baseline", "unix-socket"),
];

#[test]
fn quick_run_writes_one_row_per_case() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("rpc.json");
    let out = Command::new(env!("CARGO_BIN_EXE_memwire"))
        .args(["bench", "rpc", "--quick", "--iters", "500", "--spawns", "2"])
        .arg("--json")
        .arg(&json)
        // Workers and the transport case bind hosts: their sockets go here.
        .env("MEMWIRE_RUNTIME_DIR", dir.path().join("run"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "memwire bench rpc failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("typed-spin-16") && stdout.contains("targets (issue 5"),
        "no table and targets on stdout: {stdout}"
    );

    let rows: Vec<Value> = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["suite"].as_str().unwrap(), r["case"].as_str().unwrap()))
        .collect();
    assert_eq!(got, EXPECTED);
    for r in &rows {
        let case = r["case"].as_str().unwrap();
        let (p50, p99, p999) = (
            r["rtt_p50_ns"].as_u64().unwrap(),
            r["rtt_p99_ns"].as_u64().unwrap(),
            r["rtt_p999_ns"].as_u64().unwrap(),
        );
        assert!(0 < p50 && p50 <= p99 && p99 <= p999, "percentiles: {r}");
        let samples = r["samples"].as_u64().unwrap();
        let (mean, per_s) = (
            r["one_way_mean_ns"].as_f64().unwrap(),
            r["msgs_per_s"].as_f64().unwrap(),
        );
        if case == "spawn-to-first-call" {
            assert_eq!(samples, 2, "{r}");
            // A start has no one-way time and no rate: documented as 0.
            assert_eq!((mean, per_s), (0.0, 0.0), "{r}");
            assert_eq!(r["throughput_from"], "none", "{r}");
        } else {
            assert!((1..=500).contains(&samples), "{r}");
            assert!(mean.is_finite() && mean > 0.0, "{r}");
            assert!(per_s.is_finite() && per_s > 0.0, "{r}");
        }
        let wakes = &r["wake_syscalls_per_msg"];
        if case == "transport-spin" {
            assert_eq!(r["size"], 64, "{r}");
            assert_eq!(r["payload"], "untouched", "{r}");
            // A spinning link makes no wake syscall.
            assert_eq!(wakes.as_f64(), Some(0.0), "{r}");
        } else {
            // Not a fixed-size message; the client counts no wake syscalls.
            assert_eq!(r["size"], 0, "{r}");
            assert_eq!(r["payload"], "touched", "{r}");
            assert!(wakes.is_null(), "{r}");
        }
        let from = if case == "typed-spin-16" {
            "in_flight"
        } else if case == "spawn-to-first-call" {
            "none"
        } else {
            "round_trip"
        };
        assert_eq!(r["throughput_from"], from, "{r}");
        assert!(r["machine"]["cpu"].is_string(), "{r}");
    }
    assert!(
        !dir.path().join("run/transport").exists()
            || std::fs::read_dir(dir.path().join("run/transport"))
                .unwrap()
                .next()
                .is_none(),
        "a host socket was left behind"
    );
}

#[test]
fn the_rpc_peer_command_is_hidden_and_zero_counts_are_refused() {
    let bin = env!("CARGO_BIN_EXE_memwire");
    let help = Command::new(bin)
        .args(["bench", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("rpc"), "{help}");
    let help = Command::new(bin).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(!help.contains("__bench-rpc-peer"), "{help}");

    for arg in ["--iters", "--spawns"] {
        let out = Command::new(bin)
            .args(["bench", "rpc", arg, "0"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("at least 1"),
            "{arg}"
        );
    }
}
