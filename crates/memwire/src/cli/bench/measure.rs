//! The harness: one run of a case at one size and payload mode, timed.
//!
//! Echo phase: spawn the peer, warm up, then time up to `iters` round trips one by one into an
//! hdrhistogram, within a time budget. Sink phase (cases that stream): spawn a fresh peer,
//! wait until it reads, send messages back to back for a time budget, and divide the count the
//! peer acknowledges by the time until its acknowledgement. [`Session`] holds one phase's
//! segment and peer. A case that [blocks](Case::blocks) is interleaved with `floor-futex`
//! (the issue asks that of `block`, so both see the same machine load): one session's `run`
//! nests inside the other's, and the echo phase alternates chunks of [`CHUNK`] round trips on
//! the two endpoints. A case that [spins](Case::spins) is interleaved with `floor-spin` in
//! [`SEGMENTS`] alternating sessions of each, each with its own peer and warm-up (and, for a
//! touched payload, with `touch-floor` too).

use std::fmt;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use hdrhistogram::Histogram;
use memwire::shm::{Access, Mapping, MemfdSegment, Segment};

use super::baseline::{Floor, PEER_TIMEOUT, TouchFloor};
use super::case::{Case, Launcher, Parent, Payload, Peer, Role, Run};

/// Round trips per chunk when two cases are interleaved: with futex round trips of ~25 µs, a
/// chunk is a few milliseconds, far shorter than a change of machine load, and the clock
/// reads between chunks are negligible.
const CHUNK: u64 = 100;

/// Sessions of a spinning case, alternating with as many of `floor-spin`: each a quarter of
/// the echo budget, short enough that the two mostly see the same placement of the vCPUs.
pub(crate) const SEGMENTS: u32 = 4;

/// How much each run may do.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    /// Round trips to time, at most.
    pub(crate) iters: u64,
    /// Time for the echo phase, warm-up included.
    pub(crate) echo_time: Duration,
    /// Time for the sink phase.
    pub(crate) stream_time: Duration,
}

impl Budget {
    /// The budget of a bench timing one operation at a time (no streamed phase): at most
    /// `iters` (default 100 000; 10 000 with `quick`) in 3 s (0.35 s with `quick`) a case.
    pub(crate) fn one_at_a_time(quick: bool, iters: Option<u64>) -> Self {
        let (default_iters, echo_time) = if quick {
            (10_000, Duration::from_millis(350))
        } else {
            (100_000, Duration::from_secs(3))
        };
        Self {
            iters: iters.unwrap_or(default_iters),
            echo_time,
            stream_time: Duration::ZERO,
        }
    }

    /// Round trips before timing starts: a tenth of `iters`, at least 10, at most 10 000, and
    /// at most a tenth of the echo time.
    pub(crate) fn warmup(&self) -> u64 {
        (self.iters / 10).clamp(10, 10_000)
    }
}

/// What one run measured.
pub(crate) struct Measured {
    /// Round-trip times in nanoseconds.
    pub(crate) rtt: Histogram<u64>,
    /// Sum of the timed round trips, in nanoseconds.
    pub(crate) total_ns: u128,
    /// `(messages, time)` of the sink phase, for cases that stream.
    pub(crate) stream: Option<(u64, Duration)>,
    /// Wake syscalls per message (a round trip is two messages), where the case counts them.
    pub(crate) wake_syscalls_per_msg: Option<f64>,
    /// For a case that blocks: the round-trip p50 of `floor-futex`, timed in the chunks
    /// alternating with this case's.
    pub(crate) floor_futex_p50_ns: Option<u64>,
    /// For a case that spins: the round-trip p50 of `floor-spin`, timed in the segments
    /// alternating with this case's.
    pub(crate) floor_spin_p50_ns: Option<u64>,
    /// For a case that spins, touched: the round-trip p50 of `touch-floor` at this size, timed
    /// in the same segments.
    pub(crate) touch_floor_p50_ns: Option<u64>,
}

/// Round trips of one echo phase.
struct Echo {
    rtt: Histogram<u64>,
    total_ns: u128,
    /// Messages both ways, warm-up included (a round trip is two).
    messages: u64,
}

impl Echo {
    fn new() -> Result<Self> {
        Ok(Self {
            rtt: Histogram::new_with_bounds(1, 100_000_000_000, 3)
                .context("creating a histogram")?,
            total_ns: 0,
            messages: 0,
        })
    }

    /// Untimed round trips: at least [`Budget::warmup`] of them *and* a tenth of the echo
    /// time, whichever lasts longer (capped at a fifth of the echo time). A count alone is a
    /// few milliseconds for the fast cases, too short for an idle peer CPU to come up to speed:
    /// the first row of a run then measured 2× its steady state.
    fn warm_up(&mut self, endpoint: &mut dyn Parent, budget: &Budget) -> Result<()> {
        let start = Instant::now();
        let at_least = start + budget.echo_time / 10;
        let at_most = start + budget.echo_time / 5;
        let mut done = 0;
        loop {
            endpoint.round_trip()?;
            self.messages += 2;
            done += 1;
            let now = Instant::now();
            if now > at_most || (done >= budget.warmup() && now > at_least) {
                return Ok(());
            }
        }
    }

    /// A whole echo phase on `endpoint` within `budget`: the warm-up, then up to
    /// `budget.iters` timed round trips.
    fn timed_phase(&mut self, endpoint: &mut dyn Parent, budget: &Budget) -> Result<()> {
        let end = Instant::now() + budget.echo_time;
        self.warm_up(endpoint, budget)?;
        self.time(endpoint, budget.iters, end)?;
        Ok(())
    }

    /// Times up to `n` round trips; stops early after the first that ends past `end`. Returns
    /// whether it stopped early.
    fn time(&mut self, endpoint: &mut dyn Parent, n: u64, end: Instant) -> Result<bool> {
        for _ in 0..n {
            let t0 = Instant::now();
            endpoint.round_trip()?;
            let t1 = Instant::now();
            let ns = (t1 - t0).as_nanos();
            self.rtt
                .saturating_record(u64::try_from(ns).unwrap_or(u64::MAX));
            self.total_ns += ns;
            self.messages += 2;
            if t1 > end {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Tells an echo peer to stop.
fn finish_echo(endpoint: &mut dyn Parent) -> Result<()> {
    ensure!(
        endpoint.finish()?.is_none(),
        "an echo peer acknowledged a count"
    );
    Ok(())
}

/// Runs `case` at `size` bytes in `payload` mode; the peer is pinned to `peer_cpu`.
pub(crate) fn measure(
    case: &'static dyn Case,
    size: usize,
    payload: Payload,
    budget: &Budget,
    peer_cpu: Option<usize>,
) -> Result<Measured> {
    measure_with(case, size, payload, budget, peer_cpu, case.spins())
}

/// [`measure`], with a spinning case's interleaved `floor-spin` (and `touch-floor`) only when
/// `spin_floor`: a caller that interleaves the case with something else itself passes `false`.
pub(crate) fn measure_with(
    case: &'static dyn Case,
    size: usize,
    payload: Payload,
    budget: &Budget,
    peer_cpu: Option<usize>,
    spin_floor: bool,
) -> Result<Measured> {
    let echo = Run {
        size,
        payload,
        role: Role::Echo,
    };
    let mut ours = Echo::new()?;
    let mut floor = None;
    let mut spin_floor_p50 = None;
    let mut touch_floor_p50 = None;
    let wakes = if case.blocks() {
        let futex_run = Run {
            payload: Payload::Untouched,
            ..echo
        };
        let mut futex = Echo::new()?;
        let wakes = Session::start(case, &echo, peer_cpu)?.run(|endpoint| {
            Session::start(&Floor::Futex, &futex_run, peer_cpu)?.run(|futex_endpoint| {
                let end = Instant::now() + budget.echo_time;
                ours.warm_up(endpoint, budget)?;
                futex.warm_up(futex_endpoint, budget)?;
                while ours.rtt.len() < budget.iters {
                    let n = CHUNK.min(budget.iters - ours.rtt.len());
                    let late = ours.time(endpoint, n, end)?;
                    let late = futex.time(futex_endpoint, n, end)? || late;
                    if late {
                        break;
                    }
                }
                finish_echo(futex_endpoint)
            })?;
            finish_echo(endpoint)
        })?;
        floor = Some(futex.rtt.value_at_quantile(0.5));
        wakes
    } else if spin_floor {
        let floor_run = Run {
            payload: Payload::Untouched,
            ..echo
        };
        let segment = Budget {
            iters: budget.iters.div_ceil(u64::from(SEGMENTS)),
            echo_time: budget.echo_time / SEGMENTS,
            ..*budget
        };
        let mut floor_echo = Echo::new()?;
        // A touched row is also compared with touching the payload in one process.
        let mut touch_echo = (payload == Payload::Touched).then(Echo::new).transpose()?;
        let mut wakes = None;
        for _ in 0..SEGMENTS {
            let w = Session::start(case, &echo, peer_cpu)?.run(|endpoint| {
                ours.timed_phase(endpoint, &segment)?;
                finish_echo(endpoint)
            })?;
            wakes = w.map(|w| w + wakes.unwrap_or(0));
            Session::start(&Floor::Spin, &floor_run, peer_cpu)?.run(|endpoint| {
                floor_echo.timed_phase(endpoint, &segment)?;
                finish_echo(endpoint)
            })?;
            if let Some(touch) = touch_echo.as_mut() {
                Session::start(&TouchFloor, &echo, peer_cpu)?.run(|endpoint| {
                    touch.timed_phase(endpoint, &segment)?;
                    finish_echo(endpoint)
                })?;
            }
        }
        spin_floor_p50 = Some(floor_echo.rtt.value_at_quantile(0.5));
        touch_floor_p50 = touch_echo.map(|t| t.rtt.value_at_quantile(0.5));
        wakes
    } else {
        Session::start(case, &echo, peer_cpu)?.run(|endpoint| {
            ours.timed_phase(endpoint, budget)?;
            finish_echo(endpoint)
        })?
    };
    let stream = if case.streams() {
        let sink = Run {
            role: Role::Sink,
            ..echo
        };
        let mut result = (0, Duration::ZERO);
        Session::start(case, &sink, peer_cpu)?.run(|endpoint| {
            endpoint.ready()?;
            let start = Instant::now();
            let mut sent = 0u64;
            // At most ten times the round trips, so `--iters` bounds a quick test's streams too.
            while sent < budget.iters.saturating_mul(10) {
                endpoint.send()?;
                sent += 1;
                if sent.is_multiple_of(16) && start.elapsed() > budget.stream_time {
                    break;
                }
            }
            let counted = endpoint.finish()?.context("the sink peer sent no count")?;
            let elapsed = start.elapsed();
            ensure!(
                counted == sent,
                "sent {sent} messages, the peer counted {counted}"
            );
            result = (sent, elapsed);
            Ok(())
        })?;
        Some(result)
    } else {
        None
    };
    Ok(Measured {
        total_ns: ours.total_ns,
        stream,
        wake_syscalls_per_msg: wakes.map(|w| w as f64 / ours.messages.max(1) as f64),
        floor_futex_p50_ns: floor,
        floor_spin_p50_ns: spin_floor_p50,
        touch_floor_p50_ns: touch_floor_p50,
        rtt: ours.rtt,
    })
}

/// One phase: the segment, the parent's endpoint and the peer process.
struct Session {
    what: String,
    shm: Mapping,
    segment: MemfdSegment,
    case: &'static dyn Case,
    run: Run,
    peer_cpu: Option<usize>,
}

impl Session {
    fn start(case: &'static dyn Case, run: &Run, peer_cpu: Option<usize>) -> Result<Self> {
        let segment = MemfdSegment::create("memwire-bench", case.segment_len(run.size))
            .context("creating the benchmark segment")?;
        let shm = segment.map(Access::ReadWrite)?;
        Ok(Self {
            what: format!(
                "{} at {} B, {}, {}",
                case.name(),
                run.size,
                run.payload.as_str(),
                run.role.as_str()
            ),
            shm,
            segment,
            case,
            run: *run,
            peer_cpu,
        })
    }

    /// Sets the case up, spawns its peer, runs `body` on the endpoint, and waits for the peer
    /// to exit. Returns the endpoint's wake-syscall count.
    fn run(self, body: impl FnOnce(&mut dyn Parent) -> Result<()>) -> Result<Option<u64>> {
        let launcher = Launcher {
            case: self.case.name(),
            run: self.run,
            segment: &self.segment,
            cpu: self.peer_cpu,
        };
        let setup = self
            .case
            .parent(&self.shm, &self.run, &launcher)
            .map_err(|e| self.failed(e, None))?;
        let mut endpoint = setup.endpoint;
        let mut peer = match setup.peer {
            Peer::None => None,
            Peer::Wired(wiring) => Some(
                launcher
                    .spawn_wired(wiring)
                    .map_err(|e| self.failed(e, None))?,
            ),
            Peer::Spawned(child) => Some(child),
        };
        let outcome = body(endpoint.as_mut());
        let status = match peer.as_mut() {
            Some(child) if outcome.is_ok() => Some(reap(child)),
            Some(child) => {
                // The body failed: the peer may still be waiting for it.
                let _ = child.kill();
                Some(child.wait().context("waiting for the peer"))
            }
            None => None,
        };
        let status = status.transpose();
        match (outcome, status) {
            (Ok(()), Ok(None)) => Ok(endpoint.wake_syscalls()),
            (Ok(()), Ok(Some(s))) if s.success() => Ok(endpoint.wake_syscalls()),
            (Ok(()), Ok(Some(s))) => Err(self.failed(anyhow::anyhow!("the peer failed"), Some(s))),
            (Err(e), Ok(s)) => Err(self.failed(e, s)),
            (_, Err(e)) => Err(self.failed(e, None)),
        }
    }

    fn failed(&self, cause: anyhow::Error, peer: Option<ExitStatus>) -> anyhow::Error {
        anyhow::Error::new(RunFailed {
            what: self.what.clone(),
            peer,
            cause,
        })
    }
}

/// Waits for a peer that was told to stop; kills it if it does not exit in time.
pub(crate) fn reap(child: &mut Child) -> Result<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().context("waiting for the peer")? {
            return Ok(status);
        }
        if start.elapsed() > PEER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the peer did not exit within {PEER_TIMEOUT:?} of being told to stop");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A run that failed, with the peer's exit status. Its message carries the cause, but the
/// chain is cut (no `source`): a broken pipe here is the peer's, and `main` must not take it
/// for a closed stdout, which it ignores.
#[derive(Debug)]
struct RunFailed {
    what: String,
    peer: Option<ExitStatus>,
    cause: anyhow::Error,
}

impl fmt::Display for RunFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "benchmark run {}: {:#}", self.what, self.cause)?;
        if let Some(status) = self.peer {
            write!(f, " (peer: {status})")?;
        }
        Ok(())
    }
}

impl std::error::Error for RunFailed {}
