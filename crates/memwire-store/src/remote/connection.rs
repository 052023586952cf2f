//! One client connection: handshakes, `auth`, then requests answered by id, each in the
//! request's format; watches as [`pump`](super::pump) tasks; a writer task that drains the
//! bounded send queue into the socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::server::ServerOptions;
use super::spin::BusyPoll;
use super::{dispatch, pump, wire};
use crate::error::Error;
use crate::protocol::{
    self, Format, Frame, PROTOCOL_VERSION, Reply, Request, Response, encode_response,
};
use crate::store::{Presence, Session, Store};

/// How long the writer may take to flush what is queued once the connection ends (a client
/// that stopped reading would otherwise hold the task forever).
const LINGER: Duration = Duration::from_secs(5);

/// Serves one accepted TCP connection to its end. Never panics on anything the client sends.
pub(super) async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    store: Arc<Store>,
    tls: Option<TlsAcceptor>,
    options: Arc<ServerOptions>,
) {
    let _ = tcp.set_nodelay(true);
    let deadline = Instant::now() + options.auth_timeout;
    match tls {
        Some(acceptor) => match timeout_at(deadline, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => websocket(stream, peer, store, options, deadline).await,
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        },
        None => websocket(tcp, peer, store, options, deadline).await,
    }
}

async fn websocket<S>(
    stream: S,
    peer: SocketAddr,
    store: Arc<Store>,
    options: Arc<ServerOptions>,
    deadline: Instant,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let max = options.limits.max_message_bytes.saturating_mul(2);
    let config = wire::websocket_config(max);
    let ws = match timeout_at(
        deadline,
        tokio_tungstenite::accept_async_with_config(stream, Some(config)),
    )
    .await
    {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "WebSocket handshake failed"),
        Err(_) => return tracing::debug!(%peer, "WebSocket handshake timed out"),
    };
    Connection::new(store, options)
        .run(ws, peer, deadline)
        .await;
}

/// What the connection waited for.
enum Next {
    /// The client's next message (`None`: it hung up).
    Client(Option<Result<Message, WsError>>),
    /// A message a pump queued.
    Queued(Message),
}

/// What one message from the client (or a pump) leads to.
enum Answer {
    /// Write this pump's message.
    Queued(Message),
    /// Write this.
    Reply(Response),
    /// Write this `ok`, then start the watch's pump.
    Watch(Response, crate::store::Watcher, u64),
}

struct Connection {
    store: Arc<Store>,
    options: Arc<ServerOptions>,
    session: Option<Session>,
    /// Where this connection counts as a client (`memwire ls`): in its key's tenant from
    /// `auth` on, and in each tenant it reads or watches, as a local client counts in each
    /// tenant it maps. Dropped with the connection.
    presence: Presence,
    /// Pump tasks by watch id (a pump that ended by itself, after `watch_ended`, stays until
    /// the next `watch` or its `unwatch`).
    watches: HashMap<u64, JoinHandle<()>>,
    /// The last watch id given (ids start at 1).
    last_watch: u64,
}

impl Connection {
    fn new(store: Arc<Store>, options: Arc<ServerOptions>) -> Self {
        Self {
            presence: store.presence(),
            store,
            options,
            session: None,
            watches: HashMap::new(),
            last_watch: 0,
        }
    }

    async fn run<S>(mut self, ws: WebSocketStream<S>, peer: SocketAddr, deadline: Instant)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sink, mut stream) = ws.split();
        let (queue, outgoing) = mpsc::channel(self.options.send_queue.max(1));
        let mut out = Outbox { sink, outgoing };
        let busy = BusyPoll::new(self.options.busy_poll);
        loop {
            let next = if self.session.is_some() {
                let next = std::pin::pin!(async {
                    tokio::select! {
                        next = stream.next() => Next::Client(next),
                        // `None` cannot be: the connection holds a sender.
                        event = out.outgoing.recv() => event.map_or(Next::Client(None), Next::Queued),
                    }
                });
                busy.wait(next).await
            } else {
                match timeout_at(deadline, stream.next()).await {
                    Ok(next) => Next::Client(next),
                    Err(_) => {
                        tracing::debug!(%peer, "no auth in time; closing");
                        out.close(close(CloseCode::Policy, "authentication timed out"))
                            .await;
                        break;
                    }
                }
            };
            let (answer, format) = match next {
                Next::Queued(event) => (Answer::Queued(event), Format::Json),
                Next::Client(next) => match next {
                    None | Some(Ok(Message::Close(_))) => break,
                    Some(Ok(Message::Text(text))) => {
                        (self.answer(Frame::Text(text.as_str())), Format::Json)
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        (self.answer(Frame::Binary(&bytes)), Format::MessagePack)
                    }
                    // Pings are answered by the WebSocket layer itself.
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Err(WsError::Capacity(CapacityError::MessageTooLong {
                        size,
                        max_size,
                    }))) => {
                        tracing::debug!(%peer, size, max_size, "message too large; closing");
                        let reason = format!("message of {size} bytes is over {max_size}");
                        out.close(close(CloseCode::Size, &reason)).await;
                        break;
                    }
                    Some(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "WebSocket read failed");
                        break;
                    }
                },
            };
            let sent = match answer {
                // A message from a pump: written with whatever else is queued.
                Answer::Queued(event) => out.send_queued(event).await,
                Answer::Reply(response) => out.send(Some(encode(&response, format))).await,
                Answer::Watch(response, watcher, watch_id) => {
                    let sent = out.send(Some(encode(&response, format))).await;
                    let task = tokio::spawn(pump::pump(watcher, watch_id, format, queue.clone()));
                    self.watches.insert(watch_id, task);
                    sent
                }
            };
            if sent.is_err() {
                // The socket failed, or the connection sent its close.
                break;
            }
        }
        for (_, task) in self.watches.drain() {
            task.abort();
        }
        drop(queue);
        // What the pumps queued before they stopped, then a close, unless the client stopped
        // reading.
        let _ = timeout(LINGER, out.send(None)).await;
        let _ = timeout(LINGER, out.sink.close()).await;
    }

    /// The answer to one message.
    fn answer(&mut self, frame: Frame<'_>) -> Answer {
        let request = match protocol::decode_request(frame, &self.options.limits) {
            Ok(request) => request,
            Err(e) => return Answer::Reply(e.to_response()),
        };
        let id = request.id();
        let refused = |e: &Error| Answer::Reply(Response::from_error(Some(id), e));
        if let Request::Auth { key, .. } = &request {
            return match self.store.authenticate(key) {
                Ok(session) => {
                    if let Some(tenant) = &session.record().tenant {
                        self.presence.enter(tenant);
                    }
                    self.session = Some(session);
                    let limits = self.options.limits;
                    Answer::Reply(Response::Ok {
                        id,
                        reply: Reply::Auth {
                            v: PROTOCOL_VERSION,
                            max_message_bytes: limits.max_message_bytes as u64,
                            max_value_bytes: limits.max_value_bytes as u64,
                        },
                    })
                }
                Err(e) => refused(&e),
            };
        }
        let Some(session) = &self.session else {
            return refused(&Error::Unauthenticated("send auth first".to_owned()));
        };
        match &request {
            Request::Watch {
                path, from_version, ..
            } => {
                self.watches.retain(|_, task| !task.is_finished());
                if self.watches.len() >= self.options.max_watches {
                    return refused(&Error::BadRequest(format!(
                        "this connection has {} watches, the most it may have",
                        self.watches.len()
                    )));
                }
                match self.store.watch(session, path, *from_version) {
                    Ok(watcher) => {
                        self.presence.enter(path.tenant().as_str());
                        self.last_watch += 1;
                        let watch_id = self.last_watch;
                        let ok = Response::Ok {
                            id,
                            reply: Reply::Watch {
                                watch_id,
                                version: watcher.head(),
                            },
                        };
                        Answer::Watch(ok, watcher, watch_id)
                    }
                    Err(e) => refused(&e),
                }
            }
            Request::Unwatch { watch_id, .. } => match self.watches.remove(watch_id) {
                Some(task) => {
                    // Aborted at an await point: whatever it queued is before the `ok`, and
                    // it queues nothing after (a queued message is one `try_send`/`send`).
                    task.abort();
                    Answer::Reply(Response::Ok {
                        id,
                        reply: Reply::Unwatch,
                    })
                }
                // Given on this connection, and ended since (by the server or an `unwatch`).
                None if (1..=self.last_watch).contains(watch_id) => Answer::Reply(Response::Ok {
                    id,
                    reply: Reply::Unwatch,
                }),
                None => refused(&Error::NotFound(format!("watch {watch_id}"))),
            },
            _ => match dispatch::dispatch(&self.store, session, &request) {
                Ok(reply) => {
                    if let Request::Get { path, .. } = &request {
                        self.presence.enter(path.tenant.as_str());
                    }
                    Answer::Reply(Response::Ok { id, reply })
                }
                Err(e) => refused(&e),
            },
        }
    }
}

fn encode(response: &Response, format: Format) -> Message {
    wire::message(encode_response(response, format))
}

fn close(code: CloseCode, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    }))
}

/// The connection's writing end: its own answers, and the messages its pumps queued.
struct Outbox<S> {
    sink: futures_util::stream::SplitSink<WebSocketStream<S>, Message>,
    outgoing: mpsc::Receiver<Message>,
}

/// A close frame is what the connection sends last.
#[derive(Debug)]
struct Closed;

impl<S: AsyncRead + AsyncWrite + Unpin> Outbox<S> {
    /// Writes what the pumps queued, then `message`, with one flush: an answer never
    /// overtakes an event queued before it (after `unwatch`'s `ok` no event of that watch
    /// comes). [`Closed`] after a close frame was sent or when the socket failed.
    async fn send(&mut self, message: Option<Message>) -> Result<(), Closed> {
        // Pumps queue events and `watch_ended`, never a close.
        while let Ok(queued) = self.outgoing.try_recv() {
            self.sink.feed(queued).await.map_err(|_| Closed)?;
        }
        let closing = matches!(message, Some(Message::Close(_)));
        if let Some(message) = message {
            self.sink.feed(message).await.map_err(|_| Closed)?;
        }
        self.sink.flush().await.map_err(|_| Closed)?;
        if closing { Err(Closed) } else { Ok(()) }
    }

    /// Writes `event`, taken off the queue, and what was queued after it.
    async fn send_queued(&mut self, event: Message) -> Result<(), Closed> {
        self.sink.feed(event).await.map_err(|_| Closed)?;
        self.send(None).await
    }

    /// Sends `frame` (after what is queued) and ends the connection.
    async fn close(&mut self, frame: Message) {
        let _ = self.send(Some(frame)).await;
    }
}
