//! A handle on a process through a pidfd: liveness without pid-reuse races.
//!
//! A pidfd (`pidfd_open(2)`) refers to one process, not to a number: once that process exits,
//! the pidfd becomes readable and stays so, even after the pid has been handed to a stranger.
//! So [`ProcessHandle::is_alive`] never mistakes a newcomer for the process it was opened on,
//! [`ProcessHandle::wait`] sleeps until the exit (no polling of `/proc`), and
//! [`ProcessHandle::kill`] can never hit the wrong process.
//!
//! Opening is the one racy moment: between learning a pid and calling `pidfd_open` the process
//! may die and its pid be reused. [`ProcessHandle::open`] therefore reads the start time before
//! and after `pidfd_open` and refuses the pid if it changed, so the handle is bound to the
//! [`ProcessId`] `(pid, start time)` it reports. (Start times count clock ticks, usually 10 ms:
//! a pid would have to die and be reused within one tick, in the few microseconds of the
//! window, to fool this check.)
//!
//! A process that has exited but not been reaped yet (a zombie) still opens; its handle
//! reports it exited. A process that has been reaped is [`Error::NoSuchProcess`].

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};

use super::id::{ProcessId, Stat, read_stat};
use crate::error::{Error, Result};
use crate::sys;

/// A process, held through a pidfd.
///
/// ```
/// # fn main() -> memwire_shm::Result<()> {
/// use memwire_shm::ProcessHandle;
///
/// let me = ProcessHandle::open(std::process::id())?;
/// assert!(me.is_alive());
/// assert_eq!(me.id(), memwire_shm::ProcessId::current()?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ProcessHandle {
    /// The process `pidfd` refers to: its start time read the same before and after
    /// `pidfd_open`.
    id: ProcessId,
    /// Refers to the process `id` for as long as it is open, whatever becomes of its pid.
    pidfd: OwnedFd,
}

impl ProcessHandle {
    /// `pidfd_open(pid, 0)`: a handle on the process that runs under `pid` now.
    ///
    /// Fails with [`Error::NoSuchProcess`] if there is no such process, if `pid` names a thread
    /// rather than a process, or if the process died and its pid was reused while opening.
    pub fn open(pid: u32) -> Result<Self> {
        Self::open_if(pid, |_| true)
    }

    /// A handle on the process `id`: like [`open`](Self::open), and the process running
    /// under `id.pid` must have started at `id.start_time`, so a stranger that got the pid is
    /// [`Error::NoSuchProcess`].
    pub fn open_id(id: ProcessId) -> Result<Self> {
        Self::open_if(id.pid, |stat| stat.start_time == id.start_time)
    }

    /// A handle on a child this process spawned.
    ///
    /// Call it before waiting on the child: once reaped, its pid is free for reuse. The process
    /// found under the pid must have this process as its parent, so a reaped child is
    /// [`Error::NoSuchProcess`] even if a stranger got its pid (unless the stranger is another
    /// child of ours). A child that has exited but not been reaped opens, and reports exited.
    pub fn from_child(child: &std::process::Child) -> Result<Self> {
        let me = std::process::id();
        Self::open_if(child.id(), |stat| stat.ppid == me)
    }

    /// Opens `pid` if its `/proc/PID/stat` passes `accept`, checking that the start time did
    /// not change across `pidfd_open`.
    fn open_if(pid: u32, accept: impl Fn(Stat) -> bool) -> Result<Self> {
        let gone = || Error::NoSuchProcess { pid };
        let raw = i32::try_from(pid)
            .ok()
            .and_then(Pid::from_raw)
            .ok_or_else(gone)?;
        let before = read_stat(pid).filter(|s| accept(*s)).ok_or_else(gone)?;
        let pidfd = match pidfd_open(raw, PidfdFlags::empty()) {
            Ok(fd) => fd,
            // ESRCH: no such process (any more). `pid` names a thread, not a process: EINVAL
            // on older kernels, ENOENT on newer ones.
            Err(Errno::SRCH | Errno::INVAL | Errno::NOENT) => return Err(gone()),
            Err(e) => return Err(Error::os("pidfd_open", e)),
        };
        // The pidfd refers to whoever held `pid` during `pidfd_open`. If that is still the
        // process we read before, the pid was not reused in between.
        match read_stat(pid) {
            Some(after) if after.start_time == before.start_time => Ok(Self {
                id: ProcessId {
                    pid,
                    start_time: before.start_time,
                },
                pidfd,
            }),
            _ => Err(gone()),
        }
    }

    /// The process this handle refers to.
    #[must_use]
    pub fn id(&self) -> ProcessId {
        self.id
    }

    /// Its pid. Once the process has exited this number may name another process: use the
    /// handle, not the pid.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.id.pid
    }

    /// Whether the process still runs: the pidfd is not readable yet. A zombie has exited.
    ///
    /// Never blocks. If `poll(2)` itself fails (it cannot on a valid fd, short of `ENOMEM`),
    /// the process is reported alive: a live peer taken for dead would have its resources
    /// reclaimed under it, while the opposite mistake only delays the reclaim.
    #[must_use]
    pub fn is_alive(&self) -> bool {
        !matches!(self.wait_timeout(Duration::ZERO), Ok(true))
    }

    /// Blocks until the process exits (`poll(2)` on the pidfd). Returns at once if it has.
    pub fn wait(&self) -> Result<()> {
        sys::poll_readable(self.pidfd.as_fd(), None).map_err(|e| Error::os("poll pidfd", e))?;
        Ok(())
    }

    /// Blocks until the process exits or `timeout` runs out: `true` when it has exited.
    ///
    /// A signal that interrupts the wait does not end it early: it resumes for the time that
    /// remains.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        sys::poll_readable(self.pidfd.as_fd(), Some(timeout))
            .map_err(|e| Error::os("poll pidfd", e))
    }

    /// `pidfd_send_signal(pidfd, SIGKILL, NULL, 0)`: kills the process.
    ///
    /// The signal goes to this very process even if its pid has been reused. Killing a process
    /// that has exited but not been reaped succeeds; one that has been reaped is
    /// [`Error::NoSuchProcess`]. The kill is asynchronous: [`wait`](Self::wait) for the exit.
    pub fn kill(&self) -> Result<()> {
        match pidfd_send_signal(&self.pidfd, Signal::KILL) {
            Ok(()) => Ok(()),
            Err(Errno::SRCH) => Err(Error::NoSuchProcess { pid: self.id.pid }),
            Err(e) => Err(Error::os("pidfd_send_signal", e)),
        }
    }
}

#[cfg(feature = "tokio")]
impl ProcessHandle {
    /// A handle on a child spawned through tokio; see [`from_child`](Self::from_child).
    ///
    /// A child tokio has already reaped has no pid any more: that is
    /// [`Error::NoSuchProcess`] with pid 0.
    pub fn from_tokio_child(child: &tokio::process::Child) -> Result<Self> {
        let pid = child.id().ok_or(Error::NoSuchProcess { pid: 0 })?;
        let me = std::process::id();
        Self::open_if(pid, |stat| stat.ppid == me)
    }

    /// Resolves when the process exits, without blocking a thread.
    ///
    /// Registers a duplicate of the pidfd with the tokio reactor for the length of the call, so
    /// the handle itself stays usable without a runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or in one whose I/O driver is disabled.
    pub async fn exited(&self) -> Result<()> {
        let dup = self
            .pidfd
            .try_clone()
            .map_err(|e| Error::os("dup pidfd", e))?;
        let fd = crate::reactor::register(dup, tokio::io::Interest::READABLE)
            .map_err(|e| Error::os("register pidfd with the tokio reactor", e))?;
        loop {
            let mut ready = fd
                .readable()
                .await
                .map_err(|e| Error::os("await pidfd readiness", e))?;
            // The reactor may report readiness that is stale; the pidfd itself is the truth.
            if self.wait_timeout(Duration::ZERO)? {
                return Ok(());
            }
            ready.clear_ready();
        }
    }
}

impl AsFd for ProcessHandle {
    /// The pidfd: readable once the process has exited.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_does_not_exit_within_a_timeout() {
        let me = ProcessHandle::open(std::process::id()).unwrap();
        assert!(me.is_alive());
        assert!(!me.wait_timeout(Duration::from_millis(20)).unwrap());
        assert_eq!(me.id(), ProcessId::current().unwrap());
        assert_eq!(me.pid(), std::process::id());
    }

    #[test]
    fn impossible_pids_are_no_such_process() {
        for pid in [0, u32::MAX, i32::MAX as u32] {
            assert!(
                matches!(
                    ProcessHandle::open(pid),
                    Err(Error::NoSuchProcess { pid: p }) if p == pid
                ),
                "{pid}"
            );
        }
    }

    #[test]
    fn open_id_checks_the_start_time() {
        let me = ProcessId::current().unwrap();
        assert!(ProcessHandle::open_id(me).is_ok());
        let impostor = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(matches!(
            ProcessHandle::open_id(impostor),
            Err(Error::NoSuchProcess { .. })
        ));
    }

    #[test]
    fn a_thread_is_not_a_process() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            tx.send(rustix::thread::gettid().as_raw_nonzero().get())
                .unwrap();
            let _ = done_rx.recv();
        });
        let tid = rx.recv().unwrap();
        let result = ProcessHandle::open(u32::try_from(tid).unwrap());
        drop(done_tx);
        t.join().unwrap();
        assert!(
            matches!(result, Err(Error::NoSuchProcess { .. })),
            "{result:?}"
        );
    }
}
