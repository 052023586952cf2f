//! Waiting: spin, then sleep on a futex (or, under tokio, await the doorbell: `bell.rs`), per
//! the link's [`WaitStrategy`].
//!
//! Spinning yields the CPU every [`YIELD_EVERY`] turns: on a 2-vCPU machine two spinners that
//! share a CPU would otherwise pass one message per scheduler slice.

use std::time::{Duration, Instant};

use crate::config::WaitStrategy;
use crate::error::{Error, Result};
use crate::link::{Counters, Shared};
use crate::ring::WaitKind;

/// Spins between yields: a few tens of µs, many round trips of a busy peer on another CPU
/// (~0.35 µs each here, see BENCHMARKS.md), so a pinned pair never yields, yet a peer that
/// shares our CPU gets to run long before a scheduler slice ends. Yielding more often costs a
/// syscall a turn and can feed itself (measured: 64 B spin round trips went bimodal).
const YIELD_EVERY: u32 = 4096;

/// The next step of a wait, per [`Waiter::turn`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Check again after a pause instruction.
    Spin,
    /// Check again after giving the CPU away (the thread, or the task under tokio).
    Yield,
    /// Stop spinning: declare the sleep and block.
    Sleep,
}

/// Longest single futex sleep before a waiter re-checks its link (see [`Waiter::sleep`]).
const SLEEP_SLICE: Duration = Duration::from_secs(1);

/// One wait: when to stop spinning and when to give up. Reads the clock only when a timeout or
/// a spin budget needs it, and only once it has to wait (a call that finds its message at once,
/// or a pure spin without timeout, costs no clock read).
pub(crate) struct Waiter {
    /// When the first wait began; `None` until then.
    start: Option<Instant>,
    spins: u32,
    strategy: WaitStrategy,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
}

impl Waiter {
    /// `timeout: None` waits forever; `Some(ZERO)` does not wait at all.
    pub(crate) fn new(strategy: WaitStrategy, timeout: Option<Duration>) -> Self {
        Self {
            start: None,
            spins: 0,
            strategy,
            deadline: None,
            timeout,
        }
    }

    /// The start of the wait, read from the clock the first time it is needed.
    fn start(&mut self) -> Instant {
        *self.start.get_or_insert_with(|| {
            let now = Instant::now();
            self.deadline = self.timeout.and_then(|t| now.checked_add(t));
            now
        })
    }

    /// Fails with `WouldBlock` (no wait asked) or `Timeout` once the deadline has passed.
    /// Without a timeout it reads no clock.
    pub(crate) fn check_deadline(&mut self) -> Result<()> {
        match self.timeout {
            None => Ok(()),
            Some(t) if t.is_zero() => Err(Error::WouldBlock),
            Some(t) => {
                self.start();
                match self.deadline {
                    Some(d) if Instant::now() >= d => Err(Error::Timeout(t)),
                    _ => Ok(()),
                }
            }
        }
    }

    /// Spins so far (wrapping).
    #[cfg(feature = "tokio")]
    pub(crate) fn spins(&self) -> u32 {
        self.spins
    }

    /// What the strategy says to do next: spin once more, yield the CPU (every
    /// [`YIELD_EVERY`] spins), or sleep now.
    pub(crate) fn turn(&mut self) -> Turn {
        let spinning = match self.strategy {
            WaitStrategy::Spin => true,
            WaitStrategy::SpinThenBlock { spin } => self.start().elapsed() < spin,
            WaitStrategy::Block => false,
        };
        if !spinning {
            return Turn::Sleep;
        }
        self.spins = self.spins.wrapping_add(1);
        if self.spins.is_multiple_of(YIELD_EVERY) {
            Turn::Yield
        } else {
            Turn::Spin
        }
    }

    /// Spins (or yields the thread) once more if the strategy says so; `false` means: sleep
    /// now.
    pub(crate) fn spin(&mut self) -> bool {
        match self.turn() {
            Turn::Spin => std::hint::spin_loop(),
            Turn::Yield => std::thread::yield_now(),
            Turn::Sleep => return false,
        }
        true
    }

    /// Sleeps on the state word at `word` (already declared with `prepare_sleep`) until woken,
    /// the deadline, or the link going away.
    ///
    /// The sleep is cut into slices of at most [`SLEEP_SLICE`]: the state word lives in memory
    /// the peer can write, so a hostile peer we have just cut off could put our sleep
    /// declaration back after `mark_gone` cleared it and woke us. Waking once a slice to
    /// re-check costs an idle sleeper one syscall a second and bounds that hang.
    pub(crate) fn sleep(&self, shared: &Shared, word: usize) -> Result<()> {
        let remaining = self
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        let slice = remaining.map_or(SLEEP_SLICE, |r| r.min(SLEEP_SLICE));
        Counters::add(&shared.counters.sleeps, 1);
        shared
            .map
            .futex_wait(word, WaitKind::Futex.word(), Some(slice))
            .map_err(Error::from)?;
        Ok(())
    }
}
