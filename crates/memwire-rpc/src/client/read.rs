//! Reading the link: a waiting call reads for everyone while no other call does.

use super::*;

/// Where a waiting call's answer lands: its table entry (calls), a oneshot (pings) or a channel
/// (streams).
pub(super) trait Inbox {
    /// `Some(Some(outcome))`: it is in; `Some(None)`: it never will be; `None`: not yet.
    fn try_take(&mut self) -> Option<Option<Outcome>>;
    /// Waits for the answer; `None` if it never comes.
    fn take(&mut self) -> impl std::future::Future<Output = Option<Outcome>> + Send;
}

/// A call's answer, left in the table ([`Table::take_answer`]).
pub(super) struct CallInbox<'a> {
    pub(super) table: &'a Table,
    pub(super) id: u64,
    /// [`Table::changes`] when last looked at (read before the call entered the table): while
    /// it stays the same, no answer can have come and `try_take` takes no lock.
    pub(super) seen: u64,
}

impl Inbox for CallInbox<'_> {
    fn try_take(&mut self) -> Option<Option<Outcome>> {
        let now = self.table.changes();
        if now == self.seen {
            return None;
        }
        self.seen = now;
        self.table.take_answer(self.id, None).map(Some)
    }

    async fn take(&mut self) -> Option<Outcome> {
        std::future::poll_fn(
            |cx| match self.table.take_answer(self.id, Some(cx.waker())) {
                Some(outcome) => std::task::Poll::Ready(Some(outcome)),
                None => std::task::Poll::Pending,
            },
        )
        .await
    }
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
///
/// While other calls are in flight, a call about to become the reader first lets the
/// runtime's other tasks run once (they may be about to send calls of their own, which then
/// overlap with this one even on one thread); a lone call, or one that finds another call
/// reading, goes on at once. The reader hands on every answer already in before it lets the
/// calls it answered run.
pub(super) async fn wait_for(
    inner: &Inner,
    inbox: &mut impl Inbox,
    own: Option<u64>,
) -> Option<Outcome> {
    let mut yielded = false;
    loop {
        if let Some(outcome) = inbox.try_take() {
            return outcome;
        }
        // Relaxed: a hint; taking the lock below is what decides who reads.
        if !yielded && inner.metrics.in_flight() > 1 && !inner.reading.load(Ordering::Relaxed) {
            yielded = true;
            memwire_transport::yield_to_tasks().await;
            continue;
        }
        if let Some(rx) = inner.rx.try_lock() {
            return lead(&mut Reader::new(inner, rx), inbox, own).await;
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

/// Reads the link for everyone until `inbox`'s answer is in (or, for call `own`, read).
async fn lead(
    reader: &mut Reader<'_>,
    inbox: &mut impl Inbox,
    own: Option<u64>,
) -> Option<Outcome> {
    loop {
        if let Some(outcome) = inbox.try_take() {
            return outcome;
        }
        let mut read = reader.read_one(own).await;
        let mut handed = false;
        loop {
            match read {
                Read::Mine(outcome) => return Some(outcome),
                Read::Handed => handed = true,
                Read::Nothing => break,
            }
            read = reader.read_ready(own);
        }
        if let Some(outcome) = inbox.try_take() {
            return outcome;
        }
        if handed {
            // Other calls' answers: let their tasks run (and send their next calls) now, not
            // after this one's answer.
            memwire_transport::yield_to_tasks().await;
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
    pub(super) rx: Option<parking_lot::MutexGuard<'a, Rx>>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(inner: &'a Inner, rx: parking_lot::MutexGuard<'a, Rx>) -> Self {
        // Relaxed: a hint for calls deciding whether to yield (`wait_for`).
        inner.reading.store(true, Ordering::Relaxed);
        Self {
            inner,
            rx: Some(rx),
        }
    }

    /// Reads one message and hands it to the call it answers (back to the caller, for call
    /// `own`); closes the table when the link ends or the server breaks the protocol.
    pub(super) async fn read_one(&mut self, own: Option<u64>) -> Read {
        let Some(rx) = self.rx.as_mut() else {
            return Read::Nothing;
        };
        let received = rx.recv_async().await;
        self.hand_on(received, own)
    }

    /// [`Reader::read_one`] if a message is in already; [`Read::Nothing`] if not.
    pub(super) fn read_ready(&mut self, own: Option<u64>) -> Read {
        let Some(rx) = self.rx.as_mut() else {
            return Read::Nothing;
        };
        match rx.try_recv() {
            Err(memwire_transport::Error::WouldBlock) => Read::Nothing,
            received => self.hand_on(received, own),
        }
    }

    fn hand_on(&self, received: memwire_transport::Result<Message>, own: Option<u64>) -> Read {
        let table = &self.inner.table;
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
        self.inner.reading.store(false, Ordering::Relaxed);
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
