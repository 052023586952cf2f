//! Reading the link: a waiting call reads for everyone while no other call does.

use super::*;

/// Whether the current runtime runs tasks besides the caller's (which may make calls too).
pub(super) fn other_tasks_alive() -> bool {
    tokio::runtime::Handle::try_current().is_ok_and(|h| h.metrics().num_alive_tasks() > 0)
}

/// Where a waiting call's answer lands: a oneshot (calls, pings) or a channel (streams).
pub(super) trait Inbox {
    /// `Some(Some(outcome))`: it is in; `Some(None)`: it never will be; `None`: not yet.
    fn try_take(&mut self) -> Option<Option<Outcome>>;
    /// Waits for the answer; `None` if it never comes.
    fn take(&mut self) -> impl std::future::Future<Output = Option<Outcome>> + Send;
}

impl Inbox for oneshot::Receiver<Outcome> {
    fn try_take(&mut self) -> Option<Option<Outcome>> {
        match self.try_recv() {
            Ok(outcome) => Some(Some(outcome)),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(None),
        }
    }

    async fn take(&mut self) -> Option<Outcome> {
        self.await.ok()
    }
}

impl Inbox for mpsc::UnboundedReceiver<Outcome> {
    fn try_take(&mut self) -> Option<Option<Outcome>> {
        match self.try_recv() {
            Ok(outcome) => Some(Some(outcome)),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => Some(None),
        }
    }

    async fn take(&mut self) -> Option<Outcome> {
        self.recv().await
    }
}

/// Waits for `inbox`'s answer, reading the link for everyone while no other call does. `own`
/// is the waiting call's id when it is a call (not a stream or a ping): read by this call
/// itself, its answer comes straight back rather than through `inbox`.
pub(super) async fn wait_for(
    inner: &Inner,
    inbox: &mut impl Inbox,
    own: Option<u64>,
) -> Option<Outcome> {
    loop {
        if let Some(outcome) = inbox.try_take() {
            return outcome;
        }
        if let Ok(rx) = inner.rx.try_lock() {
            let mut reader = Reader {
                inner,
                rx: Some(rx),
            };
            loop {
                if let Some(outcome) = inbox.try_take() {
                    return outcome;
                }
                let read = reader.read_one(own).await;
                if let Read::Mine(outcome) = read {
                    return Some(outcome);
                }
                if let Some(outcome) = inbox.try_take() {
                    return outcome;
                }
                if let Read::Handed = read {
                    // Another call's answer: let its task run (and send its next call) now,
                    // not after this one's answer.
                    memwire_transport::yield_to_tasks().await;
                }
            }
        }
        // If the reader's wake-up lands on a call whose answer is already in, that call
        // returns without polling its `Notified` to completion, and tokio forwards the
        // wake-up to the next waiting call when the `Notified` is dropped: the turn to read
        // is never lost.
        tokio::select! {
            biased;
            outcome = inbox.take() => return outcome,
            () = inner.lead.notified() => {}
        }
    }
}

/// What [`Reader::read_one`] did with the message it read.
pub(super) enum Read {
    /// It answered the reader's own call.
    Mine(Outcome),
    /// It went to another waiting call.
    Handed,
    /// Nobody was waiting for it, or the link ended.
    Nothing,
}

/// The call that reads the link for everyone; lets the next one take over when dropped.
pub(super) struct Reader<'a> {
    pub(super) inner: &'a Inner,
    /// Always `Some` until dropped: `drop` lets go of it before waking the next reader.
    pub(super) rx: Option<tokio::sync::MutexGuard<'a, Rx>>,
}

impl Reader<'_> {
    /// Reads one message and hands it to the call it answers (back to the caller, for call
    /// `own`); closes the table when the link ends or the server breaks the protocol.
    pub(super) async fn read_one(&mut self, own: Option<u64>) -> Read {
        let table = &self.inner.table;
        let Some(rx) = self.rx.as_mut() else {
            return Read::Nothing;
        };
        let received = rx.recv_async().await;
        let message = match received {
            Ok(m) => m,
            Err(memwire_transport::Error::PeerGone { pid }) => {
                table.close(Closed::PeerGone(pid));
                return Read::Nothing;
            }
            Err(e) => {
                table.close(Closed::Protocol(e.to_string()));
                return Read::Nothing;
            }
        };
        match dispatch(table, message, own) {
            Ok(Some(outcome)) => Read::Mine(outcome),
            Ok(None) => Read::Handed,
            Err(closed) => {
                table.close(closed);
                Read::Nothing
            }
        }
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        // Unlock first: a call woken while we still held the lock would find it taken, go
        // back to waiting, and leave the link with no reader.
        drop(self.rx.take());
        // Wakes one waiting call (or lets the next that waits pass at once) to read next.
        self.inner.lead.notify_one();
    }
}

/// Hands one message from the server to the call it answers; the answer to call `own` comes
/// back instead.
pub(super) fn dispatch(
    table: &Table,
    message: Message,
    own: Option<u64>,
) -> Result<Option<Outcome>, Closed> {
    let (kind, encoding, id) = match frame::decode(&message) {
        Ok(f) => (f.kind, f.encoding, f.call_id),
        Err(e) => return Err(Closed::Protocol(e.to_string())),
    };
    let outcome = match kind {
        Kind::Response | Kind::StreamItem => Outcome::Reply(Reply { message, encoding }),
        Kind::StreamEnd | Kind::Pong => Outcome::End,
        Kind::Error => {
            let payload = message.get(frame::HEADER_LEN..).unwrap_or_default();
            match codec::decode::<ErrorRecord>(Encoding::MessagePack, payload) {
                Ok(record) => Outcome::Failed(record),
                Err(e) => {
                    return Err(Closed::Protocol(format!(
                        "an error frame does not decode: {e}"
                    )));
                }
            }
        }
        other => {
            return Err(Closed::Protocol(format!(
                "a server does not send {other:?} frames"
            )));
        }
    };
    table
        .deliver(kind, id, outcome, own)
        .map_err(Closed::Protocol)
}
