//! Registration of memwire's own fds with the tokio reactor.
//!
//! # Safety
//!
//! `AsyncFd::register_with_interest` is unsafe: the fd that `as_raw_fd` returns must stay open,
//! refer to the same open file description and be the one `as_raw_fd` returns for as long as
//! the `AsyncFd` owns the object; otherwise the reactor would watch (and later deregister) an fd
//! number that now means something else. [`Stable`] marks the types for which that holds, and
//! [`register`] accepts only those. Callers must not hand out `AsyncFd::get_mut` on the result.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// An object that owns one fd for its whole life and always reports that fd.
///
/// Implemented only here, for types whose fd field is never replaced.
pub(crate) trait Stable: AsRawFd {}

/// An `OwnedFd` closes its fd only on drop and cannot be pointed at another one.
impl Stable for OwnedFd {}

/// A `Doorbell`'s `fd: OwnedFd` is private, set in its constructors and never replaced (it has
/// no `&mut self` methods).
impl Stable for crate::doorbell::Doorbell {}

/// Registers `inner` with the current tokio reactor for `interest`.
///
/// # Panics
///
/// Outside a tokio runtime, or in one whose I/O driver is disabled (as tokio's own types do).
pub(crate) fn register<T: Stable>(inner: T, interest: Interest) -> io::Result<AsyncFd<T>> {
    // `T: Stable` owns its fd for its whole life and always returns it from `as_raw_fd`.
    // SAFETY: the `AsyncFd` owns `inner` and nothing here exposes `AsyncFd::get_mut`, so the
    // fd stays open and unchanged until the `AsyncFd` drops or `into_inner` returns `inner`.
    let registered = unsafe { AsyncFd::register_with_interest(inner, interest) };
    registered.map_err(|e| e.into_parts().1)
}
