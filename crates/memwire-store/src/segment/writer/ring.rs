//! The change ring: a written write's slots appended and its last revision published; and the
//! tombstones deletes leave, whose names are dropped once their delete has left the ring.

use std::sync::atomic::{Ordering, fence};

use super::{Change, NO_BLOCK, TenantWriter};
use crate::error::Result;
use crate::segment::layout::{
    DELETED, Entry, FREE, H_REVISION, R_BODY, R_REVISION, RING_WRITING, RingSlot,
};

impl TenantWriter {
    /// Appends the ring slots of a written write and publishes its last revision.
    pub(super) fn publish(&mut self, changes: &[Change<'_>]) -> Result<()> {
        self.published = true;
        let first = self.revision + 1;
        let last = self.revision + changes.len() as u64;
        for (i, c) in changes.iter().enumerate() {
            let revision = first + i as u64;
            self.write_ring(
                revision,
                RingSlot {
                    entry: c.slot,
                    kind: c.kind,
                    timestamp_ns: c.entry.timestamp_ns,
                    hash: c.entry.hash,
                    batch_end: last,
                },
            )?;
        }
        // Release: pairs with the Acquire load in `TenantView::revision`/`changes_since`: a
        // watcher that sees `last` sees every ring slot and entry of the write.
        self.map.store_u64(H_REVISION, last, Ordering::Release)?;
        self.revision = last;
        Ok(())
    }

    fn write_ring(&self, revision: u64, slot: RingSlot) -> Result<()> {
        let at = self.header.ring_slot(revision);
        // The slot's revision word is its sequence: `RING_WRITING` while it changes.
        self.map
            .store_u64(at + R_REVISION, RING_WRITING, Ordering::Relaxed)?;
        // Pairs with the Acquire fence in the reader's `read_ring`.
        fence(Ordering::Release);
        self.map.write_atomic(at + R_BODY, &slot.encode())?;
        // Release: pairs with the reader's Acquire load of the slot's revision.
        self.map
            .store_u64(at + R_REVISION, revision, Ordering::Release)?;
        Ok(())
    }

    /// Drops the names of tombstones whose delete has left the change ring (no watcher can ask
    /// about them any more), making their slots reusable; a stripped tombstone followed by a
    /// free slot becomes free itself, so probe paths shorten again.
    pub(super) fn strip_tombstones(&mut self) -> Result<()> {
        let window = u64::from(self.header.geometry.ring_slots);
        while let Some(&(deleted_at, slot)) = self.tombstones.front() {
            if deleted_at + window > self.revision {
                break;
            }
            self.tombstones.pop_front();
            let s = self.slots[slot as usize];
            if s.entry.state != DELETED || s.entry.version != deleted_at {
                continue; // set again since
            }
            let key = std::mem::take(&mut self.keys[slot as usize]);
            self.index.remove(&key);
            self.rewrite(
                slot,
                Entry {
                    state: DELETED,
                    version: deleted_at,
                    timestamp_ns: s.entry.timestamp_ns,
                    ..Entry::default()
                },
            )?;
            self.alloc.free(s.names);
            self.slots[slot as usize].names = NO_BLOCK;
            self.collapse(slot)?;
        }
        Ok(())
    }

    /// Frees stripped tombstones from `slot` backwards while the slot after each is free.
    fn collapse(&mut self, slot: u32) -> Result<()> {
        let mask = self.header.geometry.table_slots - 1;
        let mut i = slot;
        for _ in 0..=mask {
            let s = self.slots[i as usize].entry;
            let next = self.slots[((i + 1) & mask) as usize].entry;
            if !(s.state == DELETED && s.names_offset == 0 && next.state == FREE) {
                break;
            }
            self.rewrite(i, Entry::default())?;
            i = i.wrapping_sub(1) & mask;
        }
        Ok(())
    }
}
