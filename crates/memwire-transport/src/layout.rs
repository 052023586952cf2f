//! Where everything sits in a link's segment, and the header that tells the guest.
//!
//! ```text
//! offset 0      header page (below)
//! then, for direction 0 (host → guest) and direction 1 (guest → host):
//!               data ring:   3 control cache lines + ring_depth × 64-byte slots
//!                            (60-byte descriptor, then its sequence word)
//!               return ring: 3 control cache lines + return_depth × 16-byte slots
//!                            (12-byte return entry, then its sequence word)
//!               pools:       for each class, count × size bytes, page-aligned
//! ```
//!
//! The return ring holds at least as many entries as the direction has slots, so a receiver
//! returning a slot never finds it full: dropping a message never waits.
//!
//! Header (little-endian, written once by the host before the guest sees the segment):
//!
//! ```text
//!  0  magic u64 "MWLINK01"     32  host pid u32
//!  8  layout version u32       40  host start time u64
//! 12  ring depth u32           48  epoch u64
//! 16  inline max u32           64  classes: (size u32, count u32) × 16
//! 20  class count u32
//! 24  max large u64
//! ```
//! The guest copies the header out, checks the magic and version, rebuilds the
//! [`LinkConfig`] and validates it, recomputes this layout itself, and checks the segment is at
//! least that long, before it touches anything else.

use memwire_shm::{Mapping, ProcessId};

use crate::config::{LinkConfig, MAX_CLASSES, SizeClass};
use crate::descriptor::DESCRIPTOR_SIZE;
use crate::error::{Error, Result};
use crate::return_entry::RETURN_ENTRY_SIZE;
use crate::wire::{u32_at, u64_at};

const MAGIC: u64 = u64::from_le_bytes(*b"MWLINK01");
/// 2: rings publish through a sequence word at the end of each slot (no `tail` word); 60-byte
/// descriptors and 12-byte return entries in 64- and 16-byte slots.
const LAYOUT_VERSION: u32 = 2;
const PAGE: usize = 4096;
/// Size of the header.
pub(crate) const HEADER_LEN: usize = 64 + MAX_CLASSES * 8;
/// Offset of the consumer's sleep word of the ring at `base` (the ring's second cache line;
/// `SegmentRing::consumer_state_offset` agrees, see the test below).
pub(crate) fn consumer_state(base: usize) -> usize {
    base + 64
}

/// Offset of the producer's sleep word of the ring at `base` (its third cache line).
pub(crate) fn producer_state(base: usize) -> usize {
    base + 2 * 64
}

/// A data ring: descriptors from the sender to the receiver.
pub(crate) type DataRing = crate::ring::SegmentRing<DESCRIPTOR_SIZE>;
/// A return ring: freed slots from the receiver back to the sender.
pub(crate) type ReturnRing = crate::ring::SegmentRing<RETURN_ENTRY_SIZE>;

fn align(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// One direction's part of the segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Direction {
    pub(crate) data_ring: usize,
    pub(crate) return_ring: usize,
    pub(crate) return_depth: u32,
    /// Offset of each class's first slot.
    pub(crate) pools: Vec<usize>,
}

impl Direction {
    /// This direction's data ring and return ring over `map`, each checked against it once.
    pub(crate) fn rings(
        &self,
        map: &std::sync::Arc<Mapping>,
        ring_depth: u32,
    ) -> Result<(DataRing, ReturnRing)> {
        let bad = |e: crate::ring::LayoutError| Error::BadSegment(e.to_string());
        let data =
            DataRing::new(std::sync::Arc::clone(map), self.data_ring, ring_depth).map_err(bad)?;
        let returns = ReturnRing::new(
            std::sync::Arc::clone(map),
            self.return_ring,
            self.return_depth,
        )
        .map_err(bad)?;
        Ok((data, returns))
    }
}

/// The whole segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Index 0: host → guest; 1: guest → host.
    pub(crate) directions: [Direction; 2],
    pub(crate) len: usize,
}

impl Layout {
    /// The layout of a link of `config` (already validated).
    pub(crate) fn new(config: &LinkConfig) -> Self {
        let return_depth =
            u32::try_from(config.total_slots().max(2).next_power_of_two()).unwrap_or(u32::MAX);
        let mut at = PAGE;
        let mut direction = || {
            let data_ring = at;
            at = align(at + DataRing::footprint(config.ring_depth), 64);
            let return_ring = at;
            at = align(at + ReturnRing::footprint(return_depth), PAGE);
            let pools = config
                .classes
                .iter()
                .map(|c| {
                    let base = at;
                    at = align(at + c.size as usize * c.count as usize, PAGE);
                    base
                })
                .collect();
            Direction {
                data_ring,
                return_ring,
                return_depth,
                pools,
            }
        };
        let directions = [direction(), direction()];
        Self {
            directions,
            len: at,
        }
    }
}

/// Writes the header of a fresh segment.
pub(crate) fn write_header(
    map: &Mapping,
    config: &LinkConfig,
    host: ProcessId,
    epoch: u64,
) -> Result<()> {
    map.write(0, &encode_header(config, host, epoch))?;
    Ok(())
}

/// The header of a link of `config` (already validated, so at most [`MAX_CLASSES`] classes).
pub(crate) fn encode_header(config: &LinkConfig, host: ProcessId, epoch: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC.to_le_bytes());
    h[8..12].copy_from_slice(&LAYOUT_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&config.ring_depth.to_le_bytes());
    h[16..20].copy_from_slice(&u32::from(config.inline_max).to_le_bytes());
    h[20..24].copy_from_slice(&(config.classes.len() as u32).to_le_bytes());
    h[24..32].copy_from_slice(&config.max_large.to_le_bytes());
    h[32..36].copy_from_slice(&host.pid.to_le_bytes());
    h[40..48].copy_from_slice(&host.start_time.to_le_bytes());
    h[48..56].copy_from_slice(&epoch.to_le_bytes());
    for (i, c) in config.classes.iter().enumerate() {
        let o = 64 + i * 8;
        h[o..o + 4].copy_from_slice(&c.size.to_le_bytes());
        h[o + 4..o + 8].copy_from_slice(&c.count.to_le_bytes());
    }
    h
}

/// What a guest learns from the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) config: LinkConfig,
    pub(crate) host: ProcessId,
    pub(crate) epoch: u64,
}

/// Decodes and validates a copy of the header; `segment_len` is the size of the mapping.
pub(crate) fn decode_header(h: &[u8; HEADER_LEN], segment_len: usize) -> Result<Header> {
    let bad = |what: String| Error::BadSegment(what);
    if u64_at(h, 0) != MAGIC {
        return Err(bad("not a memwire link segment (bad magic)".into()));
    }
    let version = u32_at(h, 8);
    if version != LAYOUT_VERSION {
        return Err(bad(format!(
            "layout version {version}, expected {LAYOUT_VERSION}"
        )));
    }
    let n = u32_at(h, 20) as usize;
    if n > MAX_CLASSES {
        return Err(bad(format!("{n} size classes, at most {MAX_CLASSES}")));
    }
    let inline_max =
        u8::try_from(u32_at(h, 16)).map_err(|_| bad(format!("inline max {}", u32_at(h, 16))))?;
    let config = LinkConfig {
        ring_depth: u32_at(h, 12),
        classes: (0..n)
            .map(|i| SizeClass::new(u32_at(h, 64 + i * 8), u32_at(h, 68 + i * 8)))
            .collect(),
        inline_max,
        max_large: u64_at(h, 24),
    };
    config.validate()?;
    let layout = Layout::new(&config);
    if segment_len < layout.len {
        return Err(bad(format!(
            "segment is {segment_len} bytes, its layout needs {}",
            layout.len
        )));
    }
    Ok(Header {
        config,
        host: ProcessId {
            pid: u32_at(h, 32),
            start_time: u64_at(h, 40),
        },
        epoch: u64_at(h, 48),
    })
}

/// Copies the header out of a mapping and decodes it.
pub(crate) fn read_header(map: &Mapping) -> Result<Header> {
    let mut h = [0u8; HEADER_LEN];
    map.read(0, &mut h)?;
    decode_header(&h, map.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use memwire_shm::{Access, MemfdSegment, Segment};
    use proptest::prelude::*;

    #[test]
    fn layout_is_ordered_aligned_and_header_round_trips() {
        let config = LinkConfig::default();
        let layout = Layout::new(&config);
        let [a, b] = &layout.directions;
        assert!(a.data_ring >= PAGE && a.return_ring > a.data_ring);
        assert!(a.pools[0] > a.return_ring && b.data_ring > *a.pools.last().unwrap());
        assert!(a.pools.iter().chain(&b.pools).all(|p| p % PAGE == 0));
        assert!(a.return_depth as u64 >= config.total_slots());
        let seg = MemfdSegment::create("layout", layout.len as u64).unwrap();
        let map = seg.map(Access::ReadWrite).unwrap();
        let me = ProcessId::current().unwrap();
        write_header(&map, &config, me, 7).unwrap();
        let h = read_header(&map).unwrap();
        assert_eq!(
            h,
            Header {
                config,
                host: me,
                epoch: 7
            }
        );
    }

    #[test]
    fn sleep_words_agree_with_the_ring() {
        let seg = MemfdSegment::create("words", 1 << 16).unwrap();
        let map = std::sync::Arc::new(seg.map(Access::ReadWrite).unwrap());
        let ring = DataRing::new(map, 4096, 4).unwrap();
        assert_eq!(ring.consumer_state_offset(), consumer_state(4096));
        assert_eq!(ring.producer_state_offset(), producer_state(4096));
        // Three control lines (head and the two sleep words), then the slots.
        assert_eq!(DataRing::footprint(4), 3 * 64 + 4 * 64);
        assert_eq!(ReturnRing::footprint(4), 3 * 64 + 4 * 16);
    }

    #[test]
    fn a_short_segment_is_refused() {
        let config = LinkConfig::default();
        let seg = MemfdSegment::create("short", 8192).unwrap();
        let map = seg.map(Access::ReadWrite).unwrap();
        write_header(&map, &config, ProcessId::current().unwrap(), 0).unwrap();
        assert!(matches!(read_header(&map), Err(Error::BadSegment(_))));
    }

    proptest! {
        #[test]
        fn decoding_random_headers_never_panics(bytes in proptest::collection::vec(any::<u8>(), HEADER_LEN), len in any::<usize>(), magic in any::<bool>()) {
            let mut h = [0u8; HEADER_LEN];
            h.copy_from_slice(&bytes);
            if magic {
                h[0..8].copy_from_slice(&MAGIC.to_le_bytes());
                h[8..12].copy_from_slice(&LAYOUT_VERSION.to_le_bytes());
            }
            if let Ok(header) = decode_header(&h, len) {
                prop_assert!(header.config.validate().is_ok());
                prop_assert!(Layout::new(&header.config).len <= len);
            }
        }
    }
}
