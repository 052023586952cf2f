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
use crate::descriptor::{INLINE_OFFSET, Image};
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

#[derive(Debug)]
enum Body {
    /// The whole descriptor image; the payload is `image[INLINE_OFFSET..][..len]`, kept in
    /// place (`descriptor` module doc says why).
    Inline {
        len: u8,
        image: Image,
    },
    Slot {
        returns: Arc<Returns>,
        entry: ReturnEntry,
        offset: usize,
        len: usize,
    },
    Large(Mapping),
}

/// A received message. Its bytes stay where the sender wrote them; dropping it returns the
/// slot to the sender.
#[derive(Debug)]
pub struct Message {
    body: Body,
}

impl Message {
    /// A small message: `len` bytes at `INLINE_OFFSET` of a descriptor image (`len` checked by
    /// `Descriptor::decode` to fit).
    pub(crate) fn inline(len: u8, image: Image) -> Self {
        Self {
            body: Body::Inline { len, image },
        }
    }

    pub(crate) fn slot(
        returns: Arc<Returns>,
        entry: ReturnEntry,
        offset: usize,
        len: usize,
    ) -> Self {
        Self {
            body: Body::Slot {
                returns,
                entry,
                offset,
                len,
            },
        }
    }

    pub(crate) fn large(map: Mapping) -> Self {
        Self {
            body: Body::Large(map),
        }
    }

    /// Length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        match &self.body {
            Body::Inline { len, .. } => usize::from(*len),
            Body::Slot { len, .. } => *len,
            Body::Large(map) => map.len(),
        }
    }

    /// Whether the message is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, in place.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        match &self.body {
            Body::Inline { len, image } => {
                &image.0[INLINE_OFFSET..INLINE_OFFSET + usize::from(*len)]
            }
            Body::Slot {
                returns,
                offset,
                len,
                ..
            } => {
                // SAFETY: see the module doc: the slot is ours until this message drops, and
                // `offset .. offset + len` was checked against the validated layout.
                let bytes = unsafe { returns.shared.map.bytes(*offset, *len) };
                bytes.expect("a received slot lies inside the validated layout")
            }
            Body::Large(map) => {
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

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Drop for Message {
    fn drop(&mut self) {
        let Body::Slot { returns, entry, .. } = &self.body else {
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
