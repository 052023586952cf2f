//! A loan: memory to write a message into, published by [`Loan::commit`].
//!
//! # Safety
//! [`Loan::as_mut_slice`] hands out `&mut [u8]` into the shared segment (or a large message's
//! own memfd), the zero-copy path. It is sound because:
//! - a slot is lent only while the sender's private pool records it `Loaned`, which no other
//!   loan can then get, and no descriptor naming it has been published, so no reader of ours
//!   (this process) holds a reference into it;
//! - the slice borrows the loan mutably, so there is one at a time, and the loan borrows the
//!   `Tx`, which keeps the mapping alive;
//! - a large message's memfd is fresh and private until committed.
//!
//! A hostile receiver can write into our slots anyway; it then garbles only the message it is
//! about to receive.

use memwire_shm::{Mapping, MemfdSegment};

use crate::descriptor::{Descriptor, INLINE_OFFSET};
use crate::error::Result;
use crate::pool::SlotRef;
use crate::tx::Tx;

/// Where a loan's bytes are. Two words: a large message's memfd and mapping are boxed (it
/// costs syscalls anyway), so that every `Result<Loan>` is small and moved in aligned words.
#[derive(Debug)]
pub(crate) enum Body {
    /// In the next slot of the data ring, written in place: the payload at `at +
    /// INLINE_OFFSET` of the mapping, the descriptor's head at `at` when committed.
    Inline {
        at: usize,
    },
    Slot(SlotRef),
    Large(Box<Large>),
}

/// A large message's own sealed memfd and its writable mapping.
#[derive(Debug)]
pub(crate) struct Large {
    pub(crate) segment: MemfdSegment,
    pub(crate) map: Mapping,
}

/// Writable memory for one message. Write it through [`Loan::as_mut_slice`], then
/// [`Loan::commit`]; a loan dropped without committing sends nothing and frees its slot.
#[derive(Debug)]
#[must_use = "a loan sends nothing until committed"]
pub struct Loan<'tx> {
    tx: &'tx mut Tx,
    body: Option<Body>,
    len: usize,
}

impl<'tx> Loan<'tx> {
    #[inline]
    pub(crate) fn new(tx: &'tx mut Tx, body: Body, len: usize) -> Self {
        Self {
            tx,
            body: Some(body),
            len,
        }
    }

    /// The message length.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The message's bytes, to write in place. They start as whatever the memory held before
    /// (a slot's last message, or a small message's predecessor: they are not cleared, which
    /// would cost what zero copy saves).
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let len = self.len;
        match self.body.as_mut() {
            Some(&mut Body::Inline { at }) => {
                // The slot is the data ring's next: no descriptor names it until this loan
                // commits, and the loan holds the `Tx`, so nobody here writes it meanwhile.
                let at = at + INLINE_OFFSET;
                // SAFETY: as above and in the module doc; `at + len` stays in the slot
                // (`len <= inline_max <= INLINE_MAX`), inside the checked mapping.
                let bytes = unsafe { self.tx.map().bytes_mut(at, len) };
                bytes.expect("a ring slot lies inside the validated, writable layout")
            }
            _ => self.outside_slice(),
        }
    }

    /// [`Loan::as_mut_slice`] of a slot or a large message's memfd: out of line, so that the
    /// small message's path inlines to a bounds check.
    #[inline(never)]
    fn outside_slice(&mut self) -> &mut [u8] {
        let len = self.len;
        match self.body.as_mut() {
            Some(Body::Slot(slot)) => {
                let (offset, _) = self.tx.pool.place(*slot);
                // SAFETY: see the module doc: the slot is `Loaned` to this loan alone, and
                // `place` gave its in-bounds offset (the pool was built from the validated
                // layout); `len` fits the slot (`alloc` picked a class of at least `len`).
                let bytes = unsafe { self.tx.map().bytes_mut(offset, len) };
                bytes.expect("a loaned slot lies inside the validated, writable layout")
            }
            Some(Body::Large(large)) => {
                // SAFETY: the memfd is fresh and private to this loan until committed; its
                // mapping is exactly `len` bytes.
                let bytes = unsafe { large.map.bytes_mut(0, len) };
                bytes.expect("a large loan's own mapping is `len` bytes, writable")
            }
            // `as_mut_slice` serves a small message itself.
            Some(Body::Inline { .. }) | None => &mut [],
        }
    }

    /// Publishes the message. Never waits for the receiver: the loan already made sure of room
    /// in the ring. A large message (its own memfd) first passes its memfd on the control
    /// socket; if that socket is full, this thread waits for room. Async code uses
    /// [`Loan::commit_async`] instead, which awaits it.
    #[inline]
    pub fn commit(self) -> Result<()> {
        self.publish(None)
    }

    /// The large message's memfd, if this loan is one, and the `Tx` that sends it.
    #[cfg(feature = "tokio")]
    pub(crate) fn large(&mut self) -> (&mut Tx, Option<&MemfdSegment>) {
        let segment = match &self.body {
            Some(Body::Large(large)) => Some(&large.segment),
            _ => None,
        };
        (self.tx, segment)
    }

    /// Publishes the descriptor. A large message's memfd goes on the control socket first,
    /// unless it was sent already as `sent`. The small and slot messages' paths are inlined;
    /// a large message's is out of line.
    #[inline]
    pub(crate) fn publish(mut self, sent: Option<u64>) -> Result<()> {
        let len = self.len;
        match self.body.take() {
            Some(Body::Inline { at }) => self.tx.publish_inline(at, len),
            Some(Body::Slot(slot)) => {
                self.tx.pool.mark_sent(slot);
                let descriptor = Descriptor::Slot {
                    class: slot.class,
                    index: slot.index,
                    generation: slot.generation,
                    len: len as u32,
                };
                self.tx.publish(&descriptor, len)
            }
            Some(Body::Large(large)) => self.publish_large(*large, sent),
            None => Ok(()),
        }
    }

    /// [`Loan::publish`] of a large message: its memfd first (unless `sent`), then its
    /// descriptor.
    #[inline(never)]
    fn publish_large(self, large: Large, sent: Option<u64>) -> Result<()> {
        let Large { segment, map } = large;
        drop(map);
        let seq = match sent {
            Some(seq) => seq,
            None => self.tx.send_large(&segment)?,
        };
        let descriptor = Descriptor::Memfd {
            seq,
            len: self.len as u64,
        };
        self.tx.publish(&descriptor, self.len)
    }
}

impl Drop for Loan<'_> {
    /// Inline: a committed loan, or a small one, owns nothing; a slot goes back out of line.
    #[inline]
    fn drop(&mut self) {
        if let Some(Body::Slot(_)) = self.body {
            self.cancel_slot();
        }
    }
}

impl Loan<'_> {
    /// Frees the slot of a loan dropped without committing.
    #[inline(never)]
    fn cancel_slot(&mut self) {
        if let Some(Body::Slot(slot)) = self.body.take() {
            self.tx.pool.cancel(slot);
            self.tx.publish_usage();
        }
    }
}
