//! The tokio API between real processes: a spawned guest (this test binary, re-run with a
//! role) echoes on its own runtime, a killed guest ends a pending `recv_async`, async pairs
//! sleep or spin as told, and a full control socket does not hold the runtime thread.

#![allow(clippy::unwrap_used)]

#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;
mod transport_support;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail, ensure};
use memwire_transport::{Error, Host, HostConfig, WaitStrategy};
use support::{command, trial, unique_namespace};
use transport_support::{CUED, CUED_LEN, host, pattern, runtime};

fn main() {
    transport_support::run(vec![
        trial("async_echo_with_a_spawned_guest", async_echo),
        trial(
            "a_killed_guest_ends_a_pending_recv_async_with_peer_gone",
            async_peer_killed,
        ),
        trial(
            "async_waits_sleep_and_spinning_async_pairs_make_no_wake_syscalls",
            async_wake_counts,
        ),
        trial(
            "an_async_large_commit_on_a_full_control_socket_frees_the_runtime_thread",
            async_full_control_socket,
        ),
    ])
}

/// Both ends await: the host on a current-thread runtime, the guest in its own.
fn async_echo() -> Result<()> {
    let host = host("async-echo", WaitStrategy::default())?;
    let (mut child, mut link) = host.spawn(&mut command("async_echo")?)?;
    let sizes = [
        0,
        1,
        56,
        57,
        256,
        4096,
        5000,
        65536,
        70_000,
        1 << 20,
        3 << 20,
    ];
    runtime()?.block_on(async {
        for round in 0..20u64 {
            for (i, &len) in sizes.iter().enumerate() {
                let data = pattern(len, round * 100 + i as u64);
                link.tx().send_async(&data).await?;
                let back = tokio::time::timeout(support::DEADLINE, link.rx().recv_async())
                    .await
                    .with_context(|| format!("echo of {len} bytes"))??;
                ensure!(
                    back.as_slice() == data.as_slice(),
                    "echo of {len} bytes differs"
                );
            }
        }
        Ok(())
    })?;
    let usage = link.tx().usage()?;
    ensure!(
        usage.iter().all(|u| u.free == u.total),
        "slots not returned: {usage:?}"
    );
    ensure!(link.stats().messages_received == 20 * sizes.len() as u64);
    drop(link);
    ensure!(child.wait()?.success(), "async echo child failed");
    Ok(())
}

/// The guest is SIGKILLed while the host's `recv_async` sleeps on its doorbell: the watcher
/// rings it and the receive returns `PeerGone`.
fn async_peer_killed() -> Result<()> {
    let host = host("async-killed", WaitStrategy::Block)?;
    let (child, link) = host.spawn(&mut command("idle")?)?;
    let guard = support::Guard::from_child(child);
    let (_tx, mut rx) = link.split();
    runtime()?.block_on(async {
        let mut recv = std::pin::pin!(rx.recv_async());
        // Poll until the receive sleeps (Block: at once), then kill the guest.
        let waker = std::task::Waker::noop();
        let polled = recv
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker));
        ensure!(polled.is_pending(), "nothing was sent, yet: {polled:?}");
        guard.kill()?;
        match tokio::time::timeout(support::DEADLINE, recv).await {
            Ok(Err(Error::PeerGone { .. })) => Ok(()),
            Ok(other) => bail!("recv_async after the kill gave {other:?}"),
            Err(_) => bail!(
                "recv_async still pending {:?} after the kill",
                support::DEADLINE
            ),
        }
    })?;
    ensure!(rx.stats().sleeps == 1, "{:?}", rx.stats());
    ensure!(host.peers().is_empty(), "{:?}", host.peers());
    Ok(())
}

/// A large message's memfd travels on the control socket; when the receiver is slow to drain
/// and the socket fills, `send_async` awaits room instead of blocking its (only) runtime
/// thread. The receiver drains only when cued by another task on the same current-thread
/// runtime, a task that can run only while the sender yields the thread: it must run before
/// the last message is sent.
fn async_full_control_socket() -> Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;
    let ns = unique_namespace("async-full-control");
    let link_config = memwire_transport::LinkConfig {
        ring_depth: 4096,
        classes: Vec::new(),
        ..memwire_transport::LinkConfig::default()
    };
    let host = Host::bind(
        ns.as_str(),
        HostConfig {
            link: link_config,
            ..HostConfig::default()
        },
    )?;
    let mut cmd = command("drain_on_cue")?;
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let (child, mut link) = host.spawn(&mut cmd)?;
    let mut guest = support::Guard::from_child(child);
    let mut cue = guest.child().stdin.take().context("stdin")?;
    let sent = Arc::new(AtomicU64::new(0));
    let cued_at = runtime()?.block_on(async {
        // Spawned, not polled: a current-thread runtime runs it only when `block_on`'s future
        // (the sender) is pending.
        let cuer = tokio::spawn({
            let sent = Arc::clone(&sent);
            async move {
                let at = sent.load(Ordering::Relaxed);
                writeln!(cue)?;
                anyhow::Ok(at)
            }
        });
        for i in 0..CUED {
            link.tx().send_async(&[i as u8; CUED_LEN]).await?;
            sent.store(i + 1, Ordering::Relaxed);
        }
        cuer.await?
    })?;
    ensure!(
        cued_at < CUED,
        "the receiver was cued only after all {CUED} messages were sent: the sender held the \
         runtime thread while the control socket was full"
    );
    let mut out = String::new();
    BufReader::new(guest.child().stdout.take().context("stdout")?).read_line(&mut out)?;
    ensure!(out.trim() == "drained", "guest said {out:?}");
    eprintln!("cued after {cued_at} of {CUED} messages");
    drop(link);
    ensure!(guest.wait()?.success(), "guest failed");
    Ok(())
}

/// Blocking async pairs sleep on their doorbells and ring each other's; spinning async pairs
/// make no wake syscall and never sleep.
fn async_wake_counts() -> Result<()> {
    const BLOCKING: u64 = 2000;
    const SPINNING: u64 = 20_000;
    let round_trips = |wait: WaitStrategy, role: &str, messages: u64| -> Result<_> {
        let host = host("async-wakes", wait)?;
        let mut cmd = command(role)?;
        cmd.stdout(Stdio::piped());
        let (mut child, mut link) = host.spawn(&mut cmd)?;
        runtime()?.block_on(async {
            for i in 0..messages {
                let len = (i % 300) as usize;
                let mut loan = link.tx().loan_async(len).await?;
                loan.as_mut_slice().fill(i as u8);
                loan.commit()?;
                let back = link.rx().recv_async().await?;
                ensure!(
                    back.len() == len && back.iter().all(|&b| b == i as u8),
                    "message {i}"
                );
            }
            Ok(())
        })?;
        let stats = link.stats();
        drop(link);
        let mut out = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut out)?;
        ensure!(child.wait()?.success(), "{role} failed");
        eprintln!("{role}: host {stats:?}; guest {}", out.trim());
        ensure!(stats.messages_sent == messages && stats.messages_received == messages);
        let guest: Vec<u64> = out
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        Ok((stats, guest))
    };
    // Block: each side sleeps whenever the other is busy, so both sleep and both ring.
    let (host, guest) = round_trips(WaitStrategy::Block, "async_echo_block", BLOCKING)?;
    ensure!(host.sleeps > 0 && host.wake_syscalls > 0, "host {host:?}");
    ensure!(
        matches!(guest[..], [wakes, sleeps] if wakes > 0 && sleeps > 0),
        "guest wakes, sleeps: {guest:?}"
    );
    // Spin: nobody ever declares a sleep, so nobody makes a wake syscall.
    let (host, guest) = round_trips(WaitStrategy::Spin, "async_echo_spin", SPINNING)?;
    ensure!(host.wake_syscalls == 0 && host.sleeps == 0, "host {host:?}");
    ensure!(guest == [0, 0], "guest wakes, sleeps: {guest:?}");
    Ok(())
}
