//! `memwire bench rpc` end to end: a quick run of every case, and its JSON.
//!
//! No timing is asserted (tests assert behaviour, never timing): only that every case ran
//! against a real worker process and reported the fields tools read, with the documented
//! nulls and zeros where a field does not apply.
#![allow(clippy::unwrap_used)]

mod bench_support;

use bench_support::{assert_no_host_socket, assert_positive, assert_refused, assert_row, bench};

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
    // Workers and the transport case bind hosts: their sockets go in the run's runtime dir.
    let ran = bench(&["rpc", "--quick", "--iters", "500", "--spawns", "2"], &[]);
    let (stdout, rows) = (&ran.stdout, &ran.rows);
    assert!(
        stdout.contains("typed-spin-16") && stdout.contains("targets (issue 5"),
        "no table and targets on stdout: {stdout}"
    );

    assert_eq!(bench_support::pairs(rows, "suite", "case"), EXPECTED);
    for r in rows {
        let case = r["case"].as_str().unwrap();
        assert_row(r);
        let samples = r["samples"].as_u64().unwrap();
        if case == "spawn-to-first-call" {
            assert_eq!(samples, 2, "{r}");
            // A start has no one-way time and no rate: documented as 0.
            let (mean, per_s) = (
                r["one_way_mean_ns"].as_f64().unwrap(),
                r["msgs_per_s"].as_f64().unwrap(),
            );
            assert_eq!((mean, per_s), (0.0, 0.0), "{r}");
            assert_eq!(r["throughput_from"], "none", "{r}");
        } else {
            assert!((1..=500).contains(&samples), "{r}");
            assert_positive(r, "one_way_mean_ns");
            assert_positive(r, "msgs_per_s");
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
        // typed-spin carries the raw link's P50 timed alternating with it; no other row does.
        if case == "typed-spin" {
            assert_positive(r, "transport_spin_p50_ns");
        } else {
            assert!(r["transport_spin_p50_ns"].is_null(), "{r}");
        }
        let from = if case == "typed-spin-16" {
            "in_flight"
        } else if case == "spawn-to-first-call" {
            "none"
        } else {
            "round_trip"
        };
        assert_eq!(r["throughput_from"], from, "{r}");
    }
    assert_no_host_socket(&ran.dir.path().join("run"));
}

#[test]
fn the_rpc_peer_command_is_hidden_and_zero_counts_are_refused() {
    let help = bench_support::help(&["bench"]);
    assert!(help.contains("rpc"), "{help}");
    let help = bench_support::help(&[]);
    assert!(!help.contains("__bench-rpc-peer"), "{help}");

    for arg in ["--iters", "--spawns"] {
        assert_refused(&["bench", "rpc", arg, "0"], "at least 1");
    }
}
