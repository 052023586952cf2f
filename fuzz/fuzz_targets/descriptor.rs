//! A ring's descriptors are written by the untrusted peer. This target decodes arbitrary bytes
//! (the first `DESCRIPTOR_LEN`, zero-padded) against a few pool configurations: decoding may
//! refuse them but never panic, and an accepted descriptor must re-encode to exactly the bytes
//! it came from (but for the ring's sequence word, the image's last `SEQ_BYTES`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use memwire_transport::fuzzing::{self, Config, DESCRIPTOR_LEN, SEQ_BYTES};

/// A typical pool, one with a single huge class and no inline bytes, and one with no classes
/// and memfds disabled.
const CONFIGS: [Config<'static>; 3] = [
    (
        56,
        &[(256, 1024), (4096, 256), (65536, 16), (1 << 20, 4)],
        1 << 32,
    ),
    (0, &[(u32::MAX, 1 << 24)], u64::MAX),
    (8, &[], 0),
];

fuzz_target!(|data: &[u8]| {
    let mut raw = [0u8; DESCRIPTOR_LEN];
    let n = data.len().min(raw.len());
    raw[..n].copy_from_slice(&data[..n]);
    for config in CONFIGS {
        if let Some(again) = fuzzing::descriptor(&raw, config) {
            let own = DESCRIPTOR_LEN - SEQ_BYTES;
            assert_eq!(
                again[..own],
                raw[..own],
                "an accepted descriptor re-encodes exactly"
            );
        }
    }
});
