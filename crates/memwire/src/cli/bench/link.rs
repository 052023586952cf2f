//! `spin` and `block` (suite `transport`): messages over a memwire-transport [`Link`], both
//! ends waiting the same way ([`WaitStrategy::Spin`] or [`WaitStrategy::Block`]).
//!
//! The parent binds a [`Host`] under a name of its own (`memwire-bench-PID-N`) and starts the
//! peer with [`Host::spawn`], so the peer takes its link from the ticket
//! ([`Guest::from_env_with`]), as a user's child would; the host is dropped right after, which
//! removes its socket (the link lives on). Protocol:
//!
//! - message `k` is `size` bytes; in the echo role the peer answers each with `size` bytes;
//! - `untouched`: the sender loans and commits without writing, the receiver drops the message
//!   without reading (the transport's own cost); `touched`: the sender writes every byte of the
//!   loan in place ([`touch::pattern`] going, its complement coming back) and the receiver
//!   checksums every byte of the message in place (what a user sees);
//! - stop: an empty message (a run's messages are at least 1 byte). The peer answers with its
//!   report, read before it answers: 8 bytes (LE), the wake syscalls it made; in the sink role
//!   the count of messages it received first, then the wakes (16 bytes);
//! - sink: the peer sends an empty message when it starts reading, so the clock does not
//!   count its start-up.
//!
//! Each side's wake syscalls come from [`Link::stats`], read before the stop message (parent)
//! or before the report (peer), so the stop exchange is not counted, as in `floor-futex`.

use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context as _, Result, ensure};
use memwire::shm::Mapping;
use memwire::transport::{Guest, Host, HostConfig, Link, WaitStrategy};

use super::case::{Case, Launcher, Parent, Payload, Peer, Role, Run, Setup, Suite, Wiring};
use super::touch;

/// A transport case: how both ends of the link wait.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LinkCase {
    /// Both ends busy-spin: no sleeps, so no wake syscalls.
    Spin,
    /// Both ends sleep at once on a futex: a wake syscall for each message to a sleeper.
    Block,
}

impl LinkCase {
    fn wait(self) -> WaitStrategy {
        match self {
            Self::Spin => WaitStrategy::Spin,
            Self::Block => WaitStrategy::Block,
        }
    }
}

impl Case for LinkCase {
    fn name(&self) -> &'static str {
        match self {
            Self::Spin => "spin",
            Self::Block => "block",
        }
    }

    fn suite(&self) -> Suite {
        Suite::Transport
    }

    fn payloads(&self) -> &'static [Payload] {
        &[Payload::Untouched, Payload::Touched]
    }

    fn streams(&self) -> bool {
        true
    }

    fn blocks(&self) -> bool {
        matches!(self, Self::Block)
    }

    fn spins(&self) -> bool {
        matches!(self, Self::Spin)
    }

    fn parent<'m>(
        &self,
        _shm: &'m Mapping,
        run: &Run,
        launcher: &Launcher<'_>,
    ) -> Result<Setup<'m>> {
        let config = HostConfig {
            wait: self.wait(),
            ..HostConfig::default()
        };
        let name = host_name();
        let host = Host::bind(&name, config).with_context(|| format!("binding host {name}"))?;
        let (child, link) = launcher.spawn(Wiring::default(), |cmd| {
            host.spawn(cmd).context("spawning the peer as a guest")
        })?;
        drop(host);
        Ok(Setup {
            endpoint: Box::new(LinkParent {
                link,
                size: run.size,
                touched: run.payload == Payload::Touched,
                sink: run.role == Role::Sink,
                k: 0,
                wakes: None,
            }),
            peer: Peer::Spawned(child),
        })
    }

    fn peer(&self, _shm: &Mapping, run: &Run) -> Result<()> {
        let mut link = Guest::from_env_with(self.wait()).context("taking the link")?;
        if run.role == Role::Sink {
            link.tx().send(&[]).context("saying ready")?;
        }
        let touched = run.payload == Payload::Touched;
        let mut k = 0u64;
        loop {
            let message = link.rx().recv().context("receiving")?;
            if message.is_empty() {
                break;
            }
            ensure!(
                message.len() == run.size,
                "message {k} is {} bytes, not {}",
                message.len(),
                run.size
            );
            let byte = touch::pattern(k);
            if touched {
                touch::verify(&message, byte)?;
            }
            drop(message);
            if run.role == Role::Echo {
                let mut loan = link.tx().loan(run.size).context("loaning the echo")?;
                if touched {
                    touch::fill(loan.as_mut_slice(), !byte);
                }
                loan.commit().context("echoing")?;
            }
            k += 1;
        }
        let wakes = link.stats().wake_syscalls.to_le_bytes();
        let report = match run.role {
            Role::Echo => wakes.to_vec(),
            Role::Sink => [k.to_le_bytes(), wakes].concat(),
        };
        link.tx().send(&report).context("reporting")
    }
}

/// A host name no other run (of this process or another) uses.
fn host_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Relaxed: a counter for uniqueness only; nothing is published through it.
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("memwire-bench-{}-{n}", std::process::id())
}

struct LinkParent {
    link: Link,
    size: usize,
    touched: bool,
    /// In the sink role: the peer says it is ready with an empty message first.
    sink: bool,
    /// Messages sent so far.
    k: u64,
    /// Wake syscalls of both ends, once `finish` read the peer's report.
    wakes: Option<u64>,
}

impl LinkParent {
    fn send_one(&mut self) -> Result<()> {
        let mut loan = self.link.tx().loan(self.size).context("loaning")?;
        if self.touched {
            touch::fill(loan.as_mut_slice(), touch::pattern(self.k));
        }
        loan.commit().context("committing")?;
        self.k += 1;
        Ok(())
    }
}

impl Parent for LinkParent {
    fn ready(&mut self) -> Result<()> {
        if self.sink {
            let hello = self.link.rx().recv().context("waiting for the peer")?;
            ensure!(
                hello.is_empty(),
                "the peer said {} bytes, not ready",
                hello.len()
            );
        }
        Ok(())
    }

    fn round_trip(&mut self) -> Result<()> {
        let byte = touch::pattern(self.k);
        self.send_one()?;
        let echo = self.link.rx().recv().context("receiving the echo")?;
        ensure!(
            echo.len() == self.size,
            "the echo is {} bytes, not {}",
            echo.len(),
            self.size
        );
        if self.touched {
            touch::verify(&echo, !byte)?;
        }
        Ok(())
    }

    fn send(&mut self) -> Result<()> {
        self.send_one()
    }

    fn finish(&mut self) -> Result<Option<u64>> {
        let ours = self.link.stats().wake_syscalls;
        self.link
            .tx()
            .send(&[])
            .context("telling the peer to stop")?;
        let report = self.link.rx().recv().context("reading the peer's report")?;
        let word = |i: usize| -> Result<u64> {
            let bytes = report.get(i * 8..i * 8 + 8).context("a short report")?;
            Ok(u64::from_le_bytes(bytes.try_into()?))
        };
        let expected = if self.sink { 16 } else { 8 };
        ensure!(report.len() == expected, "a {}-byte report", report.len());
        let (count, theirs) = if self.sink {
            (Some(word(0)?), word(1)?)
        } else {
            (None, word(0)?)
        };
        self.wakes = Some(ours + theirs);
        Ok(count)
    }

    fn wake_syscalls(&self) -> Option<u64> {
        self.wakes
    }
}
