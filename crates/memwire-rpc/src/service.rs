//! The server's side of a call: what a service implements ([`Service`]) and what a handler
//! gets ([`Request`], [`Responder`], [`CallContext`], [`Sink`]).
//!
//! `#[memwire::service]` writes the [`Service`] impl of a trait; by hand it is a `match` on
//! [`Request::method`]. A request's arguments decode from either encoding (postcard from a
//! typed Rust client, MessagePack from a call by name), and the reply goes back in the
//! request's encoding, so one service answers both.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use memwire_transport::Message;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::frame::{self, Encoding, Kind};
use crate::writer::Writer;

/// A boxed, sendable future, as [`Service::call`] returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A set of methods callable by name.
pub trait Service: Send + Sync + 'static {
    /// Every method: names, parameters, results (`list_functions`).
    fn functions(&self) -> Vec<FunctionInfo>;

    /// Runs the method `request` names. The future's output is the encoded result
    /// ([`Responder::reply`]); a streaming method sends its items through
    /// [`Responder::sink`] and returns `Ok` with an empty vector once done.
    fn call(self: Arc<Self>, request: Request) -> BoxFuture<Result<Vec<u8>, Fault>>;
}

/// A method's description, as `list_functions` returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionInfo {
    /// The method's name.
    pub name: String,
    /// Its parameters, in order.
    pub params: Vec<Param>,
    /// The Rust type of its result (of each item, for a streaming method).
    pub returns: String,
    /// Whether it answers with a stream of items.
    pub streaming: bool,
    /// Its documentation, if any.
    #[serde(default)]
    pub doc: String,
}

/// A method parameter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    /// Its name.
    pub name: String,
    /// Its Rust type, as written.
    #[serde(rename = "type")]
    pub ty: String,
}

/// Why a handler did not produce a result; the client sees the matching [`crate::Error`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// The service has no such method.
    #[error("unknown method")]
    UnknownMethod,
    /// The arguments did not decode.
    #[error("bad arguments: {0}")]
    BadArguments(String),
    /// The handler failed.
    #[error("{kind}: {message}")]
    Remote {
        /// A short kind (the error type's name, or `"panic"`).
        kind: String,
        /// Its message.
        message: String,
    },
    /// The client cancelled the call.
    #[error("cancelled")]
    Cancelled,
}

impl Fault {
    /// A handler error: `kind` is the error type's name (its last path segment), `message`
    /// its `Display`.
    pub fn from_error<E: std::fmt::Display + ?Sized>(error: &E) -> Self {
        let full = std::any::type_name::<E>();
        let base = full.split('<').next().unwrap_or(full);
        let kind = base.rsplit("::").next().unwrap_or(base);
        Self::Remote {
            kind: kind.to_owned(),
            message: error.to_string(),
        }
    }

    /// A panic's fault: kind `panic`, the panic's message (when it is a string).
    #[must_use]
    pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "the handler panicked".to_owned()
        };
        Self::Remote {
            kind: "panic".into(),
            message,
        }
    }

    pub(crate) fn record(&self) -> codec::ErrorRecord {
        let (code, kind, message) = match self {
            Self::UnknownMethod => ("unknown_method", String::new(), String::new()),
            Self::BadArguments(m) => ("bad_arguments", String::new(), m.clone()),
            Self::Remote { kind, message } => ("remote", kind.clone(), message.clone()),
            Self::Cancelled => ("cancelled", String::new(), String::new()),
        };
        codec::ErrorRecord {
            code: code.to_owned(),
            kind,
            message,
        }
    }
}

/// Runs a blocking handler on tokio's blocking threads, so it holds up no task serving other
/// calls; what `#[rpc(blocking)]` generates. A blocking handler that wants to stop when its
/// call is cancelled polls [`CallContext::is_cancelled`]: it runs on until it returns.
///
/// # Errors
/// [`Fault::Remote`] of kind `panic` when `handler` panicked; [`Fault::Cancelled`] when the
/// runtime shut down before it ran.
pub async fn run_blocking<F, R>(handler: F) -> Result<R, Fault>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(handler)
        .await
        .map_err(|e| match e.try_into_panic() {
            Ok(panic) => Fault::from_panic(panic.as_ref()),
            Err(_) => Fault::Cancelled,
        })
}

/// One call's shared state at the server: cancellation and stream credit.
#[derive(Debug)]
pub(crate) struct CallState {
    /// How the call is answered: [`ANSWER_VALUE`], [`ANSWER_STREAM`] or [`ANSWER_SENT`].
    pub(crate) answer: AtomicU8,
    cancelled: AtomicBool,
    notify: tokio::sync::Notify,
    /// Items the client can take now; closed on cancel.
    credit: tokio::sync::Semaphore,
}

impl CallState {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            answer: AtomicU8::new(ANSWER_VALUE),
            cancelled: AtomicBool::new(false),
            notify: tokio::sync::Notify::new(),
            credit: tokio::sync::Semaphore::new(0),
        })
    }

    /// Takes `spare` for the next call if nobody else holds it and its call left it as new
    /// (answered by value, not cancelled, no credit granted), else makes a new one: a call
    /// answered at once costs no allocation for its state.
    pub(crate) fn reuse(spare: Option<Arc<Self>>) -> Arc<Self> {
        if let Some(mut state) = spare
            && Arc::get_mut(&mut state).is_some()
            && state.is_as_new()
        {
            return state;
        }
        Self::new()
    }

    /// Whether the state is as [`CallState::new`] made it.
    fn is_as_new(&self) -> bool {
        // Relaxed: the caller holds the only reference (`Arc::get_mut`), so every store to
        // these words happened before, in a thread that has handed the state back.
        self.answer.load(Ordering::Relaxed) == ANSWER_VALUE
            && !self.cancelled.load(Ordering::Relaxed)
            && self.credit.available_permits() == 0
            && !self.credit.is_closed()
    }

    pub(crate) fn cancel(&self) {
        // Release: pairs with the Acquire in `is_cancelled`; nothing else rides on it.
        self.cancelled.store(true, Ordering::Release);
        self.notify.notify_waiters();
        self.credit.close();
    }

    /// Adds the client's `items` to the stream's credit. A client can grant credit it never
    /// uses, frame after frame, and `add_permits` panics past `MAX_PERMITS`: the credit
    /// saturates there instead (no stream sends that many items). Only the connection's reader
    /// grants, and taking permits only makes room, so the room read here is still there.
    pub(crate) fn grant(&self, items: u32) {
        let items = usize::try_from(items).unwrap_or(usize::MAX);
        let room = tokio::sync::Semaphore::MAX_PERMITS - self.credit.available_permits();
        self.credit.add_permits(items.min(room));
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    pub(crate) async fn cancelled(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// What a handler can learn about its call: whether the client still wants it.
#[derive(Clone, Debug)]
pub struct CallContext {
    call_id: u64,
    state: Arc<CallState>,
}

impl CallContext {
    /// The call's id on its link.
    #[must_use]
    pub fn call_id(&self) -> u64 {
        self.call_id
    }

    /// Whether the client cancelled the call (dropped it, or its timeout ran out). A blocking
    /// handler polls this; an async handler's future is also dropped at the next await.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.state.is_cancelled()
    }

    /// Completes when the client cancels the call.
    pub async fn cancelled(&self) {
        self.state.cancelled().await;
    }
}

/// A call as the server received it. The arguments stay in the link's memory until
/// [`Request::into_args`] decodes them and releases it.
#[derive(Debug)]
pub struct Request {
    message: Message,
    /// Where the method name starts and the payload starts, in `message`.
    method: std::ops::Range<usize>,
    encoding: Encoding,
    responder: Responder,
}

impl Request {
    pub(crate) fn new(
        message: Message,
        call_id: u64,
        encoding: Encoding,
        method_len: usize,
        state: Arc<CallState>,
        writer: Arc<Writer>,
    ) -> Self {
        Self {
            message,
            method: frame::HEADER_LEN..frame::HEADER_LEN + method_len,
            encoding,
            responder: Responder {
                // A raw request (a loaned buffer) is answered in MessagePack, unless the
                // handler sends raw bytes itself.
                encoding: reply_encoding(encoding),
                context: CallContext { call_id, state },
                writer,
            },
        }
    }

    /// The method called.
    #[must_use]
    pub fn method(&self) -> &str {
        // The frame decoder checked that these bytes are UTF-8 and inside the message; a
        // message's bytes do not change while we hold it unless the peer is hostile, and then
        // the worst case is a name that matches no method.
        std::str::from_utf8(&self.message.as_slice()[self.method.clone()]).unwrap_or("")
    }

    /// How the arguments are encoded (and the reply will be).
    #[must_use]
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The encoded arguments, in place.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        self.message
            .as_slice()
            .get(self.method.end..)
            .unwrap_or_default()
    }

    /// The call's context.
    #[must_use]
    pub fn context(&self) -> &CallContext {
        &self.responder.context
    }

    /// Decodes the arguments (a tuple of the method's parameters), releases the message, and
    /// gives what the handler answers with.
    ///
    /// # Errors
    /// [`Fault::BadArguments`] when they do not decode as `A`.
    pub fn into_args<A: DeserializeOwned>(self) -> Result<(A, Responder), Fault> {
        let args = codec::decode(self.encoding, self.payload()).map_err(Fault::BadArguments)?;
        Ok((args, self.responder))
    }

    /// Releases the arguments' decoding: the payload stays in the link's memory, unread and
    /// uncopied, for as long as the [`Payload`] lives (a method that takes a large buffer).
    #[must_use]
    pub fn into_payload(self) -> (Payload, Responder) {
        let payload = Payload {
            at: self.method.end,
            encoding: self.encoding,
            message: self.message,
        };
        (payload, self.responder)
    }

    /// For a method without parameters: accepts any arguments (an empty tuple, `nil`, or an
    /// empty array), releases the message.
    #[must_use]
    pub fn into_responder(self) -> Responder {
        self.responder
    }
}

/// How a handler answers: encode a reply, or stream items.
#[derive(Debug)]
pub struct Responder {
    encoding: Encoding,
    context: CallContext,
    writer: Arc<Writer>,
}

/// How the answer to a request in `encoding` is encoded.
pub(crate) fn reply_encoding(encoding: Encoding) -> Encoding {
    match encoding {
        Encoding::Raw => Encoding::MessagePack,
        other => other,
    }
}

/// The handler's result is the answer.
pub(crate) const ANSWER_VALUE: u8 = 0;
/// The handler streamed items; the server ends the stream.
pub(crate) const ANSWER_STREAM: u8 = 1;
/// The handler sent the answer itself ([`Responder::send_loaned`]).
pub(crate) const ANSWER_SENT: u8 = 2;

impl Responder {
    /// The call's context.
    #[must_use]
    pub fn context(&self) -> &CallContext {
        &self.context
    }

    /// Encodes a result in the request's encoding.
    ///
    /// # Errors
    /// [`Fault::Remote`] of kind `encode` when `value` does not serialize.
    pub fn reply<R: Serialize + ?Sized>(&self, value: &R) -> Result<Vec<u8>, Fault> {
        codec::encode(self.encoding, value).map_err(|message| Fault::Remote {
            kind: "encode".into(),
            message,
        })
    }

    /// The sink a streaming method sends its items into.
    #[must_use]
    pub fn sink<T: Serialize>(&self) -> Sink<T> {
        // Relaxed: read by the server task that runs this call, after the handler finished.
        self.context
            .state
            .answer
            .store(ANSWER_STREAM, Ordering::Relaxed);
        Sink {
            encoding: self.encoding,
            context: self.context.clone(),
            writer: Arc::clone(&self.writer),
            _item: PhantomData,
        }
    }

    /// Answers with `len` raw bytes that `fill` writes in place, in the link's memory (no copy
    /// on the way to the caller, who reads them with [`crate::Client::call_loaned`]). The
    /// handler then returns `Ok` with an empty vector.
    ///
    /// # Errors
    /// [`Fault::Remote`] of kind `link` if the link failed.
    pub async fn send_loaned(&self, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<(), Fault> {
        self.writer
            .send_with(
                Kind::Response,
                Encoding::Raw,
                self.context.call_id,
                "",
                len,
                fill,
            )
            .await
            .map_err(|e| Fault::Remote {
                kind: "link".into(),
                message: e.to_string(),
            })?;
        // Relaxed: read by the server task that runs this call, after the handler finished.
        self.context
            .state
            .answer
            .store(ANSWER_SENT, Ordering::Relaxed);
        Ok(())
    }
}

/// Where a streaming method sends its items. `send` waits while the client has no room
/// (credit-based flow control: the client grants items as it consumes them).
#[derive(Debug)]
pub struct Sink<T> {
    encoding: Encoding,
    context: CallContext,
    writer: Arc<Writer>,
    _item: PhantomData<fn(T)>,
}

impl<T: Serialize> Sink<T> {
    /// Sends one item, once the client has room for it.
    ///
    /// # Errors
    /// [`Fault::Cancelled`] once the client cancelled the call (stop producing); a
    /// [`Fault::Remote`] if the item does not encode or the link failed.
    pub async fn send(&self, item: &T) -> Result<(), Fault> {
        let permit = self
            .context
            .state
            .credit
            .acquire()
            .await
            .map_err(|_| Fault::Cancelled)?;
        permit.forget();
        let payload = codec::encode(self.encoding, item).map_err(|message| Fault::Remote {
            kind: "encode".into(),
            message,
        })?;
        self.writer
            .send(
                Kind::StreamItem,
                self.encoding,
                self.context.call_id,
                "",
                &payload,
            )
            .await
            .map_err(|e| Fault::Remote {
                kind: "link".into(),
                message: e.to_string(),
            })
    }

    /// The call's context.
    #[must_use]
    pub fn context(&self) -> &CallContext {
        &self.context
    }
}

/// A message's payload in place in the link's memory: the bytes stay where the peer wrote
/// them until this is dropped (then the slot goes back to the peer).
#[derive(Debug)]
pub struct Payload {
    message: Message,
    at: usize,
    encoding: Encoding,
}

impl Payload {
    pub(crate) fn new(message: Message, at: usize, encoding: Encoding) -> Self {
        Self {
            message,
            at,
            encoding,
        }
    }

    /// The bytes, in place.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        self.message.get(self.at..).unwrap_or_default()
    }

    /// Their length.
    #[must_use]
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// How they are encoded (`Raw` for bytes sent with a loan).
    #[must_use]
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Decodes them as a `T` (in their encoding).
    ///
    /// # Errors
    /// [`Fault::BadArguments`] when they do not decode (raw bytes never do).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, Fault> {
        codec::decode(self.encoding, self.as_slice()).map_err(Fault::BadArguments)
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_state_is_reused_only_when_alone_and_as_new() {
        let fresh = CallState::new();
        let at = Arc::as_ptr(&fresh);
        let reused = CallState::reuse(Some(fresh));
        assert_eq!(Arc::as_ptr(&reused), at);
        assert_ne!(Arc::as_ptr(&CallState::reuse(None)), at);

        let held = CallState::new();
        let other = Arc::clone(&held);
        assert_ne!(
            Arc::as_ptr(&CallState::reuse(Some(held))),
            Arc::as_ptr(&other)
        );

        let changed: [fn(&CallState); 4] = [
            CallState::cancel,
            |s| s.grant(1),
            |s| s.answer.store(ANSWER_STREAM, Ordering::Relaxed),
            |s| s.answer.store(ANSWER_SENT, Ordering::Relaxed),
        ];
        for change in changed {
            let state = CallState::new();
            change(&state);
            assert!(!state.is_as_new());
            // Not that one (it is not as new): a new one.
            assert!(CallState::reuse(Some(state)).is_as_new());
        }
    }

    #[test]
    fn credit_a_client_never_uses_saturates() {
        let state = CallState::new();
        let max = tokio::sync::Semaphore::MAX_PERMITS;
        state.grant(u32::MAX);
        assert_eq!(state.credit.available_permits(), u32::MAX as usize);
        // As if the client had sent that many grants already (2^29 frames of u32::MAX).
        state.credit.add_permits(max - 1 - u32::MAX as usize);
        state.grant(u32::MAX);
        state.grant(1);
        assert_eq!(state.credit.available_permits(), max);
    }
}
