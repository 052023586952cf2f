//! Timing blocking operations: one at a time or in batches ([`ops`]), and set → wake-up
//! ([`wakes`]) of a waiter proven asleep ([`Sleeper`]). The async remote cases use `bench
//! rpc`'s timing.

use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use hdrhistogram::Histogram;

use crate::cli::bench::measure::Budget;
use crate::cli::bench::rpc::timing::Timed;

/// Operations under 1 µs are timed this many at a time: reading the clock costs tens of ns.
pub(crate) const BATCH: u64 = 1_000;

/// The pause before each sample of [`after_pause`] and of a cold [`wakes`]: longer than the
/// store link's spin, so the server's end of the link sleeps too.
pub(crate) const SETTLE: Duration = Duration::from_micros(50);

/// How long a waiter may take to report a wake-up before the case fails.
const WAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).context("creating a histogram")
}

fn record(h: &mut Histogram<u64>, ns: u128) {
    h.saturating_record(u64::try_from(ns).unwrap_or(u64::MAX).max(1));
}

/// Calls `op` untimed (warm-up: at least [`Budget::warmup`] samples and a tenth of the echo
/// time, at most a fifth), then times samples of `batch` calls each, up to `budget.iters`
/// samples or the echo time. A sample records its time / `batch`.
pub(crate) fn ops(
    budget: &Budget,
    batch: u64,
    mut op: impl FnMut() -> Result<()>,
) -> Result<Timed> {
    let start = Instant::now();
    let (at_least, at_most) = (start + budget.echo_time / 10, start + budget.echo_time / 5);
    let mut warm = 0u64;
    loop {
        for _ in 0..batch {
            op()?;
        }
        warm += 1;
        let now = Instant::now();
        if now > at_most || (warm >= budget.warmup() && now > at_least) {
            break;
        }
    }
    let end = Instant::now() + budget.echo_time;
    let mut rtt = histogram()?;
    let mut batches_ns = 0u128;
    while rtt.len() < budget.iters {
        let t0 = Instant::now();
        for _ in 0..batch {
            op()?;
        }
        let t1 = Instant::now();
        let ns = (t1 - t0).as_nanos();
        record(&mut rtt, ns / u128::from(batch));
        batches_ns += ns;
        if t1 > end {
            break;
        }
    }
    let total_ns = batches_ns / u128::from(batch);
    let mean_ns = batches_ns as f64 / (rtt.len().max(1) * batch) as f64;
    Ok(Timed {
        rtt,
        total_ns,
        per_s: 1e9 / mean_ns,
    })
}

/// A thread of this process that waits for a wake-up, watched through
/// `/proc/self/task/TID/stat` so that a sample starts only once it sleeps in the kernel.
#[derive(Debug)]
pub(crate) struct Sleeper {
    stat: PathBuf,
}

impl Sleeper {
    /// The calling thread.
    pub(crate) fn this_thread() -> Self {
        let tid = rustix::thread::gettid().as_raw_nonzero().get();
        Self {
            stat: PathBuf::from(format!("/proc/self/task/{tid}/stat")),
        }
    }

    /// Polls until the thread sleeps (state `S`: blocked in a syscall such as `read`), for
    /// at most [`WAKE_TIMEOUT`].
    fn wait_asleep(&self) -> Result<()> {
        let give_up = Instant::now() + WAKE_TIMEOUT;
        loop {
            let stat = std::fs::read(&self.stat)
                .with_context(|| format!("reading {}", self.stat.display()))?;
            if state(&stat) == Some(b'S') {
                return Ok(());
            }
            if Instant::now() > give_up {
                bail!("the waiter did not go back to sleep");
            }
            std::thread::yield_now();
        }
    }
}

/// The state letter of a `/proc/.../stat` line: the first field after the command name, which
/// is in parentheses and may itself hold spaces and parentheses.
fn state(stat: &[u8]) -> Option<u8> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    stat.get(close + 2).copied()
}

/// Times set → wake-up: before each sample, waits until `waiter` sleeps in the kernel, then
/// pauses `pause` (zero: none), calls `set(k)` and waits for the instant the waiter reports on
/// `woke`; the sample is from just before `set` to that instant.
pub(crate) fn wakes(
    budget: &Budget,
    waiter: &Sleeper,
    pause: Duration,
    mut set: impl FnMut(u64) -> Result<()>,
    woke: &Receiver<Instant>,
) -> Result<Timed> {
    samples(budget, |k| {
        waiter.wait_asleep()?;
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        let t0 = Instant::now();
        set(k)?;
        let t1 = woke
            .recv_timeout(WAKE_TIMEOUT)
            .context("the waiter did not wake up")?;
        Ok(t1.saturating_duration_since(t0).as_nanos())
    })
}

/// Times `op(k)` alone, each after a [`SETTLE`] pause: the set inside a cold wake-up sample,
/// made while the server's end of the link sleeps.
pub(crate) fn after_pause(budget: &Budget, mut op: impl FnMut(u64) -> Result<()>) -> Result<Timed> {
    samples(budget, |k| {
        std::thread::sleep(SETTLE);
        let t0 = Instant::now();
        op(k)?;
        Ok(t0.elapsed().as_nanos())
    })
}

/// Samples of `sample(k)`, each its own measure in ns. Warm-up: up to 100 samples within a
/// tenth of the echo time.
fn samples(budget: &Budget, mut one: impl FnMut(u64) -> Result<u128>) -> Result<Timed> {
    let mut k = 0u64;
    let at_most = Instant::now() + budget.echo_time / 10;
    while k < budget.warmup().min(100) && Instant::now() < at_most {
        one(k)?;
        k += 1;
    }
    let end = Instant::now() + budget.echo_time;
    let mut rtt = histogram()?;
    let mut total_ns = 0u128;
    while rtt.len() < budget.iters {
        let ns = one(k)?;
        k += 1;
        record(&mut rtt, ns);
        total_ns += ns;
        if Instant::now() > end {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_read_after_the_last_parenthesis() {
        assert_eq!(state(b"42 (memwire) S 1 2 3"), Some(b'S'));
        assert_eq!(state(b"42 (a) b) (c) R 1 2 3"), Some(b'R'));
        assert_eq!(state(b"42 (cut"), None);
        assert_eq!(state(b"42 (x)"), None);
    }

    #[test]
    fn a_thread_blocked_in_recv_is_seen_asleep() {
        let (sleeper_tx, sleeper_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let waiter = std::thread::spawn(move || {
            sleeper_tx.send(Sleeper::this_thread()).unwrap();
            stop_rx.recv().unwrap();
        });
        let sleeper = sleeper_rx.recv().unwrap();
        sleeper.wait_asleep().unwrap();
        let stat = std::fs::read(&sleeper.stat).unwrap();
        assert_eq!(state(&stat), Some(b'S'));
        stop_tx.send(()).unwrap();
        waiter.join().unwrap();
    }
}
