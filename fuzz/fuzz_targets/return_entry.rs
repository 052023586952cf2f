//! Return entries are written by the receiver and read by the slot's owner, so they are
//! untrusted there. This target decodes arbitrary `RETURN_ENTRY_LEN` bytes (zero-padded)
//! against a few pool configurations: never a panic, and an accepted entry re-encodes exactly
//! (but for the ring's sequence word, the image's last `SEQ_BYTES`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use memwire_transport::fuzzing::{self, Config, RETURN_ENTRY_LEN, SEQ_BYTES};

/// A typical pool, one whose last class uses the whole 24-bit index, and one with no classes.
const CONFIGS: [Config<'static>; 3] = [
    (56, &[(256, 1024), (4096, 256), (65536, 16)], 1 << 32),
    (0, &[(64, 1), (128, 1 << 24)], u64::MAX),
    (8, &[], 0),
];

fuzz_target!(|data: &[u8]| {
    let mut raw = [0u8; RETURN_ENTRY_LEN];
    let n = data.len().min(raw.len());
    raw[..n].copy_from_slice(&data[..n]);
    for config in CONFIGS {
        if let Some(again) = fuzzing::return_entry(raw, config) {
            let own = RETURN_ENTRY_LEN - SEQ_BYTES;
            assert_eq!(
                again[..own],
                raw[..own],
                "an accepted return entry re-encodes exactly"
            );
        }
    }
});
