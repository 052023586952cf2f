//! `floor-spin`: two processes ping-pong one cache line of the shared segment. No payload
//! moves; this is the floor of every size, and "× floor" in the table divides by it.
//!
//! ```text
//! offset 0: u64 `seq`   parent stores 2k+1, peer answers 2k+2; STOP ends the peer
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use memwire::shm::Mapping;

use super::PEER_TIMEOUT;
use crate::cli::bench::case::Parent;
use crate::cli::bench::spin::wait_for;

const SEQ: usize = 0;
/// Never a sequence number: a run makes far fewer than 2^63 round trips.
const STOP: u64 = u64::MAX;

/// The parent's side: the endpoint the harness times.
pub(super) fn parent(shm: &Mapping) -> Result<Box<dyn Parent + '_>> {
    Ok(Box::new(SpinParent {
        seq: shm.atomic_u64(SEQ)?,
        next: 1,
    }))
}

/// The peer's side: answers each odd number with the next even one until STOP.
pub(super) fn peer(shm: &Mapping) -> Result<()> {
    let seq = shm.atomic_u64(SEQ)?;
    let mut expect = 1;
    loop {
        // No timeout: the parent may pause between phases, and the peer dies with it.
        // Acquire pairs with the parent's Release store of `2k+1` (or STOP).
        let seen = wait_for(
            || Some(seq.load(Ordering::Acquire)).filter(|&v| v == expect || v == STOP),
            None,
        )?;
        if seen == STOP {
            return Ok(());
        }
        // Release pairs with the parent's Acquire load in `round_trip`.
        seq.store(expect + 1, Ordering::Release);
        expect += 2;
    }
}

struct SpinParent<'m> {
    seq: &'m AtomicU64,
    /// The odd number the next round trip sends.
    next: u64,
}

impl Parent for SpinParent<'_> {
    fn round_trip(&mut self) -> Result<()> {
        let answer = self.next + 1;
        // Release pairs with the peer's Acquire load.
        self.seq.store(self.next, Ordering::Release);
        wait_for(
            || (self.seq.load(Ordering::Acquire) == answer).then_some(()),
            Some(PEER_TIMEOUT),
        )?;
        self.next += 2;
        Ok(())
    }

    fn finish(&mut self) -> Result<Option<u64>> {
        self.seq.store(STOP, Ordering::Release);
        Ok(None)
    }

    fn wake_syscalls(&self) -> Option<u64> {
        // Known, not counted: neither side makes a syscall.
        Some(0)
    }
}
