//! `memwire __bench-rpc-peer`: the process every `bench rpc` call goes to (internal; the
//! harness spawns it).
//!
//! - `--serve spin` / `--serve block`: a worker started by `Worker::spawn_with`; it serves
//!   [`AdderServer`] with `memwire::rpc::serve_async_with` on a current-thread runtime, its
//!   end of the link waiting the same way
//!   as the parent's (`Spin`, or `Block`), until the parent stops it (link closed, SIGTERM).
//!   It dies with its parent through the link's watch on the parent's pidfd.
//! - `--serve socket`: the Unix socket baseline's blocking server loop on the socket it got as
//!   standard input ([`super::socket`]); it ends at end-of-file, so with its parent too.
//!
//! Either way it first pins itself to `--cpu`, so the threads it starts run there too.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use memwire::transport::WaitStrategy;

use super::adder::{AdderServer, Sum};
use super::socket;
use crate::cli::bench::pin;

/// What the peer serves, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Serve {
    /// The service on the link it was spawned with, spinning.
    Spin,
    /// The service on the link it was spawned with, sleeping at once when idle.
    Block,
    /// `add` over the Unix socket on its standard input.
    Socket,
}

impl Serve {
    /// Its name on the command line.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Spin => "spin",
            Self::Block => "block",
            Self::Socket => "socket",
        }
    }
}

/// `memwire __bench-rpc-peer`: serves the benchmark's `add` (internal).
#[derive(Debug, clap::Args)]
pub(crate) struct RpcPeerArgs {
    #[arg(long, value_enum)]
    serve: Serve,
    /// Pin to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
}

/// Runs the peer in this (spawned) process.
pub(crate) fn run(args: &RpcPeerArgs) -> Result<()> {
    if let Some(cpu) = args.cpu {
        pin::pin_to(cpu)?;
    }
    let wait = match args.serve {
        Serve::Socket => return socket::serve_stdin(),
        Serve::Spin => WaitStrategy::Spin,
        Serve::Block => WaitStrategy::Block,
    };
    // Current-thread: `serve_with`'s multi-thread runtime parks two idle workers on this
    // pinned CPU, and they woke ~1 400 times a second each, preempting the spinning reader
    // (counted in /proc/PID/task/*/status while `typed-spin` ran).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the worker's runtime")?;
    runtime
        .block_on(memwire::rpc::serve_async_with(
            Arc::new(AdderServer::new(Sum)),
            wait,
        ))
        .context("serving the benchmark's adder")
}
