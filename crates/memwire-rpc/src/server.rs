//! Serving a [`Service`] on a link: read frames, run each call concurrently, answer each as it
//! completes (out of order), honour cancels and stream credit, answer pings.
//!
//! A call's handler is polled once right where its request is read: a handler that completes
//! without waiting (most do) answers with no task spawned and no thread woken. One that waits
//! continues as its own task, and only then enters the link's table of pending calls, where a
//! cancel or a credit frame can reach it (one that completed in its first poll had answered
//! before the reader could read such a frame). A panicking handler is caught and answered as a
//! `panic` error; the server keeps serving.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use memwire_transport::Link;

use crate::codec;
use crate::error::{Error, Result};
use crate::frame::{self, Encoding, Kind};
use crate::ids::IdMap;
use crate::service::{ANSWER_SENT, ANSWER_STREAM, BoxFuture, CallState, Fault, Request, Service};
use crate::writer::Writer;

/// The name of the built-in method that lists a service's functions.
pub const LIST_FUNCTIONS: &str = "rpc.functions";

/// The calls of one link that did not complete in their first poll, by id: the ones a cancel
/// or a credit frame can still reach. A call that completes at once never enters it.
#[derive(Debug, Default)]
struct Pending {
    map: Mutex<IdMap<Arc<CallState>>>,
    /// `map.len()`, readable without the lock (it changes only under it).
    len: AtomicUsize,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, IdMap<Arc<CallState>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether call `id` is pending; no lock while none is (the usual case).
    fn contains(&self, id: u64) -> bool {
        // Relaxed: only this link's reader inserts, and it is the caller; a removal racing
        // with the check only makes a reused id look in flight a moment longer.
        self.len.load(Ordering::Relaxed) > 0 && self.lock().contains_key(&id)
    }

    /// Adds call `id`; `false` if it was pending already.
    fn insert(&self, id: u64, state: Arc<CallState>) -> bool {
        let mut map = self.lock();
        let fresh = map.insert(id, state).is_none();
        self.len.store(map.len(), Ordering::Relaxed);
        fresh
    }

    fn remove(&self, id: u64) -> Option<Arc<CallState>> {
        let mut map = self.lock();
        let removed = map.remove(&id);
        self.len.store(map.len(), Ordering::Relaxed);
        removed
    }

    fn get(&self, id: u64) -> Option<Arc<CallState>> {
        self.lock().get(&id).cloned()
    }

    fn drain(&self) -> Vec<Arc<CallState>> {
        let mut map = self.lock();
        self.len.store(0, Ordering::Relaxed);
        map.drain().map(|(_, state)| state).collect()
    }
}

/// Calls in flight on one link.
type Calls = Arc<Pending>;

/// Serves `service` on `link` until the peer goes away (then `Ok`) or breaks the protocol
/// (`Err(Error::Protocol)`). Calls run concurrently on the current tokio runtime.
///
/// # Errors
/// [`Error::Protocol`] for a malformed frame; [`Error::Transport`] if the link fails.
pub async fn serve_link<S: Service>(link: Link, service: Arc<S>) -> Result<()> {
    let (tx, mut rx) = link.split();
    let writer = Arc::new(Writer::new(tx));
    let calls: Calls = Arc::default();
    // The state of the last call answered at once, for the next call to reuse.
    let mut spare: Option<Arc<CallState>> = None;
    let result = loop {
        let message = match rx.recv_async().await {
            Ok(m) => m,
            Err(memwire_transport::Error::PeerGone { .. }) => break Ok(()),
            Err(e) => break Err(Error::from(e)),
        };
        let (kind, encoding, call_id, method_len, credit) = match frame::decode(&message) {
            Ok(f) => (
                f.kind,
                f.encoding,
                f.call_id,
                f.method.len(),
                <[u8; 4]>::try_from(f.payload).ok(),
            ),
            Err(e) => break Err(Error::Protocol(e.to_string())),
        };
        match kind {
            Kind::Request => {
                if calls.contains(call_id) {
                    break Err(Error::Protocol(format!(
                        "call id {call_id} reused while in flight"
                    )));
                }
                let state = CallState::reuse(spare.take());
                let reply_encoding = crate::service::reply_encoding(encoding);
                let request = Request::new(
                    message,
                    call_id,
                    encoding,
                    method_len,
                    Arc::clone(&state),
                    Arc::clone(&writer),
                );
                if request.method() == LIST_FUNCTIONS {
                    let outcome = list_functions(&*service, reply_encoding);
                    answer_now(&writer, &state, call_id, reply_encoding, outcome);
                    continue;
                }
                let mut handler = CatchUnwind(Arc::clone(&service).call(request));
                // The first poll, right here: most handlers complete in it.
                let first =
                    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut handler).poll(cx))).await;
                match first {
                    Poll::Ready(outcome) => {
                        drop(handler);
                        answer_now(&writer, &state, call_id, reply_encoding, outcome);
                        spare = Some(state);
                    }
                    Poll::Pending => {
                        // From now on a cancel or a credit frame can reach it.
                        calls.insert(call_id, Arc::clone(&state));
                        tokio::spawn(finish_call(
                            handler,
                            state,
                            Arc::clone(&writer),
                            Arc::clone(&calls),
                            call_id,
                            reply_encoding,
                        ));
                    }
                }
            }
            Kind::Cancel => {
                if let Some(state) = calls.remove(call_id) {
                    state.cancel();
                }
            }
            Kind::Credit => {
                let Some(items) = credit else {
                    break Err(Error::Protocol("a credit frame carries 4 bytes".into()));
                };
                if let Some(state) = calls.get(call_id) {
                    state.grant(u32::from_le_bytes(items));
                }
            }
            Kind::Ping => {
                drop(message);
                if let Err(e) = writer
                    .send(Kind::Pong, Encoding::Raw, call_id, "", &[])
                    .await
                {
                    break Err(e);
                }
            }
            other => {
                break Err(Error::Protocol(format!(
                    "a client does not send {other:?} frames"
                )));
            }
        }
    };
    // Whatever ended the conversation, no handler's result can be delivered any more.
    for state in calls.drain() {
        state.cancel();
    }
    if let Err(e) = &result {
        tracing::warn!(error = %e, "rpc connection ended");
    }
    result
}

/// `rpc.functions`: the service's functions, encoded.
fn list_functions<S: Service>(service: &S, encoding: Encoding) -> Result<Vec<u8>, Fault> {
    codec::encode(encoding, &service.functions()).map_err(|message| Fault::Remote {
        kind: "encode".into(),
        message,
    })
}

/// A call whose handler did not complete in its first poll, as its own task: the rest of the
/// handler (unless cancelled), then the answer, if a cancel did not take the call out of the
/// pending calls meanwhile.
async fn finish_call(
    mut handler: CatchUnwind<BoxFuture<Result<Vec<u8>, Fault>>>,
    state: Arc<CallState>,
    writer: Arc<Writer>,
    calls: Calls,
    call_id: u64,
    encoding: Encoding,
) {
    let outcome = tokio::select! {
        biased;
        outcome = &mut handler => outcome,
        () = state.cancelled() => Err(Fault::Cancelled),
    };
    if calls.remove(call_id).is_none() {
        return; // Cancelled: the client no longer waits for it.
    }
    if let Some(answer) = answer_frame(&state, encoding, outcome) {
        answer.send(&writer, call_id).await;
    }
}

/// Answers a call that completed in its first poll: at once when the link has room (no task,
/// no allocation but the answer's), else from a task, so the reader goes on reading.
fn answer_now(
    writer: &Arc<Writer>,
    state: &CallState,
    call_id: u64,
    encoding: Encoding,
    outcome: Result<Vec<u8>, Fault>,
) {
    let Some(answer) = answer_frame(state, encoding, outcome) else {
        return;
    };
    match writer.try_send(answer.kind, answer.encoding, call_id, &answer.payload) {
        Some(sent) => answer.sent(call_id, sent),
        None => {
            let writer = Arc::clone(writer);
            tokio::spawn(async move { answer.send(&writer, call_id).await });
        }
    }
}

/// The frame that answers a call.
struct Answer {
    kind: Kind,
    encoding: Encoding,
    payload: Vec<u8>,
}

impl Answer {
    /// Sends it, waiting for room in the link if need be.
    async fn send(self, writer: &Writer, call_id: u64) {
        let sent = writer
            .send(self.kind, self.encoding, call_id, "", &self.payload)
            .await;
        self.sent(call_id, sent);
    }

    /// After the send: its buffer goes back for reuse; a failure is only logged (the link is
    /// going away, and its peer with it).
    fn sent(self, call_id: u64, sent: Result<()>) {
        codec::recycle(self.payload);
        if let Err(e) = sent {
            tracing::debug!(call_id, error = %e, "could not answer a call");
        }
    }
}

/// The frame that answers a call with `outcome`: its value, the end of its stream, or its
/// fault; `None` when the handler sent the answer itself.
fn answer_frame(
    state: &CallState,
    encoding: Encoding,
    outcome: Result<Vec<u8>, Fault>,
) -> Option<Answer> {
    let answer = |kind, encoding, payload| {
        Some(Answer {
            kind,
            encoding,
            payload,
        })
    };
    // Relaxed: set by the handler, which ran on this task before this read.
    match (outcome, state.answer.load(Ordering::Relaxed)) {
        (Ok(_), ANSWER_SENT) => None,
        (Ok(_), ANSWER_STREAM) => answer(Kind::StreamEnd, Encoding::Raw, Vec::new()),
        (Ok(payload), _) => answer(Kind::Response, encoding, payload),
        (Err(fault), _) => {
            let record = codec::encode(Encoding::MessagePack, &fault.record()).unwrap_or_default();
            answer(Kind::Error, Encoding::MessagePack, record)
        }
    }
}

/// A handler's future whose panic becomes a `panic` fault.
struct CatchUnwind<F>(F);

impl<F: Future<Output = Result<Vec<u8>, Fault>> + Unpin> Future for CatchUnwind<F> {
    type Output = Result<Vec<u8>, Fault>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => Poll::Ready(Err(Fault::from_panic(panic.as_ref()))),
        }
    }
}
