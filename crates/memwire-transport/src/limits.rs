//! The receiver's view of a sender's pool: what a descriptor or return entry from that peer may
//! name. Built once per link from configuration the receiver trusts (its own, or the host's
//! private copy), never from bytes in the segment, and checked once here so the decoders can rely
//! on it: at most [`MAX_CLASSES`] classes, every slot size at least 1, every slot count in
//! `1 ..= MAX_SLOT_COUNT` (a return entry carries the index in 24 bits).

use crate::descriptor::{DescriptorError, INLINE_MAX};

/// Size classes a pool may have: enough for powers of two from 64 bytes to 2 GiB.
pub(crate) const MAX_CLASSES: usize = 16;
/// Slots per class: a return entry carries the index in 24 bits.
pub(crate) const MAX_SLOT_COUNT: u32 = 1 << 24;

/// One size class of a pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SizeClass {
    /// Bytes per slot; at least 1.
    pub(crate) slot_size: u32,
    /// Slots in the class; `1 ..= MAX_SLOT_COUNT`.
    pub(crate) slot_count: u32,
}

/// The receiver's view of the sender's pool: what a valid descriptor may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// At most [`INLINE_MAX`].
    inline_max: u8,
    /// Classes in use: `classes[..class_count]`; at most [`MAX_CLASSES`].
    class_count: u8,
    /// Each entry below `class_count` has `slot_size >= 1` and `slot_count` in
    /// `1 ..= MAX_SLOT_COUNT`; the rest are zero and never read.
    classes: [SizeClass; MAX_CLASSES],
    /// The longest memfd the receiver accepts; may be below `largest_non_memfd` (no memfds).
    max_memfd_len: u64,
    /// The largest length a slot or an inline descriptor can carry; a memfd must be larger.
    largest_non_memfd: u64,
}

/// A pool configuration [`Limits::new`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LimitsError {
    /// More payload bytes inline than a descriptor holds.
    #[error("inline_max {inline_max} exceeds the {max} bytes a descriptor holds")]
    InlineMaxTooLarge {
        /// The rejected value.
        inline_max: u8,
        /// [`INLINE_MAX`].
        max: usize,
    },
    /// More size classes than a descriptor or return entry can name.
    #[error("{classes} size classes exceed the maximum {max}")]
    TooManyClasses {
        /// Classes asked for.
        classes: usize,
        /// [`MAX_CLASSES`].
        max: usize,
    },
    /// A class whose slots hold nothing.
    #[error("size class {class} has slot_size 0")]
    ZeroSlotSize {
        /// The class.
        class: usize,
    },
    /// A class with no slots, or more than a return entry's 24-bit index can name.
    #[error("size class {class} has slot_count {count}, expected 1..={max}")]
    BadSlotCount {
        /// The class.
        class: usize,
        /// The rejected count.
        count: u32,
        /// [`MAX_SLOT_COUNT`].
        max: u32,
    },
}

impl Limits {
    /// Checks a pool configuration: `inline_max <= INLINE_MAX`, at most [`MAX_CLASSES`]
    /// classes, each with `slot_size >= 1` and `1 <= slot_count <= MAX_SLOT_COUNT`.
    ///
    /// No classes at all is allowed (every message goes inline or by memfd), and so is a
    /// `max_memfd_len` no memfd can satisfy (memfds disabled).
    pub(crate) fn new(
        inline_max: u8,
        classes: &[SizeClass],
        max_memfd_len: u64,
    ) -> Result<Self, LimitsError> {
        if usize::from(inline_max) > INLINE_MAX {
            return Err(LimitsError::InlineMaxTooLarge {
                inline_max,
                max: INLINE_MAX,
            });
        }
        if classes.len() > MAX_CLASSES {
            return Err(LimitsError::TooManyClasses {
                classes: classes.len(),
                max: MAX_CLASSES,
            });
        }
        let mut table = [SizeClass::default(); MAX_CLASSES];
        let mut largest_non_memfd = u64::from(inline_max);
        for (class, (&c, entry)) in classes.iter().zip(&mut table).enumerate() {
            if c.slot_size == 0 {
                return Err(LimitsError::ZeroSlotSize { class });
            }
            if c.slot_count == 0 || c.slot_count > MAX_SLOT_COUNT {
                return Err(LimitsError::BadSlotCount {
                    class,
                    count: c.slot_count,
                    max: MAX_SLOT_COUNT,
                });
            }
            *entry = c;
            largest_non_memfd = largest_non_memfd.max(u64::from(c.slot_size));
        }
        Ok(Self {
            inline_max,
            // Checked above: at most MAX_CLASSES (16).
            class_count: classes.len() as u8,
            classes: table,
            max_memfd_len,
            largest_non_memfd,
        })
    }

    /// Bytes a descriptor may carry inline; at most [`INLINE_MAX`].
    #[inline]
    pub(crate) fn inline_max(&self) -> u8 {
        self.inline_max
    }

    /// The largest length a slot or inline descriptor can carry: a memfd must be larger.
    pub(crate) fn largest_non_memfd(&self) -> u64 {
        self.largest_non_memfd
    }

    /// The longest memfd the receiver accepts.
    pub(crate) fn max_memfd_len(&self) -> u64 {
        self.max_memfd_len
    }

    /// The size of the slots of `class` if slot `index` exists: [`Limits::slot`] without the
    /// reason, for the receive path's inline check.
    #[inline]
    pub(crate) fn slot_size(&self, class: u8, index: u32) -> Option<u32> {
        self.slot(class, index).ok().map(|c| c.slot_size)
    }

    /// The slot `index` of `class`, checked: [`DescriptorError::NoSuchClass`] or
    /// [`DescriptorError::SlotOutOfRange`]. Returns the class.
    #[inline]
    pub(crate) fn slot(&self, class: u8, index: u32) -> Result<SizeClass, DescriptorError> {
        if class >= self.class_count {
            return Err(DescriptorError::NoSuchClass {
                class,
                classes: self.class_count,
            });
        }
        let c = self.classes[usize::from(class)];
        if index >= c.slot_count {
            return Err(DescriptorError::SlotOutOfRange {
                class,
                index,
                count: c.slot_count,
            });
        }
        Ok(c)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Any valid pool: 0 to 16 classes of any size and count.
    pub(crate) fn classes() -> impl Strategy<Value = Vec<SizeClass>> {
        proptest::collection::vec(
            (1..=u32::MAX, 1..=MAX_SLOT_COUNT).prop_map(|(slot_size, slot_count)| SizeClass {
                slot_size,
                slot_count,
            }),
            0..=MAX_CLASSES,
        )
    }

    fn class(slot_size: u32, slot_count: u32) -> SizeClass {
        SizeClass {
            slot_size,
            slot_count,
        }
    }

    #[test]
    fn new_refuses_bad_configs() {
        assert_eq!(
            Limits::new(57, &[], 0),
            Err(LimitsError::InlineMaxTooLarge {
                inline_max: 57,
                max: 56
            })
        );
        assert_eq!(
            Limits::new(0, &[class(64, 1); 17], 0),
            Err(LimitsError::TooManyClasses {
                classes: 17,
                max: 16
            })
        );
        assert_eq!(
            Limits::new(0, &[class(64, 1), class(0, 1)], 0),
            Err(LimitsError::ZeroSlotSize { class: 1 })
        );
        assert_eq!(
            Limits::new(0, &[class(64, 0)], 0),
            Err(LimitsError::BadSlotCount {
                class: 0,
                count: 0,
                max: MAX_SLOT_COUNT
            })
        );
        assert_eq!(
            Limits::new(0, &[class(64, MAX_SLOT_COUNT + 1)], 0).map_err(|e| e.to_string()),
            Err("size class 0 has slot_count 16777217, expected 1..=16777216".to_owned())
        );
        // The edges are accepted.
        assert!(Limits::new(56, &[class(1, MAX_SLOT_COUNT); 16], u64::MAX).is_ok());
        assert!(Limits::new(0, &[], 0).is_ok());
    }

    #[test]
    fn a_memfd_must_outgrow_every_slot_and_inline() {
        let l = Limits::new(56, &[class(4096, 1), class(32, 1)], 0).expect("valid limits");
        assert_eq!(l.largest_non_memfd(), 4096);
        let l = Limits::new(56, &[class(32, 1)], 0).expect("valid limits");
        assert_eq!(l.largest_non_memfd(), 56);
    }

    proptest! {
        #[test]
        fn slot_checks_exactly_the_configured_ranges(classes in classes(), class in any::<u8>(), index in any::<u32>()) {
            let l = Limits::new(0, &classes, 0).expect("valid limits");
            let expected = classes.get(usize::from(class)).filter(|c| index < c.slot_count).copied();
            prop_assert_eq!(l.slot(class, index).ok(), expected);
        }
    }
}
