//! The circuit breaker: stop sending calls to a peer that keeps failing, and find out cheaply
//! when it is back.
//!
//! ```text
//!            `failure_threshold` consecutive failures
//!   Closed ───────────────────────────────────────────▶ Open
//!     ▲                                                 │  ▲
//!     │ the probe succeeds        `cool_down` elapses   │  │ the probe fails
//!     │                                                 ▼  │
//!     └──────────────────────────────────────────────── HalfOpen (one probe in flight)
//! ```
//!
//! - **Closed**: every call is admitted. A success resets the count of consecutive failures; a
//!   failure that [`counts`] increments it, and the breaker opens when it reaches
//!   [`BreakerConfig::failure_threshold`].
//! - **Open**: every call is refused with [`Error::CircuitOpen`] (nothing is sent) until
//!   [`BreakerConfig::cool_down`] has passed since it opened.
//! - **HalfOpen**: exactly one call, the *probe*, is admitted; the others are still refused
//!   until it finishes. A successful probe closes the breaker; a failed probe opens it again for
//!   another cool-down. A probe whose outcome does not count (it was cancelled, say) tells
//!   nothing: the next call becomes the probe. A probe that never reports (its [`Admission`] was
//!   dropped without [`CircuitBreaker::record`]) is given up after one cool-down, and a new
//!   probe is admitted then, so a lost probe cannot keep the breaker shut for good.
//!
//! ```
//! use memwire_rpc::{BreakerConfig, CircuitBreaker, Error, ErrorKind};
//!
//! let breaker = CircuitBreaker::new(BreakerConfig { failure_threshold: 2, ..Default::default() });
//! for _ in 0..2 {
//!     let admission = breaker.admit()?;
//!     // ... send the call; it times out ...
//!     breaker.record(admission, Err(ErrorKind::Timeout));
//! }
//! assert!(matches!(breaker.admit(), Err(Error::CircuitOpen { failures: 2, .. })));
//! # Ok::<(), Error>(())
//! ```
//!
//! # Which failures count
//!
//! A failure counts when it says something about the peer or the link ([`counts`]):
//!
//! | kind | counts | why |
//! | --- | --- | --- |
//! | `Timeout` | yes | the peer did not answer in time |
//! | `PeerGone` | yes | the peer died |
//! | `Protocol` | yes | the peer sent garbage |
//! | `Transport` | yes | the link below failed |
//! | `Remote` | yes | the handler failed |
//! | `Cancelled` | no | the caller gave up: nothing is known of the peer |
//! | `UnknownMethod` | no | a caller's mistake |
//! | `BadArguments` | no | a caller's mistake |
//! | `CircuitOpen` | no | nothing was sent |
//!
//! A failure that does not count leaves the count where it was; it does not reset it either.
//!
//! # Late outcomes
//!
//! Every [`Admission`] remembers the breaker's *epoch*, which changes each time the breaker
//! opens, half-opens or closes. An outcome recorded for an admission of an earlier epoch (a call
//! sent before the breaker opened, finishing after it) is ignored: it describes the peer as it
//! was, and only the probe decides when the breaker closes.
//!
//! # Cost
//!
//! One uncontended mutex lock per [`admit`](CircuitBreaker::admit) and per
//! [`record`](CircuitBreaker::record); no allocation.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind};

/// How the breaker weighs failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive counted failures that open the breaker. Default 5; 0 acts as 1.
    pub failure_threshold: u32,
    /// How long the breaker stays open before it lets a probe through. Default 5 s.
    pub cool_down: Duration,
}

impl BreakerConfig {
    /// Failures that open the breaker by default.
    pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
    /// Default cool-down: long enough for a restarted worker to come up, short enough that a
    /// caller does not notice.
    pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(5);
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: Self::DEFAULT_FAILURE_THRESHOLD,
            cool_down: Self::DEFAULT_COOL_DOWN,
        }
    }
}

/// Whether a failure of this kind counts towards opening the breaker (see the [module
/// docs](self)).
#[must_use]
pub const fn counts(kind: ErrorKind) -> bool {
    match kind {
        ErrorKind::Timeout
        | ErrorKind::PeerGone
        | ErrorKind::Protocol
        | ErrorKind::Transport
        | ErrorKind::Remote => true,
        ErrorKind::Cancelled
        | ErrorKind::UnknownMethod
        | ErrorKind::BadArguments
        | ErrorKind::CircuitOpen => false,
    }
}

/// What the breaker looks like from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused.
    Open {
        /// Time until a probe is let through.
        retry_in: Duration,
    },
    /// The cool-down is over: the next call (or the one in flight) is the probe.
    HalfOpen,
}

/// Leave to send one call, from [`CircuitBreaker::admit`]; hand it back to
/// [`CircuitBreaker::record`] with the call's outcome.
#[derive(Debug)]
#[must_use = "record the call's outcome with CircuitBreaker::record"]
pub struct Admission {
    /// The breaker's epoch when this call was admitted.
    epoch: u64,
    /// Whether this call is the half-open probe.
    probe: bool,
}

impl Admission {
    /// Whether this call is the probe that decides if the breaker closes.
    #[must_use]
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

/// A circuit breaker, shared by every call of one handle (see the [module docs](self)).
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    mode: Mode,
    /// Consecutive counted failures; reset by a success, never decremented otherwise.
    failures: u32,
    /// Changes on every change of `mode`, so outcomes of an earlier mode are told apart.
    epoch: u64,
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Closed,
    Open {
        /// When the cool-down ends.
        until: Instant,
    },
    HalfOpen {
        /// When the probe in flight is given up, if one is in flight.
        probe_deadline: Option<Instant>,
    },
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self::new(BreakerConfig::default())
    }
}

impl CircuitBreaker {
    /// A closed breaker.
    #[must_use]
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config: BreakerConfig {
                failure_threshold: config.failure_threshold.max(1),
                ..config
            },
            inner: Mutex::new(Inner {
                mode: Mode::Closed,
                failures: 0,
                epoch: 0,
            }),
        }
    }

    /// The configuration (with a threshold of at least 1).
    #[must_use]
    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    /// Asks leave to send one call: `Err(Error::CircuitOpen)` when the breaker is open, or
    /// half-open with its probe in flight.
    pub fn admit(&self) -> Result<Admission, Error> {
        self.admit_at(Instant::now())
    }

    /// Records the outcome of an admitted call.
    pub fn record(&self, admission: Admission, outcome: Result<(), ErrorKind>) {
        self.record_at(admission, outcome, Instant::now());
    }

    /// The breaker's state now.
    #[must_use]
    pub fn state(&self) -> BreakerState {
        self.state_at(Instant::now())
    }

    /// Whether the breaker has tripped and not yet recovered (open or half-open).
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.state() != BreakerState::Closed
    }

    /// Consecutive counted failures so far (0 after a success).
    #[must_use]
    pub fn consecutive_failures(&self) -> u32 {
        self.lock().failures
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // No code panics while holding the lock, and every update leaves `Inner` consistent, so
        // a poisoned lock still guards a valid state.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn admit_at(&self, now: Instant) -> Result<Admission, Error> {
        let mut inner = self.lock();
        match inner.mode {
            Mode::Closed => Ok(Admission {
                epoch: inner.epoch,
                probe: false,
            }),
            Mode::Open { until } if now < until => Err(Error::CircuitOpen {
                failures: inner.failures,
                retry_in: until - now,
            }),
            Mode::HalfOpen {
                probe_deadline: Some(deadline),
            } if now < deadline => Err(Error::CircuitOpen {
                failures: inner.failures,
                // The probe may well finish sooner: this is an upper bound.
                retry_in: deadline - now,
            }),
            // The cool-down is over, or the probe slot is free, or the probe was lost: this
            // call is the (new) probe.
            Mode::Open { .. } | Mode::HalfOpen { .. } => {
                inner.set_mode(Mode::HalfOpen {
                    probe_deadline: Some(now + self.config.cool_down),
                });
                Ok(Admission {
                    epoch: inner.epoch,
                    probe: true,
                })
            }
        }
    }

    fn record_at(&self, admission: Admission, outcome: Result<(), ErrorKind>, now: Instant) {
        let mut inner = self.lock();
        if admission.epoch != inner.epoch {
            return;
        }
        let counted = match outcome {
            Ok(()) => false,
            Err(kind) if counts(kind) => true,
            Err(_) => {
                if admission.probe {
                    // The probe told nothing: free the slot for the next call.
                    inner.set_mode(Mode::HalfOpen {
                        probe_deadline: None,
                    });
                }
                return;
            }
        };
        if counted {
            inner.failures = inner.failures.saturating_add(1);
            if admission.probe || inner.failures >= self.config.failure_threshold {
                inner.set_mode(Mode::Open {
                    until: now + self.config.cool_down,
                });
            }
        } else {
            inner.failures = 0;
            if admission.probe {
                inner.set_mode(Mode::Closed);
            }
        }
    }

    fn state_at(&self, now: Instant) -> BreakerState {
        match self.lock().mode {
            Mode::Closed => BreakerState::Closed,
            Mode::Open { until } if now < until => BreakerState::Open {
                retry_in: until - now,
            },
            Mode::Open { .. } | Mode::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

impl Inner {
    fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
        self.epoch = self.epoch.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    const COOL: Duration = Duration::from_secs(5);

    fn breaker(threshold: u32) -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            failure_threshold: threshold,
            cool_down: COOL,
        })
    }

    /// Admits and records one call at `now`.
    fn call(b: &CircuitBreaker, now: Instant, outcome: Result<(), ErrorKind>) -> Result<(), Error> {
        let admission = b.admit_at(now)?;
        b.record_at(admission, outcome, now);
        Ok(())
    }

    fn open_retry_in(result: Result<Admission, Error>) -> Duration {
        match result {
            Err(Error::CircuitOpen { retry_in, .. }) => retry_in,
            other => panic!("expected CircuitOpen, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_documented_values() {
        let config = BreakerConfig::default();
        assert_eq!(config.failure_threshold, 5);
        assert_eq!(config.cool_down, Duration::from_secs(5));
        assert_eq!(breaker(0).config().failure_threshold, 1);
    }

    #[test]
    fn opens_at_the_threshold_of_consecutive_failures() {
        let b = breaker(3);
        let t = Instant::now();
        call(&b, t, Err(ErrorKind::Timeout)).unwrap();
        call(&b, t, Err(ErrorKind::Remote)).unwrap();
        // A success in between resets the count.
        call(&b, t, Ok(())).unwrap();
        assert_eq!(b.consecutive_failures(), 0);
        call(&b, t, Err(ErrorKind::PeerGone)).unwrap();
        call(&b, t, Err(ErrorKind::Protocol)).unwrap();
        assert_eq!(b.state_at(t), BreakerState::Closed);
        call(&b, t, Err(ErrorKind::Transport)).unwrap();
        assert_eq!(b.state_at(t), BreakerState::Open { retry_in: COOL });
        match b.admit_at(t) {
            Err(Error::CircuitOpen { failures, retry_in }) => {
                assert_eq!(failures, 3);
                assert_eq!(retry_in, COOL);
            }
            other => panic!("expected CircuitOpen, got {other:?}"),
        }
    }

    #[test]
    fn stays_open_for_the_cool_down_then_half_opens() {
        let b = breaker(1);
        let t = Instant::now();
        call(&b, t, Err(ErrorKind::Timeout)).unwrap();
        let later = t + COOL - Duration::from_millis(1);
        assert_eq!(open_retry_in(b.admit_at(later)), Duration::from_millis(1));
        assert_eq!(
            b.state_at(later),
            BreakerState::Open {
                retry_in: Duration::from_millis(1)
            }
        );
        assert_eq!(b.state_at(t + COOL), BreakerState::HalfOpen);
        let probe = b.admit_at(t + COOL).unwrap();
        assert!(probe.is_probe());
    }

    #[test]
    fn a_successful_probe_closes() {
        let b = breaker(2);
        let t = Instant::now();
        call(&b, t, Err(ErrorKind::Timeout)).unwrap();
        call(&b, t, Err(ErrorKind::Timeout)).unwrap();
        let t = t + COOL;
        let probe = b.admit_at(t).unwrap();
        // Others wait for the probe.
        assert!(b.admit_at(t).is_err());
        b.record_at(probe, Ok(()), t);
        assert_eq!(b.state_at(t), BreakerState::Closed);
        assert_eq!(b.consecutive_failures(), 0);
        let next = b.admit_at(t).unwrap();
        assert!(!next.is_probe());
        // The count starts again from zero: one failure does not reopen a threshold of 2.
        b.record_at(next, Err(ErrorKind::Timeout), t);
        assert_eq!(b.state_at(t), BreakerState::Closed);
    }

    #[test]
    fn a_failed_probe_reopens_for_another_cool_down() {
        let b = breaker(2);
        let t0 = Instant::now();
        call(&b, t0, Err(ErrorKind::Timeout)).unwrap();
        call(&b, t0, Err(ErrorKind::Timeout)).unwrap();
        let t1 = t0 + COOL + Duration::from_secs(1);
        let probe = b.admit_at(t1).unwrap();
        b.record_at(probe, Err(ErrorKind::PeerGone), t1);
        assert_eq!(b.state_at(t1), BreakerState::Open { retry_in: COOL });
        assert_eq!(b.consecutive_failures(), 3);
        assert_eq!(open_retry_in(b.admit_at(t1 + COOL / 2)), COOL / 2);
        assert!(b.admit_at(t1 + COOL).unwrap().is_probe());
    }

    #[test]
    fn only_one_probe_is_admitted_under_concurrency() {
        let b = Arc::new(breaker(1));
        let t = Instant::now();
        call(&b, t, Err(ErrorKind::Timeout)).unwrap();
        let after = t + COOL;
        let threads = 8;
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let b = Arc::clone(&b);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    b.admit_at(after)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let admitted: Vec<_> = results.into_iter().filter_map(Result::ok).collect();
        assert_eq!(admitted.len(), 1);
        assert!(admitted[0].is_probe());
    }

    #[test]
    fn failures_that_do_not_count_leave_the_count_alone() {
        let b = breaker(2);
        let t = Instant::now();
        call(&b, t, Err(ErrorKind::Timeout)).unwrap();
        for kind in [
            ErrorKind::Cancelled,
            ErrorKind::UnknownMethod,
            ErrorKind::BadArguments,
            ErrorKind::CircuitOpen,
        ] {
            assert!(!counts(kind));
            call(&b, t, Err(kind)).unwrap();
            assert_eq!(b.consecutive_failures(), 1, "{kind:?}");
            assert_eq!(b.state_at(t), BreakerState::Closed, "{kind:?}");
        }
        call(&b, t, Err(ErrorKind::Timeout)).unwrap();
        assert!(matches!(b.state_at(t), BreakerState::Open { .. }));
    }

    #[test]
    fn every_kind_is_classified() {
        let counted: Vec<_> = ErrorKind::ALL.into_iter().filter(|&k| counts(k)).collect();
        assert_eq!(
            counted,
            [
                ErrorKind::Remote,
                ErrorKind::Timeout,
                ErrorKind::PeerGone,
                ErrorKind::Protocol,
                ErrorKind::Transport,
            ]
        );
    }

    #[test]
    fn a_probe_that_tells_nothing_frees_the_slot() {
        let b = breaker(1);
        let t = Instant::now();
        call(&b, t, Err(ErrorKind::Timeout)).unwrap();
        let t = t + COOL;
        let probe = b.admit_at(t).unwrap();
        b.record_at(probe, Err(ErrorKind::Cancelled), t);
        assert_eq!(b.state_at(t), BreakerState::HalfOpen);
        let next = b.admit_at(t).unwrap();
        assert!(next.is_probe());
        assert!(b.admit_at(t).is_err());
    }

    #[test]
    fn a_lost_probe_is_given_up_after_a_cool_down() {
        let b = breaker(1);
        let t = Instant::now();
        call(&b, t, Err(ErrorKind::Timeout)).unwrap();
        let lost = b.admit_at(t + COOL).unwrap();
        drop(lost);
        assert!(b.admit_at(t + COOL + COOL / 2).is_err());
        let second = b.admit_at(t + COOL + COOL).unwrap();
        assert!(second.is_probe());
    }

    #[test]
    fn outcomes_of_an_earlier_epoch_are_ignored() {
        let b = breaker(1);
        let t = Instant::now();
        let early_success = b.admit_at(t).unwrap();
        let early_failure = b.admit_at(t).unwrap();
        call(&b, t, Err(ErrorKind::Timeout)).unwrap();
        // A call sent before the breaker opened does not close it...
        b.record_at(early_success, Ok(()), t);
        assert!(matches!(b.state_at(t), BreakerState::Open { .. }));
        // ...and a late failure does not extend the cool-down.
        b.record_at(early_failure, Err(ErrorKind::Timeout), t + COOL / 2);
        assert_eq!(b.state_at(t + COOL), BreakerState::HalfOpen);
        assert_eq!(b.consecutive_failures(), 1);
    }

    #[test]
    fn the_public_clock_works_end_to_end() {
        let b = CircuitBreaker::default();
        let admission = b.admit().unwrap();
        b.record(admission, Err(ErrorKind::Timeout));
        assert!(!b.is_open());
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
