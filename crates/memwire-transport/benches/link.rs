//! A link's round trip measured by criterion: host and guest are two threads of this process
//! (the cross-process numbers, with percentiles and baselines, come from
//! `memwire bench transport`). Spinning both ends; 8 B inline, 64 B and 4 KiB in slots.
//!
//! `cargo bench -p memwire-transport --bench link`

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use memwire_transport::{Guest, Host, HostConfig, WaitStrategy};

fn round_trip(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("memwire-bench-{}", std::process::id()));
    // SAFETY: set before any other thread of this process starts.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("MEMWIRE_RUNTIME_DIR", &dir)
    };
    let name = format!("bench-{}", std::process::id());
    let host = Host::bind(
        &name,
        HostConfig {
            wait: WaitStrategy::Spin,
            ..HostConfig::default()
        },
    )
    .unwrap();
    let echo = {
        let name = name.clone();
        std::thread::spawn(move || {
            let mut link = Guest::connect_with(&name, WaitStrategy::Spin).unwrap();
            while let Ok(msg) = link.rx().recv() {
                let mut loan = link.tx().loan(msg.len()).unwrap();
                loan.as_mut_slice().copy_from_slice(&msg);
                drop(msg);
                loan.commit().unwrap();
            }
        })
    };
    let mut link = host.accept().unwrap();
    let mut group = c.benchmark_group("link round trip, two spinning threads");
    group.measurement_time(Duration::from_secs(4));
    for size in [8usize, 64, 4096] {
        group.bench_function(format!("{size} B"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut loan = link.tx().loan(size).unwrap();
                    loan.as_mut_slice()[0] = 1;
                    loan.commit().unwrap();
                    black_box(link.rx().recv().unwrap().len());
                }
                start.elapsed()
            })
        });
    }
    group.finish();
    drop(link);
    echo.join().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
