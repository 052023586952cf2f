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
use crate::service::{ANSWER_SENT, ANSWER_STREAM, CallState, Fault, Request, Service};
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
                let state = CallState::new();
                let request = Request::new(
                    message,
                    call_id,
                    encoding,
                    method_len,
                    Arc::clone(&state),
                    Arc::clone(&writer),
                );
                let call = run_call(
                    Arc::clone(&service),
                    request,
                    Arc::clone(&state),
                    Arc::clone(&writer),
                    Arc::clone(&calls),
                );
                let mut call = Box::pin(call);
                let done =
                    std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx).is_ready())).await;
                if !done {
                    // Still running its handler (not only sending its answer): from now on a
                    // cancel or a credit frame can reach it. Relaxed: the first poll ran on
                    // this thread.
                    if !state.answering.load(Ordering::Relaxed) {
                        calls.insert(call_id, Arc::clone(&state));
                        state.registered.store(true, Ordering::Release);
                    }
                    tokio::spawn(call);
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

/// One call: run the handler (unless cancelled), then answer.
async fn run_call<S: Service>(
    service: Arc<S>,
    request: Request,
    state: Arc<CallState>,
    writer: Arc<Writer>,
    calls: Calls,
) {
    let call_id = request.context().call_id();
    let encoding = crate::service::reply_encoding(request.encoding());
    let outcome = if request.method() == LIST_FUNCTIONS {
        let functions = service.functions();
        codec::encode(encoding, &functions).map_err(|message| Fault::Remote {
            kind: "encode".into(),
            message,
        })
    } else {
        let handler = CatchUnwind(service.call(request));
        tokio::select! {
            biased;
            outcome = handler => outcome,
            () = state.cancelled() => Err(Fault::Cancelled),
        }
    };
    // A call that completes in its first poll was never registered: no cancel can have
    // reached it. A registered one is still wanted if no cancel took it out.
    // Acquire: pairs with the Release store made before the call's task was spawned.
    let still_wanted = !state.registered.load(Ordering::Acquire) || calls.remove(call_id).is_some();
    // Relaxed: read by this link's reader after this call's first poll, on the same thread.
    state.answering.store(true, Ordering::Relaxed);
    if !still_wanted {
        return;
    }
    let sent = match outcome {
        Ok(_) if state.answer.load(Ordering::Relaxed) == ANSWER_SENT => Ok(()),
        Ok(_) if state.answer.load(Ordering::Relaxed) == ANSWER_STREAM => {
            writer
                .send(Kind::StreamEnd, Encoding::Raw, call_id, "", &[])
                .await
        }
        Ok(payload) => {
            writer
                .send(Kind::Response, encoding, call_id, "", &payload)
                .await
        }
        Err(fault) => {
            let record = codec::encode(Encoding::MessagePack, &fault.record()).unwrap_or_default();
            writer
                .send(Kind::Error, Encoding::MessagePack, call_id, "", &record)
                .await
        }
    };
    if let Err(e) = sent {
        tracing::debug!(call_id, error = %e, "could not answer a call");
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
