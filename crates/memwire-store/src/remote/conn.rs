//! One WebSocket connection of a [`Remote`](super::Remote): the URL it was made from, the
//! handshakes and `auth`, the requests written by their callers, and the reader task that
//! routes every answer (and every watch event) to whoever waits for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::spin::BusyPoll;
use super::wire;
use crate::error::{Error, Result};
use crate::protocol::{self, Format, Frame, Limits, PROTOCOL_VERSION, Reply, Request, Response};
use crate::store::StoreConfig;

use super::client::{Io, RemoteOptions, Ws, unexpected};

/// A parsed `ws://` / `wss://` URL.
#[derive(Clone, Debug)]
pub(super) struct Url {
    pub(super) text: String,
    pub(super) tls: bool,
    pub(super) host: String,
    pub(super) port: u16,
}

impl Url {
    pub(super) fn parse(url: &str) -> Result<Self> {
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

/// The largest message a client reads: an answer carrying a value of the largest size a
/// server may allow ([`StoreConfig::MAX_VALUE_BYTES_LIMIT`]) as JSON text whose every byte is
/// escaped (`\u0001`: 6 bytes a byte), and room for the other fields. A bound, never a buffer
/// allocated ahead.
const MAX_ANSWER: usize = StoreConfig::MAX_VALUE_BYTES_LIMIT * 6 + (64 << 10);

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
    /// The largest value the server takes, as its `auth` answer said (`usize::MAX` before).
    max_value_bytes: AtomicUsize,
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
    pub(super) async fn open(
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
            let config = wire::websocket_config(MAX_ANSWER);
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
                Reply::Auth {
                    max_value_bytes, ..
                } => {
                    let max = usize::try_from(max_value_bytes).unwrap_or(usize::MAX);
                    // Relaxed: the connection reaches other tasks only through the
                    // `Remote`'s mutex, after this store.
                    conn.max_value_bytes.store(max, Ordering::Relaxed);
                    Ok(conn)
                }
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
            max_value_bytes: AtomicUsize::new(usize::MAX),
            reader,
            busy: BusyPoll::new(busy_poll),
        })
    }

    pub(super) fn is_closed(&self) -> bool {
        lock(&self.routes).closed
    }

    /// [`Error::BadRequest`], as the server would answer, when `value` is larger than the
    /// server takes: not sent (one over twice the server's message limit would close the
    /// connection).
    pub(super) fn check_value(&self, path: &dyn std::fmt::Display, value: &[u8]) -> Result<()> {
        // Relaxed: see `open`.
        let max = self.max_value_bytes.load(Ordering::Relaxed);
        if value.len() > max {
            return Err(Error::BadRequest(format!(
                "value of {path} is {} bytes, at most {max} allowed",
                value.len()
            )));
        }
        Ok(())
    }

    pub(super) fn next_id(&self) -> u64 {
        // Relaxed: ids need only be distinct, which the atomic add alone guarantees.
        self.last_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(super) async fn call(
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
                    // The last message of its watch: nothing is routed to it after.
                    Response::WatchEnded { watch_id, .. } => {
                        let ended = lock(&routes).watches.remove(watch_id);
                        if let Some(events) = ended {
                            let _ = events.send(pushed).await;
                        }
                        continue;
                    }
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
