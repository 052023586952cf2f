//! [`LocalWatcher`]: a scope's changes read from the tenant's change ring in the client's own
//! mapping, in version order, each once.
//!
//! The ring names each change (service, variable, kind, revision) but holds no value; the
//! watcher reads the value from the mapping. If a later write replaced it first, the
//! `Changed` event of the earlier version carries `value: None` (its `kind` says `Set`), and
//! the later change follows with its own value: no change is skipped, none is repeated.
//!
//! Sleeping: the watcher registers an eventfd with the server (`wake`), which rings it after
//! every write of the tenant; the watcher polls the ring, and sleeps on the eventfd only when
//! it found nothing (a ring after the poll leaves the counter set, so the sleep returns at
//! once). With [`LocalWatcher::set_spin`], the blocking [`LocalWatcher::next`] first polls the
//! ring for that long: a change that lands meanwhile costs the watcher no wake-up (a thread
//! wake-up takes tens of µs on a virtual machine), at the price of a busy CPU while it spins.
//! The monitor of the [`Local`](super::Local) rings it too when the server dies or comes back,
//! so a sleeping watcher returns [`Error::ServerGone`] and later resumes.
//!
//! Through the server: a key limited to some services may not map its tenant (a mapping shows
//! all of it), so its watch is the server's ([`Store::watch`](crate::Store::watch), which
//! applies the key's limit): `watch_open` registers the eventfd and opens it, each read is a
//! `watch_poll` on the socket, and after the server came back the watch opens again from the
//! next version. The eventfd is rung after every write of the tenant, so such a client learns
//! when its tenant is written (not what: the events it reads are its services' alone).
//!
//! Falling behind: when the ring no longer holds the next change (it wrapped, or the server
//! restarted with a fresh segment), the watcher yields `Lagged { missed_from, resumed_at }`,
//! every current value in the scope (`Current`), `Synced { version: resumed_at }`, then the
//! changes after `resumed_at` (a value read while writes went on may show up both as
//! `Current` and in a later `Changed`: repeated, never missed).
//!
//! A deleted tenant: the server retires its segment and rings the watchers; the watcher reads
//! the changes it had not read yet from the retired segment (the server writes no more to it),
//! then asks for the tenant again and is told `NotFound`, and the watch is over (every later
//! read fails with [`Error::NotFound`]). A tenant moved to a fresh segment (a revocation) is
//! followed the same way, without a gap. If the name was created again before the watcher
//! looked, it maps the new tenant, which starts past the old one's versions: `Lagged` and
//! its current values.

use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use memwire_shm::{AsyncDoorbell, Doorbell, Name};

use super::client::{Inner, unexpected};
use super::wire::Reply;
use super::wire::Request;
use crate::error::{Error, Result};
use crate::protocol::{Scope, VarPath};
use crate::segment::{ChangeEvent, ChangeKind, Changes, TenantView};
use crate::store::WatchEvent;

/// A local client's watch: the changes of a tenant's change ring, read from the mapping in
/// version order, each once; `Lagged`, then the current values, then `Synced` when it fell
/// behind the ring. It sleeps on an eventfd registered with the server, which rings it after
/// every write to the tenant.
#[derive(Debug)]
pub struct LocalWatcher {
    inner: Arc<Inner>,
    scope: Scope,
    /// The last version delivered or passed over.
    cursor: u64,
    /// The mapping read and the client state it was taken in.
    view: Option<(u64, Arc<TenantView>)>,
    bell: Arc<Doorbell>,
    async_bell: Option<AsyncDoorbell>,
    /// The bell's number in the client's registry.
    bell_id: u64,
    pending: VecDeque<WatchEvent>,
    /// How long [`LocalWatcher::next`] polls before it sleeps.
    spin: Duration,
    /// Sleeps on the eventfd so far.
    sleeps: u64,
    /// The tenant was deleted: the watch is over.
    ended: bool,
    /// A watch through the server (its key may not map the tenant): the id `watch_open`
    /// gave, and the client state it was opened in.
    served: Option<(u64, u64)>,
}

impl LocalWatcher {
    pub(crate) fn new(inner: Arc<Inner>, scope: Scope, from_version: Option<u64>) -> Result<Self> {
        let s = inner.alive()?;
        let tenant = scope.tenant().as_str().to_owned();
        let bell = Arc::new(Doorbell::new()?);
        let Some(view) = inner.view(&tenant)? else {
            // A key limited to some services may not map the tenant: the server reads for it.
            let (watch_id, cursor) = open_served(&inner, &scope, from_version, &bell)?;
            let bell_id = inner.add_served_bell(&bell);
            return Ok(Self::with(
                inner,
                scope,
                cursor,
                None,
                bell,
                bell_id,
                Some((watch_id, s)),
            ));
        };
        let bell_id = inner.add_bell(&tenant, &bell)?;
        let cursor = match from_version {
            Some(v) => v.saturating_sub(1),
            None => view.revision()?,
        };
        Ok(Self::with(
            inner,
            scope,
            cursor,
            Some((s, view)),
            bell,
            bell_id,
            None,
        ))
    }

    fn with(
        inner: Arc<Inner>,
        scope: Scope,
        cursor: u64,
        view: Option<(u64, Arc<TenantView>)>,
        bell: Arc<Doorbell>,
        bell_id: u64,
        served: Option<(u64, u64)>,
    ) -> Self {
        Self {
            inner,
            scope,
            cursor,
            view,
            bell,
            async_bell: None,
            bell_id,
            pending: VecDeque::new(),
            spin: Duration::ZERO,
            sleeps: 0,
            ended: false,
            served,
        }
    }

    /// Makes [`LocalWatcher::next`] poll the change ring for up to `spin` before it sleeps
    /// (default zero: it sleeps as soon as it finds nothing). `next_async` does not spin: it
    /// would hold its runtime's thread.
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// How many times this watcher has slept on its eventfd (either `next`).
    #[must_use]
    pub fn sleeps(&self) -> u64 {
        self.sleeps
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

    /// The next event if one is ready, without waiting.
    pub fn try_next(&mut self) -> Result<Option<WatchEvent>> {
        if self.pending.is_empty() {
            self.fill()?;
        }
        Ok(self.pending.pop_front())
    }

    /// The next event, waiting (blocking the thread) until there is one.
    #[expect(
        clippy::should_implement_trait,
        reason = "fallible and blocking: an Iterator would hide both"
    )]
    pub fn next(&mut self) -> Result<WatchEvent> {
        // Read only when there is a spin to time.
        let spin_until = (!self.spin.is_zero()).then(|| Instant::now() + self.spin);
        loop {
            if let Some(event) = self.try_next()? {
                return Ok(event);
            }
            if spin_until.is_some_and(|end| Instant::now() < end) {
                std::hint::spin_loop();
                continue;
            }
            self.sleeps += 1;
            self.bell.wait(None)?;
        }
    }

    /// The next event, waiting (tokio) until there is one.
    pub async fn next_async(&mut self) -> Result<WatchEvent> {
        loop {
            if let Some(event) = self.try_next()? {
                return Ok(event);
            }
            if self.async_bell.is_none() {
                let dup = self
                    .bell
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| Error::io("dup a watcher's eventfd", e))?;
                self.async_bell = Some(AsyncDoorbell::from_doorbell(Doorbell::from_fd(dup)?)?);
            }
            if let Some(bell) = &self.async_bell {
                self.sleeps += 1;
                bell.wait().await?;
            }
        }
    }

    /// What a watch through the server saw since the last poll, into `pending`; opened again
    /// (from the next version) on the new connection when the server came back.
    fn fill_served(&mut self, watch_id: u64, opened_in: u64) -> Result<()> {
        let s = self.inner.alive()?;
        let watch_id = if s == opened_in {
            watch_id
        } else {
            let from = self.cursor.saturating_add(1);
            let (id, _) = open_served(&self.inner, &self.scope, Some(from), &self.bell)?;
            self.served = Some((id, s));
            id
        };
        let events = match self.inner.call(&Request::WatchPoll { watch_id }, None) {
            Ok((Reply::Events(events), _)) => events,
            Ok((other, _)) => return Err(unexpected(&other)),
            Err(Error::NotFound(message)) => {
                // The tenant was deleted (the server's watch says so): the watch is over.
                self.ended = true;
                return Err(Error::NotFound(message));
            }
            Err(err) => return Err(err),
        };
        for event in events {
            match &event {
                WatchEvent::Changed { version, .. } | WatchEvent::Synced { version } => {
                    self.cursor = *version;
                }
                WatchEvent::Lagged { .. } | WatchEvent::Current { .. } => {}
            }
            self.pending.push_back(event);
        }
        Ok(())
    }

    /// Reads what is new in the ring into `pending`.
    fn fill(&mut self) -> Result<()> {
        if let Some((watch_id, opened_in)) = self.served {
            if self.ended {
                return Err(deleted(self.scope.tenant().as_str()));
            }
            return self.fill_served(watch_id, opened_in);
        }
        loop {
            if self.ended {
                return Err(deleted(self.scope.tenant().as_str()));
            }
            let s = self.inner.alive()?;
            let view = self.view(s)?;
            match view.changes_since(self.cursor) {
                Ok(Changes::Events(events)) => self.push_changes(&view, events)?,
                // A retired segment's values may be the old tenant's: the tenant as it is now
                // (moved, or deleted) tells what comes next.
                Ok(Changes::Lagged { .. }) if view.is_retired()? => {
                    self.inner.forget(self.scope.tenant().as_str(), &view);
                    self.view = None;
                    continue;
                }
                Ok(Changes::Lagged { missed_from, .. }) => self.resync(&view, missed_from)?,
                // The cursor is ahead of a fresh segment's revision: start over from its values.
                Err(Error::BadRequest(_)) => self.resync(&view, self.cursor.saturating_add(1))?,
                Err(err) => return Err(err),
            }
            if !self.inner.unchanged(s) {
                // The server died or came back while we read: what was read stands (it was
                // applied, so logged), but the next read remaps.
                self.view = None;
            }
            return Ok(());
        }
    }

    /// The mapping to read in client state `s`: the one held while it is of this state and
    /// not retired, or retired with changes the watcher has not read (the server writes no
    /// more to it: they are read before the tenant is looked up again); else the tenant's
    /// mapping now. A tenant gone since the watch began was deleted: the watch ends.
    fn view(&mut self, s: u64) -> Result<Arc<TenantView>> {
        let tenant = self.scope.tenant().as_str().to_owned();
        if let Some((vs, v)) = &self.view
            && *vs == s
            && (!v.is_retired()? || v.revision()? > self.cursor)
        {
            return Ok(Arc::clone(v));
        }
        if let Some((_, v)) = self.view.take() {
            self.inner.forget(&tenant, &v);
        }
        let v = match self.inner.view(&tenant) {
            Err(Error::NotFound(_)) => {
                self.ended = true;
                return Err(deleted(&tenant));
            }
            other => other?.ok_or_else(|| not_mappable(&tenant))?,
        };
        self.view = Some((s, Arc::clone(&v)));
        Ok(v)
    }

    /// Queues the changes in the scope, with their values when the mapping still holds them.
    fn push_changes(&mut self, view: &TenantView, events: Vec<ChangeEvent>) -> Result<()> {
        for e in events {
            let path = var_path(self.scope.tenant(), &e.service, &e.variable)?;
            if self.scope.contains(&path) {
                let value = match e.kind {
                    ChangeKind::Delete => None,
                    ChangeKind::Set => view
                        .get(&e.service, &e.variable)?
                        .filter(|v| v.version == e.revision)
                        .map(|v| v.bytes),
                };
                self.pending.push_back(WatchEvent::Changed {
                    path,
                    kind: e.kind,
                    value,
                    version: e.revision,
                    timestamp_ms: e.timestamp_ns / 1_000_000,
                });
            }
            self.cursor = e.revision;
        }
        Ok(())
    }

    /// `Lagged`, the current values at `resumed_at`, `Synced`.
    fn resync(&mut self, view: &TenantView, missed_from: u64) -> Result<()> {
        let resumed_at = view.revision()?;
        let tenant = self.scope.tenant().clone();
        let services: Vec<String> = match &self.scope {
            Scope::Tenant(t) => match self.inner.call(
                &Request::List {
                    tenant: Some(t.as_str().to_owned()),
                    service: None,
                },
                None,
            )? {
                (Reply::Entries(entries), _) => entries.into_iter().map(|e| e.name).collect(),
                _ => Vec::new(),
            },
            Scope::Service(_, s) => vec![s.as_str().to_owned()],
            Scope::Variable(p) => vec![p.service.as_str().to_owned()],
        };
        self.pending.push_back(WatchEvent::Lagged {
            // The server publishes the revision: it may be `u64::MAX`.
            missed_from: missed_from.min(resumed_at.saturating_add(1)),
            resumed_at,
        });
        for service in services {
            for (variable, value) in view.list(&service)? {
                let path = var_path(&tenant, &service, &variable)?;
                if self.scope.contains(&path) {
                    self.pending.push_back(WatchEvent::Current {
                        path,
                        value: value.bytes,
                        version: value.version,
                        timestamp_ms: value.timestamp_ns / 1_000_000,
                    });
                }
            }
        }
        self.pending.push_back(WatchEvent::Synced {
            version: resumed_at,
        });
        // Changes after `resumed_at` follow, even those whose values the list already showed.
        self.cursor = resumed_at;
        Ok(())
    }
}

impl Drop for LocalWatcher {
    fn drop(&mut self) {
        self.inner.remove_bell(self.bell_id);
        if let Some((watch_id, opened_in)) = self.served
            && self.inner.unchanged(opened_in)
        {
            // Ignored error: a gone server keeps no watch anyway.
            let _ = self.inner.call(&Request::WatchClose { watch_id }, None);
        }
    }
}

/// Opens a watch of `scope` through the server, its eventfd `bell`: the watch's id and the
/// version its events come after.
fn open_served(
    inner: &Inner,
    scope: &Scope,
    from_version: Option<u64>,
    bell: &Doorbell,
) -> Result<(u64, u64)> {
    let request = Request::WatchOpen {
        scope: scope.to_string(),
        from_version,
    };
    match inner.call(&request, Some(bell.as_fd()))? {
        (Reply::WatchOpened { watch_id, version }, _) => Ok((watch_id, version)),
        (other, _) => Err(unexpected(&other)),
    }
}

fn not_mappable(tenant: &str) -> Error {
    Error::PermissionDenied(format!(
        "a local watch of tenant {tenant:?} needs a key that may map the whole tenant"
    ))
}

fn deleted(tenant: &str) -> Error {
    Error::NotFound(format!("tenant {tenant:?} was deleted; the watch is over"))
}

fn var_path(tenant: &Name, service: &str, variable: &str) -> Result<VarPath> {
    Ok(VarPath::new(
        tenant.clone(),
        Name::new(service)?,
        Name::new(variable)?,
    ))
}
