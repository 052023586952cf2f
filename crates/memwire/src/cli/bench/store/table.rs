//! What `memwire bench store` prints: its table, its notes, and the targets checked
//! against the run (reported with ✓ or ✗, never asserted: timing belongs to the benchmark).

use crate::cli::bench::case_list;
use crate::cli::bench::report::{Row, show_rate};
use crate::cli::bench::targets::Check;

/// The table, its notes, the machine, then the targets.
pub(crate) fn text(rows: &[Row]) -> String {
    let mut table = case_list::table(rows, &["OPS/S"], |r| vec![show_rate(r.msgs_per_s)]);
    // Every case moves a value of some size: SIZE is a figure like the rest.
    case_list::right_align(&mut table, 2);
    let (checks, unchecked) = check(rows);
    let title = "targets (issue 6; ratios of P50s and of ops/s, this run):";
    let mut out = case_list::text(&table, NOTES, rows, &checks, title);
    for note in unchecked {
        out.push_str(&note);
        out.push('\n');
    }
    out
}

const NOTES: &str = "
P50..MAX: time of one operation, from its call to its answer; local-get-*: the time of a batch
of 1 000 gets / 1 000 (Reader::get_into into a reused buffer; SAMPLES counts batches).
OPS/S: 1 / mean with one operation in flight;
remote-set-16: sets answered per second of wall clock by 16 clients, one set each in flight.
watch-wake, redis-pubsub: from the set's call to a sleeping waiter's wake-up with the change
(a second local client on another thread in LocalWatcher::next; a redis subscriber to the key's
keyspace notification); each sample starts once the waiter sleeps in the kernel (its state in
/proc), and the setter's link is as the previous sample left it.
watch-wake-cold, local-set-cold: the same, and a set alone, after a 50 µs pause (the server's
end of the setter's link has stopped spinning and sleeps). Server: `memwire serve` (fsync
every 1 s) or redis-server (appendonly yes, appendfsync everysec, no RDB), each its own
process pinned to the peer CPU. floor-futex:
the transport bench's futex ping-pong between two processes (a round trip; one way = P50 / 2).
";

/// Every target the rows allow checking, and a line for each the run cannot check.
pub(crate) fn check(rows: &[Row]) -> (Vec<Check>, Vec<String>) {
    let find = |case: &str| rows.iter().find(|r| r.case == case);
    let p50 = |r: &Row| r.rtt_p50_ns.max(1) as f64;
    let rate = |r: &Row| r.msgs_per_s.max(f64::MIN_POSITIVE);
    let mut checks = Vec::new();
    let mut unchecked = Vec::new();
    let redis_get = find("redis-get");
    let redis_set = find("redis-set");
    if let (Some(local), Some(redis)) = (find("local-get-8"), redis_get) {
        let x = p50(redis) / p50(local);
        let of = "faster than redis-get";
        checks.push(Check::ratio(
            "local-get-8 P50",
            x,
            of,
            "≥ 1000×",
            x >= 1000.0,
        ));
    }
    if let (Some(local), Some(redis)) = (find("local-set"), redis_set) {
        let x = rate(local) / rate(redis);
        checks.push(Check::ratio(
            "local-set ops/s",
            x,
            "redis-set's",
            "≥ 10×",
            x >= 10.0,
        ));
    }
    if let (Some(remote), Some(redis)) = (find("remote-set"), redis_set) {
        let x = rate(remote) / rate(redis);
        checks.push(Check::ratio(
            "remote-set ops/s",
            x,
            "redis-set's",
            "≥ 1×",
            x >= 1.0,
        ));
    }
    if redis_get.is_none() || redis_set.is_none() {
        unchecked.push(
            "the targets against Redis cannot be checked: no redis rows in this run.".to_owned(),
        );
    }
    match (find("watch-wake"), find("local-set"), find("floor-futex")) {
        (Some(wake), Some(set), Some(futex)) => {
            // The wake-up against a set plus 1.2 × the futex floor one way: the target.
            // Not the issue's: the same after a pause, against the set after that pause, which
            // tells the wake-up of a sleeping server from the watcher's.
            let cold = find("watch-wake-cold").zip(find("local-set-cold"));
            let pairs = std::iter::once((wake, set)).chain(cold);
            for (wake, set) in pairs {
                let x = p50(wake) / (p50(set) + 1.2 * p50(futex) / 2.0);
                checks.push(Check::ratio(
                    format!("{} P50", wake.case),
                    x,
                    &format!("({} P50 + 1.2 × floor-futex one way)", set.case),
                    "≤ 1×",
                    x <= 1.0,
                ));
            }
        }
        (Some(_), Some(_), None) => unchecked.push(
            "watch-wake: the target cannot be checked: the futex floor was not measured in \
             this run."
                .to_owned(),
        ),
        _ => {}
    }
    (checks, unchecked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::bench::case::{Payload, Suite};
    use crate::cli::bench::report::sample_row;
    use crate::cli::bench::targets::assert_checks;

    fn row(case: &'static str, p50: u64, per_s: f64) -> Row {
        sample_row(
            Suite::Store,
            case,
            8,
            Payload::Touched,
            p50,
            per_s,
            "round_trip",
        )
    }

    #[test]
    fn each_target_is_checked_against_its_own_rows() {
        let rows = [
            row("local-get-8", 20, 5e7),
            row("local-set", 10_000, 1e5),
            row("watch-wake", 14_000, 7e4),
            row("local-set-cold", 20_000, 5e4),
            row("watch-wake-cold", 30_000, 3e4),
            row("remote-set", 30_000, 3.2e4),
            row("floor-futex", 6_000, 1.6e5),
            row("redis-get", 25_000, 4e4),
            row("redis-set", 25_000, 4e4),
        ];
        let (checks, unchecked) = check(&rows);
        let want = [
            ("local-get-8 P50", "1250.00× faster than redis-get", true),
            ("local-set ops/s", "2.50× redis-set's", false),
            ("remote-set ops/s", "0.80× redis-set's", false),
            (
                "watch-wake P50",
                "1.03× (local-set P50 + 1.2 × floor-futex one way)",
                false,
            ),
            (
                "watch-wake-cold P50",
                "1.27× (local-set-cold P50 + 1.2 × floor-futex one way)",
                false,
            ),
        ];
        assert_checks(&checks, &want);
        assert!(unchecked.is_empty());

        let (checks, unchecked) = check(&rows[..6]);
        assert!(checks.is_empty());
        assert_eq!(unchecked.len(), 2, "{unchecked:?}");
        assert!(unchecked[1].contains("cannot be checked"));
        let text = text(&rows);
        assert!(
            text.contains("watch-wake") && text.contains("issue 6"),
            "{text}"
        );
    }
}
