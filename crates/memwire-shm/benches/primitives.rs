//! What the primitives cost: the safe view against a raw atomic, a wake syscall with nobody
//! asleep, a round trip between two threads woken by futex, by eventfd, or by spinning, and
//! a resource open + release.
//!
//! `cargo bench -p memwire-shm --bench primitives`; results and the machine in BENCHMARKS.md.

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use memwire_shm::{Access, Doorbell, MemfdSegment, Namespace, Resource, Segment, futex};

fn view(c: &mut Criterion) {
    let seg = MemfdSegment::create("bench", 1 << 16).unwrap();
    let map = seg.map(Access::ReadWrite).unwrap();
    let raw = AtomicU64::new(7);
    let mut g = c.benchmark_group("view");
    g.bench_function("raw AtomicU64 load", |b| {
        b.iter(|| black_box(&raw).load(Ordering::Acquire))
    });
    g.bench_function("Mapping::load_u64 (checked)", |b| {
        b.iter(|| map.load_u64(black_box(64), Ordering::Acquire).unwrap())
    });
    let word = map.atomic_u64(64).unwrap();
    g.bench_function("Mapping::atomic_u64, checked once", |b| {
        b.iter(|| black_box(word).load(Ordering::Acquire))
    });
    let mut buf = [0u8; 64];
    g.bench_function("Mapping::read 64 B", |b| {
        b.iter(|| map.read(black_box(128), &mut buf).unwrap())
    });
    g.finish();
}

fn wake(c: &mut Criterion) {
    let mut g = c.benchmark_group("wake, nobody asleep");
    let word = AtomicU32::new(0);
    g.bench_function("futex wake", |b| b.iter(|| futex::wake_one(&word).unwrap()));
    let bell = Doorbell::new().unwrap();
    g.bench_function("eventfd ring + take", |b| {
        b.iter(|| {
            bell.ring().unwrap();
            bell.try_take().unwrap()
        })
    });
    g.finish();
}

/// Two threads pass a token back and forth; `wait` blocks until the word is `want`.
fn round_trips(
    iters: u64,
    wait: impl Fn(&AtomicU32, u32) + Sync,
    post: impl Fn(&AtomicU32, u32) + Sync,
) -> Duration {
    let word = Arc::new(AtomicU32::new(0));
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..iters {
                let n = (2 * i) as u32;
                wait(&word, n + 1);
                post(&word, n + 2);
            }
        });
        let start = Instant::now();
        for i in 0..iters {
            let n = (2 * i) as u32;
            post(&word, n + 1);
            wait(&word, n + 2);
        }
        start.elapsed()
    })
}

fn ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("round trip between two threads");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("spin (no syscall)", |b| {
        b.iter_custom(|iters| {
            round_trips(
                iters,
                |w, want| {
                    let mut spins = 0u32;
                    while w.load(Ordering::Acquire) != want {
                        spins += 1;
                        // 2 vCPUs: let the other side run if it shares our CPU.
                        if spins.is_multiple_of(1024) {
                            std::thread::yield_now();
                        }
                        std::hint::spin_loop();
                    }
                },
                |w, v| w.store(v, Ordering::Release),
            )
        })
    });
    g.bench_function("futex wait/wake", |b| {
        b.iter_custom(|iters| {
            round_trips(
                iters,
                |w, want| loop {
                    let now = w.load(Ordering::Acquire);
                    if now == want {
                        break;
                    }
                    futex::wait(w, now, None).unwrap();
                },
                |w, v| {
                    w.store(v, Ordering::Release);
                    futex::wake_one(w).unwrap();
                },
            )
        })
    });
    let bells = [Doorbell::new().unwrap(), Doorbell::new().unwrap()];
    g.bench_function("eventfd", |b| {
        b.iter_custom(|iters| {
            round_trips(
                iters,
                |w, want| {
                    let bell = &bells[(want % 2) as usize];
                    while w.load(Ordering::Acquire) != want {
                        bell.wait(None).unwrap();
                    }
                },
                |w, v| {
                    w.store(v, Ordering::Release);
                    bells[(v % 2) as usize].ring().unwrap();
                },
            )
        })
    });
    g.finish();
}

fn resource(c: &mut Criterion) {
    let ns = Namespace::new(format!("bench-{}", std::process::id())).unwrap();
    let opts = Resource::options().namespace(ns).remove_when_unused(true);
    let held = opts.create("bench", 4096).unwrap();
    let mut g = c.benchmark_group("resource");
    g.bench_function("open + release (4 KiB, one other holder)", |b| {
        b.iter(|| opts.open("bench").unwrap())
    });
    g.bench_function("create + release + remove (4 KiB)", |b| {
        b.iter(|| opts.create("bench-churn", 4096).unwrap())
    });
    g.finish();
    drop(held);
}

criterion_group!(benches, view, wake, ping_pong, resource);
criterion_main!(benches);
