//! Maps keyed by call id, with a hash that costs one multiplication.
//!
//! Call ids are chosen by the client, mostly sequential. The default hasher (SipHash) guards
//! against keys chosen to collide; here the only victim of such keys would be the link of the
//! peer that chose them, since every link has maps of its own.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map from call ids.
pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Fibonacci hashing of a `u64` key: spreads sequential ids over the table's buckets.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; fold anything else in byte by byte all the same.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_land_in_distinct_buckets() {
        let mut map = IdMap::default();
        for id in 0..10_000u64 {
            map.insert(id, id * 2);
        }
        assert!((0..10_000u64).all(|id| map.get(&id) == Some(&(id * 2))));
        let buckets: std::collections::HashSet<u64> = (0..1024u64)
            .map(|id| {
                let mut h = IdHasher::default();
                h.write_u64(id);
                h.finish() >> 54
            })
            .collect();
        assert!(
            buckets.len() > 600,
            "only {} of 1024 top-bit buckets",
            buckets.len()
        );
    }
}
