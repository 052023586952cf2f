//! The resource header: what sits in the first page of every resource file.
//!
//! ```text
//! offset  size  field            written by              notes
//!      0     8  magic            creator, once           "MWRESRC1"; gc never touches a file without it
//!      8     4  layout_version   creator, once           LAYOUT_VERSION
//!     12     4  flags            creator, once           bit 0: remove the name when the last holder leaves
//!     16     4  initialised      creator, last (Release) 0 while the creator writes, then 1
//!     20     4  holder_capacity  creator, once           HOLDER_SLOTS
//!     24     8  payload_len      creator, once           bytes of payload after PAYLOAD_OFFSET
//!     32     8  written_len      any holder (atomic)     bytes the last `put` wrote; <= payload_len
//!     40     8  created_at_ns    creator, once           Unix time in nanoseconds
//!     48     8  ttl_ns           creator, once           0 = no TTL
//!     56     4  creator_pid      creator, once
//!     64     8  creator_start    creator, once           start time of the creator (ticks since boot)
//!    128   512  holders[64]      each holder its own     (pid << 32 | start time low 32 bits), 0 = free
//!   4096     …  payload          any holder              page-aligned
//! ```
//!
//! Every process of the user can write these bytes, so every reader decodes a *copy* of them
//! with [`Header::decode`], which checks every field against the file's real size before
//! anything is used.

use std::path::Path;

use crate::error::{Error, Result};

/// `"MWRESRC1"`, little-endian.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"MWRESRC1");
/// Bumped on any change to the layout above.
pub(crate) const LAYOUT_VERSION: u32 = 1;
/// Number of holder slots: enough for the processes that share one buffer in practice, and
/// small enough (512 bytes) to scan on every open.
pub(crate) const HOLDER_SLOTS: usize = 64;
/// Payload starts on the second page, so it is page-aligned.
pub(crate) const PAYLOAD_OFFSET: usize = 4096;
/// Bytes of header a reader copies out to decode it.
pub(crate) const HEADER_LEN: usize = HOLDERS_OFFSET + HOLDER_SLOTS * 8;

pub(crate) const MAGIC_OFFSET: usize = 0;
pub(crate) const VERSION_OFFSET: usize = 8;
pub(crate) const FLAGS_OFFSET: usize = 12;
pub(crate) const INITIALISED_OFFSET: usize = 16;
pub(crate) const CAPACITY_OFFSET: usize = 20;
pub(crate) const PAYLOAD_LEN_OFFSET: usize = 24;
pub(crate) const WRITTEN_LEN_OFFSET: usize = 32;
pub(crate) const CREATED_AT_OFFSET: usize = 40;
pub(crate) const TTL_OFFSET: usize = 48;
pub(crate) const CREATOR_PID_OFFSET: usize = 56;
pub(crate) const CREATOR_START_OFFSET: usize = 64;
pub(crate) const HOLDERS_OFFSET: usize = 128;

/// Flag bit: the last holder to leave removes the name.
pub(crate) const FLAG_REMOVE_WHEN_UNUSED: u32 = 1;

/// Nanoseconds of `CLOCK_BOOTTIME`: shared by every process of the machine, never stepped by
/// clock changes, and counting suspended time, so ages and TTLs neither jump nor stall.
/// `/dev/shm` does not survive a reboot, so boot-relative times are all a resource needs.
pub(crate) fn now_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    u64::try_from(ts.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0))
}

/// A decoded, validated copy of a resource header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) flags: u32,
    pub(crate) payload_len: u64,
    pub(crate) written_len: u64,
    pub(crate) created_at_ns: u64,
    pub(crate) ttl_ns: u64,
    pub(crate) creator_pid: u32,
    pub(crate) creator_start: u64,
    /// Raw holder words (pid << 32 | start time low bits); 0 = free.
    pub(crate) holders: Vec<u64>,
}

/// What a look at the first bytes of a file says.
#[derive(Debug)]
pub(crate) enum Peek {
    /// A complete, valid header.
    Ready(Header),
    /// memwire's magic (or no bytes yet) but not initialised: a creator is at work, or died.
    Uninitialised,
}

fn u32_at(bytes: &[u8], off: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&bytes[off..off + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], off: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&bytes[off..off + 8]);
    u64::from_le_bytes(b)
}

impl Header {
    /// Decodes a copy of the first bytes of a file of `file_size` bytes at `path`.
    ///
    /// `bytes` may be shorter than [`HEADER_LEN`] (a short file). Never panics: every field is
    /// checked, and a file that is not memwire's is [`Error::NotMemwire`].
    pub(crate) fn decode(bytes: &[u8], file_size: u64, path: &Path) -> Result<Peek> {
        if bytes.len() < 8 {
            // A creator has just made the file (size 0) or died before writing; a non-empty
            // short file that is not ours is refused below by the magic check.
            if bytes.iter().all(|&b| b == 0) {
                return Ok(Peek::Uninitialised);
            }
            let mut b = [0; 8];
            b[..bytes.len()].copy_from_slice(bytes);
            return Err(Error::NotMemwire {
                path: path.to_owned(),
                found: u64::from_le_bytes(b),
            });
        }
        let magic = u64_at(bytes, MAGIC_OFFSET);
        if magic != MAGIC {
            if magic == 0 && bytes.iter().all(|&b| b == 0) {
                return Ok(Peek::Uninitialised);
            }
            return Err(Error::NotMemwire {
                path: path.to_owned(),
                found: magic,
            });
        }
        if bytes.len() < HEADER_LEN || file_size < PAYLOAD_OFFSET as u64 {
            return Ok(Peek::Uninitialised);
        }
        let corrupt = |reason: String| Error::CorruptHeader {
            path: path.to_owned(),
            reason,
        };
        // The flag first: until it is set, the creator may not have written the rest.
        match u32_at(bytes, INITIALISED_OFFSET) {
            0 => return Ok(Peek::Uninitialised),
            1 => {}
            other => return Err(corrupt(format!("initialised flag is {other}"))),
        }
        let version = u32_at(bytes, VERSION_OFFSET);
        if version != LAYOUT_VERSION {
            return Err(Error::LayoutVersion {
                path: path.to_owned(),
                found: version,
                expected: LAYOUT_VERSION,
            });
        }
        let capacity = u32_at(bytes, CAPACITY_OFFSET);
        if capacity as usize != HOLDER_SLOTS {
            return Err(corrupt(format!(
                "holder capacity {capacity}, expected {HOLDER_SLOTS}"
            )));
        }
        let payload_len = u64_at(bytes, PAYLOAD_LEN_OFFSET);
        let room = file_size - PAYLOAD_OFFSET as u64;
        if payload_len == 0 || payload_len > room {
            return Err(corrupt(format!(
                "payload length {payload_len} does not fit the file's {room} bytes of payload"
            )));
        }
        let written_len = u64_at(bytes, WRITTEN_LEN_OFFSET);
        if written_len > payload_len {
            return Err(corrupt(format!(
                "written length {written_len} exceeds payload length {payload_len}"
            )));
        }
        let holders = (0..HOLDER_SLOTS)
            .map(|i| u64_at(bytes, HOLDERS_OFFSET + 8 * i))
            .collect();
        Ok(Peek::Ready(Self {
            flags: u32_at(bytes, FLAGS_OFFSET),
            payload_len,
            written_len,
            created_at_ns: u64_at(bytes, CREATED_AT_OFFSET),
            ttl_ns: u64_at(bytes, TTL_OFFSET),
            creator_pid: u32_at(bytes, CREATOR_PID_OFFSET),
            creator_start: u64_at(bytes, CREATOR_START_OFFSET),
            holders,
        }))
    }

    /// Whether the last holder to leave removes the name.
    pub(crate) fn remove_when_unused(&self) -> bool {
        self.flags & FLAG_REMOVE_WHEN_UNUSED != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn valid() -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC.to_le_bytes());
        b[8..12].copy_from_slice(&LAYOUT_VERSION.to_le_bytes());
        b[16..20].copy_from_slice(&1u32.to_le_bytes());
        b[20..24].copy_from_slice(&(HOLDER_SLOTS as u32).to_le_bytes());
        b[24..32].copy_from_slice(&100u64.to_le_bytes());
        b[32..40].copy_from_slice(&10u64.to_le_bytes());
        b
    }

    #[test]
    fn decodes_a_valid_header_and_refuses_broken_ones() {
        let p = Path::new("/dev/shm/x");
        let size = PAYLOAD_OFFSET as u64 + 100;
        assert!(
            matches!(Header::decode(&valid(), size, p), Ok(Peek::Ready(h)) if h.payload_len == 100 && h.written_len == 10)
        );
        // Payload larger than the file.
        assert!(matches!(
            Header::decode(&valid(), size - 1, p),
            Err(Error::CorruptHeader { .. })
        ));
        let mut b = valid();
        b[0] = b'X';
        assert!(matches!(
            Header::decode(&b, size, p),
            Err(Error::NotMemwire { .. })
        ));
        let mut b = valid();
        b[8] = 9;
        assert!(matches!(
            Header::decode(&b, size, p),
            Err(Error::LayoutVersion { found: 9, .. })
        ));
        let mut b = valid();
        b[16] = 0;
        assert!(matches!(
            Header::decode(&b, size, p),
            Ok(Peek::Uninitialised)
        ));
        let mut b = valid();
        b[32..40].copy_from_slice(&101u64.to_le_bytes());
        assert!(matches!(
            Header::decode(&b, size, p),
            Err(Error::CorruptHeader { .. })
        ));
        assert!(matches!(Header::decode(&[], 0, p), Ok(Peek::Uninitialised)));
        assert!(matches!(
            Header::decode(b"hello", 5, p),
            Err(Error::NotMemwire { .. })
        ));
    }

    proptest! {
        #[test]
        fn decode_of_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..HEADER_LEN + 8), size in any::<u64>()) {
            let _ = Header::decode(&bytes, size, Path::new("/x"));
        }

        #[test]
        fn accepted_headers_fit_their_file(mut bytes in proptest::collection::vec(any::<u8>(), HEADER_LEN..=HEADER_LEN), size in any::<u64>(), payload in any::<u64>(), written in any::<u64>()) {
            // Start from a valid header so random lengths are what gets tested.
            bytes[..HOLDERS_OFFSET].copy_from_slice(&valid()[..HOLDERS_OFFSET]);
            bytes[24..32].copy_from_slice(&payload.to_le_bytes());
            bytes[32..40].copy_from_slice(&written.to_le_bytes());
            if let Ok(Peek::Ready(h)) = Header::decode(&bytes, size, Path::new("/x")) {
                prop_assert!(h.payload_len > 0);
                prop_assert!(h.payload_len <= size - PAYLOAD_OFFSET as u64);
                prop_assert!(h.written_len <= h.payload_len);
            }
        }
    }
}
