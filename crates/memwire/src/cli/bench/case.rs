//! The [`Case`] trait: one way of moving a message between two processes, measured by the
//! harness in [`super::measure`].
//!
//! A case has two sides. The harness, in the `memwire bench` process, calls [`Case::parent`]
//! to get the [`Parent`] endpoint it times, and the peer (`memwire __bench-peer CASE`) starts
//! as [`Peer`] says: spawned by the harness, wired as [`Wiring`] says, or spawned by the case
//! itself through the [`Launcher`] (a transport case lets `Host::spawn` start it, so the peer
//! gets its link from the ticket). In the peer process, [`Case::peer`] runs until the parent
//! says stop. Both sides see the same shared segment ([`Case::segment_len`] bytes, zeroed,
//! mapped read-write) and the same [`Run`] (size, payload mode, role), so they need no
//! handshake.

use std::os::fd::OwnedFd;
use std::process::Child;

use anyhow::{Result, bail};
use memwire::shm::Mapping;
use serde::Serialize;

pub(crate) use super::peer::Launcher;

/// Which table a case belongs to (JSON `suite`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Suite {
    /// memwire-transport's links: `spin` and `block`.
    Transport,
    /// What the transport (or, in `bench rpc`, a call) is measured against: floors, sockets,
    /// pipes, the raw link.
    Baseline,
    /// memwire-rpc's calls (`bench rpc`).
    Rpc,
    /// memwire-store's operations (`bench store`).
    Store,
}

impl Suite {
    /// Its name in tables and JSON.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Transport => "transport",
            Self::Baseline => "baseline",
            Self::Rpc => "rpc",
            Self::Store => "store",
        }
    }
}

/// Whether the bytes of a message are touched by the program (JSON `payload`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Payload {
    /// Only the transport moves the bytes: its own cost.
    Untouched,
    /// The sender writes every byte and the receiver checksums every byte: what a user sees.
    Touched,
}

impl Payload {
    /// Its name in tables, JSON and on the peer's command line.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Untouched => "untouched",
            Self::Touched => "touched",
        }
    }
}

/// What the peer does with the parent's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Role {
    /// Sends every message back: the parent times round trips.
    Echo,
    /// Counts the messages and acknowledges the count at the end: one-way throughput.
    Sink,
}

impl Role {
    /// Its name on the peer's command line.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Echo => "echo",
            Self::Sink => "sink",
        }
    }
}

/// What both sides of one measured run agree on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Run {
    /// Message size in bytes, >= 1.
    pub(crate) size: usize,
    pub(crate) payload: Payload,
    pub(crate) role: Role,
}

/// A benchmark case: one impl of this trait plus one line in [`all`].
pub(crate) trait Case: Sync {
    /// The name in tables, JSON and on the peer's command line.
    fn name(&self) -> &'static str;

    fn suite(&self) -> Suite;

    /// The payload modes this case is measured in.
    fn payloads(&self) -> &'static [Payload];

    /// Whether it moves the payload at all. The floors do not: their `size` is the size they
    /// are the floor for, and they report no GB/s.
    fn moves_payload(&self) -> bool {
        true
    }

    /// Whether it supports [`Role::Sink`]; without it, throughput is 1 / one-way mean.
    fn streams(&self) -> bool {
        false
    }

    /// Whether it blocks (sleeps and wakes): then its round trips are timed in alternating
    /// chunks with `floor-futex`'s, so the two see the same machine load, and its row also
    /// reports the ratio to that interleaved futex floor.
    fn blocks(&self) -> bool {
        false
    }

    /// Whether its "× floor" is taken against `floor-spin` timed in segments alternating with
    /// its own. A spinning case cannot nest the floor's session inside its own as a blocking
    /// one does (two spinning peers would share the peer CPU), so each segment starts its own
    /// peer. This machine's host moves its two vCPUs between placements whose floors differ
    /// several-fold; a floor row timed seconds apart may have seen another.
    fn spins(&self) -> bool {
        false
    }

    /// Bytes of shared segment the case needs for `size`-byte messages.
    fn segment_len(&self, _size: usize) -> u64 {
        4096
    }

    /// Parent side: the endpoint the harness times, and how the peer starts. Called with the
    /// segment mapped and zeroed; a case that starts its peer itself does it through
    /// `launcher` (the harness's command line, segment and CPU pinning included).
    fn parent<'m>(&self, shm: &'m Mapping, run: &Run, launcher: &Launcher<'_>)
    -> Result<Setup<'m>>;

    /// Peer side, in the spawned process: serve `run.role` until the parent says stop, then
    /// return. Not called for a case whose [`Setup::peer`] is [`Peer::None`].
    fn peer(&self, shm: &Mapping, run: &Run) -> Result<()>;
}

/// What [`Case::parent`] gives the harness.
pub(crate) struct Setup<'m> {
    pub(crate) endpoint: Box<dyn Parent + 'm>,
    pub(crate) peer: Peer,
}

/// How a case's peer process starts.
#[derive(Debug)]
pub(crate) enum Peer {
    /// There is none: the case runs in one process (`touch-floor`).
    None,
    /// The harness spawns it, wired so.
    Wired(Wiring),
    /// The case spawned it already, through [`Launcher::spawn`]; the harness reaps it.
    Spawned(Child),
}

/// What the peer process inherits besides the segment.
#[derive(Debug, Default)]
pub(crate) struct Wiring {
    /// Its standard input (`/dev/null` if `None`).
    pub(crate) stdin: Option<OwnedFd>,
    /// Its standard output (`/dev/null` if `None`).
    pub(crate) stdout: Option<OwnedFd>,
    /// More fds to inherit under their own numbers (CLOEXEC is cleared just before the spawn);
    /// tell the peer the numbers through `env`.
    pub(crate) inherit: Vec<OwnedFd>,
    pub(crate) env: Vec<(String, String)>,
}

/// The parent's side of a run: the harness times its calls.
pub(crate) trait Parent {
    /// Waits until the peer serves; the harness starts no clock before. The echo role's
    /// warm-up round trips cover the peer's start, so only a streaming case needs this.
    fn ready(&mut self) -> Result<()> {
        Ok(())
    }

    /// [`Role::Echo`]: sends one message and waits for it to come back.
    fn round_trip(&mut self) -> Result<()>;

    /// [`Role::Sink`]: sends one message without waiting for an answer.
    fn send(&mut self) -> Result<()> {
        bail!("this case does not stream")
    }

    /// Tells the peer to stop. In the sink role, waits for its acknowledgement and returns the
    /// messages it counted; `None` in the echo role.
    fn finish(&mut self) -> Result<Option<u64>>;

    /// Wake syscalls both sides made over the whole run, read after the peer exited; `None`
    /// where the case does not count them.
    fn wake_syscalls(&self) -> Option<u64> {
        None
    }
}

/// Every case, in the order they run and print.
pub(crate) fn all() -> &'static [&'static dyn Case] {
    use super::baseline::{Floor, Stream, TouchFloor};
    use super::link::LinkCase;
    &[
        &LinkCase::Spin,
        &LinkCase::Block,
        &Floor::Spin,
        &TouchFloor,
        &Floor::Futex,
        &Stream::UnixSocket,
        &Stream::Pipe,
    ]
}

/// The case called `name`.
pub(crate) fn by_name(name: &str) -> Result<&'static dyn Case> {
    match all().iter().find(|c| c.name() == name) {
        Some(case) => Ok(*case),
        None => bail!("no benchmark case named `{name}`"),
    }
}
