//! The process-wide watcher: one thread that sees every peer's death at once.
//!
//! It `poll`s the pidfd of every linked peer (readable when the process exits) and every
//! control socket (`POLLRDHUP` when the peer closes its end or dies), plus an eventfd that
//! registrations ring. When a peer goes, it marks the link gone and wakes the link's sleepers.
//! One thread for all links: none per link. It holds dups of the fds and a weak reference to
//! each link, so it keeps no link alive; a dropped link's entry goes on the next wake-up.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use memwire_shm::Doorbell;
use rustix::event::{PollFd, PollFlags};

use crate::error::{Error, Result};
use crate::link::Shared;

struct Entry {
    link: Weak<Shared>,
    pidfd: OwnedFd,
    socket: OwnedFd,
}

struct Watcher {
    pending: Mutex<Vec<Entry>>,
    bell: Doorbell,
}

static WATCHER: OnceLock<Arc<Watcher>> = OnceLock::new();

fn watcher() -> Result<Arc<Watcher>> {
    if let Some(w) = WATCHER.get() {
        return Ok(Arc::clone(w));
    }
    let w = Arc::new(Watcher {
        pending: Mutex::new(Vec::new()),
        bell: Doorbell::new()?,
    });
    if WATCHER.set(Arc::clone(&w)).is_ok() {
        let run = Arc::clone(&w);
        std::thread::Builder::new()
            .name("memwire-watch".into())
            .spawn(move || run.run())
            .map_err(|e| Error::Io {
                op: "start the watcher thread",
                source: e,
            })?;
    }
    // Another thread may have won the race to set it: use theirs.
    WATCHER
        .get()
        .map(Arc::clone)
        .ok_or_else(|| Error::BadSegment("watcher vanished".into()))
}

/// Starts watching `link`'s peer.
pub(crate) fn watch(link: &Arc<Shared>) -> Result<()> {
    let dup = |fd: std::os::fd::BorrowedFd<'_>| {
        fd.try_clone_to_owned().map_err(|e| Error::Io {
            op: "dup an fd for the watcher",
            source: e,
        })
    };
    let entry = Entry {
        link: Arc::downgrade(link),
        pidfd: dup(link.peer.as_fd())?,
        socket: dup(link.control.as_fd())?,
    };
    let w = watcher()?;
    w.pending
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(entry);
    w.bell.ring()?;
    Ok(())
}

/// Tells the watcher to look again (a link was dropped).
pub(crate) fn poke() {
    if let Some(w) = WATCHER.get() {
        let _ = w.bell.ring();
    }
}

impl Watcher {
    fn run(&self) {
        let mut entries: Vec<Entry> = Vec::new();
        loop {
            entries.extend(
                self.pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .drain(..),
            );
            entries.retain(|e| e.link.strong_count() > 0);
            let mut fds = Vec::with_capacity(1 + 2 * entries.len());
            fds.push(PollFd::new(&self.bell, PollFlags::IN));
            for e in &entries {
                fds.push(PollFd::new(&e.pidfd, PollFlags::IN));
                fds.push(PollFd::new(&e.socket, PollFlags::RDHUP));
            }
            if rustix::event::poll(&mut fds, None).is_err() {
                continue; // EINTR; anything else would repeat, and poll has no other failure here.
            }
            let gone: Vec<bool> = fds[1..]
                .chunks(2)
                .map(|pair| pair.iter().any(|fd| !fd.revents().is_empty()))
                .collect();
            let rung = !fds[0].revents().is_empty();
            drop(fds);
            if rung {
                let _ = self.bell.try_take();
            }
            let mut i = 0;
            entries.retain(|e| {
                let dead = gone.get(i).copied().unwrap_or(false);
                i += 1;
                if dead && let Some(link) = e.link.upgrade() {
                    link.mark_gone();
                }
                !dead
            });
        }
    }
}
