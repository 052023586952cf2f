//! Small helpers shared by the modules that wait in the kernel: a relative timeout as a
//! `timespec`, and `poll(2)` on one fd that survives signals.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;

/// `timeout` as a `timespec`, or `None` when it is too long to represent (about 292 billion
/// years): the caller then waits without a timeout, which is the same thing.
pub(crate) fn timespec(timeout: Duration) -> Option<Timespec> {
    Timespec::try_from(timeout).ok()
}

/// `poll(&[{fd, POLLIN}], 1, timeout)`: whether `fd` became readable (or reports hang-up or an
/// error, which a reader also has to act on) before `timeout` ran out. `None` waits forever.
///
/// `EINTR` is retried with the time that remains, so a signal neither shortens nor lengthens
/// the wait.
pub(crate) fn poll_readable(
    fd: BorrowedFd<'_>,
    timeout: Option<Duration>,
) -> rustix::io::Result<bool> {
    // `None` here with `Some(timeout)` means the deadline is past `Instant`'s range: forever.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let ts = remaining.and_then(timespec);
        let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
        match poll(&mut fds, ts.as_ref()) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(!fds[0].revents().is_empty()),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
}
