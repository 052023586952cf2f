//! `memwire bench transport` end to end: a quick run of the transport's cases and the
//! baselines, and its JSON.
//!
//! No timing is asserted (tests assert behaviour, never timing): only that every case ran in
//! two processes, reported the fields tools read, and that the numbers are sane.
#![allow(clippy::unwrap_used)]

mod bench_support;

use bench_support::{assert_no_host_socket, assert_positive, assert_refused, assert_row, bench};

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
    // The transport cases bind a host: its socket goes in the run's own runtime dir.
    let ran = bench(
        &["transport", "--quick", "--sizes", "64", "--iters", "2000"],
        &[],
    );
    let (stdout, rows) = (&ran.stdout, &ran.rows);
    assert!(
        stdout.contains("floor-spin") && stdout.contains("targets"),
        "no table and targets on stdout: {stdout}"
    );

    assert_eq!(bench_support::pairs(rows, "case", "payload"), EXPECTED);
    for r in rows {
        let transport = ["spin", "block"].contains(&r["case"].as_str().unwrap());
        let suite = if transport { "transport" } else { "baseline" };
        assert_eq!(r["suite"], suite, "{r}");
        assert_eq!(r["size"], 64, "{r}");
        for field in NUMBERS {
            assert_positive(r, field);
        }
        assert_row(r);
        assert!(r.get("wake_syscalls_per_msg").is_some(), "{r}");
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
            // Its floor was timed in segments alternating with it, and its ratio is to that.
            assert_positive(r, "floor_spin_p50_ns");
            let ratio = r["x_floor"].as_f64().unwrap_or_else(|| panic!("{r}"));
            let p50 = r["rtt_p50_ns"].as_f64().unwrap();
            let floor = r["floor_spin_p50_ns"].as_f64().unwrap();
            assert!((ratio - p50 / floor).abs() < 1e-9, "{r}");
            // A touched one was also timed alternating with touch-floor.
            if r["payload"] == "touched" {
                assert_positive(r, "touch_floor_p50_ns");
            } else {
                assert!(r["touch_floor_p50_ns"].is_null(), "{r}");
            }
        } else {
            assert!(r["floor_spin_p50_ns"].is_null(), "{r}");
            assert!(w <= 2.0, "{r}");
            let ratio = r["x_floor_futex"].as_f64().unwrap_or_else(|| panic!("{r}"));
            assert!(ratio.is_finite() && ratio > 0.0, "{r}");
        }
        assert_eq!(r["throughput_from"], "stream", "{r}");
    }
    assert_no_host_socket(&ran.dir.path().join("run"));
}

#[test]
fn the_peer_command_is_hidden_and_bad_sizes_are_refused() {
    let help = bench_support::help(&[]);
    assert!(
        help.contains("bench") && !help.contains("__bench-peer"),
        "{help}"
    );
    assert_refused(&["bench", "transport", "--sizes", "0"], "at least 1 byte");
}
