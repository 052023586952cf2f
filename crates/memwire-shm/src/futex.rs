//! Futex wait and wake on a 32-bit word that processes share.
//!
//! A futex lets a thread sleep until another thread (in this process or another) changes a word
//! and says so. The word is an [`AtomicU32`] inside a shared mapping; the sleeper announces in
//! shared memory that it is going to sleep, and the writer calls [`wake`] only when someone
//! said so, so a busy pipeline makes no syscalls.
//!
//! These are *shared* futexes: the operations never pass `FUTEX_PRIVATE_FLAG`. A private futex
//! is keyed by (address space, virtual address) and so can only be woken from the same
//! process; a shared futex is keyed by the page under the address, so a waiter and a waker in
//! two processes that map the same page (at any address) meet. Shared futexes also work on
//! ordinary process memory, at a little more cost in the kernel.
//!
//! ```
//! # fn main() -> memwire_shm::Result<()> {
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use memwire_shm::futex::{self, WaitOutcome};
//!
//! let word = AtomicU32::new(1);
//! // Another thread changed the word first: no sleep.
//! word.store(2, Ordering::Release);
//! assert_eq!(futex::wait(&word, 1, None)?, WaitOutcome::ValueChanged);
//! # Ok(())
//! # }
//! ```

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::io::Errno;
use rustix::thread::futex::{self as sys_futex, Flags};

use crate::error::{Error, Result};
use crate::sys;

/// Shared (not process-private) futex operations: the word lives in memory that other
/// processes map. `Flags::PRIVATE` would key the futex by our address space alone, and a waker
/// in another process would never find our waiter.
const SHARED: Flags = Flags::empty();

/// How a [`wait`] ended. None of them says the condition the caller waits for holds: check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Woken by a [`wake`], or spuriously: the kernel allows wake-ups nobody asked for.
    Woken,
    /// `EAGAIN`: the word did not hold `expected` when the call was made, so it did not sleep.
    ValueChanged,
    /// `ETIMEDOUT`: the timeout ran out.
    TimedOut,
    /// `EINTR`: a signal handler ran. Wait again (with the time that remains) if still needed.
    Interrupted,
}

/// `futex(word, FUTEX_WAIT, expected, timeout, NULL, 0)`: sleeps while `*word == expected`.
///
/// The kernel compares the word and goes to sleep atomically with respect to [`wake`], so a
/// wake that follows a change of the word is never lost. `timeout` is relative (measured
/// against `CLOCK_MONOTONIC`); `None` waits until woken.
///
/// Wake-ups can be spurious and a wake may be meant for another waiter, so callers loop on
/// their own condition:
///
/// ```no_run
/// # use std::sync::atomic::{AtomicU32, Ordering};
/// # fn f(word: &AtomicU32) -> memwire_shm::Result<()> {
/// const READY: u32 = 2;
/// loop {
///     let seen = word.load(Ordering::Acquire);
///     if seen == READY {
///         break;
///     }
///     memwire_shm::futex::wait(word, seen, None)?;
/// }
/// # Ok(())
/// # }
/// ```
pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Result<WaitOutcome> {
    let ts = timeout.and_then(sys::timespec);
    // A timeout too long to represent is forever: `ts` is `None` then, as it should be.
    match sys_futex::wait(word, SHARED, expected, ts.as_ref()) {
        Ok(()) => Ok(WaitOutcome::Woken),
        Err(Errno::AGAIN) => Ok(WaitOutcome::ValueChanged),
        Err(Errno::TIMEDOUT) => Ok(WaitOutcome::TimedOut),
        Err(Errno::INTR) => Ok(WaitOutcome::Interrupted),
        Err(e) => Err(Error::os("futex_wait", e)),
    }
}

/// `futex(word, FUTEX_WAKE, count, NULL, NULL, 0)`: wakes up to `count` waiters on `word`,
/// in this or any other process; returns how many were woken.
///
/// Change the word (with a Release store or stronger) before waking, so a woken waiter sees
/// the change. The kernel reads `count` as a signed int, so counts above `i32::MAX` mean
/// `i32::MAX` ("all"), never a negative count.
pub fn wake(word: &AtomicU32, count: u32) -> Result<usize> {
    let count = count.min(i32::MAX as u32);
    sys_futex::wake(word, SHARED, count).map_err(|e| Error::os("futex_wake", e))
}

/// Wakes one waiter on `word`; returns how many were woken (0 or 1).
pub fn wake_one(word: &AtomicU32) -> Result<usize> {
    wake(word, 1)
}

/// Wakes every waiter on `word`; returns how many were woken.
pub fn wake_all(word: &AtomicU32) -> Result<usize> {
    // The kernel reads the count as a signed int: `i32::MAX` is "all".
    wake(word, i32::MAX as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Instant;

    /// Generous: only a broken wake gets near it, and then the test fails instead of hanging.
    const DEADLINE: Duration = Duration::from_secs(30);

    #[test]
    fn wrong_expected_value_does_not_sleep() {
        let word = AtomicU32::new(7);
        assert_eq!(
            wait(&word, 1, Some(DEADLINE)).unwrap(),
            WaitOutcome::ValueChanged
        );
    }

    #[test]
    fn timeout_returns_timed_out() {
        let word = AtomicU32::new(0);
        assert_eq!(
            wait(&word, 0, Some(Duration::from_millis(10))).unwrap(),
            WaitOutcome::TimedOut
        );
        assert_eq!(
            wait(&word, 0, Some(Duration::ZERO)).unwrap(),
            WaitOutcome::TimedOut
        );
    }

    #[test]
    fn wake_with_no_waiter_wakes_nobody() {
        let word = AtomicU32::new(0);
        assert_eq!(wake_all(&word).unwrap(), 0);
        assert_eq!(wake_one(&word).unwrap(), 0);
    }

    #[test]
    fn waker_thread_wakes_waiter_thread() {
        let word = Arc::new(AtomicU32::new(0));
        let waiter = {
            let word = Arc::clone(&word);
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut woken = 0;
                // Loop on the condition: spurious wake-ups are allowed.
                while word.load(Ordering::Acquire) == 0 {
                    let left = DEADLINE.saturating_sub(start.elapsed());
                    match wait(&word, 0, Some(left)).unwrap() {
                        WaitOutcome::Woken => woken += 1,
                        WaitOutcome::TimedOut => return None,
                        WaitOutcome::ValueChanged | WaitOutcome::Interrupted => {}
                    }
                }
                Some(woken)
            })
        };
        // Wake without changing the word until a wake finds the waiter asleep: that proves the
        // wake reached it (the waiter goes back to sleep, the word being still 0).
        let start = Instant::now();
        while wake_one(&word).unwrap() == 0 {
            assert!(start.elapsed() < DEADLINE, "the waiter never slept");
            std::thread::sleep(Duration::from_millis(1));
        }
        word.store(1, Ordering::Release);
        wake_all(&word).unwrap();
        let woken = waiter.join().unwrap().expect("waiter timed out");
        assert!(woken >= 1, "the waiter never returned Woken");
    }
}
