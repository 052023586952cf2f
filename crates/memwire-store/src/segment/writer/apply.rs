//! Writing a planned write into the segment: every entry of the write locked (sequence odd)
//! before any byte changes, the names, values and entries written, the entries unlocked; then
//! the server's own copy of each slot updated.

use std::sync::atomic::{Ordering, fence};

use super::{Change, TenantWriter, key};
use crate::error::Result;
use crate::segment::layout::{E_BODY, E_SEQ, Entry, KIND_DELETE, LIVE};

impl TenantWriter {
    /// Writes a planned write into the segment and publishes it.
    pub(super) fn apply(&mut self, changes: &[Change<'_>]) -> Result<()> {
        self.write_entries(changes)?;
        self.publish(changes)
    }

    /// Writes the entries, names and values of a planned write, each entry under its
    /// sequence lock (all locked before any byte changes); the ring is not touched.
    pub(super) fn write_entries(&mut self, changes: &[Change<'_>]) -> Result<()> {
        // Phase 1: every entry of the write odd before any byte changes, so a reader that saw
        // one member's new value and then reads another finds it locked or new (never old).
        for c in changes {
            let at = self.header.entry(c.slot);
            let seq = self.slots[c.slot as usize].seq;
            debug_assert!(seq.is_multiple_of(2));
            // Relaxed: ordered before the data stores by the fence below.
            self.map.store_u64(at + E_SEQ, seq + 1, Ordering::Relaxed)?;
        }
        // Pairs with the Acquire fence of a reader's `read_entry`: a reader whose copy saw any
        // store below sees the odd sequence on its re-check.
        fence(Ordering::Release);
        for c in changes {
            if let Some((service, var)) = c.write_names {
                let at = c.names.offset as usize;
                self.map.write_atomic(at, service.as_bytes())?;
                self.map.write_atomic(at + service.len(), var.as_bytes())?;
            }
            if !c.bytes.is_empty() {
                self.map.write_atomic(c.value.offset as usize, c.bytes)?;
            }
            let at = self.header.entry(c.slot);
            self.map.write_atomic(at + E_BODY, &c.entry.encode())?;
        }
        for c in changes {
            let slot = &mut self.slots[c.slot as usize];
            slot.seq += 2;
            // Release: pairs with the Acquire load that opens a reader's `read_entry`; the
            // entry's bytes are visible to a reader that sees the even sequence.
            self.map.store_u64(
                self.header.entry(c.slot) + E_SEQ,
                slot.seq,
                Ordering::Release,
            )?;
        }
        Ok(())
    }

    /// Updates the private state after a change is published.
    pub(super) fn commit(&mut self, service: &str, c: &Change<'_>) {
        self.alloc.free(c.free_on_commit);
        let slot = &mut self.slots[c.slot as usize];
        let was_live = slot.entry.state == LIVE;
        slot.entry = c.entry;
        slot.names = c.names;
        slot.value = c.value;
        if c.kind == KIND_DELETE {
            self.live -= 1;
            self.tombstones.push_back((c.entry.version, c.slot));
            return;
        }
        if let Some((_, var)) = c.write_names {
            let key = key(service, var);
            self.keys[c.slot as usize].clone_from(&key);
            self.index.insert(key, c.slot);
        }
        if !was_live {
            self.live += 1;
        }
    }

    /// Rewrites one entry under its sequence lock (no value or names change).
    pub(super) fn rewrite(&mut self, slot: u32, entry: Entry) -> Result<()> {
        let at = self.header.entry(slot);
        let s = &mut self.slots[slot as usize];
        self.map
            .store_u64(at + E_SEQ, s.seq + 1, Ordering::Relaxed)?;
        // As in `apply`.
        fence(Ordering::Release);
        self.map.write_atomic(at + E_BODY, &entry.encode())?;
        s.seq += 2;
        // As in `apply`.
        self.map.store_u64(at + E_SEQ, s.seq, Ordering::Release)?;
        s.entry = entry;
        Ok(())
    }
}
