//! Passing the control socket to a spawned child by inheritance.
//!
//! # Safety
//! Two operations here are `unsafe`, each with its contract next to it:
//! - `pre_exec` runs a closure in the child between `fork` and `exec`, where only
//!   async-signal-safe calls are allowed: the closure reads a thread-local fd number and makes
//!   one `fcntl(F_SETFD)` syscall on it, a number the parent keeps open until `spawn` returns,
//!   and allocates nothing.
//! - Taking ownership of an inherited fd number: done at most once per process (a static flag),
//!   after checking that the number is an open Unix socket, so no other owner can close it.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::io::FdFlags;

use crate::error::{Error, Result};

thread_local! {
    /// The fd number the `spawn_inheriting` running on this thread lets its child keep; -1
    /// outside one. A forked child is a copy of the spawning thread, so its hooks read it there.
    static INHERIT: Cell<RawFd> = const { Cell::new(-1) };
}

/// Spawns `command` with `fd` surviving `exec` in the child (and only there: the parent's copy
/// keeps `FD_CLOEXEC`, so children other threads spawn meanwhile do not inherit it).
///
/// A `Command` keeps its `pre_exec` hooks for good, and may be spawned again: the hook reads
/// the fd from [`INHERIT`], set only for the duration of this spawn, so a hook left by an
/// earlier spawn names this spawn's fd too (never a stale number that now names another fd),
/// and a plain `Command::spawn` later hands on nothing.
pub(crate) fn spawn_inheriting(command: &mut Command, fd: BorrowedFd<'_>) -> io::Result<Child> {
    let hook = || {
        let raw = INHERIT.with(Cell::get);
        if raw < 0 {
            return Ok(());
        }
        // SAFETY: `raw` is the fd `spawn_inheriting` borrows for the whole spawn, so it is open
        // in the parent when `spawn` forks, hence in the child; borrowing it for one syscall
        // is sound.
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        rustix::io::fcntl_setfd(fd, FdFlags::empty()).map_err(io::Error::from)
    };
    // SAFETY: the hook reads a thread-local `Cell` (const-initialised, no destructor: no
    // allocation or lazy registration) and performs `fcntl(F_SETFD)`, a raw,
    // async-signal-safe syscall, as code between fork and exec must.
    unsafe {
        command.pre_exec(hook);
    }
    INHERIT.with(|cell| cell.set(fd.as_raw_fd()));
    let spawned = command.spawn();
    INHERIT.with(|cell| cell.set(-1));
    spawned
}

static ADOPTED: AtomicBool = AtomicBool::new(false);

/// Takes ownership of the control socket a parent left at fd number `raw`. Refuses a second
/// adoption in one process and any fd that is not an open Unix stream socket.
pub(crate) fn adopt_socket(raw: RawFd) -> Result<OwnedFd> {
    let bad = |why: &str| Error::BadTicket(format!("fd {raw}: {why}"));
    if raw < 3 {
        return Err(bad("not an inherited fd"));
    }
    // SAFETY: only borrowed for the checks below, which fail cleanly on a closed number.
    let borrowed = unsafe { BorrowedFd::borrow_raw(raw) };
    let stat = rustix::fs::fstat(borrowed).map_err(|_| bad("not open"))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Socket {
        return Err(bad("not a socket"));
    }
    if ADOPTED.swap(true, Ordering::AcqRel) {
        return Err(bad("the ticket was already used in this process"));
    }
    // SAFETY: the fd is open (fstat succeeded), was left to us by our parent through the
    // ticket, and the flag above makes this the only `OwnedFd` ever made from it here.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    rustix::io::fcntl_setfd(&fd, FdFlags::CLOEXEC).map_err(|e| Error::Io {
        op: "fcntl(F_SETFD)",
        source: e.into(),
    })?;
    Ok(fd)
}
