//! The SPSC ring: one producer and one consumer, in two processes that do not trust each other,
//! passing fixed-size entries (`[u8; N]`: 64-byte descriptors, 8-byte return entries).
//!
//! The algorithm is written once, over [`RingMemory`]: `SegmentRing` places it in a shared
//! segment, `HeapRing` on the heap for the loom models and unit tests.
//!
//! # Indices
//! `tail` (written by the producer only) and `head` (written by the consumer only) are
//! free-running `u32`s: they wrap at `u32::MAX`, and an index is masked with `capacity - 1`
//! (capacity a power of two) only to find its slot, so `tail - head` (wrapping) is the number of
//! entries in flight, `0 ..= capacity`. Each side keeps its own index privately and a cached copy
//! of the peer's, which it reloads only when the ring looks full (producer) or empty (consumer):
//! a busy ring costs each side one shared-index load per `capacity` entries.
//!
//! # What a hostile peer can do, and what we check
//! The peer can write any value into its index and state words at any time, and scribble on the
//! entries. Every load of the peer's index is validated: `tail - head <= capacity` (wrapping) or
//! the call fails with [`RingError::Corrupt`], which the link turns into a protocol violation and
//! a disconnect. Our own index is never read back from shared memory after construction, so the
//! peer cannot make us skip or repeat entries on our side. Slots are found by masking, so no
//! value makes us touch memory outside the ring; entries are copied out once and validated by
//! the layer above. An index moved backwards within the window only costs the peer its own
//! entries. A state word holding neither 0 nor a [`WaitKind`] is [`RingError::WaitState`]. No
//! value makes this module panic. The capacity is never read from shared memory: both sides get
//! it from the link's validated configuration.
//!
//! # Sleeping without losing a wake-up
//! A side that finds the ring empty (consumer) or full (producer) spins a little, then sleeps.
//! A writer makes a wake syscall only when the other side said it sleeps, so a busy pipeline makes
//! none. For the consumer (the producer waiting for space mirrors it with `head` and
//! `producer_state`):
//!
//! ```text
//! consumer (prepare_sleep)              producer (try_push)
//!   consumer_state = kind                 write entry; tail = t + 1 (Release)
//!   fence(SeqCst)                 (F_c)   fence(SeqCst)                      (F_p)
//!   reload tail: not empty? -> state = 0  consumer_state != 0? -> swap(0), wake the sleeper
//!   sleep while state == kind (futex)
//! ```
//!
//! The two SeqCst fences are totally ordered. If `F_p` comes first, the tail store before it is
//! visible to every load after `F_c`: the consumer's reload sees the entry and it does not sleep.
//! If `F_c` comes first, the state store before it is visible to the producer's load after `F_p`:
//! the producer sees the sleeper and wakes it. Either way the entry is not left behind a sleeping
//! consumer (the Dekker pattern; C++ `[atomics.fences]`). Without either fence both loads may read
//! stale values and each side believe the other will act: a lost wake-up, which the loom models
//! in `ring/loom.rs` find. The futex sleeps only while the state still equals `kind`, so a wake
//! (the producer's swap to 0) that lands before the consumer reaches the futex is not lost either.
//! Wake-ups may be spurious (a stale eventfd count, a signal): the caller loops and re-checks.
//!
//! # Cost
//! One SeqCst fence per push and per pop (`mfence` on x86-64) and a load of the peer's state
//! word, which stays in the writer's cache while the peer is awake; a swap only when the peer
//! sleeps. Memory: `SegmentRing::footprint`.

#[cfg(any(test, memwire_loom))]
#[cfg_attr(memwire_loom, allow(unsafe_code))]
mod heap;
#[cfg(test)]
#[cfg(memwire_loom)]
mod loom;
#[cfg(not(memwire_loom))]
mod segment;

#[cfg(any(test, memwire_loom))]
pub(crate) use heap::HeapRing;
#[cfg(not(memwire_loom))]
pub(crate) use segment::SegmentRing;

use crate::sync::{AtomicU32, Ordering, fence};

/// Largest capacity: with free-running `u32` indices, `tail - head` must tell `0 ..= capacity`
/// entries apart, and a power of two must divide 2^32 so masking survives the wrap.
pub(crate) const MAX_CAPACITY: u32 = 1 << 31;

/// Whether `capacity` can size a ring: a power of two in `1 ..= MAX_CAPACITY`.
pub(crate) const fn valid_capacity(capacity: u32) -> bool {
    capacity.is_power_of_two() && capacity <= MAX_CAPACITY
}

/// Where a ring lives: its four shared words and `capacity` entries of `N` bytes.
///
/// Implementations hand out the same words on every call and never fail once built: bounds and
/// alignment are checked when the memory is set up.
pub(crate) trait RingMemory<const N: usize> {
    /// Next index the producer writes. Written by the producer only; the consumer validates it.
    fn tail(&self) -> &AtomicU32;
    /// Next index the consumer reads. Written by the consumer only; the producer validates it.
    fn head(&self) -> &AtomicU32;
    /// 0 while the consumer is awake, else the [`WaitKind`] it declared it sleeps on. Set by
    /// the consumer, cleared by either side.
    fn consumer_state(&self) -> &AtomicU32;
    /// As `consumer_state`, for a producer waiting for space.
    fn producer_state(&self) -> &AtomicU32;
    /// Number of entries; a power of two in `1 ..= MAX_CAPACITY`. Never read from shared memory.
    fn capacity(&self) -> u32;
    /// Copies `entry` into slot `index` (`index < capacity`, already masked).
    fn write_entry(&self, index: u32, entry: &[u8; N]);
    /// Copies slot `index` (`index < capacity`) out; a hostile peer may tear it concurrently.
    fn read_entry(&self, index: u32) -> [u8; N];
}

/// How a sleeping side waits, as declared in its state word; tells the other side which wake
/// syscall to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub(crate) enum WaitKind {
    /// `FUTEX_WAIT` on the state word itself, expecting this value: wake with `FUTEX_WAKE` on it.
    Futex = 1,
    /// Blocks on the link's eventfd: wake by ringing it.
    Doorbell = 2,
}

impl WaitKind {
    /// The value stored in a state word.
    #[must_use]
    pub(crate) const fn word(self) -> u32 {
        self as u32
    }

    /// Parses a state word; `None` for 0 (awake) and for values no side writes.
    #[must_use]
    pub(crate) const fn from_word(word: u32) -> Option<Self> {
        match word {
            1 => Some(Self::Futex),
            2 => Some(Self::Doorbell),
            _ => None,
        }
    }
}

/// The peer broke the ring protocol; the ring is unusable and the link must be dropped. After
/// this error an entry passed to the failing call may or may not have been published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RingError {
    /// The indices claim more than `capacity` entries in flight (or fewer than none).
    #[error("ring indices are corrupt: head {head}, tail {tail}, capacity {capacity}")]
    Corrupt {
        /// Head as read (or kept privately, if the tail was the bad word).
        head: u32,
        /// Tail as read (or kept privately, if the head was the bad word).
        tail: u32,
        /// The ring's capacity.
        capacity: u32,
    },
    /// A state word holds a value that is neither 0 nor a [`WaitKind`].
    #[error("ring wait state holds {value}, which names no way to wait")]
    WaitState {
        /// The value read.
        value: u32,
    },
}

/// Why [`Producer::try_push`] did not push.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PushError {
    /// `capacity` entries are in flight; the entry was not written.
    #[error("ring is full")]
    Full,
    /// The consumer broke the protocol.
    #[error(transparent)]
    Corrupt(#[from] RingError),
}

/// A push that succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a sleeping consumer must be woken"]
pub(crate) struct Pushed {
    /// `Some` when the consumer had declared it sleeps: make exactly one wake syscall of that
    /// kind (`FUTEX_WAKE` on the consumer state word, or ring the eventfd). `None`: no syscall.
    pub(crate) wake: Option<WaitKind>,
}

/// A pop that returned an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a producer sleeping for space must be woken"]
pub(crate) struct Popped<const N: usize> {
    /// The entry, copied out of the ring; validate it before use.
    pub(crate) entry: [u8; N],
    /// As [`Pushed::wake`], for a producer that declared it sleeps waiting for space (wake on
    /// the producer state word).
    pub(crate) wake: Option<WaitKind>,
}

/// `Ok` when at most `capacity` entries lie between `head` and `tail`.
#[inline]
fn check(head: u32, tail: u32, capacity: u32) -> Result<(), RingError> {
    if tail.wrapping_sub(head) <= capacity {
        Ok(())
    } else {
        Err(RingError::Corrupt {
            head,
            tail,
            capacity,
        })
    }
}

/// The waker's half of the handshake, run after publishing an index and a `fence(SeqCst)`:
/// claims the peer's sleep declaration, if any.
#[inline]
fn take_sleeper(state: &AtomicU32) -> Result<Option<WaitKind>, RingError> {
    // Relaxed: ordering against our index store comes from the SeqCst fence before this call,
    // paired with the fence in the peer's `prepare_sleep` (module doc); the word carries no
    // data to acquire. Loading first keeps the busy path free of a locked RMW.
    if state.load(Ordering::Relaxed) == 0 {
        return Ok(None);
    }
    // Relaxed as above. The swap (not a store) makes exactly one of several pushes see the
    // sleeper, so one sleep costs one wake syscall.
    match state.swap(0, Ordering::Relaxed) {
        0 => Ok(None),
        value => WaitKind::from_word(value)
            .map(Some)
            .ok_or(RingError::WaitState { value }),
    }
}

/// The writing end. Owning it is the right to push: there is one per ring.
#[derive(Debug)]
pub(crate) struct Producer<M, const N: usize> {
    mem: M,
    /// Next index to write. Only this side changes it; the shared `tail` word holds it between
    /// calls. Never read back from shared memory after construction.
    tail: u32,
    /// The consumer's `head` as last loaded and validated: `tail - head_cache` in
    /// `0 ..= capacity` (wrapping). May lag the real head, which only makes the ring look fuller.
    head_cache: u32,
    /// `mem.capacity()`, a power of two.
    capacity: u32,
}

impl<M: RingMemory<N>, const N: usize> Producer<M, N> {
    /// Takes the producer side of `mem`, continuing from the indices stored there (all zero in
    /// a fresh segment).
    pub(crate) fn new(mem: M) -> Result<Self, RingError> {
        let capacity = mem.capacity();
        debug_assert!(valid_capacity(capacity));
        // Relaxed: our own word, written by this side (or zeroed by the creator); no data rides on it.
        let tail = mem.tail().load(Ordering::Relaxed);
        let mut producer = Self {
            mem,
            tail,
            head_cache: tail,
            capacity,
        };
        producer.load_head()?;
        Ok(producer)
    }

    /// The memory this ring lives in (for the caller's futex or offsets).
    #[cfg(test)]
    pub(crate) fn memory(&self) -> &M {
        &self.mem
    }

    /// Number of entries the ring holds.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Loads and validates the consumer's head into `head_cache`.
    #[inline]
    fn load_head(&mut self) -> Result<u32, RingError> {
        // Acquire: pairs with the Release store of `head` in `Consumer::try_pop`: the consumer
        // has finished copying an entry out before we overwrite its slot.
        let head = self.mem.head().load(Ordering::Acquire);
        check(head, self.tail, self.capacity)?;
        self.head_cache = head;
        Ok(head)
    }

    /// Whether a push would find room: answered from the cached head when it shows room (no
    /// cross-core load), else from a fresh load of the consumer's head.
    #[inline]
    pub(crate) fn has_room(&mut self) -> Result<bool, RingError> {
        if self.tail.wrapping_sub(self.head_cache) < self.capacity {
            return Ok(true);
        }
        let head = self.load_head()?;
        Ok(self.tail.wrapping_sub(head) < self.capacity)
    }

    /// Entries in flight now (loads the consumer's head).
    #[cfg(test)]
    pub(crate) fn len(&mut self) -> Result<u32, RingError> {
        let head = self.load_head()?;
        Ok(self.tail.wrapping_sub(head))
    }

    /// Whether the consumer has taken every entry (loads the consumer's head).
    #[cfg(test)]
    pub(crate) fn is_empty(&mut self) -> Result<bool, RingError> {
        Ok(self.len()? == 0)
    }

    /// Copies `entry` into the ring and publishes it; tells whether the consumer must be woken.
    #[inline]
    pub(crate) fn try_push(&mut self, entry: &[u8; N]) -> Result<Pushed, PushError> {
        debug_assert!(self.tail.wrapping_sub(self.head_cache) <= self.capacity);
        if self.tail.wrapping_sub(self.head_cache) == self.capacity {
            let head = self.load_head()?;
            if self.tail.wrapping_sub(head) == self.capacity {
                return Err(PushError::Full);
            }
        }
        self.mem.write_entry(self.tail & (self.capacity - 1), entry);
        self.tail = self.tail.wrapping_add(1);
        // Release: pairs with the Acquire load of `tail` in `Consumer::load_tail`: publishes the
        // entry written above.
        self.mem.tail().store(self.tail, Ordering::Release);
        // Pairs with the fence in `Consumer::prepare_sleep` (module doc: no lost wake-up).
        fence(Ordering::SeqCst);
        let wake = take_sleeper(self.mem.consumer_state())?;
        Ok(Pushed { wake })
    }

    /// Declares that this producer sleeps until the consumer frees a slot, then re-checks.
    ///
    /// `Ok(true)`: the ring is still full; sleep as `kind` says (`FUTEX_WAIT` on the producer
    /// state word expecting `kind.word()`, or on the eventfd), then call
    /// [`Producer::cancel_sleep`] and retry the push. `Ok(false)`: a slot freed meanwhile; the
    /// declaration is withdrawn, push again without sleeping.
    pub(crate) fn prepare_sleep(&mut self, kind: WaitKind) -> Result<bool, RingError> {
        // SeqCst for clarity; the fence below is what orders it before the reload.
        self.mem
            .producer_state()
            .store(kind.word(), Ordering::SeqCst);
        // Pairs with the fence in `Consumer::try_pop` (module doc: no lost wake-up).
        fence(Ordering::SeqCst);
        let head = self.load_head()?;
        if self.tail.wrapping_sub(head) < self.capacity {
            self.cancel_sleep();
            return Ok(false);
        }
        Ok(true)
    }

    /// Withdraws a sleep declaration after waking (or on giving up).
    pub(crate) fn cancel_sleep(&self) {
        // Relaxed: the store only spares the consumer a useless wake syscall; whether it sees it
        // late or early, the next `try_push` re-reads the head with Acquire.
        self.mem.producer_state().store(0, Ordering::Relaxed);
    }
}

/// The reading end. Owning it is the right to pop: there is one per ring.
#[derive(Debug)]
pub(crate) struct Consumer<M, const N: usize> {
    mem: M,
    /// Next index to read. Only this side changes it; the shared `head` word holds it between
    /// calls. Never read back from shared memory after construction.
    head: u32,
    /// The producer's `tail` as last loaded and validated: `tail_cache - head` in
    /// `0 ..= capacity` (wrapping). May lag the real tail, which only makes the ring look emptier.
    tail_cache: u32,
    /// `mem.capacity()`, a power of two.
    capacity: u32,
}

impl<M: RingMemory<N>, const N: usize> Consumer<M, N> {
    /// Takes the consumer side of `mem`, continuing from the indices stored there (all zero in
    /// a fresh segment).
    pub(crate) fn new(mem: M) -> Result<Self, RingError> {
        let capacity = mem.capacity();
        debug_assert!(valid_capacity(capacity));
        // Relaxed: our own word, written by this side (or zeroed by the creator); no data rides on it.
        let head = mem.head().load(Ordering::Relaxed);
        let mut consumer = Self {
            mem,
            head,
            tail_cache: head,
            capacity,
        };
        consumer.load_tail()?;
        Ok(consumer)
    }

    /// The memory this ring lives in (for the caller's futex or offsets).
    #[cfg(test)]
    pub(crate) fn memory(&self) -> &M {
        &self.mem
    }

    /// Number of entries the ring holds.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Loads and validates the producer's tail into `tail_cache`.
    #[inline]
    fn load_tail(&mut self) -> Result<u32, RingError> {
        // Acquire: pairs with the Release store of `tail` in `Producer::try_push`: the entries
        // before `tail` are written before we copy them out.
        let tail = self.mem.tail().load(Ordering::Acquire);
        check(self.head, tail, self.capacity)?;
        self.tail_cache = tail;
        Ok(tail)
    }

    /// Entries waiting now (loads the producer's tail).
    #[cfg(test)]
    pub(crate) fn len(&mut self) -> Result<u32, RingError> {
        let tail = self.load_tail()?;
        Ok(tail.wrapping_sub(self.head))
    }

    /// Whether no entry waits (loads the producer's tail).
    #[cfg(test)]
    pub(crate) fn is_empty(&mut self) -> Result<bool, RingError> {
        Ok(self.len()? == 0)
    }

    /// Copies the oldest entry out and frees its slot; `None` when the ring is empty. Tells
    /// whether a producer waiting for space must be woken.
    #[inline]
    pub(crate) fn try_pop(&mut self) -> Result<Option<Popped<N>>, RingError> {
        debug_assert!(self.tail_cache.wrapping_sub(self.head) <= self.capacity);
        if self.head == self.tail_cache && self.load_tail()? == self.head {
            return Ok(None);
        }
        let entry = self.mem.read_entry(self.head & (self.capacity - 1));
        self.head = self.head.wrapping_add(1);
        // Release: pairs with the Acquire load of `head` in `Producer::load_head`: our copy-out
        // above completes before the producer reuses the slot.
        self.mem.head().store(self.head, Ordering::Release);
        // Pairs with the fence in `Producer::prepare_sleep` (module doc: no lost wake-up).
        fence(Ordering::SeqCst);
        let wake = take_sleeper(self.mem.producer_state())?;
        Ok(Some(Popped { entry, wake }))
    }

    /// Declares that this consumer sleeps until the producer publishes an entry, then
    /// re-checks.
    ///
    /// `Ok(true)`: the ring is still empty; sleep as `kind` says (`FUTEX_WAIT` on the consumer
    /// state word expecting `kind.word()`, or on the eventfd), then call
    /// [`Consumer::cancel_sleep`] and pop again. `Ok(false)`: an entry arrived meanwhile; the
    /// declaration is withdrawn, pop without sleeping.
    pub(crate) fn prepare_sleep(&mut self, kind: WaitKind) -> Result<bool, RingError> {
        // SeqCst for clarity; the fence below is what orders it before the reload.
        self.mem
            .consumer_state()
            .store(kind.word(), Ordering::SeqCst);
        // Pairs with the fence in `Producer::try_push` (module doc: no lost wake-up).
        fence(Ordering::SeqCst);
        if self.load_tail()? != self.head {
            self.cancel_sleep();
            return Ok(false);
        }
        Ok(true)
    }

    /// Withdraws a sleep declaration after waking (or on giving up).
    pub(crate) fn cancel_sleep(&self) {
        // Relaxed: the store only spares the producer a useless wake syscall; whether it sees it
        // late or early, the next `try_pop` re-reads the tail with Acquire.
        self.mem.consumer_state().store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[cfg(not(memwire_loom))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    use memwire_shm::{Access, MemfdSegment, Segment, futex::WaitOutcome};
    use proptest::prelude::*;

    type Entry = [u8; 8];

    fn entry(value: u64) -> Entry {
        value.to_le_bytes()
    }

    fn segment<const N: usize>(capacity: u32) -> SegmentRing<N> {
        let len = SegmentRing::<N>::footprint(capacity, N) as u64;
        let segment = MemfdSegment::create("ring-test", len).unwrap();
        let mapping = Arc::new(segment.map(Access::ReadWrite).unwrap());
        SegmentRing::new(mapping, 0, capacity).unwrap()
    }

    /// Resets `mem` to an empty ring whose indices both stand at `index`, both sides awake.
    fn reset<M: RingMemory<N>, const N: usize>(mem: &M, index: u32) {
        mem.tail().store(index, Ordering::Relaxed);
        mem.head().store(index, Ordering::Relaxed);
        mem.consumer_state().store(0, Ordering::Relaxed);
        mem.producer_state().store(0, Ordering::Relaxed);
    }

    fn pair<M: RingMemory<N> + Clone, const N: usize>(mem: &M) -> (Producer<M, N>, Consumer<M, N>) {
        (
            Producer::new(mem.clone()).unwrap(),
            Consumer::new(mem.clone()).unwrap(),
        )
    }

    fn fifo_across_wrap<M: RingMemory<8> + Clone>(mem: M) {
        reset(&mem, u32::MAX - 5);
        let (mut tx, mut rx) = pair(&mem);
        let capacity = u64::from(rx.capacity());
        let (mut sent, mut received) = (0u64, 0u64);
        // Batches of every size from 0 to capacity walk the slots and the indices across the
        // u32 wrap; the ring is left partly full between batches.
        for round in 0..64 {
            let batch = round % (capacity + 1);
            while sent - received < batch {
                assert_eq!(tx.try_push(&entry(sent)).unwrap().wake, None);
                sent += 1;
            }
            assert_eq!(u64::from(rx.len().unwrap()), sent - received);
            while sent - received > batch / 2 {
                let popped = rx.try_pop().unwrap().unwrap();
                assert_eq!(popped.entry, entry(received));
                assert_eq!(popped.wake, None);
                received += 1;
            }
        }
        while let Some(popped) = rx.try_pop().unwrap() {
            assert_eq!(popped.entry, entry(received));
            received += 1;
        }
        assert_eq!(received, sent);
        assert!(mem.tail().load(Ordering::Relaxed) < 1000, "indices wrapped");
    }

    #[test]
    fn fifo_across_slot_and_index_wrap() {
        fifo_across_wrap(HeapRing::<8>::new(4));
        fifo_across_wrap(segment::<8>(4));
        fifo_across_wrap(HeapRing::<8>::new(1));
        fifo_across_wrap(segment::<8>(1));
    }

    #[test]
    fn carries_64_byte_descriptors_intact() {
        let mem = segment::<64>(8);
        let (mut tx, mut rx) = pair(&mem);
        for round in 0..20u8 {
            let descriptor: [u8; 64] =
                std::array::from_fn(|i| round.wrapping_mul(64).wrapping_add(i as u8));
            let _ = tx.try_push(&descriptor).unwrap();
            assert_eq!(rx.try_pop().unwrap().unwrap().entry, descriptor);
        }
    }

    fn full_and_empty<M: RingMemory<8> + Clone>(mem: M) {
        let (mut tx, mut rx) = pair(&mem);
        let capacity = tx.capacity();
        assert_eq!(rx.try_pop().unwrap(), None);
        assert!(rx.is_empty().unwrap() && tx.is_empty().unwrap());
        for i in 0..capacity {
            let _ = tx.try_push(&entry(i.into())).unwrap();
        }
        assert_eq!(tx.try_push(&entry(99)), Err(PushError::Full));
        assert_eq!((tx.len().unwrap(), rx.len().unwrap()), (capacity, capacity));
        assert_eq!(rx.try_pop().unwrap().unwrap().entry, entry(0));
        let _ = tx.try_push(&entry(capacity.into())).unwrap();
        assert_eq!(tx.try_push(&entry(99)), Err(PushError::Full));
        for i in 1..=capacity {
            assert_eq!(rx.try_pop().unwrap().unwrap().entry, entry(i.into()));
        }
        assert_eq!(rx.try_pop().unwrap(), None);
        assert!(rx.is_empty().unwrap() && tx.is_empty().unwrap());
    }

    #[test]
    fn full_and_empty_rings() {
        full_and_empty(HeapRing::<8>::new(4));
        full_and_empty(segment::<8>(4));
    }

    fn corrupt_peer_indices<M: RingMemory<8> + Clone>(mem: M) {
        let capacity = mem.capacity();
        let start = u32::MAX - 1;
        let corrupt = |head, tail| RingError::Corrupt {
            head,
            tail,
            capacity,
        };

        // A producer's tail far ahead of the head, or behind it.
        for tail in [
            start.wrapping_add(capacity + 1),
            start.wrapping_sub(1),
            start ^ 0x8000_0000,
        ] {
            reset(&mem, start);
            let mut rx = Consumer::<M, 8>::new(mem.clone()).unwrap();
            mem.tail().store(tail, Ordering::Relaxed);
            assert_eq!(rx.try_pop(), Err(corrupt(start, tail)));
            assert_eq!(rx.len(), Err(corrupt(start, tail)));
            assert_eq!(rx.prepare_sleep(WaitKind::Futex), Err(corrupt(start, tail)));
            assert_eq!(
                Consumer::<M, 8>::new(mem.clone()).err(),
                Some(corrupt(start, tail))
            );
        }
        // Exactly `capacity` ahead is a full ring: the consumer copies out whatever is there.
        reset(&mem, start);
        let mut rx = Consumer::<M, 8>::new(mem.clone()).unwrap();
        mem.tail()
            .store(start.wrapping_add(capacity), Ordering::Relaxed);
        for _ in 0..capacity {
            assert!(rx.try_pop().unwrap().is_some());
        }
        assert_eq!(rx.try_pop(), Ok(None));

        // A consumer's head behind the producer's window, or ahead of the tail.
        reset(&mem, start);
        let (mut tx, _rx) = pair::<M, 8>(&mem);
        for i in 0..capacity {
            let _ = tx.try_push(&entry(i.into())).unwrap();
        }
        let tail = start.wrapping_add(capacity);
        for head in [
            start.wrapping_sub(1),
            tail.wrapping_add(1),
            tail ^ 0x8000_0000,
        ] {
            mem.head().store(head, Ordering::Relaxed);
            assert_eq!(
                tx.try_push(&entry(0)),
                Err(PushError::Corrupt(corrupt(head, tail)))
            );
            assert_eq!(tx.prepare_sleep(WaitKind::Futex), Err(corrupt(head, tail)));
            assert_eq!(tx.len(), Err(corrupt(head, tail)));
            assert_eq!(
                Producer::<M, 8>::new(mem.clone()).err(),
                Some(corrupt(head, tail))
            );
        }

        // A state word naming no way to wait.
        reset(&mem, start);
        let (mut tx, mut rx) = pair::<M, 8>(&mem);
        mem.consumer_state().store(7, Ordering::Relaxed);
        assert_eq!(
            tx.try_push(&entry(1)),
            Err(PushError::Corrupt(RingError::WaitState { value: 7 }))
        );
        mem.producer_state().store(u32::MAX, Ordering::Relaxed);
        assert_eq!(rx.try_pop(), Err(RingError::WaitState { value: u32::MAX }));
    }

    #[test]
    fn corrupt_peer_indices_are_rejected_without_panicking() {
        corrupt_peer_indices(HeapRing::<8>::new(4));
        corrupt_peer_indices(segment::<8>(4));
    }

    fn wake_only_a_sleeper<M: RingMemory<8> + Clone>(mem: M) {
        let (mut tx, mut rx) = pair(&mem);
        let state = |word: &AtomicU32| word.load(Ordering::Relaxed);
        assert_eq!(tx.try_push(&entry(1)).unwrap().wake, None);
        assert!(
            !rx.prepare_sleep(WaitKind::Futex).unwrap(),
            "not empty: no sleep"
        );
        assert_eq!(state(rx.memory().consumer_state()), 0);
        assert_eq!(rx.try_pop().unwrap().unwrap().wake, None);

        assert!(rx.prepare_sleep(WaitKind::Futex).unwrap());
        assert_eq!(state(rx.memory().consumer_state()), WaitKind::Futex.word());
        assert_eq!(tx.try_push(&entry(2)).unwrap().wake, Some(WaitKind::Futex));
        assert_eq!(
            state(rx.memory().consumer_state()),
            0,
            "the waker claims the sleeper"
        );
        assert_eq!(
            tx.try_push(&entry(3)).unwrap().wake,
            None,
            "one wake per sleep"
        );
        rx.cancel_sleep();
        assert!(rx.try_pop().unwrap().is_some());

        // The mirror: a producer waiting for space.
        assert!(
            !tx.prepare_sleep(WaitKind::Doorbell).unwrap(),
            "not full: no sleep"
        );
        while tx.try_push(&entry(4)).is_ok() {}
        assert!(tx.prepare_sleep(WaitKind::Doorbell).unwrap());
        assert_eq!(
            state(tx.memory().producer_state()),
            WaitKind::Doorbell.word()
        );
        assert_eq!(
            rx.try_pop().unwrap().unwrap().wake,
            Some(WaitKind::Doorbell)
        );
        assert_eq!(rx.try_pop().unwrap().unwrap().wake, None);
        tx.cancel_sleep();
        assert_eq!(state(tx.memory().producer_state()), 0);
    }

    #[test]
    fn wakes_are_reported_only_to_a_declared_sleeper() {
        wake_only_a_sleeper(HeapRing::<8>::new(4));
        wake_only_a_sleeper(segment::<8>(4));
    }

    /// Scribbles `head_word`, `tail_word` and the state words into a ring holding `filled`
    /// entries from `start`; every call must return, and reject exactly the out-of-range words.
    fn scribbles<M: RingMemory<8> + Clone>(mem: &M, start: u32, filled: u32, words: [u32; 4]) {
        let [head_word, tail_word, consumer_state, producer_state] = words;
        let capacity = mem.capacity();
        reset(mem, start);
        let (mut tx, mut rx) = pair::<M, 8>(mem);
        for i in 0..filled {
            let _ = tx.try_push(&entry(i.into())).unwrap();
        }
        let tail = start.wrapping_add(filled);

        mem.head().store(head_word, Ordering::Relaxed);
        let head_ok = tail.wrapping_sub(head_word) <= capacity;
        match tx.len() {
            Ok(len) => assert!(head_ok && len == tail.wrapping_sub(head_word)),
            Err(e) => assert!(!head_ok && matches!(e, RingError::Corrupt { .. })),
        }

        mem.tail().store(tail_word, Ordering::Relaxed);
        let tail_ok = tail_word.wrapping_sub(start) <= capacity;
        match rx.len() {
            Ok(len) => assert!(tail_ok && len == tail_word.wrapping_sub(start)),
            Err(e) => assert!(!tail_ok && matches!(e, RingError::Corrupt { .. })),
        }

        // Whatever the words hold now, every operation returns.
        mem.consumer_state()
            .store(consumer_state, Ordering::Relaxed);
        mem.producer_state()
            .store(producer_state, Ordering::Relaxed);
        for _ in 0..2 * capacity {
            let _ = tx.try_push(&entry(0));
            let _ = rx.try_pop();
            let _ = tx.prepare_sleep(WaitKind::Futex);
            let _ = rx.prepare_sleep(WaitKind::Doorbell);
        }
    }

    proptest! {
        #[test]
        fn random_peer_words_never_panic_and_are_checked(
            start in prop_oneof![any::<u32>(), (u32::MAX - 8)..=u32::MAX],
            filled in 0u32..=4,
            words in any::<[u32; 4]>(),
            near in any::<[i8; 2]>(),
        ) {
            // Half the cases put the peer's word near the real one, where the boundary is.
            let mut words = words;
            if near[0] % 2 == 0 {
                words[0] = start.wrapping_add_signed(i32::from(near[0] / 16));
                words[1] = start.wrapping_add_signed(i32::from(near[1] / 16));
            }
            scribbles(&HeapRing::<8>::new(4), start, filled, words);
            SEGMENT.with(|mem| scribbles(mem, start, filled, words));
        }
    }

    thread_local! {
        /// One segment for all proptest cases; `scribbles` resets it.
        static SEGMENT: SegmentRing<8> = segment::<8>(4);
    }

    /// Spin-then-yield backoff: on 2 vCPUs a thread spinning on its core can starve the peer
    /// it waits for, so after `SPINS` pauses it yields its slice.
    struct Backoff(u32);

    impl Backoff {
        /// Pauses long enough to let a cache line travel between cores, a few hundred cycles.
        const SPINS: u32 = 64;
        /// Yields before a caller that can sleep should sleep: each yield is a syscall anyway.
        const YIELDS: u32 = 16;

        /// Waits a little; returns false once the caller should sleep instead.
        fn snooze(&mut self) -> bool {
            self.0 += 1;
            if self.0 <= Self::SPINS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
            self.0 <= Self::SPINS + Self::YIELDS
        }
    }

    const STRESS_COUNT: u64 = 1_000_000;

    /// Order and checksum of what the consumer received.
    fn check_received(values: impl Iterator<Item = u64>) {
        let (mut expected, mut sum) = (0u64, 0u64);
        for value in values {
            assert_eq!(value, expected, "out of order");
            expected += 1;
            sum = sum.wrapping_add(value.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        let want = (0..STRESS_COUNT).fold(0u64, |s, v| {
            s.wrapping_add(v.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        });
        assert_eq!((expected, sum), (STRESS_COUNT, want));
    }

    #[test]
    fn two_threads_pass_a_million_entries_spinning() {
        let mem = HeapRing::<8>::new(64);
        let (mut tx, mut rx) = pair(&mem);
        std::thread::scope(|s| {
            s.spawn(move || {
                for i in 0..STRESS_COUNT {
                    let mut backoff = Backoff(0);
                    while let Err(e) = tx.try_push(&entry(i)) {
                        assert_eq!(e, PushError::Full);
                        backoff.snooze();
                    }
                }
            });
            check_received((0..STRESS_COUNT).map(|_| {
                let mut backoff = Backoff(0);
                loop {
                    if let Some(popped) = rx.try_pop().unwrap() {
                        break u64::from_le_bytes(popped.entry);
                    }
                    backoff.snooze();
                }
            }));
        });
    }

    /// The real sleep path: spin, yield, then the handshake and a futex on the state word.
    #[test]
    fn two_threads_pass_a_million_entries_sleeping_on_futexes() {
        // Long enough that only a lost wake-up (never a busy machine) reaches it.
        const LOST: Duration = Duration::from_secs(20);
        const STALL_EVERY: u64 = 5_000;
        let mem = segment::<8>(64);
        let (mut tx, mut rx) = pair(&mem);
        let map = mem.mapping().clone();
        let (consumer_word, producer_word) =
            (mem.consumer_state_offset(), mem.producer_state_offset());
        let wake = |offset| map.futex_wake(offset, 1).unwrap();
        let sleep = |offset| {
            let outcome = map
                .futex_wait(offset, WaitKind::Futex.word(), Some(LOST))
                .unwrap();
            assert_ne!(outcome, WaitOutcome::TimedOut, "lost wake-up");
        };
        // Each side stalls now and then (as a descheduled process would), so the other runs out
        // of spins and sleeps: both sleep paths run hundreds of times, not only in theory.
        let stall = |i: u64, phase: u64| {
            if i % STALL_EVERY == phase {
                std::thread::sleep(Duration::from_micros(200));
            }
        };
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..STRESS_COUNT {
                    stall(i, 0);
                    let mut backoff = Backoff(0);
                    loop {
                        match tx.try_push(&entry(i)) {
                            Ok(pushed) => {
                                if pushed.wake.is_some() {
                                    wake(consumer_word);
                                }
                                break;
                            }
                            Err(PushError::Full) if backoff.snooze() => {}
                            Err(PushError::Full) => {
                                if tx.prepare_sleep(WaitKind::Futex).unwrap() {
                                    sleep(producer_word);
                                    tx.cancel_sleep();
                                }
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            });
            check_received((0..STRESS_COUNT).map(|i| {
                stall(i, STALL_EVERY / 2);
                let mut backoff = Backoff(0);
                loop {
                    if let Some(popped) = rx.try_pop().unwrap() {
                        if popped.wake.is_some() {
                            wake(producer_word);
                        }
                        break u64::from_le_bytes(popped.entry);
                    }
                    if !backoff.snooze() && rx.prepare_sleep(WaitKind::Futex).unwrap() {
                        sleep(consumer_word);
                        rx.cancel_sleep();
                    }
                }
            }));
        });
    }
}
