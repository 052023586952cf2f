//! One call: admission (breaker, metrics), the request written straight into the link, the
//! wait for its answer (or its timeout), and the cancel a dropped call sends.

use super::*;

impl Client {
    /// Sends a request and waits for its answer (or the timeout); cancels it if dropped.
    /// Asks the breaker first; counts the call in the metrics and the breaker.
    pub(super) async fn call_raw(
        &self,
        method: &str,
        encoding: Encoding,
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Reply> {
        self.call_filled(method, encoding, payload.len(), timeout, |buf| {
            buf.copy_from_slice(payload);
        })
        .await
    }

    /// [`Client::call_raw`] whose `len`-byte payload `fill` writes in place.
    pub(super) async fn call_filled(
        &self,
        method: &str,
        encoding: Encoding,
        len: usize,
        timeout: Option<Duration>,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<Reply> {
        let guard = self.admit()?;
        let result = self
            .call_unguarded(method, encoding, len, timeout, fill)
            .await;
        guard.finish(
            &self.inner,
            result.as_ref().map(|_| ()).map_err(Error::kind),
        );
        result
    }

    /// Asks the breaker, starts the call's timer. A closed link fails at once, with why it
    /// closed, whatever the breaker says.
    pub(super) fn admit(&self) -> Result<Accounting> {
        let timer = self.inner.metrics.start();
        if let Some(closed) = self.inner.table.closed() {
            let e = closed.error();
            self.inner.metrics.finish(timer, Err(e.kind()));
            return Err(e);
        }
        let admission = match self.inner.breaker.as_ref().map(CircuitBreaker::admit) {
            None => None,
            Some(Ok(admission)) => Some(admission),
            Some(Err(e)) => {
                self.inner.metrics.finish(timer, Err(e.kind()));
                return Err(e);
            }
        };
        Ok(Accounting { timer, admission })
    }

    async fn call_unguarded(
        &self,
        method: &str,
        encoding: Encoding,
        len: usize,
        timeout: Option<Duration>,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<Reply> {
        if !frame::check_method(method) {
            return Err(Error::UnknownMethod {
                method: method.to_owned(),
            });
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        // Before the insert: any answer left for this call counts after it.
        let seen = self.inner.table.changes();
        self.inner
            .table
            .insert(id, Waiting::Call(CallSlot::default()))?;
        let mut guard = CancelOnDrop {
            inner: &self.inner,
            id,
            armed: true,
        };
        self.inner
            .writer
            .send_with(Kind::Request, encoding, id, method, len, fill)
            .await?;
        let mut inbox = CallInbox {
            table: &self.inner.table,
            id,
            seen,
        };
        // Each arm makes its own wait: a wait future bound first is moved (copied, a few
        // hundred bytes) into the arm that awaits it.
        let outcome = match timeout {
            None => wait_for(&self.inner, &mut inbox, Some(id)).await,
            Some(t) => {
                match tokio::time::timeout(t, wait_for(&self.inner, &mut inbox, Some(id))).await {
                    Ok(outcome) => outcome,
                    Err(_) => return Err(Error::Timeout(t)),
                }
            }
        };
        guard.armed = false;
        match outcome {
            Some(Outcome::Reply(reply)) => Ok(reply),
            Some(Outcome::Failed(record)) => Err(remote_error(method, record)),
            Some(Outcome::Closed(closed)) => Err(closed.error()),
            Some(Outcome::End) => Err(Error::Protocol(format!(
                "call {id} to {method:?} ended as a stream"
            ))),
            // Our entry left the table without an answer: only `close` does that, and it
            // answers first; kept for safety.
            None => Err(self.gone()),
        }
    }
}

/// A call's timer and breaker admission, settled together when it ends.
#[derive(Debug)]
pub(super) struct Accounting {
    timer: CallTimer,
    admission: Option<Admission>,
}

impl Accounting {
    pub(super) fn finish(self, inner: &Inner, outcome: std::result::Result<(), crate::ErrorKind>) {
        inner.metrics.finish(self.timer, outcome);
        if let (Some(breaker), Some(admission)) = (&inner.breaker, self.admission) {
            breaker.record(admission, outcome);
        }
    }
}

/// Arguments up to this many bytes (postcard) are encoded on the stack, not in a `Vec`.
pub(super) const SMALL_ARGS: usize = 64;

pub(super) fn encode_args<'a, A: Serialize + ?Sized>(
    method: &str,
    encoding: Encoding,
    args: &A,
    small: &'a mut [u8; SMALL_ARGS],
) -> Result<std::borrow::Cow<'a, [u8]>> {
    if !frame::check_method(method) {
        return Err(Error::UnknownMethod {
            method: method.to_owned(),
        });
    }
    if encoding == Encoding::Postcard
        && let Ok(encoded) = postcard::to_slice(args, small)
    {
        return Ok(std::borrow::Cow::Borrowed(encoded));
    }
    codec::encode(encoding, args)
        .map(std::borrow::Cow::Owned)
        .map_err(|message| Error::BadArguments {
            method: method.to_owned(),
            message,
        })
}

pub(super) fn remote_error(method: &str, record: ErrorRecord) -> Error {
    match record.code.as_str() {
        "unknown_method" => Error::UnknownMethod {
            method: method.to_owned(),
        },
        "bad_arguments" => Error::BadArguments {
            method: method.to_owned(),
            message: record.message,
        },
        "cancelled" => Error::Cancelled,
        _ => Error::Remote {
            kind: if record.kind.is_empty() {
                record.code
            } else {
                record.kind
            },
            message: record.message,
        },
    }
}

/// Tells the server a call is no longer wanted, unless its answer came.
struct CancelOnDrop<'a> {
    inner: &'a Arc<Inner>,
    id: u64,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed && self.inner.table.remove(self.id) {
            cancel(&self.inner.writer, self.id);
        }
    }
}

/// Sends a cancel frame now if the link has room, else from a task.
pub(super) fn cancel(writer: &Arc<Writer>, id: u64) {
    if let Some(Ok(())) = writer.try_send(Kind::Cancel, Encoding::Raw, id, &[]) {
        return;
    }
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let writer = Arc::clone(writer);
        runtime.spawn(async move {
            let _ = writer.send(Kind::Cancel, Encoding::Raw, id, "", &[]).await;
        });
    }
}
