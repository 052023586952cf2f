//! [`ItemStream`]: the items of a streaming call, granting credit back as it is read.

use super::*;

/// The items of a streaming call, in order. Dropping it before the end cancels the call.
#[derive(Debug)]
pub struct ItemStream<T> {
    pub(super) inner: Arc<Inner>,
    pub(super) id: u64,
    pub(super) method: String,
    pub(super) items: mpsc::UnboundedReceiver<Outcome>,
    /// Items taken since the last grant.
    pub(super) consumed: u32,
    pub(super) done: bool,
    /// Settled when the stream ends (or is dropped: a cancel, which counts as nothing).
    pub(super) accounting: Option<Accounting>,
    pub(super) _item: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> ItemStream<T> {
    /// The next item; `None` after the last one (or after an error was returned).
    pub async fn next(&mut self) -> Option<Result<T>> {
        if self.done {
            return None;
        }
        let item = self.next_item().await;
        if self.done {
            let outcome = match &item {
                None | Some(Ok(_)) => Ok(()),
                Some(Err(e)) => Err(e.kind()),
            };
            if let Some(accounting) = self.accounting.take() {
                accounting.finish(&self.inner, outcome);
            }
        }
        item
    }

    pub(super) async fn next_item(&mut self) -> Option<Result<T>> {
        let outcome = wait_for(&self.inner, &mut self.items, None).await;
        let item = match outcome {
            Some(Outcome::Reply(reply)) => reply.decode(),
            Some(Outcome::End) => {
                self.done = true;
                return None;
            }
            Some(Outcome::Failed(record)) => {
                self.done = true;
                Err(remote_error(&self.method, record))
            }
            Some(Outcome::Closed(closed)) => {
                self.done = true;
                Err(closed.error())
            }
            None => {
                self.done = true;
                Err(Error::PeerGone {
                    pid: self.inner.peer,
                })
            }
        };
        if item.is_ok() {
            self.consumed += 1;
            if self.consumed >= STREAM_WINDOW / 2 {
                let grant = std::mem::take(&mut self.consumed);
                self.inner.table.grant(self.id, grant);
                let sent = self
                    .inner
                    .writer
                    .send(
                        Kind::Credit,
                        Encoding::Raw,
                        self.id,
                        "",
                        &grant.to_le_bytes(),
                    )
                    .await;
                if let Err(e) = sent {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        Some(item)
    }

    /// Collects the remaining items.
    ///
    /// # Errors
    /// The first error an item carried.
    pub async fn collect(mut self) -> Result<Vec<T>> {
        let mut all = Vec::new();
        while let Some(item) = self.next().await {
            all.push(item?);
        }
        Ok(all)
    }
}

impl<T> Drop for ItemStream<T> {
    fn drop(&mut self) {
        if !self.done && self.inner.table.remove(self.id) {
            cancel(&self.inner.writer, self.id);
        }
    }
}
