//! The server's side: [`TenantWriter`], the one writer of a tenant segment.
//!
//! Every write runs the same steps, so a failure can only happen before the segment is
//! touched: plan (validate names and sizes, find slots, allocate, check quotas; on error, give
//! the blocks back), lock every entry of the write (sequence words odd), write the bytes, unlock
//! them, append the ring slots, publish the revision, free what the write replaced.
//!
//! | module | what it holds |
//! | --- | --- |
//! | `config` | [`TenantConfig`]: how a segment is sized |
//! | `plan` | validating a write and finding its slots and blocks, before anything is touched |
//! | `apply` | writing a planned write's entries, names and values under their sequence locks |
//! | `ring` | the change ring: a write's slots and its revision published; old tombstones dropped |
//! | `restore` | dry runs, reading back, and rebuilding a segment with its versions |

mod apply;
mod config;
mod plan;
mod restore;
mod ring;

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;

use memwire_shm::{Access, Mapping, MemfdSegment, Segment};

use super::alloc::{Allocator, Block, rounded};
use super::layout::{
    ENTRY_LEN, Entry, GRANULE, Geometry, H_RETIRED, Header, LIVE, MAX_NAME_LEN, validate_name,
};
use crate::error::{Error, Result};

pub use config::{DEFAULT_MAX_VALUE, MAX_VARIABLES, TenantConfig};
pub use restore::VariableInfo;

/// What the server remembers of a table slot: the entry as it last wrote it and the blocks it
/// owns. The segment's copy is never read back.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    entry: Entry,
    /// The entry's sequence word (even between writes).
    seq: u64,
    names: Block,
    value: Block,
}

/// One variable's part of a write, fully planned before anything is written.
struct Change<'a> {
    slot: u32,
    entry: Entry,
    names: Block,
    value: Block,
    /// Names to write into `names` (a fresh block), if any.
    write_names: Option<(&'a str, &'a str)>,
    /// Whether `value` is a fresh block (else the old one, rewritten in place, or none).
    fresh_value: bool,
    bytes: &'a [u8],
    /// The value block this write replaces, freed once it is published.
    free_on_commit: Block,
    kind: u32,
}

const NO_BLOCK: Block = Block { offset: 0, len: 0 };

/// The writer of one tenant segment (server side). See the [module docs](super).
pub struct TenantWriter {
    segment: MemfdSegment,
    map: Mapping,
    header: Header,
    alloc: Allocator,
    slots: Vec<Slot>,
    /// `service/variable` → slot, for live entries and for tombstones that still hold names.
    index: HashMap<String, u32>,
    /// The index key of each slot that holds names (empty otherwise).
    keys: Vec<String>,
    /// Length of the value area (what the allocator manages).
    area_len: u64,
    /// Tombstones in delete order: `(revision of the delete, slot)`. A tombstone keeps its
    /// names (so a watcher can name the change) until its ring slot is overwritten.
    tombstones: VecDeque<(u64, u32)>,
    revision: u64,
    live: u32,
    /// Whether a write went through the change ring: [`TenantWriter::restore`] and
    /// [`TenantWriter::set_revision`] are refused from then on.
    published: bool,
    /// The highest version [`TenantWriter::restore`] gave a variable.
    restored_max: u64,
}

fn key(service: &str, var: &str) -> String {
    format!("{service}/{var}")
}

impl TenantWriter {
    /// Creates the segment of `tenant` with [`TenantConfig::new`]`(quota_bytes, max_variables)`.
    pub fn create(tenant: &str, quota_bytes: u64, max_variables: u32) -> Result<Self> {
        Self::create_with(tenant, TenantConfig::new(quota_bytes, max_variables))
    }

    /// Creates a memfd sized for `config`, maps it read-write, writes the header, then seals it
    /// (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL`): from here on only
    /// this mapping can write it.
    pub fn create_with(tenant: &str, config: TenantConfig) -> Result<Self> {
        validate_name("tenant", tenant)?;
        let bad = |what: &str| Err(Error::BadRequest(format!("tenant {tenant:?}: {what}")));
        if config.max_variables == 0 || config.max_variables > MAX_VARIABLES {
            return bad(&format!("max_variables must be 1 ..= {MAX_VARIABLES}"));
        }
        if !config.ring_slots.is_power_of_two() || config.ring_slots < 2 {
            return bad("ring_slots must be a power of two, at least 2");
        }
        if u64::from(config.max_value_len) > config.quota_bytes {
            return bad("max_value_len exceeds the memory quota");
        }
        let table_slots = (config.max_variables * 2).next_power_of_two().max(8);
        // Headroom past the quota: one value and one pair of names, for replace-then-free.
        let headroom = rounded(u64::from(config.max_value_len)) + rounded(2 * MAX_NAME_LEN as u64);
        let geometry = Geometry {
            table_slots,
            ring_slots: config.ring_slots,
            // A quota too large to round up (a damaged log's) saturates; `offsets` refuses it.
            values_len: config
                .quota_bytes
                .checked_next_multiple_of(GRANULE)
                .unwrap_or(u64::MAX)
                .saturating_add(headroom),
        };
        let offsets = geometry
            .offsets()
            .ok_or_else(|| Error::BadRequest(format!("tenant {tenant:?}: quota too large")))?;
        let header = Header {
            tenant: tenant.to_owned(),
            epoch: config.epoch,
            quota_bytes: config.quota_bytes,
            max_variables: config.max_variables,
            max_value: config.max_value_len,
            geometry,
            offsets,
        };
        let segment =
            MemfdSegment::create(&format!("memwire-tenant-{tenant}"), offsets.segment_len)?;
        let map = segment.map(Access::ReadWrite)?;
        map.write(0, &header.encode())?;
        segment.seal_future_write()?;
        segment.seal_seals()?;
        Ok(Self {
            segment,
            map,
            alloc: Allocator::new(offsets.values, geometry.values_len),
            slots: vec![Slot::default(); table_slots as usize],
            keys: vec![String::new(); table_slots as usize],
            area_len: geometry.values_len,
            header,
            index: HashMap::new(),
            tombstones: VecDeque::new(),
            revision: 0,
            live: 0,
            published: false,
            restored_max: 0,
        })
    }

    /// The segment's fd, to hand to readers (by `SCM_RIGHTS` or inheritance).
    #[must_use]
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.segment.as_fd()
    }

    /// A new fd of the segment, to pass to a reader.
    pub fn try_clone_fd(&self) -> Result<OwnedFd> {
        Ok(self.segment.try_clone_fd()?)
    }

    /// The tenant.
    #[must_use]
    pub fn tenant(&self) -> &str {
        &self.header.tenant
    }

    /// The last revision written (0: none yet).
    #[must_use]
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Live variables.
    #[must_use]
    pub fn len(&self) -> u32 {
        self.live
    }

    /// Whether no variable is live.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Memory charged against the quota: value-area bytes plus 64 per live variable.
    #[must_use]
    pub fn used_bytes(&self) -> u64 {
        self.area_used() + u64::from(self.live) * ENTRY_LEN as u64
    }

    /// Bytes of the value area allocated (names and values, granule-rounded).
    fn area_used(&self) -> u64 {
        self.area_len - self.alloc.free_bytes()
    }

    /// The version of a live variable.
    #[must_use]
    pub fn version(&self, service: &str, var: &str) -> Option<u64> {
        let slot = *self.index.get(&key(service, var))?;
        let s = &self.slots[slot as usize];
        (s.entry.state == LIVE).then_some(s.entry.version)
    }

    /// Sets the flag that tells readers the tenant moved to a fresh segment. Writes may go
    /// on (the server stops sending them here), but readers should remap.
    pub fn retire(&mut self) -> Result<()> {
        // Release: pairs with the Acquire load in `TenantView::is_retired`; anything written
        // before retiring is visible to a reader that sees the flag.
        self.map.store_u64(H_RETIRED, 1, Ordering::Release)?;
        Ok(())
    }

    /// Sets `service/var` to `value`; returns the new revision, which is the variable's version.
    pub fn set(
        &mut self,
        service: &str,
        var: &str,
        value: &[u8],
        timestamp_ns: u64,
    ) -> Result<u64> {
        self.write(service, &[(var, Some(value))], timestamp_ns)
    }

    /// Deletes `service/var`; returns the revision of the delete. `NotFound` if it is not live.
    pub fn delete(&mut self, service: &str, var: &str, timestamp_ns: u64) -> Result<u64> {
        self.write(service, &[(var, None)], timestamp_ns)
    }

    /// Sets `service/var` only if its version is `expected_version` (0: it must not exist);
    /// else `Conflict { expected, found }`.
    pub fn compare_and_set(
        &mut self,
        service: &str,
        var: &str,
        expected_version: u64,
        value: &[u8],
        timestamp_ns: u64,
    ) -> Result<u64> {
        let found = self.version(service, var).unwrap_or(0);
        if found != expected_version {
            return Err(Error::Conflict {
                expected: expected_version,
                found,
            });
        }
        self.set(service, var, value, timestamp_ns)
    }

    /// Sets several variables of one service at once: a reader (or watcher) sees all of them
    /// or none. Each gets its own revision, consecutive; returns the last.
    pub fn set_many(
        &mut self,
        service: &str,
        vars: &[(&str, &[u8])],
        timestamp_ns: u64,
    ) -> Result<u64> {
        let ops: Vec<(&str, Option<&[u8]>)> = vars.iter().map(|&(v, b)| (v, Some(b))).collect();
        self.write(service, &ops, timestamp_ns)
    }

    /// The one write path: `None` deletes.
    fn write(&mut self, service: &str, ops: &[(&str, Option<&[u8]>)], ts: u64) -> Result<u64> {
        self.strip_tombstones()?;
        let changes = self.plan(service, ops, ts)?;
        self.apply(&changes)?;
        for c in &changes {
            self.commit(service, c);
        }
        Ok(self.revision)
    }
}

impl std::fmt::Debug for TenantWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantWriter")
            .field("tenant", &self.header.tenant)
            .field("epoch", &self.header.epoch)
            .field("revision", &self.revision)
            .field("live", &self.live)
            .field("used_bytes", &self.used_bytes())
            .finish_non_exhaustive()
    }
}
