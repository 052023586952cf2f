//! The client's side: [`TenantView`], a read-only mapping of a tenant segment read through
//! sequence locks.
//!
//! Every read copies an entry (or ring slot) with [`Mapping::read_atomic`], decides on the copy,
//! then re-checks the sequence word: a copy that raced with the writer is thrown away and taken
//! again. Offsets and lengths found in the segment are checked against the layout before use,
//! and a check that fails on a copy the sequence word confirms is a
//! [`Error::CorruptSegment`], never a panic.

use std::os::fd::OwnedFd;
use std::sync::atomic::{Ordering, fence};

use memwire_shm::{Access, Mapping, MemfdSegment, Segment};

use super::layout::{
    DELETED, E_BODY, E_BODY_LEN, E_SEQ, Entry, FREE, H_RETIRED, H_REVISION, H_STATIC_END,
    HEADER_LEN, Header, KIND_DELETE, KIND_SET, LIVE, MAX_NAME_LEN, R_BODY, R_BODY_LEN, R_REVISION,
    RING_WRITING, RingSlot, check_name, key_hash,
};
use crate::error::{Error, Result};

/// A variable's value as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The tenant revision of the write that set it.
    pub version: u64,
    /// When it was written (unix ns, as the server stamped it).
    pub timestamp_ns: u64,
}

/// A variable's version and timestamp, for [`TenantView::get_into`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The tenant revision of the write that set it.
    pub version: u64,
    /// When it was written (unix ns).
    pub timestamp_ns: u64,
}

/// What a change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ChangeKind {
    /// The variable was set (created or replaced).
    Set,
    /// The variable was deleted.
    Delete,
}

/// One change, from the tenant's change ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeEvent {
    /// The tenant revision of the change (the variable's version, for a set).
    pub revision: u64,
    /// Set or delete.
    pub kind: ChangeKind,
    /// The service.
    pub service: String,
    /// The variable.
    pub variable: String,
    /// When it was written (unix ns).
    pub timestamp_ns: u64,
}

/// What [`TenantView::changes_since`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changes {
    /// Every change after the revision asked for, in revision order, ending on a whole write
    /// (never a part of a `set_many`). Empty when nothing changed.
    Events(Vec<ChangeEvent>),
    /// The ring no longer holds revision `missed_from`: the watcher fell behind. Read the
    /// current values, then continue with `changes_since(resumed_at)`.
    Lagged {
        /// The first revision the watcher missed.
        missed_from: u64,
        /// The tenant revision when the lag was seen.
        resumed_at: u64,
    },
}

/// Spins, then yields, and gives up (the writer died mid-write, or a bug holds the lock)
/// after enough yields that a live writer, however descheduled, would have finished.
struct Backoff(u32);

/// Spins before yielding: an entry write takes well under a microsecond.
const SPINS: u32 = 64;
/// Attempts before giving up: about a second of yields on this machine, far past any write.
const ATTEMPTS: u32 = 1 << 20;

impl Backoff {
    fn snooze(&mut self) -> Result<()> {
        self.0 += 1;
        if self.0 < SPINS {
            std::hint::spin_loop();
        } else if self.0 < ATTEMPTS {
            std::thread::yield_now();
        } else {
            return Err(Error::ServerGone);
        }
        Ok(())
    }
}

/// What one probe of the table found.
enum Probe<T> {
    /// A free slot: the key is not in the table.
    Free,
    /// Another key (or a tombstone).
    Other,
    /// The key.
    Found(T),
}

/// A read-only view of one tenant segment (client side). See the [module docs](super).
#[derive(Debug)]
pub struct TenantView {
    map: Mapping,
    header: Header,
}

fn corrupt(offset: usize, what: impl Into<String>) -> Error {
    Error::CorruptSegment {
        offset: offset as u64,
        what: what.into(),
    }
}

impl TenantView {
    /// Maps a tenant segment read-only. Refuses an fd that lacks `F_SEAL_FUTURE_WRITE |
    /// F_SEAL_SHRINK | F_SEAL_GROW` (someone else could write or truncate it) and a header that
    /// does not describe exactly this file.
    pub fn open(fd: OwnedFd) -> Result<Self> {
        let segment = MemfdSegment::from_read_only_fd(fd, HEADER_LEN as u64)?;
        let map = segment.map(Access::ReadOnly)?;
        let mut b = vec![0; H_STATIC_END];
        map.read_atomic(0, &mut b)?;
        let header = Header::decode(&b, segment.len() as u64)?;
        Ok(Self { map, header })
    }

    /// The tenant.
    #[must_use]
    pub fn tenant(&self) -> &str {
        &self.header.tenant
    }

    /// The segment's epoch.
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.header.epoch
    }

    /// The tenant revision: the last write's.
    pub fn revision(&self) -> Result<u64> {
        // Acquire: pairs with the writer's Release store of the revision; every entry and ring
        // slot of that write is visible after it.
        Ok(self.map.load_u64(H_REVISION, Ordering::Acquire)?)
    }

    /// Whether the server moved the tenant to a fresh segment: this one gets no more writes.
    pub fn is_retired(&self) -> Result<bool> {
        // Acquire: pairs with the Release store in `TenantWriter::retire`.
        Ok(self.map.load_u64(H_RETIRED, Ordering::Acquire)? != 0)
    }

    /// The value of `service/var`, `None` if it does not exist.
    pub fn get(&self, service: &str, var: &str) -> Result<Option<Value>> {
        let mut bytes = Vec::new();
        Ok(self.get_into(service, var, &mut bytes)?.map(|stamp| Value {
            bytes,
            version: stamp.version,
            timestamp_ns: stamp.timestamp_ns,
        }))
    }

    /// As [`TenantView::get`], copying the value into `out` (cleared first), which a caller
    /// reuses so a read allocates nothing.
    pub fn get_into(&self, service: &str, var: &str, out: &mut Vec<u8>) -> Result<Option<Stamp>> {
        let (s, v) = (service.as_bytes(), var.as_bytes());
        let fits = |n: &[u8]| (1..=MAX_NAME_LEN).contains(&n.len());
        if !fits(s) || !fits(v) {
            return Ok(None); // never stored: the writer refuses such names
        }
        // A name with bytes the writer refuses matches no stored name: no need to check them.
        let hash = key_hash(s, v);
        let mask = self.header.geometry.table_slots - 1;
        let mut index = (hash as u32) & mask;
        for _ in 0..=mask {
            let probe = self.read_entry(index, |e| {
                if e.state == FREE {
                    return Ok(Probe::Free);
                }
                if e.state != LIVE
                    || e.hash != hash
                    || usize::from(e.service_len) != s.len()
                    || usize::from(e.var_len) != v.len()
                {
                    return Ok(Probe::Other);
                }
                if !self.names_are(e, s, v)? {
                    return Ok(Probe::Other);
                }
                self.read_value(e, out)?;
                Ok(Probe::Found(Stamp {
                    version: e.version,
                    timestamp_ns: e.timestamp_ns,
                }))
            })?;
            match probe {
                Probe::Free => return Ok(None),
                Probe::Found(stamp) => return Ok(Some(stamp)),
                Probe::Other => index = (index + 1) & mask,
            }
        }
        Ok(None)
    }

    /// Every live variable of `service`, sorted by name. Reads the whole table.
    pub fn list(&self, service: &str) -> Result<Vec<(String, Value)>> {
        let s = service.as_bytes();
        let mut found = Vec::new();
        for index in 0..self.header.geometry.table_slots {
            let item = self.read_entry(index, |e| {
                if e.state != LIVE || usize::from(e.service_len) != s.len() {
                    return Ok(None);
                }
                let mut names = [0; 2 * MAX_NAME_LEN];
                let names = self.read_names(e, &mut names)?;
                if &names[..s.len()] != s {
                    return Ok(None);
                }
                let var = self.name_string(&names[s.len()..], e)?;
                let mut bytes = Vec::new();
                self.read_value(e, &mut bytes)?;
                Ok(Some((
                    var,
                    Value {
                        bytes,
                        version: e.version,
                        timestamp_ns: e.timestamp_ns,
                    },
                )))
            })?;
            found.extend(item);
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }

    /// The changes after `revision`, or `Lagged` if the ring has dropped some of them.
    pub fn changes_since(&self, revision: u64) -> Result<Changes> {
        let head = self.revision()?;
        if revision > head {
            return Err(Error::BadRequest(format!(
                "revision {revision} is ahead of tenant {} (at {head})",
                self.header.tenant
            )));
        }
        if revision == head {
            // Nothing new; and `revision + 1` below stays in range even at `u64::MAX`, which a
            // hostile server can publish.
            return Ok(Changes::Events(Vec::new()));
        }
        let ring = u64::from(self.header.geometry.ring_slots);
        let oldest = head.saturating_sub(ring) + 1;
        if revision + 1 < oldest {
            return Ok(Changes::Lagged {
                missed_from: revision + 1,
                resumed_at: head,
            });
        }
        let mut events: Vec<(ChangeEvent, u64)> = Vec::new();
        for r in revision + 1..=head {
            match self.read_change(r)? {
                Some(event) => events.push(event),
                None => {
                    // Overwritten while we read: keep only whole writes.
                    while events.last().is_some_and(|(e, end)| *end > e.revision) {
                        let incomplete = events.last().map_or(0, |(_, end)| *end);
                        events.retain(|(_, end)| *end != incomplete);
                    }
                    if events.is_empty() {
                        return Ok(Changes::Lagged {
                            missed_from: revision + 1,
                            resumed_at: self.revision()?,
                        });
                    }
                    break;
                }
            }
        }
        Ok(Changes::Events(
            events.into_iter().map(|(e, _)| e).collect(),
        ))
    }

    /// Reads the change of revision `r` and names it; `None` if its slot was overwritten.
    fn read_change(&self, r: u64) -> Result<Option<(ChangeEvent, u64)>> {
        let at = self.header.ring_slot(r);
        let Some(slot) = self.read_ring(at, r)? else {
            return Ok(None);
        };
        let kind = match slot.kind {
            KIND_SET => ChangeKind::Set,
            KIND_DELETE => ChangeKind::Delete,
            k => {
                return Err(corrupt(
                    at,
                    format!("ring slot of revision {r} has kind {k}"),
                ));
            }
        };
        if slot.entry >= self.header.geometry.table_slots || slot.batch_end < r {
            return Err(corrupt(
                at,
                format!("ring slot of revision {r} is inconsistent"),
            ));
        }
        let names = self.read_entry(slot.entry, |e| {
            if e.hash != slot.hash || !(e.state == LIVE || e.state == DELETED) {
                return Ok(None);
            }
            let mut buf = [0; 2 * MAX_NAME_LEN];
            let names = self.read_names(e, &mut buf)?;
            let split = usize::from(e.service_len);
            let service = self.name_string(&names[..split], e)?;
            let variable = self.name_string(&names[split..], e)?;
            Ok(Some((service, variable)))
        })?;
        // The entry keeps its names while the change is in the ring: if the slot still holds
        // `r` now, the names read belong to it. Acquire: orders this load after the entry
        // read above.
        if self.map.load_u64(at + R_REVISION, Ordering::Acquire)? != r {
            return Ok(None);
        }
        let Some((service, variable)) = names else {
            return Err(corrupt(
                self.header.entry(slot.entry),
                format!("entry {} does not hold the key of revision {r}", slot.entry),
            ));
        };
        let event = ChangeEvent {
            revision: r,
            kind,
            service,
            variable,
            timestamp_ns: slot.timestamp_ns,
        };
        Ok(Some((event, slot.batch_end)))
    }

    /// One consistent copy of the ring slot at `at`, if it still holds revision `r`.
    fn read_ring(&self, at: usize, r: u64) -> Result<Option<RingSlot>> {
        // Acquire: pairs with the writer's Release store of the slot's revision.
        let before = self.map.load_u64(at + R_REVISION, Ordering::Acquire)?;
        if before != r {
            // 0: the slot was never written, because the segment was restored at a later
            // revision (`TenantWriter::set_revision`) and the ring never held `r`.
            if before == RING_WRITING || before > r || before == 0 {
                return Ok(None);
            }
            return Err(corrupt(
                at,
                format!("ring slot holds {before}, expected {r}"),
            ));
        }
        let mut body = [0; R_BODY_LEN];
        self.map.read_atomic(at + R_BODY, &mut body)?;
        // Pairs with the writer's Release fence after it marks the slot `RING_WRITING`.
        fence(Ordering::Acquire);
        if self.map.load_u64(at + R_REVISION, Ordering::Relaxed)? != r {
            return Ok(None);
        }
        Ok(Some(RingSlot::decode(&body)))
    }

    /// Runs `f` on a consistent copy of entry `index`: `f`'s own copies out of the segment are
    /// covered by the same sequence check, and `f` is run again if the writer interfered.
    /// `f`'s errors count only for a copy the sequence confirms (a torn copy may hold garbage
    /// offsets).
    fn read_entry<T>(&self, index: u32, mut f: impl FnMut(&Entry) -> Result<T>) -> Result<T> {
        let at = self.header.entry(index);
        let mut backoff = Backoff(0);
        loop {
            // Acquire: pairs with the Release store that ends a write of the entry.
            let before = self.map.load_u64(at + E_SEQ, Ordering::Acquire)?;
            if before.is_multiple_of(2) {
                let mut words = [0; E_BODY_LEN / 8];
                for (i, w) in words.iter_mut().enumerate() {
                    *w = self.map.load_u64(at + E_BODY + 8 * i, Ordering::Relaxed)?;
                }
                let result = f(&Entry::from_words(&words));
                // Pairs with the writer's Release fence after it makes the sequence odd: if any
                // copy above saw a store of that write, the load below sees the odd sequence.
                fence(Ordering::Acquire);
                if self.map.load_u64(at + E_SEQ, Ordering::Relaxed)? == before {
                    return result;
                }
            }
            backoff.snooze()?;
        }
    }

    /// Copies an entry's names (service then variable) into `buf`.
    fn read_names<'b>(&self, e: &Entry, buf: &'b mut [u8; 2 * MAX_NAME_LEN]) -> Result<&'b [u8]> {
        let n = usize::from(e.service_len) + usize::from(e.var_len);
        let names = buf
            .get_mut(..n)
            .ok_or_else(|| corrupt(0, "names longer than allowed"))?;
        let at = self.header.check_value_range(e.names_offset, n as u64)?;
        self.map.read_atomic(at, names)?;
        Ok(names)
    }

    /// Whether an entry's names are `service` and `var` (whose lengths it was seen to have),
    /// compared a chunk at a time without copying them whole.
    fn names_are(&self, e: &Entry, service: &[u8], var: &[u8]) -> Result<bool> {
        let n = service.len() + var.len();
        let mut at = self.header.check_value_range(e.names_offset, n as u64)?;
        let mut chunk = [0; 64];
        for part in [service, var] {
            for expected in part.chunks(chunk.len()) {
                let got = &mut chunk[..expected.len()];
                self.map.read_atomic(at, got)?;
                // Inline: names are short, and a `memcmp` call cost more than the compare.
                if got.iter().zip(expected).fold(0, |d, (a, b)| d | (a ^ b)) != 0 {
                    return Ok(false);
                }
                at += expected.len();
            }
        }
        Ok(true)
    }

    /// Copies an entry's value into `out`.
    fn read_value(&self, e: &Entry, out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        if e.value_len == 0 {
            return Ok(());
        }
        if e.value_len > self.header.max_value {
            return Err(corrupt(0, format!("a value of {} bytes", e.value_len)));
        }
        let at = self
            .header
            .check_value_range(e.value_offset, u64::from(e.value_len))?;
        out.resize(e.value_len as usize, 0);
        self.map.read_atomic(at, out)?;
        Ok(())
    }

    fn name_string(&self, name: &[u8], e: &Entry) -> Result<String> {
        check_name(name)
            .ok()
            .and_then(|()| std::str::from_utf8(name).ok())
            .map(str::to_owned)
            .ok_or_else(|| corrupt(e.names_offset as usize, "an invalid name"))
    }
}
