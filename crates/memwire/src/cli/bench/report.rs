//! What `memwire bench transport` reports: one [`Row`] per case, size and payload mode, as a
//! table for people or JSON for tools.
//!
//! JSON: an array of rows. Each row carries the small [`Machine`] object it was measured on,
//! so a row stays meaningful when tools split or merge files.

use comfy_table::{CellAlignment, Table, presets};
use serde::Serialize;

use super::case::{Payload, Suite};
use super::pin::Placement;

/// One measured case at one size and payload mode.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Row {
    pub(crate) suite: Suite,
    pub(crate) case: &'static str,
    /// Message size in bytes (for the floors, the size they are the floor for).
    pub(crate) size: usize,
    pub(crate) payload: Payload,
    /// Round trips timed.
    pub(crate) samples: u64,
    pub(crate) rtt_p50_ns: u64,
    pub(crate) rtt_p99_ns: u64,
    pub(crate) rtt_p999_ns: u64,
    pub(crate) rtt_max_ns: u64,
    /// Sum of the timed round trips / (2 × samples).
    pub(crate) one_way_mean_ns: f64,
    /// One way.
    pub(crate) msgs_per_s: f64,
    /// One way; `null` for a case that moves no payload.
    pub(crate) gb_per_s: Option<f64>,
    /// `stream` (measured by streaming) or `round_trip` (1 / one-way mean).
    pub(crate) throughput_from: &'static str,
    /// `null` where the case does not make or count wake syscalls.
    pub(crate) wake_syscalls_per_msg: Option<f64>,
    /// `rtt_p50_ns` / `floor_spin_p50_ns` for a spinning case, else / the same run's
    /// `floor-spin` row at this size.
    pub(crate) x_floor: Option<f64>,
    /// For a spinning case: the p50 of `floor-spin` timed in segments alternating with this
    /// row's (not the `floor-spin` row, which was timed on its own).
    pub(crate) floor_spin_p50_ns: Option<u64>,
    /// For a touched spinning case: the p50 of `touch-floor` at this size, timed in segments
    /// alternating with this row's (not the `touch-floor` row).
    pub(crate) touch_floor_p50_ns: Option<u64>,
    /// For `typed-spin` (the rpc bench): the p50 of `transport-spin` timed in segments
    /// alternating with this row's (not the `transport-spin` row, timed on its own).
    pub(crate) transport_spin_p50_ns: Option<u64>,
    /// For a case that blocks: the p50 of `floor-futex` timed in chunks alternating with this
    /// row's (not the `floor-futex` row, which was timed on its own).
    pub(crate) floor_futex_p50_ns: Option<u64>,
    /// `rtt_p50_ns` / `floor_futex_p50_ns`.
    pub(crate) x_floor_futex: Option<f64>,
    pub(crate) machine: Machine,
}

/// The machine a row was measured on.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Machine {
    /// `model name` from `/proc/cpuinfo`.
    pub(crate) cpu: String,
    /// CPUs this process may use.
    pub(crate) cores: usize,
    /// `/proc/sys/kernel/osrelease`.
    pub(crate) kernel: String,
    /// Whether parent and peer were pinned to different CPUs.
    pub(crate) pinned: bool,
    pub(crate) parent_cpu: Option<usize>,
    pub(crate) peer_cpu: Option<usize>,
}

impl Machine {
    /// This machine, as far as `/proc` tells. Call it before pinning: `cores` counts the CPUs
    /// this process may use.
    pub(crate) fn detect(placement: impl FnOnce() -> Placement) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let placement = placement();
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned());
        Self {
            cpu,
            cores,
            kernel,
            pinned: placement.pinned(),
            parent_cpu: placement.parent_cpu,
            peer_cpu: placement.peer_cpu,
        }
    }
}

/// The table, then its footnotes.
pub(crate) fn table(rows: &[Row]) -> String {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_header(vec![
        "SUITE", "CASE", "SIZE", "PAYLOAD", "P50", "P99", "P99.9", "MAX", "ONE-WAY", "MSG/S",
        "GB/S", "× FLOOR", "× FUTEX",
    ]);
    for r in rows {
        let star = if r.throughput_from == "stream" {
            ""
        } else {
            "*"
        };
        table.add_row(vec![
            r.suite.as_str().to_owned(),
            r.case.to_owned(),
            super::super::units::show_size(r.size as u64),
            r.payload.as_str().to_owned(),
            show_ns(r.rtt_p50_ns as f64),
            show_ns(r.rtt_p99_ns as f64),
            show_ns(r.rtt_p999_ns as f64),
            show_ns(r.rtt_max_ns as f64),
            show_ns(r.one_way_mean_ns),
            format!("{}{star}", show_rate(r.msgs_per_s)),
            r.gb_per_s
                .map_or_else(|| "-".to_owned(), |g| format!("{g:.2}")),
            r.x_floor
                .map_or_else(|| "-".to_owned(), |x| format!("{x:.1}×")),
            r.x_floor_futex
                .map_or_else(|| "-".to_owned(), |x| format!("{x:.2}×")),
        ]);
    }
    for col in 4..13 {
        if let Some(c) = table.column_mut(col) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = table.to_string();
    out.push_str(
        "\nP50..MAX: round-trip time. ONE-WAY: mean round trip / 2. MSG/S, GB/S: one way, \
         streamed; * = ping-pong only, 1 / ONE-WAY.\n× FLOOR: P50 / floor-spin P50 at the \
         same size, this run; for spin, floor-spin timed in segments alternating with that \
         row's. The floors move no payload; touch-floor's round trip is two writes and two \
         checksums in one process.\n× FUTEX (block): P50 / the P50 of \
         floor-futex timed in chunks alternating with that row's.\n",
    );
    out.push_str(&machine_line(rows));
    out
}

/// `machine: CPU, N CPUs, Linux K; pinned: ...`, from the first row; empty without rows.
pub(crate) fn machine_line(rows: &[Row]) -> String {
    let Some(m) = rows.first().map(|r| &r.machine) else {
        return String::new();
    };
    let pinning = match (m.parent_cpu, m.peer_cpu) {
        (Some(a), Some(b)) => format!("pinned: parent on CPU {a}, peer on CPU {b}"),
        _ => "not pinned".to_owned(),
    };
    format!(
        "machine: {}, {} CPUs, Linux {}; {pinning}\n",
        m.cpu, m.cores, m.kernel
    )
}

/// `312 ns`, `24.1 µs`, `1.20 ms`, `1.50 s`.
pub(crate) fn show_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// `950`, `41.2 k`, `3.10 M`.
pub(crate) fn show_rate(per_s: f64) -> String {
    if per_s < 1e3 {
        format!("{per_s:.0}")
    } else if per_s < 1e6 {
        format!("{:.1} k", per_s / 1e3)
    } else {
        format!("{:.2} M", per_s / 1e6)
    }
}

/// A row for unit tests of the tables and targets: every percentile `p50`, one-way mean
/// `p50 / 2`, measured on a pinned 2-CPU machine.
#[cfg(test)]
pub(crate) fn sample_row(
    suite: super::case::Suite,
    case: &'static str,
    size: usize,
    payload: super::case::Payload,
    p50: u64,
    msgs_per_s: f64,
    throughput_from: &'static str,
) -> Row {
    Row {
        suite,
        case,
        size,
        payload,
        samples: 1,
        rtt_p50_ns: p50,
        rtt_p99_ns: p50,
        rtt_p999_ns: p50,
        rtt_max_ns: p50,
        one_way_mean_ns: p50 as f64 / 2.0,
        msgs_per_s,
        gb_per_s: None,
        throughput_from,
        wake_syscalls_per_msg: None,
        x_floor: None,
        floor_spin_p50_ns: None,
        touch_floor_p50_ns: None,
        transport_spin_p50_ns: None,
        floor_futex_p50_ns: None,
        x_floor_futex: None,
        machine: Machine {
            cpu: "test".to_owned(),
            cores: 2,
            kernel: "6".to_owned(),
            pinned: true,
            parent_cpu: Some(0),
            peer_cpu: Some(1),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_rates_read_short() {
        assert_eq!(show_ns(312.4), "312 ns");
        assert_eq!(show_ns(24_100.0), "24.1 µs");
        assert_eq!(show_ns(1_204_000.0), "1.20 ms");
        assert_eq!(show_rate(41_234.0), "41.2 k");
        assert_eq!(show_rate(3_100_000.0), "3.10 M");
    }
}
