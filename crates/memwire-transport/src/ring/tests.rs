//! Unit tests of the ring, each generic one run over both memories (`HeapRing`,
//! `SegmentRing`).

use super::*;
use std::sync::Arc;
use std::time::Duration;

use memwire_shm::{Access, MemfdSegment, Segment, futex::WaitOutcome};
use proptest::prelude::*;

/// A 16-byte slot image: a value in its first 8 bytes; the last 4 are the ring's.
type Entry = [u8; 16];

fn entry(value: u64) -> Entry {
    let mut image = [0; 16];
    image[..8].copy_from_slice(&value.to_le_bytes());
    image
}

/// The value of an entry pushed by `entry`.
fn value(image: &Entry) -> u64 {
    crate::wire::u64_at(image, 0)
}

fn segment<const N: usize>(capacity: u32) -> SegmentRing<N> {
    let len = SegmentRing::<N>::footprint(capacity) as u64;
    let segment = MemfdSegment::create("ring-test", len).unwrap();
    let mapping = Arc::new(segment.map(Access::ReadWrite).unwrap());
    SegmentRing::new(mapping, 0, capacity).unwrap()
}

/// Resets `mem` to an empty ring whose head stands at `index`, both sides awake: as a ring
/// that has passed `index` entries would be, each slot holding the sequence word of its
/// previous lap (a fresh ring starts at 0 with zeroed slots, see the module doc).
fn reset<M: RingMemory<N>, const N: usize>(mem: &M, index: u32) {
    let capacity = mem.capacity();
    for k in 0..capacity {
        let previous = index.wrapping_sub(capacity).wrapping_add(k);
        mem.seq(previous & (capacity - 1))
            .store(published(previous), Ordering::Relaxed);
    }
    mem.head().store(index, Ordering::Relaxed);
    mem.consumer_state().store(0, Ordering::Relaxed);
    mem.producer_state().store(0, Ordering::Relaxed);
}

fn pair<M: RingMemory<N> + Clone, const N: usize>(mem: &M) -> (Producer<M, N>, Consumer<M, N>) {
    (Producer::new(mem.clone()), Consumer::new(mem.clone()))
}

fn fifo_across_wrap<M: RingMemory<16> + Clone>(mem: M) {
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
            assert_eq!(value(&popped.entry), received);
            assert_eq!(popped.wake, None);
            received += 1;
        }
    }
    while let Some(popped) = rx.try_pop().unwrap() {
        assert_eq!(value(&popped.entry), received);
        received += 1;
    }
    assert_eq!(received, sent);
    assert!(mem.head().load(Ordering::Relaxed) < 1000, "indices wrapped");
}

#[test]
fn fifo_across_slot_and_index_wrap() {
    fifo_across_wrap(HeapRing::<16>::new(4));
    fifo_across_wrap(segment::<16>(4));
    fifo_across_wrap(HeapRing::<16>::new(1));
    fifo_across_wrap(segment::<16>(1));
}

#[test]
fn carries_64_byte_slots_intact_but_their_sequence_word() {
    let mem = segment::<64>(8);
    let (mut tx, mut rx) = pair(&mem);
    for round in 0..20u8 {
        let image: [u8; 64] = std::array::from_fn(|i| round.wrapping_mul(64).wrapping_add(i as u8));
        let _ = tx.try_push(&image).unwrap();
        let popped = rx.try_pop().unwrap().unwrap().entry;
        assert_eq!(popped[..60], image[..60]);
        // The slot's sequence word, not the image's last bytes.
        assert_eq!(crate::wire::u32_at(&popped, 60), u32::from(round) + 1);
    }
}

fn full_and_empty<M: RingMemory<16> + Clone>(mem: M) {
    let (mut tx, mut rx) = pair(&mem);
    let capacity = tx.capacity();
    assert_eq!(rx.try_pop().unwrap(), None);
    assert!(rx.is_empty().unwrap() && tx.is_empty().unwrap());
    for i in 0..capacity {
        let _ = tx.try_push(&entry(i.into())).unwrap();
    }
    assert_eq!(tx.try_push(&entry(99)), Err(PushError::Full));
    assert_eq!((tx.len().unwrap(), rx.len().unwrap()), (capacity, capacity));
    assert_eq!(value(&rx.try_pop().unwrap().unwrap().entry), 0);
    let _ = tx.try_push(&entry(capacity.into())).unwrap();
    assert_eq!(tx.try_push(&entry(99)), Err(PushError::Full));
    for i in 1..=capacity {
        assert_eq!(value(&rx.try_pop().unwrap().unwrap().entry), i.into());
    }
    assert_eq!(rx.try_pop().unwrap(), None);
    assert!(rx.is_empty().unwrap() && tx.is_empty().unwrap());
}

#[test]
fn full_and_empty_rings() {
    full_and_empty(HeapRing::<16>::new(4));
    full_and_empty(segment::<16>(4));
}

fn corrupt_peer_words<M: RingMemory<16> + Clone>(mem: M) {
    let capacity = mem.capacity();
    let start = u32::MAX - 1;
    let corrupt = |head, tail| RingError::Corrupt {
        head,
        tail,
        capacity,
    };

    // A producer's sequence words: what the previous lap left is an empty slot; any value but
    // that and the expected one is refused; the expected one on a slot never written makes us
    // copy out whatever bytes are there (the layer above validates them). None of them skips
    // or repeats an index of ours.
    reset(&mem, start);
    let mut rx = Consumer::<M, 16>::new(mem.clone());
    let next = start & (capacity - 1);
    mem.seq(next)
        .store(published(start.wrapping_sub(capacity)), Ordering::Relaxed);
    assert_eq!(rx.try_pop(), Ok(None));
    assert_eq!(rx.prepare_sleep(WaitKind::Futex), Ok(true));
    rx.cancel_sleep();
    for seq in [0, 1, start, published(start).wrapping_add(capacity)] {
        mem.seq(next).store(seq, Ordering::Relaxed);
        let bad = RingError::Sequence { index: start, seq };
        assert_eq!(rx.try_pop(), Err(bad));
        assert_eq!(rx.is_empty(), Err(bad));
        assert_eq!(rx.prepare_sleep(WaitKind::Futex), Err(bad));
        rx.cancel_sleep();
    }
    for k in 0..capacity {
        let index = start.wrapping_add(k);
        mem.seq(index & (capacity - 1))
            .store(published(index), Ordering::Relaxed);
    }
    assert_eq!(rx.len(), Ok(capacity));
    for _ in 0..capacity {
        assert!(rx.try_pop().unwrap().is_some());
    }
    assert_eq!(rx.try_pop(), Ok(None));

    // A consumer's head behind the producer's window, or ahead of the tail.
    reset(&mem, start);
    let (mut tx, _rx) = pair::<M, 16>(&mem);
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
    }

    // A state word naming no way to wait.
    reset(&mem, start);
    let (mut tx, mut rx) = pair::<M, 16>(&mem);
    mem.consumer_state().store(7, Ordering::Relaxed);
    assert_eq!(
        tx.try_push(&entry(1)),
        Err(PushError::Corrupt(RingError::WaitState { value: 7 }))
    );
    mem.producer_state().store(u32::MAX, Ordering::Relaxed);
    assert_eq!(rx.try_pop(), Err(RingError::WaitState { value: u32::MAX }));
}

#[test]
fn corrupt_peer_words_are_rejected_without_panicking() {
    corrupt_peer_words(HeapRing::<16>::new(4));
    corrupt_peer_words(segment::<16>(4));
}

fn wake_only_a_sleeper<M: RingMemory<16> + Clone>(mem: M) {
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
    wake_only_a_sleeper(HeapRing::<16>::new(4));
    wake_only_a_sleeper(segment::<16>(4));
}

/// Scribbles `head_word`, the sequence word of the consumer's next slot (`seq_word`) and the
/// state words into a ring holding `filled` entries from `start`; every call must return, and
/// reject exactly the out-of-range head and the sequence words no producer writes.
fn scribbles<M: RingMemory<16> + Clone>(mem: &M, start: u32, filled: u32, words: [u32; 4]) {
    let [head_word, seq_word, consumer_state, producer_state] = words;
    let capacity = mem.capacity();
    reset(mem, start);
    let (mut tx, mut rx) = pair::<M, 16>(mem);
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

    mem.seq(start & (capacity - 1))
        .store(seq_word, Ordering::Relaxed);
    let previous = published(start.wrapping_sub(capacity));
    let fresh = seq_word == 0 && start < capacity;
    match rx.is_empty() {
        Ok(empty) => assert!(
            (!empty && seq_word == published(start)) || (empty && (seq_word == previous || fresh))
        ),
        Err(e) => assert_eq!(
            e,
            RingError::Sequence {
                index: start,
                seq: seq_word
            }
        ),
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
        // Half the cases put the peer's words near the real ones, where the boundaries are.
        let mut words = words;
        if near[0] % 2 == 0 {
            words[0] = start.wrapping_add_signed(i32::from(near[0] / 16));
            // Around this lap's and the previous lap's words (capacity 4).
            words[1] = published(start).wrapping_add_signed(i32::from(near[1] / 32));
        }
        scribbles(&HeapRing::<16>::new(4), start, filled, words);
        SEGMENT.with(|mem| scribbles(mem, start, filled, words));
    }
}

thread_local! {
    /// One segment for all proptest cases; `scribbles` resets it.
    static SEGMENT: SegmentRing<16> = segment::<16>(4);
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
    let mem = HeapRing::<16>::new(64);
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
                    break value(&popped.entry);
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
    let mem = segment::<16>(64);
    let (mut tx, mut rx) = pair(&mem);
    let map = mem.mapping().clone();
    let (consumer_word, producer_word) = (mem.consumer_state_offset(), mem.producer_state_offset());
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
                    break value(&popped.entry);
                }
                if !backoff.snooze() && rx.prepare_sleep(WaitKind::Futex).unwrap() {
                    sleep(consumer_word);
                    rx.cancel_sleep();
                }
            }
        }));
    });
}
