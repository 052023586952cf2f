//! A link: one peer's two directions, split into a [`Tx`] and an [`Rx`] that can live on
//! different threads, plus what both halves share (the mapping, the peer, the control socket,
//! the counters, whether the peer is gone).
//!
//! # Disconnect
//! The peer's death is seen at once through its pidfd or the hang-up of the control socket, by
//! the process-wide watcher thread (`watch.rs`), which marks the link gone and wakes every thread of ours sleeping on it (and
//! rings our doorbells for the tokio tasks awaiting it): each returns [`Error::PeerGone`]. A peer that breaks the protocol is treated the same way, with
//! [`Error::ProtocolViolation`]. The sender's slots in flight at a dead peer come back to its
//! pool on the next call on the [`Tx`]; memory of received messages stays valid until they are
//! dropped (the mapping lives as long as any of them). Dropping both halves closes the link at
//! once, even while messages received on it live: the peer sees [`Error::PeerGone`].

use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use memwire_shm::{Mapping, ProcessHandle, ProcessId};

use crate::bell::{Bells, Half};
use crate::bootstrap::host::PeerTable;
use crate::config::{LinkConfig, WaitStrategy};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::ring::WaitKind;
use crate::rx::Rx;
use crate::tx::Tx;

/// Which end of the link this process is: the host sends on direction 0, the guest on 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Host,
    Guest,
}

impl Side {
    pub(crate) fn sends_on(self) -> usize {
        match self {
            Self::Host => 0,
            Self::Guest => 1,
        }
    }
}

/// The process at the other end of a link.
#[derive(Debug)]
pub(crate) struct Peer {
    id: ProcessId,
    /// Its pidfd; `None` for a walk-in guest whose pid is not visible to us (`SO_PEERCRED`
    /// gave 0: it runs in another pid namespace). Its death is then seen only through the
    /// control socket's hang-up (`watch.rs`).
    handle: Option<ProcessHandle>,
}

impl Peer {
    /// A peer watched through its pidfd.
    pub(crate) fn watched(handle: ProcessHandle) -> Self {
        Self {
            id: handle.id(),
            handle: Some(handle),
        }
    }

    /// A peer whose pid we cannot see: pid 0, start time 0, no pidfd.
    pub(crate) fn unseen() -> Self {
        Self {
            id: ProcessId {
                pid: 0,
                start_time: 0,
            },
            handle: None,
        }
    }

    /// Its identity (pid 0 when unseen).
    pub(crate) fn id(&self) -> ProcessId {
        self.id
    }

    /// Its pid (0 when unseen).
    pub(crate) fn pid(&self) -> u32 {
        self.id.pid
    }

    /// Its pidfd, if we have one.
    pub(crate) fn pidfd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.handle.as_ref().map(std::os::fd::AsFd::as_fd)
    }
}

/// A host's peer-table entry, freed when dropped.
#[derive(Debug)]
pub(crate) struct PeerSlot {
    pub(crate) table: Arc<Mutex<PeerTable>>,
    pub(crate) index: usize,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .free(self.index);
    }
}

/// Everything bootstrap hands to [`Link::new`].
#[derive(Debug)]
pub(crate) struct LinkParts {
    pub(crate) map: Arc<Mapping>,
    pub(crate) config: LinkConfig,
    pub(crate) layout: Layout,
    pub(crate) side: Side,
    pub(crate) control: UnixStream,
    pub(crate) peer: Peer,
    pub(crate) wait: WaitStrategy,
    pub(crate) slot: Option<PeerSlot>,
    pub(crate) bells: Bells,
}

/// Counters of one link, both halves. Process-local: no peer reads or writes them.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Written by the [`Tx`] only (through `&mut`): see [`Counters::bump`].
    pub(crate) messages_sent: AtomicU64,
    /// Written by the [`Tx`] only.
    pub(crate) bytes_sent: AtomicU64,
    /// Written by the [`Rx`] only.
    pub(crate) messages_received: AtomicU64,
    /// Written by the [`Rx`] only.
    pub(crate) bytes_received: AtomicU64,
    /// Written by either half and by received messages on any thread: [`Counters::add`].
    pub(crate) wake_syscalls: AtomicU64,
    /// Written by either half: [`Counters::add`].
    pub(crate) sleeps: AtomicU64,
}

impl Counters {
    /// Relaxed: counters are statistics, read when the caller asks, ordered by nothing.
    #[inline]
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// [`Counters::add`] for a counter only one half writes (the caller holds it by `&mut`),
    /// on the per-message path: a load and a store, not a locked read-modify-write, which on
    /// x86-64 would also wait for the ring slot just written to leave the store buffer. No
    /// update is lost: nobody else writes the counter, and a half moved to another thread
    /// carries a happens-before edge with it.
    #[inline]
    pub(crate) fn bump(counter: &AtomicU64, n: u64) {
        // Relaxed, as in `add`.
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }
}

/// A snapshot of a link's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages this end sent.
    pub messages_sent: u64,
    /// Payload bytes this end sent.
    pub bytes_sent: u64,
    /// Messages this end received.
    pub messages_received: u64,
    /// Payload bytes this end received.
    pub bytes_received: u64,
    /// Wake syscalls this end made (a `FUTEX_WAKE`, or a doorbell ring, for a peer that
    /// declared it sleeps).
    pub wake_syscalls: u64,
    /// Times a thread (or a tokio task) of this end went to sleep waiting.
    pub sleeps: u64,
}

/// What both halves of a link (and every message) share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) map: Arc<Mapping>,
    pub(crate) peer: Peer,
    /// The control socket, non-blocking: large messages' memfds travel on it.
    pub(crate) control: UnixStream,
    gone: AtomicBool,
    /// Halves ([`Tx`], [`Rx`]) not yet dropped: 2, then 1, then 0, when the link is closed
    /// though received messages may still hold this `Shared` (and the mapping).
    halves: AtomicU8,
    violation: Mutex<Option<String>>,
    slot: Mutex<Option<PeerSlot>>,
    pub(crate) counters: Counters,
    /// Slots of our sending pool loaned or in flight, as the `Tx` last saw it (for status).
    pub(crate) slots_out: AtomicU32,
    /// Slots of our sending pool in all.
    pub(crate) slots_total: u32,
    /// Offsets of the state words our threads sleep on, for the watcher to wake.
    pub(crate) sleep_words: Vec<usize>,
    /// Our doorbells (async waiters sleep on them) and the peer's (we ring them).
    pub(crate) bells: Bells,
    /// Wakes our async waiters when the link goes. The doorbells alone cannot: the peer holds
    /// them too and can read a ring away, and a peer we cut off is alive to do so.
    #[cfg(feature = "tokio")]
    pub(crate) gone_waiters: tokio::sync::Notify,
}

impl Shared {
    /// Whether the peer is gone or was cut off.
    #[inline]
    pub(crate) fn is_gone(&self) -> bool {
        // Acquire: pairs with the Release store in `mark_gone`.
        self.gone.load(Ordering::Acquire)
    }

    /// The error every call returns once the link is gone.
    pub(crate) fn gone_error(&self) -> Error {
        let pid = self.peer.pid();
        match &*self
            .violation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            Some(what) => Error::ProtocolViolation {
                pid,
                what: what.clone(),
            },
            None => Error::PeerGone { pid },
        }
    }

    /// Marks the link gone, frees the host's peer entry, and wakes our sleepers.
    pub(crate) fn mark_gone(&self) {
        // The peer entry goes first, so whoever sees the link gone sees the entry free.
        drop(
            self.slot
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        // Release: pairs with the Acquire load in `is_gone`.
        if self.gone.swap(true, Ordering::AcqRel) {
            return;
        }
        for &word in &self.sleep_words {
            // A sleeper waits while its word holds its wait kind: change the word, then wake.
            let _ = self.map.store_u32(word, 0, Ordering::SeqCst);
            let _ = self.map.futex_wake(word, u32::MAX);
        }
        // Async waiters sleep on our doorbells instead; each re-checks and sees the link gone.
        self.bells.ring_own();
        // And on this, which no peer can take from them.
        #[cfg(feature = "tokio")]
        self.gone_waiters.notify_waiters();
        // Unblocks a peer of ours still reading the socket, and tells it we are done.
        let _ = self.control.shutdown(std::net::Shutdown::Both);
    }

    /// A half of the link was dropped; the last one closes the link: the peer sees it gone and
    /// the host's peer entry is freed, though our received messages (which share this
    /// `Shared`, for the mapping) may live on. They stay readable: the peer, seeing the link
    /// gone, never loans from its pool of this link again, so it never rewrites their slots.
    pub(crate) fn half_dropped(&self) {
        // AcqRel: the last half to go sees everything the other did before it dropped.
        if self.halves.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.mark_gone();
        }
    }

    /// The peer broke the protocol: the link is cut off; returns the error to report.
    pub(crate) fn violate(&self, what: impl std::fmt::Display) -> Error {
        {
            let mut v = self
                .violation
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if v.is_none() {
                *v = Some(what.to_string());
            }
        }
        tracing::warn!(peer = self.peer.pid(), %what, "protocol violation: link closed");
        self.mark_gone();
        self.gone_error()
    }

    /// Makes the one wake syscall a sleeping peer asked for: `FUTEX_WAKE` on its state word
    /// `word`, or a ring of the doorbell of its `half` (the half that sleeps on `word`).
    /// Inline: the common case, no sleeper, is one test; the syscall is out of line.
    #[inline]
    pub(crate) fn wake(&self, kind: Option<WaitKind>, word: usize, half: Half) {
        if let Some(kind) = kind {
            self.wake_sleeper(kind, word, half);
        }
    }

    /// [`Shared::wake`]'s syscall.
    #[cold]
    #[inline(never)]
    fn wake_sleeper(&self, kind: WaitKind, word: usize, half: Half) {
        match kind {
            WaitKind::Futex => {
                let _ = self.map.futex_wake(word, 1);
            }
            WaitKind::Doorbell => {
                // Fails only on a broken fd of our own; the peer then waits for its next
                // wake-up or our death, and can only have slowed itself.
                let _ = self.bells.ring_peer(half);
            }
        }
        Counters::add(&self.counters.wake_syscalls, 1);
    }
}

/// One peer's link. [`Link::split`] it to send and receive from different threads.
#[derive(Debug)]
pub struct Link {
    tx: Tx,
    rx: Rx,
    /// What the kernel said of a walk-in guest when it connected (`SO_PEERCRED`).
    credentials: Option<memwire_shm::PeerCredentials>,
}

impl Link {
    pub(crate) fn new(parts: LinkParts) -> Result<Self> {
        let LinkParts {
            map,
            config,
            layout,
            side,
            control,
            peer,
            wait,
            slot,
            bells,
        } = parts;
        control.set_nonblocking(true).map_err(|e| Error::Io {
            op: "make the control socket non-blocking",
            source: e,
        })?;
        let send = &layout.directions[side.sends_on()];
        let recv = &layout.directions[1 - side.sends_on()];
        // The words our own threads sleep on: the data ring we read (consumer), the data ring
        // we write (producer waiting for space), the return ring we read (waiting for slots).
        let sleep_words = vec![
            crate::layout::consumer_state(recv.data_ring),
            crate::layout::producer_state(send.data_ring),
            crate::layout::consumer_state(send.return_ring),
        ];
        let shared = Arc::new(Shared {
            map,
            peer,
            control,
            gone: AtomicBool::new(false),
            halves: AtomicU8::new(2),
            violation: Mutex::new(None),
            slot: Mutex::new(slot),
            counters: Counters::default(),
            slots_out: AtomicU32::new(0),
            slots_total: u32::try_from(config.total_slots()).unwrap_or(u32::MAX),
            sleep_words,
            bells,
            #[cfg(feature = "tokio")]
            gone_waiters: tokio::sync::Notify::new(),
        });
        let tx = Tx::new(Arc::clone(&shared), &config, send, wait)?;
        let rx = Rx::new(Arc::clone(&shared), &config, recv, wait)?;
        crate::watch::watch(&shared)?;
        Ok(Self {
            tx,
            rx,
            credentials: None,
        })
    }

    /// What the host's status report needs of this link.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.tx.shared
    }

    /// The two halves; both are `Send`.
    #[must_use]
    pub fn split(self) -> (Tx, Rx) {
        (self.tx, self.rx)
    }

    /// The sending half.
    pub fn tx(&mut self) -> &mut Tx {
        &mut self.tx
    }

    /// The receiving half.
    pub fn rx(&mut self) -> &mut Rx {
        &mut self.rx
    }

    /// The process at the other end: pid 0 (start time 0) for a walk-in guest whose pid the
    /// host cannot see (another pid namespace).
    #[must_use]
    pub fn peer(&self) -> ProcessId {
        self.tx.peer()
    }

    /// A snapshot of the link's counters.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.tx.stats()
    }

    /// On the host's side of a walk-in guest's link ([`crate::Host::accept`]): the guest's
    /// pid, uid and gid as the kernel recorded them when it connected (`SO_PEERCRED`), for
    /// an audit trail. `None` on every other link.
    #[must_use]
    pub fn peer_credentials(&self) -> Option<memwire_shm::PeerCredentials> {
        self.credentials
    }

    pub(crate) fn set_peer_credentials(&mut self, credentials: memwire_shm::PeerCredentials) {
        self.credentials = Some(credentials);
    }
}

/// Reads the counters.
pub(crate) fn stats(c: &Counters) -> Stats {
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    Stats {
        messages_sent: get(&c.messages_sent),
        bytes_sent: get(&c.bytes_sent),
        messages_received: get(&c.messages_received),
        bytes_received: get(&c.bytes_received),
        wake_syscalls: get(&c.wake_syscalls),
        sleeps: get(&c.sleeps),
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Our end is done: tell the peer (its watcher sees the socket close) and let our
        // watcher forget this link.
        let _ = self.control.shutdown(std::net::Shutdown::Both);
        crate::watch::poke();
    }
}

/// A sender's pool, as a receiver may trust it (what descriptors and returns may name).
pub(crate) fn limits(config: &LinkConfig) -> Result<crate::limits::Limits> {
    let classes: Vec<_> = config
        .classes
        .iter()
        .map(|c| crate::limits::SizeClass {
            slot_size: c.size,
            slot_count: c.count,
        })
        .collect();
    crate::limits::Limits::new(config.inline_max, &classes, config.max_large)
        .map_err(|e| Error::BadSegment(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Error, Guest, Host, HostConfig};

    /// Dropping both halves of a link closes it, though messages received on it still live:
    /// the peer sees the link gone and the host's peer entry is freed, while the messages stay
    /// readable.
    #[test]
    fn a_dropped_link_is_closed_though_its_messages_live() {
        let name = format!("link-unit-dropped-{}", std::process::id());
        let host = Host::bind(&name, HostConfig::default()).unwrap();
        let guest = std::thread::spawn(move || Guest::connect(&name));
        let mut link = host.accept_timeout(Duration::from_secs(30)).unwrap();
        let mut guest = guest.join().unwrap().unwrap();
        // 1000 bytes: a slot, so the message holds a slot of the guest's pool.
        let data = vec![7u8; 1000];
        guest.tx().send(&data).unwrap();
        let kept = link.rx().recv_timeout(Duration::from_secs(30)).unwrap();
        drop(link);
        assert!(host.peers().is_empty(), "{:?}", host.peers());
        match guest.rx().recv_timeout(Duration::from_secs(30)) {
            Err(Error::PeerGone { .. }) => {}
            other => panic!("recv on a link the host dropped gave {other:?}"),
        }
        assert!(matches!(guest.tx().send(b"x"), Err(Error::PeerGone { .. })));
        assert_eq!(&*kept, data.as_slice());
    }
}
