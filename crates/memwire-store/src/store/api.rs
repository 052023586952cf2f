//! [`Store`]: the requests, each checked against the caller's key, and start-up.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use memwire_shm::Name;

use super::op::{Bytes, Op};
use super::state::State;
use super::tenant::TenantHandle;
use super::wake::Wakers;
use super::watch::Watcher;
use super::{Quota, Session, Startup, StoreConfig, Stored, TenantStats, Written, ms};
use crate::auth::{Action, KeyRecord, KeyStore, Role, ServicePattern, authorize, may_map_tenant};
use crate::error::{Error, Result};
use crate::log::{Log, LogOptions};
use crate::protocol::{ListEntry, Scope, VarPath};
use crate::segment::TenantConfig;

/// The log's directory inside the data directory.
const LOG_DIR: &str = "log";

/// What the store's handles share; watchers keep it alive.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: StoreConfig,
    /// The write lock: the single writer is whichever caller holds it.
    state: Mutex<State>,
    /// Each tenant's current segment view and feed, for reads without the write lock.
    /// Changed only under the write lock.
    handles: RwLock<HashMap<String, Arc<TenantHandle>>>,
    /// Ids of revoked keys: a session of one fails at once.
    revoked: RwLock<HashSet<String>>,
    /// The eventfds of local watchers, rung after each write of their tenant.
    wakers: Wakers,
}

/// The store, in process. Share it as `Arc<Store>`; every method takes `&self`. See the
/// [module docs](super).
///
/// ```
/// use memwire_store::store::{Store, StoreConfig};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// let (store, startup) = Store::open(StoreConfig::new(tmp.path()))?;
/// let admin = store.authenticate(&startup.admin_key.expect("first start"))?;
/// let path = "acme/billing/rate".parse()?;
/// let written = store.set(&admin, &path, b"0.19", None)?;
/// assert_eq!(store.get(&admin, &path)?.map(|s| s.version), Some(written.version));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Store {
    shared: Arc<Shared>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A read lock whose data stays whole under a panic elsewhere (each change is one insert).
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// The write lock. A panic while it was held may have left a write half applied, so
    /// every later request is refused.
    pub(crate) fn state(&self) -> Result<MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| {
            Error::io(
                "take the store's write lock",
                std::io::Error::other("a write panicked earlier; restart the server"),
            )
        })
    }

    /// The session's key, if it was not revoked since.
    pub(crate) fn check<'s>(&self, session: &'s Session) -> Result<&'s KeyRecord> {
        if read(&self.revoked).contains(session.key_id()) {
            return Err(Error::Unauthenticated(
                "unknown or revoked API key".to_owned(),
            ));
        }
        Ok(session.record())
    }

    /// The handle of `tenant`; [`Error::NotFound`] if there is none.
    pub(crate) fn handle(&self, tenant: &str) -> Result<Arc<TenantHandle>> {
        read(&self.handles)
            .get(tenant)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("tenant {tenant:?}")))
    }
}

impl Store {
    /// Opens the store in `config.data_dir`: takes the log's lock (a second store of the
    /// directory is refused), makes the admin key on the first start, loads the keys, and
    /// rebuilds every tenant from the snapshot and the records after it.
    pub fn open(config: StoreConfig) -> Result<(Self, Startup)> {
        let max_payload = u32::try_from(config.max_value_bytes)
            .ok()
            .and_then(|v| v.checked_mul(64))
            .map_or(LogOptions::PAYLOAD_LIMIT, |p| {
                p.clamp(64 << 20, LogOptions::PAYLOAD_LIMIT)
            });
        let (log, recovery) = Log::open_with(
            &config.data_dir.join(LOG_DIR),
            LogOptions::new(config.fsync).with_max_payload(max_payload),
        )?;
        let mut keys = KeyStore::open(&config.data_dir)?;
        let admin_key = keys.ensure_admin_key()?;
        let revoked = keys
            .list()
            .into_iter()
            .filter(|r| r.revoked)
            .map(|r| r.id)
            .collect();
        let state = State::recover(log, keys, &recovery)?;
        let startup = Startup {
            admin_key,
            torn_tail: recovery.torn_tail.clone(),
            bad_snapshots: recovery.bad_snapshots.clone(),
            records_replayed: recovery.records.len(),
            tenants: state.tenants.len(),
            variables: state
                .tenants
                .values()
                .map(|t| t.writer.len() as usize)
                .sum(),
            revisions: state
                .tenants
                .iter()
                .map(|(n, t)| (n.clone(), t.writer.revision()))
                .collect(),
        };
        let handles = state.handles()?;
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(state),
            handles: RwLock::new(handles),
            revoked: RwLock::new(revoked),
            wakers: Wakers::default(),
        });
        Ok((Self { shared }, startup))
    }

    /// The session of `key`; [`Error::Unauthenticated`] for an unknown, revoked or
    /// malformed key.
    pub fn authenticate(&self, key: &str) -> Result<Session> {
        let state = self.shared.state()?;
        let record = state.keys.authenticate(key)?.clone();
        Ok(Session {
            record: Arc::new(record),
        })
    }

    /// The variable at `path`, `None` if it does not exist; [`Error::NotFound`] if the
    /// tenant does not.
    pub fn get(&self, s: &Session, path: &VarPath) -> Result<Option<Stored>> {
        let key = self.shared.check(s)?;
        authorize(
            key,
            Action::Read,
            path.tenant.as_str(),
            Some(path.service.as_str()),
        )?;
        let handle = self.shared.handle(path.tenant.as_str())?;
        let value = handle
            .view
            .get(path.service.as_str(), path.variable.as_str())?;
        Ok(value.map(|v| Stored {
            value: v.bytes,
            version: v.version,
            timestamp_ms: ms(v.timestamp_ns),
        }))
    }

    /// Sets the variable at `path`. With `expected_version`, only if its version is that
    /// (`Some(0)`: only if it does not exist), else [`Error::Conflict`]. A write key needs
    /// the tenant to exist ([`Error::NotFound`]); an admin key creates it with the default
    /// quota.
    pub fn set(
        &self,
        s: &Session,
        path: &VarPath,
        value: &[u8],
        expected_version: Option<u64>,
    ) -> Result<Written> {
        let (tenant, service, variable) = (
            path.tenant.as_str(),
            path.service.as_str(),
            path.variable.as_str(),
        );
        let key = self.shared.check(s)?;
        authorize(key, Action::Write, tenant, Some(service))?;
        self.check_size(path, value)?;
        let mut state = self.shared.state()?;
        self.ensure_tenant(&mut state, key, tenant)?;
        if let Some(expected) = expected_version {
            let found = state
                .tenant_mut(tenant)?
                .writer
                .version(service, variable)
                .unwrap_or(0);
            if found != expected {
                return Err(Error::Conflict { expected, found });
            }
        }
        let timestamp_ns = now_ns();
        self.write(
            &mut state,
            &Op::Set {
                tenant,
                service,
                variable,
                value: Bytes(value),
                timestamp_ns,
            },
        )
    }

    /// Deletes the variable at `path` ([`Error::NotFound`] if it does not exist), with
    /// `expected_version` as in [`Store::set`].
    pub fn delete(
        &self,
        s: &Session,
        path: &VarPath,
        expected_version: Option<u64>,
    ) -> Result<Written> {
        let (tenant, service, variable) = (
            path.tenant.as_str(),
            path.service.as_str(),
            path.variable.as_str(),
        );
        let key = self.shared.check(s)?;
        authorize(key, Action::Write, tenant, Some(service))?;
        let mut state = self.shared.state()?;
        let found = state
            .tenant_mut(tenant)?
            .writer
            .version(service, variable)
            .unwrap_or(0);
        if let Some(expected) = expected_version
            && found != expected
        {
            return Err(Error::Conflict { expected, found });
        }
        let timestamp_ns = now_ns();
        self.write(
            &mut state,
            &Op::Delete {
                tenant,
                service,
                variable,
                timestamp_ns,
            },
        )
    }

    /// Sets several variables of one service at once: readers and watchers see all of them
    /// or none, and a refused write changes none.
    pub fn set_many(
        &self,
        s: &Session,
        tenant: &str,
        service: &str,
        values: &[(&str, &[u8])],
    ) -> Result<Written> {
        let key = self.shared.check(s)?;
        authorize(key, Action::Write, tenant, Some(service))?;
        for &(variable, value) in values {
            if value.len() > self.shared.config.max_value_bytes {
                return Err(self.too_large(&format!("{tenant}/{service}/{variable}"), value));
            }
        }
        let mut state = self.shared.state()?;
        self.ensure_tenant(&mut state, key, tenant)?;
        let timestamp_ns = now_ns();
        self.write(
            &mut state,
            &Op::SetMany {
                tenant,
                service,
                values: values.iter().map(|&(v, b)| (v, Bytes(b))).collect(),
                timestamp_ns,
            },
        )
    }

    /// Tenants (`tenant` `None`), the services of a tenant, or the variables of a service,
    /// sorted by name, as far as the key may see them.
    pub fn list(
        &self,
        s: &Session,
        tenant: Option<&str>,
        service: Option<&str>,
    ) -> Result<Vec<ListEntry>> {
        let key = self.shared.check(s)?;
        let state = self.shared.state()?;
        let entry = |name: &str, version, count: Option<u64>, len: Option<u64>| {
            Ok(ListEntry {
                name: Name::new(name)?,
                version,
                count,
                len,
            })
        };
        match (tenant, service) {
            (None, None) => state
                .tenants
                .iter()
                .filter(|(name, _)| key.tenant.as_deref().is_none_or(|own| own == *name))
                .map(|(name, t)| {
                    let services: HashSet<String> = t
                        .writer
                        .variables()
                        .into_iter()
                        .map(|v| v.service)
                        .collect();
                    entry(name, t.writer.revision(), Some(services.len() as u64), None)
                })
                .collect(),
            (None, Some(_)) => Err(Error::BadRequest(
                "listing a service needs its tenant".to_owned(),
            )),
            (Some(tenant), None) => {
                if key.tenant.as_deref().is_some_and(|own| own != tenant) {
                    authorize(key, Action::Read, tenant, None)?;
                }
                let t = state
                    .tenants
                    .get(tenant)
                    .ok_or_else(|| Error::NotFound(format!("tenant {tenant:?}")))?;
                let mut services: BTreeMap<String, (u64, u64)> = BTreeMap::new();
                for v in t.writer.variables() {
                    let e = services.entry(v.service).or_default();
                    e.0 = e.0.max(v.version);
                    e.1 += 1;
                }
                services
                    .iter()
                    .filter(|(name, _)| authorize(key, Action::Read, tenant, Some(name)).is_ok())
                    .map(|(name, &(version, count))| entry(name, version, Some(count), None))
                    .collect()
            }
            (Some(tenant), Some(service)) => {
                authorize(key, Action::Read, tenant, Some(service))?;
                let t = state
                    .tenants
                    .get(tenant)
                    .ok_or_else(|| Error::NotFound(format!("tenant {tenant:?}")))?;
                let mut vars: Vec<_> = t
                    .writer
                    .variables()
                    .into_iter()
                    .filter(|v| v.service == service)
                    .collect();
                vars.sort_by(|a, b| a.variable.cmp(&b.variable));
                vars.iter()
                    .map(|v| entry(&v.variable, v.version, None, Some(u64::from(v.value_len))))
                    .collect()
            }
        }
    }

    /// A new read-only fd of `tenant`'s segment (sealed: no writable mapping, no `write(2)`)
    /// and its epoch. Only for a key that may map the whole tenant ([`may_map_tenant`]).
    pub fn tenant_fd(&self, s: &Session, tenant: &str) -> Result<(OwnedFd, u64)> {
        let key = self.shared.check(s)?;
        authorize(key, Action::Read, tenant, None)?;
        if !may_map_tenant(key, tenant) {
            return Err(Error::PermissionDenied(format!(
                "key {} may not map tenant {tenant:?}",
                key.id
            )));
        }
        let mut state = self.shared.state()?;
        let writer = &state.tenant_mut(tenant)?.writer;
        Ok((writer.try_clone_fd()?, writer.config().epoch))
    }

    /// Watches `scope` from `from_version` (every change with a version at least that; `None`:
    /// changes after now). See [`Watcher`].
    pub fn watch(&self, s: &Session, scope: &Scope, from_version: Option<u64>) -> Result<Watcher> {
        let key = self.shared.check(s)?;
        let service = match scope {
            Scope::Tenant(_) => None,
            Scope::Service(_, service) => Some(service.as_str()),
            Scope::Variable(path) => Some(path.service.as_str()),
        };
        authorize(key, Action::Read, scope.tenant().as_str(), service)?;
        let handle = self.shared.handle(scope.tenant().as_str())?;
        Ok(Watcher::new(
            Arc::clone(&self.shared),
            s.clone(),
            scope.clone(),
            Arc::clone(&handle.feed),
            from_version,
        ))
    }

    /// Creates `tenant` with `quota` (default: the configured one). Admin keys only;
    /// [`Error::BadRequest`] if it exists.
    pub fn create_tenant(&self, s: &Session, tenant: &str, quota: Option<Quota>) -> Result<()> {
        let key = self.shared.check(s)?;
        authorize(key, Action::Admin, tenant, None)?;
        let mut state = self.shared.state()?;
        self.add_tenant(
            &mut state,
            tenant,
            quota.unwrap_or(self.shared.config.default_quota),
        )
    }

    /// Makes a key. Admin keys only; a key for every tenant (`tenant` `None`) or for another
    /// tenant needs an admin key of every tenant. Returns the key (show it once) and its
    /// record.
    pub fn create_key(
        &self,
        s: &Session,
        tenant: Option<&str>,
        role: Role,
        services: Option<ServicePattern>,
        label: Option<&str>,
    ) -> Result<(String, KeyRecord)> {
        let key = self.shared.check(s)?;
        admin_over(key, tenant)?;
        let mut state = self.shared.state()?;
        state.keys.create(tenant, role, services, label)
    }

    /// Revokes the key `id`: its sessions fail from now on, and each tenant it could map
    /// moves to a fresh segment, so its old mappings see no later write. Admin keys only,
    /// over the revoked key's tenant; any other key is refused before the id is looked up, so
    /// it learns nothing of which ids exist.
    pub fn revoke_key(&self, s: &Session, id: &str) -> Result<KeyRecord> {
        let key = self.shared.check(s)?;
        admin_over(key, key.tenant.as_deref())?;
        let mut state = self.shared.state()?;
        let target = state
            .keys
            .list()
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| Error::NotFound(format!("no API key with id {id:?}")))?;
        admin_over(key, target.tenant.as_deref())?;
        let record = state.keys.revoke(id)?;
        write(&self.shared.revoked).insert(record.id.clone());
        let moved: Vec<String> = state
            .tenants
            .keys()
            .filter(|t| may_map_tenant(&target, t))
            .cloned()
            .collect();
        for name in moved {
            let tenant = state.tenant_mut(&name)?;
            let epoch = tenant.writer.config().epoch + 1;
            let fresh = tenant.rebuilt(epoch)?;
            let mut old = std::mem::replace(&mut tenant.writer, fresh);
            let handle = tenant.handle()?;
            write(&self.shared.handles).insert(name.clone(), handle);
            old.retire()?;
            self.shared.wakers.ring(&name);
        }
        Ok(record)
    }

    /// Every key's record an admin key may see: all of them for an admin of every tenant,
    /// its tenant's for a tenant admin.
    pub fn list_keys(&self, s: &Session) -> Result<Vec<KeyRecord>> {
        let key = self.shared.check(s)?;
        admin_over(key, key.tenant.as_deref())?;
        let state = self.shared.state()?;
        Ok(state
            .keys
            .list()
            .into_iter()
            .filter(|r| key.tenant.is_none() || r.tenant == key.tenant)
            .collect())
    }

    /// Every tenant's numbers, for `memwire ls`.
    pub fn stats(&self) -> Vec<TenantStats> {
        // Read only: numbers from a state a panic left behind are still worth showing.
        let state = self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state
            .tenants
            .iter()
            .map(|(name, t)| {
                let config = t.writer.config();
                TenantStats {
                    tenant: name.clone(),
                    variables: t.writer.len(),
                    used_bytes: t.writer.used_bytes(),
                    quota: Quota {
                        bytes: config.quota_bytes,
                        variables: config.max_variables,
                    },
                    revision: t.writer.revision(),
                    epoch: config.epoch,
                }
            })
            .collect()
    }

    /// How the store runs.
    #[must_use]
    pub fn config(&self) -> &StoreConfig {
        &self.shared.config
    }

    /// The eventfds rung after each write of a tenant (local watchers register theirs).
    #[must_use]
    pub fn wakers(&self) -> &Wakers {
        &self.shared.wakers
    }

    /// Saves a snapshot now (the log's older records are dropped).
    pub fn snapshot(&self) -> Result<()> {
        self.shared.state()?.snapshot()
    }

    /// Shuts down: a last snapshot, then the log is closed (a last `fdatasync`). Watchers
    /// still alive keep their data but see no more writes.
    pub fn close(self) -> Result<()> {
        let mut state = self.shared.state()?;
        state.snapshot()?;
        state.log.sync()
    }

    /// Checks, logs and applies a write of an existing tenant, under the write lock.
    fn write(&self, state: &mut State, op: &Op<'_>) -> Result<Written> {
        let version = state.write(op)?;
        self.shared.wakers.ring(op.tenant());
        state.maybe_snapshot(self.shared.config.snapshot_every);
        let timestamp_ns = match op {
            Op::Set { timestamp_ns, .. }
            | Op::Delete { timestamp_ns, .. }
            | Op::SetMany { timestamp_ns, .. } => *timestamp_ns,
            Op::CreateTenant { .. } => 0,
        };
        Ok(Written {
            version,
            timestamp_ms: ms(timestamp_ns),
        })
    }

    /// Creates a missing tenant for an admin key (default quota); [`Error::NotFound`] for
    /// any other.
    fn ensure_tenant(&self, state: &mut State, key: &KeyRecord, tenant: &str) -> Result<()> {
        if state.tenants.contains_key(tenant) {
            return Ok(());
        }
        if authorize(key, Action::Admin, tenant, None).is_err() {
            return Err(Error::NotFound(format!(
                "tenant {tenant:?} (an admin creates it)"
            )));
        }
        self.add_tenant(state, tenant, self.shared.config.default_quota)
    }

    fn add_tenant(&self, state: &mut State, tenant: &str, quota: Quota) -> Result<()> {
        let max_value = self
            .shared
            .config
            .max_value_bytes
            .min(usize::try_from(quota.bytes).unwrap_or(usize::MAX));
        let config = TenantConfig::new(quota.bytes, quota.variables)
            .max_value_len(u32::try_from(max_value).unwrap_or(u32::MAX));
        let handle = state.add_tenant(tenant, config)?.handle()?;
        write(&self.shared.handles).insert(tenant.to_owned(), handle);
        Ok(())
    }

    fn check_size(&self, path: &VarPath, value: &[u8]) -> Result<()> {
        if value.len() > self.shared.config.max_value_bytes {
            return Err(self.too_large(&path.to_string(), value));
        }
        Ok(())
    }

    fn too_large(&self, what: &str, value: &[u8]) -> Error {
        Error::BadRequest(format!(
            "value of {what} is {} bytes, at most {} allowed",
            value.len(),
            self.shared.config.max_value_bytes
        ))
    }
}

/// Whether `key` is an admin over `tenant` (`None`: every tenant, which needs an admin key
/// of every tenant).
fn admin_over(key: &KeyRecord, tenant: Option<&str>) -> Result<()> {
    match tenant {
        Some(tenant) => authorize(key, Action::Admin, tenant, None),
        None if key.tenant.is_none() && key.services.is_none() && key.role == Role::Admin => {
            if key.revoked {
                return Err(Error::Unauthenticated(
                    "unknown or revoked API key".to_owned(),
                ));
            }
            Ok(())
        }
        None => Err(Error::PermissionDenied(format!(
            "key {} is not an admin key of every tenant",
            key.id
        ))),
    }
}
