//! The server's side: [`TenantWriter`], the one writer of a tenant segment.
//!
//! Every write runs the same steps, so a failure can only happen before the segment is
//! touched: plan (validate names and sizes, find slots, allocate, check quotas; on error, give
//! the blocks back), lock every entry of the write (sequence words odd), write the bytes, unlock
//! them, append the ring slots, publish the revision, free what the write replaced.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{Ordering, fence};

use memwire_shm::{Access, Mapping, MemfdSegment, Segment};

use super::alloc::{Allocator, Block, rounded};
use super::layout::{
    DELETED, E_BODY, E_SEQ, ENTRY_LEN, Entry, FREE, Geometry, H_RETIRED, H_REVISION, Header,
    KIND_DELETE, KIND_SET, LIVE, MAX_NAME_LEN, R_BODY, R_REVISION, RING_WRITING, RingSlot,
    key_hash, validate_name,
};
use crate::error::{Error, Result};

/// Largest value by default, as the store's configuration's default.
pub const DEFAULT_MAX_VALUE: u32 = 1 << 20;

/// How a tenant segment is sized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TenantConfig {
    /// Memory quota: value bytes and names (in 8-byte granules) plus 64 bytes per live
    /// variable. The segment's value area is this plus room for one more value, so replacing
    /// a value can allocate the new one before freeing the old.
    pub quota_bytes: u64,
    /// Live variables at most. The table holds twice as many slots (rounded up to a power of
    /// two), so probes stay short.
    pub max_variables: u32,
    /// Largest value in bytes; a larger one is a `BadRequest`. At most `quota_bytes`.
    pub max_value_len: u32,
    /// Change-ring slots (a power of two): how far a watcher may fall behind before it gets
    /// `Lagged`.
    pub ring_slots: u32,
    /// The segment's epoch, bumped each time the tenant moves to a fresh segment.
    pub epoch: u64,
}

impl TenantConfig {
    /// A quota of `quota_bytes` and `max_variables`; values up to 1 MiB (or the quota, if
    /// smaller); a ring of four changes per variable, between 64 and 65 536 slots; epoch 0.
    #[must_use]
    pub fn new(quota_bytes: u64, max_variables: u32) -> Self {
        let max_value = u32::try_from(quota_bytes.min(u64::from(DEFAULT_MAX_VALUE)))
            .unwrap_or(DEFAULT_MAX_VALUE);
        Self {
            quota_bytes,
            max_variables,
            max_value_len: max_value,
            ring_slots: max_variables
                .saturating_mul(4)
                .clamp(64, 1 << 16)
                .next_power_of_two(),
            epoch: 0,
        }
    }

    /// Sets the largest value.
    #[must_use]
    pub fn max_value_len(mut self, len: u32) -> Self {
        self.max_value_len = len;
        self
    }

    /// Sets the number of change-ring slots (a power of two).
    #[must_use]
    pub fn ring_slots(mut self, slots: u32) -> Self {
        self.ring_slots = slots;
        self
    }

    /// Sets the epoch.
    #[must_use]
    pub fn epoch(mut self, epoch: u64) -> Self {
        self.epoch = epoch;
        self
    }
}

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

mod restore;

pub use restore::VariableInfo;

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
        if config.max_variables == 0 || config.max_variables > 1 << 24 {
            return bad("max_variables must be 1 ..= 16777216");
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
            values_len: rounded(config.quota_bytes).saturating_add(headroom),
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

    /// Validates and prepares every change; on error nothing has changed.
    fn plan<'a>(
        &mut self,
        service: &'a str,
        ops: &[(&'a str, Option<&'a [u8]>)],
        ts: u64,
    ) -> Result<Vec<Change<'a>>> {
        validate_name("service", service)?;
        if ops.is_empty() {
            return Err(Error::BadRequest("a write names no variable".into()));
        }
        let mut changes: Vec<Change<'a>> = Vec::with_capacity(ops.len());
        let result = self.plan_into(service, ops, ts, &mut changes);
        if result.is_err() {
            self.release(&changes);
        }
        result.map(|()| changes)
    }

    /// Gives back the blocks a plan allocated, leaving the allocator as it was before it
    /// (freed blocks merge with their neighbours again).
    fn release(&mut self, changes: &[Change<'_>]) {
        for c in changes {
            if c.write_names.is_some() {
                self.alloc.free(c.names);
            }
            if c.fresh_value {
                self.alloc.free(c.value);
            }
        }
    }

    fn plan_into<'a>(
        &mut self,
        service: &'a str,
        ops: &[(&'a str, Option<&'a [u8]>)],
        ts: u64,
        changes: &mut Vec<Change<'a>>,
    ) -> Result<()> {
        let tenant = self.header.tenant.clone();
        let (mut live, mut used) = (i64::from(self.live), self.area_used() as i64);
        // Requests that are malformed whatever the tenant's state, before anything else.
        for (i, &(var, value)) in ops.iter().enumerate() {
            validate_name("variable", var)?;
            if ops[..i].iter().any(|&(v, _)| v == var) {
                return Err(Error::BadRequest(format!(
                    "variable {var:?} appears twice in one write"
                )));
            }
            let Some(bytes) = value else { continue };
            if bytes.len() > self.header.max_value as usize {
                return Err(Error::BadRequest(format!(
                    "value of {tenant}/{service}/{var} is {} bytes, at most {} allowed",
                    bytes.len(),
                    self.header.max_value
                )));
            }
        }
        for (i, &(var, value)) in ops.iter().enumerate() {
            let revision = self.revision + 1 + i as u64;
            let existing = self.index.get(&key(service, var)).copied();
            let current = existing.map(|s| self.slots[s as usize]);
            let is_live = current.is_some_and(|s| s.entry.state == LIVE);
            let Some(bytes) = value else {
                let (Some(slot), Some(cur)) = (existing, current.filter(|_| is_live)) else {
                    return Err(Error::NotFound(format!("{tenant}/{service}/{var}")));
                };
                live -= 1;
                used -= cur.value.len as i64;
                changes.push(Change {
                    slot,
                    entry: Entry {
                        state: DELETED,
                        value_len: 0,
                        version: revision,
                        timestamp_ns: ts,
                        value_offset: 0,
                        ..cur.entry
                    },
                    names: cur.names,
                    value: NO_BLOCK,
                    write_names: None,
                    fresh_value: false,
                    bytes: &[],
                    free_on_commit: cur.value,
                    kind: KIND_DELETE,
                });
                continue;
            };
            let need = rounded(bytes.len() as u64);
            let old_value = current.map_or(NO_BLOCK, |s| s.value);
            let in_place = is_live && old_value.len == need;
            if !is_live {
                live += 1;
                if live > i64::from(self.header.max_variables) {
                    return Err(Error::QuotaExceeded(format!(
                        "tenant {tenant}: at most {} variables, {} live",
                        self.header.max_variables, self.live
                    )));
                }
            }
            let new_names = existing.is_none();
            let names_len = rounded((service.len() + var.len()) as u64);
            used += need as i64 - old_value.len as i64;
            if new_names {
                used += names_len as i64;
            }
            let charged = used as u64 + live as u64 * ENTRY_LEN as u64;
            if charged > self.header.quota_bytes {
                return Err(Error::QuotaExceeded(format!(
                    "tenant {tenant}: memory quota {} bytes, {} in use, this write needs {charged}",
                    self.header.quota_bytes,
                    self.used_bytes()
                )));
            }
            let reserved: Vec<u32> = changes.iter().map(|c| c.slot).collect();
            let slot = match existing {
                Some(s) => s,
                None => self.find_slot(key_hash(service.as_bytes(), var.as_bytes()), &reserved)?,
            };
            let names = if new_names {
                self.allocate(names_len)?
            } else {
                self.slots[slot as usize].names
            };
            // Registered before allocating the value, so an allocation failure frees the names.
            changes.push(Change {
                slot,
                entry: Entry {
                    state: LIVE,
                    service_len: service.len() as u8,
                    var_len: var.len() as u8,
                    value_len: bytes.len() as u32,
                    hash: key_hash(service.as_bytes(), var.as_bytes()),
                    version: revision,
                    timestamp_ns: ts,
                    names_offset: names.offset,
                    value_offset: 0,
                },
                names,
                value: old_value,
                write_names: new_names.then_some((service, var)),
                fresh_value: false,
                bytes,
                free_on_commit: NO_BLOCK,
                kind: KIND_SET,
            });
            if !in_place {
                let value = self.allocate(need)?;
                let last = changes.len() - 1;
                let c = &mut changes[last];
                c.value = value;
                c.fresh_value = true;
                c.entry.value_offset = value.offset;
                c.free_on_commit = old_value;
            } else {
                let last = changes.len() - 1;
                changes[last].entry.value_offset = old_value.offset;
            }
        }
        Ok(())
    }

    fn allocate(&mut self, len: u64) -> Result<Block> {
        self.alloc.alloc(len).ok_or_else(|| {
            Error::QuotaExceeded(format!(
                "tenant {}: no free block of {len} bytes in the value area ({} free, largest {})",
                self.header.tenant,
                self.alloc.free_bytes(),
                self.alloc.largest()
            ))
        })
    }

    /// The slot a new key goes to: the first on its probe path that is free or a tombstone
    /// whose names are gone, and not taken by this write already.
    fn find_slot(&self, hash: u64, reserved: &[u32]) -> Result<u32> {
        let mask = self.header.geometry.table_slots - 1;
        let start = (hash as u32) & mask;
        for probe in 0..=mask {
            let i = (start + probe) & mask;
            let s = &self.slots[i as usize];
            let usable =
                s.entry.state == FREE || (s.entry.state == DELETED && s.entry.names_offset == 0);
            if usable && !reserved.contains(&i) {
                return Ok(i);
            }
        }
        Err(Error::QuotaExceeded(format!(
            "tenant {}: every table slot holds a variable or a recent delete",
            self.header.tenant
        )))
    }

    /// Writes a planned write into the segment and publishes it.
    fn apply(&mut self, changes: &[Change<'_>]) -> Result<()> {
        self.write_entries(changes)?;
        self.publish(changes)
    }

    /// Writes the entries, names and values of a planned write, each entry under its
    /// sequence lock (all locked before any byte changes); the ring is not touched.
    fn write_entries(&mut self, changes: &[Change<'_>]) -> Result<()> {
        // Phase 1: every entry of the write odd before any byte changes, so a reader that saw
        // one member's new value and then reads another finds it locked or new (never old).
        for c in changes {
            let at = self.header.entry(c.slot);
            let seq = self.slots[c.slot as usize].seq;
            debug_assert!(seq.is_multiple_of(2));
            // Relaxed: ordered before the data stores by the fence below.
            self.map.store_u64(at + E_SEQ, seq + 1, Ordering::Relaxed)?;
        }
        // Pairs with the Acquire fence of a reader's `read_entry`: a reader whose copy saw any
        // store below sees the odd sequence on its re-check.
        fence(Ordering::Release);
        for c in changes {
            if let Some((service, var)) = c.write_names {
                let at = c.names.offset as usize;
                self.map.write_atomic(at, service.as_bytes())?;
                self.map.write_atomic(at + service.len(), var.as_bytes())?;
            }
            if !c.bytes.is_empty() {
                self.map.write_atomic(c.value.offset as usize, c.bytes)?;
            }
            let at = self.header.entry(c.slot);
            self.map.write_atomic(at + E_BODY, &c.entry.encode())?;
        }
        for c in changes {
            let slot = &mut self.slots[c.slot as usize];
            slot.seq += 2;
            // Release: pairs with the Acquire load that opens a reader's `read_entry`; the
            // entry's bytes are visible to a reader that sees the even sequence.
            self.map.store_u64(
                self.header.entry(c.slot) + E_SEQ,
                slot.seq,
                Ordering::Release,
            )?;
        }
        Ok(())
    }

    /// Appends the ring slots of a written write and publishes its last revision.
    fn publish(&mut self, changes: &[Change<'_>]) -> Result<()> {
        self.published = true;
        let first = self.revision + 1;
        let last = self.revision + changes.len() as u64;
        for (i, c) in changes.iter().enumerate() {
            let revision = first + i as u64;
            self.write_ring(
                revision,
                RingSlot {
                    entry: c.slot,
                    kind: c.kind,
                    timestamp_ns: c.entry.timestamp_ns,
                    hash: c.entry.hash,
                    batch_end: last,
                },
            )?;
        }
        // Release: pairs with the Acquire load in `TenantView::revision`/`changes_since`: a
        // watcher that sees `last` sees every ring slot and entry of the write.
        self.map.store_u64(H_REVISION, last, Ordering::Release)?;
        self.revision = last;
        Ok(())
    }

    fn write_ring(&self, revision: u64, slot: RingSlot) -> Result<()> {
        let at = self.header.ring_slot(revision);
        // The slot's revision word is its sequence: `RING_WRITING` while it changes.
        self.map
            .store_u64(at + R_REVISION, RING_WRITING, Ordering::Relaxed)?;
        // Pairs with the Acquire fence in the reader's `read_ring`.
        fence(Ordering::Release);
        self.map.write_atomic(at + R_BODY, &slot.encode())?;
        // Release: pairs with the reader's Acquire load of the slot's revision.
        self.map
            .store_u64(at + R_REVISION, revision, Ordering::Release)?;
        Ok(())
    }

    /// Updates the private state after a change is published.
    fn commit(&mut self, service: &str, c: &Change<'_>) {
        self.alloc.free(c.free_on_commit);
        let slot = &mut self.slots[c.slot as usize];
        let was_live = slot.entry.state == LIVE;
        slot.entry = c.entry;
        slot.names = c.names;
        slot.value = c.value;
        if c.kind == KIND_DELETE {
            self.live -= 1;
            self.tombstones.push_back((c.entry.version, c.slot));
            return;
        }
        if let Some((_, var)) = c.write_names {
            let key = key(service, var);
            self.keys[c.slot as usize].clone_from(&key);
            self.index.insert(key, c.slot);
        }
        if !was_live {
            self.live += 1;
        }
    }

    /// Drops the names of tombstones whose delete has left the change ring (no watcher can ask
    /// about them any more), making their slots reusable; a stripped tombstone followed by a
    /// free slot becomes free itself, so probe paths shorten again.
    fn strip_tombstones(&mut self) -> Result<()> {
        let window = u64::from(self.header.geometry.ring_slots);
        while let Some(&(deleted_at, slot)) = self.tombstones.front() {
            if deleted_at + window > self.revision {
                break;
            }
            self.tombstones.pop_front();
            let s = self.slots[slot as usize];
            if s.entry.state != DELETED || s.entry.version != deleted_at {
                continue; // set again since
            }
            let key = std::mem::take(&mut self.keys[slot as usize]);
            self.index.remove(&key);
            self.rewrite(
                slot,
                Entry {
                    state: DELETED,
                    version: deleted_at,
                    timestamp_ns: s.entry.timestamp_ns,
                    ..Entry::default()
                },
            )?;
            self.alloc.free(s.names);
            self.slots[slot as usize].names = NO_BLOCK;
            self.collapse(slot)?;
        }
        Ok(())
    }

    /// Frees stripped tombstones from `slot` backwards while the slot after each is free.
    fn collapse(&mut self, slot: u32) -> Result<()> {
        let mask = self.header.geometry.table_slots - 1;
        let mut i = slot;
        for _ in 0..=mask {
            let s = self.slots[i as usize].entry;
            let next = self.slots[((i + 1) & mask) as usize].entry;
            if !(s.state == DELETED && s.names_offset == 0 && next.state == FREE) {
                break;
            }
            self.rewrite(i, Entry::default())?;
            i = i.wrapping_sub(1) & mask;
        }
        Ok(())
    }

    /// Rewrites one entry under its sequence lock (no value or names change).
    fn rewrite(&mut self, slot: u32, entry: Entry) -> Result<()> {
        let at = self.header.entry(slot);
        let s = &mut self.slots[slot as usize];
        self.map
            .store_u64(at + E_SEQ, s.seq + 1, Ordering::Relaxed)?;
        // As in `apply`.
        fence(Ordering::Release);
        self.map.write_atomic(at + E_BODY, &entry.encode())?;
        s.seq += 2;
        // As in `apply`.
        self.map.store_u64(at + E_SEQ, s.seq, Ordering::Release)?;
        s.entry = entry;
        Ok(())
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
