//! The holder table: who holds a resource, for display.
//!
//! Liveness never depends on this table (each holder's `flock(LOCK_SH)` does: the kernel drops
//! it when the holder dies). The table only tells *which* processes hold a resource. A slot is
//! one `u64`, `pid << 32 | start time low 32 bits`, claimed and released with one
//! compare-exchange, so a slot never shows half of one holder and half of another. A slot whose
//! process is gone is stale; openers clear stale slots before claiming one.

use std::sync::atomic::Ordering;

use super::header::{HOLDER_SLOTS, HOLDERS_OFFSET};
use crate::error::{Error, Result};
use crate::mapping::Mapping;
use crate::process::ProcessId;
use crate::process::read_stat;

/// Encodes a holder slot. Never 0: a pid is never 0.
pub(crate) fn encode(id: ProcessId) -> u64 {
    (u64::from(id.pid) << 32) | (id.start_time & 0xffff_ffff)
}

/// The pid of a slot word.
pub(crate) fn pid_of(word: u64) -> u32 {
    (word >> 32) as u32
}

/// Whether the process a slot word names still runs (same pid and start time).
pub(crate) fn is_alive(word: u64) -> bool {
    word != 0
        && read_stat(pid_of(word))
            .is_some_and(|s| s.running() && s.start_time & 0xffff_ffff == word & 0xffff_ffff)
}

fn offset(slot: usize) -> usize {
    HOLDERS_OFFSET + 8 * slot
}

/// Claims a free slot for `me`, clearing stale slots on the way.
pub(crate) fn claim(header: &Mapping, me: ProcessId, name: &str) -> Result<usize> {
    let word = encode(me);
    for slot in 0..HOLDER_SLOTS {
        let current = header.load_u64(offset(slot), Ordering::Acquire)?;
        let free = current == 0 || (current != word && !is_alive(current));
        // AcqRel pairs with other claimers and releasers of the same slot; the table is only
        // read for display, so no other memory is published through it.
        if free
            && header
                .compare_exchange_u64(
                    offset(slot),
                    current,
                    word,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )?
                .is_ok()
        {
            return Ok(slot);
        }
    }
    Err(Error::HolderTableFull {
        name: name.to_owned(),
        capacity: HOLDER_SLOTS,
    })
}

/// Writes the creator into slot 0 of a fresh header.
pub(crate) fn claim_first(header: &Mapping, me: ProcessId) -> Result<usize> {
    header.store_u64(offset(0), encode(me), Ordering::Release)?;
    Ok(0)
}

/// Frees `slot` if it still holds `me` (a pruner may have cleared it wrongly only if our own
/// process were dead, which it is not).
pub(crate) fn release(header: &Mapping, slot: usize, me: ProcessId) -> Result<()> {
    let _ = header.compare_exchange_u64(
        offset(slot),
        encode(me),
        0,
        Ordering::AcqRel,
        Ordering::Relaxed,
    )?;
    Ok(())
}

/// Pids of the live holders among raw slot words.
pub(crate) fn live_pids(words: &[u64]) -> Vec<u32> {
    let mut pids: Vec<u32> = words
        .iter()
        .copied()
        .filter(|&w| is_alive(w))
        .map(pid_of)
        .collect();
    pids.sort_unstable();
    pids
}
