//! Where everything sits in a tenant segment: offsets, sizes, the key hash, and the parsed
//! copies of a header, a table entry and a ring slot. Both the writer and the reader use these,
//! so the two cannot disagree about the layout. The picture is in the module doc of
//! [`super`].

use crate::error::{Error, Result};

/// `b"MWTENANT"` read as a little-endian `u64`.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"MWTENANT");
/// Bumped on every incompatible change of this file.
pub(crate) const LAYOUT_VERSION: u32 = 1;

/// Longest tenant, service or variable name: the resource-name rule
/// ([`memwire_shm::name::MAX_NAME_LEN`]); it fits the `u8` length fields.
pub(crate) const MAX_NAME_LEN: usize = memwire_shm::name::MAX_NAME_LEN;
const _: () = assert!(MAX_NAME_LEN <= u8::MAX as usize);

// Header fields, written once by `TenantWriter::create` before the fd is handed out.
pub(crate) const H_MAGIC: usize = 0;
pub(crate) const H_VERSION: usize = 8;
pub(crate) const H_TENANT_LEN: usize = 12;
pub(crate) const H_EPOCH: usize = 16;
pub(crate) const H_QUOTA: usize = 24;
pub(crate) const H_SEGMENT_LEN: usize = 32;
pub(crate) const H_MAX_VARIABLES: usize = 40;
pub(crate) const H_TABLE_SLOTS: usize = 44;
pub(crate) const H_RING_SLOTS: usize = 48;
pub(crate) const H_MAX_VALUE: usize = 52;
pub(crate) const H_TABLE_OFFSET: usize = 56;
pub(crate) const H_RING_OFFSET: usize = 64;
pub(crate) const H_VALUES_OFFSET: usize = 72;
pub(crate) const H_VALUES_LEN: usize = 80;
pub(crate) const H_TENANT: usize = 96;
/// End of the fields that never change after creation.
pub(crate) const H_STATIC_END: usize = H_TENANT + MAX_NAME_LEN;
/// The tenant revision: the last revision whose ring slot is written. Its own cache line (the
/// one word every write publishes and every watcher polls).
pub(crate) const H_REVISION: usize = 320;
/// 1 once the server moved the tenant to a fresh segment; never goes back to 0.
pub(crate) const H_RETIRED: usize = 384;
/// The header's size: the variable table starts here (a multiple of the 64-byte line).
pub(crate) const HEADER_LEN: usize = 448;

/// One variable table entry: a cache line, so a reader's copy touches one line.
pub(crate) const ENTRY_LEN: usize = 64;
/// The entry's sequence word: odd while the writer changes the entry.
pub(crate) const E_SEQ: usize = 0;
/// The bytes a reader copies: state .. value offset.
pub(crate) const E_BODY: usize = 8;
pub(crate) const E_BODY_LEN: usize = 48;

/// One change-ring slot.
pub(crate) const RING_SLOT_LEN: usize = 48;
/// The slot's revision word, [`RING_WRITING`] while the writer fills the slot.
pub(crate) const R_REVISION: usize = 0;
pub(crate) const R_BODY: usize = 8;
pub(crate) const R_BODY_LEN: usize = 32;
/// A ring slot's revision while the writer rewrites it (no real revision reaches it).
pub(crate) const RING_WRITING: u64 = u64::MAX;
/// The largest revision a segment is restored at: far below [`RING_WRITING`], so counting on
/// from it never reaches that value or overflows (no tenant takes 2^62 writes).
pub(crate) const MAX_REVISION: u64 = 1 << 62;

/// Entry states.
pub(crate) const FREE: u8 = 0;
pub(crate) const LIVE: u8 = 1;
pub(crate) const DELETED: u8 = 2;

/// Change kinds in a ring slot.
pub(crate) const KIND_SET: u32 = 1;
pub(crate) const KIND_DELETE: u32 = 2;

/// Allocation granule of the value area: keeps every value 8-aligned, so atomic copies move
/// whole words.
pub(crate) const GRANULE: u64 = 8;

/// The sizes a segment is built from; every offset follows from them ([`Geometry::offsets`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) table_slots: u32,
    pub(crate) ring_slots: u32,
    pub(crate) values_len: u64,
}

/// Where the parts of a segment start, and its total length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Offsets {
    pub(crate) table: u64,
    pub(crate) ring: u64,
    pub(crate) values: u64,
    pub(crate) segment_len: u64,
}

impl Geometry {
    /// The offsets; `None` if they overflow.
    pub(crate) fn offsets(self) -> Option<Offsets> {
        let table = HEADER_LEN as u64;
        let ring = table.checked_add(u64::from(self.table_slots) * ENTRY_LEN as u64)?;
        let ring_end = ring.checked_add(u64::from(self.ring_slots) * RING_SLOT_LEN as u64)?;
        // The value area starts on a page of its own so the metadata pages stay apart.
        let values = ring_end.checked_next_multiple_of(4096)?;
        let segment_len = values
            .checked_add(self.values_len)?
            .checked_next_multiple_of(4096)?;
        Some(Offsets {
            table,
            ring,
            values,
            segment_len,
        })
    }
}

/// The static header fields, as the reader parsed and checked them.
#[derive(Clone, Debug)]
pub(crate) struct Header {
    pub(crate) tenant: String,
    pub(crate) epoch: u64,
    pub(crate) quota_bytes: u64,
    pub(crate) max_variables: u32,
    pub(crate) max_value: u32,
    pub(crate) geometry: Geometry,
    pub(crate) offsets: Offsets,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn corrupt(offset: usize, what: impl Into<String>) -> Error {
    Error::CorruptSegment {
        offset: offset as u64,
        what: what.into(),
    }
}

impl Header {
    /// Encodes the static fields (`H_MAGIC .. H_STATIC_END`).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = vec![0; H_STATIC_END];
        b[H_MAGIC..H_MAGIC + 8].copy_from_slice(&MAGIC.to_le_bytes());
        b[H_VERSION..H_VERSION + 4].copy_from_slice(&LAYOUT_VERSION.to_le_bytes());
        let tenant_len = self.tenant.len() as u32;
        b[H_TENANT_LEN..H_TENANT_LEN + 4].copy_from_slice(&tenant_len.to_le_bytes());
        b[H_EPOCH..H_EPOCH + 8].copy_from_slice(&self.epoch.to_le_bytes());
        b[H_QUOTA..H_QUOTA + 8].copy_from_slice(&self.quota_bytes.to_le_bytes());
        let len = self.offsets.segment_len;
        b[H_SEGMENT_LEN..H_SEGMENT_LEN + 8].copy_from_slice(&len.to_le_bytes());
        b[H_MAX_VARIABLES..H_MAX_VARIABLES + 4].copy_from_slice(&self.max_variables.to_le_bytes());
        let g = self.geometry;
        b[H_TABLE_SLOTS..H_TABLE_SLOTS + 4].copy_from_slice(&g.table_slots.to_le_bytes());
        b[H_RING_SLOTS..H_RING_SLOTS + 4].copy_from_slice(&g.ring_slots.to_le_bytes());
        b[H_MAX_VALUE..H_MAX_VALUE + 4].copy_from_slice(&self.max_value.to_le_bytes());
        let o = self.offsets;
        b[H_TABLE_OFFSET..H_TABLE_OFFSET + 8].copy_from_slice(&o.table.to_le_bytes());
        b[H_RING_OFFSET..H_RING_OFFSET + 8].copy_from_slice(&o.ring.to_le_bytes());
        b[H_VALUES_OFFSET..H_VALUES_OFFSET + 8].copy_from_slice(&o.values.to_le_bytes());
        b[H_VALUES_LEN..H_VALUES_LEN + 8].copy_from_slice(&g.values_len.to_le_bytes());
        b[H_TENANT..H_TENANT + self.tenant.len()].copy_from_slice(self.tenant.as_bytes());
        b
    }

    /// Parses and checks the static fields of a segment of `fd_len` bytes: magic, version,
    /// power-of-two table and ring, offsets recomputed from the sizes, the whole layout inside
    /// the file, a valid tenant name.
    pub(crate) fn decode(b: &[u8], fd_len: u64) -> Result<Self> {
        if b.len() < H_STATIC_END {
            return Err(corrupt(0, "segment shorter than its header"));
        }
        let magic = u64_at(b, H_MAGIC);
        if magic != MAGIC {
            return Err(corrupt(H_MAGIC, format!("bad magic {magic:#018x}")));
        }
        let version = u32_at(b, H_VERSION);
        if version != LAYOUT_VERSION {
            return Err(corrupt(
                H_VERSION,
                format!("layout version {version}, this build reads {LAYOUT_VERSION}"),
            ));
        }
        let geometry = Geometry {
            table_slots: u32_at(b, H_TABLE_SLOTS),
            ring_slots: u32_at(b, H_RING_SLOTS),
            values_len: u64_at(b, H_VALUES_LEN),
        };
        if !geometry.table_slots.is_power_of_two() || !geometry.ring_slots.is_power_of_two() {
            return Err(corrupt(
                H_TABLE_SLOTS,
                format!(
                    "table ({}) and ring ({}) must be powers of two",
                    geometry.table_slots, geometry.ring_slots
                ),
            ));
        }
        let offsets = geometry
            .offsets()
            .ok_or_else(|| corrupt(H_TABLE_SLOTS, "sizes overflow"))?;
        let stored = Offsets {
            table: u64_at(b, H_TABLE_OFFSET),
            ring: u64_at(b, H_RING_OFFSET),
            values: u64_at(b, H_VALUES_OFFSET),
            segment_len: u64_at(b, H_SEGMENT_LEN),
        };
        if stored != offsets {
            return Err(corrupt(
                H_TABLE_OFFSET,
                format!("offsets {stored:?} do not follow from the sizes ({offsets:?})"),
            ));
        }
        if offsets.segment_len != fd_len {
            return Err(corrupt(
                H_SEGMENT_LEN,
                format!(
                    "header says {} bytes, the fd holds {fd_len}",
                    offsets.segment_len
                ),
            ));
        }
        let max_variables = u32_at(b, H_MAX_VARIABLES);
        if max_variables > geometry.table_slots {
            return Err(corrupt(H_MAX_VARIABLES, "more variables than table slots"));
        }
        let max_value = u32_at(b, H_MAX_VALUE);
        if u64::from(max_value) > geometry.values_len {
            return Err(corrupt(H_MAX_VALUE, "largest value exceeds the value area"));
        }
        let tenant_len = u32_at(b, H_TENANT_LEN) as usize;
        let tenant = b
            .get(H_TENANT..H_TENANT + tenant_len.min(MAX_NAME_LEN + 1))
            .filter(|t| check_name(t).is_ok())
            .and_then(|t| std::str::from_utf8(t).ok())
            .ok_or_else(|| corrupt(H_TENANT, "invalid tenant name"))?;
        Ok(Self {
            tenant: tenant.to_owned(),
            epoch: u64_at(b, H_EPOCH),
            quota_bytes: u64_at(b, H_QUOTA),
            max_variables,
            max_value,
            geometry,
            offsets,
        })
    }

    /// Offset of table entry `index`.
    pub(crate) fn entry(&self, index: u32) -> usize {
        debug_assert!(index < self.geometry.table_slots);
        self.offsets.table as usize + index as usize * ENTRY_LEN
    }

    /// Offset of the ring slot holding `revision`.
    pub(crate) fn ring_slot(&self, revision: u64) -> usize {
        let slot = revision & u64::from(self.geometry.ring_slots - 1);
        self.offsets.ring as usize + slot as usize * RING_SLOT_LEN
    }

    /// Checks that `offset .. offset + len` lies in the value area.
    pub(crate) fn check_value_range(&self, offset: u64, len: u64) -> Result<usize> {
        let start = self.offsets.values;
        let end = start + self.geometry.values_len;
        match offset.checked_add(len) {
            Some(stop) if offset >= start && stop <= end => Ok(offset as usize),
            _ => Err(corrupt(
                offset as usize,
                format!("{len} bytes at {offset} fall outside the value area {start}..{end}"),
            )),
        }
    }
}

/// A table entry's body (`E_BODY .. E_BODY + E_BODY_LEN`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) state: u8,
    pub(crate) service_len: u8,
    pub(crate) var_len: u8,
    pub(crate) value_len: u32,
    pub(crate) hash: u64,
    /// The tenant revision of the entry's last write (its set, or its delete).
    pub(crate) version: u64,
    pub(crate) timestamp_ns: u64,
    /// Absolute offset of the service name followed by the variable name; 0 when none.
    pub(crate) names_offset: u64,
    /// Absolute offset of the value; 0 when the value is empty or deleted.
    pub(crate) value_offset: u64,
}

impl Entry {
    pub(crate) fn encode(&self) -> [u8; E_BODY_LEN] {
        let mut b = [0; E_BODY_LEN];
        b[0] = self.state;
        b[1] = self.service_len;
        b[2] = self.var_len;
        b[4..8].copy_from_slice(&self.value_len.to_le_bytes());
        b[8..16].copy_from_slice(&self.hash.to_le_bytes());
        b[16..24].copy_from_slice(&self.version.to_le_bytes());
        b[24..32].copy_from_slice(&self.timestamp_ns.to_le_bytes());
        b[32..40].copy_from_slice(&self.names_offset.to_le_bytes());
        b[40..48].copy_from_slice(&self.value_offset.to_le_bytes());
        b
    }

    /// The entry from its body's six little-endian words, as a reader loads them one by one
    /// (decoding them from a byte copy would make the CPU reload bytes it just stored in
    /// other widths, a store-forwarding stall that cost a third of a mapped read).
    pub(crate) fn from_words(w: &[u64; E_BODY_LEN / 8]) -> Self {
        let w: [u64; E_BODY_LEN / 8] = w.map(u64::from_le);
        #[allow(clippy::cast_possible_truncation)] // each field is the bits it is cut to
        Self {
            state: w[0] as u8,
            service_len: (w[0] >> 8) as u8,
            var_len: (w[0] >> 16) as u8,
            value_len: (w[0] >> 32) as u32,
            hash: w[1],
            version: w[2],
            timestamp_ns: w[3],
            names_offset: w[4],
            value_offset: w[5],
        }
    }
}

/// A ring slot's body (`R_BODY .. R_BODY + R_BODY_LEN`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RingSlot {
    pub(crate) entry: u32,
    pub(crate) kind: u32,
    pub(crate) timestamp_ns: u64,
    /// The key hash of the entry, so a reader can tell the entry still names this change.
    pub(crate) hash: u64,
    /// The last revision of the write this change belongs to (itself, or a `set_many`'s last).
    pub(crate) batch_end: u64,
}

impl RingSlot {
    pub(crate) fn encode(&self) -> [u8; R_BODY_LEN] {
        let mut b = [0; R_BODY_LEN];
        b[0..4].copy_from_slice(&self.entry.to_le_bytes());
        b[4..8].copy_from_slice(&self.kind.to_le_bytes());
        b[8..16].copy_from_slice(&self.timestamp_ns.to_le_bytes());
        b[16..24].copy_from_slice(&self.hash.to_le_bytes());
        b[24..32].copy_from_slice(&self.batch_end.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8; R_BODY_LEN]) -> Self {
        Self {
            entry: u32_at(b, 0),
            kind: u32_at(b, 4),
            timestamp_ns: u64_at(b, 8),
            hash: u64_at(b, 16),
            batch_end: u64_at(b, 24),
        }
    }
}

/// The table hash of `(service, var)`: FNV-1a over both with a separator byte names cannot
/// hold, then a final mix so the low bits (the probe start) depend on every byte. Stable
/// across processes and builds: it is part of the layout.
#[inline]
pub(crate) fn key_hash(service: &[u8], var: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in service.iter().chain(&[0xff]).chain(var) {
        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// The resource-name rule for tenant, service and variable names: 1..=200 bytes of
/// `[A-Za-z0-9._-]`, not `.` or `..`.
pub(crate) fn check_name(name: &[u8]) -> std::result::Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err("must be 1 to 200 bytes long");
    }
    if name == b"." || name == b".." {
        return Err("must not be `.` or `..`");
    }
    if !name
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    {
        return Err("may hold only A-Z, a-z, 0-9, `.`, `_` and `-`");
    }
    Ok(())
}

/// `check_name` as a store error naming what was named.
pub(crate) fn validate_name(what: &str, name: &str) -> Result<()> {
    check_name(name.as_bytes())
        .map_err(|reason| Error::BadRequest(format!("{what} name {name:?}: {reason}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_inconsistent_offsets() {
        let geometry = Geometry {
            table_slots: 64,
            ring_slots: 128,
            values_len: 10_000,
        };
        let offsets = geometry.offsets().unwrap();
        let header = Header {
            tenant: "finance".into(),
            epoch: 3,
            quota_bytes: 10_000,
            max_variables: 32,
            max_value: 1000,
            geometry,
            offsets,
        };
        let mut b = header.encode();
        let back = Header::decode(&b, offsets.segment_len).unwrap();
        assert_eq!((back.tenant.as_str(), back.epoch), ("finance", 3));
        assert!(matches!(
            Header::decode(&b, offsets.segment_len + 4096),
            Err(Error::CorruptSegment { .. })
        ));
        b[H_RING_OFFSET] ^= 8;
        assert!(Header::decode(&b, offsets.segment_len).is_err());
    }

    #[test]
    fn entries_and_slots_round_trip() {
        let e = Entry {
            state: LIVE,
            service_len: 3,
            var_len: 200,
            value_len: 77,
            hash: 1 << 63,
            version: 9,
            timestamp_ns: 10,
            names_offset: 4096,
            value_offset: 8192,
        };
        let bytes = e.encode();
        let mut words = [0; E_BODY_LEN / 8];
        for (w, b) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            // What an atomic load of those bytes in the mapping returns.
            *w = u64::from_ne_bytes(b.try_into().unwrap());
        }
        assert_eq!(Entry::from_words(&words), e);
        let s = RingSlot {
            entry: 5,
            kind: KIND_DELETE,
            timestamp_ns: 1,
            hash: 2,
            batch_end: 3,
        };
        assert_eq!(RingSlot::decode(&s.encode()), s);
    }

    #[test]
    fn names_follow_the_resource_rule() {
        assert!(check_name(b"a.b-c_9").is_ok());
        assert!(check_name(b"").is_err());
        assert!(check_name(b"..").is_err());
        assert!(check_name(b"a/b").is_err());
        assert!(check_name(&[b'x'; 201]).is_err());
        assert_ne!(key_hash(b"ab", b"c"), key_hash(b"a", b"bc"));
    }
}
