//! A received message: borrowed, zero-copy bytes; dropping it gives the slot back.
//!
//! # Safety
//! [`Message::as_slice`] hands out `&[u8]` into the sender's slot (or a large message's
//! memfd). The protocol gives a published slot to the receiver alone until it is returned,
//! which happens only when this message drops, so no code in this process writes it meanwhile.
//! A hostile sender can still write the slot: the reader then sees changing bytes, as with any
//! input from an untrusted peer — validate a copy if the peer is not trusted. Every offset and
//! length was checked against the validated layout before the message was made.

use std::sync::{Arc, Mutex, PoisonError};

use memwire_shm::Mapping;

use crate::bell::Half;
use crate::descriptor::{DESCRIPTOR_SIZE, INLINE_OFFSET, Image};
use crate::layout::ReturnRing;
use crate::link::Shared;
use crate::return_entry::{RETURN_ENTRY_SIZE, ReturnEntry};
use crate::ring::{Producer, PushError};

/// The return ring of the direction we receive on, shared by the messages that will give
/// their slots back through it (from any thread), with the link they belong to: a message
/// holds this one `Arc`, so receiving one costs one reference-count increment, not two.
#[derive(Debug)]
pub(crate) struct Returns {
    pub(crate) shared: Arc<Shared>,
    pub(crate) ring: Mutex<Producer<ReturnRing, RETURN_ENTRY_SIZE>>,
    /// The sender sleeps on this word waiting for slots.
    pub(crate) consumer_word: usize,
}

/// Who owns a message's bytes, and so what its drop does.
#[derive(Debug)]
enum Owner {
    /// Nobody: the payload is in the message's own image.
    Inline,
    /// A slot of the sender's pool, at `offset` in the mapping; dropping gives it back.
    Slot {
        returns: Arc<Returns>,
        entry: ReturnEntry,
        offset: usize,
    },
    /// Its own memfd, mapped read-only.
    Large(Mapping),
}

/// A received message. Its bytes stay where the sender wrote them; dropping it returns the
/// slot to the sender.
///
/// A struct, the 64-byte image first on a 16-byte boundary, rather than an enum with the image
/// inside a variant: returned through `Result<Option<Message>>`, the enum's payload started
/// after its one-byte tag and the compiler moved it in 16-byte words at odd offsets, each load
/// straddling two earlier stores, which the store buffer cannot forward (`ring` module doc).
/// `repr(C)` keeps that order: left to itself the compiler put the owner's tag first (a niche
/// for the `Result` around it) and the `Result`'s error after it at offset 4, and moved the
/// whole from there.
#[derive(Debug)]
#[repr(C)]
pub struct Message {
    /// A small message's descriptor image, its payload at `INLINE_OFFSET ..` (kept in place:
    /// `descriptor` module doc). For a slot message the descriptor it came in, unused.
    image: Image,
    /// Length in bytes: at most `INLINE_MAX` inline (checked by `Descriptor::decode`), within
    /// the slot or the mapping otherwise.
    len: usize,
    owner: Owner,
}

impl Message {
    /// A small message: `len` bytes at `INLINE_OFFSET` of a descriptor image (`len` checked by
    /// `Descriptor::decode` to fit).
    #[inline]
    pub(crate) fn inline(len: u8, image: Image) -> Self {
        Self {
            image,
            len: usize::from(len),
            owner: Owner::Inline,
        }
    }

    /// A message in a slot of the sender's pool, `len` bytes at `offset` of the mapping (checked
    /// against the validated layout); `image` is the descriptor it came in.
    #[inline]
    pub(crate) fn slot(
        image: Image,
        returns: Arc<Returns>,
        entry: ReturnEntry,
        offset: usize,
        len: usize,
    ) -> Self {
        Self {
            image,
            len,
            owner: Owner::Slot {
                returns,
                entry,
                offset,
            },
        }
    }

    pub(crate) fn large(map: Mapping) -> Self {
        Self {
            image: Image([0; DESCRIPTOR_SIZE]),
            len: map.len(),
            owner: Owner::Large(map),
        }
    }

    /// Length in bytes.
    #[must_use]
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    #[must_use]
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes, in place.
    #[must_use]
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match &self.owner {
            Owner::Inline => &self.image.0[INLINE_OFFSET..INLINE_OFFSET + self.len],
            Owner::Slot {
                returns, offset, ..
            } => {
                // SAFETY: see the module doc: the slot is ours until this message drops, and
                // `offset .. offset + len` was checked against the validated layout.
                let bytes = unsafe { returns.shared.map.bytes(*offset, self.len) };
                bytes.expect("a received slot lies inside the validated layout")
            }
            Owner::Large(map) => {
                // SAFETY: the memfd's mapping is read-only and exactly the message; nobody in
                // this process can write it.
                let bytes = unsafe { map.bytes(0, map.len()) };
                bytes.expect("a large message's mapping is its own length")
            }
        }
    }
}

impl std::ops::Deref for Message {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Drop for Message {
    /// Inline here (a small message owns nothing); a slot goes back out of line.
    #[inline]
    fn drop(&mut self) {
        if let Owner::Slot { .. } = self.owner {
            self.give_back();
        }
    }
}

impl Message {
    /// Pushes a slot message's slot onto the return ring, unless the link is gone.
    #[inline(never)]
    fn give_back(&mut self) {
        let Owner::Slot { returns, entry, .. } = &self.owner else {
            return;
        };
        let shared = &returns.shared;
        if shared.is_gone() {
            return; // Nobody left to give it back to.
        }
        let pushed = returns
            .ring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .try_push(&entry.encode());
        match pushed {
            Ok(p) => shared.wake(p.wake, returns.consumer_word, Half::Tx),
            // The return ring holds every slot the sender has: full means it lied.
            Err(PushError::Full) => drop(shared.violate("return ring full")),
            Err(PushError::Corrupt(e)) => drop(shared.violate(e)),
        }
    }
}
