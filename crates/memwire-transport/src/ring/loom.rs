//! loom models of the ring: capacity 2, two threads, every interleaving and every value the
//! memory model lets a load return. A lost wake-up shows as a deadlock, a missing
//! Release/Acquire pair as a data race on a slot (`HeapRing`'s loom `UnsafeCell`) or wrong bytes.
//!
//! ```sh
//! RUSTFLAGS="--cfg memwire_loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=3 \
//!     cargo test -p memwire-transport --release --lib loom
//! ```

use loom::sync::{Condvar, Mutex};
use loom::thread;

use super::{Consumer, HeapRing, Producer, PushError, RingMemory, WaitKind};
use crate::sync::{Arc, AtomicU32, Ordering};

type Entry = [u8; 8];

fn entry(value: u8) -> Entry {
    [value, !value, value.wrapping_mul(3), 1, 2, 3, 4, value]
}

/// `FUTEX_WAIT` / `FUTEX_WAKE` as the kernel does them: the waiter compares the word with
/// `expected` and queues itself under the futex's lock, a wake takes the same lock and wakes
/// whoever is queued. A wake that finds nobody queued does nothing, so a handshake that misses a
/// sleeper leaves it blocked for good, which loom reports as a deadlock.
struct Futex {
    queue: Mutex<()>,
    woken: Condvar,
}

impl Futex {
    fn new() -> Self {
        Self {
            queue: Mutex::new(()),
            woken: Condvar::new(),
        }
    }

    fn wait(&self, word: &AtomicU32, expected: u32) {
        let queue = self.queue.lock().unwrap();
        // Relaxed, like the kernel's plain read: the lock orders it after any earlier wake.
        if word.load(Ordering::Relaxed) == expected {
            drop(self.woken.wait(queue).unwrap());
        }
    }

    fn wake(&self) {
        let _queue = self.queue.lock().unwrap();
        self.woken.notify_all();
    }
}

fn ring() -> (Producer<HeapRing<8>, 8>, Consumer<HeapRing<8>, 8>) {
    let mem = HeapRing::new(2);
    (Producer::new(mem.clone()), Consumer::new(mem))
}

/// Three entries through two slots: the producer waits for space, the consumer for entries,
/// both by yielding; every entry arrives once, in order, with its bytes.
#[test]
fn publish_and_consume_in_order() {
    loom::model(|| {
        let (mut tx, mut rx) = ring();
        let producer = thread::spawn(move || {
            for value in 0..3 {
                loop {
                    match tx.try_push(&entry(value)) {
                        Ok(_) => break,
                        Err(PushError::Full) => thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        });
        for value in 0..3 {
            let got = loop {
                if let Some(popped) = rx.try_pop().unwrap() {
                    break popped.entry;
                }
                thread::yield_now();
            };
            assert_eq!(got, entry(value));
        }
        assert_eq!(rx.try_pop().unwrap(), None);
        producer.join().unwrap();
    });
}

/// The consumer finds the ring empty and goes to sleep on its state word while the producer
/// pushes one entry: either the producer sees the sleeper and wakes it, or the consumer's
/// re-check sees the entry. Never both miss (that would deadlock).
#[test]
fn no_lost_wake_up_for_a_sleeping_consumer() {
    loom::model(|| {
        let (mut tx, mut rx) = ring();
        let futex = Arc::new(Futex::new());
        let producer = thread::spawn({
            let futex = futex.clone();
            move || {
                let pushed = tx.try_push(&entry(9)).unwrap();
                match pushed.wake {
                    Some(WaitKind::Futex) => futex.wake(),
                    None => {}
                    Some(other) => panic!("consumer declared {other:?}"),
                }
            }
        });
        let got = loop {
            if let Some(popped) = rx.try_pop().unwrap() {
                break popped.entry;
            }
            if rx.prepare_sleep(WaitKind::Futex).unwrap() {
                futex.wait(rx.memory().consumer_state(), WaitKind::Futex.word());
                rx.cancel_sleep();
            }
        };
        assert_eq!(got, entry(9));
        producer.join().unwrap();
    });
}

/// The mirror: a full ring, a producer going to sleep for space on its state word, a consumer
/// popping both entries; the producer is never left asleep with free slots.
#[test]
fn no_lost_wake_up_for_a_producer_waiting_for_space() {
    loom::model(|| {
        let (mut tx, mut rx) = ring();
        for value in 0..2 {
            let _ = tx.try_push(&entry(value)).unwrap();
        }
        let futex = Arc::new(Futex::new());
        let producer = thread::spawn({
            let futex = futex.clone();
            move || {
                loop {
                    match tx.try_push(&entry(2)) {
                        Ok(_) => break,
                        Err(PushError::Full) => {
                            if tx.prepare_sleep(WaitKind::Futex).unwrap() {
                                futex.wait(tx.memory().producer_state(), WaitKind::Futex.word());
                                tx.cancel_sleep();
                            }
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        });
        // The two entries are there already; the third arrives only after the producer woke.
        for value in 0..2 {
            let popped = rx.try_pop().unwrap().unwrap();
            assert_eq!(popped.entry, entry(value));
            match popped.wake {
                Some(WaitKind::Futex) => futex.wake(),
                None => {}
                Some(other) => panic!("producer declared {other:?}"),
            }
        }
        // A producer left asleep never returns: loom reports the join as a deadlock.
        producer.join().unwrap();
        assert_eq!(
            rx.try_pop().unwrap().map(|popped| popped.entry),
            Some(entry(2))
        );
    });
}

/// The model is not vacuous: a consumer whose sleep declaration skips `F_c` (module doc of
/// `ring`) may read a stale sequence word while the producer reads a stale state word, and
/// sleep forever beside a published entry. loom must find that interleaving and report it as a
/// deadlock.
#[test]
#[should_panic(expected = "deadlock")]
fn a_sleep_declaration_without_its_fence_loses_a_wake_up() {
    loom::model(|| {
        let (mut tx, rx) = ring();
        let futex = Arc::new(Futex::new());
        let producer = thread::spawn({
            let futex = futex.clone();
            move || {
                if tx.try_push(&entry(9)).unwrap().wake.is_some() {
                    futex.wake();
                }
            }
        });
        let mem = rx.memory();
        // `Consumer::prepare_sleep` at head 0, without its fence.
        mem.consumer_state()
            .store(WaitKind::Futex.word(), Ordering::SeqCst);
        if mem.seq(0).load(Ordering::Acquire) != super::published(0) {
            futex.wait(mem.consumer_state(), WaitKind::Futex.word());
        }
        producer.join().unwrap();
    });
}
