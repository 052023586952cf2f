//! `memwire bench store`: every case once, in order, then the table and the targets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use hdrhistogram::Histogram;
use memwire_store::protocol::{Scope, VarPath};
use memwire_store::{Local, Remote, RemoteOptions, WatchEvent};

use super::child::{RedisServer, StoreServer, find_redis};
use super::resp::{self, Reply};
use super::table;
use super::timing::{self, BATCH};
use crate::cli::bench::baseline::Floor;
use crate::cli::bench::case::{Payload, Suite};
use crate::cli::bench::case_list::RunArgs;
use crate::cli::bench::measure::{Budget, measure};
use crate::cli::bench::pin;
use crate::cli::bench::report::{Machine, Row};
use crate::cli::bench::rpc::timing::{Timed, one_at_a_time};
use crate::cli::bench::transport::progress;

/// Clients in `remote-set-16`.
const CLIENTS: usize = 16;

/// The value every set writes (and the small get reads): 8 bytes.
const SMALL: usize = 8;

/// The large get's value: 4 KiB.
const LARGE: usize = 4096;

/// The value that tells the watcher to stop.
const STOP: &[u8] = b"stop";

/// Printed (and written to stderr with `--json -`) when redis-server is not on PATH.
pub(crate) const NO_REDIS: &str = "redis-server: not found on PATH; the redis-get, redis-set \
                                   and redis-pubsub rows are skipped.\n";

/// Measure the store: local reads from the mapping, local and remote (WebSocket) sets, a
/// local watcher's wake-up, against a redis-server from PATH.
#[derive(Debug, clap::Args)]
#[command(mut_arg("iters", |a| a.help(
    "Samples timed per case, at most (default 100 000; 10 000 with --quick): operations, or \
     batches of 1 000 for the local gets. Each case also stops at its time budget",
)))]
pub(crate) struct Args {
    #[command(flatten)]
    run: RunArgs,
}

/// The cases, in the order they run and print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StoreCase {
    LocalGet8,
    LocalGet4096,
    LocalSet,
    LocalSetCold,
    WatchWake,
    WatchWakeCold,
    RemoteGet,
    RemoteSet,
    RemoteSet16,
    FloorFutex,
    RedisGet,
    RedisSet,
    RedisPubsub,
}

impl StoreCase {
    const STORE: [Self; 9] = [
        Self::LocalGet8,
        Self::LocalGet4096,
        Self::LocalSet,
        Self::LocalSetCold,
        Self::WatchWake,
        Self::WatchWakeCold,
        Self::RemoteGet,
        Self::RemoteSet,
        Self::RemoteSet16,
    ];
    const REDIS: [Self; 3] = [Self::RedisGet, Self::RedisSet, Self::RedisPubsub];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::LocalGet8 => "local-get-8",
            Self::LocalGet4096 => "local-get-4096",
            Self::LocalSet => "local-set",
            Self::LocalSetCold => "local-set-cold",
            Self::WatchWake => "watch-wake",
            Self::WatchWakeCold => "watch-wake-cold",
            Self::RemoteGet => "remote-get",
            Self::RemoteSet => "remote-set",
            Self::RemoteSet16 => "remote-set-16",
            Self::FloorFutex => "floor-futex",
            Self::RedisGet => "redis-get",
            Self::RedisSet => "redis-set",
            Self::RedisPubsub => "redis-pubsub",
        }
    }

    fn suite(self) -> Suite {
        if Self::STORE.contains(&self) {
            Suite::Store
        } else {
            Suite::Baseline
        }
    }

    /// The value size it moves, in bytes (floor-futex: the message size it is the floor for).
    fn size(self) -> usize {
        match self {
            Self::LocalGet4096 => LARGE,
            Self::FloorFutex => 64,
            _ => SMALL,
        }
    }
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let budget = args.run.budget()?;
    let machine = Machine::detect(pin::place);
    let cpu = machine.peer_cpu;
    let redis = find_redis();
    let mut cases: Vec<StoreCase> = StoreCase::STORE.to_vec();
    cases.push(StoreCase::FloorFutex);
    if redis.is_some() {
        cases.extend(StoreCase::REDIS);
    }
    let bar = progress(cases.len() as u64);
    let mut rows = Vec::with_capacity(cases.len());
    let server = StoreServer::start(cpu)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the client's runtime")?;
    let mut redis_server = None;
    for case in cases {
        bar.set_message(case.name());
        let measured = if StoreCase::REDIS.contains(&case) {
            let program = redis.as_deref().context("no redis-server")?;
            if redis_server.is_none() {
                redis_server = Some(RedisServer::start(program, cpu)?);
            }
            let port = redis_server.as_ref().map_or(0, |r| r.port);
            redis_case(case, &budget, port).map(|timed| Measured {
                timed,
                wake_syscalls_per_msg: None,
            })
        } else {
            measure_case(case, &budget, &server, cpu, &runtime)
        };
        let measured = measured.with_context(|| format!("benchmark case {}", case.name()))?;
        rows.push(row(case, &measured, &machine));
        bar.inc(1);
    }
    bar.finish_and_clear();
    drop(redis_server);
    drop(server);
    if redis.is_none() && args.run.json_to_stdout() {
        eprint!("{NO_REDIS}");
    }
    args.run.write_out(&rows, || {
        let mut text = table::text(&rows);
        if redis.is_none() {
            text.push_str(NO_REDIS);
        }
        text
    })
}

fn row(case: StoreCase, m: &Measured, machine: &Machine) -> Row {
    let timed = &m.timed;
    let samples = timed.rtt.len();
    Row {
        suite: case.suite(),
        case: case.name(),
        size: case.size(),
        payload: if case == StoreCase::FloorFutex {
            Payload::Untouched
        } else {
            Payload::Touched
        },
        samples,
        rtt_p50_ns: timed.rtt.value_at_quantile(0.5),
        rtt_p99_ns: timed.rtt.value_at_quantile(0.99),
        rtt_p999_ns: timed.rtt.value_at_quantile(0.999),
        rtt_max_ns: timed.rtt.max(),
        one_way_mean_ns: timed.total_ns as f64 / (2 * samples.max(1)) as f64,
        msgs_per_s: timed.per_s,
        gb_per_s: None,
        throughput_from: if case == StoreCase::RemoteSet16 {
            "in_flight"
        } else {
            "round_trip"
        },
        wake_syscalls_per_msg: m.wake_syscalls_per_msg,
        x_floor: None,
        floor_spin_p50_ns: None,
        touch_floor_p50_ns: None,
        transport_spin_p50_ns: None,
        floor_futex_p50_ns: None,
        x_floor_futex: None,
        machine: machine.clone(),
    }
}

struct Measured {
    timed: Timed,
    wake_syscalls_per_msg: Option<f64>,
}

fn path(s: &str) -> Result<VarPath> {
    s.parse().with_context(|| format!("the path {s}"))
}

fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).context("creating a histogram")
}

fn measure_case(
    case: StoreCase,
    budget: &Budget,
    server: &StoreServer,
    cpu: Option<usize>,
    runtime: &tokio::runtime::Runtime,
) -> Result<Measured> {
    let small = [7u8; SMALL];
    let timed = match case {
        StoreCase::LocalGet8 | StoreCase::LocalGet4096 => {
            let local = Local::connect_at(&server.socket, &server.key)?;
            let size = case.size();
            let variable = format!("v{size}");
            local.set(&path(&format!("bench/get/{variable}"))?, &vec![1; size])?;
            // The API for a hot loop: a `Reader` copies into a buffer it reuses.
            let mut reader = local.reader("bench")?;
            let mut value = Vec::with_capacity(size);
            timing::ops(budget, BATCH, || {
                reader
                    .get_into("get", &variable, &mut value)?
                    .context("the variable is gone")?;
                ensure!(value.len() == size, "read {} bytes", value.len());
                Ok(())
            })?
        }
        StoreCase::LocalSet => {
            let local = Local::connect_at(&server.socket, &server.key)?;
            let p = path("bench/set/local")?;
            timing::ops(budget, 1, || {
                local.set(&p, &small)?;
                Ok(())
            })?
        }
        StoreCase::LocalSetCold => {
            let local = Local::connect_at(&server.socket, &server.key)?;
            let p = path("bench/set/cold")?;
            timing::after_pause(budget, |_| {
                local.set(&p, &small)?;
                Ok(())
            })?
        }
        StoreCase::WatchWake => watch_wake(budget, server, Duration::ZERO)?,
        StoreCase::WatchWakeCold => watch_wake(budget, server, timing::SETTLE)?,
        StoreCase::RemoteGet | StoreCase::RemoteSet => runtime.block_on(async {
            let remote = Remote::connect(&server.url, &server.key, RemoteOptions::default())
                .await
                .context("connecting to the WebSocket")?;
            let p = path("bench/remote/one")?;
            remote.set(&p, &small, None).await?;
            let get = case == StoreCase::RemoteGet;
            one_at_a_time(budget, |k| {
                let (remote, p) = (&remote, &p);
                async move {
                    if get {
                        let got = remote.get(p).await?;
                        ensure!(got.value.len() == SMALL, "read {} bytes", got.value.len());
                    } else {
                        remote.set(p, &small, None).await?;
                    }
                    Ok(k.wrapping_add(1))
                }
            })
            .await
        })?,
        StoreCase::RemoteSet16 => runtime.block_on(remote_clients(budget, server))?,
        StoreCase::FloorFutex => {
            let m = measure(&Floor::Futex, case.size(), Payload::Untouched, budget, cpu)?;
            let mean_ns = m.total_ns as f64 / m.rtt.len().max(1) as f64;
            return Ok(Measured {
                timed: Timed {
                    rtt: m.rtt,
                    total_ns: m.total_ns,
                    per_s: 1e9 / mean_ns,
                },
                wake_syscalls_per_msg: m.wake_syscalls_per_msg,
            });
        }
        StoreCase::RedisGet | StoreCase::RedisSet | StoreCase::RedisPubsub => {
            bail!("a redis case without redis-server")
        }
    };
    Ok(Measured {
        timed,
        wake_syscalls_per_msg: None,
    })
}

/// `watch-wake`: a second local client on another thread sleeps in `LocalWatcher::next`;
/// each sample starts once it sleeps in the kernel and, after `pause` (`watch-wake-cold`: the
/// server's end of the setter's link then sleeps too), runs from the setter's `set` to the
/// watcher's return with the change.
fn watch_wake(budget: &Budget, server: &StoreServer, pause: Duration) -> Result<Timed> {
    let p = path("bench/wake/v")?;
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (socket, key) = (server.socket.clone(), server.key.clone());
    let scope = Scope::Variable(p.clone());
    let waiter = std::thread::spawn(move || -> Result<()> {
        let local = Local::connect_at(&socket, &key)?;
        let mut watcher = local.watch(&scope, None)?;
        let _ = ready_tx.send(timing::Sleeper::this_thread());
        loop {
            let event = watcher.next()?;
            let woke = Instant::now();
            if let WatchEvent::Changed { value, .. } = event
                && (value.as_deref() == Some(STOP) || tx.send(woke).is_err())
            {
                return Ok(());
            }
        }
    });
    let Ok(sleeper) = ready_rx.recv_timeout(Duration::from_secs(10)) else {
        return match waiter.join() {
            Ok(Err(e)) => Err(e.context("the watcher")),
            _ => bail!("the watcher did not start"),
        };
    };
    let local = Local::connect_at(&server.socket, &server.key)?;
    let small = [7u8; SMALL];
    let timed = timing::wakes(
        budget,
        &sleeper,
        pause,
        |_| {
            local.set(&p, &small)?;
            Ok(())
        },
        &rx,
    );
    local.set(&p, STOP)?;
    drop(rx);
    match waiter.join() {
        Ok(r) => r.context("the watcher")?,
        Err(_) => bail!("the watcher panicked"),
    }
    timed
}

/// `remote-set-16`: 16 clients, each its own WebSocket and task, setting its own variable one
/// set at a time; the first tenth of the echo time warms up, sets started after it are timed
/// until the echo time ends or `budget.iters` sets in all. Sets/s: timed sets / wall clock.
async fn remote_clients(budget: &Budget, server: &StoreServer) -> Result<Timed> {
    let mut clients = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let remote = Remote::connect(&server.url, &server.key, RemoteOptions::default())
            .await
            .context("connecting to the WebSocket")?;
        clients.push((remote, path(&format!("bench/remote/c{i}"))?));
    }
    let start = Instant::now();
    let timed_from = start + budget.echo_time / 10;
    let end = start + budget.echo_time;
    let claimed = Arc::new(AtomicU64::new(0));
    let iters = budget.iters;
    let mut handles = Vec::with_capacity(CLIENTS);
    for (remote, p) in clients {
        let claimed = Arc::clone(&claimed);
        handles.push(tokio::spawn(async move {
            let mut rtt = histogram()?;
            let (mut total_ns, mut last) = (0u128, None);
            loop {
                let t0 = Instant::now();
                if t0 > end {
                    break;
                }
                remote.set(&p, &[7u8; SMALL], None).await?;
                let t1 = Instant::now();
                if t0 >= timed_from {
                    // Relaxed: a count; the histograms are joined after the tasks end.
                    if claimed.fetch_add(1, Ordering::Relaxed) >= iters {
                        break;
                    }
                    let ns = (t1 - t0).as_nanos();
                    rtt.saturating_record(u64::try_from(ns).unwrap_or(u64::MAX));
                    total_ns += ns;
                    last = Some(t1);
                }
            }
            anyhow::Ok((rtt, total_ns, last))
        }));
    }
    let mut rtt = histogram()?;
    let (mut total_ns, mut last) = (0u128, timed_from);
    for handle in handles {
        let (share, ns, at) = handle.await.context("a client task panicked")??;
        rtt.add(&share).context("joining histograms")?;
        total_ns += ns;
        last = last.max(at.unwrap_or(timed_from));
    }
    let wall = (last - timed_from).max(Duration::from_nanos(1));
    let per_s = rtt.len() as f64 / wall.as_secs_f64();
    Ok(Timed {
        rtt,
        total_ns,
        per_s,
    })
}

/// The redis cases: GET and SET of an 8 B value one at a time on one connection; SET → its
/// keyspace notification reaching a subscriber on another thread (`redis-pubsub`).
fn redis_case(case: StoreCase, budget: &Budget, port: u16) -> Result<Timed> {
    let small = [7u8; SMALL];
    let mut conn = resp::Conn::connect(port)?;
    let ok = |reply: Reply| -> Result<()> {
        ensure!(
            reply == Reply::Simple("OK".to_owned()),
            "SET answered {reply:?}"
        );
        Ok(())
    };
    match case {
        StoreCase::RedisGet => {
            ok(conn.call(&[b"SET", b"bench:get", &small])?)?;
            timing::ops(budget, 1, || match conn.call(&[b"GET", b"bench:get"])? {
                Reply::Bulk(Some(v)) if v.len() == SMALL => Ok(()),
                other => bail!("GET answered {other:?}"),
            })
        }
        StoreCase::RedisSet => timing::ops(budget, 1, || {
            ok(conn.call(&[b"SET", b"bench:set", &small])?)
        }),
        _ => {
            let mut sub = resp::Conn::connect(port)?;
            sub.call(&[b"SUBSCRIBE", b"__keyspace@0__:bench:wake"])?;
            let (tx, rx) = mpsc::channel();
            let (sleeper_tx, sleeper_rx) = mpsc::channel();
            let waiter = std::thread::spawn(move || -> Result<()> {
                let _ = sleeper_tx.send(timing::Sleeper::this_thread());
                loop {
                    let message = sub.read()?;
                    let woke = Instant::now();
                    let Reply::Array(Some(parts)) = message else {
                        bail!("the subscriber got {message:?}");
                    };
                    match parts.last() {
                        Some(Reply::Bulk(Some(event))) if event == b"set" => {
                            if tx.send(woke).is_err() {
                                return Ok(());
                            }
                        }
                        _ => return Ok(()),
                    }
                }
            });
            let timed = match sleeper_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(sleeper) => timing::wakes(
                    budget,
                    &sleeper,
                    Duration::ZERO,
                    |_| ok(conn.call(&[b"SET", b"bench:wake", &small])?),
                    &rx,
                ),
                Err(_) => Err(anyhow::anyhow!("the subscriber did not start")),
            };
            // DEL: a `del` event, which ends the subscriber.
            conn.call(&[b"DEL", b"bench:wake"])?;
            drop(rx);
            match waiter.join() {
                Ok(r) => r.context("the subscriber")?,
                Err(_) => bail!("the subscriber panicked"),
            }
            timed
        }
    }
}
