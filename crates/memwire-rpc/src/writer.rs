//! The sending half of a link, shared by every call on it: one frame at a time, written
//! straight into a loan (no writer task, so a call costs no thread wake-up of our own).

use memwire_transport::Tx;

use crate::error::{Error, Result};
use crate::frame::{self, Encoding, Kind};

/// A link's [`Tx`] behind an async lock.
#[derive(Debug)]
pub(crate) struct Writer {
    tx: tokio::sync::Mutex<Tx>,
}

impl Writer {
    pub(crate) fn new(tx: Tx) -> Self {
        Self {
            tx: tokio::sync::Mutex::new(tx),
        }
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
        let mut tx = self.tx.lock().await;
        let mut loan = tx.loan_async(len).await.map_err(Error::from)?;
        let buf = loan.as_mut_slice();
        let at = frame::encode_head(buf, kind, encoding, call_id, method);
        fill(&mut buf[at..]);
        loan.commit_async().await.map_err(Error::from)
    }

    /// Sends a frame without a payload if that can be done now, without waiting: for paths
    /// that cannot await (a dropped call's cancel). `false`: it could not, try
    /// [`Writer::send`] from a task.
    pub(crate) fn try_send_empty(&self, kind: Kind, call_id: u64) -> bool {
        let Ok(mut tx) = self.tx.try_lock() else {
            return false;
        };
        let Ok(mut loan) = tx.try_loan(frame::HEADER_LEN) else {
            return false;
        };
        frame::encode_head(loan.as_mut_slice(), kind, Encoding::Raw, call_id, "");
        loan.commit().is_ok()
    }
}
