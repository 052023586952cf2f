//! [`Local`]: the client of a store server on this machine.
//!
//! Reads go straight to the tenant's read-only mapping when the key may map the whole tenant
//! (else through the server); writes are one round trip to the server over the client's
//! shared-memory link (joined on the first write; the socket if there is none), and the
//! server logs them before it answers (an answer is an acknowledgement: the write survives
//! `kill -9`).
//!
//! # Server death
//!
//! A monitor thread polls the connection (`POLLRDHUP`) and the server's pidfd. When either
//! fires, the client's `state` turns odd ("gone"): every call, every mapped read and every
//! watcher fails with [`Error::ServerGone`], never a silently stale value. The monitor then
//! reconnects with backoff (10 ms doubling to 1 s), re-registers the watchers' eventfds,
//! drops every mapping (they are remapped on the next read) and turns `state` even again.
//! A mapped read loads `state` before and after it reads: a read that overlapped a death or
//! a reconnect is retried, so no value of a dead server's mapping is returned after the fact.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use memwire_shm::{Doorbell, ProcessHandle};
use rustix::event::{PollFd, PollFlags};

use super::link::ClientLink;
use super::reader::{mapped, through_server};
use super::server::socket_path;
use super::watch::LocalWatcher;
use super::wire::{Frames, LOCAL_PROTOCOL_VERSION, Reply, Request, Taken, TenantInfo};
use super::wire::{decode, encode};
use crate::error::{Error, Result};
use crate::protocol::{Scope, VarPath};
use crate::segment::TenantView;
use crate::store::{Stored, Written};

/// The largest answer a client reads (a listing of a big tenant).
const MAX_ANSWER: u32 = 256 << 20;
/// Reconnect backoff: first and longest pause.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A client of the store server on this machine. See the [`local` module docs](crate::local).
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use memwire_store::Local;
/// let store = Local::connect("default", &std::env::var("MEMWIRE_KEY")?)?;
/// let path = "acme/billing/rate".parse()?;
/// store.set(&path, b"0.19")?;
/// assert_eq!(store.get(&path)?.map(|v| v.value), Some(b"0.19".to_vec()));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Local {
    pub(super) inner: Arc<Inner>,
    monitor: Option<JoinHandle<()>>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    path: PathBuf,
    key: String,
    conn: Mutex<Option<Conn>>,
    /// Even: connected; odd: the server is gone. Bumped by the monitor alone.
    state: AtomicU64,
    /// Tenant → its mapping (`None`: the key may not map it). Emptied on reconnect.
    views: Mutex<HashMap<String, Option<Arc<TenantView>>>>,
    /// Watch number → (tenant, its eventfd, the server's wake id); a watch through the
    /// server has no tenant here and no wake id (`u64::MAX`).
    bells: Mutex<HashMap<u64, Bell>>,
    next_bell: AtomicU64,
    /// Rung when the `Local` is dropped: the monitor stops.
    stop: Doorbell,
}

/// A watcher's eventfd, (tenant, the eventfd, the server's wake id).
type Bell = (String, Arc<Doorbell>, u64);

#[derive(Debug)]
struct Conn {
    stream: UnixStream,
    frames: Frames,
    server: Option<ProcessHandle>,
    /// The shared-memory path for the requests that need no fd.
    link: ClientLink,
    /// For the link's own `auth`.
    key: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Conn {
    /// Connects and authenticates.
    fn open(path: &Path, key: &str) -> Result<Self> {
        let stream = UnixStream::connect(path).map_err(|e| {
            Error::io(
                format!(
                    "connect to the store server at {} (is `memwire serve` running?)",
                    path.display()
                ),
                e,
            )
        })?;
        // The kernel's word on who listens, not the server's.
        let pid = memwire_shm::peer_credentials(&stream)?.pid;
        let mut conn = Self {
            stream,
            frames: Frames::default(),
            server: ProcessHandle::open(pid).ok(),
            link: ClientLink::Off,
            key: key.to_owned(),
        };
        let (reply, _) = conn.call(
            &Request::Auth {
                version: LOCAL_PROTOCOL_VERSION,
                key: key.to_owned(),
            },
            None,
        )?;
        match reply {
            Reply::Authenticated { link_socket, .. } => {
                conn.link = ClientLink::new(link_socket);
                Ok(conn)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// One request and its answer: over the link when the request passes no fd and the link
    /// is up, else over the socket. An I/O failure is [`Error::ServerGone`].
    fn call(
        &mut self,
        req: &Request,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<(Reply, Option<OwnedFd>)> {
        if fd.is_none()
            && req.fits_link()
            && let Some(answer) = self.link.call(req, &self.key)
        {
            return answer.map(|reply| (reply, None));
        }
        let bytes = encode(req)?;
        let fds: Vec<_> = fd.into_iter().collect();
        let mut sent = memwire_shm::send_with_fds(&self.stream, &bytes, &fds).map_err(gone)?;
        while sent < bytes.len() {
            sent += memwire_shm::send_with_fds(&self.stream, &bytes[sent..], &[]).map_err(gone)?;
        }
        loop {
            match self.frames.try_take(MAX_ANSWER) {
                Some(Taken::Frame(body, mut fds)) => {
                    let answer: super::wire::Answer = decode(&body)?;
                    let reply = answer.map_err(super::wire::Refusal::into_error)?;
                    return Ok((reply, fds.pop()));
                }
                Some(Taken::TooLarge(len)) => {
                    return Err(Error::BadRequest(format!(
                        "the server's answer of {len} bytes is too large"
                    )));
                }
                None => {
                    if !self.frames.fill(&self.stream).map_err(gone)? {
                        return Err(Error::ServerGone);
                    }
                }
            }
        }
    }
}

fn gone(err: impl std::fmt::Display) -> Error {
    tracing::debug!(%err, "the store server's socket failed");
    Error::ServerGone
}

pub(super) fn unexpected(reply: &Reply) -> Error {
    Error::io(
        "the store server",
        std::io::Error::other(format!("unexpected answer {reply:?}")),
    )
}

impl Inner {
    /// The state if connected, else [`Error::ServerGone`].
    pub(crate) fn alive(&self) -> Result<u64> {
        // Acquire: pairs with the monitor's Release bump, so the views it installed are seen.
        let s = self.state.load(Ordering::Acquire);
        if s % 2 == 1 {
            return Err(Error::ServerGone);
        }
        Ok(s)
    }

    /// Whether the state is still `s` after reads of a mapping.
    pub(crate) fn unchanged(&self, s: u64) -> bool {
        // Orders the mapping's loads before the state's (as a sequence-lock reader does).
        fence(Ordering::Acquire);
        self.state.load(Ordering::Relaxed) == s
    }

    pub(crate) fn call(
        &self,
        req: &Request,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<(Reply, Option<OwnedFd>)> {
        self.alive()?;
        let mut guard = lock(&self.conn);
        let conn = guard.as_mut().ok_or(Error::ServerGone)?;
        conn.call(req, fd)
    }

    /// The tenant's mapping, made on first use; `None` if the key may not map it.
    pub(crate) fn view(&self, tenant: &str) -> Result<Option<Arc<TenantView>>> {
        if let Some(v) = lock(&self.views).get(tenant) {
            return Ok(v.clone());
        }
        let view = match self.call(
            &Request::Map {
                tenant: tenant.to_owned(),
            },
            None,
        ) {
            Ok((Reply::Mapped { .. }, Some(fd))) => Some(Arc::new(TenantView::open(fd)?)),
            Ok((other, _)) => return Err(unexpected(&other)),
            Err(Error::PermissionDenied(_)) => None,
            Err(err) => return Err(err),
        };
        lock(&self.views).insert(tenant.to_owned(), view.clone());
        Ok(view)
    }

    /// Forgets a retired mapping (the tenant moved to a fresh segment).
    pub(crate) fn forget(&self, tenant: &str, view: &Arc<TenantView>) {
        let mut views = lock(&self.views);
        if views
            .get(tenant)
            .is_some_and(|v| v.as_ref().is_some_and(|v| Arc::ptr_eq(v, view)))
        {
            views.remove(tenant);
        }
    }

    /// Registers `bell` for `tenant`'s writes, now and after every reconnect; its number.
    pub(crate) fn add_bell(&self, tenant: &str, bell: &Arc<Doorbell>) -> Result<u64> {
        let n = self.next_bell.fetch_add(1, Ordering::Relaxed);
        lock(&self.bells).insert(n, (tenant.to_owned(), Arc::clone(bell), u64::MAX));
        let wake_id = self.wake(tenant, bell)?;
        if let Some(entry) = lock(&self.bells).get_mut(&n) {
            entry.2 = wake_id;
        }
        Ok(n)
    }

    /// Registers `bell` to be rung when the server dies or comes back, without asking the
    /// server to ring it (a watch through the server registers it with `watch_open`); its
    /// number.
    pub(crate) fn add_served_bell(&self, bell: &Arc<Doorbell>) -> u64 {
        let n = self.next_bell.fetch_add(1, Ordering::Relaxed);
        lock(&self.bells).insert(n, (String::new(), Arc::clone(bell), u64::MAX));
        n
    }

    fn wake(&self, tenant: &str, bell: &Doorbell) -> Result<u64> {
        match self.call(
            &Request::Wake {
                tenant: tenant.to_owned(),
            },
            Some(bell.as_fd()),
        )? {
            (Reply::WakeRegistered { wake_id }, _) => Ok(wake_id),
            (other, _) => Err(unexpected(&other)),
        }
    }

    /// Forgets watch `n` and asks the server to stop ringing it (best effort).
    pub(crate) fn remove_bell(&self, n: u64) {
        if let Some((_, _, wake_id)) = lock(&self.bells).remove(&n)
            && wake_id != u64::MAX
        {
            // Ignored error: a gone server rings nothing anyway.
            let _ = self.call(&Request::Unwake { wake_id }, None);
        }
    }

    fn ring_bells(&self) {
        for (_, bell, _) in lock(&self.bells).values() {
            if let Err(err) = bell.ring() {
                tracing::warn!(%err, "cannot ring a watcher's eventfd");
            }
        }
    }

    /// The monitor: waits for the server's death, then reconnects. See the module docs.
    fn monitor(&self) {
        loop {
            let watched = {
                let guard = lock(&self.conn);
                guard.as_ref().and_then(|c| {
                    let socket = c.stream.try_clone().ok()?;
                    let pidfd = c
                        .server
                        .as_ref()
                        .and_then(|p| p.as_fd().try_clone_to_owned().ok());
                    Some((socket, pidfd))
                })
            };
            if let Some((socket, pidfd)) = watched {
                let mut fds = vec![
                    PollFd::new(&self.stop, PollFlags::IN),
                    PollFd::new(&socket, PollFlags::RDHUP),
                ];
                if let Some(pidfd) = &pidfd {
                    fds.push(PollFd::new(pidfd, PollFlags::IN));
                }
                match rustix::event::poll(&mut fds, None) {
                    Ok(_) => {}
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(err) => {
                        tracing::error!(%err, "the store client's monitor cannot poll");
                        return;
                    }
                }
                if !fds[0].revents().is_empty() {
                    return;
                }
                // Odd: gone. Release: pairs with the Acquire in `alive`.
                self.state.fetch_add(1, Ordering::Release);
                *lock(&self.conn) = None;
                self.ring_bells();
            }
            let mut backoff = BACKOFF_MIN;
            loop {
                match self.stop.wait(Some(backoff)) {
                    Ok(false) => {}
                    Ok(true) | Err(_) => return,
                }
                match Conn::open(&self.path, &self.key) {
                    Ok(conn) => {
                        *lock(&self.conn) = Some(conn);
                        break;
                    }
                    Err(err) => {
                        tracing::debug!(%err, "reconnecting to the store server");
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                }
            }
            lock(&self.views).clear();
            let bells: Vec<(u64, String, Arc<Doorbell>)> = lock(&self.bells)
                .iter()
                .map(|(n, (t, b, _))| (*n, t.clone(), Arc::clone(b)))
                .collect();
            for (n, tenant, bell) in bells {
                if tenant.is_empty() {
                    continue; // A watch through the server: it opens again by itself.
                }
                let wake_id = {
                    let mut guard = lock(&self.conn);
                    let Some(conn) = guard.as_mut() else { break };
                    conn.call(
                        &Request::Wake {
                            tenant: tenant.clone(),
                        },
                        Some(bell.as_fd()),
                    )
                };
                match wake_id {
                    Ok((Reply::WakeRegistered { wake_id }, _)) => {
                        if let Some(entry) = lock(&self.bells).get_mut(&n) {
                            entry.2 = wake_id;
                        }
                    }
                    Ok(_) | Err(_) => {
                        tracing::debug!(tenant, "cannot re-register a watcher's eventfd");
                    }
                }
            }
            // Even: connected. Release: publishes the new connection and the empty views.
            self.state.fetch_add(1, Ordering::Release);
            self.ring_bells();
        }
    }
}

impl Local {
    /// Connects to the store server `name` (`default` is what `memwire serve` runs) with
    /// `key`.
    pub fn connect(name: &str, key: &str) -> Result<Self> {
        Self::connect_at(&socket_path(name)?, key)
    }

    /// Connects to the store server listening at `path`.
    pub fn connect_at(path: &Path, key: &str) -> Result<Self> {
        let conn = Conn::open(path, key)?;
        let inner = Arc::new(Inner {
            path: path.to_owned(),
            key: key.to_owned(),
            conn: Mutex::new(Some(conn)),
            state: AtomicU64::new(0),
            views: Mutex::new(HashMap::new()),
            bells: Mutex::new(HashMap::new()),
            next_bell: AtomicU64::new(0),
            stop: Doorbell::new()?,
        });
        let for_monitor = Arc::clone(&inner);
        let monitor = std::thread::Builder::new()
            .name("memwire-store-monitor".to_owned())
            .spawn(move || for_monitor.monitor())
            .map_err(|e| Error::io("spawn the store client's monitor thread", e))?;
        Ok(Self {
            inner,
            monitor: Some(monitor),
        })
    }

    /// Whether the server is reachable now (`false` while reconnecting).
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.inner.alive().is_ok()
    }

    /// The variable at `path` (`None` if it does not exist): from the mapping when the key
    /// may map the tenant, else from the server. [`Error::ServerGone`] while the server is
    /// down; [`Error::NotFound`] if the tenant does not exist, or was deleted (its retired
    /// mapping is not read after the delete).
    pub fn get(&self, path: &VarPath) -> Result<Option<Stored>> {
        let (service, variable) = (path.service.as_str(), path.variable.as_str());
        let read = mapped(&self.inner, path.tenant.as_str(), &mut None, |view| {
            view.get(service, variable)
        })?;
        match read {
            Some(value) => Ok(value.map(|v| Stored {
                value: v.bytes,
                version: v.version,
                timestamp_ms: v.timestamp_ns / 1_000_000,
            })),
            None => through_server(&self.inner, path.to_string()),
        }
    }

    /// The client's shared state, for a [`super::Reader`].
    pub(super) fn inner(&self) -> Arc<Inner> {
        Arc::clone(&self.inner)
    }

    /// Sets the variable at `path`; the answer means it is logged.
    pub fn set(&self, path: &VarPath, value: &[u8]) -> Result<Written> {
        self.write(&Request::Set {
            path: path.to_string(),
            value: value.to_vec(),
            expected_version: None,
        })
    }

    /// Sets the variable only if its version is `expected` (`0`: it does not exist), else
    /// [`Error::Conflict`].
    pub fn compare_and_set(&self, path: &VarPath, value: &[u8], expected: u64) -> Result<Written> {
        self.write(&Request::Set {
            path: path.to_string(),
            value: value.to_vec(),
            expected_version: Some(expected),
        })
    }

    /// Deletes the variable (with `expected_version`, only at that version).
    pub fn delete(&self, path: &VarPath, expected_version: Option<u64>) -> Result<Written> {
        self.write(&Request::Delete {
            path: path.to_string(),
            expected_version,
        })
    }

    /// Sets several variables of one service at once.
    pub fn set_many(
        &self,
        tenant: &str,
        service: &str,
        values: &[(&str, &[u8])],
    ) -> Result<Written> {
        self.write(&Request::SetMany {
            tenant: tenant.to_owned(),
            service: service.to_owned(),
            values: values
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                .collect(),
        })
    }

    fn write(&self, req: &Request) -> Result<Written> {
        match self.inner.call(req, None)? {
            (
                Reply::Written {
                    version,
                    timestamp_ms,
                },
                _,
            ) => Ok(Written {
                version,
                timestamp_ms,
            }),
            (other, _) => Err(unexpected(&other)),
        }
    }

    /// Tenants, a tenant's services, or a service's variables.
    pub fn list(&self, tenant: Option<&str>, service: Option<&str>) -> Result<Vec<super::Entry>> {
        match self.inner.call(
            &Request::List {
                tenant: tenant.map(str::to_owned),
                service: service.map(str::to_owned),
            },
            None,
        )? {
            (Reply::Entries(e), _) => Ok(e),
            (other, _) => Err(unexpected(&other)),
        }
    }

    /// The tenant's read-only segment fd, as the server hands it out (for inspection; reads
    /// go through [`Local::get`]).
    pub fn tenant_fd(&self, tenant: &str) -> Result<OwnedFd> {
        match self.inner.call(
            &Request::Map {
                tenant: tenant.to_owned(),
            },
            None,
        )? {
            (Reply::Mapped { .. }, Some(fd)) => Ok(fd),
            (other, _) => Err(unexpected(&other)),
        }
    }

    /// Watches `scope` from `from_version` (inclusive; `None`: changes after now). Needs a key
    /// that may map the tenant. See [`LocalWatcher`].
    pub fn watch(&self, scope: &Scope, from_version: Option<u64>) -> Result<LocalWatcher> {
        LocalWatcher::new(Arc::clone(&self.inner), scope.clone(), from_version)
    }

    /// A round trip to the server.
    pub fn ping(&self) -> Result<()> {
        self.inner.call(&Request::Ping, None).map(drop)
    }

    /// Each tenant the key may see, with its numbers and connected clients.
    pub fn stats(&self) -> Result<Vec<TenantInfo>> {
        match self.inner.call(&Request::Stats, None)? {
            (Reply::Stats(s), _) => Ok(s),
            (other, _) => Err(unexpected(&other)),
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        if let Err(err) = self.inner.stop.ring() {
            tracing::warn!(%err, "cannot stop the store client's monitor");
            return;
        }
        if let Some(monitor) = self.monitor.take()
            && monitor.join().is_err()
        {
            tracing::warn!("the store client's monitor panicked");
        }
    }
}
