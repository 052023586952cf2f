//! The calls waiting on one link, by id, and what each is handed when its answer comes.

use std::sync::atomic::{AtomicBool, AtomicU64};

use super::*;

/// Why a link stopped answering.
#[derive(Clone, Debug)]
pub(super) enum Closed {
    PeerGone(u32),
    Protocol(String),
}

impl Closed {
    pub(super) fn error(&self) -> Error {
        match self {
            Self::PeerGone(pid) => Error::PeerGone { pid: *pid },
            Self::Protocol(m) => Error::Protocol(m.clone()),
        }
    }
}

/// What the reader hands a waiting call.
#[derive(Debug)]
pub(super) enum Outcome {
    Reply(Reply),
    Failed(ErrorRecord),
    End,
    Closed(Closed),
}

/// An answer's bytes, in place in the link.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) message: Message,
    pub(super) encoding: Encoding,
}

impl Reply {
    pub(super) fn decode<R: DeserializeOwned>(&self) -> Result<R> {
        let payload = self.message.get(frame::HEADER_LEN..).unwrap_or_default();
        codec::decode(self.encoding, payload)
            .map_err(|e| Error::Protocol(format!("the result does not decode: {e}")))
    }
}

#[derive(Debug)]
pub(super) enum Waiting {
    /// A call: its answer is left here, and its task woken, until it takes it
    /// ([`CallInbox`]); no channel to allocate per call.
    Call(CallSlot),
    Stream {
        items: mpsc::UnboundedSender<Outcome>,
        /// Items the server may still send before the consumer grants more.
        credit: u32,
    },
    Ping(oneshot::Sender<Outcome>),
}

/// Where a call's answer waits for it.
#[derive(Debug, Default)]
pub(super) struct CallSlot {
    /// Boxed: a table entry stays a few words, where an answer is a whole message, and the
    /// map moves its entries on every insert and remove. A call whose task reads its own
    /// answer (the lone caller's case) never fills it.
    outcome: Option<Box<Outcome>>,
    /// The call's task, when it waits.
    waker: Option<std::task::Waker>,
}

#[derive(Debug, Default)]
pub(super) struct Table {
    pub(super) state: Mutex<TableState>,
    /// Notified once, when the table closes.
    pub(super) closing: tokio::sync::Notify,
    /// Set (after `state.closed`) when the table closes: a call checks it without the lock.
    closed: AtomicBool,
    /// Answers left for calls (and closes), counted after each: a call that saw no change since
    /// before it entered the table need not lock it to look for its answer ([`CallInbox`]).
    changes: AtomicU64,
}

#[derive(Debug, Default)]
pub(super) struct TableState {
    pub(super) pending: IdMap<Waiting>,
    pub(super) closed: Option<Closed>,
}

impl Table {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, TableState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The count of answers left for calls so far (see `changes`).
    pub(super) fn changes(&self) -> u64 {
        // Acquire: pairs with the Release increments, made after an answer was left.
        self.changes.load(Ordering::Acquire)
    }

    pub(super) fn insert(&self, id: u64, waiting: Waiting) -> Result<()> {
        let mut state = self.lock();
        if let Some(closed) = &state.closed {
            return Err(closed.error());
        }
        state.pending.insert(id, waiting);
        Ok(())
    }

    /// Why the table closed, if it did; the lock is taken only then.
    pub(super) fn closed(&self) -> Option<Closed> {
        // Acquire: pairs with the Release store in `close`, made after `state.closed` was set.
        if self.closed.load(Ordering::Acquire) {
            self.lock().closed.clone()
        } else {
            None
        }
    }

    /// Forgets call `id`; whether it was still waiting for its answer (a call answered but
    /// not yet woken no longer is).
    pub(super) fn remove(&self, id: u64) -> bool {
        match self.lock().pending.remove(&id) {
            Some(Waiting::Call(slot)) => slot.outcome.is_none(),
            Some(_) => true,
            None => false,
        }
    }

    /// Takes call `id`'s answer if it came (`Some(outcome)`), else leaves `waker` (when given)
    /// to be woken when it does (`None`). A call the table no longer holds was closed: its
    /// answer is why.
    pub(super) fn take_answer(&self, id: u64, waker: Option<&std::task::Waker>) -> Option<Outcome> {
        let mut state = self.lock();
        match state.pending.get_mut(&id) {
            Some(Waiting::Call(slot)) => {
                if slot.outcome.is_none() {
                    if let Some(waker) = waker
                        && !slot.waker.as_ref().is_some_and(|w| w.will_wake(waker))
                    {
                        slot.waker = Some(waker.clone());
                    }
                    return None;
                }
                match state.pending.remove(&id) {
                    Some(Waiting::Call(slot)) => slot.outcome.map(|o| *o),
                    _ => None,
                }
            }
            // Only `close` (and the call's own cancel, after which nobody asks) removes an
            // unanswered call.
            _ => Some(Outcome::Closed(state.closed.clone().unwrap_or(
                Closed::Protocol(format!("call {id} lost its place in the table")),
            ))),
        }
    }

    /// Fails every pending call, and every later one, with `closed`.
    pub(super) fn close(&self, closed: Closed) {
        let pending = {
            let mut state = self.lock();
            state.closed.get_or_insert(closed.clone());
            // Release: `closed()` that sees the flag finds `state.closed` set.
            self.closed.store(true, Ordering::Release);
            std::mem::take(&mut state.pending)
        };
        // Release: a call that sees the count move finds the table closed.
        self.changes.fetch_add(1, Ordering::Release);
        self.closing.notify_waiters();
        for waiting in pending.into_values() {
            match waiting {
                // Its task finds it gone and the table closed (`take_answer`).
                Waiting::Call(slot) => {
                    if let Some(waker) = slot.waker {
                        waker.wake();
                    }
                }
                Waiting::Ping(tx) => {
                    let _ = tx.send(Outcome::Closed(closed.clone()));
                }
                Waiting::Stream { items, .. } => {
                    let _ = items.send(Outcome::Closed(closed.clone()));
                }
            }
        }
    }

    /// Delivers one answer; the answer to call `own` (the reader's own) is handed back
    /// instead of sent through its channel. `Err` when the server broke the protocol.
    pub(super) fn deliver(
        &self,
        kind: Kind,
        id: u64,
        outcome: Outcome,
        own: Option<u64>,
    ) -> Result<Option<Outcome>, String> {
        let mut state = self.lock();
        match (kind, state.pending.get_mut(&id)) {
            // The call was cancelled or timed out: its late answer is dropped.
            (_, None) => Ok(None),
            (Kind::Response | Kind::Error, Some(Waiting::Call(slot))) => {
                if slot.outcome.is_some() {
                    // A second answer to one call: dropped, as a late answer is.
                    return Ok(None);
                }
                if own == Some(id) {
                    state.pending.remove(&id);
                    return Ok(Some(outcome));
                }
                slot.outcome = Some(Box::new(outcome));
                let waker = slot.waker.take();
                drop(state);
                // Release: after the answer is in its slot (see `changes`).
                self.changes.fetch_add(1, Ordering::Release);
                if let Some(waker) = waker {
                    waker.wake();
                }
                Ok(None)
            }
            (Kind::Pong, Some(Waiting::Ping(_))) => {
                if let Some(Waiting::Ping(tx)) = state.pending.remove(&id) {
                    let _ = tx.send(outcome);
                }
                Ok(None)
            }
            (Kind::StreamItem, Some(Waiting::Stream { items, credit })) => {
                *credit = credit
                    .checked_sub(1)
                    .ok_or_else(|| format!("call {id} streamed more items than granted"))?;
                let _ = items.send(outcome);
                Ok(None)
            }
            (Kind::StreamEnd | Kind::Error, Some(Waiting::Stream { .. })) => {
                if let Some(Waiting::Stream { items, .. }) = state.pending.remove(&id) {
                    let _ = items.send(outcome);
                }
                Ok(None)
            }
            (kind, Some(_)) => Err(format!("a {kind:?} frame does not answer call {id}")),
        }
    }

    pub(super) fn grant(&self, id: u64, items: u32) {
        if let Some(Waiting::Stream { credit, .. }) = self.lock().pending.get_mut(&id) {
            *credit = credit.saturating_add(items);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::task::{Wake, Waker};

    use super::*;

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (Arc::clone(&count), Waker::from(count))
    }

    fn failed(message: &str) -> Outcome {
        Outcome::Failed(ErrorRecord {
            code: "remote".into(),
            kind: "Test".into(),
            message: message.into(),
        })
    }

    fn message_of(outcome: Option<Outcome>) -> String {
        match outcome {
            Some(Outcome::Failed(record)) => record.message,
            other => panic!("not a failure: {other:?}"),
        }
    }

    fn table_with_call(id: u64) -> Table {
        let table = Table::default();
        table
            .insert(id, Waiting::Call(CallSlot::default()))
            .unwrap();
        table
    }

    #[test]
    fn an_answer_waits_in_its_slot_and_wakes_the_call() {
        let table = table_with_call(7);
        let (count, waker) = counting();
        assert!(table.take_answer(7, Some(&waker)).is_none());
        let before = table.changes();
        assert!(
            table
                .deliver(Kind::Error, 7, failed("first"), None)
                .unwrap()
                .is_none()
        );
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(table.changes(), before + 1);
        // Answered but not taken: no longer waiting, so a drop now sends no cancel.
        assert_eq!(message_of(table.take_answer(7, None)), "first");
        assert!(!table.remove(7));
    }

    #[test]
    fn the_reader_takes_its_own_answer_without_counting_a_change() {
        let table = table_with_call(3);
        let before = table.changes();
        let own = table
            .deliver(Kind::Error, 3, failed("mine"), Some(3))
            .unwrap();
        assert_eq!(message_of(own), "mine");
        assert_eq!(table.changes(), before);
        assert!(table.lock().pending.is_empty());
    }

    #[test]
    fn a_second_answer_to_one_call_is_dropped() {
        let table = table_with_call(1);
        table.deliver(Kind::Error, 1, failed("one"), None).unwrap();
        assert!(
            table
                .deliver(Kind::Error, 1, failed("two"), None)
                .unwrap()
                .is_none()
        );
        assert_eq!(message_of(table.take_answer(1, None)), "one");
        // And one for a call nobody waits for any more.
        assert!(
            table
                .deliver(Kind::Error, 1, failed("late"), None)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_table_entry_is_a_few_words() {
        // The map moves entries on insert and remove: an answer inside one would be copied
        // each time.
        assert!(
            std::mem::size_of::<Waiting>() <= 32,
            "{}",
            std::mem::size_of::<Waiting>()
        );
    }

    #[test]
    fn an_unanswered_call_is_still_waiting_when_removed() {
        let table = table_with_call(5);
        assert!(table.remove(5));
        assert!(!table.remove(5));
    }

    #[test]
    fn closing_wakes_a_waiting_call_with_the_reason() {
        let table = table_with_call(9);
        let (count, waker) = counting();
        assert!(table.take_answer(9, Some(&waker)).is_none());
        let before = table.changes();
        table.close(Closed::PeerGone(42));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(table.changes() > before);
        match table.take_answer(9, None) {
            Some(Outcome::Closed(Closed::PeerGone(42))) => {}
            other => panic!("{other:?}"),
        }
        // A call made after the close fails at once.
        assert!(
            table
                .insert(10, Waiting::Call(CallSlot::default()))
                .is_err()
        );
    }
}
