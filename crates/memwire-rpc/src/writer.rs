//! The sending half of a link, shared by every call on it: one frame at a time, written
//! straight into a loan (no writer task, so a call costs no thread wake-up of our own).
//!
//! A frame the link has room for is written under a plain mutex, never held across an await
//! (an uncontended lock costs a few ns, tokio's async mutex five times that). A sender that
//! must wait for room, or for the control socket of a large message, takes the [`Tx`] out of
//! the mutex for its wait; the senders that come meanwhile wait for it to be put back, which
//! its guard does even when the waiting future is dropped.

use std::sync::{Mutex, MutexGuard, PoisonError};

use memwire_transport::Tx;
use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::frame::{self, Encoding, Kind};

/// A link's [`Tx`]: in the mutex, or out with the one sender waiting for room.
#[derive(Debug)]
pub(crate) struct Writer {
    tx: Mutex<Option<Tx>>,
    /// Notified when a waiting sender puts the `Tx` back.
    back: Notify,
}

impl Writer {
    pub(crate) fn new(tx: Tx) -> Self {
        Self {
            tx: Mutex::new(Some(tx)),
            back: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Tx>> {
        // A panic while the lock was held (a caller's `fill`) dropped its loan, which gives the
        // memory back: the `Tx` is consistent.
        self.tx.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends one frame, waiting for room in the ring or the pool.
    pub(crate) async fn send(
        &self,
        kind: Kind,
        encoding: Encoding,
        call_id: u64,
        method: &str,
        payload: &[u8],
    ) -> Result<()> {
        self.send_with(kind, encoding, call_id, method, payload.len(), |buf| {
            buf.copy_from_slice(payload);
        })
        .await
    }

    /// Sends one frame whose `payload_len`-byte payload `fill` writes in place, in the link's
    /// memory: the bytes are never copied on their way to the peer.
    pub(crate) async fn send_with(
        &self,
        kind: Kind,
        encoding: Encoding,
        call_id: u64,
        method: &str,
        payload_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<()> {
        let len = frame::encoded_len(method, payload_len);
        let mut write = Some(|buf: &mut [u8]| {
            let at = frame::encode_head(buf, kind, encoding, call_id, method);
            fill(&mut buf[at..]);
        });
        let mut out = loop {
            {
                let mut slot = self.lock();
                if let Some(tx) = slot.as_mut() {
                    if let Some(done) = try_write(tx, len, &mut write) {
                        return done;
                    }
                    break Out {
                        writer: self,
                        tx: slot.take(),
                    };
                }
            }
            // Another sender has the `Tx` out. Waiting is registered before the re-check, so a
            // put-back in between is seen by one or the other.
            let back = self.back.notified();
            if self.lock().is_none() {
                back.await;
            }
        };
        let tx = out
            .tx
            .as_mut()
            .ok_or(Error::Protocol("the link's sender is gone".into()))?;
        let mut loan = tx.loan_async(len).await.map_err(Error::from)?;
        if let Some(write) = write.take() {
            write(loan.as_mut_slice());
        }
        loan.commit_async().await.map_err(Error::from)
    }

    /// Sends one frame now if the link has room for it: `Some` with how it went; `None` when
    /// it would wait (send it with [`Writer::send`], from a task if the caller may not wait).
    pub(crate) fn try_send(
        &self,
        kind: Kind,
        encoding: Encoding,
        call_id: u64,
        payload: &[u8],
    ) -> Option<Result<()>> {
        let len = frame::encoded_len("", payload.len());
        let mut slot = self.lock();
        let tx = slot.as_mut()?;
        try_write(
            tx,
            len,
            &mut Some(|buf: &mut [u8]| {
                let at = frame::encode_head(buf, kind, encoding, call_id, "");
                buf[at..].copy_from_slice(payload);
            }),
        )
    }
}

/// Writes a `len`-byte frame with `write` (taken only then) and commits it, if `tx` has room
/// now and the frame needs no memfd: `Some` with how it went, `None` when it would wait.
fn try_write(
    tx: &mut Tx,
    len: usize,
    write: &mut Option<impl FnOnce(&mut [u8])>,
) -> Option<Result<()>> {
    if tx.is_large(len) {
        return None;
    }
    match tx.try_loan(len) {
        Ok(mut loan) => {
            if let Some(write) = write.take() {
                write(loan.as_mut_slice());
            }
            Some(loan.commit().map_err(Error::from))
        }
        Err(memwire_transport::Error::WouldBlock) => None,
        Err(e) => Some(Err(Error::from(e))),
    }
}

/// The `Tx`, out of the mutex while its sender waits; put back (and the senders waiting for
/// it woken) when dropped, however the wait ends.
struct Out<'a> {
    writer: &'a Writer,
    tx: Option<Tx>,
}

impl Drop for Out<'_> {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            *self.writer.lock() = Some(tx);
        }
        self.writer.back.notify_waiters();
    }
}
