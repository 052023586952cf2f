//! The descriptor: what travels through a ring, one cache line per message.
//!
//! A sender writes a descriptor into its ring; the receiver copies the 64 bytes out of shared
//! memory once (a `[u8; 64]`), decodes the copy with [`Descriptor::decode`] against the
//! [`Limits`] it holds for the sender's pool, and only then uses it. A message is carried in
//! one of three ways: inline in the descriptor, in a slot of the sender's pool, or in its own
//! sealed memfd passed over the link's control socket.
//!
//! ```text
//! offset  size  inline (kind 1)      slot (kind 2)          memfd (kind 3)
//!      0     1  kind = 1             kind = 2               kind = 3
//!      1     1  len <= inline_max    class < classes        reserved = 0
//!      2     2  reserved = 0         reserved = 0           reserved = 0
//!      4     4  reserved = 0         index < slot_count     reserved = 0
//!      8     4  payload[0..4]        generation             reserved = 0
//!     12     4  payload[4..8]        len <= slot_size       reserved = 0
//!     16     8  payload[8..16]       reserved = 0           seq
//!     24     8  payload[16..24]      reserved = 0           largest < len <= max_memfd_len
//!     32    32  payload[24..56]      reserved = 0           reserved = 0
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
//!   version, and makes decoding exact (an accepted descriptor re-encodes to the same bytes);
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

/// Bytes per descriptor: one cache line, so producer and consumer never share a line with a
/// neighbouring entry.
pub(crate) const DESCRIPTOR_SIZE: usize = 64;
/// Payload bytes that fit in the descriptor itself: everything after the 8-byte head.
pub(crate) const INLINE_MAX: usize = DESCRIPTOR_SIZE - INLINE_OFFSET;

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
const INLINE_OFFSET: usize = 8;

/// A decoded, validated descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Descriptor {
    /// Small payload carried in the descriptor: bytes `[8 .. 8 + len]`.
    Inline {
        /// Payload length; at most the receiver's `inline_max` (so at most [`INLINE_MAX`]).
        len: u8,
        /// All 56 bytes as written; only `bytes[..len]` is payload, the rest is whatever the
        /// sender left there and is kept only so the descriptor re-encodes exactly.
        bytes: [u8; INLINE_MAX],
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
    /// The 64 bytes of the layout in the module doc; every byte a kind does not use is zero.
    pub(crate) fn encode(&self) -> [u8; DESCRIPTOR_SIZE] {
        let mut raw = [0; DESCRIPTOR_SIZE];
        match *self {
            Self::Inline { len, bytes } => {
                debug_assert!(usize::from(len) <= INLINE_MAX, "inline len {len}");
                raw[KIND_OFFSET] = KIND_INLINE;
                raw[LEN_OR_CLASS_OFFSET] = len;
                raw[INLINE_OFFSET..].copy_from_slice(&bytes);
            }
            Self::Slot {
                class,
                index,
                generation,
                len,
            } => {
                raw[KIND_OFFSET] = KIND_SLOT;
                raw[LEN_OR_CLASS_OFFSET] = class;
                raw[INDEX_OFFSET..INDEX_OFFSET + 4].copy_from_slice(&index.to_le_bytes());
                raw[GENERATION_OFFSET..GENERATION_OFFSET + 4]
                    .copy_from_slice(&generation.to_le_bytes());
                raw[SLOT_LEN_OFFSET..SLOT_LEN_OFFSET + 4].copy_from_slice(&len.to_le_bytes());
            }
            Self::Memfd { seq, len } => {
                raw[KIND_OFFSET] = KIND_MEMFD;
                raw[SEQ_OFFSET..SEQ_OFFSET + 8].copy_from_slice(&seq.to_le_bytes());
                raw[MEMFD_LEN_OFFSET..MEMFD_LEN_OFFSET + 8].copy_from_slice(&len.to_le_bytes());
            }
        }
        raw
    }

    /// Decodes and validates a copy of a descriptor a peer wrote, against the receiver's
    /// `limits` for that peer's pool. Never panics; an accepted descriptor re-encodes to `raw`.
    pub(crate) fn decode(
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
                let mut bytes = [0; INLINE_MAX];
                bytes.copy_from_slice(&raw[INLINE_OFFSET..]);
                Ok(Self::Inline { len, bytes })
            }
            KIND_SLOT => {
                reserved(raw, 2..INDEX_OFFSET)?;
                reserved(raw, SEQ_OFFSET..DESCRIPTOR_SIZE)?;
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
                reserved(raw, MEMFD_LEN_OFFSET + 8..DESCRIPTOR_SIZE)?;
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
mod tests {
    use super::*;
    use crate::limits::SizeClass;
    use proptest::prelude::*;
    use proptest::strategy::Union;

    const MAX_MEMFD: u64 = 1 << 20;

    /// inline_max 40, classes of 4 × 256 and 2 × 4096 bytes, memfds up to 1 MiB.
    fn limits() -> Limits {
        let classes = [
            SizeClass {
                slot_size: 256,
                slot_count: 4,
            },
            SizeClass {
                slot_size: 4096,
                slot_count: 2,
            },
        ];
        Limits::new(40, &classes, MAX_MEMFD).expect("valid limits")
    }

    fn slot(class: u8, index: u32, len: u32) -> Descriptor {
        Descriptor::Slot {
            class,
            index,
            generation: 0xdead_beef,
            len,
        }
    }

    /// `d` encoded, then `byte` set to `value`.
    fn with(d: Descriptor, byte: usize, value: u8) -> [u8; DESCRIPTOR_SIZE] {
        let mut raw = d.encode();
        raw[byte] = value;
        raw
    }

    #[test]
    fn round_trips_each_kind() {
        let mut bytes = [0; INLINE_MAX];
        bytes[..5].copy_from_slice(b"hello");
        let cases = [
            Descriptor::Inline { len: 5, bytes },
            Descriptor::Inline {
                len: 0,
                bytes: [0; INLINE_MAX],
            },
            Descriptor::Inline {
                len: 40,
                bytes: [0xaa; INLINE_MAX],
            },
            slot(1, 1, 4096),
            slot(0, 3, 0),
            Descriptor::Memfd {
                seq: u64::MAX,
                len: 4097,
            },
            Descriptor::Memfd {
                seq: 0,
                len: MAX_MEMFD,
            },
        ];
        for d in cases {
            assert_eq!(Descriptor::decode(&d.encode(), &limits()), Ok(d));
        }
        let raw = Descriptor::Inline { len: 5, bytes }.encode();
        assert_eq!(&raw[..8], &[1, 5, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&raw[8..13], b"hello");
        let raw = slot(1, 2, 3).encode();
        assert_eq!(
            &raw[..16],
            &[2, 1, 0, 0, 2, 0, 0, 0, 0xef, 0xbe, 0xad, 0xde, 3, 0, 0, 0]
        );
        let raw = Descriptor::Memfd { seq: 7, len: 9000 }.encode();
        assert_eq!(raw[0], 3);
        assert_eq!(raw[16..24], 7u64.to_le_bytes());
        assert_eq!(raw[24..32], 9000u64.to_le_bytes());
    }

    #[test]
    fn zeroed_entry_is_rejected() {
        let err = Descriptor::decode(&[0; DESCRIPTOR_SIZE], &limits());
        assert_eq!(err, Err(DescriptorError::BadKind(0)));
    }

    #[test]
    fn every_error_variant_is_reachable() {
        use DescriptorError::*;
        let l = limits();
        let memfd = Descriptor::Memfd { seq: 1, len: 5000 };
        let cases = [
            (with(slot(0, 0, 0), 0, 4), BadKind(4)),
            (with(slot(0, 0, 0), 0, 0xff), BadKind(0xff)),
            (
                with(
                    Descriptor::Inline {
                        len: 1,
                        bytes: [0; INLINE_MAX],
                    },
                    3,
                    1,
                ),
                ReservedNotZero {
                    offset: 3,
                    value: 1,
                },
            ),
            (
                with(
                    Descriptor::Inline {
                        len: 1,
                        bytes: [0; INLINE_MAX],
                    },
                    7,
                    9,
                ),
                ReservedNotZero {
                    offset: 7,
                    value: 9,
                },
            ),
            (
                with(slot(0, 0, 0), 2, 1),
                ReservedNotZero {
                    offset: 2,
                    value: 1,
                },
            ),
            (
                with(slot(0, 0, 0), 63, 1),
                ReservedNotZero {
                    offset: 63,
                    value: 1,
                },
            ),
            (
                with(memfd, 1, 1),
                ReservedNotZero {
                    offset: 1,
                    value: 1,
                },
            ),
            (
                with(memfd, 8, 1),
                ReservedNotZero {
                    offset: 8,
                    value: 1,
                },
            ),
            (
                with(memfd, 32, 0x80),
                ReservedNotZero {
                    offset: 32,
                    value: 0x80,
                },
            ),
            (
                Descriptor::Inline {
                    len: 41,
                    bytes: [0; INLINE_MAX],
                }
                .encode(),
                InlineTooLong { len: 41, max: 40 },
            ),
            (
                with(
                    Descriptor::Inline {
                        len: 1,
                        bytes: [0; INLINE_MAX],
                    },
                    1,
                    255,
                ),
                InlineTooLong { len: 255, max: 40 },
            ),
            (
                slot(2, 0, 0).encode(),
                NoSuchClass {
                    class: 2,
                    classes: 2,
                },
            ),
            (
                slot(0, 4, 0).encode(),
                SlotOutOfRange {
                    class: 0,
                    index: 4,
                    count: 4,
                },
            ),
            (
                slot(1, u32::MAX, 0).encode(),
                SlotOutOfRange {
                    class: 1,
                    index: u32::MAX,
                    count: 2,
                },
            ),
            (
                slot(0, 0, 257).encode(),
                LenTooLarge {
                    class: 0,
                    len: 257,
                    max: 256,
                },
            ),
            (
                Descriptor::Memfd { seq: 1, len: 4096 }.encode(),
                MemfdTooSmall {
                    len: 4096,
                    largest: 4096,
                },
            ),
            (
                Descriptor::Memfd { seq: 1, len: 0 }.encode(),
                MemfdTooSmall {
                    len: 0,
                    largest: 4096,
                },
            ),
            (
                Descriptor::Memfd {
                    seq: 1,
                    len: MAX_MEMFD + 1,
                }
                .encode(),
                MemfdTooLarge {
                    len: MAX_MEMFD + 1,
                    max: MAX_MEMFD,
                },
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(Descriptor::decode(&raw, &l), Err(expected), "{raw:?}");
        }
    }

    #[test]
    fn messages_name_the_field_and_value() {
        let l = limits();
        let msg = |raw: [u8; DESCRIPTOR_SIZE]| match Descriptor::decode(&raw, &l) {
            Err(e) => e.to_string(),
            Ok(d) => panic!("accepted {d:?}"),
        };
        assert_eq!(
            msg([0; DESCRIPTOR_SIZE]),
            "descriptor kind 0 is unknown (expected 1 inline, 2 slot or 3 memfd)"
        );
        assert_eq!(
            msg(slot(0, 9, 0).encode()),
            "slot index 9 is out of range for class 0 of 4 slots"
        );
        assert_eq!(
            msg(with(slot(0, 0, 0), 20, 0xab)),
            "descriptor byte 20 is reserved but holds 0xab"
        );
    }

    /// A pool configuration `Limits::new` accepts, as its parts.
    fn config() -> impl Strategy<Value = (u8, Vec<SizeClass>, u64)> {
        (
            0..=INLINE_MAX as u8,
            crate::limits::tests::classes(),
            prop_oneof![any::<u64>(), 0..=1u64 << 33],
        )
    }

    /// The length a memfd must exceed, computed from the configuration's parts.
    fn largest(inline_max: u8, classes: &[SizeClass]) -> u64 {
        classes
            .iter()
            .map(|c| u64::from(c.slot_size))
            .fold(u64::from(inline_max), u64::max)
    }

    /// Any descriptor valid for the configuration.
    fn valid(inline_max: u8, classes: &[SizeClass], max_memfd: u64) -> BoxedStrategy<Descriptor> {
        let mut kinds = vec![
            (0..=inline_max, any::<[u8; INLINE_MAX]>())
                .prop_map(|(len, bytes)| Descriptor::Inline { len, bytes })
                .boxed(),
        ];
        if !classes.is_empty() {
            let classes = classes.to_vec();
            kinds.push(
                (0..classes.len())
                    .prop_flat_map(move |class| {
                        let c = classes[class];
                        (
                            Just(class as u8),
                            0..c.slot_count,
                            any::<u32>(),
                            0..=c.slot_size,
                        )
                    })
                    .prop_map(|(class, index, generation, len)| Descriptor::Slot {
                        class,
                        index,
                        generation,
                        len,
                    })
                    .boxed(),
            );
        }
        let largest = largest(inline_max, classes);
        if largest < max_memfd {
            kinds.push(
                (any::<u64>(), largest + 1..=max_memfd)
                    .prop_map(|(seq, len)| Descriptor::Memfd { seq, len })
                    .boxed(),
            );
        }
        Union::new(kinds).boxed()
    }

    /// Arbitrary bytes, or a valid descriptor with up to 3 bytes overwritten, so that the
    /// checks past the kind byte see inputs too.
    fn hostile(inline_max: u8, classes: &[SizeClass], max_memfd: u64) -> BoxedStrategy<[u8; 64]> {
        let mutated = (
            valid(inline_max, classes, max_memfd),
            proptest::collection::vec((0..DESCRIPTOR_SIZE, any::<u8>()), 0..=3),
        )
            .prop_map(|(d, edits)| {
                let mut raw = d.encode();
                for (at, value) in edits {
                    raw[at] = value;
                }
                raw
            });
        prop_oneof![any::<[u8; DESCRIPTOR_SIZE]>(), mutated].boxed()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn decode_never_panics_and_accepts_only_what_fits(
            ((inline_max, classes, max_memfd), raw) in config().prop_flat_map(|(i, c, m)| {
                let raw = hostile(i, &c, m);
                (Just((i, c, m)), raw)
            }),
        ) {
            let limits = Limits::new(inline_max, &classes, max_memfd).expect("valid limits");
            if let Ok(d) = Descriptor::decode(&raw, &limits) {
                match d {
                    Descriptor::Inline { len, .. } => prop_assert!(len <= inline_max),
                    Descriptor::Slot { class, index, len, .. } => {
                        let c = classes.get(usize::from(class));
                        prop_assert!(c.is_some_and(|c| index < c.slot_count && len <= c.slot_size));
                    }
                    Descriptor::Memfd { len, .. } => {
                        prop_assert!(len > largest(inline_max, &classes) && len <= max_memfd);
                    }
                }
                prop_assert_eq!(d.encode(), raw);
            }
        }

        #[test]
        fn encode_then_decode_round_trips(
            ((inline_max, classes, max_memfd), d) in config().prop_flat_map(|(i, c, m)| {
                let d = valid(i, &c, m);
                (Just((i, c, m)), d)
            }),
        ) {
            let limits = Limits::new(inline_max, &classes, max_memfd).expect("valid limits");
            prop_assert_eq!(Descriptor::decode(&d.encode(), &limits), Ok(d));
        }
    }
}
