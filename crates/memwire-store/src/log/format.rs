//! The bytes on disk: record and snapshot headers, their checksums, and the file names. Pure
//! functions over byte slices; the reading and writing of files is in `recover.rs` and
//! `log.rs`. The layouts are drawn in the module doc of `log`.

/// Opens every record: "MWLR" (memwire log record).
pub(super) const RECORD_MAGIC: [u8; 4] = *b"MWLR";
/// Bytes of a record header: magic, length, lsn, payload checksum, header checksum.
pub(super) const RECORD_HEADER_LEN: usize = 24;
/// Opens every snapshot file: "MWLS" (memwire log snapshot).
pub(super) const SNAPSHOT_MAGIC: [u8; 4] = *b"MWLS";
/// The snapshot format's version, the second field of its header.
pub(super) const SNAPSHOT_VERSION: u32 = 1;
/// Bytes of a snapshot header: magic, version, lsn, length, state checksum, header checksum.
pub(super) const SNAPSHOT_HEADER_LEN: usize = 32;
/// The largest payload the format admits, whatever the configured maximum: a header that
/// claims more is damaged even if its checksum matches. 1 GiB keeps a record far below
/// `u32::MAX` and the whole of one in memory at once.
pub(super) const PAYLOAD_LIMIT: u32 = 1 << 30;

/// The largest lsn a file name may carry. Far below `u64::MAX`, so that counting on from any
/// lsn recovery accepts (`lsn + 1`, the records of a file) never overflows: no log appends 2^62
/// records (146 years at a billion a second).
pub(super) const MAX_LSN: u64 = 1 << 62;

/// The checksum of a record's payload, which binds it to its lsn: CRC32C of the lsn (8 bytes,
/// little-endian) followed by the payload.
fn payload_crc(lsn: u64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&lsn.to_le_bytes()), payload)
}

/// Appends the record `lsn` holding `payload` to `buf`. `payload` is at most
/// [`PAYLOAD_LIMIT`] bytes (the caller checked).
pub(super) fn encode_record(buf: &mut Vec<u8>, lsn: u64, payload: &[u8]) {
    debug_assert!(payload.len() <= PAYLOAD_LIMIT as usize);
    let start = buf.len();
    buf.extend_from_slice(&RECORD_MAGIC);
    // Cannot truncate: the caller bounds the payload by PAYLOAD_LIMIT, below u32::MAX.
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&lsn.to_le_bytes());
    buf.extend_from_slice(&payload_crc(lsn, payload).to_le_bytes());
    let header_crc = crc32c::crc32c(&buf[start..start + 20]);
    buf.extend_from_slice(&header_crc.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// A record header whose own checksum matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RecordHeader {
    /// Payload bytes that follow the header, at most [`PAYLOAD_LIMIT`].
    pub(super) len: u32,
    /// The record's log sequence number.
    pub(super) lsn: u64,
    /// The expected checksum of the payload.
    payload_crc: u32,
}

impl RecordHeader {
    /// Whether `payload` is the one this header describes.
    pub(super) fn matches(&self, payload: &[u8]) -> bool {
        payload.len() == self.len as usize && payload_crc(self.lsn, payload) == self.payload_crc
    }
}

/// Reads a record header, or says what is wrong with it.
pub(super) fn decode_record_header(
    bytes: &[u8; RECORD_HEADER_LEN],
) -> Result<RecordHeader, &'static str> {
    if bytes[0..4] != RECORD_MAGIC {
        return Err("bad record magic");
    }
    if crc32c::crc32c(&bytes[0..20]) != le_u32(&bytes[20..24]) {
        return Err("record header checksum mismatch");
    }
    let header = RecordHeader {
        len: le_u32(&bytes[4..8]),
        lsn: le_u64(&bytes[8..16]),
        payload_crc: le_u32(&bytes[16..20]),
    };
    if header.len > PAYLOAD_LIMIT {
        return Err("impossible record length");
    }
    Ok(header)
}

/// The header of the snapshot covering records up to `lsn` whose state is `state`.
pub(super) fn encode_snapshot_header(lsn: u64, state: &[u8]) -> [u8; SNAPSHOT_HEADER_LEN] {
    let mut header = [0u8; SNAPSHOT_HEADER_LEN];
    header[0..4].copy_from_slice(&SNAPSHOT_MAGIC);
    header[4..8].copy_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    header[8..16].copy_from_slice(&lsn.to_le_bytes());
    header[16..24].copy_from_slice(&(state.len() as u64).to_le_bytes());
    header[24..28].copy_from_slice(&payload_crc(lsn, state).to_le_bytes());
    let header_crc = crc32c::crc32c(&header[0..28]);
    header[28..32].copy_from_slice(&header_crc.to_le_bytes());
    header
}

/// A snapshot header whose own checksum matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SnapshotHeader {
    /// The last lsn the state covers.
    pub(super) lsn: u64,
    /// Bytes of state after the header.
    pub(super) len: u64,
    /// The expected checksum of the state.
    state_crc: u32,
}

impl SnapshotHeader {
    /// Whether `state` is the one this header describes.
    pub(super) fn matches(&self, state: &[u8]) -> bool {
        state.len() as u64 == self.len && payload_crc(self.lsn, state) == self.state_crc
    }
}

/// Reads a snapshot header, or says what is wrong with it.
pub(super) fn decode_snapshot_header(
    bytes: &[u8; SNAPSHOT_HEADER_LEN],
) -> Result<SnapshotHeader, &'static str> {
    if bytes[0..4] != SNAPSHOT_MAGIC {
        return Err("bad snapshot magic");
    }
    if crc32c::crc32c(&bytes[0..28]) != le_u32(&bytes[28..32]) {
        return Err("snapshot header checksum mismatch");
    }
    if le_u32(&bytes[4..8]) != SNAPSHOT_VERSION {
        return Err("unknown snapshot version");
    }
    Ok(SnapshotHeader {
        lsn: le_u64(&bytes[8..16]),
        len: le_u64(&bytes[16..24]),
        state_crc: le_u32(&bytes[24..28]),
    })
}

/// What a file of the log directory is, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FileName {
    /// `log-<first lsn>.bin`: records from that lsn on.
    Log(u64),
    /// `snapshot-<lsn>.bin`: the state after records up to that lsn.
    Snapshot(u64),
    /// `snapshot-<lsn>.bin.tmp`: a snapshot being written (or left by a crash).
    SnapshotTemp,
}

/// Twenty digits hold any u64, so names sort by number in a listing.
pub(super) fn log_name(first_lsn: u64) -> String {
    format!("log-{first_lsn:020}.bin")
}

/// See [`log_name`].
pub(super) fn snapshot_name(lsn: u64) -> String {
    format!("snapshot-{lsn:020}.bin")
}

/// Reads a file name this module made; `None` for any other file, which the log leaves alone.
pub(super) fn parse_name(name: &str) -> Option<FileName> {
    let number = |digits: &str| {
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok())
            .flatten()
    };
    if let Some(rest) = name.strip_prefix("log-") {
        return number(rest.strip_suffix(".bin")?).map(FileName::Log);
    }
    let rest = name.strip_prefix("snapshot-")?;
    if let Some(digits) = rest.strip_suffix(".bin.tmp") {
        return number(digits).map(|_: u64| FileName::SnapshotTemp);
    }
    number(rest.strip_suffix(".bin")?).map(FileName::Snapshot)
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(bytes);
    u32::from_le_bytes(word)
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(bytes);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(record: &[u8]) -> [u8; RECORD_HEADER_LEN] {
        record[..RECORD_HEADER_LEN].try_into().unwrap()
    }

    #[test]
    fn record_round_trips() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 7, b"hello");
        assert_eq!(buf.len(), RECORD_HEADER_LEN + 5);
        let decoded = decode_record_header(&header(&buf)).unwrap();
        assert_eq!((decoded.len, decoded.lsn), (5, 7));
        assert!(decoded.matches(b"hello"));
        assert!(!decoded.matches(b"hellO"));
    }

    #[test]
    fn every_flipped_header_bit_is_caught() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 1 << 40, b"payload");
        for bit in 0..RECORD_HEADER_LEN * 8 {
            let mut damaged = header(&buf);
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_record_header(&damaged).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn the_payload_checksum_binds_the_lsn() {
        let mut a = Vec::new();
        encode_record(&mut a, 1, b"same");
        let mut b = Vec::new();
        encode_record(&mut b, 2, b"same");
        assert_ne!(a[16..20], b[16..20]);
    }

    #[test]
    fn a_crafted_huge_length_is_impossible() {
        let mut bytes = [0u8; RECORD_HEADER_LEN];
        bytes[0..4].copy_from_slice(&RECORD_MAGIC);
        bytes[4..8].copy_from_slice(&(PAYLOAD_LIMIT + 1).to_le_bytes());
        let crc = crc32c::crc32c(&bytes[0..20]);
        bytes[20..24].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_record_header(&bytes),
            Err("impossible record length")
        );
    }

    #[test]
    fn snapshot_header_round_trips_and_catches_damage() {
        let header = encode_snapshot_header(42, b"state");
        let decoded = decode_snapshot_header(&header).unwrap();
        assert_eq!((decoded.lsn, decoded.len), (42, 5));
        assert!(decoded.matches(b"state"));
        assert!(!decoded.matches(b"statE"));
        for bit in 0..SNAPSHOT_HEADER_LEN * 8 {
            let mut damaged = header;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_snapshot_header(&damaged).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn names_round_trip_and_others_are_ignored() {
        assert_eq!(parse_name(&log_name(1)), Some(FileName::Log(1)));
        assert_eq!(
            parse_name(&snapshot_name(u64::MAX)),
            Some(FileName::Snapshot(u64::MAX))
        );
        assert_eq!(
            parse_name("snapshot-00000000000000000009.bin.tmp"),
            Some(FileName::SnapshotTemp)
        );
        for other in [
            "admin.key",
            "log-.bin",
            "log-12.txt",
            "log-+1.bin",
            "log-99999999999999999999999.bin",
            "snapshot-1.bin.old",
            "snapshot--1.bin",
        ] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }
}
