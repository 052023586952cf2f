//! How guests join a host, between real processes: walk-in guests that connect by name,
//! spawned guests (this test binary, re-run with a role) that start slowly, never join or exit
//! first, and silent clients that must delay nobody and are closed at their hello deadline.

#![allow(clippy::unwrap_used)]

#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;
mod transport_support;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use memwire_transport::{Error, Host, HostConfig, WaitStrategy};
use support::{command, spawn, trial, unique_namespace, wait_until};
use transport_support::{HOST_ENV, check_echo, host};

fn main() {
    transport_support::run(vec![
        trial("four_walk_in_guests_at_once", four_guests),
        trial(
            "one_command_spawns_guests_twice_each_with_only_its_own_fds",
            one_command_twice,
        ),
        trial(
            "a_spawned_guest_that_starts_slowly_gets_its_link",
            late_guest,
        ),
        trial(
            "a_spawned_guest_that_never_joins_is_killed_at_the_join_deadline",
            never_joins,
        ),
        trial(
            "a_spawned_guest_that_exits_before_joining_gives_its_status",
            exits_before_joining,
        ),
        trial("a_silent_client_delays_no_guest_behind_it", silent_client),
        trial(
            "a_silent_client_is_closed_at_its_hello_deadline",
            silent_client_closed,
        ),
    ])
}

fn four_guests() -> Result<()> {
    let host = host("four", WaitStrategy::default())?;
    let mut children = Vec::new();
    for _ in 0..4 {
        let mut cmd = command("connect_echo")?;
        cmd.env(HOST_ENV, host.name().as_str());
        children.push(spawn(cmd, None)?);
    }
    let mut links = (0..4)
        .map(|_| host.accept())
        .collect::<Result<Vec<_>, _>>()?;
    ensure!(host.peers().len() == 4, "{:?}", host.peers());
    std::thread::scope(|s| {
        let handles: Vec<_> = links
            .iter_mut()
            .enumerate()
            .map(|(i, link)| {
                s.spawn(move || -> Result<()> {
                    for j in 0..500u64 {
                        check_echo(link, (j as usize * 131 + i) % 9000, j + i as u64 * 1000)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().unwrap())
    })?;
    drop(links);
    for c in children {
        c.wait_success()?;
    }
    wait_until("peer entries to be freed", || Ok(host.peers().is_empty()))?;
    Ok(())
}

/// `Host::spawn` may be handed the same `Command` again: each child inherits its own end of
/// its control socket and nothing else of the host's (an earlier spawn's hook, left on the
/// `Command`, must not hand it an fd number that now names another fd).
fn one_command_twice() -> Result<()> {
    let host = host("twice", WaitStrategy::default())?;
    let mut cmd = command("own_fds_only")?;
    let (mut first, mut first_link) = host.spawn(&mut cmd)?;
    let (mut second, mut second_link) = host.spawn(&mut cmd)?;
    check_echo(&mut first_link, 100, 1)?;
    check_echo(&mut second_link, 100, 2)?;
    drop((first_link, second_link));
    ensure!(first.wait()?.success(), "first guest failed");
    ensure!(second.wait()?.success(), "second guest failed");
    Ok(())
}

/// A spawned guest may do work before it calls `Guest::from_env`: `Host::spawn` waits for its
/// join (or its exit) instead of giving up on it and killing it.
fn late_guest() -> Result<()> {
    let host = host("late", WaitStrategy::default())?;
    let (mut child, mut link) = host.spawn(&mut command("late_echo")?)?;
    check_echo(&mut link, 100, 4)?;
    drop(link);
    ensure!(child.wait()?.success(), "late guest failed");
    Ok(())
}

/// A spawned child that never calls `Guest::from_env` does not hang `Host::spawn`: at the join
/// deadline the child is killed and reaped, and the call fails with `JoinTimeout`.
fn never_joins() -> Result<()> {
    let ns = unique_namespace("never-joins");
    let host = Host::bind(
        ns.as_str(),
        HostConfig {
            join_timeout: Some(Duration::from_millis(200)),
            ..HostConfig::default()
        },
    )?;
    match host.spawn(&mut command("never_join")?) {
        Err(Error::JoinTimeout { pid, .. }) => {
            // Reaped, not a zombie: its /proc entry is gone (a zombie keeps one).
            ensure!(
                !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "child {pid} still exists after JoinTimeout"
            );
        }
        Ok(_) => bail!("a child that never joined got a link"),
        Err(e) => bail!("expected JoinTimeout, got {e}"),
    }
    // The host still serves.
    let (mut child, mut link) = host.spawn(&mut command("echo")?)?;
    check_echo(&mut link, 100, 5)?;
    drop(link);
    ensure!(child.wait()?.success());
    Ok(())
}

/// A spawned child that exits before it joins fails `Host::spawn` with its exit status, at
/// once: the join deadline (the default, 30 s) is not waited out.
fn exits_before_joining() -> Result<()> {
    let host = host("exits-early", WaitStrategy::default())?;
    match host.spawn(&mut command("exit_early")?) {
        Err(Error::GuestExited { status, .. }) => {
            ensure!(status.code() == Some(3), "exit status {status}");
        }
        Ok(_) => bail!("a child that exited got a link"),
        Err(e) => bail!("expected GuestExited, got {e}"),
    }
    Ok(())
}

/// Spawns `role` as a silent client of `host`, once it has connected.
fn silent(
    host: &Host,
    role: &str,
) -> Result<(support::Guard, BufReader<std::process::ChildStdout>)> {
    let mut cmd = command(role)?;
    cmd.env(HOST_ENV, host.name().as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut client = spawn(cmd, None)?;
    let mut out = BufReader::new(client.child().stdout.take().context("stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    ensure!(line.trim() == "connected", "silent client said {line:?}");
    Ok((client, out))
}

/// A client that connects first and says nothing does not stall `accept`: a guest that
/// connects after it gets its link while the silent connection is still open, long before its
/// hello deadline (30 s here), which the host has not waited out.
fn silent_client() -> Result<()> {
    let ns = unique_namespace("silent");
    let host = Host::bind(
        ns.as_str(),
        HostConfig {
            hello_timeout: Some(Duration::from_secs(30)),
            ..HostConfig::default()
        },
    )?;
    let (mut quiet, mut quiet_out) = silent(&host, "silent_asked")?;
    let mut cmd = command("connect_echo")?;
    cmd.env(HOST_ENV, host.name().as_str());
    let guest = spawn(cmd, None)?;
    let mut link = host.accept_timeout(support::DEADLINE)?;
    ensure!(
        link.peer().pid == guest.id(),
        "accept gave a link to {}, not the guest {}",
        link.peer().pid,
        guest.id()
    );
    check_echo(&mut link, 100, 6)?;
    // The silent client is still connected: the host did not close it to get to the guest.
    writeln!(quiet.child().stdin.as_mut().context("stdin")?)?;
    let mut line = String::new();
    quiet_out.read_line(&mut line)?;
    ensure!(
        line.trim() == "open",
        "the silent connection was {line:?} when the guest got in"
    );
    ensure!(quiet.wait()?.success());
    drop(link);
    guest.wait_success()
}

/// A silent client is closed by the host once its hello deadline passes (while the host is in
/// `accept`), and the host goes on to serve the next guest.
fn silent_client_closed() -> Result<()> {
    let ns = unique_namespace("silent-closed");
    let host = Host::bind(
        ns.as_str(),
        HostConfig {
            hello_timeout: Some(Duration::from_millis(100)),
            ..HostConfig::default()
        },
    )?;
    let (mut quiet, mut quiet_out) = silent(&host, "silent_until_closed")?;
    std::thread::scope(|s| {
        let accepted = s.spawn(|| host.accept_timeout(support::DEADLINE));
        let mut line = String::new();
        quiet_out.read_line(&mut line)?;
        ensure!(line.trim() == "closed", "the silent client says {line:?}");
        ensure!(quiet.wait()?.success());
        let mut cmd = command("connect_echo")?;
        cmd.env(HOST_ENV, host.name().as_str());
        let guest = spawn(cmd, None)?;
        let mut link = accepted.join().unwrap()?;
        check_echo(&mut link, 100, 7)?;
        drop(link);
        guest.wait_success()
    })
}
