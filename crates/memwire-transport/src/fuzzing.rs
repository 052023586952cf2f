//! Entry points for the fuzz targets in `fuzz/`: thin wrappers over crate-private decoders,
//! hidden from the docs and not part of the API.
//!
//! The decoders of whole frames say only whether they accepted the bytes; each checks inside
//! that what it accepted survives a re-encoding (and panics if not, so the fuzzer reports it).

use crate::bootstrap::HostState;
use crate::bootstrap::hello::{Hello, Request};
use crate::bootstrap::status;
use crate::control;
use crate::descriptor::{DESCRIPTOR_SIZE, Descriptor};
use crate::layout;
use crate::limits::{Limits, SizeClass};
use crate::return_entry::{RETURN_ENTRY_SIZE, ReturnEntry};

/// Bytes of a descriptor's ring slot image (its last 4 are the ring's, ignored by decoding).
pub const DESCRIPTOR_LEN: usize = DESCRIPTOR_SIZE;
/// Bytes of a return entry's ring slot image (likewise).
pub const RETURN_ENTRY_LEN: usize = RETURN_ENTRY_SIZE;
/// Bytes of either image that are the entry's own: all but the ring's sequence word.
pub const SEQ_BYTES: usize = crate::ring::SEQ_BYTES;

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

/// Decodes `raw` as a descriptor against `config`; returns its re-encoding over `raw` if
/// accepted.
///
/// # Panics
/// If `config` is not a valid pool configuration.
pub fn descriptor(
    raw: &[u8; DESCRIPTOR_SIZE],
    config: Config<'_>,
) -> Option<[u8; DESCRIPTOR_SIZE]> {
    Descriptor::decode(raw, &limits(config)).ok().map(|d| {
        // The head over a copy: an inline payload stays where the sender wrote it.
        let mut again = *raw;
        d.encode_head(&mut again);
        again
    })
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

/// Decodes `raw` as a bootstrap frame from a host (welcome or refusal); whether it was accepted.
///
/// # Panics
/// If an accepted frame does not decode to itself once re-encoded.
pub fn hello(raw: &[u8]) -> bool {
    let Ok(hello) = Hello::decode(raw) else {
        return false;
    };
    assert_eq!(
        Hello::decode(&hello.encode()),
        Ok(hello),
        "a hello round-trips"
    );
    true
}

/// Decodes `raw` as a client's first frame (join or status request); whether it was accepted.
///
/// # Panics
/// If an accepted request does not decode to itself once re-encoded.
pub fn request(raw: &[u8]) -> bool {
    let Ok(request) = Request::decode(raw) else {
        return false;
    };
    assert_eq!(
        Request::decode(&request.encode()),
        Ok(request),
        "a request round-trips"
    );
    true
}

/// Decodes `raw` as a host's status reply; whether it was accepted.
///
/// # Panics
/// If an accepted reply does not re-encode to as many bytes that decode to the same status.
pub fn status_reply(raw: &[u8]) -> bool {
    let Some((pid, state)) = status::decode(raw) else {
        return false;
    };
    let HostState::Live { max_peers, peers } = &state else {
        panic!("a decoded reply is live, not {state:?}");
    };
    let again = status::encode(pid, *max_peers as usize, peers);
    assert_eq!(
        again.len(),
        raw.len(),
        "a status reply re-encodes to its length"
    );
    assert_eq!(
        status::decode(&again),
        Some((pid, state)),
        "a status reply round-trips"
    );
    true
}

/// Size of a link segment's header.
pub const LINK_HEADER_LEN: usize = layout::HEADER_LEN;

/// Decodes `raw` as the header of a link segment of `segment_len` bytes; whether it was
/// accepted.
///
/// # Panics
/// If an accepted header does not decode to itself once re-encoded.
pub fn link_header(raw: &[u8; LINK_HEADER_LEN], segment_len: usize) -> bool {
    let Ok(header) = layout::decode_header(raw, segment_len) else {
        return false;
    };
    let again = layout::encode_header(&header.config, header.host, header.epoch);
    assert_eq!(
        layout::decode_header(&again, segment_len).ok(),
        Some(header),
        "a link header round-trips"
    );
    true
}

/// Decodes `raw` as a control-socket frame; whether it was accepted.
///
/// # Panics
/// If an accepted frame does not re-encode to exactly its bytes (a frame has no padding).
pub fn control_frame(raw: &[u8]) -> bool {
    let Ok(seq) = control::decode_frame(raw) else {
        return false;
    };
    assert_eq!(
        control::encode_frame(seq)[..],
        *raw,
        "a control frame re-encodes exactly"
    );
    true
}
