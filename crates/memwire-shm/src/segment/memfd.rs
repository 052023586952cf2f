//! Anonymous segments: sealed memfds.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{MemfdFlags, SealFlags};

use super::{Segment, check_len};
use crate::error::{Error, Result};

/// An anonymous shared segment: a memfd, sealed against shrinking and growing once sized, so no
/// holder can truncate it under another (a truncated mapping `SIGBUS`es its readers).
#[derive(Debug)]
pub struct MemfdSegment {
    fd: OwnedFd,
    len: usize,
}

impl MemfdSegment {
    /// Seals every memwire segment carries; [`MemfdSegment::from_fd`] requires them.
    pub const REQUIRED_SEALS: SealFlags = SealFlags::SHRINK.union(SealFlags::GROW);

    /// Seals of a segment its owner hands out read-only ([`MemfdSegment::seal_future_write`]
    /// done); [`MemfdSegment::from_read_only_fd`] requires them.
    pub const READ_ONLY_SEALS: SealFlags = Self::REQUIRED_SEALS.union(SealFlags::FUTURE_WRITE);

    /// `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)`, `ftruncate(len)`, then
    /// `F_ADD_SEALS(F_SEAL_SHRINK | F_SEAL_GROW)`. `debug_name` shows in `/proc/PID/fd` only.
    pub fn create(debug_name: &str, len: u64) -> Result<Self> {
        let len_usize = check_len("memfd segment", len)?;
        let fd =
            rustix::fs::memfd_create(debug_name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
                .map_err(|e| Error::os("memfd_create", e))?;
        rustix::fs::ftruncate(&fd, len).map_err(|e| Error::os("ftruncate", e))?;
        rustix::fs::fcntl_add_seals(&fd, Self::REQUIRED_SEALS)
            .map_err(|e| Error::os("fcntl(F_ADD_SEALS)", e))?;
        Ok(Self { fd, len: len_usize })
    }

    /// Adopts an fd received from another process. It is untrusted: this checks that it
    /// carries [`MemfdSegment::REQUIRED_SEALS`] (so it cannot shrink under our mapping) and that
    /// it holds at least `min_len` bytes, before anyone maps it.
    pub fn from_fd(fd: OwnedFd, min_len: u64) -> Result<Self> {
        Self::adopt(fd, min_len, Self::REQUIRED_SEALS)
    }

    /// Adopts an fd whose owner promises it is read-only for everybody else: as
    /// [`MemfdSegment::from_fd`], but it must carry [`MemfdSegment::READ_ONLY_SEALS`], so no
    /// holder (this process included) can write it or map it writable.
    pub fn from_read_only_fd(fd: OwnedFd, min_len: u64) -> Result<Self> {
        Self::adopt(fd, min_len, Self::READ_ONLY_SEALS)
    }

    fn adopt(fd: OwnedFd, min_len: u64, required: SealFlags) -> Result<Self> {
        let present = seals(fd.as_fd())?;
        if !present.contains(required) {
            return Err(Error::MissingSeals { present, required });
        }
        let size = rustix::fs::fstat(&fd)
            .map_err(|e| Error::os("fstat", e))?
            .st_size;
        let size = u64::try_from(size).unwrap_or(0);
        if size < min_len {
            return Err(Error::SizeMismatch {
                expected: min_len,
                actual: size,
            });
        }
        let len = check_len("received memfd", size)?;
        Ok(Self { fd, len })
    }

    /// `F_ADD_SEALS(F_SEAL_FUTURE_WRITE)`: from now on no process can create a writable mapping
    /// of this file or `write(2)` to it, through any fd. Mappings made writable before the call
    /// stay writable, which is how the owner keeps writing. Irreversible.
    pub fn seal_future_write(&self) -> Result<()> {
        rustix::fs::fcntl_add_seals(&self.fd, SealFlags::FUTURE_WRITE)
            .map_err(|e| Error::os("fcntl(F_ADD_SEALS)", e))
    }

    /// `F_ADD_SEALS(F_SEAL_SEAL)`: no seal can be added from now on, by anybody (a holder
    /// that reopened the fd read-write through `/proc` could otherwise add seals). Irreversible.
    pub fn seal_seals(&self) -> Result<()> {
        rustix::fs::fcntl_add_seals(&self.fd, SealFlags::SEAL)
            .map_err(|e| Error::os("fcntl(F_ADD_SEALS)", e))
    }

    /// The seals on this segment (`F_GET_SEALS`).
    pub fn seals(&self) -> Result<SealFlags> {
        seals(self.fd.as_fd())
    }

    /// Another fd for the same segment (`fcntl(F_DUPFD_CLOEXEC)`), e.g. to pass to a peer.
    pub fn try_clone_fd(&self) -> Result<OwnedFd> {
        self.fd.try_clone().map_err(|e| Error::os("dup", e))
    }

    /// Gives up the segment, returning its fd.
    #[must_use]
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

/// `fcntl(fd, F_GET_SEALS)`.
pub(crate) fn seals(fd: BorrowedFd<'_>) -> Result<SealFlags> {
    rustix::fs::fcntl_get_seals(fd).map_err(|e| Error::os("fcntl(F_GET_SEALS)", e))
}

impl AsFd for MemfdSegment {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Segment for MemfdSegment {
    fn len(&self) -> usize {
        self.len
    }
}
