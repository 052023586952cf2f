//! A ring on the heap, for the loom models and unit tests (not built otherwise).
//!
//! Under `cfg(memwire_loom)` each entry is a `loom::cell::UnsafeCell`, so loom reports a data
//! race if the algorithm ever lets `write_entry` and `read_entry` touch one slot without a
//! happens-before edge between them. In ordinary test builds an entry is `N` relaxed
//! `AtomicU8`s: safe code, sound whatever the threads do, and adding no ordering the sequence
//! words and `head` do not give.
//!
//! # Safety
//! Only the loom build has unsafe code. Loom runs one thread at a time, and its `UnsafeCell`
//! checks every `with` / `with_mut` against the happens-before relation of the execution,
//! panicking on a racy access before the closure runs; so each pointer dereference below happens
//! while no other access to that cell is in progress, and `Slot` may be shared between threads.

use crate::sync::{Arc, AtomicU32};

use super::{RingMemory, valid_capacity};

/// A heap-backed ring memory; clones share it (one for the producer, one for the consumer).
#[derive(Clone, Debug)]
pub(crate) struct HeapRing<const N: usize> {
    inner: Arc<Inner<N>>,
}

#[derive(Debug)]
struct Inner<const N: usize> {
    head: AtomicU32,
    consumer_state: AtomicU32,
    producer_state: AtomicU32,
    /// Each slot's sequence word; `capacity` of them, a power of two.
    seqs: Box<[AtomicU32]>,
    /// Each slot's entry; as many as `seqs`.
    slots: Box<[Slot<N>]>,
}

impl<const N: usize> HeapRing<N> {
    /// A zeroed ring of `capacity` entries.
    ///
    /// # Panics
    /// If `capacity` is not a power of two in `1 ..= MAX_CAPACITY` (test code only).
    pub(crate) fn new(capacity: u32) -> Self {
        assert!(valid_capacity(capacity), "bad ring capacity {capacity}");
        Self {
            inner: Arc::new(Inner {
                head: AtomicU32::new(0),
                consumer_state: AtomicU32::new(0),
                producer_state: AtomicU32::new(0),
                seqs: (0..capacity).map(|_| AtomicU32::new(0)).collect(),
                slots: (0..capacity).map(|_| Slot::new()).collect(),
            }),
        }
    }
}

impl<const N: usize> RingMemory<N> for HeapRing<N> {
    fn head(&self) -> &AtomicU32 {
        &self.inner.head
    }

    fn consumer_state(&self) -> &AtomicU32 {
        &self.inner.consumer_state
    }

    fn producer_state(&self) -> &AtomicU32 {
        &self.inner.producer_state
    }

    fn capacity(&self) -> u32 {
        // `new` built exactly `capacity <= MAX_CAPACITY` slots, so this fits.
        self.inner.slots.len() as u32
    }

    fn seq(&self, slot: u32) -> &AtomicU32 {
        &self.inner.seqs[slot as usize]
    }

    fn write_entry(&self, slot: u32, entry: &[u8; N]) {
        self.inner.slots[slot as usize].store(entry);
    }

    fn read_entry(&self, slot: u32, out: &mut [u8; N]) {
        *out = self.inner.slots[slot as usize].load();
    }
}

/// One entry's storage, checked by loom for races.
#[cfg(memwire_loom)]
#[derive(Debug)]
struct Slot<const N: usize>(loom::cell::UnsafeCell<[u8; N]>);

// SAFETY: every access goes through loom's `with` / `with_mut`, which serialise and race-check
// it (module doc); `[u8; N]` is `Send`.
#[cfg(memwire_loom)]
unsafe impl<const N: usize> Sync for Slot<N> {}

#[cfg(memwire_loom)]
impl<const N: usize> Slot<N> {
    fn new() -> Self {
        Self(loom::cell::UnsafeCell::new([0; N]))
    }

    fn store(&self, entry: &[u8; N]) {
        // SAFETY: `with_mut` has checked that no other access to this cell is concurrent (it
        // panics otherwise), and the pointer is to a live, aligned `[u8; N]`.
        self.0.with_mut(|slot| unsafe { slot.write(*entry) });
    }

    fn load(&self) -> [u8; N] {
        // SAFETY: `with` has checked that no write to this cell is concurrent, and the pointer
        // is to a live, initialised `[u8; N]`.
        self.0.with(|slot| unsafe { slot.read() })
    }
}

/// One entry's storage: relaxed bytes; the ring's sequence words and head give the ordering.
#[cfg(not(memwire_loom))]
#[derive(Debug)]
struct Slot<const N: usize>([crate::sync::AtomicU8; N]);

#[cfg(not(memwire_loom))]
impl<const N: usize> Slot<N> {
    fn new() -> Self {
        Self(std::array::from_fn(|_| crate::sync::AtomicU8::new(0)))
    }

    fn store(&self, entry: &[u8; N]) {
        use crate::sync::Ordering::Relaxed;
        // Relaxed: ordered against the reader by the ring's Release/Acquire on the slot's
        // sequence word (and against the next writer by `head`).
        for (byte, value) in self.0.iter().zip(entry) {
            byte.store(*value, Relaxed);
        }
    }

    fn load(&self) -> [u8; N] {
        use crate::sync::Ordering::Relaxed;
        // Relaxed: as in `store`.
        std::array::from_fn(|i| self.0[i].load(Relaxed))
    }
}
