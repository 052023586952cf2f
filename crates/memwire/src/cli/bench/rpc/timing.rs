//! Timing calls: one at a time ([`one_at_a_time`]), many in flight ([`in_flight`]), and a
//! worker's start ([`spawns`]). Every call is `add(k, 1)` and its answer is checked.

use std::future::Future;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use hdrhistogram::Histogram;
use memwire::rpc::{Worker, WorkerConfig};

use super::adder::AdderClient;
use crate::cli::bench::measure::Budget;

/// What one case measured.
pub(crate) struct Timed {
    /// Each call's time, from its start to its answer, in nanoseconds.
    pub(crate) rtt: Histogram<u64>,
    /// Sum of the timed calls, in nanoseconds.
    pub(crate) total_ns: u128,
    /// Calls answered per second: 1 / mean call time one at a time; counted over the wall
    /// clock with many in flight.
    pub(crate) per_s: f64,
}

impl Timed {
    /// No calls yet, to [`Timed::merge`] segments into.
    pub(crate) fn empty() -> Result<Self> {
        Ok(Self {
            rtt: histogram()?,
            total_ns: 0,
            per_s: 0.0,
        })
    }

    /// Adds the calls of `other`, timed one at a time: `per_s` is then 1 / the mean of all.
    pub(crate) fn merge(&mut self, other: &Self) -> Result<()> {
        self.rtt.add(&other.rtt).context("joining histograms")?;
        self.total_ns += other.total_ns;
        let mean_ns = self.total_ns as f64 / self.rtt.len().max(1) as f64;
        self.per_s = 1e9 / mean_ns;
        Ok(())
    }
}

fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).context("creating a histogram")
}

fn record(rtt: &mut Histogram<u64>, ns: u128) {
    rtt.saturating_record(u64::try_from(ns).unwrap_or(u64::MAX));
}

/// Checks that `add(k, 1)` answered `k + 1`.
fn check(k: i64, sum: i64) -> Result<()> {
    ensure!(sum == k.wrapping_add(1), "add({k}, 1) answered {sum}");
    Ok(())
}

/// Calls `call(k)` (which must answer `k + 1`) one at a time: untimed for at least
/// [`Budget::warmup`] calls and a tenth of the echo time (at most a fifth), as the transport
/// harness warms up, then timed, up to `budget.iters` calls or the echo time.
pub(crate) async fn one_at_a_time<F, Fut>(budget: &Budget, mut call: F) -> Result<Timed>
where
    F: FnMut(i64) -> Fut,
    Fut: Future<Output = Result<i64>>,
{
    let start = Instant::now();
    let (at_least, at_most) = (start + budget.echo_time / 10, start + budget.echo_time / 5);
    let mut k = 0i64;
    loop {
        check(k, call(k).await?)?;
        k += 1;
        let now = Instant::now();
        if now > at_most || (k.unsigned_abs() >= budget.warmup() && now > at_least) {
            break;
        }
    }
    let end = Instant::now() + budget.echo_time;
    let mut rtt = histogram()?;
    let mut total_ns = 0;
    while rtt.len() < budget.iters {
        let t0 = Instant::now();
        let sum = call(k).await?;
        let t1 = Instant::now();
        check(k, sum)?;
        k += 1;
        let ns = (t1 - t0).as_nanos();
        record(&mut rtt, ns);
        total_ns += ns;
        if t1 > end {
            break;
        }
    }
    let mean_ns = total_ns as f64 / rtt.len().max(1) as f64;
    Ok(Timed {
        rtt,
        total_ns,
        per_s: 1e9 / mean_ns,
    })
}

/// One task's share of [`in_flight`].
struct Share {
    rtt: Histogram<u64>,
    total_ns: u128,
    /// When its last timed call was answered.
    last: Option<Instant>,
}

/// `tasks` tasks on this runtime, each calling `add` through its clone of `client` in a loop,
/// so `tasks` calls are in flight. The first tenth of the echo time warms up; calls started
/// after it are timed (each from its start to its answer) until the echo time ends or
/// `budget.iters` calls in all. Calls/s: timed calls / (last answer - end of warm-up).
///
/// The tasks call back to back, as a user's would: the client itself lets the others run
/// after each send and after each answer it hands on.
pub(crate) async fn in_flight(
    budget: &Budget,
    tasks: usize,
    client: &AdderClient,
) -> Result<Timed> {
    let start = Instant::now();
    let timed_from = start + budget.echo_time / 10;
    let end = start + budget.echo_time;
    let claimed = Arc::new(AtomicU64::new(0));
    let iters = budget.iters;
    let mut handles = Vec::with_capacity(tasks);
    for t in 0..tasks {
        let client = client.clone();
        let claimed = Arc::clone(&claimed);
        handles.push(tokio::spawn(async move {
            let mut share = Share {
                rtt: histogram()?,
                total_ns: 0,
                last: None,
            };
            // Disjoint arguments per task, so a mixed-up answer fails the check.
            let mut k = i64::try_from(t).context("task index")? << 40;
            loop {
                let t0 = Instant::now();
                if t0 > end {
                    break;
                }
                let sum = client.add(k, 1).await?;
                let t1 = Instant::now();
                check(k, sum)?;
                k += 1;
                if t0 >= timed_from {
                    // Relaxed: a count; the histograms are joined after the tasks end.
                    if claimed.fetch_add(1, Ordering::Relaxed) >= iters {
                        break;
                    }
                    let ns = (t1 - t0).as_nanos();
                    record(&mut share.rtt, ns);
                    share.total_ns += ns;
                    share.last = Some(t1);
                }
            }
            anyhow::Ok(share)
        }));
    }
    let mut rtt = histogram()?;
    let mut total_ns = 0;
    let mut last = timed_from;
    for handle in handles {
        let share = handle.await.context("a calling task panicked")??;
        rtt.add(&share.rtt).context("joining histograms")?;
        total_ns += share.total_ns;
        last = last.max(share.last.unwrap_or(timed_from));
    }
    let wall = (last - timed_from).max(Duration::from_nanos(1));
    let per_s = rtt.len() as f64 / wall.as_secs_f64();
    Ok(Timed {
        rtt,
        total_ns,
        per_s,
    })
}

/// Starts a worker `n` times (after one untimed start) and times each from the call of
/// `Worker::spawn_with` to the answer of its first `add`; stops each (not timed) before the
/// next.
pub(crate) async fn spawns(
    n: u64,
    command: impl Fn() -> Command,
    config: &WorkerConfig,
) -> Result<Timed> {
    let mut rtt = histogram()?;
    let mut total_ns = 0;
    for i in 0..=n {
        let t0 = Instant::now();
        let worker = Worker::spawn_with(command(), config.clone())
            .await
            .context("spawning the worker")?;
        let typed = AdderClient::new(worker.client());
        let k = i64::try_from(i).context("spawn count")?;
        let sum = typed.add(k, 1).await.context("the first call")?;
        let ns = t0.elapsed().as_nanos();
        check(k, sum)?;
        drop(typed);
        stop(worker).await?;
        if i > 0 {
            record(&mut rtt, ns);
            total_ns += ns;
        }
    }
    Ok(Timed {
        rtt,
        total_ns,
        per_s: 0.0,
    })
}

/// Stops a worker and checks it exited with success (its `serve` returned `Ok`).
pub(crate) async fn stop(worker: Worker) -> Result<()> {
    let status = worker.stop().await.context("stopping the worker")?;
    if let Some(status) = status {
        ensure!(status.success(), "the worker exited with {status}");
    }
    Ok(())
}
