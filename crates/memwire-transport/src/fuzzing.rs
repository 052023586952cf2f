//! Entry points for the fuzz targets in `fuzz/`: thin wrappers over crate-private decoders,
//! hidden from the docs and not part of the API.

use crate::descriptor::{DESCRIPTOR_SIZE, Descriptor};
use crate::limits::{Limits, SizeClass};
use crate::return_entry::{RETURN_ENTRY_SIZE, ReturnEntry};

/// A pool configuration, as `(inline_max, [(slot_size, slot_count)], max_memfd_len)`.
pub type Config<'a> = (u8, &'a [(u32, u32)], u64);

fn limits((inline_max, classes, max_memfd_len): Config<'_>) -> Limits {
    let mut table = [SizeClass::default(); crate::limits::MAX_CLASSES];
    let n = classes.len().min(table.len());
    for (entry, &(slot_size, slot_count)) in table.iter_mut().zip(classes) {
        *entry = SizeClass {
            slot_size,
            slot_count,
        };
    }
    Limits::new(inline_max, &table[..n], max_memfd_len)
        .expect("fuzz targets pass valid configurations")
}

/// Decodes `raw` as a descriptor against `config`; returns its re-encoding if accepted.
///
/// # Panics
/// If `config` is not a valid pool configuration.
pub fn descriptor(
    raw: &[u8; DESCRIPTOR_SIZE],
    config: Config<'_>,
) -> Option<[u8; DESCRIPTOR_SIZE]> {
    Descriptor::decode(raw, &limits(config))
        .ok()
        .map(|d| d.encode())
}

/// Decodes `raw` as a return entry against `config`; returns its re-encoding if accepted.
///
/// # Panics
/// If `config` is not a valid pool configuration.
pub fn return_entry(
    raw: [u8; RETURN_ENTRY_SIZE],
    config: Config<'_>,
) -> Option<[u8; RETURN_ENTRY_SIZE]> {
    ReturnEntry::decode(raw, &limits(config))
        .ok()
        .map(|e| e.encode())
}
