//! Passing the control socket to a spawned child by inheritance.
//!
//! # Safety
//! Two operations here are `unsafe`, each with its contract next to it:
//! - `pre_exec` runs a closure in the child between `fork` and `exec`, where only
//!   async-signal-safe calls are allowed: the closure makes one `fcntl(F_SETFD)` syscall on an
//!   fd number the parent keeps open until `spawn` returns, and allocates nothing.
//! - Taking ownership of an inherited fd number: done at most once per process (a static flag),
//!   after checking that the number is an open Unix socket, so no other owner can close it.

use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::io::FdFlags;

use crate::error::{Error, Result};

/// Makes `fd` survive `exec` in the child `command` spawns (and only there: the parent's copy
/// keeps `FD_CLOEXEC`, so children other threads spawn meanwhile do not inherit it).
pub(crate) fn inherit_in_child(command: &mut Command, fd: RawFd) {
    let hook = move || {
        // SAFETY: `fd` is open in the parent when `spawn` forks (the caller holds its owner
        // until `spawn` returns), so it is open in the child; borrowing it for one syscall
        // is sound.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        rustix::io::fcntl_setfd(fd, FdFlags::empty()).map_err(std::io::Error::from)
    };
    // SAFETY: the hook only performs `fcntl(F_SETFD)`, a raw, async-signal-safe syscall, and
    // allocates nothing, as code between fork and exec must.
    unsafe {
        command.pre_exec(hook);
    }
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
