//! Small helpers shared by the modules that wait in the kernel.

use std::time::Duration;

use rustix::event::Timespec;

/// `timeout` as a `timespec`, or `None` when it is too long to represent (about 292 billion
/// years): the caller then waits without a timeout, which is the same thing.
pub(crate) fn timespec(timeout: Duration) -> Option<Timespec> {
    Timespec::try_from(timeout).ok()
}
