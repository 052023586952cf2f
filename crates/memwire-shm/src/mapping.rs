//! A shared mapping and its safe, bounds-checked view.
//!
//! [`Mapping`] owns one `mmap(MAP_SHARED)` region. Everything above memwire-shm reaches shared
//! memory through its methods: atomic loads, stores, compare-exchanges and adds at byte offsets,
//! copies in and out, and futex waits and wakes on a word. Each access is checked against the
//! mapping's length, the access width's alignment, and (for writes) the mapping's protection,
//! and a violation is an [`Error`], never undefined behaviour or a `SIGSEGV`.
//!
//! # What another process can do
//! Other processes may write the same memory at any time. The view therefore never hands out a
//! plain `&[u8]` or `&T` into the mapping (the compiler would be entitled to assume it does not
//! change): words are read with atomic loads, and bytes are copied out, possibly torn, into
//! memory the caller owns, where they are validated. A peer cannot truncate a sealed memfd;
//! `Mapping::map` checks the file is large enough before mapping it.
//!
//! # Safety
//! This module holds memwire-shm's raw pointer arithmetic. The invariants:
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

use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

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

    /// The `AtomicU32` at `offset`, after bounds and alignment checks. Private: on a read-only
    /// mapping a store through it would fault, so public callers get [`Mapping::atomic_u32`].
    #[inline]
    fn word32(&self, offset: usize) -> Result<&AtomicU32> {
        self.check_atomic(offset, 4)?;
        // SAFETY: `offset + 4 <= len` and `offset` is 4-aligned (checked), the mapping lives
        // as long as `&self`, and `AtomicU32` has the size and alignment of `u32` and tolerates
        // concurrent access from other processes.
        Ok(unsafe { &*self.ptr.as_ptr().add(offset).cast::<AtomicU32>() })
    }

    #[inline]
    fn word64(&self, offset: usize) -> Result<&AtomicU64> {
        self.check_atomic(offset, 8)?;
        // SAFETY: as in `word32`, with an 8-byte width and alignment.
        Ok(unsafe { &*self.ptr.as_ptr().add(offset).cast::<AtomicU64>() })
    }

    /// The `AtomicU32` at `offset` of a writable mapping, for code that touches one word many
    /// times (ring indices) and wants the checks done once.
    #[inline]
    pub fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32> {
        self.check_writable(offset)?;
        self.word32(offset)
    }

    /// The `AtomicU64` at `offset` of a writable mapping; see [`Mapping::atomic_u32`].
    #[inline]
    pub fn atomic_u64(&self, offset: usize) -> Result<&AtomicU64> {
        self.check_writable(offset)?;
        self.word64(offset)
    }

    /// Atomic load of the `u32` at `offset`.
    #[inline]
    pub fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32> {
        Ok(self.word32(offset)?.load(order))
    }

    /// Atomic load of the `u64` at `offset`.
    #[inline]
    pub fn load_u64(&self, offset: usize, order: Ordering) -> Result<u64> {
        Ok(self.word64(offset)?.load(order))
    }

    /// Atomic store of a `u32` at `offset`.
    #[inline]
    pub fn store_u32(&self, offset: usize, value: u32, order: Ordering) -> Result<()> {
        self.atomic_u32(offset)?.store(value, order);
        Ok(())
    }

    /// Atomic store of a `u64` at `offset`.
    #[inline]
    pub fn store_u64(&self, offset: usize, value: u64, order: Ordering) -> Result<()> {
        self.atomic_u64(offset)?.store(value, order);
        Ok(())
    }

    /// Atomic compare-exchange of the `u32` at `offset`. The outer `Result` reports a bad
    /// offset; the inner one is `AtomicU32::compare_exchange`'s.
    #[inline]
    pub fn compare_exchange_u32(
        &self,
        offset: usize,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<Result<u32, u32>> {
        Ok(self
            .atomic_u32(offset)?
            .compare_exchange(current, new, success, failure))
    }

    /// Atomic compare-exchange of the `u64` at `offset`; see
    /// [`Mapping::compare_exchange_u32`].
    #[inline]
    pub fn compare_exchange_u64(
        &self,
        offset: usize,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<Result<u64, u64>> {
        Ok(self
            .atomic_u64(offset)?
            .compare_exchange(current, new, success, failure))
    }

    /// Atomic wrapping add to the `u32` at `offset`; returns the previous value.
    #[inline]
    pub fn fetch_add_u32(&self, offset: usize, value: u32, order: Ordering) -> Result<u32> {
        Ok(self.atomic_u32(offset)?.fetch_add(value, order))
    }

    /// Atomic wrapping add to the `u64` at `offset`; returns the previous value.
    #[inline]
    pub fn fetch_add_u64(&self, offset: usize, value: u64, order: Ordering) -> Result<u64> {
        Ok(self.atomic_u64(offset)?.fetch_add(value, order))
    }

    /// `futex(word at offset, FUTEX_WAIT, expected, timeout)`: sleeps while the `u32` at
    /// `offset` equals `expected`, until woken or timed out. Works on read-only mappings too, so
    /// a reader can sleep on a word only the writer changes. See [`crate::futex::wait`].
    pub fn futex_wait(
        &self,
        offset: usize,
        expected: u32,
        timeout: Option<std::time::Duration>,
    ) -> Result<crate::futex::WaitOutcome> {
        crate::futex::wait(self.word32(offset)?, expected, timeout)
    }

    /// `futex(word at offset, FUTEX_WAKE, count)`: wakes up to `count` waiters on the `u32` at
    /// `offset`, in any process; returns how many were woken. See [`crate::futex::wake`].
    pub fn futex_wake(&self, offset: usize, count: u32) -> Result<usize> {
        crate::futex::wake(self.word32(offset)?, count)
    }

    /// Copies `buf.len()` bytes at `offset` out of the mapping. Bytes another process writes
    /// meanwhile may arrive torn: validate the copy, not the mapping.
    #[inline]
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.check(offset, buf.len())?;
        // SAFETY: the source range is inside the live mapping (checked) and the destination is
        // caller-owned memory, so the two cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(offset),
                buf.as_mut_ptr(),
                buf.len(),
            );
        }
        Ok(())
    }

    /// The `AtomicU8` at `offset`, unchecked.
    ///
    /// # Safety
    /// `offset < self.len` (the caller has bounds-checked a range containing it).
    #[inline]
    unsafe fn byte_at(&self, offset: usize) -> &AtomicU8 {
        debug_assert!(offset < self.len);
        // SAFETY: in bounds (the caller's contract); `AtomicU8` has size and alignment 1.
        unsafe { &*self.ptr.as_ptr().add(offset).cast::<AtomicU8>() }
    }

    /// The `AtomicU64` at `offset`, unchecked.
    ///
    /// # Safety
    /// `offset + 8 <= self.len` and `offset` is a multiple of 8.
    #[inline]
    unsafe fn word_at(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset + 8 <= self.len && offset.is_multiple_of(8));
        // SAFETY: in bounds and 8-aligned (the caller's contract; the base is page-aligned).
        unsafe { &*self.ptr.as_ptr().add(offset).cast::<AtomicU64>() }
    }

    /// Copies `buf.len()` bytes at `offset` out of the mapping with `Relaxed` atomic loads:
    /// `AtomicU64` for the 8-aligned middle, `AtomicU8` for the unaligned ends. This is the
    /// copy a sequence-lock reader makes: racing with a writer it may see a mix of old and new
    /// bytes (which the reader's sequence check then rejects), but never a data race. Pair it
    /// with `fence(Acquire)` before re-reading the sequence word.
    #[inline]
    pub fn read_atomic(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.check(offset, buf.len())?;
        let (head, words) = split_words(offset, buf.len());
        let (h, rest) = buf.split_at_mut(head);
        let (m, t) = rest.split_at_mut(words * 8);
        let mid = offset + head;
        let end = mid + words * 8;
        // All three loops stay inside `offset .. offset + buf.len()`, which is in bounds
        // (checked), and `mid` is 8-aligned (`split_words`).
        for (i, b) in h.iter_mut().enumerate() {
            // SAFETY: `offset + i` is inside the checked range.
            *b = unsafe { self.byte_at(offset + i) }.load(Ordering::Relaxed);
        }
        for (i, chunk) in m.chunks_exact_mut(8).enumerate() {
            // SAFETY: `mid + 8 * i .. + 8` is inside the checked range and 8-aligned.
            let word = unsafe { self.word_at(mid + i * 8) }.load(Ordering::Relaxed);
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        for (i, b) in t.iter_mut().enumerate() {
            // SAFETY: `end + i` is inside the checked range (the tail, < 8 bytes).
            *b = unsafe { self.byte_at(end + i) }.load(Ordering::Relaxed);
        }
        Ok(())
    }

    /// Copies `data` into the mapping at `offset` with `Relaxed` atomic stores (as
    /// [`Mapping::read_atomic`] loads): the writer's half of a sequence lock, for bytes readers
    /// may be copying at the same time. Precede it with `fence(Release)` after making the
    /// sequence word odd.
    #[inline]
    pub fn write_atomic(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check_writable(offset)?;
        self.check(offset, data.len())?;
        let (head, words) = split_words(offset, data.len());
        let (h, rest) = data.split_at(head);
        let (m, t) = rest.split_at(words * 8);
        let mid = offset + head;
        let end = mid + words * 8;
        // All three loops stay inside `offset .. offset + data.len()`, which is in bounds of the
        // writable mapping (checked), and `mid` is 8-aligned (`split_words`).
        for (i, &b) in h.iter().enumerate() {
            // SAFETY: `offset + i` is inside the checked range.
            unsafe { self.byte_at(offset + i) }.store(b, Ordering::Relaxed);
        }
        for (i, chunk) in m.chunks_exact(8).enumerate() {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            // SAFETY: `mid + 8 * i .. + 8` is inside the checked range and 8-aligned.
            unsafe { self.word_at(mid + i * 8) }.store(u64::from_ne_bytes(word), Ordering::Relaxed);
        }
        for (i, &b) in t.iter().enumerate() {
            // SAFETY: `end + i` is inside the checked range (the tail, < 8 bytes).
            unsafe { self.byte_at(end + i) }.store(b, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Copies `len` bytes at `offset` out of the mapping into a new vector.
    pub fn read_vec(&self, offset: usize, len: usize) -> Result<Vec<u8>> {
        self.check(offset, len)?;
        let mut buf = vec![0; len];
        self.read(offset, &mut buf)?;
        Ok(buf)
    }

    /// Copies `data` into the mapping at `offset`.
    #[inline]
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check_writable(offset)?;
        self.check(offset, data.len())?;
        // SAFETY: the destination range is inside the live, writable mapping (checked) and the
        // source is caller-owned memory, so the two cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(offset), data.len());
        }
        Ok(())
    }

    /// The bytes at `offset .. offset + len` as a slice, for zero-copy reads of a region the
    /// caller's protocol says nobody writes while the slice lives (a received message's slot).
    ///
    /// # Safety
    /// While the returned slice lives, no code in this process may write the range (through
    /// this mapping, another mapping of the same file, or [`Mapping::bytes_mut`]). Another
    /// process that writes the range anyway breaks its own protocol: the reader may then see
    /// torn bytes, which it must tolerate (validate what it reads, as with any input).
    pub unsafe fn bytes(&self, offset: usize, len: usize) -> Result<&[u8]> {
        self.check(offset, len)?;
        // SAFETY: in bounds of the live mapping (checked); the caller guarantees no writer in
        // this process for the slice's lifetime, which is tied to `&self`.
        Ok(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset), len) })
    }

    /// The bytes at `offset .. offset + len` as a mutable slice, for zero-copy writes into a
    /// region this process owns exclusively (a loaned slot).
    ///
    /// # Safety
    /// While the returned slice lives, no other reference in this process may point into the
    /// range (no second `bytes_mut` or `bytes` of an overlapping range, no `read`/`write` of it),
    /// and the caller's protocol gives this process the range alone. Writes by another process
    /// that breaks the protocol only garble the bytes being written.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn bytes_mut(&self, offset: usize, len: usize) -> Result<&mut [u8]> {
        self.check_writable(offset)?;
        self.check(offset, len)?;
        // SAFETY: in bounds of the live, writable mapping (checked); the caller guarantees
        // this is the only reference into the range for the slice's lifetime (tied to `&self`).
        Ok(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(offset), len) })
    }

    /// Sets `len` bytes at `offset` to `byte`.
    pub fn fill(&self, offset: usize, len: usize, byte: u8) -> Result<()> {
        self.check_writable(offset)?;
        self.check(offset, len)?;
        // SAFETY: the range is inside the live, writable mapping (checked).
        unsafe { std::ptr::write_bytes(self.ptr.as_ptr().add(offset), byte, len) };
        Ok(())
    }
}

/// Splits `offset .. offset + len` into `head` single bytes up to the next multiple of 8, then
/// `words` aligned 8-byte words; the remaining `len - head - 8 * words` (< 8) bytes are the tail.
#[inline]
fn split_words(offset: usize, len: usize) -> (usize, usize) {
    let head = (offset.wrapping_neg() & 7).min(len);
    (head, (len - head) / 8)
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

    fn memfd(len: u64) -> std::os::fd::OwnedFd {
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
    fn atomic_copies_round_trip_at_every_alignment() {
        let fd = memfd(4096);
        let rw = Mapping::map(fd.as_fd(), 0, 4096, Access::ReadWrite).unwrap();
        let ro = Mapping::map(fd.as_fd(), 0, 4096, Access::ReadOnly).unwrap();
        for offset in 0..17 {
            for len in 0..40 {
                let data: Vec<u8> = (0..len).map(|i| (offset * 64 + i + 1) as u8).collect();
                rw.fill(0, 128, 0).unwrap();
                rw.write_atomic(offset, &data).unwrap();
                let mut back = vec![0xee; len];
                ro.read_atomic(offset, &mut back).unwrap();
                assert_eq!(back, data, "offset {offset} len {len}");
                // Plain copies agree, and nothing outside the range was touched.
                assert_eq!(ro.read_vec(offset, len).unwrap(), data);
                let whole = ro.read_vec(0, 128).unwrap();
                assert!(whole[..offset].iter().all(|&b| b == 0));
                assert!(whole[offset + len..].iter().all(|&b| b == 0));
            }
        }
    }

    #[test]
    fn atomic_copies_check_bounds_and_protection() {
        let fd = memfd(4096);
        let rw = Mapping::map(fd.as_fd(), 0, 4096, Access::ReadWrite).unwrap();
        let ro = Mapping::map(fd.as_fd(), 0, 4096, Access::ReadOnly).unwrap();
        assert!(matches!(
            ro.read_atomic(4090, &mut [0; 7]),
            Err(Error::OutOfBounds {
                offset: 4090,
                len: 7,
                size: 4096
            })
        ));
        assert!(matches!(
            ro.read_atomic(usize::MAX - 2, &mut [0; 5]),
            Err(Error::OutOfBounds { .. })
        ));
        assert!(matches!(
            rw.write_atomic(4089, &[1; 8]),
            Err(Error::OutOfBounds { .. })
        ));
        assert!(matches!(
            ro.write_atomic(8, &[1; 8]),
            Err(Error::ReadOnly { offset: 8 })
        ));
        // The last bytes are reachable, an empty copy at the end is fine.
        rw.write_atomic(4093, b"end").unwrap();
        let mut back = [0; 3];
        ro.read_atomic(4093, &mut back).unwrap();
        assert_eq!(&back, b"end");
        ro.read_atomic(4096, &mut []).unwrap();
    }

    proptest::proptest! {
        #[test]
        fn atomic_copies_match_plain_copies(
            offset in 0usize..200,
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..100),
        ) {
            let fd = memfd(4096);
            let rw = Mapping::map(fd.as_fd(), 0, 4096, Access::ReadWrite).unwrap();
            rw.write_atomic(offset, &data).unwrap();
            proptest::prop_assert_eq!(rw.read_vec(offset, data.len()).unwrap(), data.clone());
            rw.write(offset, &data).unwrap();
            let mut back = vec![0; data.len()];
            rw.read_atomic(offset, &mut back).unwrap();
            proptest::prop_assert_eq!(back, data);
        }
    }

    #[test]
    fn futex_through_the_view_wakes_a_reader_of_a_read_only_mapping() {
        let fd = memfd(4096);
        let rw = Mapping::map(fd.as_fd(), 0, 4096, Access::ReadWrite).unwrap();
        let ro = Mapping::map(fd.as_fd(), 0, 4096, Access::ReadOnly).unwrap();
        std::thread::scope(|s| {
            let sleeper = s.spawn(|| {
                while ro.load_u32(64, Ordering::Acquire).unwrap() == 0 {
                    ro.futex_wait(64, 0, None).unwrap();
                }
            });
            rw.store_u32(64, 1, Ordering::Release).unwrap();
            rw.futex_wake(64, u32::MAX).unwrap();
            sleeper.join().unwrap();
        });
        assert!(matches!(
            ro.futex_wait(66, 0, None),
            Err(Error::Misaligned { .. })
        ));
    }

    #[test]
    fn zero_copy_slices_are_checked_too() {
        let fd = memfd(4096);
        let rw = Mapping::map(fd.as_fd(), 0, 4096, Access::ReadWrite).unwrap();
        let ro = Mapping::map(fd.as_fd(), 0, 4096, Access::ReadOnly).unwrap();
        // SAFETY: the only reference into bytes 10..15 of this test's own mapping.
        let w = unsafe { rw.bytes_mut(10, 5) }.unwrap();
        w.copy_from_slice(b"abcde");
        // SAFETY: nothing writes bytes 10..15 while `r` lives.
        let r = unsafe { ro.bytes(10, 5) }.unwrap();
        assert_eq!(r, b"abcde");
        // SAFETY: every call below fails its checks before making a slice.
        unsafe {
            assert!(matches!(ro.bytes_mut(0, 1), Err(Error::ReadOnly { .. })));
            assert!(matches!(rw.bytes(4090, 7), Err(Error::OutOfBounds { .. })));
            assert!(matches!(
                rw.bytes_mut(usize::MAX, 2),
                Err(Error::OutOfBounds { .. })
            ));
        }
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
