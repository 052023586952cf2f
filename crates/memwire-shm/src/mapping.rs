//! A shared mapping and its safe, bounds-checked view.
//!
//! [`Mapping`] owns one `mmap(MAP_SHARED)` region. Everything above memwire-shm reaches shared
//! memory through its methods: atomic loads, stores, compare-exchanges and adds at byte offsets,
//! copies in and out, and futex waits and wakes on a word. Each access is checked against the
//! mapping's length, the access width's alignment, and (for writes) the mapping's protection,
//! and a violation is an [`Error`], never undefined behaviour or a `SIGSEGV`.
//!
//! | module | what it adds to [`Mapping`] |
//! | --- | --- |
//! | `atomic` | words: atomic loads, stores, compare-exchanges, adds; futex wait and wake |
//! | `copy` | bytes: plain copies, the atomic copies of a sequence lock, zero-copy slices |
//!
//! # What another process can do
//! Other processes may write the same memory at any time. The view therefore never hands out a
//! plain `&[u8]` or `&T` into the mapping (the compiler would be entitled to assume it does not
//! change): words are read with atomic loads, and bytes are copied out, possibly torn, into
//! memory the caller owns, where they are validated. A peer cannot truncate a sealed memfd;
//! `Mapping::map` checks the file is large enough before mapping it.
//!
//! # Safety
//! This module and its two children hold memwire-shm's raw pointer arithmetic. The invariants:
//! - `ptr .. ptr + len` is a live `MAP_SHARED` mapping for as long as the `Mapping` exists (it is
//!   unmapped only in `Drop`), and every access first passes [`Mapping::check`], so it stays
//!   inside that range.
//! - Atomic accesses are aligned to their width (`check_atomic`); `mmap` returns page-aligned
//!   memory, so an aligned offset gives an aligned address.
//! - Writes through a [`Access::ReadOnly`] mapping are refused before they are attempted.
//! - Byte copies use `ptr::copy_nonoverlapping` between the mapping and caller-owned memory;
//!   no reference to the shared bytes is created, so concurrent writers in other processes can
//!   tear the bytes copied but cannot invalidate a Rust reference.
//! - Atomic copies ([`Mapping::read_atomic`], [`Mapping::write_atomic`]) go through
//!   `AtomicU8` / `AtomicU64` references made by `byte_at` / `word_at`, whose callers have
//!   bounds-checked the whole range and split it so every `AtomicU64` is 8-aligned.

mod atomic;
mod copy;

use std::os::fd::BorrowedFd;
use std::ptr::NonNull;

use rustix::mm::{MapFlags, ProtFlags};

use crate::error::{Error, Result};

/// How a mapping may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `PROT_READ`: loads and copies out only.
    ReadOnly,
    /// `PROT_READ | PROT_WRITE`.
    ReadWrite,
}

/// One `MAP_SHARED` mapping of a file descriptor, unmapped on drop.
pub struct Mapping {
    /// Start of the mapping; page-aligned. Invariant: valid for `len` bytes until drop.
    ptr: NonNull<u8>,
    /// Length in bytes, > 0.
    len: usize,
    access: Access,
}

// SAFETY: the mapping is plain shared memory owned by this value; every access goes through
// atomics or copies, which are sound from any thread.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` only offers atomic accesses and copies, no `&mut` aliasing.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `mmap(NULL, len, prot, MAP_SHARED, fd, offset)`, after checking with `fstat` that the
    /// file holds `offset + len` bytes (touching a page past the end would raise `SIGBUS`).
    pub fn map(fd: BorrowedFd<'_>, offset: u64, len: usize, access: Access) -> Result<Self> {
        if len == 0 {
            return Err(Error::InvalidSize {
                what: "mapping".into(),
                size: 0,
                reason: "a mapping cannot be empty",
            });
        }
        let page = rustix::param::page_size() as u64;
        if !offset.is_multiple_of(page) {
            return Err(Error::Misaligned {
                offset: usize::try_from(offset).unwrap_or(usize::MAX),
                align: page as usize,
            });
        }
        let size = rustix::fs::fstat(fd)
            .map_err(|e| Error::os("fstat", e))?
            .st_size;
        let size = u64::try_from(size).unwrap_or(0);
        let need = offset.saturating_add(len as u64);
        if size < need {
            return Err(Error::SizeMismatch {
                expected: need,
                actual: size,
            });
        }
        let prot = match access {
            Access::ReadOnly => ProtFlags::READ,
            Access::ReadWrite => ProtFlags::READ | ProtFlags::WRITE,
        };
        // SAFETY: a fresh mapping at an address the kernel chooses (NULL hint) cannot overlap
        // any Rust object; `fd` is a valid borrowed descriptor and the file holds
        // `offset + len` bytes (checked above).
        let raw = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                MapFlags::SHARED,
                fd,
                offset,
            )
        }
        .map_err(|e| Error::os("mmap", e))?;
        let ptr = NonNull::new(raw.cast::<u8>()).ok_or(Error::Os {
            op: "mmap",
            source: std::io::Error::other("kernel returned a null mapping"),
        })?;
        Ok(Self { ptr, len, access })
    }

    /// Length of the mapping in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping is never empty. Present for API symmetry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the mapping may be written.
    #[must_use]
    pub fn access(&self) -> Access {
        self.access
    }

    /// Checks that `offset .. offset + len` lies inside the mapping.
    #[inline]
    fn check(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(out_of_bounds(offset, len, self.len)),
        }
    }

    /// Checks bounds and alignment of a `width`-byte atomic at `offset`.
    #[inline]
    fn check_atomic(&self, offset: usize, width: usize) -> Result<()> {
        self.check(offset, width)?;
        if !offset.is_multiple_of(width) {
            return Err(Error::Misaligned {
                offset,
                align: width,
            });
        }
        Ok(())
    }

    #[inline]
    fn check_writable(&self, offset: usize) -> Result<()> {
        match self.access {
            Access::ReadWrite => Ok(()),
            Access::ReadOnly => Err(Error::ReadOnly { offset }),
        }
    }
}

/// Error paths stay out of line so the checks inline to a compare and a branch.
#[cold]
#[inline(never)]
fn out_of_bounds(offset: usize, len: usize, size: usize) -> Error {
    Error::OutOfBounds { offset, len, size }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr .. ptr + len` is the region `mmap` returned and nothing borrowed from
        // this mapping outlives `self` (every borrow is tied to `&self`).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("access", &self.access)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::MemfdFlags;
    use std::os::fd::AsFd;
    use std::sync::atomic::Ordering;

    /// A memfd of `len` bytes, for the tests of this module and its children.
    pub(super) fn memfd(len: u64) -> std::os::fd::OwnedFd {
        let fd = rustix::fs::memfd_create("mapping-test", MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, len).unwrap();
        fd
    }

    #[test]
    fn round_trips_and_checks_bounds() {
        let fd = memfd(8192);
        let rw = Mapping::map(fd.as_fd(), 0, 8192, Access::ReadWrite).unwrap();
        let ro = Mapping::map(fd.as_fd(), 0, 8192, Access::ReadOnly).unwrap();
        rw.store_u64(8, 0xdead_beef, Ordering::Release).unwrap();
        assert_eq!(ro.load_u64(8, Ordering::Acquire).unwrap(), 0xdead_beef);
        rw.write(100, b"hello").unwrap();
        assert_eq!(ro.read_vec(100, 5).unwrap(), b"hello");
        assert_eq!(
            rw.compare_exchange_u32(0, 0, 7, Ordering::AcqRel, Ordering::Acquire)
                .unwrap(),
            Ok(0)
        );
        assert_eq!(rw.fetch_add_u32(0, 1, Ordering::AcqRel).unwrap(), 7);
        assert!(matches!(
            rw.load_u32(8190, Ordering::Relaxed),
            Err(Error::OutOfBounds { .. })
        ));
        assert!(matches!(
            rw.load_u64(4, Ordering::Relaxed),
            Err(Error::Misaligned {
                offset: 4,
                align: 8
            })
        ));
        assert!(matches!(
            rw.read(usize::MAX, &mut [0; 2]),
            Err(Error::OutOfBounds { .. })
        ));
        assert!(matches!(
            ro.write(0, b"x"),
            Err(Error::ReadOnly { offset: 0 })
        ));
        assert!(matches!(
            ro.store_u32(0, 1, Ordering::Relaxed),
            Err(Error::ReadOnly { .. })
        ));
        rw.fill(0, 8192, 0xab).unwrap();
        assert_eq!(ro.read_vec(8191, 1).unwrap(), [0xab]);
    }

    #[test]
    fn refuses_to_map_past_the_end_of_the_file() {
        let fd = memfd(4096);
        assert!(matches!(
            Mapping::map(fd.as_fd(), 0, 8192, Access::ReadOnly),
            Err(Error::SizeMismatch {
                expected: 8192,
                actual: 4096
            })
        ));
        assert!(matches!(
            Mapping::map(fd.as_fd(), 0, 0, Access::ReadOnly),
            Err(Error::InvalidSize { .. })
        ));
        assert!(matches!(
            Mapping::map(fd.as_fd(), 1, 16, Access::ReadOnly),
            Err(Error::Misaligned { .. })
        ));
    }
}
