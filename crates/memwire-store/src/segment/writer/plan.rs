//! The first step of every write: validate names and sizes, find the slots, allocate the
//! blocks and check the quotas, all before the segment is touched. A plan that fails gives its
//! blocks back, so a refused write changes nothing.

use super::{Change, NO_BLOCK, TenantWriter, key};
use crate::error::{Error, Result};
use crate::segment::alloc::{Block, rounded};
use crate::segment::layout::{
    DELETED, ENTRY_LEN, Entry, FREE, KIND_DELETE, KIND_SET, LIVE, key_hash, validate_name,
};

impl TenantWriter {
    /// Validates and prepares every change; on error nothing has changed.
    pub(super) fn plan<'a>(
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
    pub(super) fn release(&mut self, changes: &[Change<'_>]) {
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
}
