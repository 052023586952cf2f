//! The SPSC ring: one producer and one consumer, in two processes that do not trust each other,
//! passing fixed-size entries in `N`-byte slots (64-byte slots for descriptors, 16-byte slots for
//! return entries).
//!
//! The algorithm is written once, over [`RingMemory`]: `SegmentRing` places it in a shared
//! segment, `HeapRing` on the heap for the loom models and unit tests.
//!
//! # Slots and sequence words
//! Each of the `capacity` slots (a power of two) is `N` bytes: an entry of `N - SEQ_BYTES`
//! bytes, then a `u32` sequence word; one cache line for a descriptor. The caller hands the ring
//! whole `N`-byte slot images: a push writes all but the last `SEQ_BYTES` bytes of the image, a
//! pop copies the whole slot out, its last `SEQ_BYTES` bytes unspecified (the layers above ignore
//! them). Keeping images at a multiple of 16 bytes lets every copy of one move whole 16-byte
//! words: a 60-byte copy ends in a load overlapping two earlier stores, which on x86-64 cannot
//! be forwarded from the store buffer and stalls until they reach the cache (with 60-byte
//! entries such stalls, one per copy of an entry, cost more than the ring's own work; see
//! BENCHMARKS.md). A push writes the entry as whole 16-byte words, then 8 and 4 bytes, so each
//! load of the caller's image lies within one store that wrote it. A producer may also write
//! the entry in place: [`Producer::next_slot`] names the slot (the producer's until published),
//! [`Producer::publish_next`] publishes it; `try_push` is those two around a copy, so the loom
//! models cover the publishing half.
//!
//! Indices are free-running `u32`s that wrap at `u32::MAX`; index `i` lives in slot
//! `i & (capacity - 1)`. The producer writes the entry of index `i`, then stores `i + 1`
//! (wrapping) into the slot's sequence word with Release. The consumer, at index `head`, loads
//! the sequence word of its slot with Acquire: it holds `head + 1` exactly when the entry is
//! there (FastForward / Lamport with sequence numbers). What the previous lap left there,
//! `head + 1 - capacity` (never `head + 1`: `capacity <= 2^31`), or 0 in a fresh zeroed ring's
//! first lap (rings start at index 0), means empty. So a message costs the consumer one cache
//! line, the one the producer wrote, and the producer has no index word to publish.
//!
//! The consumer's `head` (written by the consumer only) is the one shared index: the producer
//! keeps its own `tail` privately and a cached copy of `head`, which it reloads only when the
//! ring looks full, so `tail - head` (wrapping) is in `0 ..= capacity` and a busy ring costs
//! the producer one load of `head` per `capacity` entries. The consumer never writes a slot,
//! so the lines the producer writes are only ever read by the other side.
//!
//! # What a hostile peer can do, and what we check
//! The peer can write any value into its words and slots at any time. A hostile consumer
//! can move `head`: every load of it is validated (`tail - head <= capacity`, wrapping) or the
//! call fails with [`RingError::Corrupt`], which the link turns into a protocol violation and a
//! disconnect; a `head` moved backwards within the window only costs the peer its own entries.
//! A hostile producer can write any sequence word. The slot the consumer reads next may hold
//! only its entry's word or what the previous lap left there (0 in a fresh ring's first lap);
//! any other value is [`RingError::Sequence`], so a scribbled ring is found out at the next
//! pop. Within those two values the producer can make a slot look published early (we then
//! copy out whatever bytes are there, or a torn entry) or never (the ring looks empty: it only
//! stalls its own messages). It cannot make us skip or repeat an entry or touch memory outside
//! the ring: our own index is never read back from shared memory after construction, and slots
//! are found by masking it. Entries are copied out once and
//! validated by the layer above (`Descriptor::decode`, `ReturnEntry::decode`). A state word
//! holding neither 0 nor a [`WaitKind`] is [`RingError::WaitState`]. No value makes this module
//! panic. The capacity is never read from shared memory: both sides get it from the link's
//! validated configuration.
//!
//! # Sleeping without losing a wake-up
//! A side that finds the ring empty (consumer) or full (producer) spins a little, then sleeps.
//! A writer makes a wake syscall only when the other side said it sleeps, so a busy pipeline makes
//! none. For the consumer (the producer waiting for space mirrors it with `head` and
//! `producer_state`):
//!
//! ```text
//! consumer (prepare_sleep)               producer (try_push)
//!   consumer_state = kind                  write entry; seq = i + 1 (Release)
//!   fence(SeqCst)                  (F_c)   fence(SeqCst)                      (F_p)
//!   reload seq: ready? -> state = 0        consumer_state != 0? -> swap(0), wake the sleeper
//!   sleep while state == kind (futex)
//! ```
//!
//! The two SeqCst fences are totally ordered. If `F_p` comes first, the sequence store before
//! it is visible to every load after `F_c`: the consumer's reload sees the entry and it does not
//! sleep. If `F_c` comes first, the state store before it is visible to the producer's load
//! after `F_p`: the producer sees the sleeper and wakes it. Either way the entry is not left
//! behind a sleeping consumer (the Dekker pattern; C++ `[atomics.fences]`). Without either fence
//! both loads may read stale values and each side believe the other will act: a lost wake-up,
//! which the loom models in `ring/loom.rs` find. The futex sleeps only while the state still
//! equals `kind`, so a wake (the producer's swap to 0) that lands before the consumer reaches the
//! futex is not lost either. Wake-ups may be spurious (a stale eventfd count, a signal): the
//! caller loops and re-checks.
//!
//! # Cost
//! A push writes one slot (one line for a descriptor) and a pop reads it and stores `head`, on
//! a line only the consumer writes; each side also runs one SeqCst fence (`mfence` on x86-64)
//! and loads the peer's state word, which stays in its cache while the peer is awake; a swap
//! only when the peer sleeps. Memory: `SegmentRing::footprint`.
//!
//! An asymmetric fence (`membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` on the sleeping side, a
//! compiler fence on the busy one) would take the fence off every push and pop, at the price of
//! a second handshake both processes must agree on and loom cannot model. Measured without the
//! busy side's fences, a round trip got about 20 ns shorter at 8 B and no shorter at 64 B
//! (BENCHMARKS.md): not worth it.

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
pub(crate) use segment::{LayoutError, SegmentRing};

use crate::sync::{AtomicU32, Ordering, fence};

/// Largest capacity: with free-running `u32` indices, `tail - head` must tell `0 ..= capacity`
/// entries apart, a power of two must divide 2^32 so masking survives the wrap, and a slot's
/// sequence word for this lap (`i + 1`) must differ from the last lap's (`i + 1 - capacity`).
pub(crate) const MAX_CAPACITY: u32 = 1 << 31;

/// Bytes of a slot's sequence word: the last `SEQ_BYTES` bytes of each `N`-byte slot.
pub(crate) const SEQ_BYTES: usize = 4;

/// Whether `capacity` can size a ring: a power of two in `1 ..= MAX_CAPACITY`.
pub(crate) const fn valid_capacity(capacity: u32) -> bool {
    capacity.is_power_of_two() && capacity <= MAX_CAPACITY
}

/// The sequence word that says the entry of free-running index `index` is published.
#[inline]
pub(crate) const fn published(index: u32) -> u32 {
    index.wrapping_add(1)
}

/// Where a ring lives: the consumer's index, two state words and `capacity` slots of `N` bytes,
/// each an entry and, in its last `SEQ_BYTES` bytes, a sequence word.
///
/// Implementations hand out the same words on every call and never fail once built: bounds and
/// alignment are checked when the memory is set up.
pub(crate) trait RingMemory<const N: usize> {
    /// Next index the consumer reads. Written by the consumer only; the producer validates it.
    /// Both sides start from it (0 in a fresh ring).
    fn head(&self) -> &AtomicU32;
    /// 0 while the consumer is awake, else the [`WaitKind`] it declared it sleeps on. Set by
    /// the consumer, cleared by either side.
    fn consumer_state(&self) -> &AtomicU32;
    /// As `consumer_state`, for a producer waiting for space.
    fn producer_state(&self) -> &AtomicU32;
    /// Number of slots; a power of two in `1 ..= MAX_CAPACITY`. Never read from shared memory.
    fn capacity(&self) -> u32;
    /// The sequence word of slot `slot` (`slot < capacity`, already masked): [`published`] of
    /// the index whose entry the slot holds. Written by the producer only.
    fn seq(&self, slot: u32) -> &AtomicU32;
    /// Copies `image` into slot `slot` (`slot < capacity`), all but its last `SEQ_BYTES` bytes:
    /// the sequence word is not written.
    fn write_entry(&self, slot: u32, image: &[u8; N]);
    /// Copies slot `slot` (`slot < capacity`) into `out`; its last `SEQ_BYTES` bytes are
    /// unspecified. A hostile peer may tear it concurrently.
    fn read_entry(&self, slot: u32, out: &mut [u8; N]);
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
    /// The consumer's head claims more than `capacity` entries in flight (or fewer than none).
    #[error("ring indices are corrupt: head {head}, tail {tail}, capacity {capacity}")]
    Corrupt {
        /// Head as read.
        head: u32,
        /// The producer's own tail.
        tail: u32,
        /// The ring's capacity.
        capacity: u32,
    },
    /// The slot the consumer reads next holds a sequence word that is neither its entry's
    /// ([`published`] of `index`) nor what the previous lap left there.
    #[error("ring slot of index {index} holds sequence word {seq}, which no producer writes")]
    Sequence {
        /// The consumer's index.
        index: u32,
        /// The sequence word read.
        seq: u32,
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

/// A pop that copied an entry into the caller's buffer ([`Consumer::try_pop_into`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a producer sleeping for space must be woken"]
pub(crate) struct Taken {
    /// As [`Pushed::wake`], for a producer that declared it sleeps waiting for space (wake on
    /// the producer state word).
    pub(crate) wake: Option<WaitKind>,
}

/// A pop that returned an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a producer sleeping for space must be woken"]
pub(crate) struct Popped<const N: usize> {
    /// The slot, copied out of the ring; validate it before use. Its last `SEQ_BYTES` bytes
    /// are unspecified.
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
    /// Next index to write. Only this side knows it: it lives in no shared word, and the
    /// sequence words it publishes are never read back.
    tail: u32,
    /// The consumer's `head` as last loaded and validated: `tail - head_cache` in
    /// `0 ..= capacity` (wrapping). May lag the real head, which only makes the ring look fuller.
    head_cache: u32,
    /// `mem.capacity()`, a power of two.
    capacity: u32,
}

impl<M: RingMemory<N>, const N: usize> Producer<M, N> {
    /// Takes the producer side of `mem`, which must hold no entries: it starts at the stored
    /// head (0 in a fresh segment).
    pub(crate) fn new(mem: M) -> Self {
        let capacity = mem.capacity();
        debug_assert!(valid_capacity(capacity));
        // Relaxed: no entry is in flight yet, so no data rides on it; a hostile consumer that
        // moved it only changes which indices it is sent, and later loads are validated.
        let tail = mem.head().load(Ordering::Relaxed);
        Self {
            mem,
            tail,
            head_cache: tail,
            capacity,
        }
    }

    /// The memory this ring lives in (for the caller's futex or offsets, and the slot an entry
    /// is written into in place).
    #[cfg_attr(memwire_loom, allow(dead_code))]
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

    /// Copies `entry` (a slot image: its last `SEQ_BYTES` bytes are ignored) into the ring and
    /// publishes it; tells whether the consumer must be woken.
    #[inline]
    pub(crate) fn try_push(&mut self, entry: &[u8; N]) -> Result<Pushed, PushError> {
        let Some(slot) = self.next_slot()? else {
            return Err(PushError::Full);
        };
        self.mem.write_entry(slot, entry);
        Ok(self.publish_next()?)
    }

    /// The slot the next entry goes into, when the ring has room (`None`: full). Until
    /// [`Producer::publish_next`], that slot is the producer's: the caller may write the entry
    /// there in place (all but its sequence word) instead of handing [`Producer::try_push`] a
    /// copy.
    #[inline]
    pub(crate) fn next_slot(&mut self) -> Result<Option<u32>, RingError> {
        debug_assert!(self.tail.wrapping_sub(self.head_cache) <= self.capacity);
        if self.tail.wrapping_sub(self.head_cache) == self.capacity {
            let head = self.load_head()?;
            if self.tail.wrapping_sub(head) == self.capacity {
                return Ok(None);
            }
        }
        Ok(Some(self.tail & (self.capacity - 1)))
    }

    /// [`Producer::next_slot`] as far as the consumer's head last loaded says: `None` when
    /// the ring looked full then (it may have room now: ask `next_slot`). Reads no shared
    /// word.
    #[inline]
    pub(crate) fn next_slot_cached(&self) -> Option<u32> {
        (self.tail.wrapping_sub(self.head_cache) < self.capacity)
            .then_some(self.tail & (self.capacity - 1))
    }

    /// Publishes the entry written into [`Producer::next_slot`]'s slot, which must have found
    /// room; tells whether the consumer must be woken.
    #[inline]
    pub(crate) fn publish_next(&mut self) -> Result<Pushed, RingError> {
        debug_assert!(self.tail.wrapping_sub(self.head_cache) < self.capacity);
        let slot = self.tail & (self.capacity - 1);
        // Release: pairs with the Acquire load of the sequence word in `Consumer::ready`:
        // publishes the entry written before.
        self.mem
            .seq(slot)
            .store(published(self.tail), Ordering::Release);
        self.tail = self.tail.wrapping_add(1);
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
    /// `mem.capacity()`, a power of two.
    capacity: u32,
}

impl<M: RingMemory<N>, const N: usize> Consumer<M, N> {
    /// Takes the consumer side of `mem`, continuing from the head stored there (0 in a fresh
    /// segment).
    pub(crate) fn new(mem: M) -> Self {
        let capacity = mem.capacity();
        debug_assert!(valid_capacity(capacity));
        // Relaxed: our own word, written by this side (or zeroed by the creator); no data rides on it.
        let head = mem.head().load(Ordering::Relaxed);
        Self {
            mem,
            head,
            capacity,
        }
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

    /// Whether the entry of index `index` is published in its slot: `Ok(true)` when the slot's
    /// sequence word says so, `Ok(false)` when it still holds what the previous lap left
    /// (`published(index - capacity)`, or 0 in a fresh ring's first lap), else
    /// [`RingError::Sequence`]: no producer writes any other value there.
    #[inline]
    fn ready(&self, index: u32) -> Result<bool, RingError> {
        let slot = index & (self.capacity - 1);
        // Acquire: pairs with the Release store of the sequence word in `Producer::try_push`:
        // the entry is written before we copy it out.
        let seq = self.mem.seq(slot).load(Ordering::Acquire);
        if seq == published(index) {
            return Ok(true);
        }
        let previous = published(index.wrapping_sub(self.capacity));
        if seq == previous || (seq == 0 && index < self.capacity) {
            return Ok(false);
        }
        Err(RingError::Sequence { index, seq })
    }

    /// Whether a pop could return something now: an entry, or the error of a slot holding a
    /// word no producer writes. One load of the next slot's sequence word: what a waiter
    /// spins on before it pops.
    #[inline]
    pub(crate) fn looks_ready(&self) -> bool {
        !matches!(self.ready(self.head), Ok(false))
    }

    /// Entries waiting now: published slots from the head on (reads up to `capacity`
    /// sequence words).
    #[cfg(test)]
    pub(crate) fn len(&self) -> Result<u32, RingError> {
        let mut ready = 0;
        while ready < self.capacity && self.ready(self.head.wrapping_add(ready))? {
            ready += 1;
        }
        Ok(ready)
    }

    /// Whether no entry waits.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> Result<bool, RingError> {
        Ok(!self.ready(self.head)?)
    }

    /// Copies the oldest entry out and frees its slot; `None` when the ring is empty. Tells
    /// whether a producer waiting for space must be woken.
    #[inline]
    pub(crate) fn try_pop(&mut self) -> Result<Option<Popped<N>>, RingError> {
        let mut entry = [0; N];
        let taken = self.try_pop_into(&mut entry)?;
        Ok(taken.map(|t| Popped {
            entry,
            wake: t.wake,
        }))
    }

    /// [`Consumer::try_pop`] into the caller's buffer `out` (left as it was when the ring is
    /// empty). The receive path copies each descriptor straight into a 16-byte aligned buffer
    /// it keeps, rather than into a result it then moves: the compiler split such moves into
    /// loads straddling two earlier stores, which the store buffer cannot forward (module doc).
    #[inline]
    pub(crate) fn try_pop_into(&mut self, out: &mut [u8; N]) -> Result<Option<Taken>, RingError> {
        if !self.ready(self.head)? {
            return Ok(None);
        }
        self.mem.read_entry(self.head & (self.capacity - 1), out);
        self.head = self.head.wrapping_add(1);
        // Release: pairs with the Acquire load of `head` in `Producer::load_head`: our copy-out
        // above completes before the producer reuses the slot.
        self.mem.head().store(self.head, Ordering::Release);
        // Pairs with the fence in `Producer::prepare_sleep` (module doc: no lost wake-up).
        fence(Ordering::SeqCst);
        let wake = take_sleeper(self.mem.producer_state())?;
        Ok(Some(Taken { wake }))
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
        if self.ready(self.head)? {
            self.cancel_sleep();
            return Ok(false);
        }
        Ok(true)
    }

    /// Withdraws a sleep declaration after waking (or on giving up).
    pub(crate) fn cancel_sleep(&self) {
        // Relaxed: the store only spares the producer a useless wake syscall; whether it sees it
        // late or early, the next `try_pop` re-reads the sequence word with Acquire.
        self.mem.consumer_state().store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[cfg(not(memwire_loom))]
mod tests;
