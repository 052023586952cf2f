//! A guest reads the host's header out of a segment the host wrote, and a receiver reads the
//! control frame announcing each large message from its peer: both are untrusted. This target
//! decodes the first 192 bytes (zero-padded) as a header of a segment whose length is the next
//! 8 (little-endian, zero-padded), and the whole input as a control frame: never a panic, and
//! whatever is accepted round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memwire_transport::fuzzing::{self, LINK_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let mut header = [0u8; LINK_HEADER_LEN];
    let n = data.len().min(LINK_HEADER_LEN);
    header[..n].copy_from_slice(&data[..n]);
    let mut len = [0u8; 8];
    let rest = data.get(LINK_HEADER_LEN..).unwrap_or_default();
    let m = rest.len().min(len.len());
    len[..m].copy_from_slice(&rest[..m]);
    let segment_len = usize::try_from(u64::from_le_bytes(len)).unwrap_or(usize::MAX);
    fuzzing::link_header(&header, segment_len);
    fuzzing::control_frame(data);
});
