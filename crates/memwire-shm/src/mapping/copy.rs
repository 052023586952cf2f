//! [`Mapping`]'s bytes: plain copies in and out, the atomic copies a sequence lock needs
//! ([`Mapping::read_atomic`], [`Mapping::write_atomic`]), and zero-copy slices for regions a
//! protocol gives one process alone.
//!
//! # Safety
//! Every copy and slice is bounds-checked (`check`) against the live mapping first, and every
//! write is refused on a read-only mapping (`check_writable`). Plain copies use
//! `ptr::copy_nonoverlapping` between the mapping and caller-owned memory, so no reference to
//! shared bytes is made; atomic copies go through the `AtomicU8` / `AtomicU64` references of
//! `byte_at` / `word_at`, whose callers have checked the whole range and split it
//! (`split_words`) so every `AtomicU64` is 8-aligned. The slices of `bytes` / `bytes_mut`
//! carry the caller's contract in their `# Safety` sections. See the [parent module](super)
//! for the mapping's own invariants.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use super::Mapping;
use crate::error::Result;

impl Mapping {
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
    #[inline]
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
    #[inline]
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

#[cfg(test)]
mod tests {
    use super::super::tests::memfd;
    use super::*;
    use crate::error::Error;
    use crate::mapping::Access;
    use std::os::fd::AsFd;

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
}
