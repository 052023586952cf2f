//! The descriptor: what travels through a ring, one cache line per message.
//!
//! A sender writes a descriptor into its ring; the receiver copies the slot out of shared memory
//! once (a `[u8; 64]`), decodes the copy with [`Descriptor::decode`] against the
//! [`Limits`] it holds for the sender's pool, and only then uses it. A message is carried in
//! one of three ways: inline in the descriptor, in a slot of the sender's pool, or in its own
//! sealed memfd passed over the link's control socket.
//!
//! A descriptor is handled as the 64-byte image of its ring slot, one cache line: 60 bytes of
//! descriptor, then the ring's 4-byte sequence word, which is not part of the descriptor:
//! [`Descriptor::encode`] leaves it 0 and [`Descriptor::decode`] ignores it (`ring` module doc
//! says why images are whole 16-byte words).
//!
//! ```text
//! offset  size  inline (kind 1)      slot (kind 2)          memfd (kind 3)
//!      0     1  kind = 1             kind = 2               kind = 3
//!      1     1  len <= inline_max    class < classes        reserved = 0
//!      2     2  reserved = 0         reserved = 0           reserved = 0
//!      4     4  payload[0..4]        index < slot_count     reserved = 0
//!      8     4  payload[4..8]        generation             reserved = 0
//!     12     4  payload[8..12]       len <= slot_size       reserved = 0
//!     16     8  payload[12..20]      reserved = 0           seq
//!     24     8  payload[20..28]      reserved = 0           largest < len <= max_memfd_len
//!     32    28  payload[28..56]      reserved = 0           reserved = 0
//!     60     4  (the ring's sequence word)
//! ```
//!
//! (`largest` is the largest slot size or `inline_max`, whichever is larger.)
//!
//! All integers are little-endian. Kind 0 is never valid, so a zeroed entry (a ring the sender
//! never wrote, or a torn publish) is refused rather than read as an empty message.
//!
//! # What a hostile peer can do, and what the reader checks
//!
//! The sender is untrusted: it can write any 64 bytes, and change them while the receiver reads.
//! The receiver therefore decodes a private copy, and every byte pattern gives either a
//! [`Descriptor`] that fits the limits or a [`DescriptorError`], never a panic:
//!
//! - an unknown kind (including 0) is [`DescriptorError::BadKind`];
//! - every byte a kind does not use is reserved and must be zero
//!   ([`DescriptorError::ReservedNotZero`]): this catches a peer speaking another layout
//!   version, and makes decoding exact (an accepted descriptor re-encodes to the same 60 bytes);
//! - an inline length is at most `inline_max`; payload bytes past it are carried but ignored;
//! - a slot names an existing class and an index inside it, and its length fits the slot. Any
//!   length up to the slot size is accepted, **including lengths small enough to go inline**
//!   and 0: a writer that loans a slot and commits fewer bytes than it asked for keeps its
//!   zero-copy path instead of being forced to copy into the descriptor;
//! - a memfd length is larger than anything a slot or inline descriptor can carry (else the
//!   sender should have used one: a protocol violation) and at most `max_memfd_len`.
//!
//! What decoding cannot check is left to the layers that own the state: the slot's generation
//! (and whether the slot is in flight at all) is the sender's private table's business, and
//! the memfd's seals, size and `seq` are checked when it arrives on the control socket. A
//! hostile peer can at worst name a slot of its own pool it did not mean to send, which only
//! damages its own link.

use crate::limits::Limits;
use crate::wire::{u32_at, u64_at};

/// Bytes of a descriptor's slot image: one cache line, so producer and consumer never share a
/// line with a neighbouring entry and a message moves one line.
pub(crate) const DESCRIPTOR_SIZE: usize = 64;
/// Bytes of the descriptor itself: the image without the ring's sequence word.
pub(crate) const DESCRIPTOR_LEN: usize = DESCRIPTOR_SIZE - crate::ring::SEQ_BYTES;
/// Payload bytes that fit in the descriptor itself: everything after the 4-byte head.
pub(crate) const INLINE_MAX: usize = DESCRIPTOR_LEN - INLINE_OFFSET;

const KIND_INLINE: u8 = 1;
const KIND_SLOT: u8 = 2;
const KIND_MEMFD: u8 = 3;

const KIND_OFFSET: usize = 0;
const LEN_OR_CLASS_OFFSET: usize = 1;
const INDEX_OFFSET: usize = 4;
const GENERATION_OFFSET: usize = 8;
const SLOT_LEN_OFFSET: usize = 12;
const SEQ_OFFSET: usize = 16;
const MEMFD_LEN_OFFSET: usize = 24;
/// A descriptor image held in this process (a small message's, or the next one's): 16-byte
/// aligned, so that moving it (in a `Message`, through a `Result`) copies whole aligned
/// 16-byte words, which the store buffer forwards (`ring` module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(16))]
pub(crate) struct Image(pub(crate) [u8; DESCRIPTOR_SIZE]);

/// Where an inline payload starts in the image.
pub(crate) const INLINE_OFFSET: usize = 4;

/// A decoded, validated descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Descriptor {
    /// Small payload carried in the descriptor: bytes [`INLINE_OFFSET`]` .. + len` of the
    /// image, which stay there: the sender writes them in place in the ring slot (then the
    /// head before them, then publishes), the receiver's message keeps the whole image (a copy
    /// of the payload alone would start at offset 4 of an image written in 16-byte words, a
    /// load the store buffer cannot forward: `ring` module doc). Bytes past `len` are whatever
    /// the sender left there, and are ignored.
    Inline {
        /// Payload length; at most the receiver's `inline_max` (so at most [`INLINE_MAX`]).
        len: u8,
    },
    /// Payload in slot `index` of size class `class` of the sender's pool, `len` bytes.
    Slot {
        /// Below the number of classes.
        class: u8,
        /// Below the class's slot count (so below 2^24).
        index: u32,
        /// Unchecked here: the sender compares it with its private table when the slot returns.
        generation: u32,
        /// At most the class's slot size; may be 0.
        len: u32,
    },
    /// Payload in its own sealed memfd, sent over the control socket tagged with `seq`.
    Memfd {
        /// Matches the fd's tag on the control socket; unchecked here.
        seq: u64,
        /// Larger than the largest slot (and `inline_max`), at most `max_memfd_len`.
        len: u64,
    },
}

/// Why a descriptor or return entry from a peer is refused. Each is a protocol violation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DescriptorError {
    /// The kind byte is none of inline (1), slot (2), memfd (3); 0 is a zeroed entry.
    #[error("descriptor kind {0} is unknown (expected 1 inline, 2 slot or 3 memfd)")]
    BadKind(u8),
    /// A byte the kind does not use is not zero.
    #[error("descriptor byte {offset} is reserved but holds {value:#04x}")]
    ReservedNotZero {
        /// Offset of the first non-zero reserved byte.
        offset: usize,
        /// Its value.
        value: u8,
    },
    /// An inline length above the receiver's `inline_max`.
    #[error("inline len {len} exceeds inline_max {max}")]
    InlineTooLong {
        /// The length read.
        len: u8,
        /// The receiver's `inline_max`.
        max: u8,
    },
    /// A size class the pool does not have.
    #[error("size class {class} does not exist (the pool has {classes})")]
    NoSuchClass {
        /// The class read.
        class: u8,
        /// Classes in the pool.
        classes: u8,
    },
    /// A slot index past the end of its class.
    #[error("slot index {index} is out of range for class {class} of {count} slots")]
    SlotOutOfRange {
        /// The class.
        class: u8,
        /// The index read.
        index: u32,
        /// Slots in the class.
        count: u32,
    },
    /// A slot length above the class's slot size.
    #[error("slot len {len} exceeds slot_size {max} of class {class}")]
    LenTooLarge {
        /// The class.
        class: u8,
        /// The length read.
        len: u32,
        /// The class's slot size.
        max: u32,
    },
    /// A memfd for a message a slot or the descriptor itself could carry.
    #[error("memfd len {len} fits in a slot or inline (up to {largest} bytes)")]
    MemfdTooSmall {
        /// The length read.
        len: u64,
        /// The largest slot size or `inline_max`, whichever is larger.
        largest: u64,
    },
    /// A memfd longer than the receiver accepts.
    #[error("memfd len {len} exceeds max_memfd_len {max}")]
    MemfdTooLarge {
        /// The length read.
        len: u64,
        /// The receiver's `max_memfd_len`.
        max: u64,
    },
}

/// Refuses the descriptor if any byte of `raw[range]` is not zero.
fn reserved(
    raw: &[u8; DESCRIPTOR_SIZE],
    range: std::ops::Range<usize>,
) -> Result<(), DescriptorError> {
    let start = range.start;
    match raw[range].iter().position(|&b| b != 0) {
        None => Ok(()),
        Some(i) => Err(DescriptorError::ReservedNotZero {
            offset: start + i,
            value: raw[start + i],
        }),
    }
}

impl Descriptor {
    /// The slot image of the layout in the module doc; every byte a kind does not use is zero,
    /// and so is the sequence word's place (an inline payload too: see
    /// [`Descriptor::encode_head`]).
    pub(crate) fn encode(&self) -> [u8; DESCRIPTOR_SIZE] {
        let mut raw = [0; DESCRIPTOR_SIZE];
        self.encode_head(&mut raw);
        raw
    }

    /// The first [`INLINE_OFFSET`] bytes of an inline descriptor of `len` bytes, its payload
    /// following them.
    #[inline]
    pub(crate) const fn inline_head(len: u8) -> [u8; INLINE_OFFSET] {
        [KIND_INLINE, len, 0, 0]
    }

    /// Writes the descriptor into the image `raw`: every byte of the layout but an inline
    /// payload's (`raw[INLINE_OFFSET..]`, which the sender wrote in place) and the sequence
    /// word's place.
    pub(crate) fn encode_head(&self, raw: &mut [u8; DESCRIPTOR_SIZE]) {
        match *self {
            Self::Inline { len } => {
                debug_assert!(usize::from(len) <= INLINE_MAX, "inline len {len}");
                raw[..INLINE_OFFSET].copy_from_slice(&Self::inline_head(len));
            }
            Self::Slot {
                class,
                index,
                generation,
                len,
            } => {
                raw[..DESCRIPTOR_LEN].fill(0);
                raw[KIND_OFFSET] = KIND_SLOT;
                raw[LEN_OR_CLASS_OFFSET] = class;
                raw[INDEX_OFFSET..INDEX_OFFSET + 4].copy_from_slice(&index.to_le_bytes());
                raw[GENERATION_OFFSET..GENERATION_OFFSET + 4]
                    .copy_from_slice(&generation.to_le_bytes());
                raw[SLOT_LEN_OFFSET..SLOT_LEN_OFFSET + 4].copy_from_slice(&len.to_le_bytes());
            }
            Self::Memfd { seq, len } => {
                raw[..DESCRIPTOR_LEN].fill(0);
                raw[KIND_OFFSET] = KIND_MEMFD;
                raw[SEQ_OFFSET..SEQ_OFFSET + 8].copy_from_slice(&seq.to_le_bytes());
                raw[MEMFD_LEN_OFFSET..MEMFD_LEN_OFFSET + 8].copy_from_slice(&len.to_le_bytes());
            }
        }
    }

    /// Decodes and validates a copy of a descriptor a peer wrote, against the receiver's
    /// `limits` for that peer's pool. Never panics; an accepted descriptor re-encodes (with
    /// [`Descriptor::encode_head`] over `raw`) to `raw`: the sequence word's place is ignored.
    ///
    /// Valid inline and slot descriptors, the common cases, are decoded inline: the head is
    /// one little-endian word, `[kind, len or class, 0, 0]`, and a slot's reserved bytes are
    /// tested as whole words. Everything else, every refusal included, is out of line.
    #[inline(always)]
    pub(crate) fn decode(
        raw: &[u8; DESCRIPTOR_SIZE],
        limits: &Limits,
    ) -> Result<Self, DescriptorError> {
        let head = u32_at(raw, 0);
        let second = (head >> 8) as u8;
        match head & 0xffff_00ff {
            h if h == u32::from(KIND_INLINE) && second <= limits.inline_max() => {
                return Ok(Self::Inline { len: second });
            }
            h if h == u32::from(KIND_SLOT) => {
                let index = u32_at(raw, INDEX_OFFSET);
                let len = u32_at(raw, SLOT_LEN_OFFSET);
                // Bytes `SEQ_OFFSET .. DESCRIPTOR_LEN`: whole u64 words, then a u32.
                const { assert!((DESCRIPTOR_LEN - 4 - SEQ_OFFSET).is_multiple_of(8)) };
                let reserved = (SEQ_OFFSET..DESCRIPTOR_LEN - 4)
                    .step_by(8)
                    .fold(u64::from(u32_at(raw, DESCRIPTOR_LEN - 4)), |acc, at| {
                        acc | u64_at(raw, at)
                    });
                if reserved == 0
                    && limits
                        .slot_size(second, index)
                        .is_some_and(|size| len <= size)
                {
                    return Ok(Self::Slot {
                        class: second,
                        index,
                        generation: u32_at(raw, GENERATION_OFFSET),
                        len,
                    });
                }
            }
            _ => {}
        }
        Self::decode_outside(raw, limits)
    }

    /// [`Descriptor::decode`] of every descriptor: the rare kinds, and the reason a bad one is
    /// refused.
    #[inline(never)]
    fn decode_outside(
        raw: &[u8; DESCRIPTOR_SIZE],
        limits: &Limits,
    ) -> Result<Self, DescriptorError> {
        match raw[KIND_OFFSET] {
            KIND_INLINE => {
                reserved(raw, 2..INLINE_OFFSET)?;
                let len = raw[LEN_OR_CLASS_OFFSET];
                if len > limits.inline_max() {
                    return Err(DescriptorError::InlineTooLong {
                        len,
                        max: limits.inline_max(),
                    });
                }
                Ok(Self::Inline { len })
            }
            KIND_SLOT => {
                reserved(raw, 2..INDEX_OFFSET)?;
                reserved(raw, SEQ_OFFSET..DESCRIPTOR_LEN)?;
                let class = raw[LEN_OR_CLASS_OFFSET];
                let index = u32_at(raw, INDEX_OFFSET);
                let c = limits.slot(class, index)?;
                let len = u32_at(raw, SLOT_LEN_OFFSET);
                if len > c.slot_size {
                    return Err(DescriptorError::LenTooLarge {
                        class,
                        len,
                        max: c.slot_size,
                    });
                }
                Ok(Self::Slot {
                    class,
                    index,
                    generation: u32_at(raw, GENERATION_OFFSET),
                    len,
                })
            }
            KIND_MEMFD => {
                reserved(raw, LEN_OR_CLASS_OFFSET..SEQ_OFFSET)?;
                reserved(raw, MEMFD_LEN_OFFSET + 8..DESCRIPTOR_LEN)?;
                let len = u64_at(raw, MEMFD_LEN_OFFSET);
                if len <= limits.largest_non_memfd() {
                    return Err(DescriptorError::MemfdTooSmall {
                        len,
                        largest: limits.largest_non_memfd(),
                    });
                }
                if len > limits.max_memfd_len() {
                    return Err(DescriptorError::MemfdTooLarge {
                        len,
                        max: limits.max_memfd_len(),
                    });
                }
                Ok(Self::Memfd {
                    seq: u64_at(raw, SEQ_OFFSET),
                    len,
                })
            }
            kind => Err(DescriptorError::BadKind(kind)),
        }
    }
}

#[cfg(test)]
mod tests;
