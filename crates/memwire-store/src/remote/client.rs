//! [`Remote`]: the store's API over one WebSocket connection. Requests are pipelined: each
//! takes the next id, and a reader task hands every answer to the caller waiting for its id
//! and every pushed message to its [`RemoteWatch`].
//!
//! When the connection drops, calls in flight fail with [`Error::ServerGone`] and every watch's
//! channel closes; the next call connects again (once; [`Error::ServerGone`] if that fails),
//! and each [`RemoteWatch`] resumes by itself from the version after the last one it saw.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use memwire_shm::Name;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::spin::BusyPoll;
use super::watch::RemoteWatch;
use super::{tls, wire};
use crate::error::{Error, Result};
use crate::protocol::{
    self, Format, Frame, Limits, ListEntry, PROTOCOL_VERSION, Reply, Request, Response, Scope,
    Value, VarPath,
};
use crate::store::{Stored, Written};

/// How a [`Remote`] connects.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RemoteOptions {
    /// For `wss://`: a PEM file of the CA certificates to trust; `None`: the Mozilla roots.
    pub ca_file: Option<PathBuf>,
    /// The encoding of the requests (and so of the answers). Default MessagePack.
    pub format: Format,
    /// How long connecting (TCP, TLS, WebSocket, `auth`) may take. Default 10 s.
    pub connect_timeout: Duration,
    /// How long a [`RemoteWatch`] keeps trying to reconnect before it reports
    /// [`Error::ServerGone`]. Default 30 s.
    pub reconnect_for: Duration,
    /// Pushed messages waiting per watch. When a watch is not read and this fills, the
    /// connection stops reading (so its answers wait too) and the server lags the watch.
    /// Default 4096.
    pub watch_buffer: usize,
    /// How long a call keeps polling for its answer before its task sleeps: a server on this
    /// machine (or next to it) answers within it, and the answer is then read without a
    /// thread wake-up. Spent only while answers came within it; zero: sleep at once.
    /// Default 50 µs (as memwire's links).
    pub busy_poll: Duration,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            ca_file: None,
            format: Format::MessagePack,
            connect_timeout: Duration::from_secs(10),
            reconnect_for: Duration::from_secs(30),
            watch_buffer: 4096,
            busy_poll: Duration::from_micros(50),
        }
    }
}

/// A byte stream, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

type Ws = WebSocketStream<Box<dyn Io>>;

/// A client of a remote store server; cheap to clone (clones share the connection).
///
/// ```no_run
/// # use memwire_store::remote::{Remote, RemoteOptions};
/// # async fn run() -> memwire_store::Result<()> {
/// let remote = Remote::connect("ws://127.0.0.1:7117", "mw_...", RemoteOptions::default()).await?;
/// let path = "acme/billing/rate".parse().expect("a path");
/// let written = remote.set(&path, b"0.19", None).await?;
/// assert_eq!(remote.get(&path).await?.version, written.version);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Remote {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    url: Url,
    key: String,
    options: RemoteOptions,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The current connection; replaced when it is found closed.
    conn: tokio::sync::Mutex<Arc<Conn>>,
}

impl Remote {
    /// Connects to `url` (`ws://HOST:PORT[/PATH]` or `wss://...`) and authenticates with
    /// `key`.
    pub async fn connect(url: &str, key: &str, options: RemoteOptions) -> Result<Self> {
        let url = Url::parse(url)?;
        let tls = if url.tls {
            Some(tls::client_config(options.ca_file.as_deref())?)
        } else {
            None
        };
        let conn = Conn::open(&url, key, &options, tls.as_ref()).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                url,
                key: key.to_owned(),
                options,
                tls,
                conn: tokio::sync::Mutex::new(conn),
            }),
        })
    }

    /// The options it connected with.
    #[must_use]
    pub fn options(&self) -> &RemoteOptions {
        &self.inner.options
    }

    /// The variable at `path`; [`Error::NotFound`] if it (or its tenant) does not exist.
    pub async fn get(&self, path: &VarPath) -> Result<Stored> {
        let request = |id| Request::Get {
            id,
            path: path.clone(),
        };
        match self.call(request, None).await? {
            Reply::Get {
                value,
                version,
                timestamp_ms,
            } => Ok(Stored {
                value: value.into_bytes(),
                version,
                timestamp_ms,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// Sets the variable at `path`; with `expected_version`, only if its version is that
    /// (`Some(0)`: only if it does not exist), else [`Error::Conflict`].
    pub async fn set(
        &self,
        path: &VarPath,
        value: &[u8],
        expected_version: Option<u64>,
    ) -> Result<Written> {
        let request = |id| Request::Set {
            id,
            path: path.clone(),
            value: Value(value.to_vec()),
            expected_version,
        };
        written(self.call(request, expected_version).await?)
    }

    /// Deletes the variable at `path` ([`Error::NotFound`] if it does not exist), with
    /// `expected_version` as in [`Remote::set`].
    pub async fn delete(&self, path: &VarPath, expected_version: Option<u64>) -> Result<Written> {
        let request = |id| Request::Delete {
            id,
            path: path.clone(),
            expected_version,
        };
        written(self.call(request, expected_version).await?)
    }

    /// Sets several variables of one service atomically, under one version.
    pub async fn set_many(
        &self,
        tenant: &str,
        service: &str,
        values: &[(&str, &[u8])],
    ) -> Result<Written> {
        let mut map = std::collections::BTreeMap::new();
        for &(variable, value) in values {
            map.insert(name(variable)?, Value(value.to_vec()));
        }
        let (tenant, service) = (name(tenant)?, name(service)?);
        let request = |id| Request::SetMany {
            id,
            tenant,
            service,
            values: map,
        };
        written(self.call(request, None).await?)
    }

    /// Tenants (`tenant` `None`), the services of a tenant, or the variables of a service.
    pub async fn list(
        &self,
        tenant: Option<&str>,
        service: Option<&str>,
    ) -> Result<Vec<ListEntry>> {
        let (tenant, service) = (
            tenant.map(name).transpose()?,
            service.map(name).transpose()?,
        );
        let request = |id| Request::List {
            id,
            tenant,
            service,
        };
        match self.call(request, None).await? {
            Reply::List { entries } => Ok(entries),
            other => Err(unexpected(&other)),
        }
    }

    /// A round trip to the server.
    pub async fn ping(&self) -> Result<()> {
        match self.call(|id| Request::Ping { id }, None).await? {
            Reply::Ping => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Watches `scope`: every change after now, or from `from_version` on (inclusive). See
    /// [`RemoteWatch`].
    pub async fn watch(&self, scope: &Scope, from_version: Option<u64>) -> Result<RemoteWatch> {
        let (watch_id, version, events, conn) = self.start_watch(scope, from_version).await?;
        // Before its first event, the watch has seen everything up to the version it
        // started from.
        let seen = from_version.map_or(version, |from| from.saturating_sub(1));
        Ok(RemoteWatch::new(
            self.clone(),
            scope.clone(),
            seen,
            watch_id,
            events,
            conn,
        ))
    }

    /// Sends `watch` and returns its id, the tenant's version, the watch's channel and the
    /// connection it lives on.
    pub(super) async fn start_watch(
        &self,
        scope: &Scope,
        from_version: Option<u64>,
    ) -> Result<(u64, u64, mpsc::Receiver<Response>, Arc<Conn>)> {
        let conn = self.conn().await?;
        let id = conn.next_id();
        let (events_tx, events) = mpsc::channel(self.inner.options.watch_buffer.max(1));
        let request = Request::Watch {
            id,
            path: scope.clone(),
            from_version,
        };
        match conn.call(request, None, Some(events_tx)).await? {
            Reply::Watch { watch_id, version } => Ok((watch_id, version, events, conn)),
            other => Err(unexpected(&other)),
        }
    }

    /// The connection, opened again if the last one closed.
    async fn conn(&self) -> Result<Arc<Conn>> {
        let mut conn = self.inner.conn.lock().await;
        if conn.is_closed() {
            let fresh = Conn::open(
                &self.inner.url,
                &self.inner.key,
                &self.inner.options,
                self.inner.tls.as_ref(),
            )
            .await
            .map_err(|e| match e {
                // A key refused on reconnect is worth telling as it is.
                e @ (Error::Unauthenticated(_) | Error::Remote { .. }) => e,
                e => {
                    tracing::debug!(error = %e, "reconnect failed");
                    Error::ServerGone
                }
            })?;
            *conn = fresh;
        }
        Ok(Arc::clone(&conn))
    }

    /// Sends the request `make` builds with the connection's next id; waits for its answer.
    pub(super) async fn call(
        &self,
        make: impl FnOnce(u64) -> Request,
        expected: Option<u64>,
    ) -> Result<Reply> {
        let conn = self.conn().await?;
        let request = make(conn.next_id());
        conn.call(request, expected, None).await
    }
}

pub(super) fn name(text: &str) -> Result<Name> {
    Name::new(text).map_err(|e| Error::BadRequest(format!("{text:?}: {e}")))
}

fn written(reply: Reply) -> Result<Written> {
    match reply {
        Reply::Set {
            version,
            timestamp_ms,
        }
        | Reply::Delete {
            version,
            timestamp_ms,
        }
        | Reply::SetMany {
            version,
            timestamp_ms,
        } => Ok(Written {
            version,
            timestamp_ms,
        }),
        other => Err(unexpected(&other)),
    }
}

pub(super) fn unexpected(reply: &Reply) -> Error {
    Error::Remote {
        code: protocol::ErrorCode::BadMessage,
        message: format!("the server answered with an unexpected reply: {reply:?}"),
    }
}

/// A parsed `ws://` / `wss://` URL.
#[derive(Clone, Debug)]
struct Url {
    text: String,
    tls: bool,
    host: String,
    port: u16,
}

impl Url {
    fn parse(url: &str) -> Result<Self> {
        let bad = |reason| Error::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let (tls, rest) = if let Some(rest) = url.strip_prefix("wss://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("ws://") {
            (false, rest)
        } else {
            return Err(bad("the scheme must be ws:// or wss://"));
        };
        let authority = rest.split('/').next().unwrap_or(rest);
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in the host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(port) => port
                .parse()
                .map_err(|_| bad("the port is not a number 0..=65535"))?,
            None if tls => 443,
            None => 80,
        };
        Ok(Self {
            text: url.to_owned(),
            tls,
            host: host.to_owned(),
            port,
        })
    }
}

/// What the reader task hands a caller: the reply, or the error for its id.
type Answer = oneshot::Sender<Result<Reply>>;

/// A caller waiting for an answer; for `watch`, the channel its events go to.
struct Pending {
    answer: Answer,
    expected: Option<u64>,
    watch: Option<mpsc::Sender<Response>>,
}

#[derive(Default)]
struct Routes {
    /// Set once the reader ended: no new caller may wait.
    closed: bool,
    pending: HashMap<u64, Pending>,
    watches: HashMap<u64, mpsc::Sender<Response>>,
}

/// One WebSocket connection and its reader task.
pub(super) struct Conn {
    format: Format,
    sink: tokio::sync::Mutex<SplitSink<Ws, Message>>,
    routes: Arc<Mutex<Routes>>,
    last_id: AtomicU64,
    reader: JoinHandle<()>,
    /// How a call waits for its answer.
    busy: BusyPoll,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("format", &self.format)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The routes stay whole under a panic elsewhere: each change is one insert or remove.
fn lock(routes: &Mutex<Routes>) -> MutexGuard<'_, Routes> {
    routes.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Conn {
    async fn open(
        url: &Url,
        key: &str,
        options: &RemoteOptions,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<Arc<Self>> {
        let connecting = async {
            let ws_error = |source| Error::WebSocket {
                url: url.text.clone(),
                source: Box::new(source),
            };
            let tcp = TcpStream::connect((url.host.as_str(), url.port))
                .await
                .map_err(|e| Error::io(format!("connect to {}", url.text), e))?;
            let _ = tcp.set_nodelay(true);
            let stream: Box<dyn Io> =
                match tls {
                    Some(config) => {
                        let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                            .map_err(|_| Error::BadUrl {
                                url: url.text.clone(),
                                reason: "the host is not a DNS name or IP address",
                            })?;
                        let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
                        Box::new(connector.connect(name, tcp).await.map_err(|e| {
                            Error::io(format!("TLS handshake with {}", url.text), e)
                        })?)
                    }
                    None => Box::new(tcp),
                };
            let limits = Limits::default();
            let config = wire::websocket_config(limits.max_message_bytes.saturating_mul(2));
            let (ws, _) = tokio_tungstenite::client_async_with_config(
                url.text.as_str(),
                stream,
                Some(config),
            )
            .await
            .map_err(ws_error)?;
            let conn = Self::start(ws, options.format, options.busy_poll);
            let id = conn.next_id();
            let auth = Request::Auth {
                id,
                v: PROTOCOL_VERSION,
                key: key.to_owned(),
            };
            match conn.call(auth, None, None).await? {
                Reply::Auth { .. } => Ok(conn),
                other => Err(unexpected(&other)),
            }
        };
        tokio::time::timeout(options.connect_timeout, connecting)
            .await
            .map_err(|_| {
                Error::io(
                    format!("connect to {}", url.text),
                    std::io::Error::from(std::io::ErrorKind::TimedOut),
                )
            })?
    }

    fn start(ws: Ws, format: Format, busy_poll: Duration) -> Arc<Self> {
        let (sink, stream) = ws.split();
        let routes = Arc::new(Mutex::new(Routes::default()));
        let reader = tokio::spawn(read(stream, Arc::clone(&routes)));
        Arc::new(Self {
            format,
            sink: tokio::sync::Mutex::new(sink),
            routes,
            last_id: AtomicU64::new(0),
            reader,
            busy: BusyPoll::new(busy_poll),
        })
    }

    pub(super) fn is_closed(&self) -> bool {
        lock(&self.routes).closed
    }

    fn next_id(&self) -> u64 {
        // Relaxed: ids need only be distinct, which the atomic add alone guarantees.
        self.last_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    async fn call(
        &self,
        request: Request,
        expected: Option<u64>,
        watch: Option<mpsc::Sender<Response>>,
    ) -> Result<Reply> {
        let id = request.id();
        let (answer, reply) = oneshot::channel();
        {
            let mut routes = lock(&self.routes);
            if routes.closed {
                return Err(Error::ServerGone);
            }
            routes.pending.insert(
                id,
                Pending {
                    answer,
                    expected,
                    watch,
                },
            );
        }
        let message = wire::message(protocol::encode_request(&request, self.format));
        if self.sink.lock().await.send(message).await.is_err() {
            lock(&self.routes).pending.remove(&id);
            return Err(Error::ServerGone);
        }
        self.busy.wait(reply).await.map_err(|_| Error::ServerGone)?
    }

    /// Sends `unwatch` for `watch_id` without waiting for its answer, and stops routing its
    /// events.
    pub(super) async fn unwatch(&self, watch_id: u64) {
        lock(&self.routes).watches.remove(&watch_id);
        let request = Request::Unwatch {
            id: self.next_id(),
            watch_id,
        };
        let message = wire::message(protocol::encode_request(&request, self.format));
        let _ = self.sink.lock().await.send(message).await;
    }
}

/// The reader task: routes every message, then fails whatever still waits.
async fn read(mut stream: SplitStream<Ws>, routes: Arc<Mutex<Routes>>) {
    // The server's messages may be as large as its limits allow; its own 2 MiB default
    // plus room.
    let limits = Limits {
        max_message_bytes: usize::MAX,
        max_value_bytes: usize::MAX,
    };
    while let Some(Ok(message)) = stream.next().await {
        let response = match &message {
            Message::Text(text) => protocol::decode_response(Frame::Text(text.as_str()), &limits),
            Message::Binary(bytes) => protocol::decode_response(Frame::Binary(bytes), &limits),
            Message::Close(_) => break,
            _ => continue,
        };
        let response = match response {
            Ok(response) => response,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable message from the store server; ignored");
                continue;
            }
        };
        match response {
            Response::Ok { id, reply } => {
                let mut routes = lock(&routes);
                if let Some(pending) = routes.pending.remove(&id) {
                    // Registered before the next message is read: the server sends a watch's
                    // `ok` before its first event.
                    if let (Reply::Watch { watch_id, .. }, Some(events)) = (&reply, pending.watch) {
                        routes.watches.insert(*watch_id, events);
                    }
                    let _ = pending.answer.send(Ok(reply));
                }
            }
            Response::Error {
                id: Some(id),
                code,
                message,
            } => {
                if let Some(pending) = lock(&routes).pending.remove(&id) {
                    let _ =
                        pending
                            .answer
                            .send(Err(wire::error_from(code, message, pending.expected)));
                }
            }
            Response::Error {
                id: None,
                code,
                message,
            } => {
                tracing::warn!(code = code.as_str(), %message, "the store server refused a message");
            }
            pushed => {
                let watch_id = match &pushed {
                    Response::Event(e) => e.watch_id,
                    Response::Lagged(l) => l.watch_id,
                    Response::Synced { watch_id, .. } => *watch_id,
                    _ => continue,
                };
                let events = lock(&routes).watches.get(&watch_id).cloned();
                // Waits while the watch's buffer is full: see `RemoteOptions::watch_buffer`.
                if let Some(events) = events
                    && events.send(pushed).await.is_err()
                {
                    lock(&routes).watches.remove(&watch_id);
                }
            }
        }
    }
    let mut routes = lock(&routes);
    routes.closed = true;
    // Dropping the senders fails the waiting callers (ServerGone) and ends the watches.
    routes.pending.clear();
    routes.watches.clear();
}
