//! Shared by the cross-process transport tests: the roles this test binary plays when re-run as
//! a child (`MEMWIRE_TEST_ROLE`, dispatched by [`roles`] from each binary's `main`), and the
//! hosts, payloads and echo checks of the parent side.

#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use memwire_shm::{Access, MemfdSegment, Segment};
use memwire_transport::{Error, Guest, Host, HostConfig, Link, WaitStrategy};

use crate::support::{self, unique_namespace};

pub const HOST_ENV: &str = "MEMWIRE_TEST_HOST";
/// Large messages sent to a receiver that drains only on cue: more than the control socket
/// holds (278 frames with the default 208 KiB socket buffer), fewer fds in flight than the
/// usual `RLIMIT_NOFILE` allows.
pub const CUED: u64 = 800;
/// Their length: beyond the inline threshold, and the link has no size classes.
pub const CUED_LEN: usize = 64;

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

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The `main` of each of these test binaries: a runtime directory of its own, then the child
/// role the binary was started in (`MEMWIRE_TEST_ROLE`, dispatched by [`roles`]) or `trials`.
pub fn run(trials: Vec<libtest_mimic::Trial>) -> ! {
    support::private_runtime_dir("memwire-transport-test");
    support::main(roles, trials)
}

pub fn roles(role: &str) -> Result<()> {
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

pub fn host(test: &str, wait: WaitStrategy) -> Result<Host> {
    let ns = unique_namespace(test);
    Ok(Host::bind(
        ns.as_str(),
        HostConfig {
            wait,
            ..HostConfig::default()
        },
    )?)
}

pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 7) as u8)
        .collect()
}

pub fn check_echo(link: &mut Link, len: usize, seed: u64) -> Result<()> {
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
