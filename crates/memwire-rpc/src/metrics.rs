//! Per-handle metrics: requests, outcomes by kind, calls in flight, a latency histogram and the
//! last heartbeat's round trip.
//!
//! The core calls [`Metrics::start`] when a call begins and [`Metrics::finish`] with its outcome;
//! a [`CallTimer`] dropped without `finish` (its call was dropped) still leaves the in-flight
//! count, but records no outcome and no latency. [`Metrics::snapshot`] copies everything out
//! into a [`MetricsSnapshot`], which prints as a small table.
//!
//! - `requests` counts calls started; `successes` and `failures` count calls finished, so
//!   `requests - successes - failures` is about the calls in flight (plus dropped timers).
//! - A timeout counts as a failure of kind `Timeout` *and* in `timeouts`.
//! - Latency is recorded for every finished call, failed ones included (a timed-out call shows
//!   up as a latency of its timeout), in an HDR histogram at 3 significant digits (so a
//!   percentile is within 0.1% of the true value); latencies are reported up to 1 hour, longer
//!   ones as 1 hour.
//! - Calls are timed in ticks of [`Clock`] (the CPU's time-stamp counter where it is invariant:
//!   about 10 ns a read against 25 for `Instant`, twice a call), converted to time when a
//!   snapshot is taken.
//!
//! Cost: two relaxed atomic adds, an `Arc` clone and a clock read per
//! [`start`](Metrics::start); a clock read and one uncontended mutex lock per
//! [`finish`](Metrics::finish). The histogram takes about 220 KiB per handle.
//!
//! ```
//! use memwire_rpc::{ErrorKind, Metrics};
//!
//! let metrics = Metrics::new();
//! let timer = metrics.start();
//! metrics.finish(timer, Ok(()));
//! let timer = metrics.start();
//! metrics.finish(timer, Err(ErrorKind::Timeout));
//! let snapshot = metrics.snapshot();
//! assert_eq!((snapshot.requests, snapshot.successes, snapshot.timeouts), (2, 1, 1));
//! assert_eq!(snapshot.success_rate(), 0.5);
//! println!("{snapshot}");
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use memwire_shm::clock::Clock;

use crate::error::ErrorKind;

/// Longest latency reported: one hour, in nanoseconds.
const MAX_LATENCY_NS: u64 = 3_600 * 1_000_000_000;

/// Most ticks the histogram tells apart: over an hour for any clock up to 9.7 GHz.
const MAX_LATENCY_TICKS: u64 = 1 << 45;

/// Significant decimal digits of the histogram: 0.1% error, about 200 KiB of counters.
const SIGNIFICANT_DIGITS: u8 = 3;

/// The metrics of one handle, shared by its clones (wrap it in an `Arc`).
#[derive(Debug)]
pub struct Metrics {
    /// Calls started.
    requests: AtomicU64,
    /// Calls started and not finished. Shared with every [`CallTimer`], which decrements it when
    /// dropped (a stream's outlives the borrow of its handle).
    in_flight: Arc<AtomicU64>,
    clock: Clock,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    successes: u64,
    /// Indexed like [`ErrorKind::ALL`].
    failures: [u64; ErrorKind::ALL.len()],
    timeouts: u64,
    /// In ticks of `Metrics::clock`.
    latency: Histogram<u64>,
    heartbeats: u64,
    last_heartbeat_rtt: Option<Duration>,
}

/// One call in flight, from [`Metrics::start`] to [`Metrics::finish`].
#[derive(Debug)]
#[must_use = "finish the call with Metrics::finish, or it records no outcome"]
pub struct CallTimer {
    /// When the call started, in ticks of the metrics' clock.
    started: u64,
    in_flight: Arc<AtomicU64>,
}

impl Drop for CallTimer {
    fn drop(&mut self) {
        // Relaxed: the count is a statistic; it orders nothing else.
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Metrics with nothing recorded.
    #[must_use]
    pub fn new() -> Self {
        let latency = Histogram::new_with_bounds(1, MAX_LATENCY_TICKS, SIGNIFICANT_DIGITS)
            // Invariant: 1 <= low, high >= 2 * low and 3 significant digits (<= 5) are valid
            // bounds, so creation cannot fail.
            .expect("1..=2^45 ticks at 3 significant digits are valid histogram bounds");
        Self {
            requests: AtomicU64::new(0),
            in_flight: Arc::new(AtomicU64::new(0)),
            clock: Clock::get(),
            inner: Mutex::new(Inner {
                successes: 0,
                failures: [0; ErrorKind::ALL.len()],
                timeouts: 0,
                latency,
                heartbeats: 0,
                last_heartbeat_rtt: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // No code panics while holding the lock, and every update leaves `Inner` consistent, so
        // a poisoned lock still guards valid counters.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A call starts: counts a request and one more call in flight.
    pub fn start(&self) -> CallTimer {
        // Relaxed: statistics; they order nothing else (see `CallTimer::drop`).
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        CallTimer {
            started: self.clock.now(),
            in_flight: Arc::clone(&self.in_flight),
        }
    }

    /// A call ends with `outcome`: records its latency and outcome, one call fewer in flight.
    pub fn finish(&self, timer: CallTimer, outcome: Result<(), ErrorKind>) {
        let ticks = self.clock.now().saturating_sub(timer.started);
        drop(timer);
        self.record_ticks(ticks, outcome);
    }

    /// Records a finished call that took `ticks` (the in-flight count is the timer's).
    fn record_ticks(&self, ticks: u64, outcome: Result<(), ErrorKind>) {
        let mut inner = self.lock();
        inner.latency.saturating_record(ticks);
        match outcome {
            Ok(()) => inner.successes += 1,
            Err(kind) => {
                inner.failures[kind_index(kind)] += 1;
                if kind == ErrorKind::Timeout {
                    inner.timeouts += 1;
                }
            }
        }
    }

    /// A heartbeat came back after `rtt`.
    pub fn record_heartbeat(&self, rtt: Duration) {
        let mut inner = self.lock();
        inner.heartbeats += 1;
        inner.last_heartbeat_rtt = Some(rtt);
    }

    /// Calls started and not finished, now.
    #[must_use]
    pub fn in_flight(&self) -> u64 {
        // Relaxed: see `CallTimer::drop`.
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Everything, copied out now. Latencies are converted from clock ticks here, at a rate
    /// measured over the process's life: a snapshot taken within a millisecond of the
    /// process's first `Metrics` sleeps until that millisecond has passed ([`Clock`]).
    #[must_use]
    pub fn snapshot(&self) -> MetricsSnapshot {
        let inner = self.lock();
        let failures = ErrorKind::ALL
            .into_iter()
            .zip(inner.failures)
            .filter(|&(_, n)| n > 0)
            .collect();
        let h = &inner.latency;
        let ns_per_tick = self.clock.ns_per_tick();
        let time = |ticks: f64| {
            Duration::from_nanos(Clock::scale(ticks as u64, ns_per_tick).min(MAX_LATENCY_NS))
        };
        MetricsSnapshot {
            // Relaxed: see `start`.
            requests: self.requests.load(Ordering::Relaxed),
            successes: inner.successes,
            failures,
            timeouts: inner.timeouts,
            in_flight: self.in_flight(),
            latency_p50: time(h.value_at_quantile(0.5) as f64),
            latency_p99: time(h.value_at_quantile(0.99) as f64),
            latency_max: time(h.max() as f64),
            // `as` saturates; the mean is clamped like the rest.
            latency_mean: time(h.mean()),
            heartbeats: inner.heartbeats,
            last_heartbeat_rtt: inner.last_heartbeat_rtt,
        }
    }
}

/// The position of `kind` in [`ErrorKind::ALL`].
fn kind_index(kind: ErrorKind) -> usize {
    match kind {
        ErrorKind::Remote => 0,
        ErrorKind::Timeout => 1,
        ErrorKind::Cancelled => 2,
        ErrorKind::PeerGone => 3,
        ErrorKind::CircuitOpen => 4,
        ErrorKind::UnknownMethod => 5,
        ErrorKind::BadArguments => 6,
        ErrorKind::Protocol => 7,
        ErrorKind::Transport => 8,
    }
}

/// The metrics of a handle at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Calls started.
    pub requests: u64,
    /// Calls that succeeded.
    pub successes: u64,
    /// Calls that failed, by kind (kinds that never happened are absent).
    pub failures: BTreeMap<ErrorKind, u64>,
    /// Calls that timed out (also counted in `failures` under [`ErrorKind::Timeout`]).
    pub timeouts: u64,
    /// Calls started and not finished.
    pub in_flight: u64,
    /// Median latency of finished calls (zero when none finished).
    pub latency_p50: Duration,
    /// 99th percentile latency of finished calls.
    pub latency_p99: Duration,
    /// Longest latency of a finished call.
    pub latency_max: Duration,
    /// Mean latency of finished calls.
    pub latency_mean: Duration,
    /// Heartbeats answered.
    pub heartbeats: u64,
    /// Round trip of the last heartbeat answered, if any.
    pub last_heartbeat_rtt: Option<Duration>,
}

impl MetricsSnapshot {
    /// Calls that failed, of every kind.
    #[must_use]
    pub fn total_failures(&self) -> u64 {
        self.failures.values().sum()
    }

    /// Calls that finished, successfully or not.
    #[must_use]
    pub fn finished(&self) -> u64 {
        self.successes + self.total_failures()
    }

    /// Successes over finished calls, in `0.0..=1.0`; 1.0 when no call has finished.
    #[must_use]
    pub fn success_rate(&self) -> f64 {
        match self.finished() {
            0 => 1.0,
            // Precision loss past 2^53 calls is irrelevant for a rate.
            finished => self.successes as f64 / finished as f64,
        }
    }

    /// Mean latency of finished calls (zero when none finished).
    #[must_use]
    pub fn average_latency(&self) -> Duration {
        self.latency_mean
    }
}

impl fmt::Display for MetricsSnapshot {
    /// ```text
    /// requests    1200  in flight 2
    /// successes   1190  success rate 99.33%
    /// failures       8  timeout 5, remote 3
    /// latency           p50 12.3µs  p99 40.1µs  max 1.2ms  mean 14.0µs
    /// heartbeats    12  last rtt 21.0µs
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "requests   {:>6}  in flight {}",
            self.requests, self.in_flight
        )?;
        writeln!(
            f,
            "successes  {:>6}  success rate {:.2}%",
            self.successes,
            self.success_rate() * 100.0
        )?;
        write!(f, "failures   {:>6}", self.total_failures())?;
        for (i, (kind, n)) in self.failures.iter().enumerate() {
            let sep = if i == 0 { "  " } else { ", " };
            write!(f, "{sep}{} {n}", kind.as_str())?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "latency            p50 {:.1?}  p99 {:.1?}  max {:.1?}  mean {:.1?}",
            self.latency_p50, self.latency_p99, self.latency_max, self.latency_mean
        )?;
        write!(f, "heartbeats {:>6}", self.heartbeats)?;
        if let Some(rtt) = self.last_heartbeat_rtt {
            write!(f, "  last rtt {rtt:.1?}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    /// Whether `got` is within the histogram's 0.1% of `want`.
    fn close(got: Duration, want: Duration) -> bool {
        let (got, want) = (got.as_nanos() as f64, want.as_nanos() as f64);
        (got - want).abs() <= want / 1000.0
    }

    impl Metrics {
        /// Records a call that took `latency`, in this clock's ticks.
        fn record(&self, latency: Duration, outcome: Result<(), ErrorKind>) {
            let ticks = latency.as_nanos() as f64 / self.clock.ns_per_tick();
            self.record_ticks(ticks.round() as u64, outcome);
        }
    }

    #[test]
    fn kind_index_follows_all() {
        for (i, kind) in ErrorKind::ALL.into_iter().enumerate() {
            assert_eq!(kind_index(kind), i, "{kind:?}");
        }
    }

    #[test]
    fn counts_outcomes_by_kind() {
        let m = Metrics::new();
        for outcome in [
            Ok(()),
            Ok(()),
            Ok(()),
            Err(ErrorKind::Timeout),
            Err(ErrorKind::Timeout),
            Err(ErrorKind::Remote),
            Err(ErrorKind::PeerGone),
        ] {
            let timer = m.start();
            m.finish(timer, outcome);
        }
        let s = m.snapshot();
        assert_eq!(s.requests, 7);
        assert_eq!(s.successes, 3);
        assert_eq!(s.timeouts, 2);
        assert_eq!(s.in_flight, 0);
        assert_eq!(
            s.failures,
            BTreeMap::from([
                (ErrorKind::Remote, 1),
                (ErrorKind::Timeout, 2),
                (ErrorKind::PeerGone, 1)
            ])
        );
        assert_eq!(s.total_failures(), 4);
        assert_eq!(s.finished(), 7);
        assert_eq!(s.success_rate(), 3.0 / 7.0);
    }

    #[test]
    fn an_empty_snapshot_has_a_perfect_rate_and_zero_latency() {
        let s = Metrics::new().snapshot();
        assert_eq!(s.success_rate(), 1.0);
        assert_eq!(s.average_latency(), Duration::ZERO);
        assert_eq!(s.latency_p99, Duration::ZERO);
        assert_eq!(s.last_heartbeat_rtt, None);
        // Calls in flight have not finished: still no rate to speak of.
        let m = Metrics::new();
        let _timer = m.start();
        assert_eq!(m.snapshot().success_rate(), 1.0);
    }

    #[test]
    fn percentiles_from_known_latencies() {
        let m = Metrics::new();
        // 1..=100 µs, one call each.
        for us in 1..=100 {
            m.record(Duration::from_micros(us), Ok(()));
        }
        let s = m.snapshot();
        assert!(close(s.latency_p50, Duration::from_micros(50)), "{s:?}");
        assert!(close(s.latency_p99, Duration::from_micros(99)), "{s:?}");
        assert!(close(s.latency_max, Duration::from_micros(100)), "{s:?}");
        assert!(close(s.latency_mean, Duration::from_nanos(50_500)), "{s:?}");
        assert_eq!(s.average_latency(), s.latency_mean);
    }

    #[test]
    fn a_timed_call_reports_the_time_it_took() {
        let m = Metrics::new();
        let outer = std::time::Instant::now();
        let timer = m.start();
        let inner = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(5));
        let shortest = inner.elapsed();
        m.finish(timer, Ok(()));
        let longest = outer.elapsed();
        let got = m.snapshot().latency_max.as_nanos();
        // The timer ran around the inner interval and within the outer one; the histogram
        // rounds by at most 0.1%.
        assert!(
            got * 1001 >= shortest.as_nanos() * 1000,
            "{got} ns < {shortest:?}"
        );
        assert!(
            got * 1000 <= longest.as_nanos() * 1001,
            "{got} ns > {longest:?}"
        );
    }

    #[test]
    fn latencies_past_an_hour_saturate() {
        let m = Metrics::new();
        m.record(Duration::from_secs(7_200), Err(ErrorKind::Timeout));
        let s = m.snapshot();
        assert!(close(s.latency_max, Duration::from_secs(3_600)), "{s:?}");
    }

    #[test]
    fn heartbeats_keep_the_last_rtt() {
        let m = Metrics::new();
        m.record_heartbeat(Duration::from_micros(30));
        m.record_heartbeat(Duration::from_micros(20));
        let s = m.snapshot();
        assert_eq!(s.heartbeats, 2);
        assert_eq!(s.last_heartbeat_rtt, Some(Duration::from_micros(20)));
    }

    #[test]
    fn a_dropped_timer_leaves_the_in_flight_count_but_records_nothing() {
        let m = Metrics::new();
        let timer = m.start();
        assert_eq!(m.in_flight(), 1);
        drop(timer);
        let s = m.snapshot();
        assert_eq!((s.requests, s.in_flight, s.finished()), (1, 0, 0));
    }

    #[test]
    fn in_flight_is_exact_across_threads() {
        let m = Arc::new(Metrics::new());
        let threads = 4;
        let per_thread = 1_000;
        // All threads hold one call open at the same moment, then finish the rest.
        let all_started = Arc::new(Barrier::new(threads + 1));
        let may_finish = Arc::new(Barrier::new(threads + 1));
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let m = Arc::clone(&m);
                let (all_started, may_finish) = (Arc::clone(&all_started), Arc::clone(&may_finish));
                std::thread::spawn(move || {
                    let held = m.start();
                    all_started.wait();
                    may_finish.wait();
                    m.finish(held, Ok(()));
                    for i in 1..per_thread {
                        let timer = m.start();
                        let outcome = if (t + i) % 10 == 0 {
                            Err(ErrorKind::Remote)
                        } else {
                            Ok(())
                        };
                        m.finish(timer, outcome);
                    }
                })
            })
            .collect();
        all_started.wait();
        assert_eq!(m.in_flight(), threads as u64);
        may_finish.wait();
        for h in handles {
            h.join().unwrap();
        }
        let s = m.snapshot();
        let total = (threads * per_thread) as u64;
        assert_eq!(s.in_flight, 0);
        assert_eq!(s.requests, total);
        assert_eq!(s.finished(), total);
        let remote = (0..threads)
            .flat_map(|t| (1..per_thread).filter(move |i| (t + i) % 10 == 0))
            .count() as u64;
        assert_eq!(s.failures.get(&ErrorKind::Remote), Some(&remote));
    }

    #[test]
    fn displays_a_compact_table() {
        let m = Metrics::new();
        m.record(Duration::from_micros(10), Ok(()));
        m.record(Duration::from_micros(10), Err(ErrorKind::Timeout));
        m.record_heartbeat(Duration::from_micros(21));
        let text = m.snapshot().to_string();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[1].contains("success rate 50.00%"), "{text}");
        assert!(lines[2].ends_with("timeout 1"), "{text}");
        assert!(lines[3].contains("p50 10.0µs"), "{text}");
        assert!(lines[4].ends_with("last rtt 21.0µs"), "{text}");
    }
}
