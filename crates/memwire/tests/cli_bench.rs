//! `memwire bench transport` end to end: a quick run of the transport's cases and the
//! baselines, and its JSON.
//!
//! No timing is asserted (tests assert behaviour, never timing): only that every case ran in
//! two processes, reported the fields tools read, and that the numbers are sane.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};

use serde_json::Value;

/// The cases and the payload modes each is measured in, in the order they run.
const EXPECTED: &[(&str, &str)] = &[
    ("spin", "untouched"),
    ("spin", "touched"),
    ("block", "untouched"),
    ("block", "touched"),
    ("floor-spin", "untouched"),
    ("touch-floor", "touched"),
    ("floor-futex", "untouched"),
    ("unix-socket", "untouched"),
    ("unix-socket", "touched"),
    ("pipe", "untouched"),
    ("pipe", "touched"),
];

const NUMBERS: &[&str] = &[
    "rtt_p50_ns",
    "rtt_p99_ns",
    "rtt_p999_ns",
    "one_way_mean_ns",
    "msgs_per_s",
];

#[test]
fn quick_run_writes_one_row_per_case_and_payload_mode() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_memwire"))
        .args([
            "bench",
            "transport",
            "--quick",
            "--sizes",
            "64",
            "--iters",
            "2000",
        ])
        .arg("--json")
        .arg(&json)
        // The transport cases bind a host: its socket goes here, not in the user's runtime dir.
        .env("MEMWIRE_RUNTIME_DIR", dir.path().join("run"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "memwire bench failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("floor-spin") && stdout.contains("targets"),
        "no table and targets on stdout: {stdout}"
    );

    let rows: Vec<Value> = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["case"].as_str().unwrap(), r["payload"].as_str().unwrap()))
        .collect();
    assert_eq!(got, EXPECTED);
    for r in &rows {
        let transport = ["spin", "block"].contains(&r["case"].as_str().unwrap());
        let suite = if transport { "transport" } else { "baseline" };
        assert_eq!(r["suite"], suite, "{r}");
        assert_eq!(r["size"], 64, "{r}");
        for field in NUMBERS {
            let v = r[field]
                .as_f64()
                .unwrap_or_else(|| panic!("{field} missing: {r}"));
            assert!(v.is_finite() && v > 0.0, "{field} = {v}: {r}");
        }
        let (p50, p99, p999) = (
            r["rtt_p50_ns"].as_u64().unwrap(),
            r["rtt_p99_ns"].as_u64().unwrap(),
            r["rtt_p999_ns"].as_u64().unwrap(),
        );
        assert!(p50 <= p99 && p99 <= p999, "percentiles out of order: {r}");
        assert!(r.get("wake_syscalls_per_msg").is_some(), "{r}");
        assert!(r["machine"]["cpu"].is_string(), "{r}");
    }
    // Known counts: the spin floor makes no syscalls, the futex floor wakes once a message.
    let wakes = |case: &str| {
        rows.iter().find(|r| r["case"] == case).unwrap()["wake_syscalls_per_msg"].clone()
    };
    assert_eq!(wakes("floor-spin").as_f64(), Some(0.0));
    let futex = wakes("floor-futex").as_f64().unwrap();
    assert!(
        (0.9..=1.0).contains(&futex),
        "floor-futex wakes/msg {futex}"
    );
    assert!(wakes("pipe").is_null());
    // The transport counts its own: a spinning link never makes one; a blocking one makes at
    // most one per message to a sleeper, plus its returns. Both ends' counts are included.
    for r in rows.iter().filter(|r| r["suite"] == "transport") {
        let w = r["wake_syscalls_per_msg"]
            .as_f64()
            .unwrap_or_else(|| panic!("no wake count: {r}"));
        assert!(w.is_finite() && w >= 0.0, "{r}");
        if r["case"] == "spin" {
            assert_eq!(w, 0.0, "a spinning link made wake syscalls: {r}");
        } else {
            assert!(w <= 2.0, "{r}");
            let ratio = r["x_floor_futex"].as_f64().unwrap_or_else(|| panic!("{r}"));
            assert!(ratio.is_finite() && ratio > 0.0, "{r}");
        }
        assert_eq!(r["throughput_from"], "stream", "{r}");
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
fn the_peer_command_is_hidden_and_bad_sizes_are_refused() {
    let bin = env!("CARGO_BIN_EXE_memwire");
    let help = Command::new(bin).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("bench") && !help.contains("__bench-peer"),
        "{help}"
    );

    let out = Command::new(bin)
        .args(["bench", "transport", "--sizes", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1 byte"));
}
