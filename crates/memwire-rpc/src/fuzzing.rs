//! Thin entry points for the fuzz targets in `fuzz/`; not an API.

use crate::codec::{self, ErrorRecord};
use crate::frame::{self, Encoding};

/// Decodes `bytes` as a frame the way a peer's message is decoded; an accepted frame is
/// returned re-encoded (the target checks it equals the input).
#[must_use]
pub fn frame(bytes: &[u8]) -> Option<Vec<u8>> {
    let f = frame::decode(bytes).ok()?;
    Some(frame::encode(
        f.kind, f.encoding, f.call_id, f.method, f.payload,
    ))
}

/// Decodes `bytes` as the error record of an error frame; whether it was accepted.
#[must_use]
pub fn error_record(bytes: &[u8]) -> bool {
    codec::decode::<ErrorRecord>(Encoding::MessagePack, bytes).is_ok()
}

/// Decodes `bytes` as `add`'s arguments, in both encodings, as a service would.
#[must_use]
pub fn arguments(bytes: &[u8]) -> [bool; 2] {
    [Encoding::Postcard, Encoding::MessagePack]
        .map(|e| codec::decode::<(i64, String, Vec<u8>)>(e, bytes).is_ok())
}
