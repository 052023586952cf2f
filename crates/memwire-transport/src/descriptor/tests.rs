//! Unit and property tests of the descriptor codec.

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
    let cases = [
        Descriptor::Inline { len: 5 },
        Descriptor::Inline { len: 0 },
        Descriptor::Inline { len: 40 },
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
    // An inline payload is written in place: encoding the head leaves it alone.
    let mut raw = [0xaa; DESCRIPTOR_SIZE];
    raw[4..9].copy_from_slice(b"hello");
    Descriptor::Inline { len: 5 }.encode_head(&mut raw);
    assert_eq!(&raw[..4], &[1, 5, 0, 0]);
    assert_eq!(&raw[4..9], b"hello");
    assert_eq!(
        Descriptor::decode(&raw, &limits()),
        Ok(Descriptor::Inline { len: 5 })
    );
    let raw = Descriptor::Inline { len: 5 }.encode();
    assert_eq!(raw[DESCRIPTOR_LEN..], [0; 4], "the sequence word's place");
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
fn the_sequence_words_place_is_ignored() {
    let d = slot(1, 1, 7);
    let mut raw = d.encode();
    raw[DESCRIPTOR_LEN..].copy_from_slice(&[0xff; 4]);
    assert_eq!(Descriptor::decode(&raw, &limits()), Ok(d));
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
            with(Descriptor::Inline { len: 1 }, 3, 1),
            ReservedNotZero {
                offset: 3,
                value: 1,
            },
        ),
        (
            with(Descriptor::Inline { len: 1 }, 2, 9),
            ReservedNotZero {
                offset: 2,
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
            with(slot(0, 0, 0), 59, 1),
            ReservedNotZero {
                offset: 59,
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
            Descriptor::Inline { len: 41 }.encode(),
            InlineTooLong { len: 41, max: 40 },
        ),
        (
            with(Descriptor::Inline { len: 1 }, 1, 255),
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
        (0..=inline_max)
            .prop_map(|len| Descriptor::Inline { len })
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
fn hostile(
    inline_max: u8,
    classes: &[SizeClass],
    max_memfd: u64,
) -> BoxedStrategy<[u8; DESCRIPTOR_SIZE]> {
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
            let mut again = raw;
            again[..DESCRIPTOR_LEN].fill(0x5a);
            if matches!(d, Descriptor::Inline { .. }) {
                again[INLINE_OFFSET..].copy_from_slice(&raw[INLINE_OFFSET..]);
            }
            d.encode_head(&mut again);
            prop_assert_eq!(&again[..DESCRIPTOR_LEN], &raw[..DESCRIPTOR_LEN]);
        }
    }

    /// The inline fast paths of `decode` accept exactly what the full decoder accepts, and
    /// decode it the same way; what they pass on, it refuses for its reason.
    #[test]
    fn the_fast_paths_agree_with_the_full_decoder(
        ((inline_max, classes, max_memfd), raw) in config().prop_flat_map(|(i, c, m)| {
            let raw = hostile(i, &c, m);
            (Just((i, c, m)), raw)
        }),
    ) {
        let limits = Limits::new(inline_max, &classes, max_memfd).expect("valid limits");
        prop_assert_eq!(
            Descriptor::decode(&raw, &limits),
            Descriptor::decode_outside(&raw, &limits)
        );
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
