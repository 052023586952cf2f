//! [`Watcher`]: a tenant's changes in a scope, in version order, each once; `Lagged`, the
//! current values and `Synced` when it fell out of the feed's window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use memwire_shm::Name;

use super::api::Shared;
use super::feed::{Feed, FeedEntry, Read};
use super::{Session, ms};
use crate::error::{Error, Result};
use crate::protocol::{Scope, VarPath};
use crate::segment::ChangeKind;

/// What a [`Watcher`] yields. Serialisable (paths as their strings, parsed and checked again
/// when read), so a local client watching through the server receives them as they are.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WatchEvent {
    /// A variable in the scope was set or deleted.
    Changed {
        /// The variable.
        path: VarPath,
        /// Set or delete.
        kind: ChangeKind,
        /// The value set; `None` for a delete.
        value: Option<Vec<u8>>,
        /// The change's version.
        version: u64,
        /// When it was applied (ms since the Unix epoch).
        timestamp_ms: u64,
    },
    /// The watcher missed changes from `missed_from`: the current values at `resumed_at`
    /// follow ([`WatchEvent::Current`]), then [`WatchEvent::Synced`].
    Lagged {
        /// The first version the watcher did not get.
        missed_from: u64,
        /// The version the current values are taken at.
        resumed_at: u64,
    },
    /// After `Lagged`: a variable's value at `resumed_at`.
    Current {
        /// The variable.
        path: VarPath,
        /// Its value.
        value: Vec<u8>,
        /// The version that wrote it.
        version: u64,
        /// When it was written (ms since the Unix epoch).
        timestamp_ms: u64,
    },
    /// Every current value was sent; changes after `version` follow.
    Synced {
        /// The `resumed_at` of the `Lagged`.
        version: u64,
    },
}

/// A watch of one scope. Reading never blocks the writer for longer than a copy of what is
/// new; a watcher that stops reading costs the writer nothing. Every read checks that the
/// session's key was not revoked.
///
/// When its tenant is deleted, the watch ends: it still yields the changes before the delete
/// it had not read, then every read fails with [`Error::NotFound`] (naming the delete's
/// version), and a waiting read wakes up for it. A tenant created again under the name is
/// another tenant: watch it anew.
///
/// ```
/// # use memwire_store::store::{Store, StoreConfig, WatchEvent};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// # let (store, startup) = Store::open(StoreConfig::new(tmp.path()))?;
/// # let admin = store.authenticate(&startup.admin_key.expect("first start"))?;
/// store.set(&admin, &"acme/billing/rate".parse()?, b"0.19", None)?;
/// let mut watcher = store.watch(&admin, &"acme/billing".parse()?, None)?;
/// store.set(&admin, &"acme/billing/rate".parse()?, b"0.21", None)?;
/// let events = watcher.poll()?;
/// assert!(matches!(&events[..], [WatchEvent::Changed { version: 2, .. }]));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Watcher {
    shared: Arc<Shared>,
    session: Session,
    scope: Scope,
    feed: Arc<Feed>,
    /// The last version delivered or passed over: the next event has a higher one.
    cursor: u64,
}

impl Watcher {
    pub(crate) fn new(
        shared: Arc<Shared>,
        session: Session,
        scope: Scope,
        feed: Arc<Feed>,
        from_version: Option<u64>,
    ) -> Self {
        let cursor = match from_version {
            Some(from) => from.saturating_sub(1),
            None => feed.head(),
        };
        Self {
            shared,
            session,
            scope,
            feed,
            cursor,
        }
    }

    /// The scope watched.
    #[must_use]
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The last version delivered (or passed over as outside the scope).
    #[must_use]
    pub fn version(&self) -> u64 {
        self.cursor
    }

    /// The tenant's revision now (the newest version the feed holds).
    #[must_use]
    pub fn head(&self) -> u64 {
        self.feed.head()
    }

    /// Starts over from the current values, as a watcher that fell out of the feed does:
    /// [`WatchEvent::Lagged`] with `missed_from`, every current value in the scope, then
    /// [`WatchEvent::Synced`]; later reads give the changes after it. For a consumer that had
    /// to drop events it already read (a remote watch whose bounded send queue filled), so
    /// it never drops them silently.
    pub fn resync(&mut self, missed_from: u64) -> Result<Vec<WatchEvent>> {
        self.shared.check(&self.session)?;
        let mut events = Vec::new();
        self.resync_into(Some(missed_from), &mut events)?;
        Ok(events)
    }

    /// Every event since the last call, without waiting (empty: nothing new).
    pub fn poll(&mut self) -> Result<Vec<WatchEvent>> {
        self.shared.check(&self.session)?;
        let mut events = Vec::new();
        let mut failed = None;
        let read = self.feed.read_after(self.cursor, |e| {
            if failed.is_none()
                && let Err(err) = self.push_change(e, &mut events)
            {
                failed = Some(err);
            }
        });
        if let Some(err) = failed {
            return Err(err);
        }
        match read {
            Read::Caught(head) => self.cursor = head,
            Read::Missed => self.resync_into(None, &mut events)?,
            Read::Ended(version) => return Err(self.deleted(version)),
        }
        Ok(events)
    }

    /// Waits for events up to `timeout`; empty if none came.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Vec<WatchEvent>> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.feed.seq();
            let events = self.poll()?;
            if !events.is_empty() || Instant::now() >= deadline {
                return Ok(events);
            }
            self.feed.wait_until(seen, deadline);
        }
    }

    /// Waits (tokio) until there are events and returns them.
    pub async fn next_batch(&mut self) -> Result<Vec<WatchEvent>> {
        let feed = Arc::clone(&self.feed);
        loop {
            let notified = feed.notify().notified();
            tokio::pin!(notified);
            // Registered before reading, so a write between the read and the await wakes it.
            notified.as_mut().enable();
            let events = self.poll()?;
            if !events.is_empty() {
                return Ok(events);
            }
            notified.await;
        }
    }

    /// The error every read of a watch of a deleted tenant gives.
    fn deleted(&self, version: u64) -> Error {
        Error::NotFound(format!(
            "tenant {:?} was deleted (version {version}); the watch is over",
            self.scope.tenant().as_str()
        ))
    }

    fn push_change(&self, e: &FeedEntry, events: &mut Vec<WatchEvent>) -> Result<()> {
        let path = path(self.scope.tenant(), &e.service, &e.variable)?;
        if self.scope.contains(&path) {
            events.push(WatchEvent::Changed {
                path,
                kind: e.kind,
                value: e.value.as_deref().map(<[u8]>::to_vec),
                version: e.revision,
                timestamp_ms: ms(e.timestamp_ns),
            });
        }
        Ok(())
    }

    /// `Lagged`, every current value in the scope and `Synced`, read under the write lock so
    /// they are exactly the state at one revision (the feed's head then). `missed_from`:
    /// the first version dropped (`None`: the one after the cursor).
    fn resync_into(
        &mut self,
        missed_from: Option<u64>,
        events: &mut Vec<WatchEvent>,
    ) -> Result<()> {
        let state = self.shared.state()?;
        let tenant_name = self.scope.tenant().as_str();
        let tenant = state
            .tenants
            .get(tenant_name)
            // The name may be a tenant created again since: not this watch's.
            .filter(|t| Arc::ptr_eq(&t.feed, &self.feed))
            .ok_or_else(|| Error::NotFound(format!("tenant {tenant_name:?} was deleted")))?;
        let resumed_at = tenant.writer.revision();
        events.push(WatchEvent::Lagged {
            missed_from: missed_from.unwrap_or(self.cursor + 1).min(resumed_at + 1),
            resumed_at,
        });
        let mut variables = tenant.writer.variables();
        variables.sort_by(|a, b| (&a.service, &a.variable).cmp(&(&b.service, &b.variable)));
        for v in variables {
            let path = path(self.scope.tenant(), &v.service, &v.variable)?;
            if !self.scope.contains(&path) {
                continue;
            }
            if let Some(value) = tenant.writer.get(&v.service, &v.variable)? {
                events.push(WatchEvent::Current {
                    path,
                    value: value.bytes,
                    version: value.version,
                    timestamp_ms: ms(value.timestamp_ns),
                });
            }
        }
        events.push(WatchEvent::Synced {
            version: resumed_at,
        });
        self.cursor = resumed_at;
        Ok(())
    }
}

fn path(tenant: &Name, service: &str, variable: &str) -> Result<VarPath> {
    Ok(VarPath::new(
        tenant.clone(),
        Name::new(service)?,
        Name::new(variable)?,
    ))
}
