//! [`Store`]: the requests, each checked against the caller's key, and start-up.
//!
//! | module | requests |
//! | --- | --- |
//! | `reads` | `get`, `list`, `tenant_fd`, `watch`: no write lock for `get` |
//! | `writes` | `set`, `delete`, `set_many`: checked, logged, applied under the write lock |
//! | `admin` | `create_tenant`, `delete_tenant`, `create_key`, `revoke_key`, `list_keys`: admin keys only |

mod admin;
mod reads;
mod writes;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use super::clients::{Clients, Presence};
use super::state::State;
use super::tenant::TenantHandle;
use super::wake::Wakers;
use super::{Quota, Session, Startup, StoreConfig, TenantStats};
use crate::auth::{KeyRecord, KeyStore};
use crate::error::{Error, Result};
use crate::log::{Log, LogOptions};

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
    /// Connected clients per tenant, counted by the endpoints.
    clients: Arc<Clients>,
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
            clients: Arc::default(),
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

    /// The numbers of the tenants `s`'s key may see (its own, or every one for an admin key
    /// of all tenants), for `memwire ls` over either endpoint.
    pub fn visible_stats(&self, s: &Session) -> Result<Vec<TenantStats>> {
        let visible: Vec<String> = self
            .list(s, None, None)?
            .into_iter()
            .map(|e| e.name.as_str().to_owned())
            .collect();
        Ok(self
            .stats()
            .into_iter()
            .filter(|t| visible.contains(&t.tenant))
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
                    clients: self.shared.clients.count(name),
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

    /// A new connection's place in the client counts [`Store::stats`] gives, in no tenant
    /// yet: an endpoint [enters](Presence::enter) the tenants the connection uses and drops
    /// it when the connection closes.
    #[must_use]
    pub fn presence(&self) -> Presence {
        Presence::new(Arc::clone(&self.shared.clients))
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
}
