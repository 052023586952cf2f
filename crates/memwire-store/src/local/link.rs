//! The shared-memory request path: a [`Local`](super::Local) client that calls the server
//! (every write does) joins the server's transport host as a walk-in guest and sends its
//! requests over that link, one message each way, instead of the socket.
//!
//! ```text
//!  Local ──memwire-transport link (spin, then futex)──▶ link thread ──▶ Store (auth, log, apply)
//!          message = postcard Request (Auth first)  ◀── message = postcard Answer
//! ```
//!
//! Why: on this kind of machine a socket round trip costs two thread wake-ups (8–20 µs each),
//! while a link whose ends spin a moment before they sleep answers a busy client with no
//! syscall but the log's `write(2)`. Each link has its own thread on the server: a client
//! has one request in flight, and the thread's short spin after each answer is what catches
//! the next request of a busy writer.
//!
//! The link carries the same requests and answers as the socket, checked the same way
//! ([`Conn`]), except those that pass fds (`map`, `wake`, `unwake`), which stay on the socket.
//! A link's first message is `auth` with the client's key; the audit log records the link's
//! SO_PEERCRED as it does a socket's. The bytes a client wrote into the segment are copied
//! out before they are decoded (a hostile client could change them meanwhile), and a link
//! carries at most `max_frame` bytes a message, as the socket does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use memwire_transport::{Guest, Host, HostConfig, Link, LinkConfig, SizeClass, WaitStrategy};

use super::server::{Conn, Shared};
use super::wire::{Answer, LOCAL_PROTOCOL_VERSION, Refusal, Reply, Request, decode, encode_body};
use crate::error::{Error, Result};

/// How often an idle link thread and the accept thread look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// Most links (writing clients) at once.
const MAX_LINKS: usize = 256;

/// Host names taken by this process (tests run several servers in one process).
static NEXT: AtomicU32 = AtomicU32::new(0);

/// How a store link waits: spin through the gap between a busy client's requests, then sleep.
pub(crate) const LINK_WAIT: WaitStrategy = WaitStrategy::SpinThenBlock {
    spin: Duration::from_micros(50),
};

/// The shape of a store link: one request in flight, so a shallow ring and few slots; values
/// beyond 64 KiB travel in their own memfd, up to the socket's frame limit.
fn link_config(max_frame: u32) -> LinkConfig {
    LinkConfig {
        ring_depth: 8,
        classes: vec![
            SizeClass::new(512, 8),
            SizeClass::new(8 << 10, 4),
            SizeClass::new(64 << 10, 2),
        ],
        max_large: u64::from(max_frame),
        ..LinkConfig::default()
    }
}

/// The server's transport host for local clients' links.
#[derive(Debug)]
pub(super) struct Links {
    host: Host,
}

impl Links {
    /// Binds a host named `store-<pid>-<n>`; clients learn its socket from the `auth` answer.
    pub(super) fn bind(max_frame: u32) -> Result<Self> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("store-{}-{n}", std::process::id());
        let host = Host::bind(
            &name,
            HostConfig {
                max_peers: Some(MAX_LINKS),
                link: link_config(max_frame),
                wait: LINK_WAIT,
                ..HostConfig::default()
            },
        )?;
        if let Some(dir) = host.socket_path().parent() {
            remove_dead_servers_sockets(dir);
        }
        Ok(Self { host })
    }

    /// The bootstrap socket clients connect to.
    pub(super) fn socket_path(&self) -> &std::path::Path {
        self.host.socket_path()
    }

    /// Accepts links on a thread of its own, each served on a thread of its own, until
    /// `stop` is set; the returned thread ends once every link thread has.
    pub(super) fn start(
        self,
        shared: Arc<Shared>,
        stop: Arc<AtomicBool>,
    ) -> Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("memwire-store-links".to_owned())
            .spawn(move || self.accept(&shared, &stop))
            .map_err(|e| Error::io("spawn the store's link thread", e))
    }

    fn accept(self, shared: &Arc<Shared>, stop: &Arc<AtomicBool>) {
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        // Acquire: pairs with the Release store of whoever stops the server.
        while !stop.load(Ordering::Acquire) {
            threads.retain(|t| !t.is_finished());
            let link = match self.host.accept_timeout(POLL) {
                Ok(link) => link,
                Err(memwire_transport::Error::Timeout(_)) => continue,
                Err(err) => {
                    tracing::warn!(%err, "accepting a store link failed; retrying");
                    std::thread::sleep(POLL);
                    continue;
                }
            };
            let (shared, stop) = (Arc::clone(shared), Arc::clone(stop));
            let spawned = std::thread::Builder::new()
                .name("memwire-store-link".to_owned())
                .spawn(move || serve(&shared, link, &stop));
            match spawned {
                Ok(thread) => threads.push(thread),
                // The link was moved into the closure and dropped with it: the client sees
                // the server leave the link and goes on over the socket.
                Err(err) => tracing::warn!(%err, "cannot spawn a store link thread"),
            }
        }
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// Removes the link-host sockets that store servers killed before they could remove theirs
/// left in `dir`: `store-<pid>-<n>.sock` whose process is gone and whose socket nobody answers.
/// Best effort: what cannot be read or removed stays (`memwire gc` removes stale sockets too).
fn remove_dead_servers_sockets(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(pid) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(store_link_pid)
        else {
            continue;
        };
        let dead = pid != std::process::id() && memwire_shm::ProcessHandle::open(pid).is_err();
        if dead && std::os::unix::net::UnixStream::connect(&path).is_err() {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// The pid in a store link host's socket name, `store-<pid>-<n>.sock`.
fn store_link_pid(file: &str) -> Option<u32> {
    let (pid, n) = file
        .strip_prefix("store-")?
        .strip_suffix(".sock")?
        .split_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

/// Serves one link until the client leaves, breaks the protocol, or the server stops.
fn serve(shared: &Arc<Shared>, link: Link, stop: &AtomicBool) {
    let Some(peer) = link.peer_credentials() else {
        tracing::warn!("a store link without SO_PEERCRED; closing it");
        return;
    };
    let max_frame = shared.max_frame;
    let mut conn = Conn::new(Arc::clone(shared), peer, false);
    let (mut tx, mut rx) = link.split();
    loop {
        let message = match rx.recv_timeout(POLL) {
            Ok(message) => message,
            Err(memwire_transport::Error::Timeout(_)) => {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                continue;
            }
            Err(err) => {
                tracing::debug!(%err, pid = peer.pid, "a store link ended");
                return;
            }
        };
        let answer = if message.len() > max_frame as usize {
            Err(Refusal::BadRequest(format!(
                "message of {} bytes is larger than the {max_frame} allowed",
                message.len()
            )))
        } else {
            // A copy: the client can write its slot while we decode.
            let body = message.as_slice().to_vec();
            drop(message);
            conn.handle_link(&body)
        };
        let sent = encode_body(&answer).and_then(|bytes| Ok(tx.send(&bytes)?));
        if let Err(err) = sent {
            tracing::debug!(%err, pid = peer.pid, "cannot answer on a store link");
            return;
        }
        if stop.load(Ordering::Acquire) {
            return;
        }
    }
}

/// A client's side of its link, made on the first request that may use it.
#[derive(Debug)]
pub(super) enum ClientLink {
    /// Not joined yet: the server's bootstrap socket.
    Untried(String),
    /// Joined and authenticated.
    Up(Box<Link>),
    /// None: the server offers none, or joining or using it failed; the socket serves.
    Off,
}

impl ClientLink {
    pub(super) fn new(socket: Option<String>) -> Self {
        socket.map_or(Self::Off, Self::Untried)
    }

    /// `request`'s answer over the link, or `None` when there is no link (or it could not be
    /// joined): the caller uses the socket. A link that fails once a request was sent leaves
    /// the request's fate unknown: [`Error::ServerGone`], and the link is off from then on.
    pub(super) fn call(&mut self, request: &Request, key: &str) -> Option<Result<Reply>> {
        if let Self::Untried(socket) = self {
            *self = match join(std::path::Path::new(socket), key) {
                Ok(link) => Self::Up(Box::new(link)),
                Err(err) => {
                    tracing::debug!(%err, "no link to the store server; using the socket");
                    Self::Off
                }
            };
        }
        let Self::Up(link) = self else {
            return None;
        };
        let bytes = match encode_body(request) {
            Ok(bytes) => bytes,
            Err(err) => return Some(Err(err)),
        };
        if let Err(err) = link.tx().send(&bytes) {
            // Nothing was published: the socket may carry the request instead.
            tracing::debug!(%err, "the store link failed; using the socket");
            *self = Self::Off;
            return None;
        }
        match answer(link) {
            Ok(answer) => Some(answer.map_err(Refusal::into_error)),
            Err(err) => {
                tracing::debug!(%err, "the store link failed mid-request");
                *self = Self::Off;
                Some(Err(Error::ServerGone))
            }
        }
    }
}

/// Joins the host at `socket` and authenticates with `key`.
fn join(socket: &std::path::Path, key: &str) -> Result<Link> {
    let mut link = Guest::connect_at(socket, LINK_WAIT)?;
    let auth = encode_body(&Request::Auth {
        version: LOCAL_PROTOCOL_VERSION,
        key: key.to_owned(),
    })?;
    link.tx().send(&auth)?;
    match answer(&mut link)?.map_err(Refusal::into_error)? {
        Reply::Authenticated { .. } => Ok(link),
        other => Err(Error::io(
            "authenticate on the store link",
            std::io::Error::other(format!("unexpected answer {other:?}")),
        )),
    }
}

/// The next answer on `link`.
fn answer(link: &mut Link) -> Result<Answer> {
    let message = link.rx().recv()?;
    decode(message.as_slice())
}

#[cfg(test)]
mod tests {
    use super::store_link_pid;

    #[test]
    fn only_store_link_sockets_name_a_pid() {
        assert_eq!(store_link_pid("store-4242-0.sock"), Some(4242));
        assert_eq!(store_link_pid("store-4242-17.sock"), Some(4242));
        for other in [
            "store-4242.sock",
            "store-x-0.sock",
            "store-4242-0",
            "math.sock",
            "store--0.sock",
        ] {
            assert_eq!(store_link_pid(other), None, "{other}");
        }
    }
}
