//! The caller's side: a [`Client`] shares one link among any number of concurrent calls.
//!
//! Sending is done by the calling task itself, straight into the link. Receiving too: a call
//! waiting for its answer takes the link's receiving half if no other call holds it, and reads
//! answers off the link itself (its own and, for the calls that wait behind it, theirs, which
//! it hands over by call id); when its own answer is in, it lets the next waiting call take
//! over. So a lone caller reads its answer with no task between it and the link: no wake-up,
//! no thread hop. Answers may come back in any order. When the peer goes away, every pending
//! call fails with [`Error::PeerGone`] at once, and so does every later call.
//!
//! Dropping a call's future (or its timeout running out) cancels it: the server is told and
//! the handler sees [`crate::CallContext::is_cancelled`]. An [`ItemStream`] grants the server
//! [`STREAM_WINDOW`] items at a time, so a slow consumer holds a fast producer back.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use memwire_transport::{Link, Message, PeerWatch, Rx};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use crate::breaker::{Admission, BreakerConfig, CircuitBreaker};
use crate::codec::{self, ErrorRecord};
use crate::error::{Error, Result};
use crate::frame::{self, Encoding, Kind};
use crate::ids::IdMap;
use crate::metrics::{CallTimer, Metrics, MetricsSnapshot};
use crate::server::LIST_FUNCTIONS;
use crate::service::{FunctionInfo, Payload};
use crate::writer::Writer;

mod call;
mod read;
mod stream;
mod table;

use call::{Accounting, SMALL_ARGS, cancel, encode_args, remote_error};
use read::{CallInbox, wait_for};
pub use stream::ItemStream;
use table::{CallSlot, Closed, Outcome, Reply, Table, Waiting};

/// Items a stream lets the server send ahead of the consumer.
pub const STREAM_WINDOW: u32 = 64;

/// How a [`Client`] guards and watches its link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// The circuit breaker (default: [`BreakerConfig::default`]); `None`: no breaker.
    pub breaker: Option<BreakerConfig>,
    /// Ping the server this often and record the round trip (default 1 s); `None`: never.
    pub heartbeat: Option<Duration>,
    /// Heartbeats missed in a row before [`Client::is_healthy`] says no (default 3).
    pub heartbeat_misses: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            breaker: Some(BreakerConfig::default()),
            heartbeat: Some(Duration::from_secs(1)),
            heartbeat_misses: 3,
        }
    }
}

/// A handle to call a service over one link. Cheap to clone; usable from many tasks and
/// threads at once. The link closes when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    writer: Arc<Writer>,
    table: Arc<Table>,
    /// The receiving half, held by whichever waiting call reads for everyone. Only ever
    /// `try_lock`ed (a call that finds it taken waits on `lead`), so no thread blocks on it:
    /// two atomic operations a call, where tokio's mutex took four and a lock of its own.
    rx: parking_lot::Mutex<Rx>,
    /// Notified when the reader lets go, so a waiting call can take over.
    lead: tokio::sync::Notify,
    /// Whether a call holds `rx` as the reader (set and cleared by `read::Reader`).
    reading: std::sync::atomic::AtomicBool,
    watch: PeerWatch,
    next_id: AtomicU64,
    peer: u32,
    config: ClientConfig,
    breaker: Option<CircuitBreaker>,
    metrics: Metrics,
    /// Heartbeats missed in a row (0 after each answered one).
    missed: std::sync::atomic::AtomicU32,
    heartbeat: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(h) = self
            .heartbeat
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            h.abort();
        }
    }
}

impl Client {
    /// A client on `link` (whose other end serves), with the default [`ClientConfig`].
    /// Spawns the link's reader task on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    #[must_use]
    pub fn new(link: Link) -> Self {
        Self::with_config(link, ClientConfig::default())
    }

    /// A client with a configuration.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    #[must_use]
    pub fn with_config(link: Link, config: ClientConfig) -> Self {
        let peer = link.peer().pid;
        let (tx, rx) = link.split();
        let client = Self {
            inner: Arc::new(Inner {
                writer: Arc::new(Writer::new(tx)),
                table: Arc::new(Table::default()),
                watch: rx.peer_watch(),
                rx: parking_lot::Mutex::new(rx),
                lead: tokio::sync::Notify::new(),
                reading: std::sync::atomic::AtomicBool::new(false),
                next_id: AtomicU64::new(1),
                peer,
                config,
                breaker: config.breaker.map(CircuitBreaker::new),
                metrics: Metrics::new(),
                missed: std::sync::atomic::AtomicU32::new(0),
                heartbeat: Mutex::new(None),
            }),
        };
        if let Some(every) = config.heartbeat {
            let beat = tokio::spawn(heartbeat(Arc::downgrade(&client.inner), every));
            *client
                .inner
                .heartbeat
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(beat.abort_handle());
        }
        client
    }

    /// Counts, rates and latencies of this client's calls (all clones share them).
    #[must_use]
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.metrics.snapshot()
    }

    /// Whether the circuit breaker holds calls back now.
    #[must_use]
    pub fn circuit_open(&self) -> bool {
        self.inner
            .breaker
            .as_ref()
            .is_some_and(CircuitBreaker::is_open)
    }

    /// Whether calls can be expected to work: the link is open, the breaker closed, and the
    /// server answered one of its last `heartbeat_misses` heartbeats.
    #[must_use]
    pub fn is_healthy(&self) -> bool {
        !self.is_closed()
            && !self.circuit_open()
            && self.inner.missed.load(Ordering::Relaxed) < self.inner.config.heartbeat_misses
    }

    /// The pid of the process that serves.
    #[must_use]
    pub fn peer_pid(&self) -> u32 {
        self.inner.peer
    }

    /// Calls `method` with typed arguments (a tuple of its parameters), postcard on the wire:
    /// what the client `#[memwire::service]` generates uses.
    ///
    /// # Errors
    /// Every [`Error`] a call can end with.
    pub async fn call_typed<A, R>(&self, method: &str, args: &A) -> Result<R>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        self.call_with(method, Encoding::Postcard, args, None).await
    }

    /// Calls `method` by name with MessagePack on the wire, as any language can: `args` is a
    /// sequence of the method's arguments (a tuple or a `Vec`).
    ///
    /// # Errors
    /// Every [`Error`] a call can end with.
    pub async fn call<A, R>(&self, method: &str, args: &A) -> Result<R>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        self.call_with(method, Encoding::MessagePack, args, None)
            .await
    }

    /// [`Client::call`] that gives up after `timeout`: the call is cancelled at the server and
    /// fails with [`Error::Timeout`].
    ///
    /// # Errors
    /// Every [`Error`] a call can end with.
    pub async fn call_with_timeout<A, R>(
        &self,
        method: &str,
        args: &A,
        timeout: Duration,
    ) -> Result<R>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        self.call_with(method, Encoding::MessagePack, args, Some(timeout))
            .await
    }

    /// A call with every option: the encoding and an optional timeout.
    ///
    /// # Errors
    /// Every [`Error`] a call can end with.
    pub async fn call_with<A, R>(
        &self,
        method: &str,
        encoding: Encoding,
        args: &A,
        timeout: Option<Duration>,
    ) -> Result<R>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let mut small = [0; SMALL_ARGS];
        let payload = encode_args(method, encoding, args, &mut small)?;
        let reply = self.call_raw(method, encoding, &payload, timeout).await?;
        reply.decode()
    }

    /// Sends a ping and waits for the server's pong: the round trip through the server's
    /// reader, which answers pings before anything else it has read after them.
    ///
    /// # Errors
    /// [`Error::Timeout`] when no pong came within `timeout`; [`Error::PeerGone`] and the
    /// link's other failures.
    pub async fn ping(&self, timeout: Duration) -> Result<Duration> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.inner.table.insert(id, Waiting::Ping(tx))?;
        let guard = ForgetOnDrop {
            table: &self.inner.table,
            id,
        };
        let start = std::time::Instant::now();
        self.inner
            .writer
            .send(Kind::Ping, Encoding::Raw, id, "", &[])
            .await?;
        let mut rx = rx;
        let outcome = tokio::time::timeout(timeout, wait_for(&self.inner, &mut rx, None))
            .await
            .map_err(|_| Error::Timeout(timeout))?;
        drop(guard);
        match outcome {
            Some(Outcome::End) => Ok(start.elapsed()),
            Some(Outcome::Closed(closed)) => Err(closed.error()),
            Some(_) => Err(Error::Protocol(format!("ping {id} answered with a value"))),
            None => Err(self.gone()),
        }
    }

    /// Whether the link has closed (the peer went away or broke the protocol): every call
    /// fails at once from then on.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.inner.watch.is_gone() || self.inner.table.lock().closed.is_some()
    }

    /// Completes when the link closes.
    pub async fn closed(&self) {
        let closing = async {
            loop {
                let notified = self.inner.table.closing.notified();
                if self.inner.table.lock().closed.is_some() {
                    return;
                }
                notified.await;
            }
        };
        tokio::select! {
            () = closing => {}
            () = self.inner.watch.gone() => {}
        }
    }

    /// The error for a link that went away under a call.
    fn gone(&self) -> Error {
        self.inner.watch.error().map_or(
            Error::PeerGone {
                pid: self.inner.peer,
            },
            Error::from,
        )
    }

    /// Calls `method` with `len` raw bytes that `fill` writes in place, in the link's memory:
    /// the server's handler reads them where they are ([`crate::Request::into_payload`]), and
    /// the answer comes back in place too, undecoded (a handler's
    /// [`crate::Responder::send_loaned`] bytes, or its encoded result). Large buffers cross
    /// without a copy.
    ///
    /// # Errors
    /// Every [`Error`] a call can end with.
    pub async fn call_loaned(
        &self,
        method: &str,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<Payload> {
        let reply = self
            .call_filled(method, Encoding::Raw, len, None, fill)
            .await?;
        Ok(Payload::new(
            reply.message,
            frame::HEADER_LEN,
            reply.encoding,
        ))
    }

    /// [`Client::call_loaned`] whose answer is decoded as an `R`: for a typed method that
    /// takes a large buffer (a `Payload` parameter of a `#[service]` method).
    ///
    /// # Errors
    /// Every [`Error`] a call can end with.
    pub async fn call_loaned_typed<R: DeserializeOwned>(
        &self,
        method: &str,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<R> {
        self.call_filled(method, Encoding::Raw, len, None, fill)
            .await?
            .decode()
    }

    /// Calls `method` by name (MessagePack arguments) and gives its answer's bytes in place,
    /// undecoded: for a method that answers with a large buffer.
    ///
    /// # Errors
    /// Every [`Error`] a call can end with.
    pub async fn call_for_payload<A: Serialize + ?Sized>(
        &self,
        method: &str,
        args: &A,
    ) -> Result<Payload> {
        let mut small = [0; SMALL_ARGS];
        let payload = encode_args(method, Encoding::MessagePack, args, &mut small)?;
        let reply = self
            .call_raw(method, Encoding::MessagePack, &payload, None)
            .await?;
        Ok(Payload::new(
            reply.message,
            frame::HEADER_LEN,
            reply.encoding,
        ))
    }

    /// The service's methods, as it describes them.
    ///
    /// # Errors
    /// Every [`Error`] a call can end with.
    pub async fn list_functions(&self) -> Result<Vec<FunctionInfo>> {
        self.call(LIST_FUNCTIONS, &()).await
    }

    /// Calls a streaming method by name (MessagePack); its items arrive through the stream.
    ///
    /// # Errors
    /// Every [`Error`] a call can end with, for starting it; each item carries its own.
    pub async fn stream<A, T>(&self, method: &str, args: &A) -> Result<ItemStream<T>>
    where
        A: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.stream_with(method, Encoding::MessagePack, args).await
    }

    /// [`Client::stream`] with postcard (typed Rust clients).
    ///
    /// # Errors
    /// Every [`Error`] a call can end with, for starting it; each item carries its own.
    pub async fn stream_typed<A, T>(&self, method: &str, args: &A) -> Result<ItemStream<T>>
    where
        A: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.stream_with(method, Encoding::Postcard, args).await
    }

    async fn stream_with<A, T>(
        &self,
        method: &str,
        encoding: Encoding,
        args: &A,
    ) -> Result<ItemStream<T>>
    where
        A: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let mut small = [0; SMALL_ARGS];
        let payload = encode_args(method, encoding, args, &mut small)?;
        let accounting = self.admit()?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (items_tx, items) = mpsc::unbounded_channel();
        self.inner.table.insert(
            id,
            Waiting::Stream {
                items: items_tx,
                credit: STREAM_WINDOW,
            },
        )?;
        let stream = ItemStream {
            inner: Arc::clone(&self.inner),
            id,
            method: method.to_owned(),
            items,
            consumed: 0,
            done: false,
            accounting: Some(accounting),
            _item: PhantomData,
        };
        let writer = &self.inner.writer;
        writer
            .send(Kind::Request, encoding, id, method, &payload)
            .await?;
        writer
            .send(
                Kind::Credit,
                Encoding::Raw,
                id,
                "",
                &STREAM_WINDOW.to_le_bytes(),
            )
            .await?;
        Ok(stream)
    }
}

/// Pings the server every `every` while the client lives; counts misses.
async fn heartbeat(inner: std::sync::Weak<Inner>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let client = Client { inner };
        match client.ping(every).await {
            Ok(rtt) => {
                client.inner.metrics.record_heartbeat(rtt);
                client.inner.missed.store(0, Ordering::Relaxed);
            }
            Err(Error::Timeout(_)) => {
                client.inner.missed.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => return,
        }
    }
}

/// Forgets a ping whose pong did not come (no cancel: a ping holds nothing at the server).
struct ForgetOnDrop<'a> {
    table: &'a Table,
    id: u64,
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        self.table.remove(self.id);
    }
}
