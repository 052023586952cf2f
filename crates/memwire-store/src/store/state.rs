//! What the store's write lock guards: the log, the keys, every tenant, and the names of
//! deleted tenants. Every change of a tenant goes through [`State::write`]: check, log,
//! apply; tenants come and go through [`State::add_tenant`] and [`State::remove_tenant`].
//! Start-up goes through [`State::recover`]: the snapshot, then the log's records after it.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use tracing::warn;

use super::op::{Bytes, Op};
use super::snapshot::{self, Snapshot, TenantState, VariableState};
use super::tenant::Tenant;
use crate::auth::KeyStore;
use crate::error::{Error, Result};
use crate::log::{Log, Recovery};
use crate::segment::TenantConfig;

/// See the [module docs](self).
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) log: Log,
    pub(crate) keys: KeyStore,
    pub(crate) tenants: BTreeMap<String, Tenant>,
    /// Deleted tenants not created again since → the version of their delete, where a
    /// tenant created again under the name starts (so its versions never go back).
    deleted: BTreeMap<String, u64>,
    /// Records appended since the last snapshot.
    since_snapshot: u64,
    /// An automatic snapshot writing its file on a thread of its own, if one is.
    writing: Option<JoinHandle<Result<()>>>,
    /// The record being encoded; kept for its allocation.
    buf: Vec<u8>,
}

impl State {
    /// Rebuilds the tenants from what the log recovered: the snapshot's state, then each
    /// record after it. A record that does not decode or apply is [`Error::Corrupt`].
    pub(crate) fn recover(log: Log, keys: KeyStore, recovery: &Recovery) -> Result<Self> {
        let mut state = Self {
            log,
            keys,
            tenants: BTreeMap::new(),
            deleted: BTreeMap::new(),
            since_snapshot: 0,
            writing: None,
            buf: Vec::new(),
        };
        let dir = state.log.dir().to_owned();
        if let Some((lsn, bytes)) = &recovery.snapshot {
            let saved = snapshot::decode(bytes)
                .map_err(|what| corrupt(&dir, format!("snapshot of lsn {lsn}: {what}")))?;
            for t in &saved.tenants {
                state
                    .restore_tenant(t)
                    .map_err(|e| corrupt(&dir, format!("snapshot of lsn {lsn}: {e}")))?;
            }
            for &(name, revision) in &saved.deleted {
                if state.tenants.contains_key(name) {
                    return Err(corrupt(
                        &dir,
                        format!("snapshot of lsn {lsn}: tenant {name:?} is live and deleted"),
                    ));
                }
                state.deleted.insert(name.to_owned(), revision);
            }
        }
        for (lsn, payload) in &recovery.records {
            let op = Op::decode(payload)
                .map_err(|what| corrupt(&dir, format!("record {lsn}: {what}")))?;
            state
                .replay(&op)
                .map_err(|e| corrupt(&dir, format!("record {lsn} does not apply: {e}")))?;
            state.since_snapshot += 1;
        }
        Ok(state)
    }

    fn restore_tenant(&mut self, t: &TenantState<'_>) -> Result<()> {
        let config = TenantConfig::new(t.quota_bytes, t.max_variables)
            .max_value_len(t.max_value_len)
            .ring_slots(t.ring_slots);
        let mut tenant = Tenant::create(t.tenant, config, 0)?;
        for v in &t.variables {
            tenant
                .writer
                .restore(v.service, v.variable, v.value.0, v.version, v.timestamp_ns)?;
        }
        tenant.writer.set_revision(t.revision)?;
        tenant.feed.reset(t.revision);
        if self.tenants.insert(t.tenant.to_owned(), tenant).is_some() {
            return Err(Error::BadRequest(format!(
                "tenant {} appears twice",
                t.tenant
            )));
        }
        Ok(())
    }

    /// Applies a logged op during recovery. The op was checked against the same logical
    /// state when it was logged; only the segment's layout may differ (a restored or moved
    /// segment packs its blocks differently), so an op refused for want of room is applied
    /// again on a compacted copy of the tenant, where the room that sufficed before exists.
    fn replay(&mut self, op: &Op<'_>) -> Result<()> {
        match *op {
            Op::CreateTenant { .. } => return self.create_tenant(op),
            Op::DeleteTenant { tenant, revision } => {
                return self.forget_tenant(tenant, revision).map(drop);
            }
            _ => {}
        }
        let tenant = self.tenant_mut(op.tenant())?;
        match tenant.apply(op) {
            Err(Error::QuotaExceeded(_)) => {
                tenant.writer = tenant.rebuilt(tenant.writer.config().epoch)?;
                tenant.apply(op).map(drop)
            }
            other => other.map(drop),
        }
    }

    /// Creates the tenant an [`Op::CreateTenant`] describes (already logged, or being
    /// replayed).
    fn create_tenant(&mut self, op: &Op<'_>) -> Result<()> {
        let &Op::CreateTenant {
            tenant,
            quota_bytes,
            max_variables,
            max_value_len,
            ring_slots,
        } = op
        else {
            return Err(Error::BadRequest("not a tenant creation".to_owned()));
        };
        if self.tenants.contains_key(tenant) {
            return Err(Error::BadRequest(format!(
                "tenant {tenant:?} already exists"
            )));
        }
        let config = TenantConfig::new(quota_bytes, max_variables)
            .max_value_len(max_value_len)
            .ring_slots(ring_slots);
        let created = Tenant::create(tenant, config, self.start_of(tenant))?;
        self.insert_tenant(tenant, created);
        Ok(())
    }

    /// Creates a tenant: its segment is made first (which checks the configuration), then
    /// the creation is logged, then the tenant exists. A name deleted before starts at the
    /// version of its delete.
    pub(crate) fn add_tenant(&mut self, name: &str, config: TenantConfig) -> Result<&Tenant> {
        if self.tenants.contains_key(name) {
            return Err(Error::BadRequest(format!("tenant {name:?} already exists")));
        }
        let tenant = Tenant::create(name, config, self.start_of(name))?;
        self.append(&Op::CreateTenant {
            tenant: name,
            quota_bytes: config.quota_bytes,
            max_variables: config.max_variables,
            max_value_len: config.max_value_len,
            ring_slots: config.ring_slots,
        })?;
        Ok(self.insert_tenant(name, tenant))
    }

    /// The revision a tenant created now under `name` starts at.
    fn start_of(&self, name: &str) -> u64 {
        self.deleted.get(name).copied().unwrap_or(0)
    }

    fn insert_tenant(&mut self, name: &str, tenant: Tenant) -> &Tenant {
        self.deleted.remove(name);
        self.tenants.entry(name.to_owned()).or_insert(tenant)
    }

    /// Deletes the tenant `name` ([`Error::NotFound`] if there is none): the delete is
    /// logged, with its version (the tenant's revision + 1), then the tenant is taken out and
    /// the name remembered with that version. Returns the tenant, whose segment and feed the
    /// caller retires, and the version.
    pub(crate) fn remove_tenant(&mut self, name: &str) -> Result<(Tenant, u64)> {
        let revision = self
            .tenants
            .get(name)
            .ok_or_else(|| Error::NotFound(format!("tenant {name:?}")))?
            .writer
            .revision()
            .checked_add(1)
            .ok_or_else(|| Error::BadRequest(format!("tenant {name:?} has no version left")))?;
        self.append(&Op::DeleteTenant {
            tenant: name,
            revision,
        })?;
        Ok((self.forget_tenant(name, revision)?, revision))
    }

    /// Takes the tenant `name` out, remembering its name with `revision`, the version of its
    /// delete (logged, or being replayed), which must be past the tenant's revision.
    fn forget_tenant(&mut self, name: &str, revision: u64) -> Result<Tenant> {
        let Entry::Occupied(entry) = self.tenants.entry(name.to_owned()) else {
            return Err(Error::NotFound(format!("tenant {name:?}")));
        };
        let at = entry.get().writer.revision();
        if revision <= at {
            return Err(Error::BadRequest(format!(
                "tenant {name:?} deleted at version {revision}, not past its revision {at}"
            )));
        }
        self.deleted.insert(name.to_owned(), revision);
        Ok(entry.remove())
    }

    /// The tenant `name`; [`Error::NotFound`] if there is none.
    pub(crate) fn tenant_mut(&mut self, name: &str) -> Result<&mut Tenant> {
        self.tenants
            .get_mut(name)
            .ok_or_else(|| Error::NotFound(format!("tenant {name:?}")))
    }

    /// The write path: checks `op` against the tenant (so a logged op always applies), logs
    /// it (`write(2)` done), applies it. Returns the tenant's revision after it.
    pub(crate) fn write(&mut self, op: &Op<'_>) -> Result<u64> {
        self.tenant_mut(op.tenant())?.check(op)?;
        self.append(op)?;
        // Checked above on this state: this can fail only if the segment's memory does
        // (a server bug); the record is logged and applies on the next start.
        self.tenant_mut(op.tenant())?.apply(op)
    }

    fn append(&mut self, op: &Op<'_>) -> Result<()> {
        op.encode_into(&mut self.buf)?;
        self.log.append(&self.buf)?;
        self.since_snapshot += 1;
        Ok(())
    }

    /// Starts a snapshot if `every` records were appended since the last and none is being
    /// written: the state is encoded here, under the write lock, and the new log file started;
    /// the snapshot file is written and made durable on a thread of its own, so writers do
    /// not wait for the disk. A failure is reported in the server's log; the log keeps every
    /// record, and the next snapshot is tried `every` records later.
    pub(crate) fn maybe_snapshot(&mut self, every: u64) {
        if self.since_snapshot < every.max(1) {
            return;
        }
        if self.writing.as_ref().is_some_and(|w| !w.is_finished()) {
            return;
        }
        self.finish_writing();
        let started = self.encode().and_then(|bytes| {
            let pending = self.log.begin_snapshot()?;
            std::thread::Builder::new()
                .name("memwire-store-snapshot".to_owned())
                .spawn(move || pending.write(&bytes))
                .map_err(|e| Error::io("spawn the snapshot thread", e))
        });
        self.since_snapshot = 0;
        match started {
            Ok(thread) => self.writing = Some(thread),
            Err(e) => warn!("automatic snapshot failed (the log keeps every write): {e}"),
        }
    }

    /// Waits for the automatic snapshot being written, if any, and reports its failure.
    fn finish_writing(&mut self) {
        match self.writing.take().map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => {}
            Some(Ok(Err(e))) => warn!("automatic snapshot failed (the log keeps every write): {e}"),
            Some(Err(_)) => warn!("the snapshot thread panicked (the log keeps every write)"),
        }
    }

    /// Saves the state of every tenant as the log's snapshot, which drops the older records;
    /// waits for an automatic snapshot being written first.
    pub(crate) fn snapshot(&mut self) -> Result<()> {
        self.finish_writing();
        let bytes = self.encode()?;
        self.log.snapshot(&bytes)?;
        self.since_snapshot = 0;
        Ok(())
    }

    /// Every tenant's state and the deleted names, encoded as a snapshot.
    fn encode(&self) -> Result<Vec<u8>> {
        let mut owned = Vec::with_capacity(self.tenants.len());
        for (name, tenant) in &self.tenants {
            let mut vars = Vec::new();
            for v in tenant.writer.variables() {
                let value = tenant
                    .writer
                    .get(&v.service, &v.variable)?
                    .map(|value| value.bytes)
                    .unwrap_or_default();
                vars.push((v, value));
            }
            owned.push((name, tenant.writer.config(), tenant.writer.revision(), vars));
        }
        let tenants: Vec<TenantState<'_>> = owned
            .iter()
            .map(|(name, config, revision, vars)| TenantState {
                tenant: name,
                quota_bytes: config.quota_bytes,
                max_variables: config.max_variables,
                max_value_len: config.max_value_len,
                ring_slots: config.ring_slots,
                revision: *revision,
                variables: vars
                    .iter()
                    .map(|(v, value)| VariableState {
                        service: &v.service,
                        variable: &v.variable,
                        value: Bytes(value),
                        version: v.version,
                        timestamp_ns: v.timestamp_ns,
                    })
                    .collect(),
            })
            .collect();
        snapshot::encode(&Snapshot {
            tenants,
            deleted: self.deleted.iter().map(|(n, &r)| (n.as_str(), r)).collect(),
        })
    }

    /// Handles on every tenant, for the readers' map.
    pub(crate) fn handles(
        &self,
    ) -> Result<std::collections::HashMap<String, Arc<super::tenant::TenantHandle>>> {
        self.tenants
            .iter()
            .map(|(name, t)| Ok((name.clone(), t.handle()?)))
            .collect()
    }
}

fn corrupt(dir: &Path, what: String) -> Error {
    Error::Corrupt {
        path: dir.to_owned(),
        offset: 0,
        what,
    }
}
