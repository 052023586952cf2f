//! The targets for the transport (issue 4, "Targets"), checked against the rows of one
//! run and printed under the table with ✓ or ✗. They are reported, never asserted: timing
//! belongs to the benchmark, not to tests.
//!
//! All ratios are of round-trip p50s measured in the same run. A target whose rows the run did
//! not measure (`--sizes`, `--cases`) is left out.

use comfy_table::{CellAlignment, Table, presets};

use super::case::Payload;
use super::report::Row;

/// One target, measured.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Check {
    /// What is measured: `spin 64 B untouched`.
    pub(crate) what: String,
    /// The measured figure, with what it is relative to: `1.42× floor-spin`.
    pub(crate) measured: String,
    /// `≤ 1.5×`.
    pub(crate) target: &'static str,
    pub(crate) met: bool,
}

impl Check {
    /// A target on a ratio: `x` times `of`, e.g. `1.42× floor-spin`.
    pub(crate) fn ratio(
        what: impl Into<String>,
        x: f64,
        of: &str,
        target: &'static str,
        met: bool,
    ) -> Self {
        Self {
            what: what.into(),
            measured: format!("{x:.2}× {of}"),
            target,
            met,
        }
    }
}

/// The sizes the targets name: 64 B (a small message in a slot) and 1 MiB (a large one).
const B64: usize = 64;
const MIB: usize = 1 << 20;

/// Every target the rows allow checking.
pub(crate) fn check(rows: &[Row]) -> Vec<Check> {
    let find = |case: &str, size: usize, payload: Payload| {
        rows.iter()
            .find(|r| r.case == case && r.size == size && r.payload == payload)
    };
    let p50 = |r: &Row| r.rtt_p50_ns as f64;
    let mut checks = Vec::new();
    let mut ratio = |what: String, x: f64, of: &str, target: &'static str, met: bool| {
        checks.push(Check::ratio(what, x, of, target, met));
    };
    use Payload::{Touched, Untouched};
    for (size, limit, target) in [(8, 1.5, "≤ 1.5×"), (B64, 2.0, "≤ 2×")] {
        if let Some(x) = find("spin", size, Untouched).and_then(|r| r.x_floor) {
            let what = format!("spin {size} B untouched");
            ratio(what, x, "floor-spin (interleaved)", target, x <= limit);
        }
    }
    let spin64 = find("spin", B64, Untouched);
    if let (Some(big), Some(small)) = (find("spin", MIB, Untouched), spin64) {
        let x = p50(big) / p50(small);
        let what = "spin 1 MiB untouched".to_owned();
        ratio(what, x, "spin 64 B untouched", "≤ 1.2×", x <= 1.2);
    }
    // Against touch-floor timed alternating with the row, else against its own row.
    let spin_touched = find("spin", MIB, Touched);
    let touch = spin_touched.and_then(|r| r.touch_floor_p50_ns).map_or_else(
        || find("touch-floor", MIB, Touched).map(|r| (p50(r), "touching once")),
        |p| Some((p as f64, "touching once (interleaved)")),
    );
    if let (Some(spin), Some((floor, of))) = (spin_touched, touch) {
        // Half the round trip is one message; touching the payload once is half the
        // touch-floor's round trip (it writes and checksums twice).
        let x = (p50(spin) / 2.0) / (floor.max(1.0) / 2.0);
        let what = "spin 1 MiB touched, ½ round trip".to_owned();
        ratio(what, x, of, "≤ 1.3×", x <= 1.3);
    }
    for r in rows
        .iter()
        .filter(|r| r.case == "block" && r.payload == Untouched)
    {
        if let Some(x) = r.x_floor_futex {
            let what = format!("block {} untouched", show_size(r.size));
            ratio(what, x, "floor-futex (interleaved)", "≤ 1.25×", x <= 1.25);
        }
    }
    if let (Some(socket), Some(spin)) = (find("unix-socket", B64, Untouched), spin64) {
        let x = p50(socket) / p50(spin);
        let what = "spin 64 B untouched".to_owned();
        ratio(what, x, "faster than unix-socket", "≥ 30×", x >= 30.0);
    }
    if let Some(spin) = spin64.filter(|r| r.throughput_from == "stream") {
        checks.push(Check {
            what: "spin 64 B untouched".to_owned(),
            measured: format!("{:.2} M msg/s one way", spin.msgs_per_s / 1e6),
            target: "≥ 10 M msg/s",
            met: spin.msgs_per_s >= 10e6,
        });
    }
    checks
}

/// The section printed after the table; empty without checks.
pub(crate) fn section(checks: &[Check]) -> String {
    titled(
        checks,
        "targets (issue 4; ratios of round-trip P50s, this run):",
    )
}

/// The checks under `title`, one a line with ✓ or ✗; empty without checks.
pub(crate) fn titled(checks: &[Check], title: &str) -> String {
    if checks.is_empty() {
        return String::new();
    }
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    for c in checks {
        let mark = if c.met { "✓" } else { "✗" };
        table.add_row(vec![
            mark,
            &c.what,
            &c.measured,
            &format!("target {}", c.target),
        ]);
    }
    if let Some(col) = table.column_mut(2) {
        col.set_cell_alignment(CellAlignment::Right);
    }
    format!("\n{title}\n{table}\n")
}

fn show_size(size: usize) -> String {
    super::super::units::show_size(size as u64)
}

/// Asserts that `checks` are `want`, in order: what, measured, met.
#[cfg(test)]
pub(crate) fn assert_checks(checks: &[Check], want: &[(&str, &str, bool)]) {
    let got: Vec<(&str, &str, bool)> = checks
        .iter()
        .map(|c| (c.what.as_str(), c.measured.as_str(), c.met))
        .collect();
    assert_eq!(got, want);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::bench::case::Suite;
    use crate::cli::bench::report::sample_row;

    fn row(case: &'static str, size: usize, payload: Payload, p50: u64) -> Row {
        let per_s = 1e9 / (p50 as f64 / 2.0);
        sample_row(Suite::Transport, case, size, payload, p50, per_s, "stream")
    }

    #[test]
    fn each_target_is_checked_against_its_own_rows() {
        let mut spin64 = row("spin", 64, Payload::Untouched, 500);
        spin64.x_floor = Some(2.5);
        let mut block = row("block", 8, Payload::Untouched, 30_000);
        block.x_floor_futex = Some(1.2);
        let rows = [
            spin64,
            row("spin", MIB, Payload::Untouched, 550),
            row("spin", MIB, Payload::Touched, 100_000),
            row("touch-floor", MIB, Payload::Touched, 80_000),
            block,
            row("unix-socket", 64, Payload::Untouched, 20_000),
        ];
        let want = [
            (
                "spin 64 B untouched",
                "2.50× floor-spin (interleaved)",
                false,
            ),
            ("spin 1 MiB untouched", "1.10× spin 64 B untouched", true),
            (
                "spin 1 MiB touched, ½ round trip",
                "1.25× touching once",
                true,
            ),
            (
                "block 8 B untouched",
                "1.20× floor-futex (interleaved)",
                true,
            ),
            (
                "spin 64 B untouched",
                "40.00× faster than unix-socket",
                true,
            ),
            ("spin 64 B untouched", "4.00 M msg/s one way", false),
        ];
        assert_checks(&check(&rows), &want);
        // With touch-floor timed alternating with the touched row, the target reads that.
        let mut touched = row("spin", MIB, Payload::Touched, 100_000);
        touched.touch_floor_p50_ns = Some(50_000);
        assert_checks(
            &check(&[touched, row("touch-floor", MIB, Payload::Touched, 80_000)]),
            &[(
                "spin 1 MiB touched, ½ round trip",
                "2.00× touching once (interleaved)",
                false,
            )],
        );
        let text = section(&check(&rows));
        assert!(text.contains("✓") && text.contains("✗"), "{text}");
        assert_eq!(section(&[]), "");
    }
}
