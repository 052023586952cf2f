//! Peers that die or misbehave, between real processes (this test binary, re-run with a
//! role): a killed host is `PeerGone` for its guest, a guest's last words arrive before it is
//! gone, SIGKILLed guests give every slot back, and a guest that scribbles over the rings is cut
//! off while the host serves on.

#![allow(clippy::unwrap_used)]

#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;
mod transport_support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use memwire_transport::{Error, Guest, WaitStrategy};
use support::{command, spawn, trial, unique_namespace};
use transport_support::{HOST_ENV, check_echo, host};

fn main() {
    transport_support::run(vec![
        trial("host_death_is_peer_gone_for_the_guest", host_death),
        trial(
            "a_message_sent_just_before_exit_arrives_before_peer_gone",
            last_words,
        ),
        trial("killed_guests_give_every_slot_back", killed_guests),
        trial(
            "a_scribbling_guest_is_cut_off_and_the_host_survives",
            scribbler,
        ),
    ])
}

fn host_death() -> Result<()> {
    let name = unique_namespace("host-death").as_str().to_owned();
    let mut cmd = command("host")?;
    cmd.env(HOST_ENV, &name).stdout(Stdio::piped());
    let mut host = spawn(cmd, None)?;
    let mut line = String::new();
    BufReader::new(host.child().stdout.take().context("stdout")?).read_line(&mut line)?;
    ensure!(line.trim() == "ready", "host said {line:?}");
    let mut link = Guest::connect(&name)?;
    check_echo(&mut link, 100, 1)?;
    let killed = Instant::now();
    host.kill()?;
    match link.rx().recv_timeout(Duration::from_secs(30)) {
        Err(Error::PeerGone { .. }) => {}
        other => bail!("recv after the host died gave {other:?}"),
    }
    eprintln!("host death seen after {:?}", killed.elapsed());
    ensure!(matches!(link.tx().send(b"x"), Err(Error::PeerGone { .. })));
    Ok(())
}

fn killed_guests() -> Result<()> {
    let runs: usize = if std::env::var_os("MEMWIRE_STRESS").is_some() {
        2000
    } else {
        200
    };
    let host = host("killed", WaitStrategy::default())?;
    let mut seed = u64::from(std::process::id());
    for run in 0..runs {
        let (child, mut link) = host.spawn(&mut command("flood")?)?;
        let guard = support::Guard::from_child(child);
        // Fill the guest with messages it holds, and take some of its own.
        let deadline = Instant::now()
            + Duration::from_micros(
                200 + {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    (seed >> 33) % 5000
                },
            );
        let mut held = Vec::new();
        while Instant::now() < deadline {
            match link.tx().try_loan(5000) {
                Ok(l) => l.commit()?,
                Err(Error::WouldBlock) => {}
                Err(e) => return Err(e).context(format!("run {run}")),
            }
            match link.rx().try_recv() {
                Ok(m) => held.push(m),
                Err(Error::WouldBlock) => {}
                Err(e) => return Err(e).context(format!("run {run}")),
            }
        }
        guard.kill()?;
        loop {
            match link.rx().recv_timeout(Duration::from_secs(30)) {
                Ok(m) => held.push(m),
                Err(Error::PeerGone { .. }) => break,
                Err(e) => return Err(e).context(format!("run {run}: after the kill")),
            }
        }
        let usage = link.tx().usage()?;
        ensure!(
            usage.iter().all(|u| u.free == u.total),
            "run {run}: {usage:?}"
        );
        drop(held);
        drop(link);
        ensure!(host.peers().is_empty(), "run {run}: {:?}", host.peers());
    }
    // The host still serves.
    let (mut child, mut link) = host.spawn(&mut command("echo")?)?;
    check_echo(&mut link, 4000, 9)?;
    drop(link);
    ensure!(child.wait()?.success());
    Ok(())
}

fn scribbler() -> Result<()> {
    let host = host("scribble", WaitStrategy::default())?;
    let mut cmd = command("scribble")?;
    cmd.env(HOST_ENV, host.name().as_str())
        .stdout(Stdio::piped());
    let mut bad = spawn(cmd, None)?;
    let mut link = host.accept_timeout(Duration::from_secs(30))?;
    let mut line = String::new();
    BufReader::new(bad.child().stdout.take().context("stdout")?).read_line(&mut line)?;
    ensure!(line.trim() == "scribbled");
    let mut violation = None;
    for _ in 0..1000 {
        match link.rx().recv_timeout(Duration::from_secs(5)) {
            Ok(_) => {}
            Err(e @ Error::ProtocolViolation { .. }) => {
                violation = Some(e);
                break;
            }
            Err(e) => bail!("expected a protocol violation, got {e}"),
        }
    }
    let violation = violation.context("garbage was accepted 1000 times")?;
    eprintln!("{violation}");
    ensure!(matches!(
        link.tx().send(b"x"),
        Err(Error::ProtocolViolation { .. })
    ));
    drop(link);
    drop(bad);
    // The host carries on.
    let (mut child, mut link) = host.spawn(&mut command("echo")?)?;
    check_echo(&mut link, 300, 3)?;
    drop(link);
    ensure!(child.wait()?.success());
    Ok(())
}

/// A guest that sends and exits at once: its message is delivered before `PeerGone`, however
/// the exit races the receiver (a hundred times, for the race to show).
fn last_words() -> Result<()> {
    let host = host("last_words", WaitStrategy::Spin)?;
    for round in 0..100 {
        let (mut child, mut link) = host.spawn(&mut command("bye")?)?;
        let message = link
            .rx()
            .recv()
            .with_context(|| format!("round {round}: the last message was lost"))?;
        ensure!(
            message.as_slice() == b"bye",
            "round {round}: {:?}",
            message.as_slice()
        );
        drop(message);
        let after = link.rx().recv().unwrap_err();
        ensure!(
            matches!(after, Error::PeerGone { .. }),
            "round {round}: {after:?}"
        );
        child.wait()?;
    }
    Ok(())
}
