//! What a link is made of: ring depth, size classes, inline threshold, wait strategy.
//!
//! Memory cost of one link with the defaults: per direction, a 256-entry ring of 64-byte
//! descriptors (16 KiB), a return ring, and pools of 256 B × 1024, 4 KiB × 256, 64 KiB × 64 and
//! 1 MiB × 8, 13.3 MiB in all; both directions ≈ 27 MiB of address space. The segment is a
//! memfd, so pages nobody touched cost no RAM.

use std::time::Duration;

use crate::error::ConfigError;

/// Largest number of size classes (the class index is one byte on the wire; 16 is plenty).
pub const MAX_CLASSES: usize = 16;
/// Largest slot count of a class: the return entry carries the index in 24 bits.
pub const MAX_SLOTS_PER_CLASS: u32 = 1 << 24;
/// Payload bytes that fit in a descriptor (64 bytes less the 8-byte header).
pub const INLINE_CAPACITY: usize = 56;

/// `count` slots of `size` bytes each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeClass {
    /// Bytes per slot: a multiple of 64, so every slot starts on its own cache line.
    pub size: u32,
    /// Number of slots.
    pub count: u32,
}

impl SizeClass {
    /// `count` slots of `size` bytes.
    #[must_use]
    pub const fn new(size: u32, count: u32) -> Self {
        Self { size, count }
    }
}

/// How a waiting `recv` or `loan` waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStrategy {
    /// Spin (yielding now and then); never sleeps, never makes a wake syscall necessary.
    Spin,
    /// Spin for `spin` first, then sleep on a futex until woken (the default: 50 µs, several
    /// round trips of a busy peer, far less than a scheduler slice).
    SpinThenBlock {
        /// How long to spin before sleeping.
        spin: Duration,
    },
    /// Sleep at once.
    Block,
}

impl Default for WaitStrategy {
    fn default() -> Self {
        Self::SpinThenBlock {
            spin: Duration::from_micros(50),
        }
    }
}

/// The shape of one link. Both ends must agree: the host writes it into the segment header and
/// the guest reads it from there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// Descriptors per ring (each direction): a power of two, 2..=65536.
    pub ring_depth: u32,
    /// Size classes in ascending size order, at most [`MAX_CLASSES`].
    pub classes: Vec<SizeClass>,
    /// Payloads up to this many bytes travel inside the descriptor (0..=56).
    pub inline_max: u8,
    /// Largest message sent in its own memfd (beyond the largest class).
    pub max_large: u64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            ring_depth: 256,
            classes: vec![
                SizeClass::new(256, 1024),
                SizeClass::new(4 << 10, 256),
                SizeClass::new(64 << 10, 64),
                SizeClass::new(1 << 20, 8),
            ],
            inline_max: INLINE_CAPACITY as u8,
            max_large: 1 << 30,
        }
    }
}

impl LinkConfig {
    /// Checks every rule above; a guest runs this on the config it reads from the host.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.ring_depth.is_power_of_two() || !(2..=65536).contains(&self.ring_depth) {
            return Err(ConfigError::RingDepth(self.ring_depth));
        }
        if self.classes.len() > MAX_CLASSES {
            return Err(ConfigError::TooManyClasses(self.classes.len()));
        }
        let mut previous = 0;
        for (i, class) in self.classes.iter().enumerate() {
            if class.size == 0 || class.size % 64 != 0 || class.size <= previous {
                return Err(ConfigError::ClassSize {
                    class: i,
                    size: class.size,
                });
            }
            if class.count == 0 || class.count > MAX_SLOTS_PER_CLASS {
                return Err(ConfigError::ClassCount {
                    class: i,
                    count: class.count,
                });
            }
            previous = class.size;
        }
        if usize::from(self.inline_max) > INLINE_CAPACITY {
            return Err(ConfigError::InlineMax(self.inline_max));
        }
        if self.max_large < u64::from(previous) {
            return Err(ConfigError::MaxLarge(self.max_large));
        }
        Ok(())
    }

    /// Total slots of all classes (the return ring holds this many entries at least, so a
    /// receiver returning slots never finds it full).
    #[must_use]
    pub fn total_slots(&self) -> u64 {
        self.classes.iter().map(|c| u64::from(c.count)).sum()
    }

    /// Size of the largest class (0 without classes: then everything above the inline
    /// threshold travels in its own memfd).
    #[must_use]
    pub fn largest_class(&self) -> u32 {
        self.classes.last().map_or(0, |c| c.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_rules_are_enforced() {
        LinkConfig::default().validate().unwrap();
        let bad = |f: fn(&mut LinkConfig)| {
            let mut c = LinkConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(bad(|c| c.ring_depth = 3), ConfigError::RingDepth(3));
        assert_eq!(bad(|c| c.ring_depth = 1), ConfigError::RingDepth(1));
        assert!(matches!(
            bad(|c| c.classes[1].size = 100),
            ConfigError::ClassSize { class: 1, .. }
        ));
        assert!(matches!(
            bad(|c| c.classes[1].size = 256),
            ConfigError::ClassSize { class: 1, .. }
        ));
        assert!(matches!(
            bad(|c| c.classes[0].count = 0),
            ConfigError::ClassCount { class: 0, .. }
        ));
        assert_eq!(bad(|c| c.inline_max = 57), ConfigError::InlineMax(57));
        assert!(matches!(bad(|c| c.max_large = 1), ConfigError::MaxLarge(1)));
        assert!(matches!(
            bad(|c| c.classes = vec![SizeClass::new(64, 1); 17]),
            ConfigError::TooManyClasses(17)
        ));
    }
}
