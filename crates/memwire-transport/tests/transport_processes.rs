//! Links between real processes: a host spawns or accepts guests (this test binary, re-run
//! with a role), messages of every size cross both ways, peers are killed or hostile.

#![allow(clippy::unwrap_used)]

#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use memwire_shm::{Access, MemfdSegment, Segment};
use memwire_transport::{Error, Guest, Host, HostConfig, Link, WaitStrategy};
use support::{command, spawn, trial, unique_namespace, wait_until};

const HOST_ENV: &str = "MEMWIRE_TEST_HOST";
/// Large messages sent to a receiver that drains only on cue: more than the control socket
/// holds (278 frames with the default 208 KiB socket buffer), fewer fds in flight than the
/// usual `RLIMIT_NOFILE` allows.
const CUED: u64 = 800;
/// Their length: beyond the inline threshold, and the link has no size classes.
const CUED_LEN: usize = 64;

fn main() {
    support::private_runtime_dir("memwire-transport-test");
    support::main(
        roles,
        vec![
            trial("spawned_guest_echoes_every_size", spawned_echo),
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
            trial("host_death_is_peer_gone_for_the_guest", host_death),
            trial(
                "a_message_sent_just_before_exit_arrives_before_peer_gone",
                last_words,
            ),
            trial("killed_guests_give_every_slot_back", killed_guests),
            trial("spinning_processes_make_no_wake_syscalls", no_wake_syscalls),
            trial(
                "a_scribbling_guest_is_cut_off_and_the_host_survives",
                scribbler,
            ),
            trial("many_messages_both_ways_with_checksums", both_ways),
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
        ],
    )
}

/// Echoes every message back until the link closes; prints its wake syscalls at the end.
fn echo(mut link: Link) -> Result<()> {
    loop {
        let msg = match link.rx().recv() {
            Ok(m) => m,
            Err(Error::PeerGone { .. }) => break,
            Err(e) => return Err(e.into()),
        };
        let mut loan = link.tx().loan(msg.len())?;
        loan.as_mut_slice().copy_from_slice(&msg);
        drop(msg);
        loan.commit()?;
    }
    println!("wakes {}", link.stats().wake_syscalls);
    Ok(())
}

/// [`echo`] with the tokio API, on a current-thread runtime; prints its wake syscalls and
/// sleeps at the end.
fn async_echo_role(link: Link) -> Result<()> {
    runtime()?.block_on(async move {
        let (mut tx, mut rx) = link.split();
        loop {
            let msg = match rx.recv_async().await {
                Ok(m) => m,
                Err(Error::PeerGone { .. }) => break,
                Err(e) => return Err(e.into()),
            };
            let mut loan = tx.loan_async(msg.len()).await?;
            loan.as_mut_slice().copy_from_slice(&msg);
            drop(msg);
            loan.commit()?;
        }
        let stats = tx.stats();
        println!("wakes {} sleeps {}", stats.wake_syscalls, stats.sleeps);
        Ok(())
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn roles(role: &str) -> Result<()> {
    let host_name = || std::env::var(HOST_ENV).context("no host name");
    match role {
        "echo" => echo(Guest::from_env()?),
        // Says one word and exits at once.
        "bye" => {
            let mut link = Guest::from_env()?;
            link.tx().send(b"bye")?;
            Ok(())
        }
        "echo_spin" => echo(Guest::from_env_with(WaitStrategy::Spin)?),
        // A guest with work to do before it asks for its link (a slow start).
        "late_echo" => {
            std::thread::sleep(Duration::from_secs(2));
            echo(Guest::from_env()?)
        }
        "connect_echo" => echo(Guest::connect(&host_name()?)?),
        // Connects to the host and says nothing; on a line on stdin, tells whether the host
        // still holds the connection open.
        "silent_asked" => {
            let stream = connect_silently(&host_name()?)?;
            std::io::stdin().read_line(&mut String::new())?;
            let mut fds = [rustix::event::PollFd::new(
                &stream,
                rustix::event::PollFlags::IN | rustix::event::PollFlags::RDHUP,
            )];
            let zero = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            let events = rustix::event::poll(&mut fds, Some(&zero))?;
            println!("{}", if events == 0 { "open" } else { "closed" });
            Ok(())
        }
        // Connects to the host, says nothing, and tells when the host closes the connection.
        "silent_until_closed" => {
            let stream = connect_silently(&host_name()?)?;
            stream.set_read_timeout(Some(support::DEADLINE))?;
            let closed = matches!(std::io::Read::read(&mut &stream, &mut [0u8; 64]), Ok(0));
            println!("{}", if closed { "closed" } else { "still open" });
            Ok(())
        }
        // Takes its link, then reads nothing until cued by a line on stdin (or, failing the
        // cue, after the deadline); then checks the `CUED` large messages.
        "drain_on_cue" => {
            let mut link = Guest::from_env()?;
            let stdin = std::io::stdin();
            let mut fds = [rustix::event::PollFd::new(
                &stdin,
                rustix::event::PollFlags::IN,
            )];
            let deadline = rustix::event::Timespec::try_from(support::DEADLINE)?;
            rustix::event::poll(&mut fds, Some(&deadline))?;
            for i in 0..CUED {
                let m = link.rx().recv_timeout(support::DEADLINE)?;
                ensure!(
                    m.len() == CUED_LEN && m.iter().all(|&b| b == i as u8),
                    "message {i}"
                );
            }
            println!("drained");
            Ok(())
        }
        // A spawned guest that never asks for its link.
        "never_join" => {
            std::thread::sleep(Duration::from_secs(600));
            Ok(())
        }
        // A spawned guest that fails before it asks for its link.
        "exit_early" => std::process::exit(3),
        "async_echo" => async_echo_role(Guest::from_env()?),
        "async_echo_block" => async_echo_role(Guest::from_env_with(WaitStrategy::Block)?),
        "async_echo_spin" => async_echo_role(Guest::from_env_with(WaitStrategy::Spin)?),
        // Fails unless it holds no fd of the host's beyond its link: one control socket (the
        // watcher's dup of it shares its inode) and pidfds of its parent only. Then echoes.
        "own_fds_only" => {
            let link = Guest::from_env()?;
            let parent = std::os::unix::process::parent_id();
            let mut sockets = std::collections::BTreeSet::new();
            for entry in std::fs::read_dir("/proc/self/fd")? {
                let path = entry?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let fd: i32 = name.parse().unwrap_or(0);
                let (Ok(meta), Ok(target)) = (std::fs::metadata(&path), std::fs::read_link(&path))
                else {
                    continue; // The directory's own fd, closed by now.
                };
                if fd <= 2 {
                    continue;
                }
                if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) {
                    sockets.insert(std::os::unix::fs::MetadataExt::ino(&meta));
                }
                if target.to_string_lossy().contains("pidfd") {
                    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))?;
                    let pid = info
                        .lines()
                        .find_map(|l| l.strip_prefix("Pid:"))
                        .map(str::trim)
                        .unwrap_or("");
                    ensure!(pid == parent.to_string(), "fd {fd}: a pidfd of {pid}");
                }
            }
            ensure!(sockets.len() == 1, "sockets the guest holds: {sockets:?}");
            echo(link)
        }
        // Takes its link and waits to be killed.
        "idle" => {
            let _link = Guest::from_env()?;
            std::thread::sleep(Duration::from_secs(60));
            Ok(())
        }
        // A host in a child: serves echo to every guest until killed.
        "host" => {
            let host = Host::bind(&host_name()?, HostConfig::default())?;
            println!("ready");
            std::io::stdout().flush()?;
            loop {
                let link = host.accept()?;
                std::thread::spawn(move || echo(link));
            }
        }
        // Sends and receives as fast as it can, holding some messages, until killed.
        "flood" => {
            let (mut tx, mut rx) = Guest::from_env()?.split();
            let mut held = Vec::new();
            let mut n = 0u64;
            loop {
                n += 1;
                let len = (n * 7919 % 70_000) as usize;
                match tx.try_loan(len) {
                    Ok(mut loan) => {
                        loan.as_mut_slice().fill(n as u8);
                        loan.commit()?;
                    }
                    Err(Error::WouldBlock) => {}
                    Err(e) => return Err(e.into()),
                }
                match rx.try_recv() {
                    Ok(m) if held.len() < 64 => held.push(m),
                    Ok(_) => held.clear(),
                    Err(Error::WouldBlock) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        // A hostile guest: takes the segment by hand and scribbles over its rings.
        "scribble" => {
            let stream = std::os::unix::net::UnixStream::connect(
                memwire_shm::name::runtime_dir()?
                    .join("transport")
                    .join(format!("{}.sock", host_name()?)),
            )?;
            // Speak the bootstrap protocol by hand: ask to join (the `MWJOIN01` frame).
            let mut join = [0u8; 64];
            join[..8].copy_from_slice(b"MWJOIN01");
            (&stream).write_all(&join)?;
            let mut frame = [0u8; 64];
            // The welcome carries the segment, then the link's four doorbells.
            let got = memwire_shm::recv_with_fds(&stream, &mut frame, 5)?;
            let fd = got.fds.into_iter().next().context("no segment fd")?;
            let seg = MemfdSegment::from_fd(fd, 0)?;
            let map = seg.map(Access::ReadWrite)?;
            // Garbage everywhere after the header page: rings, indices and slots of both
            // directions, the way a buggy or hostile peer would leave them.
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            let mut off = 4096;
            while off + 8 <= map.len() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                map.store_u64(off, x, Ordering::Relaxed)?;
                off += 8;
            }
            println!("scribbled");
            std::io::stdout().flush()?;
            std::thread::sleep(Duration::from_secs(60));
            Ok(())
        }
        other => bail!("unknown role {other:?}"),
    }
}

/// Connects to host `name`'s bootstrap socket and prints "connected".
fn connect_silently(name: &str) -> Result<std::os::unix::net::UnixStream> {
    let stream = std::os::unix::net::UnixStream::connect(
        memwire_shm::name::runtime_dir()?
            .join("transport")
            .join(format!("{name}.sock")),
    )?;
    println!("connected");
    std::io::stdout().flush()?;
    Ok(stream)
}

fn host(test: &str, wait: WaitStrategy) -> Result<Host> {
    let ns = unique_namespace(test);
    Ok(Host::bind(
        ns.as_str(),
        HostConfig {
            wait,
            ..HostConfig::default()
        },
    )?)
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 7) as u8)
        .collect()
}

fn check_echo(link: &mut Link, len: usize, seed: u64) -> Result<()> {
    let data = pattern(len, seed);
    link.tx().send(&data)?;
    let back = link
        .rx()
        .recv_timeout(Duration::from_secs(30))
        .with_context(|| format!("echo of {len} bytes"))?;
    ensure!(
        back.as_slice() == data.as_slice(),
        "echo of {len} bytes differs"
    );
    Ok(())
}

fn spawned_echo() -> Result<()> {
    let host = host("echo", WaitStrategy::default())?;
    let (mut child, mut link) = host.spawn(&mut command("echo")?)?;
    let sizes = [
        0,
        1,
        55,
        56,
        57,
        100,
        256,
        257,
        4096,
        5000,
        65536,
        70000,
        1 << 20,
        (1 << 20) + 1,
        3 << 20,
    ];
    for (i, &len) in sizes.iter().enumerate() {
        check_echo(&mut link, len, i as u64)?;
    }
    let usage = link.tx().usage()?;
    ensure!(
        usage.iter().all(|u| u.free == u.total),
        "slots not returned: {usage:?}"
    );
    let stats = link.stats();
    ensure!(
        stats.messages_sent == sizes.len() as u64 && stats.messages_received == sizes.len() as u64,
        "{stats:?}"
    );
    drop(link);
    let status = child.wait()?;
    ensure!(status.success(), "echo child: {status}");
    Ok(())
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

fn no_wake_syscalls() -> Result<()> {
    const MESSAGES: u64 = 100_000;
    let host = host("spin", WaitStrategy::Spin)?;
    let mut cmd = command("echo_spin")?;
    cmd.stdout(Stdio::piped());
    let (mut child, mut link) = host.spawn(&mut cmd)?;
    for i in 0..MESSAGES {
        let len = (i % 300) as usize;
        let mut loan = link.tx().loan(len)?;
        loan.as_mut_slice().fill(i as u8);
        loan.commit()?;
        let back = link.rx().recv()?;
        ensure!(
            back.len() == len && back.iter().all(|&b| b == i as u8),
            "message {i}"
        );
    }
    let stats = link.stats();
    drop(link);
    let mut out = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut out)?;
    ensure!(child.wait()?.success());
    eprintln!("host {stats:?}; guest {}", out.trim());
    ensure!(stats.messages_sent == MESSAGES && stats.messages_received == MESSAGES);
    ensure!(stats.wake_syscalls == 0 && stats.sleeps == 0, "{stats:?}");
    ensure!(out.trim() == "wakes 0", "guest: {out:?}");
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

fn both_ways() -> Result<()> {
    let (small, large) = (200_000u64, 2_000u64);
    let host = host("both-ways", WaitStrategy::default())?;
    let (mut child, link) = host.spawn(&mut command("echo")?)?;
    let (mut tx, mut rx) = link.split();
    let lens: Vec<usize> = (0..small + large)
        .map(|i| {
            if i % ((small + large) / large) == 0 {
                // 4 KiB .. 2 MiB; every tenth above 1 MiB.
                if i % 10 == 0 {
                    (1 << 20) + 1 + (i as usize * 7919) % ((1 << 20) - 1)
                } else {
                    4096 + (i as usize * 104_729) % ((1 << 20) - 4096)
                }
            } else {
                (i as usize * 31) % 4097
            }
        })
        .collect();
    let sender = {
        let lens = lens.clone();
        std::thread::spawn(move || -> Result<()> {
            for (i, &len) in lens.iter().enumerate() {
                let mut loan = tx.loan(len)?;
                let buf = loan.as_mut_slice();
                for (j, b) in buf.iter_mut().enumerate() {
                    *b = (i as u8).wrapping_add(j as u8);
                }
                loan.commit()?;
            }
            Ok(())
        })
    };
    for (i, &len) in lens.iter().enumerate() {
        let m = rx
            .recv_timeout(Duration::from_secs(60))
            .with_context(|| format!("message {i}"))?;
        ensure!(
            m.len() == len,
            "message {i}: {} bytes, expected {len}",
            m.len()
        );
        ensure!(
            m.iter()
                .enumerate()
                .all(|(j, &b)| b == (i as u8).wrapping_add(j as u8)),
            "message {i} of {len} bytes corrupt"
        );
    }
    sender.join().unwrap()?;
    let over_1m = lens.iter().filter(|&&l| l > 1 << 20).count();
    eprintln!("{} messages, {over_1m} above 1 MiB", lens.len());
    drop(rx);
    ensure!(child.wait()?.success());
    Ok(())
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
