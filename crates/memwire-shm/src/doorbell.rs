//! A doorbell: an eventfd that one side rings and the other waits on.
//!
//! An eventfd holds a 64-bit counter. [`Doorbell::ring`] adds 1; a wait returns once the counter
//! is non-zero and takes it back to zero, so any number of rings before a wait are seen as one
//! (the count is reported, but only "rung or not" is meant). The fd can be polled, passed to
//! another process (SCM_RIGHTS or inheritance) and registered with tokio ([`AsyncDoorbell`]).
//!
//! The doorbell says "look", never what changed: the data it announces lives elsewhere (a ring
//! in shared memory), and the waiter checks it after every wake-up.
//!
//! **Untrusted peers.** A peer that holds the other end of a doorbell can ring it whenever it
//! likes (spurious wake-ups: harmless, the waiter checks its condition) or take the count
//! itself (a missed wake-up for the waiter: it can only delay its own messages). An fd received
//! from a peer could be anything; [`Doorbell::from_fd`] checks that it is an eventfd in counter
//! mode before using it.
//!
//! Cost: one fd and no memory of note.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use rustix::event::{EventfdFlags, eventfd};
use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::sys;

/// An eventfd used as a doorbell (counter mode, close-on-exec, non-blocking).
///
/// ```
/// # fn main() -> memwire_shm::Result<()> {
/// use memwire_shm::Doorbell;
///
/// let bell = Doorbell::new()?;
/// assert_eq!(bell.try_take()?, 0);
/// bell.ring()?;
/// bell.ring()?;
/// assert_eq!(bell.try_take()?, 2);
/// assert!(!bell.wait(Some(std::time::Duration::ZERO))?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Doorbell {
    /// An eventfd in counter mode with `O_NONBLOCK` set on its open file description.
    fd: OwnedFd,
}

impl Doorbell {
    /// `eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)`: a new doorbell, not rung.
    pub fn new() -> Result<Self> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| Error::os("eventfd", e))?;
        Ok(Self { fd })
    }

    /// Adopts an eventfd received from elsewhere, after checking that it is one.
    ///
    /// The check reads `/proc/self/fdinfo/N`: an eventfd, and only an eventfd, reports an
    /// `eventfd-count:` line; one in semaphore mode (`EFD_SEMAPHORE`, which hands the count out
    /// one at a time) is refused. Anything else is [`Error::WrongFdKind`] (and is closed).
    ///
    /// Sets `O_NONBLOCK` if it is missing. That flag lives on the open file description, which
    /// the sender shares: it sees a non-blocking fd from then on.
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        let raw = fd.as_raw_fd();
        let path = format!("/proc/self/fdinfo/{raw}");
        let info = std::fs::read_to_string(&path).map_err(|e| Error::path("read", &path, e))?;
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name))
                .map(str::trim)
        };
        if field("eventfd-count:").is_none() || field("eventfd-semaphore:") == Some("1") {
            return Err(Error::WrongFdKind {
                fd: raw,
                expected: "an eventfd in counter mode",
            });
        }
        let flags = fcntl_getfl(&fd).map_err(|e| Error::os("fcntl F_GETFL", e))?;
        if !flags.contains(OFlags::NONBLOCK) {
            fcntl_setfl(&fd, flags | OFlags::NONBLOCK)
                .map_err(|e| Error::os("fcntl F_SETFL", e))?;
        }
        Ok(Self { fd })
    }

    /// `write(fd, &1u64, 8)`: rings the doorbell. Never blocks.
    ///
    /// If the counter is at its maximum (`u64::MAX - 1`, only reachable by a peer writing huge
    /// values) the write would block (`EAGAIN`): the doorbell is rung already, so that is
    /// success.
    pub fn ring(&self) -> Result<()> {
        loop {
            match rustix::io::write(&self.fd, &1u64.to_ne_bytes()) {
                Ok(_) | Err(Errno::AGAIN) => return Ok(()),
                Err(Errno::INTR) => {}
                Err(e) => return Err(Error::os("write eventfd", e)),
            }
        }
    }

    /// `read(fd, &count, 8)`: takes the rings so far and returns how many there were (0 when
    /// it was not rung). Never blocks.
    pub fn try_take(&self) -> Result<u64> {
        match read_count(self.fd.as_fd()) {
            Ok(count) => Ok(count),
            Err(Errno::AGAIN) => Ok(0),
            Err(e) => Err(Error::os("read eventfd", e)),
        }
    }

    /// Waits until the doorbell is rung (or was already) and takes the rings: `true` when it
    /// was rung, `false` when `timeout` ran out first. `None` waits forever.
    ///
    /// If another holder of the fd takes the rings between the wake-up and our read, the wait
    /// goes on for the time that remains.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        // `None` with `Some(timeout)`: the deadline is past `Instant`'s range, i.e. forever.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            if self.try_take()? > 0 {
                return Ok(true);
            }
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let readable = sys::poll_readable(self.fd.as_fd(), remaining)
                .map_err(|e| Error::os("poll eventfd", e))?;
            if !readable {
                // Timed out; a ring that landed at the last moment still counts.
                return Ok(self.try_take()? > 0);
            }
        }
    }

    /// The eventfd, to pass to another process.
    #[must_use]
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

/// Reads the counter once, retrying `EINTR`; `EAGAIN` when it is zero.
fn read_count(fd: BorrowedFd<'_>) -> rustix::io::Result<u64> {
    let mut buf = [0u8; 8];
    loop {
        match rustix::io::read(fd, &mut buf[..]) {
            // An eventfd read returns exactly 8 bytes or fails.
            Ok(8) => return Ok(u64::from_ne_bytes(buf)),
            Ok(_) => return Err(Errno::IO),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
}

impl AsFd for Doorbell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Doorbell {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl From<Doorbell> for OwnedFd {
    fn from(bell: Doorbell) -> Self {
        bell.fd
    }
}

/// A [`Doorbell`] registered with the tokio reactor: waits without blocking a thread.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> memwire_shm::Result<()> {
/// use memwire_shm::AsyncDoorbell;
///
/// let bell = AsyncDoorbell::new()?;
/// bell.ring()?;
/// assert_eq!(bell.wait().await?, 1);
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub struct AsyncDoorbell {
    /// Registered through `reactor::register`; `get_mut` is never called on it.
    fd: tokio::io::unix::AsyncFd<Doorbell>,
}

#[cfg(feature = "tokio")]
impl AsyncDoorbell {
    /// A new doorbell, registered with the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or in one whose I/O driver is disabled.
    pub fn new() -> Result<Self> {
        Self::from_doorbell(Doorbell::new()?)
    }

    /// Registers `bell` with the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or in one whose I/O driver is disabled.
    pub fn from_doorbell(bell: Doorbell) -> Result<Self> {
        let fd = crate::reactor::register(bell, tokio::io::Interest::READABLE)
            .map_err(|e| Error::os("register eventfd with the tokio reactor", e))?;
        Ok(Self { fd })
    }

    /// Rings the doorbell; see [`Doorbell::ring`].
    pub fn ring(&self) -> Result<()> {
        self.fd.get_ref().ring()
    }

    /// Resolves once the doorbell is rung (or at once if it was), taking the rings and
    /// returning how many there were (at least 1).
    pub async fn wait(&self) -> Result<u64> {
        loop {
            let mut ready = self
                .fd
                .readable()
                .await
                .map_err(|e| Error::os("await eventfd readiness", e))?;
            // `try_io` clears the readiness when the read would block (another holder took the
            // rings first), so the next `readable()` waits for a fresh ring.
            match ready.try_io(|fd| read_count(fd.get_ref().as_fd()).map_err(Into::into)) {
                Ok(Ok(count)) => return Ok(count),
                Ok(Err(e)) => return Err(Error::os("read eventfd", e)),
                Err(_would_block) => {}
            }
        }
    }

    /// The doorbell, to ring or pass on.
    #[must_use]
    pub fn doorbell(&self) -> &Doorbell {
        self.fd.get_ref()
    }

    /// Deregisters from the reactor and gives the doorbell back.
    #[must_use]
    pub fn into_doorbell(self) -> Doorbell {
        self.fd.into_inner()
    }
}

#[cfg(feature = "tokio")]
impl AsFd for AsyncDoorbell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.get_ref().as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Generous: only a lost ring gets near it, and then the test fails instead of hanging.
    const DEADLINE: Duration = Duration::from_secs(30);

    #[test]
    fn rings_add_up_and_take_resets() {
        let bell = Doorbell::new().unwrap();
        assert_eq!(bell.try_take().unwrap(), 0);
        bell.ring().unwrap();
        bell.ring().unwrap();
        bell.ring().unwrap();
        assert_eq!(bell.try_take().unwrap(), 3);
        assert_eq!(bell.try_take().unwrap(), 0);
        assert!(!bell.wait(Some(Duration::from_millis(10))).unwrap());
    }

    #[test]
    fn ring_from_another_thread_wakes_wait() {
        let bell = Arc::new(Doorbell::new().unwrap());
        let ringer = {
            let bell = Arc::clone(&bell);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                bell.ring().unwrap();
            })
        };
        assert!(bell.wait(Some(DEADLINE)).unwrap());
        ringer.join().unwrap();
        assert_eq!(bell.try_take().unwrap(), 0, "wait took the ring");
    }

    #[test]
    fn full_counter_still_rings() {
        let bell = Doorbell::new().unwrap();
        // The largest value an eventfd counter holds.
        rustix::io::write(&bell, &(u64::MAX - 1).to_ne_bytes()).unwrap();
        bell.ring().unwrap();
        assert_eq!(bell.try_take().unwrap(), u64::MAX - 1);
    }

    #[test]
    fn from_fd_accepts_an_eventfd_and_makes_it_non_blocking() {
        let fd = eventfd(0, EventfdFlags::CLOEXEC).unwrap();
        let bell = Doorbell::from_fd(fd).unwrap();
        assert!(fcntl_getfl(&bell).unwrap().contains(OFlags::NONBLOCK));
        // Would block forever on a blocking eventfd.
        assert_eq!(bell.try_take().unwrap(), 0);
        bell.ring().unwrap();
        let again = Doorbell::from_fd(bell.into_fd()).unwrap();
        assert_eq!(again.try_take().unwrap(), 1);
    }

    #[test]
    fn from_fd_rejects_other_fds() {
        let (reader, writer) = rustix::pipe::pipe().unwrap();
        for fd in [reader, writer] {
            assert!(matches!(
                Doorbell::from_fd(fd),
                Err(Error::WrongFdKind { .. })
            ));
        }
        let file = tempfile::tempfile().unwrap();
        assert!(matches!(
            Doorbell::from_fd(file.into()),
            Err(Error::WrongFdKind { .. })
        ));
        let semaphore = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::SEMAPHORE).unwrap();
        assert!(matches!(
            Doorbell::from_fd(semaphore),
            Err(Error::WrongFdKind { .. })
        ));
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn async_wait_is_woken_by_a_ring_from_another_thread() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let bell = AsyncDoorbell::new().unwrap();
            let plain =
                Doorbell::from_fd(bell.doorbell().as_fd().try_clone_to_owned().unwrap()).unwrap();
            let ringer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                plain.ring().unwrap();
            });
            let count = tokio::time::timeout(DEADLINE, bell.wait())
                .await
                .expect("no wake-up within the deadline")
                .unwrap();
            assert_eq!(count, 1);
            ringer.join().unwrap();
            assert_eq!(bell.doorbell().try_take().unwrap(), 0);
        });
    }
}
