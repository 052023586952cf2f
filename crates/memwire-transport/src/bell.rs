//! The link's doorbells: the eventfds a tokio waiter sleeps on (`awaiting.rs`), one per half of
//! each end.
//!
//! A waiter that cannot block its thread declares [`WaitKind::Doorbell`] in its ring state
//! word instead of `Futex`; the peer, seeing it, rings the doorbell of the waiting half instead
//! of making a `FUTEX_WAKE`. The host creates all four and sends them to the guest in the
//! welcome frame, after the segment (`hello.rs`):
//!
//! ```text
//! fd 1  host rx   the host's Rx waits on it: a message arrived on direction 1
//! fd 2  host tx   the host's Tx waits on it: room in direction 0's ring, or a slot returned
//! fd 3  guest rx  as host rx, for the guest (direction 0)
//! fd 4  guest tx  as host tx, for the guest (direction 1)
//! ```
//!
//! **Why one doorbell per half, not one per end.** An eventfd read takes the whole count, and
//! an end's `Rx` and `Tx` may await at the same time on different tasks: sharing one eventfd,
//! the `Tx` could take a ring meant for the `Rx`, find nothing for itself and sleep again,
//! while the `Rx` sleeps on: a lost wake-up. A half's own waits (a `Tx` waiting for ring room,
//! then for a returned slot) never overlap, since each takes `&mut self`, so they share its
//! doorbell: a ring left over from an earlier wait costs one spurious wake-up and a re-check.
//!
//! **Untrusted peers.** Both processes hold all four eventfds. The guest checks that each fd
//! it receives is an eventfd in counter mode ([`Doorbell::from_fd`]). A peer can ring our
//! doorbells at will (spurious wake-ups: we re-check the ring) or read their count (we miss a
//! wake-up: it can only stall the link it shares with us, which it could anyway by not
//! sending). On the peer's death the watcher rings our own doorbells (`Shared::mark_gone`), so
//! every async waiter returns `PeerGone`.
//!
//! Cost: four fds per link in each process, plus one more per half once it has awaited (its
//! registration with the tokio reactor holds a dup).
//!
//! [`WaitKind::Doorbell`]: crate::ring::WaitKind::Doorbell

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use memwire_shm::Doorbell;

use crate::error::{Error, Result};

/// A half of one end: each waits on its own doorbell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Half {
    /// The receiving half: waits for messages.
    Rx = 0,
    /// The sending half: waits for room in the data ring and for returned slots.
    Tx = 1,
}

/// Number of doorbells the welcome frame carries after the segment.
pub(crate) const WELCOME_BELLS: usize = 4;

/// One end's view of the link's doorbells.
#[derive(Debug)]
pub(crate) struct Bells {
    /// Ours, indexed by [`Half`]: we wait on them, the peer rings them.
    own: [Doorbell; 2],
    /// The peer's, indexed by [`Half`]: we ring them.
    peer: [Doorbell; 2],
}

impl Bells {
    /// The host's: four fresh eventfds.
    pub(crate) fn for_host() -> Result<Self> {
        Ok(Self {
            own: [Doorbell::new()?, Doorbell::new()?],
            peer: [Doorbell::new()?, Doorbell::new()?],
        })
    }

    /// The fds a host sends the guest, in the welcome order (module doc).
    pub(crate) fn welcome_fds(&self) -> [BorrowedFd<'_>; WELCOME_BELLS] {
        [
            self.own[Half::Rx as usize].as_fd(),
            self.own[Half::Tx as usize].as_fd(),
            self.peer[Half::Rx as usize].as_fd(),
            self.peer[Half::Tx as usize].as_fd(),
        ]
    }

    /// The guest's, from the fds of the welcome frame: each must be an eventfd in counter mode.
    ///
    /// They must also be four different eventfds: a host that passed one eventfd twice would
    /// make two waiters share a counter, and one read would swallow the other's wake-up.
    pub(crate) fn from_welcome(fds: [OwnedFd; WELCOME_BELLS]) -> Result<Self> {
        let ids: Vec<Option<u64>> = fds.iter().map(|fd| eventfd_id(fd.as_fd())).collect();
        for (i, a) in ids.iter().enumerate() {
            if a.is_some() && ids[i + 1..].contains(a) {
                return Err(Error::BadSegment(
                    "the welcome's doorbells are not four different eventfds".into(),
                ));
            }
        }
        let [host_rx, host_tx, guest_rx, guest_tx] = fds;
        Ok(Self {
            own: [Doorbell::from_fd(guest_rx)?, Doorbell::from_fd(guest_tx)?],
            peer: [Doorbell::from_fd(host_rx)?, Doorbell::from_fd(host_tx)?],
        })
    }

    /// Rings the doorbell of the peer's `half`.
    pub(crate) fn ring_peer(&self, half: Half) -> Result<()> {
        Ok(self.peer[half as usize].ring()?)
    }

    /// Rings both of our own doorbells, so that our async waiters look again (the link is gone).
    pub(crate) fn ring_own(&self) {
        for bell in &self.own {
            // Ringing fails only on a closed or foreign fd, which ours are not; a waiter that
            // missed it would still see the link gone on its next check.
            let _ = bell.ring();
        }
    }

    /// Our doorbell of `half`.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn own(&self, half: Half) -> &Doorbell {
        &self.own[half as usize]
    }
}

/// A half's doorbell registered with the tokio reactor, made by its first async wait (a link is
/// made outside any runtime). It stays bound to that runtime, as tokio's own sockets do.
#[derive(Debug, Default)]
pub(crate) struct AsyncBell {
    #[cfg(feature = "tokio")]
    registered: Option<memwire_shm::AsyncDoorbell>,
}

#[cfg(feature = "tokio")]
impl AsyncBell {
    /// The registered doorbell of our `half`, registering a dup of it on first use. Fails
    /// outside a tokio runtime instead of panicking.
    pub(crate) fn get(&mut self, bells: &Bells, half: Half) -> Result<&memwire_shm::AsyncDoorbell> {
        let registered = match self.registered.take() {
            Some(registered) => registered,
            None => {
                tokio::runtime::Handle::try_current().map_err(|e| Error::Io {
                    op: "find the tokio runtime to await the link in",
                    source: std::io::Error::other(e),
                })?;
                let dup = bells
                    .own(half)
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| Error::Io {
                        op: "dup a doorbell for the tokio reactor",
                        source: e,
                    })?;
                memwire_shm::AsyncDoorbell::from_doorbell(Doorbell::from_fd(dup)?)?
            }
        };
        Ok(self.registered.insert(registered))
    }
}

/// The kernel's id of an eventfd (`eventfd-id:` in `/proc/self/fdinfo/N`, Linux 6.1+); `None`
/// where the kernel does not say, and then distinctness goes unchecked.
fn eventfd_id(fd: BorrowedFd<'_>) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("eventfd-id:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_welcome_doorbells_must_be_distinct() {
        let fresh = || Doorbell::new().unwrap().into_fd();
        assert!(Bells::from_welcome([fresh(), fresh(), fresh(), fresh()]).is_ok());
        let one = fresh();
        let dups = [
            one.try_clone().unwrap(),
            fresh(),
            one.try_clone().unwrap(),
            fresh(),
        ];
        let got = Bells::from_welcome(dups);
        if eventfd_id(one.as_fd()).is_some() {
            assert!(matches!(got, Err(Error::BadSegment(_))));
        }
    }

    #[test]
    fn the_guest_sees_the_host_bells_mirrored() {
        let host = Bells::for_host().unwrap();
        let fds = host
            .welcome_fds()
            .map(|fd| fd.try_clone_to_owned().unwrap());
        let guest = Bells::from_welcome(fds).unwrap();
        for half in [Half::Rx, Half::Tx] {
            guest.ring_peer(half).unwrap();
            assert_eq!(host.own(half).try_take().unwrap(), 1, "{half:?}");
            host.ring_peer(half).unwrap();
            assert_eq!(guest.own(half).try_take().unwrap(), 1, "{half:?}");
        }
        guest.ring_own();
        assert_eq!(guest.own(Half::Rx).try_take().unwrap(), 1);
        assert_eq!(guest.own(Half::Tx).try_take().unwrap(), 1);
        assert_eq!(host.own(Half::Rx).try_take().unwrap(), 0);
    }

    #[test]
    fn a_welcome_fd_that_is_not_an_eventfd_is_refused() {
        let host = Bells::for_host().unwrap();
        let mut fds = host
            .welcome_fds()
            .map(|fd| fd.try_clone_to_owned().unwrap());
        let (reader, _writer) = rustix::pipe::pipe().unwrap();
        fds[2] = reader;
        assert!(Bells::from_welcome(fds).is_err());
    }
}
