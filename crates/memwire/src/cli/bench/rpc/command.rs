//! `memwire bench rpc`: every case once, in order, then the table and the targets.

use std::process::Command;

use anyhow::{Context as _, Result, ensure};
use memwire::rpc::{ClientConfig, Encoding, WorkerConfig};
use memwire::transport::{HostConfig, WaitStrategy};

use super::adder::AdderClient;
use super::peer::Serve;
use super::socket::SocketCaller;
use super::table;
use super::timing::{self, Timed};
use crate::cli::bench::case::{Payload, Suite};
use crate::cli::bench::case_list::RunArgs;
use crate::cli::bench::link::LinkCase;
use crate::cli::bench::measure::{Budget, SEGMENTS, measure_with};
use crate::cli::bench::pin;
use crate::cli::bench::report::{Machine, Row};
use crate::cli::bench::transport::progress;

/// Calls in flight in `typed-spin-16`.
const IN_FLIGHT: usize = 16;

/// The raw transport round trip's message size: 64 B, a small message in a slot, as the
/// transport bench's targets read it.
const ECHO_SIZE: usize = 64;

/// Measure calls between two processes: typed and by name, spinning and blocking, 16 in
/// flight, a worker's start, against the raw link and a Unix socket.
#[derive(Debug, clap::Args)]
#[command(
    mut_arg("quick", |a| a.help(
        "A short run: at most 10 000 calls and about 0.35 s per case, 5 worker starts (≤ 30 s \
         in all)",
    )),
    mut_arg("iters", |a| a.help(
        "Calls timed per case, at most (default 100 000; 10 000 with --quick). Each case also \
         stops at its time budget",
    )),
)]
pub(crate) struct Args {
    #[command(flatten)]
    run: RunArgs,
    /// Worker starts timed by `spawn-to-first-call` (default 50; 5 with --quick).
    #[arg(long, value_name = "N")]
    spawns: Option<u64>,
    /// Only these cases, comma-separated (default: all: typed-spin, by-name-spin, typed-block,
    /// typed-spin-16, spawn-to-first-call, transport-spin, unix-socket). A target is checked
    /// only when the run has both of its rows.
    #[arg(long, value_delimiter = ',', value_name = "CASES")]
    cases: Vec<String>,
}

impl Args {
    fn spawns(&self) -> u64 {
        self.spawns.unwrap_or(if self.run.quick() { 5 } else { 50 })
    }

    /// The cases to run, in the usual order whatever the order given.
    fn cases(&self) -> Result<Vec<RpcCase>> {
        for name in &self.cases {
            ensure!(
                RpcCase::ALL.iter().any(|c| c.name() == name),
                "no rpc case named {name:?} (cases: {})",
                RpcCase::ALL.map(RpcCase::name).join(", ")
            );
        }
        Ok(RpcCase::ALL
            .into_iter()
            .filter(|c| self.cases.is_empty() || self.cases.iter().any(|n| n == c.name()))
            .collect())
    }
}

/// The cases, in the order they run and print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RpcCase {
    TypedSpin,
    ByNameSpin,
    TypedBlock,
    TypedSpin16,
    SpawnToFirstCall,
    TransportSpin,
    UnixSocket,
}

impl RpcCase {
    const ALL: [Self; 7] = [
        Self::TypedSpin,
        Self::ByNameSpin,
        Self::TypedBlock,
        Self::TypedSpin16,
        Self::SpawnToFirstCall,
        Self::TransportSpin,
        Self::UnixSocket,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::TypedSpin => "typed-spin",
            Self::ByNameSpin => "by-name-spin",
            Self::TypedBlock => "typed-block",
            Self::TypedSpin16 => "typed-spin-16",
            Self::SpawnToFirstCall => "spawn-to-first-call",
            Self::TransportSpin => "transport-spin",
            Self::UnixSocket => "unix-socket",
        }
    }

    fn suite(self) -> Suite {
        match self {
            Self::TransportSpin | Self::UnixSocket => Suite::Baseline,
            _ => Suite::Rpc,
        }
    }
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let budget = args.run.budget()?;
    ensure!(args.spawns != Some(0), "--spawns must be at least 1");
    let cases = args.cases()?;
    let machine = Machine::detect(pin::place);
    // Current-thread: the calling task runs on this (pinned) thread, so a lone call has no
    // thread between it and the link, and 16 tasks share the thread as they share the CPU.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the caller's runtime")?;
    let bar = progress(cases.len() as u64);
    let mut rows = Vec::with_capacity(cases.len());
    for case in cases {
        bar.set_message(case.name());
        let row = measure_case(case, args, &budget, &machine, &runtime)
            .with_context(|| format!("benchmark case {}", case.name()))?;
        rows.push(row);
        bar.inc(1);
    }
    bar.finish_and_clear();
    args.run.write_out(&rows, || table::text(&rows))
}

fn measure_case(
    case: RpcCase,
    args: &Args,
    budget: &Budget,
    machine: &Machine,
    runtime: &tokio::runtime::Runtime,
) -> Result<Row> {
    let cpu = machine.peer_cpu;
    let row = |timed: &Timed, payload, throughput_from| {
        let samples = timed.rtt.len();
        Row {
            suite: case.suite(),
            case: case.name(),
            size: 0,
            payload,
            samples,
            rtt_p50_ns: timed.rtt.value_at_quantile(0.5),
            rtt_p99_ns: timed.rtt.value_at_quantile(0.99),
            rtt_p999_ns: timed.rtt.value_at_quantile(0.999),
            rtt_max_ns: timed.rtt.max(),
            one_way_mean_ns: timed.total_ns as f64 / (2 * samples.max(1)) as f64,
            msgs_per_s: timed.per_s,
            gb_per_s: None,
            throughput_from,
            wake_syscalls_per_msg: None,
            x_floor: None,
            floor_spin_p50_ns: None,
            touch_floor_p50_ns: None,
            transport_spin_p50_ns: None,
            floor_futex_p50_ns: None,
            x_floor_futex: None,
            machine: machine.clone(),
        }
    };
    let spin = || worker_config(WaitStrategy::Spin);
    let command = |serve: Serve| move || peer_command(serve, cpu);
    Ok(match case {
        RpcCase::TypedSpin => {
            // In segments alternating with the raw link's, so that the ratio the target reads
            // compares the two under one placement of the vCPUs (`Case::spins` says why).
            let segment = Budget {
                iters: budget.iters.div_ceil(u64::from(SEGMENTS)),
                echo_time: budget.echo_time / SEGMENTS,
                ..*budget
            };
            let mut typed = Timed::empty()?;
            let mut raw = Timed::empty()?;
            for _ in 0..SEGMENTS {
                typed.merge(&time_worker(case, &segment, cpu, runtime)?)?;
                raw.merge(&time_link(&segment, cpu)?.0)?;
            }
            let mut r = row(&typed, Payload::Touched, "round_trip");
            r.transport_spin_p50_ns = Some(raw.rtt.value_at_quantile(0.5));
            r
        }
        RpcCase::ByNameSpin | RpcCase::TypedBlock | RpcCase::TypedSpin16 => {
            let timed = time_worker(case, budget, cpu, runtime)?;
            let from = if case == RpcCase::TypedSpin16 {
                "in_flight"
            } else {
                "round_trip"
            };
            row(&timed, Payload::Touched, from)
        }
        RpcCase::SpawnToFirstCall => {
            let timed =
                runtime.block_on(timing::spawns(args.spawns(), command(Serve::Spin), &spin()))?;
            let mut r = row(&timed, Payload::Touched, "none");
            // Neither applies to a start: reported as 0.
            r.one_way_mean_ns = 0.0;
            r.msgs_per_s = 0.0;
            r
        }
        RpcCase::TransportSpin => {
            let (timed, wakes) = time_link(budget, cpu)?;
            let mut r = row(&timed, Payload::Untouched, "round_trip");
            r.size = ECHO_SIZE;
            r.wake_syscalls_per_msg = wakes;
            r
        }
        RpcCase::UnixSocket => {
            let mut caller = SocketCaller::spawn(cpu)?;
            let timed = runtime.block_on(timing::one_at_a_time(budget, |k| {
                let sum = caller.add(k, 1);
                async move { sum }
            }))?;
            caller.finish()?;
            row(&timed, Payload::Touched, "round_trip")
        }
    })
}

/// Spawns a worker for `case` (one of the cases that call one), times its calls within
/// `budget`, and stops it.
fn time_worker(
    case: RpcCase,
    budget: &Budget,
    cpu: Option<usize>,
    runtime: &tokio::runtime::Runtime,
) -> Result<Timed> {
    let (serve, config) = match case {
        RpcCase::TypedBlock => (Serve::Block, worker_config(WaitStrategy::Block)),
        _ => (Serve::Spin, worker_config(WaitStrategy::Spin)),
    };
    runtime.block_on(async {
        let worker = memwire::rpc::Worker::spawn_with(peer_command(serve, cpu), config)
            .await
            .context("spawning the worker")?;
        let typed = AdderClient::new(worker.client());
        let timed = match case {
            RpcCase::ByNameSpin => {
                let client = worker.client();
                timing::one_at_a_time(budget, |k| {
                    let client = &client;
                    async move {
                        let sum: i64 = client
                            .call_with("add", Encoding::MessagePack, &(k, 1), None)
                            .await?;
                        Ok(sum)
                    }
                })
                .await
            }
            RpcCase::TypedSpin16 => timing::in_flight(budget, IN_FLIGHT, &typed).await,
            _ => {
                timing::one_at_a_time(budget, |k| {
                    let typed = &typed;
                    async move { Ok(typed.add(k, 1).await?) }
                })
                .await
            }
        };
        drop(typed);
        let timed = timed?;
        timing::stop(worker).await?;
        anyhow::Ok(timed)
    })
}

/// The raw link's 64 B echo (the transport bench's `spin`, without its interleaved floor)
/// within `budget`, and its wake syscalls per message.
fn time_link(budget: &Budget, cpu: Option<usize>) -> Result<(Timed, Option<f64>)> {
    let m = measure_with(
        &LinkCase::Spin,
        ECHO_SIZE,
        Payload::Untouched,
        budget,
        cpu,
        false,
    )?;
    let samples = m.rtt.len();
    let mean_ns = m.total_ns as f64 / samples.max(1) as f64;
    let timed = Timed {
        rtt: m.rtt,
        total_ns: m.total_ns,
        per_s: 1e9 / mean_ns,
    };
    Ok((timed, m.wake_syscalls_per_msg))
}

/// The worker's configuration: both ends of the link wait per `wait`; no breaker and no
/// heartbeats (a heartbeat's ping would share the link with the timed calls).
fn worker_config(wait: WaitStrategy) -> WorkerConfig {
    WorkerConfig {
        name: Some("bench-rpc".to_owned()),
        host: HostConfig {
            wait,
            ..HostConfig::default()
        },
        client: ClientConfig {
            breaker: None,
            heartbeat: None,
            ..ClientConfig::default()
        },
        ..WorkerConfig::default()
    }
}

/// `memwire __bench-rpc-peer --serve SERVE [--cpu CPU]`.
fn peer_command(serve: Serve, cpu: Option<usize>) -> Command {
    // `current_exe` failing leaves a command that fails to spawn, with its own error.
    let exe = std::env::current_exe().unwrap_or_else(|_| "memwire".into());
    let mut cmd = Command::new(exe);
    cmd.args(["__bench-rpc-peer", "--serve", serve.as_str()]);
    if let Some(cpu) = cpu {
        cmd.args(["--cpu", &cpu.to_string()]);
    }
    cmd
}
