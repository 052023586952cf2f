//! The process-wide watcher: one thread that sees every peer's death at once.
//!
//! It `poll`s the pidfd of every linked peer (readable when the process exits) and every
//! control socket (`POLLRDHUP` when the peer closes its end or dies), plus an eventfd that
//! registrations ring. When a peer goes, it marks the link gone and wakes the link's sleepers.
//! One thread for all links: none per link. It holds dups of the fds and a weak reference to
//! each link, so it keeps no link alive; a dropped link's entry goes on the next wake-up.
//!
//! # How a peer's death is seen
//! - **pidfd** (every spawned guest, every walk-in guest whose pid we can see, and the host as
//!   its guests see it): the kernel makes the pidfd readable when the process exits, however
//!   it exits (`SIGKILL` included). A pidfd names one process, never a later holder of its pid.
//! - **control-socket hang-up** (every link, and the only sign for a walk-in guest whose pid
//!   is not visible to the host, `SO_PEERCRED` pid 0: another pid namespace): the kernel
//!   closes a dead process's fds, so its end of the socket closes and ours reports
//!   `POLLRDHUP`/`POLLHUP`. It also fires when a live peer drops its link. It misses a death
//!   only if another live process holds a copy of the peer's end (the peer forked and its
//!   child kept the fd, which memwire never lets happen: every fd it makes is close-on-exec,
//!   and a spawned child gets only its own end); then the link stays up until that holder
//!   closes it too.
//!
//! # Why no heartbeat here
//! A heartbeat detects a peer that is alive but stuck, and the death of a peer the kernel
//! cannot report. Neither applies at this layer: both ends share one kernel, which reports
//! every exit through the pidfd or the socket at once, without a timeout to tune and without
//! waking an idle link; and whether a live peer is *responsive* is a question about requests,
//! which memwire-rpc answers with its own heartbeat frames and call timeouts. A transport
//! heartbeat would cost wake-ups on idle links and tell us nothing the kernel does not.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use memwire_shm::Doorbell;
use rustix::event::{PollFd, PollFlags};

use crate::error::{Error, Result};
use crate::link::Shared;

struct Entry {
    link: Weak<Shared>,
    /// `None` for a peer whose pid we cannot see: the socket alone tells its death.
    pidfd: Option<OwnedFd>,
    socket: OwnedFd,
}

struct Watcher {
    pending: Mutex<Vec<Entry>>,
    bell: Doorbell,
}

/// The watcher, once its thread runs. Set only after the thread started, so a failed start is
/// retried by the next link instead of leaving a watcher nobody runs.
static WATCHER: Mutex<Option<Arc<Watcher>>> = Mutex::new(None);

fn watcher() -> Result<Arc<Watcher>> {
    let mut slot = WATCHER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(w) = slot.as_ref() {
        return Ok(Arc::clone(w));
    }
    let w = Arc::new(Watcher {
        pending: Mutex::new(Vec::new()),
        bell: Doorbell::new()?,
    });
    let run = Arc::clone(&w);
    std::thread::Builder::new()
        .name("memwire-watch".into())
        .spawn(move || run.run())
        .map_err(|e| Error::Io {
            op: "start the watcher thread",
            source: e,
        })?;
    *slot = Some(Arc::clone(&w));
    Ok(w)
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
        pidfd: link.peer.pidfd().map(dup).transpose()?,
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
    let watcher = WATCHER
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some(w) = watcher {
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
            // How many fds each entry put in `fds` (1 or 2), in order.
            let mut widths = Vec::with_capacity(entries.len());
            for e in &entries {
                fds.push(PollFd::new(&e.socket, PollFlags::RDHUP));
                if let Some(pidfd) = &e.pidfd {
                    fds.push(PollFd::new(pidfd, PollFlags::IN));
                }
                widths.push(1 + usize::from(e.pidfd.is_some()));
            }
            match rustix::event::poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    // ENOMEM and the like: back off instead of spinning, then look again.
                    tracing::warn!(error = %e, "watcher poll failed; retrying");
                    drop(fds);
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
            }
            let mut rest = &fds[1..];
            let gone: Vec<bool> = widths
                .iter()
                .map(|&w| {
                    let (mine, after) = rest.split_at(w.min(rest.len()));
                    rest = after;
                    mine.iter().any(|fd| !fd.revents().is_empty())
                })
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
