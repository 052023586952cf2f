//! What the store's server needs of a writer beyond writing: dry runs (so a write is refused
//! before it is logged, never after), reading its own segment back (for snapshots, listings
//! and a watcher's resynchronisation), and restoring a segment with the versions and revision
//! it had (after a restart, or when the tenant moves to a fresh segment).
//!
//! A restored segment's change ring is empty: its slots hold no revision, and a reader asking
//! for changes the ring never held gets [`Changes::Lagged`](crate::segment::Changes::Lagged),
//! as if they had been overwritten.

use std::sync::atomic::Ordering;

use super::{TenantConfig, TenantWriter};
use crate::error::{Error, Result};
use crate::segment::layout::{H_REVISION, LIVE, MAX_REVISION};
use crate::segment::reader::Value;

/// One live variable as the writer knows it (from its own memory: no segment read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariableInfo {
    /// The service.
    pub service: String,
    /// The variable.
    pub variable: String,
    /// The revision of the write that set it.
    pub version: u64,
    /// When it was written (unix ns).
    pub timestamp_ns: u64,
    /// Its value's length in bytes.
    pub value_len: u32,
}

impl TenantWriter {
    /// The configuration the segment was created with.
    #[must_use]
    pub fn config(&self) -> TenantConfig {
        TenantConfig {
            quota_bytes: self.header.quota_bytes,
            max_variables: self.header.max_variables,
            max_value_len: self.header.max_value,
            ring_slots: self.header.geometry.ring_slots,
            epoch: self.header.epoch,
        }
    }

    /// Whether [`TenantWriter::set`] of `service/var` to `value` would succeed now. Changes
    /// nothing a reader can see (it may forget tombstones whose delete left the ring, as any
    /// write would first).
    pub fn check_set(&mut self, service: &str, var: &str, value: &[u8]) -> Result<()> {
        self.check(service, &[(var, Some(value))])
    }

    /// Whether [`TenantWriter::delete`] of `service/var` would succeed now.
    pub fn check_delete(&mut self, service: &str, var: &str) -> Result<()> {
        self.check(service, &[(var, None)])
    }

    /// Whether [`TenantWriter::set_many`] would succeed now.
    pub fn check_set_many(&mut self, service: &str, vars: &[(&str, &[u8])]) -> Result<()> {
        let ops: Vec<(&str, Option<&[u8]>)> = vars.iter().map(|&(v, b)| (v, Some(b))).collect();
        self.check(service, &ops)
    }

    /// Plans a write and gives its blocks back: the plan's checks (names, sizes, quotas,
    /// slots, free blocks) are exactly those of the write that follows, on the same state.
    fn check(&mut self, service: &str, ops: &[(&str, Option<&[u8]>)]) -> Result<()> {
        self.strip_tombstones()?;
        let changes = self.plan(service, ops, 0)?;
        self.release(&changes);
        Ok(())
    }

    /// The value of `service/var`, read back from the segment (`None`: not live).
    pub fn get(&self, service: &str, var: &str) -> Result<Option<Value>> {
        let Some(&slot) = self.index.get(&super::key(service, var)) else {
            return Ok(None);
        };
        let s = &self.slots[slot as usize];
        if s.entry.state != LIVE {
            return Ok(None);
        }
        let mut bytes = vec![0; s.entry.value_len as usize];
        if !bytes.is_empty() {
            // The writer is the only one that writes these bytes, and it holds `&self`.
            self.map.read_atomic(s.value.offset as usize, &mut bytes)?;
        }
        Ok(Some(Value {
            bytes,
            version: s.entry.version,
            timestamp_ns: s.entry.timestamp_ns,
        }))
    }

    /// Every live variable, in table order (no segment read).
    #[must_use]
    pub fn variables(&self) -> Vec<VariableInfo> {
        self.slots
            .iter()
            .zip(&self.keys)
            .filter(|(s, _)| s.entry.state == LIVE)
            .filter_map(|(s, key)| {
                // Names never hold `/` (the resource-name rule), so the first one splits.
                let (service, variable) = key.split_once('/')?;
                Some(VariableInfo {
                    service: service.to_owned(),
                    variable: variable.to_owned(),
                    version: s.entry.version,
                    timestamp_ns: s.entry.timestamp_ns,
                    value_len: s.entry.value_len,
                })
            })
            .collect()
    }

    /// Puts `service/var` back with the version and timestamp it had: for a segment being
    /// rebuilt, before its first write and before its fd is handed out. No change reaches the
    /// ring and the revision does not move; call [`TenantWriter::set_revision`] once every
    /// variable is back. Quotas and sizes are checked as for a set.
    ///
    /// [`Error::BadRequest`] after a write, or for version 0.
    pub fn restore(
        &mut self,
        service: &str,
        var: &str,
        value: &[u8],
        version: u64,
        timestamp_ns: u64,
    ) -> Result<()> {
        self.refuse_after_writes("restore a variable")?;
        if version == 0 {
            return Err(Error::BadRequest(format!(
                "restore {service}/{var}: version 0 is no version"
            )));
        }
        let mut changes = self.plan(service, &[(var, Some(value))], timestamp_ns)?;
        for c in &mut changes {
            c.entry.version = version;
        }
        if let Err(e) = self.write_entries(&changes) {
            self.release(&changes);
            return Err(e);
        }
        for c in &changes {
            self.commit(service, c);
        }
        self.restored_max = self.restored_max.max(version);
        Ok(())
    }

    /// Starts the revision counter at `revision` (what the tenant had): the next write gets
    /// `revision + 1`. Readers see it at once; the ring holds nothing up to it. For a segment
    /// being rebuilt: [`Error::BadRequest`] after a write, below a restored version or the
    /// revision already set, or past 2^62 (a damaged snapshot's: later writes count on from it).
    pub fn set_revision(&mut self, revision: u64) -> Result<()> {
        self.refuse_after_writes("set the revision")?;
        if revision > MAX_REVISION {
            return Err(Error::BadRequest(format!(
                "tenant {}: revision {revision} is past the largest a segment takes \
                 ({MAX_REVISION})",
                self.header.tenant
            )));
        }
        if revision < self.restored_max || revision < self.revision {
            return Err(Error::BadRequest(format!(
                "tenant {}: revision {revision} is below a restored version ({}) or the \
                 revision set ({})",
                self.header.tenant, self.restored_max, self.revision
            )));
        }
        // Release: pairs with the Acquire load in `TenantView::revision`: the restored entries
        // are visible to a reader that sees the revision.
        self.map
            .store_u64(H_REVISION, revision, Ordering::Release)?;
        self.revision = revision;
        Ok(())
    }

    fn refuse_after_writes(&self, what: &str) -> Result<()> {
        if self.published {
            return Err(Error::BadRequest(format!(
                "tenant {}: cannot {what} after a write",
                self.header.tenant
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::super::TenantWriter;
    use crate::Error;
    use crate::segment::layout::{H_REVISION, MAX_REVISION};
    use crate::segment::{Changes, TenantConfig, TenantView};

    fn view(w: &TenantWriter) -> TenantView {
        TenantView::open(w.try_clone_fd().expect("clone fd")).expect("open view")
    }

    #[test]
    fn restored_variables_keep_versions_and_the_revision_goes_on() {
        let mut w = TenantWriter::create("t", 1 << 16, 16).expect("create");
        w.restore("svc", "a", b"one", 7, 70).expect("restore a");
        w.restore("svc", "b", b"two", 3, 30).expect("restore b");
        assert!(w.set_revision(6).is_err(), "below a restored version");
        w.set_revision(9).expect("set revision");
        let v = view(&w);
        assert_eq!(v.revision().expect("revision"), 9);
        let a = v.get("svc", "a").expect("get").expect("a");
        assert_eq!(
            (a.bytes.as_slice(), a.version, a.timestamp_ns),
            (&b"one"[..], 7, 70)
        );
        assert_eq!(w.get("svc", "b").expect("get").map(|b| b.version), Some(3));
        assert_eq!(w.len(), 2);
        // The ring holds nothing up to 9: a watcher from before it has lagged.
        assert!(matches!(
            v.changes_since(5).expect("changes"),
            Changes::Lagged {
                missed_from: 6,
                resumed_at: 9
            }
        ));
        assert_eq!(w.set("svc", "a", b"three", 100).expect("set"), 10);
        match v.changes_since(9).expect("changes") {
            Changes::Events(events) => {
                assert_eq!(events.len(), 1);
                assert_eq!(events[0].revision, 10);
            }
            other => panic!("expected events, got {other:?}"),
        }
        assert!(matches!(
            v.changes_since(8).expect("changes"),
            Changes::Lagged { .. }
        ));
        assert!(w.restore("svc", "c", b"x", 11, 0).is_err(), "after a write");
        assert!(w.set_revision(20).is_err(), "after a write");
    }

    #[test]
    fn checks_refuse_what_the_write_would_and_change_nothing() {
        let mut w = TenantWriter::create("t", 4096, 2).expect("create");
        w.check_set("s", "a", b"1").expect("check");
        assert_eq!(w.revision(), 0);
        assert_eq!(w.used_bytes(), 0);
        w.set("s", "a", b"1", 1).expect("set");
        w.set("s", "b", b"2", 1).expect("set");
        let used = w.used_bytes();
        assert!(matches!(
            w.check_set("s", "c", b"3"),
            Err(crate::Error::QuotaExceeded(_))
        ));
        assert!(matches!(
            w.check_delete("s", "zz"),
            Err(crate::Error::NotFound(_))
        ));
        assert!(matches!(
            w.check_set_many("s", &[("a", b"x"), ("a", b"y")]),
            Err(crate::Error::BadRequest(_))
        ));
        w.check_set_many("s", &[("a", b"xx"), ("b", b"yy")])
            .expect("check");
        w.check_delete("s", "a").expect("check");
        assert_eq!(w.used_bytes(), used);
        assert_eq!(w.revision(), 2);
        let mut names: Vec<_> = w.variables().into_iter().map(|v| v.variable).collect();
        names.sort();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn a_quota_or_revision_writes_cannot_count_on_from_is_refused() {
        let huge = TenantConfig::new(u64::MAX, 16).max_value_len(16);
        assert!(matches!(
            TenantWriter::create_with("t", huge),
            Err(Error::BadRequest(_))
        ));
        let mut w = TenantWriter::create("t", 1 << 16, 16).expect("create");
        for past in [u64::MAX, MAX_REVISION + 1] {
            assert!(matches!(w.set_revision(past), Err(Error::BadRequest(_))));
        }
        w.set_revision(MAX_REVISION).expect("set revision");
        assert_eq!(w.set("s", "v", b"x", 1).expect("set"), MAX_REVISION + 1);
    }

    #[test]
    fn a_reader_at_the_head_of_a_segment_at_the_last_revision_sees_nothing_new() {
        let w = TenantWriter::create("t", 1 << 16, 16).expect("create");
        // A hostile server can publish any revision: the last one a u64 holds.
        w.map
            .store_u64(H_REVISION, u64::MAX, Ordering::Release)
            .expect("store");
        let v = view(&w);
        assert_eq!(
            v.changes_since(u64::MAX).expect("changes"),
            Changes::Events(Vec::new())
        );
    }

    #[test]
    fn config_round_trips_for_a_fresh_segment() {
        let w = TenantWriter::create("t", 1 << 20, 100).expect("create");
        let c = w.config();
        let moved = TenantWriter::create_with("t", c.epoch(c.epoch + 1)).expect("create");
        assert_eq!(moved.config().epoch, 1);
        assert_eq!(moved.config().quota_bytes, c.quota_bytes);
        assert_eq!(moved.config().ring_slots, c.ring_slots);
    }
}
