//! A tenant's feed: the server's in-memory copy of its recent changes, with their values, and
//! the wake-ups of the watchers that wait for more.
//!
//! The segment's change ring names each change but holds no value; a value overwritten before
//! a watcher read it would be gone. The feed keeps the value of each change (shared with
//! `Arc`, one copy per write) for as many changes as the tenant's ring has slots, and at most
//! as many value bytes as the tenant's memory quota. It is appended under the store's write
//! lock, after the segment, so its head is the tenant's revision whenever that lock is free.
//!
//! A watcher takes the feed's own short lock to copy what is new (clones of `Arc`s): it never
//! holds the writer up for longer than that copy, and a watcher that stops reading costs the
//! writer nothing: it falls out of the window and gets `Lagged` when it comes back.
//!
//! Wake-ups: the writer bumps `seq` and wakes the tokio waiters ([`Notify::notify_waiters`])
//! and, only when a blocking waiter announced itself in `sleepers`, the condition variable.
//!
//! A deleted tenant's feed is ended ([`Feed::end`]) and wakes its waiters a last time: a
//! watcher still gets the changes it had not read, then [`Read::Ended`] on every read.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::segment::ChangeKind;

/// One change in the feed.
#[derive(Clone, Debug)]
pub(crate) struct FeedEntry {
    pub(crate) revision: u64,
    pub(crate) service: Arc<str>,
    pub(crate) variable: Box<str>,
    pub(crate) kind: ChangeKind,
    /// The value set; `None` for a delete.
    pub(crate) value: Option<Arc<[u8]>>,
    pub(crate) timestamp_ns: u64,
}

#[derive(Debug)]
struct Window {
    /// Consecutive revisions, oldest first, ending at `head`.
    entries: VecDeque<FeedEntry>,
    /// The tenant's revision.
    head: u64,
    /// Value bytes held.
    bytes: usize,
    /// Entries at most (the tenant's ring slots).
    capacity: usize,
    /// Value bytes at most (the tenant's memory quota); the newest write is kept whatever
    /// its size.
    max_bytes: usize,
    /// Once the tenant is deleted: the version of its delete. Nothing is pushed after.
    ended: Option<u64>,
}

/// See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Feed {
    window: Mutex<Window>,
    /// Bumped after every append; a blocking waiter compares it under `lock`.
    seq: AtomicU64,
    /// Blocking waiters about to wait or waiting.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    cond: Condvar,
    notify: Notify,
}

/// What [`Feed::read_after`] found.
pub(crate) enum Read {
    /// Every change after the cursor was appended to the output; the new cursor.
    Caught(u64),
    /// The feed no longer holds the change after the cursor (or the cursor is ahead of it).
    Missed,
    /// The tenant was deleted by the change of this version, and nothing the feed still
    /// holds is after the cursor: the watch is over.
    Ended(u64),
}

/// The window's data stays consistent under a panic elsewhere (each change is one push).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Feed {
    /// An empty feed at revision `head`.
    pub(crate) fn new(head: u64, capacity: usize, max_bytes: usize) -> Self {
        Self {
            window: Mutex::new(Window {
                entries: VecDeque::new(),
                head,
                bytes: 0,
                capacity: capacity.max(1),
                max_bytes,
                ended: None,
            }),
            seq: AtomicU64::new(0),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            cond: Condvar::new(),
            notify: Notify::new(),
        }
    }

    /// The tenant's revision as the feed knows it.
    pub(crate) fn head(&self) -> u64 {
        lock(&self.window).head
    }

    /// Restarts the feed empty at `head` (a tenant rebuilt from a snapshot).
    pub(crate) fn reset(&self, head: u64) {
        let mut w = lock(&self.window);
        w.entries.clear();
        w.bytes = 0;
        w.head = head;
    }

    /// Ends the feed: its tenant was deleted by the change of version `revision`. Wakes the
    /// waiters, which read what is left and then [`Read::Ended`].
    pub(crate) fn end(&self, revision: u64) {
        lock(&self.window).ended = Some(revision);
        self.wake();
    }

    /// Appends the changes of one write (consecutive revisions after the head) and wakes
    /// the waiters.
    pub(crate) fn push(&self, changes: impl IntoIterator<Item = FeedEntry>) {
        {
            let mut w = lock(&self.window);
            debug_assert!(w.ended.is_none(), "a write of a deleted tenant");
            let mut added = 0;
            for entry in changes {
                debug_assert_eq!(entry.revision, w.head + 1);
                w.head = entry.revision;
                w.bytes += entry.value.as_ref().map_or(0, |v| v.len());
                w.entries.push_back(entry);
                added += 1;
            }
            while w.entries.len() > added && (w.entries.len() > w.capacity || w.bytes > w.max_bytes)
            {
                if let Some(old) = w.entries.pop_front() {
                    w.bytes -= old.value.as_ref().map_or(0, |v| v.len());
                }
            }
        }
        self.wake();
    }

    /// Wakes every waiter.
    pub(crate) fn wake(&self) {
        // SeqCst, with the SeqCst accesses in `wait_timeout`: either the waiter sees the new
        // `seq`, or this sees its `sleepers` and takes `lock` to wake it.
        self.seq.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _held = lock(&self.lock);
            self.cond.notify_all();
        }
    }

    /// Appends to `out` (through `f`) every change after revision `cursor`.
    pub(crate) fn read_after(&self, cursor: u64, mut f: impl FnMut(&FeedEntry)) -> Read {
        let w = lock(&self.window);
        let first = w.entries.front().map_or(w.head + 1, |e| e.revision);
        if cursor > w.head || cursor + 1 < first {
            // A deleted tenant's values cannot be read again: a watcher out of the window
            // ends as well.
            return w.ended.map_or(Read::Missed, Read::Ended);
        }
        if let Some(revision) = w.ended
            && cursor == w.head
        {
            return Read::Ended(revision);
        }
        let skip = usize::try_from(cursor + 1 - first).unwrap_or(usize::MAX);
        for entry in w.entries.iter().skip(skip) {
            f(entry);
        }
        Read::Caught(w.head)
    }

    /// The wake-up count, to pass to [`Feed::wait_timeout`] after reading.
    pub(crate) fn seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Blocks until a write after `seen` (a [`Feed::seq`] taken before reading) or until
    /// `deadline`.
    pub(crate) fn wait_until(&self, seen: u64, deadline: Instant) {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let mut held = lock(&self.lock);
        while self.seq.load(Ordering::SeqCst) == seen {
            let left = deadline.saturating_duration_since(Instant::now());
            if left == Duration::ZERO {
                break;
            }
            held = self
                .cond
                .wait_timeout(held, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(held);
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// The tokio side of the wake-ups.
    pub(crate) fn notify(&self) -> &Notify {
        &self.notify
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(revision: u64, len: usize) -> FeedEntry {
        FeedEntry {
            revision,
            service: Arc::from("s"),
            variable: "v".into(),
            kind: ChangeKind::Set,
            value: Some(Arc::from(vec![0; len])),
            timestamp_ns: 0,
        }
    }

    fn revisions(feed: &Feed, cursor: u64) -> Option<Vec<u64>> {
        let mut seen = Vec::new();
        match feed.read_after(cursor, |e| seen.push(e.revision)) {
            Read::Caught(_) => Some(seen),
            Read::Missed | Read::Ended(_) => None,
        }
    }

    #[test]
    fn the_window_keeps_capacity_entries_and_bytes() {
        let feed = Feed::new(10, 3, 100);
        assert_eq!(revisions(&feed, 10), Some(vec![]));
        assert_eq!(revisions(&feed, 9), None);
        assert_eq!(revisions(&feed, 11), None);
        for r in 11..=14 {
            feed.push([entry(r, 1)]);
        }
        assert_eq!(revisions(&feed, 11), Some(vec![12, 13, 14]));
        assert_eq!(revisions(&feed, 10), None);
        // One write larger than the byte budget is kept alone.
        feed.push([entry(15, 60), entry(16, 60)]);
        assert_eq!(revisions(&feed, 14), Some(vec![15, 16]));
        assert_eq!(revisions(&feed, 13), None);
        feed.reset(20);
        assert_eq!(revisions(&feed, 20), Some(vec![]));
        assert_eq!(feed.head(), 20);
    }

    #[test]
    fn an_ended_feed_gives_what_is_left_then_ended() {
        let feed = Feed::new(10, 4, 100);
        feed.push([entry(11, 1)]);
        feed.push([entry(12, 1)]);
        let seq = feed.seq();
        feed.end(13);
        assert_ne!(feed.seq(), seq, "ending wakes the waiters");
        assert_eq!(revisions(&feed, 10), Some(vec![11, 12]));
        assert!(matches!(feed.read_after(12, |_| {}), Read::Ended(13)));
        // Out of the window, or ahead of it: ended too, never a resync.
        assert!(matches!(feed.read_after(5, |_| {}), Read::Ended(13)));
        assert!(matches!(feed.read_after(40, |_| {}), Read::Ended(13)));
    }
}
