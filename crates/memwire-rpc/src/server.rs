//! Serving a [`Service`] on a link: read frames, run each call concurrently, answer each as it
//! completes (out of order), honour cancels and stream credit, answer pings.
//!
//! A call's handler is polled once right where its request is read: a handler that completes
//! without waiting (most do) answers with no task spawned and no thread woken. One that waits
//! continues as its own task. A panicking handler is caught and answered as a `panic` error;
//! the server keeps serving.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
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

/// Calls in flight on one link, by id.
type Calls = Arc<Mutex<IdMap<Arc<CallState>>>>;

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
                let state = CallState::new();
                let fresh = calls
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(call_id, Arc::clone(&state))
                    .is_none();
                if !fresh {
                    break Err(Error::Protocol(format!(
                        "call id {call_id} reused while in flight"
                    )));
                }
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
                    state,
                    Arc::clone(&writer),
                    Arc::clone(&calls),
                );
                spawn_unless_ready(call).await;
            }
            Kind::Cancel => {
                let state = calls
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&call_id);
                if let Some(state) = state {
                    state.cancel();
                }
            }
            Kind::Credit => {
                let Some(items) = credit else {
                    break Err(Error::Protocol("a credit frame carries 4 bytes".into()));
                };
                let state = calls
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&call_id)
                    .cloned();
                if let Some(state) = state {
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
    for (_, state) in calls.lock().unwrap_or_else(PoisonError::into_inner).drain() {
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
    let answer = request.responder_answer();
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
    let still_wanted = calls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&call_id)
        .is_some();
    if !still_wanted {
        return;
    }
    let sent = match outcome {
        Ok(_) if answer.load(Ordering::Relaxed) == ANSWER_SENT => Ok(()),
        Ok(_) if answer.load(Ordering::Relaxed) == ANSWER_STREAM => {
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

/// Polls `call` once here; if it is not done, hands it to its own task.
async fn spawn_unless_ready<F: Future<Output = ()> + Send + 'static>(call: F) {
    let mut call = Box::pin(call);
    let done = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx).is_ready())).await;
    if !done {
        tokio::spawn(call);
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
