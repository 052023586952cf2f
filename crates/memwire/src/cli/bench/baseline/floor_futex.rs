//! `floor-futex`: ping-pong on a shared word with a futex wait and wake each way, across
//! processes: the floor of any blocking wait strategy. No payload moves.
//!
//! ```text
//! offset 0:  u32 `seq`    parent stores 2k+1 and wakes; peer stores 2k+2 and wakes; STOP
//! offset 64: u64 `wakes`  the peer's wake count, written as it exits
//! ```
//!
//! Both sides wake on every message (the floor does not know whether the other sleeps), so
//! `wake_syscalls_per_msg` is 1: the count is kept, not assumed.

use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Result, bail};
use memwire::shm::Mapping;
use memwire::shm::futex::{self, WaitOutcome};

use super::PEER_TIMEOUT;
use crate::cli::bench::case::Parent;

const SEQ: usize = 0;
/// On its own cache line, so the exit report does not share a line with `seq`.
const PEER_WAKES: usize = 64;
/// Never a sequence number: a run makes far fewer than 2^31 round trips.
const STOP: u32 = u32::MAX;

/// The parent's side: the endpoint the harness times.
pub(super) fn parent(shm: &Mapping) -> Result<Box<dyn Parent + '_>> {
    Ok(Box::new(FutexParent {
        shm,
        seq: shm.atomic_u32(SEQ)?,
        next: 1,
        wakes: 0,
    }))
}

/// The peer's side: answers each odd number with the next even one until STOP.
pub(super) fn peer(shm: &Mapping) -> Result<()> {
    let seq = shm.atomic_u32(SEQ)?;
    let mut expect = 1;
    let mut wakes = 0u64;
    loop {
        // Acquire pairs with the parent's Release store of `2k+1` (or STOP).
        let seen = seq.load(Ordering::Acquire);
        if seen == STOP {
            // Release pairs with the parent's Acquire load after our exit.
            shm.store_u64(PEER_WAKES, wakes, Ordering::Release)?;
            return Ok(());
        }
        if seen != expect {
            // No timeout: the parent may pause between phases, and the peer dies with it.
            futex::wait(seq, seen, None)?;
            continue;
        }
        // Release pairs with the parent's Acquire load in `round_trip`.
        seq.store(expect + 1, Ordering::Release);
        futex::wake_one(seq)?;
        wakes += 1;
        expect += 2;
    }
}

struct FutexParent<'m> {
    shm: &'m Mapping,
    seq: &'m AtomicU32,
    /// The odd number the next round trip sends.
    next: u32,
    /// Wakes this side made.
    wakes: u64,
}

impl Parent for FutexParent<'_> {
    fn round_trip(&mut self) -> Result<()> {
        let answer = self.next + 1;
        // Release pairs with the peer's Acquire load.
        self.seq.store(self.next, Ordering::Release);
        futex::wake_one(self.seq)?;
        self.wakes += 1;
        loop {
            let seen = self.seq.load(Ordering::Acquire);
            if seen == answer {
                break;
            }
            if futex::wait(self.seq, seen, Some(PEER_TIMEOUT))? == WaitOutcome::TimedOut {
                bail!("the peer did not answer within {PEER_TIMEOUT:?}");
            }
        }
        self.next += 2;
        Ok(())
    }

    fn finish(&mut self) -> Result<Option<u64>> {
        self.seq.store(STOP, Ordering::Release);
        futex::wake_one(self.seq)?;
        Ok(None)
    }

    fn wake_syscalls(&self) -> Option<u64> {
        // Acquire pairs with the peer's Release store as it exits (the harness calls this
        // after the peer exited; the final STOP wake is not a message, so it is not counted).
        let peer = self.shm.load_u64(PEER_WAKES, Ordering::Acquire).ok()?;
        Some(self.wakes + peer)
    }
}
