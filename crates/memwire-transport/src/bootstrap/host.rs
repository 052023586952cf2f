//! The host side: bind a name, accept walk-in guests, spawn children.

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use memwire_shm::{Access, MemfdSegment, Name, ProcessHandle, ProcessId, Segment};

use super::hello::{FRAME, Hello, RefuseReason, Request};
use super::lobby::{Arrival, Lobby};
use super::status::{self, PeerStatus};
use super::{TICKET_ENV, inherit, socket_path};
use crate::bell::Bells;
use crate::config::{LinkConfig, WaitStrategy};
use crate::error::{ConfigError, Error, Result};
use crate::layout::{Layout, write_header};
use crate::link::{Link, LinkParts, Peer, PeerSlot, Shared, Side};

/// How a host shapes its links.
#[derive(Clone, Debug, Default)]
pub struct HostConfig {
    /// Most guests attached at once (default 64).
    pub max_peers: Option<usize>,
    /// The shape of every link.
    pub link: LinkConfig,
    /// How the host's side of each link waits.
    pub wait: WaitStrategy,
    /// How long [`Host::spawn`] waits for its child to ask for its link before it kills the
    /// child and fails with [`Error::JoinTimeout`] (default [`DEFAULT_JOIN_TIMEOUT`], 30 s: a
    /// child may do real work before it calls [`crate::Guest::from_env`], but one that never
    /// does must not hang its parent).
    pub join_timeout: Option<Duration>,
    /// How long a client of the bootstrap socket has to send its first frame before the host
    /// closes it (default [`DEFAULT_HELLO_TIMEOUT`], 1 s). Clients wait for it side by side:
    /// a silent one delays no other guest (see [`Host::accept`]).
    pub hello_timeout: Option<Duration>,
}

/// [`HostConfig::hello_timeout`] when unset.
pub const DEFAULT_HELLO_TIMEOUT: Duration = Duration::from_secs(1);

/// [`HostConfig::join_timeout`] when unset.
pub const DEFAULT_JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A peer entry, as [`Host::peers`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// Index in the peer table.
    pub index: usize,
    /// The guest.
    pub peer: ProcessId,
}

/// The host's table of peers: an entry is taken while a guest is attached and freed when the
/// guest dies or its link is dropped, whichever comes first.
#[derive(Debug)]
pub(crate) struct PeerTable {
    entries: Vec<Option<ProcessId>>,
}

impl PeerTable {
    fn take(table: &Arc<Mutex<Self>>, peer: ProcessId) -> Option<PeerSlot> {
        let mut t = table.lock().unwrap_or_else(PoisonError::into_inner);
        let index = t.entries.iter().position(Option::is_none)?;
        t.entries[index] = Some(peer);
        Some(PeerSlot {
            table: Arc::clone(table),
            index,
        })
    }

    /// Frees entry `index`; called once, by the owning [`PeerSlot`].
    pub(crate) fn free(&mut self, index: usize) {
        if let Some(e) = self.entries.get_mut(index) {
            *e = None;
        }
    }
}

/// A transport host: it creates one segment per guest and hands each guest its [`Link`].
#[derive(Debug)]
pub struct Host {
    name: Name,
    path: PathBuf,
    listener: UnixListener,
    config: HostConfig,
    me: ProcessId,
    peers: Arc<Mutex<PeerTable>>,
    /// Connections that have not sent their first frame yet; locked for a whole `accept`.
    lobby: Mutex<Lobby>,
    /// Every link made, for status reports; dropped links drop out.
    links: Mutex<Vec<Weak<Shared>>>,
    epoch: AtomicU64,
}

impl Host {
    /// Listens as `name`. A socket left by a dead host is replaced; a live host of the same
    /// name is [`Error::HostExists`].
    pub fn bind(name: &str, config: HostConfig) -> Result<Self> {
        let name = Name::new(name)?;
        config.link.validate()?;
        let max_peers = config.max_peers.unwrap_or(64);
        if !(1..=1024).contains(&max_peers) {
            return Err(ConfigError::MaxPeers(max_peers).into());
        }
        let path = socket_path(&name)?;
        let listener = match UnixListener::bind(&path) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                if UnixStream::connect(&path).is_ok() {
                    return Err(Error::HostExists {
                        name: name.to_string(),
                        path,
                    });
                }
                // Nobody answers: the socket of a host that died. Replace it.
                let _ = std::fs::remove_file(&path);
                UnixListener::bind(&path).map_err(|e| Error::Io {
                    op: "bind the host socket",
                    source: e,
                })?
            }
            Err(e) => {
                return Err(Error::Io {
                    op: "bind the host socket",
                    source: e,
                });
            }
        };
        // Non-blocking: `accept` polls the listener together with the clients of its lobby.
        listener.set_nonblocking(true).map_err(|e| Error::Io {
            op: "make the host socket non-blocking",
            source: e,
        })?;
        Ok(Self {
            name,
            path,
            listener,
            lobby: Mutex::new(Lobby::default()),
            config,
            me: ProcessId::current()?,
            peers: Arc::new(Mutex::new(PeerTable {
                entries: vec![None; max_peers],
            })),
            links: Mutex::new(Vec::new()),
            epoch: AtomicU64::new(1),
        })
    }

    /// The name guests connect to.
    #[must_use]
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The bootstrap socket.
    #[must_use]
    pub fn socket_path(&self) -> &std::path::Path {
        &self.path
    }

    /// Waits for the next walk-in guest and returns its link. A guest the host must refuse
    /// (peer table full) is told so and the wait goes on; status requests (`memwire ls`) are
    /// answered on the way.
    ///
    /// Clients that connected but have not sent their first frame wait side by side (see
    /// `lobby.rs`), each until its [`HostConfig::hello_timeout`]: a silent or slow client
    /// never delays a guest that connects after it. Those still waiting when `accept` returns
    /// are kept for the next call. Concurrent calls take turns.
    pub fn accept(&self) -> Result<Link> {
        self.accept_within(None)
    }

    /// [`Host::accept`], or [`Error::Timeout`] when no guest joined within `timeout`.
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Link> {
        self.accept_within(Some(timeout))
    }

    fn accept_within(&self, timeout: Option<Duration>) -> Result<Link> {
        let until = timeout.and_then(|t| Instant::now().checked_add(t));
        let hello = self.config.hello_timeout.unwrap_or(DEFAULT_HELLO_TIMEOUT);
        let mut lobby = self.lobby.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let stream = match lobby.next(&self.listener, hello, until)? {
                Some(Arrival::Join(stream)) => stream,
                Some(Arrival::Status(stream)) => {
                    self.answer_status(stream);
                    continue;
                }
                None => return Err(Error::Timeout(timeout.unwrap_or_default())),
            };
            let creds = memwire_shm::peer_credentials(&stream)?;
            let peer = match visible(creds.pid) {
                Some(pid) => match ProcessHandle::open(pid) {
                    Ok(p) => Peer::watched(p),
                    Err(e) => {
                        tracing::debug!(pid, error = %e, "guest left before it was welcomed");
                        continue;
                    }
                },
                // Another pid namespace: no pidfd; the control socket's hang-up tells its death.
                None => Peer::unseen(),
            };
            match self.welcome(stream, peer) {
                Ok(Some(mut link)) => {
                    link.set_peer_credentials(creds);
                    return Ok(link);
                }
                Ok(None) => continue,
                Err(Error::PeerGone { pid }) => {
                    tracing::debug!(pid, "guest left before it was welcomed");
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Spawns `command` as a guest: the child inherits its end of a socket pair, named with
    /// the host's identity in `MEMWIRE_TICKET`, and calls [`crate::Guest::from_env`]. Waits
    /// until it does, at most [`HostConfig::join_timeout`]: a child that exits first is reaped
    /// and the call fails at once with [`Error::GuestExited`] (its exit status); one that is
    /// still silent at the deadline is killed, reaped, and the call fails with
    /// [`Error::JoinTimeout`].
    pub fn spawn(&self, command: &mut Command) -> Result<(Child, Link)> {
        let (ours, theirs) = UnixStream::pair().map_err(|e| Error::Io {
            op: "socketpair",
            source: e,
        })?;
        let raw = theirs.as_raw_fd();
        command.env(
            TICKET_ENV,
            format!(
                "memwire1:fd={raw}:host={}:start={}",
                self.me.pid, self.me.start_time
            ),
        );
        let mut child =
            inherit::spawn_inheriting(command, theirs.as_fd()).map_err(|e| Error::Io {
                op: "spawn the guest",
                source: e,
            })?;
        drop(theirs);
        match self.welcome_child(ours, &mut child) {
            Ok(link) => Ok((child, link)),
            Err(e) => {
                // Never leave a half-started guest behind (for a child reaped already, both
                // calls are no-ops).
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    fn welcome_child(&self, ours: UnixStream, child: &mut Child) -> Result<Link> {
        let peer = ProcessHandle::from_child(child)?;
        let timeout = self.config.join_timeout.unwrap_or(DEFAULT_JOIN_TIMEOUT);
        let deadline = Instant::now().checked_add(timeout);
        // A child may work a while before it asks for its link: wait as long as it runs, up to
        // the join deadline.
        match wait_for_join(&ours, &peer, deadline)? {
            Joined::Asked => {}
            Joined::Exited => return Err(exited(child)),
            Joined::TimedOut => {
                return Err(Error::JoinTimeout {
                    pid: peer.pid(),
                    timeout,
                });
            }
        }
        // The child started its frame: give it what is left of the deadline (at least a
        // moment) to finish it.
        let left = deadline.map_or(Duration::from_secs(1), |d| {
            d.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(10))
        });
        match read_request(&ours, left) {
            Ok(Request::Join) => {}
            // Its end closed: it is exiting (the socket can close a moment before the pidfd
            // tells), so wait for its exit, within the join deadline, for its status.
            Err(Unread::Closed)
                if peer
                    .wait_timeout(left.max(Duration::from_millis(100)))
                    .unwrap_or(false) =>
            {
                return Err(exited(child));
            }
            _ => {
                return Err(Error::ProtocolViolation {
                    pid: peer.pid(),
                    what: "the spawned guest did not ask to join".into(),
                });
            }
        }
        self.welcome(ours, Peer::watched(peer))?
            .ok_or(Error::Refused(RefuseReason::PeerTableFull))
    }

    /// Live peer entries.
    #[must_use]
    pub fn peers(&self) -> Vec<PeerInfo> {
        let t = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        t.entries
            .iter()
            .enumerate()
            .filter_map(|(index, e)| e.map(|peer| PeerInfo { index, peer }))
            .collect()
    }

    /// Tells `memwire ls` who is attached.
    fn answer_status(&self, mut stream: UnixStream) {
        let peers: Vec<PeerStatus> = {
            let mut links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
            links.retain(|l| l.upgrade().is_some_and(|l| !l.is_gone()));
            links
                .iter()
                .filter_map(Weak::upgrade)
                .map(|l| {
                    let stats = crate::link::stats(&l.counters);
                    PeerStatus {
                        pid: l.peer.pid(),
                        slots_out: l.slots_out.load(Ordering::Relaxed),
                        slots_total: l.slots_total,
                        messages_sent: stats.messages_sent,
                        messages_received: stats.messages_received,
                    }
                })
                .collect()
        };
        let max = self
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len();
        let reply = status::encode(self.me.pid, max, &peers);
        let _ = stream.set_write_timeout(Some(Duration::from_millis(300)));
        let _ = std::io::Write::write_all(&mut stream, &reply);
    }

    /// Gives `stream`'s guest a peer entry and a fresh segment; `None` if it was refused,
    /// [`Error::PeerGone`] if it left before its welcome.
    fn welcome(&self, stream: UnixStream, peer: Peer) -> Result<Option<Link>> {
        let Some(slot) = PeerTable::take(&self.peers, peer.id()) else {
            let frame = Hello::Refuse(RefuseReason::PeerTableFull).encode();
            let _ = memwire_shm::send_with_fds(&stream, &frame, &[]);
            tracing::warn!(host = %self.name, guest = peer.pid(), "peer table full: guest refused");
            return Ok(None);
        };
        let config = &self.config.link;
        let layout = Layout::new(config);
        let segment = MemfdSegment::create("memwire-link", layout.len as u64)?;
        let map = segment.map(Access::ReadWrite)?;
        let epoch = self.epoch.fetch_add(1, Ordering::Relaxed);
        write_header(&map, config, self.me, epoch)?;
        let bells = Bells::for_host()?;
        let frame = Hello::Welcome {
            peer: slot.index as u32,
            host: self.me,
            segment_len: layout.len as u64,
            epoch,
        }
        .encode();
        let [b0, b1, b2, b3] = bells.welcome_fds();
        // A guest that closed its socket meanwhile (EPIPE) left: `PeerGone`, which `accept`
        // skips, so one quitter cannot fail the host's accept loop.
        if let Err(e) =
            memwire_shm::send_with_fds(&stream, &frame, &[segment.as_fd(), b0, b1, b2, b3])
        {
            let gone = [rustix::io::Errno::PIPE, rustix::io::Errno::CONNRESET]
                .iter()
                .any(|errno| e.errno() == Some(errno.raw_os_error()));
            return Err(if gone {
                Error::PeerGone { pid: peer.pid() }
            } else {
                e.into()
            });
        }
        let link = Link::new(LinkParts {
            map: Arc::new(map),
            config: config.clone(),
            layout,
            side: Side::Host,
            control: stream,
            peer,
            wait: self.config.wait,
            slot: Some(slot),
            bells,
        })?;
        let mut links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget dropped links here too: a host nobody asks for its status would otherwise
        // keep one (deallocated only with the `Weak`) per guest it ever served.
        links.retain(|l| l.strong_count() > 0);
        links.push(Arc::downgrade(link.shared()));
        drop(links);
        Ok(Some(link))
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A walk-in guest's pid as `SO_PEERCRED` gave it, if we can open a pidfd on it: `None` for
/// pid 0, a process not visible in our pid namespace.
fn visible(pid: u32) -> Option<u32> {
    #[cfg(test)]
    if tests::HIDE_PIDS.with(std::cell::Cell::get) {
        return None;
    }
    (pid != 0).then_some(pid)
}

/// The error of a spawned child that exited before it joined: reaps it for its status.
fn exited(child: &mut Child) -> Error {
    let pid = child.id();
    match child.wait() {
        Ok(status) => Error::GuestExited { pid, status },
        Err(source) => Error::Io {
            op: "reap the spawned guest",
            source,
        },
    }
}

/// What a spawned child did first.
enum Joined {
    /// It wrote on its socket (its join request, we hope).
    Asked,
    /// It exited.
    Exited,
    /// Neither, by the deadline.
    TimedOut,
}

/// Waits until the spawned child `peer` has written on `ours`, has exited, or `deadline`
/// (`None`: none) passed.
fn wait_for_join(
    ours: &UnixStream,
    peer: &ProcessHandle,
    deadline: Option<Instant>,
) -> Result<Joined> {
    use rustix::event::{PollFd, PollFlags};
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left == Some(Duration::ZERO) {
            return Ok(Joined::TimedOut);
        }
        let ts = left.and_then(|l| rustix::event::Timespec::try_from(l).ok());
        let mut fds = [
            PollFd::new(ours, PollFlags::IN),
            PollFd::new(peer, PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, ts.as_ref()) {
            // Its exit closes its end of the pair too: the pidfd decides between the two.
            Ok(_) if !fds[1].revents().is_empty() => return Ok(Joined::Exited),
            Ok(_) if !fds[0].revents().is_empty() => return Ok(Joined::Asked),
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                return Err(Error::Io {
                    op: "wait for the spawned guest to join",
                    source: e.into(),
                });
            }
        }
    }
}

/// Why a spawned child's first frame could not be read.
enum Unread {
    /// It closed its end first.
    Closed,
    /// It sent no frame in time, or a malformed one.
    Bad,
}

/// Reads a spawned child's first frame, giving it `timeout` to send it.
fn read_request(stream: &UnixStream, timeout: Duration) -> Result<Request, Unread> {
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|_| Unread::Bad)?;
    let mut frame = [0u8; FRAME];
    let read = std::io::Read::read_exact(&mut &*stream, &mut frame);
    let _ = stream.set_read_timeout(None);
    match read {
        Ok(()) => Request::decode(&frame).map_err(|_| Unread::Bad),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Unread::Closed),
        Err(_) => Err(Unread::Bad),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Makes `accept` on this thread treat every guest's pid as not visible (as
        /// `SO_PEERCRED` reports a guest in another pid namespace): the seam for the test of
        /// pid-less guests, which cannot make a real pid namespace without privileges.
        pub(super) static HIDE_PIDS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// A walk-in guest whose pid the host cannot see (`SO_PEERCRED` pid 0) still gets its
    /// link, without a pidfd: the host learns that it went from the control socket's hang-up
    /// alone (the "guest" here is this very process, which never exits, so a pidfd could not
    /// have told).
    #[test]
    fn a_guest_with_an_unseen_pid_is_accepted_and_its_hang_up_is_its_death() {
        let host = bind("unseen-pid");
        HIDE_PIDS.with(|h| h.set(true));
        let name = host.name().to_string();
        let guest = std::thread::spawn(move || crate::Guest::connect(&name));
        let accepted = host.accept_timeout(Duration::from_secs(30));
        HIDE_PIDS.with(|h| h.set(false));
        let mut link = accepted.unwrap();
        let mut guest = guest.join().unwrap().unwrap();
        assert_eq!(link.peer().pid, 0);
        assert_eq!(host.peers().len(), 1, "{:?}", host.peers());
        guest.tx().send(b"from another namespace").unwrap();
        assert_eq!(
            &*link.rx().recv_timeout(Duration::from_secs(30)).unwrap(),
            b"from another namespace"
        );
        drop(guest);
        match link.rx().recv_timeout(Duration::from_secs(30)) {
            Err(Error::PeerGone { pid: 0 }) => {}
            other => panic!("recv after the unseen guest left gave {other:?}"),
        }
        assert!(host.peers().is_empty(), "{:?}", host.peers());
    }

    fn bind(test: &str) -> Host {
        let name = format!("host-unit-{test}-{}", std::process::id());
        Host::bind(&name, HostConfig::default()).unwrap()
    }

    /// A guest that asks to join and closes its socket before the welcome costs the host
    /// nothing: `accept` goes on to the next guest instead of failing.
    #[test]
    fn a_guest_gone_before_its_welcome_does_not_fail_accept() {
        let host = bind("gone-before-welcome");
        {
            let stream = UnixStream::connect(host.socket_path()).unwrap();
            std::io::Write::write_all(&mut &stream, &Request::Join.encode()).unwrap();
        }
        let name = host.name().to_string();
        let guest = std::thread::spawn(move || crate::Guest::connect(&name));
        let mut link = host.accept_timeout(Duration::from_secs(30)).unwrap();
        let mut guest = guest.join().unwrap().unwrap();
        guest.tx().send(b"after the quitter").unwrap();
        assert_eq!(
            &*link.rx().recv_timeout(Duration::from_secs(30)).unwrap(),
            b"after the quitter"
        );
        assert_eq!(host.peers().len(), 1, "{:?}", host.peers());
    }

    /// The host's record of its links (for status reports) forgets dropped links as it goes,
    /// not only when someone asks for the status: a host serving guest after guest does not
    /// grow without bound.
    #[test]
    fn dropped_links_leave_the_hosts_record() {
        let host = bind("record");
        for _ in 0..3 {
            let name = host.name().to_string();
            let guest = std::thread::spawn(move || crate::Guest::connect(&name));
            let link = host.accept_timeout(Duration::from_secs(30)).unwrap();
            drop(guest.join().unwrap().unwrap());
            drop(link);
        }
        let name = host.name().to_string();
        let guest = std::thread::spawn(move || crate::Guest::connect(&name));
        let _link = host.accept_timeout(Duration::from_secs(30)).unwrap();
        let _guest = guest.join().unwrap().unwrap();
        let links = host.links.lock().unwrap_or_else(PoisonError::into_inner);
        assert_eq!(links.len(), 1, "links recorded: {}", links.len());
    }
}
