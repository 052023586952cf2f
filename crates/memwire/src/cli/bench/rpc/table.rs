//! What `memwire bench rpc` prints: its table, its notes, and the targets checked
//! against the run (reported with ✓ or ✗, never asserted: timing belongs to the benchmark).

use crate::cli::bench::case_list;
use crate::cli::bench::report::{Row, show_ns, show_rate};
use crate::cli::bench::targets::Check;

/// The table, its notes, the machine, then the targets.
pub(crate) fn text(rows: &[Row]) -> String {
    // A start has no one-way time and no rate: 0 in the row, `-` in the table.
    let dash_if_zero = |x: f64, show: fn(f64) -> String| {
        if x > 0.0 { show(x) } else { "-".to_owned() }
    };
    let table = case_list::table(rows, &["ONE-WAY", "CALLS/S"], |r| {
        vec![
            dash_if_zero(r.one_way_mean_ns, show_ns),
            dash_if_zero(r.msgs_per_s, show_rate),
        ]
    });
    let title = "targets (issue 5; ratios of P50s and of calls/s, this run):";
    case_list::text(&table, NOTES, rows, &check(rows), title)
}

const NOTES: &str = "
P50..MAX: time of one call, from its start to its answer (transport-spin: a 64 B echo round
trip; spawn-to-first-call: from Worker::spawn_with to the first call's answer, stop not
counted). ONE-WAY: mean / 2. CALLS/S: 1 / mean with one call in flight; typed-spin-16: calls
answered per second of wall clock with 16 in flight (its P50..MAX are per call).
typed-spin is timed in four segments alternating with as many of the raw link's echo; its
target reads that interleaved echo's P50 (this host moves its vCPUs between placements).
Caller: a current-thread tokio runtime on the pinned parent thread. Worker: its own process,
`memwire::rpc::serve_async_with` on a current-thread runtime, link waiting Spin on both ends
(typed-block: Block on both ends, sleeping at once); no circuit breaker, no heartbeats.
unix-socket: the same add(i64, i64) with postcard, length-prefixed, blocking server loop.
";

/// Every target the rows allow checking: ratios of one run's figures.
pub(crate) fn check(rows: &[Row]) -> Vec<Check> {
    let find = |case: &str| rows.iter().find(|r| r.case == case);
    let p50 = |r: &Row| r.rtt_p50_ns.max(1) as f64;
    let mut checks = Vec::new();
    let typed = find("typed-spin");
    // Against the raw link timed alternating with it, else against its row.
    let raw = typed.and_then(|t| t.transport_spin_p50_ns).map_or_else(
        || find("transport-spin").map(|r| (p50(r), "transport-spin")),
        |p| Some((p.max(1) as f64, "transport-spin (interleaved)")),
    );
    if let (Some(typed), Some((raw, of))) = (typed, raw) {
        let x = p50(typed) / raw;
        checks.push(Check::ratio("typed-spin P50", x, of, "≤ 2×", x <= 2.0));
    }
    if let (Some(typed), Some(socket)) = (typed, find("unix-socket")) {
        let x = p50(socket) / p50(typed);
        let of = "faster than unix-socket";
        checks.push(Check::ratio("typed-spin P50", x, of, "≥ 25×", x >= 25.0));
    }
    if let (Some(typed), Some(by_name)) = (typed, find("by-name-spin")) {
        let x = p50(by_name) / p50(typed);
        checks.push(Check::ratio(
            "by-name-spin P50",
            x,
            "typed-spin",
            "≤ 2×",
            x <= 2.0,
        ));
    }
    if let (Some(one), Some(many)) = (typed, find("typed-spin-16")) {
        let x = many.msgs_per_s / one.msgs_per_s.max(f64::MIN_POSITIVE);
        let of = "typed-spin's";
        checks.push(Check::ratio(
            "typed-spin-16 calls/s",
            x,
            of,
            "≥ 4×",
            x >= 4.0,
        ));
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::bench::case::{Payload, Suite};
    use crate::cli::bench::report::sample_row;
    use crate::cli::bench::targets::assert_checks;

    fn row(case: &'static str, p50: u64, per_s: f64) -> Row {
        sample_row(
            Suite::Rpc,
            case,
            0,
            Payload::Touched,
            p50,
            per_s,
            "round_trip",
        )
    }

    #[test]
    fn each_target_is_checked_against_its_own_rows() {
        let rows = [
            row("typed-spin", 1_000, 1e6),
            row("by-name-spin", 2_500, 4e5),
            row("typed-spin-16", 8_000, 3e6),
            row("transport-spin", 600, 1.6e6),
            row("unix-socket", 40_000, 2.5e4),
        ];
        let want = [
            ("typed-spin P50", "1.67× transport-spin", true),
            ("typed-spin P50", "40.00× faster than unix-socket", true),
            ("by-name-spin P50", "2.50× typed-spin", false),
            ("typed-spin-16 calls/s", "3.00× typed-spin's", false),
        ];
        assert_checks(&check(&rows), &want);
        assert!(check(&rows[..1]).is_empty());
        // With the raw link timed alternating with it, typed-spin is compared with that.
        let mut typed = rows[0].clone();
        typed.transport_spin_p50_ns = Some(400);
        let alone = check(&[typed, rows[3].clone()]);
        assert_checks(
            &alone,
            &[(
                "typed-spin P50",
                "2.50× transport-spin (interleaved)",
                false,
            )],
        );
        let text = text(&rows);
        assert!(
            text.contains("typed-spin-16") && text.contains("issue 5"),
            "{text}"
        );
    }
}
