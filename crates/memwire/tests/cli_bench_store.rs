//! `memwire bench store` end to end: a quick run of every case against a real `memwire serve`
//! process, and its JSON; with a redis-server on PATH and without one.
//!
//! No timing is asserted (tests assert behaviour, never timing): only that every case ran and
//! reported the fields tools read.
#![allow(clippy::unwrap_used)]

mod bench_support;

use bench_support::{assert_positive, assert_refused, assert_row, bench};

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
    // The floor's peer and the server's socket live in the run's runtime dir.
    let ran = bench(&["store", "--quick", "--iters", "100"], &[("PATH", path)]);
    let (stdout, rows) = (ran.stdout, &ran.rows);
    assert!(
        stdout.contains("remote-set-16") && stdout.contains("targets (issue 6"),
        "no table and targets on stdout: {stdout}"
    );

    let mut want = STORE.to_vec();
    if redis_on(path) {
        want.extend_from_slice(REDIS);
    }
    assert_eq!(bench_support::pairs(rows, "suite", "case"), want);
    for r in rows {
        let case = r["case"].as_str().unwrap();
        assert_row(r);
        let samples = r["samples"].as_u64().unwrap();
        assert!((1..=100).contains(&samples), "{r}");
        assert_positive(r, "one_way_mean_ns");
        assert_positive(r, "msgs_per_s");
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
    let help = bench_support::help(&["bench"]);
    assert!(help.contains("store"), "{help}");
    let help = bench_support::help(&[]);
    assert!(!help.contains("__bench-pinned"), "{help}");
    assert_refused(&["bench", "store", "--iters", "0"], "at least 1");
}
