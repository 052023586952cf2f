//! `memwire bench`: the benchmarks a user runs on their own machine.
//!
//! `memwire bench transport` measures message passing between **two real processes**: the
//! parent re-executes its own binary as the hidden `memwire __bench-peer` ([`peer`]), pins the
//! two to different CPUs where it may ([`pin`]), and times each case at each size and payload
//! mode ([`measure`]). It prints a table and can write JSON ([`report`]).
//!
//! # Cases
//! A case is one impl of [`case::Case`]: a name, a suite, the payload modes it applies to,
//! and its two sides. [`Case::parent`](case::Case::parent) returns the [`case::Parent`]
//! endpoint the harness times (`round_trip` in the echo role, `send` in the sink role,
//! `finish`) plus how to wire the peer; [`Case::peer`](case::Case::peer) runs in the spawned
//! process until the parent says stop. Both sides get the same zeroed shared segment (a sealed
//! memfd, mapped through the safe `Mapping` view) and the same [`case::Run`], so a case needs
//! no handshake. To add memwire-transport's `spin` and `block` cases: write one impl each
//! (set the link up in `parent`, hand the peer what it needs through [`case::Wiring`] or the
//! segment, serve in `peer`), add `Suite::Transport`, and list them in [`case::all`].
//!
//! | module | what |
//! | --- | --- |
//! | [`transport`] | the `bench transport` command: sizes × cases × payload modes |
//! | [`case`] | the `Case` and `Parent` traits, the list of cases |
//! | [`baseline`] | the baselines: floors, touch floor, Unix socket, pipe |
//! | [`measure`] | one timed run: warm-up, round trips into a histogram, streaming |
//! | [`peer`] | spawning the peer with the segment inherited, and the peer's side |
//! | [`pin`] | CPU pinning |
//! | [`spin`] | bounded spin-then-yield waits |
//! | [`touch`] | writing and checksumming payloads |
//! | [`report`] | rows, the table and the JSON |

mod baseline;
mod case;
mod measure;
mod peer;
mod pin;
mod report;
mod spin;
mod touch;
mod transport;

pub(crate) use peer::{PeerArgs, run as run_peer};

/// `memwire bench ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Message latency and throughput between two processes, against the machine's floors,
    /// a Unix socket and a pipe.
    Transport(transport::Args),
}

/// Runs a `memwire bench` command.
pub(crate) fn run(cmd: &Command) -> anyhow::Result<()> {
    match cmd {
        Command::Transport(args) => transport::run(args),
    }
}
