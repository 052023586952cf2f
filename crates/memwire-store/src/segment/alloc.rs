//! The value area's allocator. It lives in the server's own memory: the segment holds only the
//! bytes readers need, never a free list a reader could be confused by (or a client corrupt).
//!
//! Best fit over free blocks kept twice: by offset (to merge a freed block with its
//! neighbours) and by (length, offset) (to find the smallest block that fits). Every size is
//! a multiple of [`GRANULE`], so every block, and so every value, is 8-aligned.

use std::collections::{BTreeMap, BTreeSet};

use super::layout::GRANULE;

/// A block handed out: `len` bytes at absolute segment offset `offset`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Block {
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// Free space of `start .. start + len`.
#[derive(Debug)]
pub(crate) struct Allocator {
    by_offset: BTreeMap<u64, u64>,
    by_len: BTreeSet<(u64, u64)>,
    free: u64,
}

/// Rounds a request up to the granule (0 stays 0).
pub(crate) fn rounded(len: u64) -> u64 {
    len.next_multiple_of(GRANULE)
}

impl Allocator {
    /// All of `start .. start + len` free; `start` must be granule-aligned.
    pub(crate) fn new(start: u64, len: u64) -> Self {
        debug_assert!(start.is_multiple_of(GRANULE));
        let len = len - len % GRANULE;
        let mut this = Self {
            by_offset: BTreeMap::new(),
            by_len: BTreeSet::new(),
            free: 0,
        };
        if len > 0 {
            this.insert(start, len);
        }
        this
    }

    fn insert(&mut self, offset: u64, len: u64) {
        self.by_offset.insert(offset, len);
        self.by_len.insert((len, offset));
        self.free += len;
    }

    fn remove(&mut self, offset: u64, len: u64) {
        self.by_offset.remove(&offset);
        self.by_len.remove(&(len, offset));
        self.free -= len;
    }

    /// Free bytes in all.
    pub(crate) fn free_bytes(&self) -> u64 {
        self.free
    }

    /// The largest free block.
    pub(crate) fn largest(&self) -> u64 {
        self.by_len.last().map_or(0, |&(len, _)| len)
    }

    /// The smallest free block of at least `len` bytes (rounded up to the granule), split;
    /// `None` when none is large enough. `len` 0 takes nothing and returns an empty block.
    pub(crate) fn alloc(&mut self, len: u64) -> Option<Block> {
        let len = rounded(len);
        if len == 0 {
            return Some(Block { offset: 0, len: 0 });
        }
        let &(have, offset) = self.by_len.range((len, 0)..).next()?;
        self.remove(offset, have);
        if have > len {
            self.insert(offset + len, have - len);
        }
        Some(Block { offset, len })
    }

    /// Returns a block, merging it with free neighbours.
    pub(crate) fn free(&mut self, block: Block) {
        if block.len == 0 {
            return;
        }
        let (mut offset, mut len) = (block.offset, block.len);
        if let Some((&prev, &prev_len)) = self.by_offset.range(..offset).next_back() {
            debug_assert!(prev + prev_len <= offset, "double free at {offset}");
            if prev + prev_len == offset {
                self.remove(prev, prev_len);
                offset = prev;
                len += prev_len;
            }
        }
        if let Some(&next_len) = self.by_offset.get(&(offset + len)) {
            self.remove(offset + len, next_len);
            len += next_len;
        }
        self.insert(offset, len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn best_fit_splits_and_merges_back() {
        let mut a = Allocator::new(4096, 100);
        assert_eq!(a.free_bytes(), 96);
        let x = a.alloc(10).unwrap();
        assert_eq!(
            x,
            Block {
                offset: 4096,
                len: 16
            }
        );
        let y = a.alloc(8).unwrap();
        assert_eq!(y.offset, 4112);
        assert!(a.alloc(80).is_none());
        a.free(x);
        a.free(y);
        assert_eq!(a.largest(), 96);
        assert_eq!(a.alloc(0), Some(Block { offset: 0, len: 0 }));
    }

    proptest! {
        /// Blocks never overlap, stay inside the area, and freeing all gives the area back.
        #[test]
        fn blocks_never_overlap(ops in proptest::collection::vec((any::<bool>(), 1u64..300), 1..200)) {
            let mut a = Allocator::new(0, 4096);
            let mut live: Vec<Block> = Vec::new();
            for (alloc, n) in ops {
                if alloc || live.is_empty() {
                    if let Some(b) = a.alloc(n) {
                        prop_assert!(b.offset + b.len <= 4096 && b.offset % GRANULE == 0);
                        for o in &live {
                            prop_assert!(b.offset + b.len <= o.offset || o.offset + o.len <= b.offset);
                        }
                        live.push(b);
                    }
                } else {
                    let b = live.swap_remove(n as usize % live.len());
                    a.free(b);
                }
            }
            for b in live.drain(..) {
                a.free(b);
            }
            prop_assert_eq!(a.largest(), 4096);
        }
    }
}
