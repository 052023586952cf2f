//! [`LocalServer`]: the store's endpoint for the processes of this machine, a Unix socket at
//! `<runtime>/store/<name>.sock` (mode 0600 inside the 0700 runtime directory).
//!
//! One tokio task per connection; each request is handled on that task, which takes the
//! store's write lock itself (no hand-off to another thread). A connection begins with
//! [`Request::Auth`]; the peer's pid and uid (SO_PEERCRED) and the outcome go to the audit log.
//! Every request is checked by the [`Store`] against the session's key; a refused one gets a
//! [`Refusal`] and the connection stays usable. What a hostile client can send is bounded: a
//! frame longer than `max_frame` is read and discarded ([`Refusal::BadRequest`]), malformed
//! bytes are a `BadRequest`, at most [`MAX_WAKES`] eventfds per connection are kept, and an fd
//! that is not an eventfd in counter mode is refused.
//!
//! `map` answers with a new read-only fd of the tenant's sealed segment, only for a key that
//! may map the whole tenant ([`Store::tenant_fd`]): a client of tenant A never receives B's.
//!
//! On shutdown ([`LocalServer::run`]'s future resolves) the listener stops accepting, each
//! connection finishes the request it is handling and closes, and `run` returns once all
//! are gone; the caller then closes the store (a last snapshot).

use std::collections::HashMap;
use std::future::Future;
use std::io::ErrorKind;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use memwire_shm::{Doorbell, PeerCredentials};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::audit::Audit;
use super::link::Links;
use super::wire::{
    Answer, Entry, Frames, KeyInfo, LOCAL_PROTOCOL_VERSION, Refusal, Reply, Request, Stamped,
    Taken, TenantInfo, decode, encode,
};
use crate::auth::{ServicePattern, validate_name};
use crate::error::{Error, Result};
use crate::protocol::{Scope, VarPath};
use crate::store::{Presence, Session, Store, WakeId, Watcher};

/// Eventfds one connection may register: a watcher needs one per tenant it watches.
pub const MAX_WAKES: usize = 64;

/// Pause after a failed `accept` (EMFILE and the like) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The socket of the store server `name` (`default` unless told otherwise):
/// `<runtime>/store/<name>.sock`, its directory created mode 0700.
pub fn socket_path(name: &str) -> Result<PathBuf> {
    validate_name("server", name)?;
    let dir = memwire_shm::name::runtime_dir()?.join("store");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io(format!("chmod 0700 {}", dir.display()), e))?;
    Ok(dir.join(format!("{name}.sock")))
}

/// The store server's local endpoint. See the [`local` module docs](crate::local).
#[derive(Debug)]
pub struct LocalServer {
    listener: UnixListener,
    path: PathBuf,
    shared: Arc<Shared>,
    /// The shared-memory request path (`None` if its host could not be bound).
    links: Option<Links>,
}

/// What every connection and link of a server shares.
#[derive(Debug)]
pub(super) struct Shared {
    store: Arc<Store>,
    audit: Audit,
    pub(super) max_frame: u32,
    /// The bootstrap socket of the transport host clients join for their link, told in the
    /// `auth` answer.
    link_socket: Option<String>,
}

impl LocalServer {
    /// Listens at `path`. A socket file nobody answers at is stale (a server was killed) and
    /// replaced; one a server answers at is refused. Must run inside a tokio runtime.
    pub fn bind(store: Arc<Store>, path: &Path) -> Result<Self> {
        if path.exists() {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => {
                    return Err(Error::io(
                        format!("listen at {}", path.display()),
                        std::io::Error::new(
                            ErrorKind::AddrInUse,
                            "another store server is listening there",
                        ),
                    ));
                }
                Err(_) => std::fs::remove_file(path)
                    .map_err(|e| Error::io(format!("remove stale socket {}", path.display()), e))?,
            }
        }
        let listener = UnixListener::bind(path)
            .map_err(|e| Error::io(format!("listen at {}", path.display()), e))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(format!("chmod 0600 {}", path.display()), e))?;
        let audit = Audit::open(&store.config().data_dir)?;
        let max_frame = u32::try_from(store.config().max_value_bytes)
            .unwrap_or(u32::MAX)
            .saturating_mul(2)
            .max(1 << 20)
            .saturating_add(64 << 10);
        let links = Links::bind(max_frame)
            .inspect_err(|err| {
                tracing::warn!(%err, "no shared-memory links: local clients use the socket alone");
            })
            .ok();
        Ok(Self {
            listener,
            path: path.to_owned(),
            shared: Arc::new(Shared {
                store,
                audit,
                max_frame,
                link_socket: links
                    .as_ref()
                    .and_then(|l| l.socket_path().to_str().map(str::to_owned)),
            }),
            links,
        })
    }

    /// Where it listens.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets each connection finish
    /// the request in hand, waits for them, and removes the socket file.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let stop_links = Arc::new(AtomicBool::new(false));
        let links = match self.links.take() {
            Some(links) => Some(links.start(Arc::clone(&self.shared), Arc::clone(&stop_links))?),
            None => None,
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let shared = Arc::clone(&self.shared);
                        let stop = stop_rx.clone();
                        tasks.spawn(async move { serve(shared, stream, stop).await });
                    }
                    Err(err) => {
                        tracing::warn!(%err, "accept on the local socket failed; retrying");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        // Ignored error: no receiver left means no connection left to tell.
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        // Release: pairs with the link threads' Acquire loads.
        stop_links.store(true, Ordering::Release);
        if let Some(thread) = links {
            // Each link thread finishes the request in hand and sees the flag within its poll.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        if let Err(err) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), %err, "cannot remove the socket");
        }
        Ok(())
    }
}

/// One connection's (or link's) state.
pub(super) struct Conn {
    shared: Arc<Shared>,
    peer: PeerCredentials,
    /// Where this connection counts as a client: in its key's tenant and each tenant it maps.
    /// `None` for a link, whose client has a socket connection too.
    presence: Option<Presence>,
    session: Option<Session>,
    /// This connection's registrations, by the id its `wake` answers gave.
    wakes: HashMap<u64, WakeId>,
    next_wake: u64,
    /// Its watches through the server (`watch_open`), with their eventfds' registrations.
    watches: HashMap<u64, (Watcher, WakeId)>,
    next_watch: u64,
}

impl Drop for Conn {
    fn drop(&mut self) {
        for (_, id) in self.wakes.drain() {
            self.shared.store.wakers().unregister(id);
        }
        for (_, (_, id)) in self.watches.drain() {
            self.shared.store.wakers().unregister(id);
        }
    }
}

async fn serve(shared: Arc<Shared>, stream: UnixStream, mut stop: watch::Receiver<bool>) {
    let peer = match memwire_shm::peer_credentials(&stream) {
        Ok(peer) => peer,
        Err(err) => {
            tracing::warn!(%err, "SO_PEERCRED failed; closing the connection");
            return;
        }
    };
    let max_frame = shared.max_frame;
    let mut conn = Conn::new(shared, peer, true);
    let mut frames = Frames::default();
    loop {
        let taken = loop {
            if let Some(taken) = frames.try_take(max_frame) {
                break taken;
            }
            tokio::select! {
                filled = frames.fill_async(&stream) => match filled {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(err) => {
                        tracing::debug!(%err, pid = peer.pid, "local connection failed");
                        return;
                    }
                },
                _ = stop.changed() => return,
            }
        };
        let (answer, fd) = match taken {
            Taken::TooLarge(len) => (
                Err(Refusal::BadRequest(format!(
                    "message of {len} bytes is larger than the {max_frame} allowed"
                ))),
                None,
            ),
            Taken::Frame(body, fds) => conn.handle(&body, fds),
        };
        if let Err(err) = send(&stream, &answer, fd.as_ref()).await {
            tracing::debug!(%err, pid = peer.pid, "cannot answer a local client");
            return;
        }
    }
}

async fn send(stream: &UnixStream, answer: &Answer, fd: Option<&OwnedFd>) -> Result<()> {
    let bytes = encode(answer)?;
    let fds: Vec<_> = fd.iter().map(|f| f.as_fd()).collect();
    let mut sent = memwire_shm::fdpass::send_with_fds_async(stream, &bytes, &fds).await?;
    while sent < bytes.len() {
        sent += memwire_shm::fdpass::send_with_fds_async(stream, &bytes[sent..], &[]).await?;
    }
    Ok(())
}

fn path(s: &str) -> Result<VarPath> {
    s.parse()
        .map_err(|e| Error::BadRequest(format!("bad variable path {s:?}: {e}")))
}

fn name<'a>(kind: &str, s: &'a str) -> Result<&'a str> {
    validate_name(kind, s)?;
    Ok(s)
}

fn refuse(err: &Error) -> Refusal {
    if err.code().is_none() {
        tracing::error!(%err, "a local request failed in the server");
    }
    Refusal::from_error(err)
}

impl Conn {
    pub(super) fn new(shared: Arc<Shared>, peer: PeerCredentials, counts: bool) -> Self {
        Self {
            peer,
            presence: counts.then(|| shared.store.presence()),
            session: None,
            wakes: HashMap::new(),
            next_wake: 0,
            watches: HashMap::new(),
            next_watch: 0,
            shared,
        }
    }

    /// Answers one request that came over a link: any but those that pass fds.
    pub(super) fn handle_link(&mut self, body: &[u8]) -> Answer {
        let request: Request = match decode(body) {
            Ok(r) => r,
            Err(err) => return Err(refuse(&err)),
        };
        if !request.fits_link() {
            return Err(Refusal::BadRequest(
                "map, wake and unwake pass fds: send them on the socket".to_owned(),
            ));
        }
        match self.answer(request, None) {
            Ok((reply, None)) => Ok(reply),
            Ok((_, Some(_))) => Err(Refusal::Internal),
            Err(err) => Err(refuse(&err)),
        }
    }

    /// Answers one request, with the fd to send along (for `map`).
    fn handle(&mut self, body: &[u8], mut fds: Vec<OwnedFd>) -> (Answer, Option<OwnedFd>) {
        let request: Request = match decode(body) {
            Ok(r) => r,
            Err(err) => return (Err(refuse(&err)), None),
        };
        if !request.carries_fd() && !fds.is_empty() {
            return (
                Err(Refusal::BadRequest(
                    "only a wake or watch_open request carries an fd".to_owned(),
                )),
                None,
            );
        }
        let fd = fds.pop().filter(|_| fds.is_empty());
        match self.answer(request, fd) {
            Ok((reply, fd)) => (Ok(reply), fd),
            Err(err) => (Err(refuse(&err)), None),
        }
    }

    fn answer(
        &mut self,
        request: Request,
        fd: Option<OwnedFd>,
    ) -> Result<(Reply, Option<OwnedFd>)> {
        let store = Arc::clone(&self.shared.store);
        if let Request::Auth { version, key } = &request {
            return self.auth(*version, key).map(|r| (r, None));
        }
        let Some(s) = self.session.clone() else {
            return Err(Error::Unauthenticated(
                "authenticate first (auth must be the first request)".to_owned(),
            ));
        };
        let reply = match request {
            // Answered above; kept here so the match names every request.
            Request::Auth { .. } => return Err(Error::BadRequest("auth twice".to_owned())),
            Request::Ping => Reply::Pong,
            Request::Get { path: p } => {
                let value = store.get(&s, &path(&p)?)?;
                Reply::Value(value.map(|v| Stamped {
                    value: v.value,
                    version: v.version,
                    timestamp_ms: v.timestamp_ms,
                }))
            }
            Request::Set {
                path: p,
                value,
                expected_version,
            } => written(store.set(&s, &path(&p)?, &value, expected_version)?),
            Request::Delete {
                path: p,
                expected_version,
            } => written(store.delete(&s, &path(&p)?, expected_version)?),
            Request::SetMany {
                tenant,
                service,
                values,
            } => {
                for (variable, _) in &values {
                    validate_name("variable", variable)?;
                }
                let pairs: Vec<(&str, &[u8])> = values
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_slice()))
                    .collect();
                written(store.set_many(
                    &s,
                    name("tenant", &tenant)?,
                    name("service", &service)?,
                    &pairs,
                )?)
            }
            Request::List { tenant, service } => {
                let tenant = tenant.as_deref().map(|t| name("tenant", t)).transpose()?;
                let service = service.as_deref().map(|t| name("service", t)).transpose()?;
                Reply::Entries(
                    store
                        .list(&s, tenant, service)?
                        .into_iter()
                        .map(|e| Entry {
                            name: e.name.as_str().to_owned(),
                            version: e.version,
                            count: e.count,
                            len: e.len,
                        })
                        .collect(),
                )
            }
            Request::Map { tenant } => {
                let (fd, epoch) = store.tenant_fd(&s, name("tenant", &tenant)?)?;
                self.count(&tenant);
                return Ok((Reply::Mapped { epoch }, Some(fd)));
            }
            Request::Wake { tenant } => {
                let tenant = name("tenant", &tenant)?;
                let fd = fd.ok_or_else(|| {
                    Error::BadRequest("a wake request carries one eventfd".to_owned())
                })?;
                if self.wakes.len() + self.watches.len() >= MAX_WAKES {
                    return Err(Error::BadRequest(format!(
                        "at most {MAX_WAKES} eventfds per connection"
                    )));
                }
                // The same check as a mapping: only a client that may read the ring.
                drop(store.tenant_fd(&s, tenant)?);
                let bell = Doorbell::from_fd(fd).map_err(|e| {
                    Error::BadRequest(format!("the fd sent with wake is not usable: {e}"))
                })?;
                let wake_id = self.next_wake;
                self.next_wake += 1;
                self.wakes
                    .insert(wake_id, store.wakers().register(tenant, bell));
                Reply::WakeRegistered { wake_id }
            }
            Request::Unwake { wake_id } => {
                if let Some(id) = self.wakes.remove(&wake_id) {
                    store.wakers().unregister(id);
                }
                Reply::Unwoken
            }
            Request::WatchOpen {
                scope,
                from_version,
            } => {
                let scope: Scope = scope
                    .parse()
                    .map_err(|e| Error::BadRequest(format!("scope {scope:?}: {e}")))?;
                let fd = fd.ok_or_else(|| {
                    Error::BadRequest("a watch_open request carries one eventfd".to_owned())
                })?;
                if self.wakes.len() + self.watches.len() >= MAX_WAKES {
                    return Err(Error::BadRequest(format!(
                        "at most {MAX_WAKES} eventfds per connection"
                    )));
                }
                // The key's own check: a key limited to some services may watch those.
                let watcher = store.watch(&s, &scope, from_version)?;
                let bell = Doorbell::from_fd(fd).map_err(|e| {
                    Error::BadRequest(format!("the fd sent with watch_open is not usable: {e}"))
                })?;
                let watch_id = self.next_watch;
                self.next_watch += 1;
                let version = watcher.version();
                let wake = store.wakers().register(scope.tenant().as_str(), bell);
                self.watches.insert(watch_id, (watcher, wake));
                Reply::WatchOpened { watch_id, version }
            }
            Request::WatchPoll { watch_id } => {
                let (watcher, _) = self
                    .watches
                    .get_mut(&watch_id)
                    .ok_or_else(|| Error::NotFound(format!("watch {watch_id}")))?;
                Reply::Events(watcher.poll()?)
            }
            Request::WatchClose { watch_id } => {
                if let Some((_, id)) = self.watches.remove(&watch_id) {
                    store.wakers().unregister(id);
                }
                Reply::WatchClosed
            }
            Request::Stats => Reply::Stats(
                store
                    .visible_stats(&s)?
                    .into_iter()
                    .map(TenantInfo::from)
                    .collect(),
            ),
            Request::CreateKey {
                tenant,
                role,
                services,
                label,
            } => {
                let tenant = tenant.as_deref().map(|t| name("tenant", t)).transpose()?;
                let services = services.as_deref().map(ServicePattern::new).transpose()?;
                let (key, record) =
                    store.create_key(&s, tenant, role, services, label.as_deref())?;
                Reply::KeyCreated { key, id: record.id }
            }
            Request::ListKeys => Reply::Keys(
                store
                    .list_keys(&s)?
                    .into_iter()
                    .map(|r| KeyInfo {
                        id: r.id,
                        tenant: r.tenant,
                        role: r.role,
                        services: r.services.map(|p| p.as_str().to_owned()),
                        revoked: r.revoked,
                        label: r.label,
                        created_at_unix_ms: r.created_at_unix_ms,
                    })
                    .collect(),
            ),
            Request::RevokeKey { id } => Reply::Revoked {
                id: store.revoke_key(&s, &id)?.id,
            },
            Request::CreateTenant {
                tenant,
                quota_bytes,
                max_variables,
            } => {
                let quota = store.quota_or_default(quota_bytes, max_variables);
                store.create_tenant(&s, name("tenant", &tenant)?, Some(quota))?;
                Reply::TenantCreated
            }
            Request::DeleteTenant { tenant } => Reply::TenantDeleted {
                version: store.delete_tenant(&s, name("tenant", &tenant)?)?,
            },
        };
        Ok((reply, None))
    }

    fn auth(&mut self, version: u32, key: &str) -> Result<Reply> {
        if version != LOCAL_PROTOCOL_VERSION {
            return Err(Error::BadRequest(format!(
                "local protocol version {version} is not supported (the server speaks {LOCAL_PROTOCOL_VERSION})"
            )));
        }
        match self.shared.store.authenticate(key) {
            Ok(session) => {
                self.shared
                    .audit
                    .auth(self.peer, Some(session.key_id()), None);
                if let Some(tenant) = session.record().tenant.clone() {
                    self.count(&tenant);
                }
                let reply = Reply::Authenticated {
                    key_id: session.key_id().to_owned(),
                    server_pid: std::process::id(),
                    max_frame: self.shared.max_frame,
                    link_socket: self.shared.link_socket.clone(),
                };
                self.session = Some(session);
                Ok(reply)
            }
            Err(err) => {
                self.shared
                    .audit
                    .auth(self.peer, None, Some(&err.to_string()));
                Err(err)
            }
        }
    }

    fn count(&mut self, tenant: &str) {
        if let Some(presence) = &mut self.presence {
            presence.enter(tenant);
        }
    }
}

fn written(w: crate::store::Written) -> Reply {
    Reply::Written {
        version: w.version,
        timestamp_ms: w.timestamp_ms,
    }
}
