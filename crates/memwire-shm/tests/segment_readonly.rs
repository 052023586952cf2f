//! Read-only, enforced by the kernel: a child handed a memfd sealed with
//! `F_SEAL_FUTURE_WRITE` cannot write it by any route, while the owner's earlier writable
//! mapping keeps working.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::process::Stdio;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail, ensure};
use memwire_shm::{Access, Error, Mapping, MemfdSegment, Segment};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use support::{command, inherited_fd, spawn, trial};

const LEN: u64 = 8192;

fn main() {
    support::main(
        roles,
        vec![trial(
            "sealed_memfd_refuses_every_write_route_in_a_child",
            sealed_memfd,
        )],
    )
}

fn expect_eperm<T: std::fmt::Debug>(what: &str, got: memwire_shm::Result<T>) -> Result<()> {
    match got {
        Err(e) if e.errno() == Some(Errno::PERM.raw_os_error()) => {
            println!("{what}: refused with EPERM");
            Ok(())
        }
        other => bail!("{what}: expected EPERM, got {other:?}"),
    }
}

fn roles(role: &str) -> Result<()> {
    ensure!(role == "try_writes", "unknown role {role:?}");
    let inherited = inherited_fd("/memfd:")?;
    let fd = inherited.as_fd();
    // 1. A writable mapping of the fd we were handed.
    expect_eperm(
        "mmap read-write",
        Mapping::map(fd, 0, LEN as usize, Access::ReadWrite),
    )?;
    // 2. write(2) on it.
    let wrote = rustix::io::pwrite(fd, b"x", 0).map_err(|e| Error::Os {
        op: "pwrite",
        source: e.into(),
    });
    expect_eperm("pwrite", wrote)?;
    // 3. Reopen through /proc read-write: the open succeeds (it is our own fd), but the seal
    //    is on the file, so mapping or writing the new fd fails the same way.
    let reopened = rustix::fs::open(
        format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd)),
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("reopen through /proc")?;
    expect_eperm(
        "mmap read-write of the /proc reopen",
        Mapping::map(reopened.as_fd(), 0, LEN as usize, Access::ReadWrite),
    )?;
    let wrote = rustix::io::pwrite(&reopened, b"x", 0).map_err(|e| Error::Os {
        op: "pwrite",
        source: e.into(),
    });
    expect_eperm("pwrite of the /proc reopen", wrote)?;
    // Reading works, and sees the owner's live writes.
    let ro = Mapping::map(fd, 0, LEN as usize, Access::ReadOnly)?;
    ensure!(
        ro.load_u64(0, Ordering::Acquire)? == 1,
        "first value not seen"
    );
    println!("read 1");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    ensure!(
        ro.load_u64(0, Ordering::Acquire)? == 2,
        "owner's later write not seen"
    );
    ensure!(matches!(ro.write(0, b"x"), Err(Error::ReadOnly { .. })));
    Ok(())
}

fn sealed_memfd() -> Result<()> {
    let seg = MemfdSegment::create("readonly-test", LEN)?;
    let owner = seg.map(Access::ReadWrite)?;
    owner.store_u64(0, 1, Ordering::Release)?;
    seg.seal_future_write()?;
    // The owner's own new writable mapping is refused too: the seal binds everybody.
    ensure!(matches!(
        seg.map(Access::ReadWrite),
        Err(e) if e.errno() == Some(Errno::PERM.raw_os_error())
    ));
    let fd = seg.try_clone_fd()?;
    let mut cmd = command("try_writes")?;
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = spawn(cmd, Some(&fd))?;
    let mut out = BufReader::new(child.child().stdout.take().context("stdout")?);
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if out.read_line(&mut line)? == 0 {
            break;
        }
        let done = line.starts_with("read 1");
        lines.push(line);
        if done {
            break;
        }
    }
    eprintln!("child: {}", lines.concat().trim_end());
    ensure!(lines.len() == 5, "child stopped early: {lines:?}");
    // The owner keeps writing through the mapping it made before sealing.
    owner.store_u64(0, 2, Ordering::Release)?;
    child
        .child()
        .stdin
        .as_mut()
        .context("stdin")?
        .write_all(b"go\n")?;
    child.wait_success()
}
