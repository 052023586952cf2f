//! What the hardware allows a ring of 64-byte descriptors, with no software around it: minimal
//! models of a link, ping-ponged between two processes on CPUs 0 and 1, next to the floor (one
//! shared line) and to memwire's own links. `BENCHMARKS.md` explains the numbers.
//!
//! ```text
//! cargo run --release -p memwire-transport --example ring_model [-- ROUNDS]
//! ```
//!
//! Each model is one shared memfd mapping and a `fork`ed answerer; each prints the
//! best of five batches of round trips timed together (no clock read per round trip, unlike
//! `memwire bench`, whose every row carries a clock read of some 25-60 ns). The models:
//!
//! - `floor`: both sides take turns writing one word of one line.
//! - `ring L×S`: each direction a ring of 64-byte slots (`L` slots, one every `S` lines); a
//!   message writes 8 payload bytes, a head and a sequence word into the next slot, the reader
//!   waits for the sequence word, copies the slot out and stores its index. No validation, no
//!   fences, no wake-up handshake: what any ring of this shape costs.
//! - `slot N`: `ring 256×1`, the payload (64 bytes) in the next of `N` pool slots of 256 bytes,
//!   which the reader reads after the descriptor. Slot returns are left out (free).
//! - `memwire 8 B` / `memwire 64 B`: a real link with the default configuration, spinning.
//! - `one thread 8 B` / `one thread 64 B`: the same link with one thread driving both ends, so
//!   no line crosses cores: the software's own time per round trip (two sends, two receives).
#![allow(missing_docs, clippy::unwrap_used, unsafe_code)]

use std::sync::atomic::Ordering;
use std::time::Instant;

use memwire_shm::{Access, Mapping, MemfdSegment, Segment};
use memwire_transport::{Guest, Host, HostConfig, WaitStrategy};

const LINE: usize = 64;
const BATCHES: u32 = 5;
const ROUND_TRIPS: u64 = 100_000;

fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    // Best effort: an unpinned model still runs, only noisier.
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

/// The models' shared memory: memwire-shm's bounds-checked view of a memfd, which a forked
/// answerer shares (`MAP_SHARED`). Its checks cost a compare per access, well under a ns.
fn shared(len: usize) -> Mapping {
    let segment = MemfdSegment::create("memwire-ring-model", len as u64).unwrap();
    segment.map(Access::ReadWrite).unwrap()
}

/// One direction of a ring model: `lines` slots (a power of two), one every `stride` lines,
/// after a line holding the reader's index; with `pool` slots of 256 bytes (a power of two),
/// messages carry their payload there.
#[derive(Clone, Copy)]
struct Ring {
    base: usize,
    lines: usize,
    stride: usize,
    pool: Option<(usize, usize)>,
}

impl Ring {
    fn footprint(lines: usize, stride: usize, pool: usize) -> usize {
        LINE + lines * stride * LINE + pool * 256
    }

    fn slot(&self, i: u64) -> usize {
        self.base + LINE + (i as usize & (self.lines - 1)) * self.stride * LINE
    }

    fn push(&self, m: &Mapping, i: u64, value: u64) {
        let at = self.slot(i);
        let mut head = [0u8; 12];
        head[0] = 1;
        head[4..].copy_from_slice(&value.to_le_bytes());
        if let Some((base, count)) = self.pool {
            let slot = base + (i as usize & (count - 1)) * 256;
            m.write(slot, &[value as u8; 64]).unwrap();
            m.write(slot, &value.to_le_bytes()).unwrap();
            head[4..8].copy_from_slice(&((i as usize & (count - 1)) as u32).to_le_bytes());
        }
        m.write(at, &head).unwrap();
        m.atomic_u32(at + LINE - 4)
            .unwrap()
            .store((i as u32).wrapping_add(1), Ordering::Release);
    }

    fn pop(&self, m: &Mapping, i: u64) -> u64 {
        let at = self.slot(i);
        let seq = m.atomic_u32(at + LINE - 4).unwrap();
        while seq.load(Ordering::Acquire) != (i as u32).wrapping_add(1) {
            std::hint::spin_loop();
        }
        let mut image = [0u8; LINE];
        m.read(at, &mut image).unwrap();
        m.atomic_u32(self.base)
            .unwrap()
            .store((i as u32).wrapping_add(1), Ordering::Release);
        match self.pool {
            None => u64::from_le_bytes(image[4..12].try_into().unwrap()),
            Some((base, _)) => {
                let slot = u32::from_le_bytes(image[4..8].try_into().unwrap()) as usize;
                let mut payload = [0u8; 64];
                m.read(base + slot * 256, &mut payload).unwrap();
                u64::from_le_bytes(payload[..8].try_into().unwrap())
            }
        }
    }
}

enum Model {
    Floor,
    Ring { lines: usize, stride: usize },
    Slot { slots: usize },
    Memwire { size: usize },
    OneThread { size: usize },
}

impl Model {
    fn name(&self) -> String {
        match self {
            Self::Floor => "floor (one line)".into(),
            Self::Ring { lines, stride } => format!("ring {lines}×{stride}"),
            Self::Slot { slots } => format!("slot {slots}"),
            Self::Memwire { size } => format!("memwire {size} B"),
            Self::OneThread { size } => format!("one thread {size} B"),
        }
    }

    /// Best nanoseconds per round trip over the batches.
    fn run(&self, exe: &str) -> f64 {
        match *self {
            Self::Floor => forked(LINE, |m, parent, k| {
                let w = m.atomic_u64(0).unwrap();
                let (send, expect) = if parent {
                    (2 * k + 1, 2 * k + 2)
                } else {
                    (2 * k + 2, 2 * k + 1)
                };
                if parent {
                    w.store(send, Ordering::Release);
                }
                while w.load(Ordering::Acquire) != expect {
                    std::hint::spin_loop();
                }
                if !parent {
                    w.store(send, Ordering::Release);
                }
            }),
            Self::Ring { lines, stride } => rings(lines, stride, 0),
            Self::Slot { slots } => rings(256, 1, slots),
            Self::Memwire { size } => memwire(exe, size),
            Self::OneThread { size } => one_thread(size),
        }
    }
}

/// Runs `step(m, parent, k)`, round trip `k` as one side sees it, in a forked answerer and in
/// this process; returns the best ns per round trip.
fn forked(len: usize, step: impl Fn(&Mapping, bool, u64)) -> f64 {
    let m = shared(len);
    let total = u64::from(BATCHES) * ROUND_TRIPS;
    // The child touches only the shared mapping, makes one syscall (its affinity) and leaves
    // with `_exit`; it would allocate only to panic on a failed assertion.
    // SAFETY: so it takes no lock another thread of ours (a link's watcher) held at the fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        pin(1);
        for k in 0..total {
            step(&m, false, k);
        }
        // SAFETY: `_exit` ends the child without running the parent's destructors twice.
        unsafe { libc::_exit(0) };
    }
    pin(0);
    let mut k = 0;
    let best = best_of_batches(|| {
        step(&m, true, k);
        k += 1;
    });
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    best
}

fn rings(lines: usize, stride: usize, pool: usize) -> f64 {
    assert!(lines.is_power_of_two() && (pool == 0 || pool.is_power_of_two()));
    let one = Ring::footprint(lines, stride, pool).next_multiple_of(4096);
    let ring = |dir: usize| Ring {
        base: dir * one,
        lines,
        stride,
        pool: (pool > 0).then(|| (dir * one + LINE + lines * stride * LINE, pool)),
    };
    forked(2 * one, move |m, parent, k| {
        if parent {
            ring(0).push(m, k, k);
            assert_eq!(ring(1).pop(m, k), k + 1);
        } else {
            let v = ring(0).pop(m, k);
            ring(1).push(m, k, v + 1);
        }
    })
}

/// A host whose links spin, bound under a name unique to this process and `tag`.
fn spinning_host(tag: &str) -> (Host, String) {
    let name = format!("ring-model-{}-{tag}", std::process::id());
    let config = HostConfig {
        wait: WaitStrategy::Spin,
        ..HostConfig::default()
    };
    (Host::bind(&name, config).unwrap(), name)
}

/// A real link, the answerer a spawned guest (this example again, as `guest NAME`).
fn memwire(exe: &str, size: usize) -> f64 {
    let (host, name) = spinning_host(&size.to_string());
    let mut child = std::process::Command::new(exe)
        .args(["guest", &name])
        .spawn()
        .unwrap();
    pin(0);
    let mut link = host.accept().unwrap();
    let best = best_of_batches(|| {
        let mut loan = link.tx().loan(size).unwrap();
        loan.as_mut_slice()[0] = 1;
        loan.commit().unwrap();
        std::hint::black_box(link.rx().recv().unwrap().len());
    });
    drop(link);
    let _ = child.wait();
    best
}

/// A real link whose two ends one thread drives: host and guest in this process.
fn one_thread(size: usize) -> f64 {
    let (host, name) = spinning_host(&format!("one-{size}"));
    let guest = std::thread::spawn(move || Guest::connect_with(&name, WaitStrategy::Spin).unwrap());
    let mut a = host.accept().unwrap();
    let mut b = guest.join().unwrap();
    pin(0);
    best_of_batches(|| {
        let mut loan = a.tx().loan(size).unwrap();
        loan.as_mut_slice()[0] = 1;
        loan.commit().unwrap();
        let message = b.rx().recv().unwrap();
        let len = message.len();
        drop(message);
        let mut loan = b.tx().loan(len).unwrap();
        loan.as_mut_slice()[0] = 2;
        loan.commit().unwrap();
        std::hint::black_box(a.rx().recv().unwrap().len());
    })
}

/// The best ns per round trip of [`BATCHES`] batches of [`ROUND_TRIPS`] calls of
/// `round_trip`.
fn best_of_batches(mut round_trip: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..BATCHES {
        let start = Instant::now();
        for _ in 0..ROUND_TRIPS {
            round_trip();
        }
        best = best.min(start.elapsed().as_nanos() as f64 / ROUND_TRIPS as f64);
    }
    best
}

fn guest(name: &str) {
    pin(1);
    let mut link = Guest::connect_with(name, WaitStrategy::Spin).unwrap();
    while let Ok(message) = link.rx().recv() {
        let len = message.len();
        drop(message);
        let mut loan = link.tx().loan(len).unwrap();
        loan.as_mut_slice()[0] = 2;
        loan.commit().unwrap();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("guest") {
        guest(&args[2]);
        return;
    }
    let rounds: usize = args.get(1).map_or(3, |r| r.parse().unwrap());
    let dir = std::env::temp_dir().join(format!("memwire-ring-model-{}", std::process::id()));
    // SAFETY: no other thread exists yet to read the environment.
    unsafe { std::env::set_var("MEMWIRE_RUNTIME_DIR", &dir) };
    let models = [
        Model::Floor,
        Model::Ring {
            lines: 256,
            stride: 1,
        },
        Model::Ring {
            lines: 64,
            stride: 1,
        },
        Model::Ring {
            lines: 64,
            stride: 2,
        },
        Model::Ring {
            lines: 32,
            stride: 2,
        },
        Model::Ring {
            lines: 8,
            stride: 1,
        },
        Model::Slot { slots: 1024 },
        Model::Memwire { size: 8 },
        Model::Memwire { size: 64 },
        Model::OneThread { size: 8 },
        Model::OneThread { size: 64 },
    ];
    // The host places the two vCPUs anew from time to time (the floor moves between some 30,
    // 65 and 320 ns here), so each model is timed between two floors, and its ratio is to their
    // mean; a placement that changed meanwhile shows as floors far apart, and the cell says so.
    print!("{:<18}", "MODEL");
    for r in 1..=rounds {
        print!("{:>24}", format!("ROUND {r}"));
    }
    println!();
    let mut cells = vec![Vec::new(); models.len()];
    for _ in 0..rounds {
        for (i, model) in models.iter().enumerate() {
            let before = Model::Floor.run(&args[0]);
            let t = model.run(&args[0]);
            let after = Model::Floor.run(&args[0]);
            let floor = (before + after) / 2.0;
            let moved = if before.max(after) > 1.25 * before.min(after) {
                "?"
            } else {
                " "
            };
            cells[i].push(format!("{t:.0} ns {:.2}×{moved}", t / floor));
        }
    }
    for (model, row) in models.iter().zip(&cells) {
        print!("{:<18}", model.name());
        for cell in row {
            print!("{cell:>24}");
        }
        println!();
    }
    let _ = std::fs::remove_dir_all(dir);
    println!(
        "ns per round trip, best of {BATCHES} batches of {ROUND_TRIPS}; × = over the mean of \
         the floors timed just before and after; ? = those two floors differ by over 25%"
    );
}
