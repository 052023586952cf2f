//! [`Mapping`]'s words: atomic loads, stores, compare-exchanges and adds at byte offsets, and
//! futex waits and wakes on a `u32`.
//!
//! # Safety
//! Every `AtomicU32` / `AtomicU64` reference is made by `word32` / `word64`, right after
//! `check_atomic` has checked that the word lies inside the live mapping and is aligned to its
//! width (the mapping's base is page-aligned). References that can store are handed out only
//! for a writable mapping (`check_writable`). See the [parent module](super) for the mapping's
//! own invariants.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::Mapping;
use crate::error::Result;

impl Mapping {
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
}

#[cfg(test)]
mod tests {
    use super::super::tests::memfd;
    use super::*;
    use crate::error::Error;
    use crate::mapping::Access;
    use std::os::fd::AsFd;

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
}
