//! A ring inside a shared segment, reached through memwire-shm's bounds-checked `Mapping`.
//!
//! ```text
//! base +   0  head            u32, padded to 64 bytes   consumer writes every pop
//! base +  64  consumer_state  u32, padded               consumer sets when sleeping; futex word
//! base + 128  producer_state  u32, padded               producer sets when sleeping; futex word
//! base + 192  slot 0, slot 1, ... slot capacity-1       N bytes each, no padding:
//!             the entry's N - 4 bytes, then seq u32 (producer writes it last)
//! ```
//!
//! Each word has a cache line to itself because the two processes write different words: were
//! `head` and a state word on one line, every pop would take the line from a producer that only
//! reads it (false sharing). The state words are read on every push and pop but written only
//! around a sleep, so on lines of their own they stay cached on both sides while the pipeline is
//! busy. A 64-byte slot is one line, and slots start on a line, so a descriptor is published
//! and read in one line (16-byte return slots sit four to a line). 64 bytes is the line size of x86-64 and common aarch64 cores.
//!
//! `read_entry` copies the whole slot out, its sequence word too (the layers above ignore those
//! bytes): only the peer writes that word, and whatever the copy holds there is never used.
//!
//! The capacity is not stored here: both sides take it from the link's validated
//! configuration, so a peer cannot change it. Every word and entry access is bounds-checked by
//! the mapping view; `SegmentRing::new` checks the whole layout once, so those checks never fail
//! afterwards.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use memwire_shm::Mapping;

use super::{MAX_CAPACITY, RingMemory, SEQ_BYTES, valid_capacity};

/// Cache line size the layout pads to.
const CACHE_LINE: usize = 64;
const HEAD: usize = 0;
const CONSUMER_STATE: usize = CACHE_LINE;
const PRODUCER_STATE: usize = 2 * CACHE_LINE;
/// Offset of slot 0: the control block is three lines.
const SLOTS: usize = 3 * CACHE_LINE;

/// Why a ring cannot be placed at an offset of a mapping.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LayoutError {
    /// The capacity is not a power of two in `1 ..= MAX_CAPACITY`.
    #[error("ring capacity {capacity} is not a power of two in 1..={MAX_CAPACITY}")]
    Capacity {
        /// The capacity asked for.
        capacity: u32,
    },
    /// The base offset does not start a cache line.
    #[error("ring base offset {base} is not a multiple of {CACHE_LINE}")]
    Misaligned {
        /// The base offset asked for.
        base: usize,
    },
    /// The ring does not fit in the mapping.
    #[error("ring at offset {base} needs {footprint} bytes, past the end of a {len}-byte mapping")]
    OutOfBounds {
        /// The base offset asked for.
        base: usize,
        /// `SegmentRing::footprint` of the ring.
        footprint: usize,
        /// The mapping's length.
        len: usize,
    },
    /// The mapping refused access to a ring word (for example, it is read-only).
    #[error("ring words are not accessible")]
    Mapping(#[from] memwire_shm::Error),
}

/// A ring at `base` in a shared mapping; clones share it.
#[derive(Clone, Debug)]
pub(crate) struct SegmentRing<const N: usize> {
    mapping: Arc<Mapping>,
    /// Offset of `head` in the mapping; a multiple of `CACHE_LINE`, and
    /// `base + footprint(capacity) <= mapping.len()` (checked in `new`).
    base: usize,
    /// A power of two in `1 ..= MAX_CAPACITY`.
    capacity: u32,
}

impl<const N: usize> SegmentRing<N> {
    /// Offset of the sequence word in a slot: its last `SEQ_BYTES` bytes.
    const SEQ: usize = N - SEQ_BYTES;

    /// Bytes a ring of `capacity` slots occupies: three cache lines of words, then the
    /// slots. Saturates instead of overflowing (`new` then refuses it).
    pub(crate) const fn footprint(capacity: u32) -> usize {
        SLOTS.saturating_add((capacity as usize).saturating_mul(N))
    }

    /// Places a ring of `capacity` entries at `base` in `mapping`, after checking the layout
    /// fits, is aligned and is writable. Does not initialise it: a fresh segment is zeroed,
    /// which is an empty ring with both sides awake.
    pub(crate) fn new(
        mapping: Arc<Mapping>,
        base: usize,
        capacity: u32,
    ) -> Result<Self, LayoutError> {
        // A multiple of 16: every sequence word is aligned, and `write_entry` copies whole
        // 16-byte words (ring module doc).
        const {
            assert!(
                N >= 16 && N.is_multiple_of(16),
                "slots are 16-byte multiples"
            )
        };
        if !valid_capacity(capacity) {
            return Err(LayoutError::Capacity { capacity });
        }
        if !base.is_multiple_of(CACHE_LINE) {
            return Err(LayoutError::Misaligned { base });
        }
        let footprint = Self::footprint(capacity);
        if base
            .checked_add(footprint)
            .is_none_or(|end| end > mapping.len())
        {
            return Err(LayoutError::OutOfBounds {
                base,
                footprint,
                len: mapping.len(),
            });
        }
        // Every other sequence word lies between the first and the last, at a multiple of 4.
        let last_seq = SLOTS + (capacity as usize - 1) * N + Self::SEQ;
        for word in [
            HEAD,
            CONSUMER_STATE,
            PRODUCER_STATE,
            SLOTS + Self::SEQ,
            last_seq,
        ] {
            mapping.atomic_u32(base + word)?;
        }
        Ok(Self {
            mapping,
            base,
            capacity,
        })
    }

    /// The mapping the ring lives in, for `futex_wait` / `futex_wake` on the state words.
    #[cfg(test)]
    pub(crate) fn mapping(&self) -> &Arc<Mapping> {
        &self.mapping
    }

    /// Offset in the mapping of `consumer_state`: the word a consumer sleeping with
    /// `WaitKind::Futex` waits on, and its producer wakes.
    pub(crate) fn consumer_state_offset(&self) -> usize {
        self.base + CONSUMER_STATE
    }

    /// Offset in the mapping of `producer_state`, the futex word of a producer waiting for space.
    pub(crate) fn producer_state_offset(&self) -> usize {
        self.base + PRODUCER_STATE
    }

    #[inline]
    fn word(&self, offset: usize) -> &AtomicU32 {
        // Cannot fail: `new` checked the word is in bounds, aligned and writable, and a
        // mapping never changes its length or access.
        self.mapping
            .atomic_u32(self.base + offset)
            .expect("ring word checked in SegmentRing::new")
    }

    /// Offset in the mapping of slot `slot` (`slot < capacity`): where its entry starts.
    #[inline]
    pub(crate) fn slot_offset(&self, slot: u32) -> usize {
        debug_assert!(slot < self.capacity);
        self.base + SLOTS + slot as usize * N
    }
}

impl<const N: usize> RingMemory<N> for SegmentRing<N> {
    #[inline]
    fn head(&self) -> &AtomicU32 {
        self.word(HEAD)
    }

    #[inline]
    fn consumer_state(&self) -> &AtomicU32 {
        self.word(CONSUMER_STATE)
    }

    #[inline]
    fn producer_state(&self) -> &AtomicU32 {
        self.word(PRODUCER_STATE)
    }

    #[inline]
    fn capacity(&self) -> u32 {
        self.capacity
    }

    #[inline]
    fn seq(&self, slot: u32) -> &AtomicU32 {
        // Cannot fail: as in `word`.
        self.mapping
            .atomic_u32(self.slot_offset(slot) + Self::SEQ)
            .expect("ring slot checked in SegmentRing::new")
    }

    #[inline]
    fn write_entry(&self, slot: u32, image: &[u8; N]) {
        let at = self.slot_offset(slot);
        // The `N - 4` entry bytes as whole 16-byte words, then 8 and 4 bytes: each load of
        // `image` lies within one of the stores that wrote it (ring module doc).
        let (bulk, tail) = image.split_at(N - 16);
        // Cannot fail: `new` checked every slot below `capacity` lies in the writable mapping,
        // and the ring masks the index.
        let written = self
            .mapping
            .write(at, bulk)
            .and_then(|()| self.mapping.write(at + N - 16, &tail[..8]))
            .and_then(|()| self.mapping.write(at + N - 8, &tail[8..12]));
        written.expect("ring slot checked in SegmentRing::new");
    }

    #[inline]
    fn read_entry(&self, slot: u32, out: &mut [u8; N]) {
        // Cannot fail: as in `write_entry`.
        self.mapping
            .read(self.slot_offset(slot), out)
            .expect("ring slot checked in SegmentRing::new");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memwire_shm::{Access, MemfdSegment, Segment};

    fn mapping(len: u64, access: Access) -> Arc<Mapping> {
        let segment = MemfdSegment::create("ring-layout-test", len).unwrap();
        Arc::new(segment.map(access).unwrap())
    }

    #[test]
    fn footprint_is_three_lines_then_the_slots() {
        assert_eq!(SegmentRing::<64>::footprint(8), 192 + 512);
        assert_eq!(SegmentRing::<16>::footprint(1), 208);
        assert_eq!(
            SegmentRing::<{ usize::MAX / 2 }>::footprint(MAX_CAPACITY),
            usize::MAX
        );
    }

    #[test]
    fn new_checks_the_layout_once() {
        let map = mapping(4096, Access::ReadWrite);
        let ring = SegmentRing::<64>::new(map.clone(), 1024, 8).unwrap();
        assert_eq!(ring.consumer_state_offset(), 1024 + 64);
        assert_eq!(ring.producer_state_offset(), 1024 + 128);
        // Exactly fits: 4096 - 704.
        SegmentRing::<64>::new(map.clone(), 4096 - 704, 8).unwrap();
        assert!(matches!(
            SegmentRing::<64>::new(map.clone(), 4096 - 640, 8),
            Err(LayoutError::OutOfBounds {
                footprint: 704,
                len: 4096,
                ..
            })
        ));
        assert!(matches!(
            SegmentRing::<64>::new(map.clone(), usize::MAX - 63, 8),
            Err(LayoutError::OutOfBounds { .. })
        ));
        assert!(matches!(
            SegmentRing::<64>::new(map.clone(), 32, 8),
            Err(LayoutError::Misaligned { base: 32 })
        ));
        for capacity in [0, 3, 12, MAX_CAPACITY + 1, u32::MAX] {
            assert!(matches!(
                SegmentRing::<64>::new(map.clone(), 0, capacity),
                Err(LayoutError::Capacity { .. })
            ));
        }
        assert!(matches!(
            SegmentRing::<64>::new(mapping(4096, Access::ReadOnly), 0, 8),
            Err(LayoutError::Mapping(memwire_shm::Error::ReadOnly { .. }))
        ));
    }
}
