//! `memwire bench`: the benchmarks a user runs on their own machine.
//!
//! `memwire bench transport` measures message passing between **two real processes**: the
//! parent re-executes its own binary as the hidden `memwire __bench-peer` ([`peer`]), pins the
//! two to different CPUs where it may ([`pin`]), and times each case at each size and payload
//! mode ([`measure`]). It prints a table and can write JSON ([`report`]).
//!
//! `memwire bench rpc` ([`rpc`]) measures calls through memwire-rpc the same way: its peer is
//! the hidden `memwire __bench-rpc-peer`, a worker serving a `#[memwire::service]`; its
//! baselines are the transport's `spin` case and the same call over a Unix socket.
//!
//! # Cases
//! A case is one impl of [`case::Case`]: a name, a suite, the payload modes it applies to,
//! and its two sides. [`Case::parent`](case::Case::parent) returns the [`case::Parent`]
//! endpoint the harness times (`round_trip` in the echo role, `send` in the sink role,
//! `finish`) plus how the peer starts ([`case::Peer`]: wired by the harness, or spawned by the
//! case through the [`case::Launcher`]); [`Case::peer`](case::Case::peer) runs in the spawned
//! process until the parent says stop. Both sides get the same zeroed shared segment (a sealed
//! memfd, mapped through the safe `Mapping` view) and the same [`case::Run`], so a case needs
//! no handshake. The transport's own cases, `spin` and `block` ([`link`]), spawn their peer
//! with `Host::spawn`, so it takes its link from the ticket; `block` is timed in alternating
//! chunks with `floor-futex` ([`measure`]).
//!
//! | module | what |
//! | --- | --- |
//! | [`transport`] | the `bench transport` command: sizes × cases × payload modes |
//! | [`case`] | the `Case` and `Parent` traits, the list of cases |
//! | [`case_list`] | what `bench rpc` and `bench store` share: their run options and table |
//! | [`link`] | the transport's cases: `spin` and `block` over a memwire-transport link |
//! | [`baseline`] | the baselines: floors, touch floor, Unix socket, pipe |
//! | [`measure`] | one timed run: warm-up, round trips into a histogram, streaming |
//! | [`peer`] | spawning the peer with the segment inherited, and the peer's side |
//! | [`pin`] | CPU pinning |
//! | [`spin`] | bounded spin-then-yield waits |
//! | [`touch`] | writing and checksumming payloads |
//! | [`report`] | rows, the table and the JSON |
//! | [`targets`] | the targets, checked against one run's rows |
//! | [`rpc`] | the `bench rpc` command: calls through memwire-rpc, its baselines and targets |
//! | [`store`] | the `bench store` command: memwire-store against redis-server, and its targets |

mod baseline;
mod case;
mod case_list;
mod link;
mod measure;
mod peer;
mod pin;
mod report;
mod rpc;
mod spin;
mod store;
mod targets;
mod touch;
mod transport;

pub(crate) use peer::{PeerArgs, run as run_peer};
pub(crate) use rpc::{RpcPeerArgs, run_peer as run_rpc_peer};
pub(crate) use store::{PinnedArgs, run_pinned};

/// `memwire bench ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Message latency and throughput between two processes, against the machine's floors,
    /// a Unix socket and a pipe.
    Transport(transport::Args),
    /// Calls between two processes through memwire-rpc: typed and by name, spinning and
    /// blocking, 16 in flight, a worker's start, against the raw link and a Unix socket.
    Rpc(rpc::Args),
    /// The store's operations against a `memwire serve` process: local reads from the
    /// mapping, local and WebSocket sets, a watcher's wake-up; against redis-server if on PATH.
    Store(store::Args),
}

/// Runs a `memwire bench` command.
pub(crate) fn run(cmd: &Command) -> anyhow::Result<()> {
    match cmd {
        Command::Transport(args) => transport::run(args),
        Command::Rpc(args) => rpc::run(args),
        Command::Store(args) => store::run(args),
    }
}
