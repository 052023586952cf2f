//! The return entry: what a receiver sends back, through the return ring, to free a slot.
//!
//! ```text
//! byte    0      1  2  3    4  5  6  7    8  9 10 11     12 13 14 15
//!       class    index      generation    reserved = 0    (the ring's sequence word)
//!       (u8)     (u24 LE)   (u32 LE)
//! ```
//!
//! Bytes 0..8 as one little-endian `u64`: bits 0..8 class, 8..32 index, 32..64 generation. As
//! a descriptor, an entry is handled as the image of its 16-byte ring slot (four to a cache
//! line), whose last 4 bytes are the ring's: encoding leaves them 0, decoding ignores them. The receiver writes it; the slot's owner (the sender) reads it, so it is untrusted
//! input there. [`ReturnEntry::decode`] checks that the class exists, the index is inside it and
//! the reserved bytes are zero ([`DescriptorError::ReservedNotZero`], which keeps decoding
//! exact), which is all a return entry can be checked against without state. The generation is
//! the sender's business: it compares it with its private slot table, refusing a slot returned
//! twice, a stale handle or a slot that was never sent. A zeroed entry (class 0, index 0,
//! generation 0) decodes whenever the pool has a class; the sender's table never holds
//! generation 0 for a slot in flight, so the generation check catches it.

use crate::descriptor::DescriptorError;
use crate::limits::Limits;

/// Bytes of a return entry's slot image, the ring's sequence word included.
pub(crate) const RETURN_ENTRY_SIZE: usize = 16;
/// Where the reserved bytes start.
const RESERVED_OFFSET: usize = 8;
/// Where the ring's sequence word starts: the end of the entry itself.
const ENTRY_LEN: usize = RETURN_ENTRY_SIZE - crate::ring::SEQ_BYTES;
/// Bits of the index: [`crate::limits::MAX_SLOT_COUNT`] is `1 << INDEX_BITS`.
const INDEX_BITS: u32 = 24;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;

/// A decoded return entry: its class and index are in range of the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReturnEntry {
    /// Below the number of classes.
    pub(crate) class: u8,
    /// Below the class's slot count, so below 2^24.
    pub(crate) index: u32,
    /// The generation the slot was sent with; checked by the sender, not by `decode`.
    pub(crate) generation: u32,
}

impl ReturnEntry {
    /// The slot image of the layout in the module doc.
    pub(crate) fn encode(&self) -> [u8; RETURN_ENTRY_SIZE] {
        debug_assert!(
            self.index <= INDEX_MASK,
            "index {} needs 24 bits",
            self.index
        );
        let word = u64::from(self.class)
            | u64::from(self.index & INDEX_MASK) << 8
            | u64::from(self.generation) << 32;
        let mut raw = [0; RETURN_ENTRY_SIZE];
        raw[..RESERVED_OFFSET].copy_from_slice(&word.to_le_bytes());
        raw
    }

    /// Decodes a return entry a peer wrote, checking its class and index against `limits`
    /// ([`DescriptorError::NoSuchClass`], [`DescriptorError::SlotOutOfRange`]) and its reserved
    /// bytes ([`DescriptorError::ReservedNotZero`]). Never panics; an accepted entry re-encodes
    /// to `raw` but for the sequence word's place, which is ignored.
    pub(crate) fn decode(
        raw: [u8; RETURN_ENTRY_SIZE],
        limits: &Limits,
    ) -> Result<Self, DescriptorError> {
        if let Some(i) = raw[RESERVED_OFFSET..ENTRY_LEN].iter().position(|&b| b != 0) {
            return Err(DescriptorError::ReservedNotZero {
                offset: RESERVED_OFFSET + i,
                value: raw[RESERVED_OFFSET + i],
            });
        }
        let word = crate::wire::u64_at(&raw, 0);
        // Truncations are the layout: each field is masked to its bits first.
        let class = (word & 0xff) as u8;
        let index = ((word >> 8) & u64::from(INDEX_MASK)) as u32;
        let generation = (word >> 32) as u32;
        limits.slot(class, index)?;
        Ok(Self {
            class,
            index,
            generation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{MAX_SLOT_COUNT, SizeClass};
    use proptest::prelude::*;

    fn limits() -> Limits {
        let classes = [
            SizeClass {
                slot_size: 4096,
                slot_count: 8,
            },
            SizeClass {
                slot_size: 65536,
                slot_count: MAX_SLOT_COUNT,
            },
        ];
        Limits::new(56, &classes, 1 << 30).expect("valid limits")
    }

    #[test]
    fn layout_is_class_index_generation() {
        let e = ReturnEntry {
            class: 1,
            index: 0x00ab_cdef,
            generation: 0x0102_0304,
        };
        assert_eq!(
            e.encode(),
            [1, 0xef, 0xcd, 0xab, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(ReturnEntry::decode(e.encode(), &limits()), Ok(e));
        // The largest index of the largest class fits 24 bits.
        let top = ReturnEntry {
            class: 1,
            index: MAX_SLOT_COUNT - 1,
            generation: u32::MAX,
        };
        assert_eq!(ReturnEntry::decode(top.encode(), &limits()), Ok(top));
    }

    #[test]
    fn refuses_a_class_or_index_out_of_range() {
        assert_eq!(
            ReturnEntry::decode([2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], &limits()),
            Err(DescriptorError::NoSuchClass {
                class: 2,
                classes: 2
            })
        );
        assert_eq!(
            ReturnEntry::decode([0, 8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], &limits()),
            Err(DescriptorError::SlotOutOfRange {
                class: 0,
                index: 8,
                count: 8
            })
        );
        assert_eq!(
            ReturnEntry::decode([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0], &limits()),
            Err(DescriptorError::ReservedNotZero {
                offset: 10,
                value: 7
            })
        );
        // The sequence word's place is not the entry's.
        assert_eq!(
            ReturnEntry::decode([0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9], &limits()),
            Ok(ReturnEntry {
                class: 0,
                index: 1,
                generation: 1
            })
        );
        // No classes: nothing can be returned, not even a zeroed entry.
        let none = Limits::new(56, &[], 1 << 30).expect("valid limits");
        assert!(ReturnEntry::decode([0; RETURN_ENTRY_SIZE], &none).is_err());
    }

    proptest! {
        #[test]
        fn return_entry_decode_is_exact(
            raw in prop_oneof![
                any::<[u8; 8]>().prop_map(|word| {
                    let mut raw = [0; RETURN_ENTRY_SIZE];
                    raw[..8].copy_from_slice(&word);
                    raw
                }),
                any::<[u8; RETURN_ENTRY_SIZE]>(),
            ],
            classes in crate::limits::tests::classes(),
        ) {
            let limits = Limits::new(56, &classes, u64::MAX).expect("valid limits");
            match ReturnEntry::decode(raw, &limits) {
                Ok(e) => {
                    let c = classes.get(usize::from(e.class));
                    prop_assert!(c.is_some_and(|c| e.index < c.slot_count));
                    prop_assert_eq!(&e.encode()[..ENTRY_LEN], &raw[..ENTRY_LEN]);
                }
                Err(err) => {
                    let expected = matches!(
                        err,
                        DescriptorError::NoSuchClass { .. }
                            | DescriptorError::SlotOutOfRange { .. }
                            | DescriptorError::ReservedNotZero { .. }
                    );
                    prop_assert!(expected, "{err:?}");
                }
            }
        }

        #[test]
        fn return_entry_round_trips(
            (classes, class, index) in crate::limits::tests::classes()
                .prop_filter("a pool with a class", |c| !c.is_empty())
                .prop_flat_map(|c| {
                    let n = c.len();
                    (Just(c), 0..n)
                })
                .prop_flat_map(|(c, class)| {
                    let count = c[class].slot_count;
                    (Just(c), Just(class as u8), 0..count)
                }),
            generation in any::<u32>(),
        ) {
            let limits = Limits::new(56, &classes, u64::MAX).expect("valid limits");
            let e = ReturnEntry { class, index, generation };
            prop_assert_eq!(ReturnEntry::decode(e.encode(), &limits), Ok(e));
        }
    }
}
