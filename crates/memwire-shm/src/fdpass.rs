//! File descriptors over Unix stream sockets (`SCM_RIGHTS`) and the peer's identity
//! (`SO_PEERCRED`).
//!
//! This is how a host hands a guest its segment and wake-up fds after bootstrap:
//!
//! ```text
//!   host                                         guest
//!   send_with_fds(sock, b"seg", &[memfd]) ──────▶ recv_with_fds(sock, &mut buf, 4)
//!        one byte or more + SCM_RIGHTS                 → Received { len: 3, fds: [memfd'] }
//!   peer_credentials(sock) → pid, uid, gid of the process that connected
//! ```
//!
//! **Stream semantics.** A Unix stream socket does not keep message boundaries: one receive may
//! return the bytes of several sends, or part of one. The fds sent with a call arrive with the
//! receive that returns the *first byte* sent by that call, and a receive never returns the fds
//! of two sends. Frame your bytes (a length prefix) and attach the fds to the frame's first
//! write. A send may be short: send the rest with an empty fd list.
//!
//! **What a hostile peer can do.** It can send more fds than we want (the kernel installs what
//! fits in our control buffer, then we close them all and return
//! [`Error::TruncatedControl`]), fds of any kind (the caller checks each one, e.g. its seals and
//! size, before mapping it), or no fds at all. Received fds are opened close-on-exec
//! (`MSG_CMSG_CLOEXEC`), so a concurrent `fork`+`exec` never leaks them to a child.
//! [`peer_credentials`] cannot be forged by the peer: the kernel records them at `connect` (or
//! `socketpair`) time. Both ends of a `socketpair` name the process that *created* the pair, not
//! whoever holds the other end after a fork.
//!
//! **Disconnect.** A receive returning `len == 0` (and no fds) means the peer closed its end.
//! Sending to a closed peer returns `EPIPE` ([`Error::Os`]) and never raises `SIGPIPE`
//! (`MSG_NOSIGNAL`).
//!
//! **Cost.** The control buffer lives on the stack: `CMSG_SPACE` of [`MAX_FDS_PER_MESSAGE`] fds,
//! about 150 bytes. No allocation except the `Vec` of received fds.
//!
//! With the `tokio` feature, [`send_with_fds_async`] and [`recv_with_fds_async`] do the same on a
//! [`tokio::net::UnixStream`](::tokio::net::UnixStream).

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use crate::error::{Error, Result};

#[allow(unsafe_code)]
mod peercred;
#[cfg(feature = "tokio")]
mod tokio;

#[cfg(feature = "tokio")]
pub use self::tokio::{recv_with_fds_async, send_with_fds_async};

/// Most fds one message may carry. The kernel allows 253 (`SCM_MAX_FD`); memwire never sends
/// more than a handful (a segment, a doorbell, a pidfd), and a small cap keeps the control
/// buffer on the stack and bounds what a hostile peer can make us install.
pub const MAX_FDS_PER_MESSAGE: usize = 32;

/// Control buffer for up to [`MAX_FDS_PER_MESSAGE`] fds, plus slack to align it for `cmsghdr`.
const CONTROL_SPACE: usize = rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE));

/// What one [`recv_with_fds`] returned.
#[derive(Debug)]
pub struct Received {
    /// Bytes written at the start of the caller's buffer. `0` with no fds: the peer closed
    /// its end.
    pub len: usize,
    /// The fds that arrived with these bytes, in the order they were sent, each close-on-exec.
    /// At most the `max_fds` the caller passed.
    pub fds: Vec<OwnedFd>,
}

impl Received {
    /// Whether the peer closed its end: no bytes and no fds.
    #[must_use]
    pub fn is_eof(&self) -> bool {
        self.len == 0 && self.fds.is_empty()
    }
}

/// The identity of the process at the other end of a Unix socket.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PeerCredentials {
    /// Process id of the peer when it connected (or created the socket pair), in our pid
    /// namespace. The kernel records it then; the process may have exited since. **0** when
    /// the peer's process is not visible in our pid namespace (it runs in a parent or sibling
    /// namespace): then no pidfd can be opened on it.
    pub pid: u32,
    /// Effective user id of the peer when it connected.
    pub uid: u32,
    /// Effective group id of the peer when it connected.
    pub gid: u32,
}

/// `sendmsg(socket, {data, SCM_RIGHTS(fds)}, MSG_NOSIGNAL)`: sends `data` with `fds` attached.
///
/// Returns how many bytes of `data` were sent; it may be fewer than `data.len()` (the fds went
/// with the first byte). Blocks if the socket is blocking and its buffer is full. Retries on
/// `EINTR`. The kernel holds its own reference to each fd while in flight, so the caller may
/// close its copies as soon as this returns.
///
/// # Errors
///
/// - [`Error::InvalidSize`] if `fds` is not empty but `data` is: a stream socket carries
///   ancillary data only along with at least one byte of data, so the fds would be lost.
/// - [`Error::TooManyFds`] if `fds` holds more than [`MAX_FDS_PER_MESSAGE`].
/// - [`Error::Os`] (`"sendmsg"`) if the kernel refuses, e.g. `EPIPE` once the peer closed.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::os::fd::AsFd;
/// use std::os::unix::net::UnixStream;
/// use memwire_shm::fdpass::{recv_with_fds, send_with_fds};
///
/// let (host, guest) = UnixStream::pair()?;
/// let file = tempfile::tempfile()?;
/// assert_eq!(send_with_fds(&host, b"seg", &[file.as_fd()])?, 3);
///
/// let mut buf = [0; 16];
/// let received = recv_with_fds(&guest, &mut buf, 4)?;
/// assert_eq!(&buf[..received.len], b"seg");
/// assert_eq!(received.fds.len(), 1);
/// # Ok(())
/// # }
/// ```
pub fn send_with_fds(socket: impl AsFd, data: &[u8], fds: &[BorrowedFd<'_>]) -> Result<usize> {
    send_with_flags(socket.as_fd(), data, fds, SendFlags::empty())
}

/// [`send_with_fds`] with `extra` flags added to `MSG_NOSIGNAL` (the async version adds
/// `MSG_DONTWAIT`).
pub(crate) fn send_with_flags(
    socket: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
    extra: SendFlags,
) -> Result<usize> {
    if fds.len() > MAX_FDS_PER_MESSAGE {
        return Err(Error::TooManyFds {
            count: fds.len(),
            max: MAX_FDS_PER_MESSAGE,
        });
    }
    if data.is_empty() && !fds.is_empty() {
        return Err(Error::InvalidSize {
            what: format!("data carrying {} fds", fds.len()),
            size: 0,
            reason: "a stream socket needs at least one byte of data to carry fds",
        });
    }
    let mut space = [MaybeUninit::<u8>::uninit(); CONTROL_SPACE];
    let mut control = SendAncillaryBuffer::new(&mut space);
    // An empty SCM_RIGHTS message would still cost a `cmsghdr`; send none instead.
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        // Unreachable: `space` has room for `MAX_FDS_PER_MESSAGE` fds, checked above.
        return Err(Error::TooManyFds {
            count: fds.len(),
            max: MAX_FDS_PER_MESSAGE,
        });
    }
    let iov = [IoSlice::new(data)];
    loop {
        match rustix::net::sendmsg(socket, &iov, &mut control, SendFlags::NOSIGNAL | extra) {
            Err(Errno::INTR) => continue,
            result => return result.map_err(|e| Error::os("sendmsg", e)),
        }
    }
}

/// `recvmsg(socket, {buf, SCM_RIGHTS}, MSG_CMSG_CLOEXEC)`: receives bytes into `buf` and
/// accepts up to `max_fds` fds with them.
///
/// Returns `Ok` with `len == 0` and no fds when the peer closed its end (see
/// [`Received::is_eof`]). Blocks if the socket is blocking and nothing is queued. Retries on
/// `EINTR`.
///
/// # Errors
///
/// - [`Error::TruncatedControl`] if the message carried more than `max_fds` fds. Every fd that
///   arrived has been closed (the kernel drops those it had no room for) and the bytes that came
///   with them are lost: the peer broke the protocol, so drop the connection.
///   With `SO_PASSCRED` on, the kernel's `SCM_CREDENTIALS` message takes the room first, so fds
///   do not fit: read credentials with [`peer_credentials`] instead.
/// - [`Error::InvalidSize`] if `buf` is empty: a zero-length receive could not be told apart from
///   the peer closing.
/// - [`Error::TooManyFds`] if `max_fds` is above [`MAX_FDS_PER_MESSAGE`].
/// - [`Error::Os`] (`"recvmsg"`) if the kernel refuses, e.g. `ECONNRESET`.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::os::unix::net::UnixStream;
/// use memwire_shm::fdpass::recv_with_fds;
///
/// let (host, guest) = UnixStream::pair()?;
/// drop(host);
/// let mut buf = [0; 16];
/// assert!(recv_with_fds(&guest, &mut buf, 4)?.is_eof());
/// # Ok(())
/// # }
/// ```
pub fn recv_with_fds(socket: impl AsFd, buf: &mut [u8], max_fds: usize) -> Result<Received> {
    recv_with_flags(socket.as_fd(), buf, max_fds, RecvFlags::empty())
}

/// [`recv_with_fds`] with `extra` flags added to `MSG_CMSG_CLOEXEC` (the async version adds
/// `MSG_DONTWAIT`).
pub(crate) fn recv_with_flags(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    max_fds: usize,
    extra: RecvFlags,
) -> Result<Received> {
    if max_fds > MAX_FDS_PER_MESSAGE {
        return Err(Error::TooManyFds {
            count: max_fds,
            max: MAX_FDS_PER_MESSAGE,
        });
    }
    if buf.is_empty() {
        return Err(Error::InvalidSize {
            what: "receive buffer".to_owned(),
            size: 0,
            reason: "an empty read cannot be told apart from the peer closing",
        });
    }
    let mut space = [MaybeUninit::<u8>::uninit(); CONTROL_SPACE];
    // Room for `max_fds`, but `CMSG_SPACE` rounds up, so a few more may fit: they are
    // counted below and refused like a truncation.
    let mut control =
        RecvAncillaryBuffer::new(&mut space[..rustix::cmsg_space!(ScmRights(max_fds))]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match rustix::net::recvmsg(
            socket,
            &mut iov,
            &mut control,
            RecvFlags::CMSG_CLOEXEC | extra,
        ) {
            Err(Errno::INTR) => continue,
            result => break result.map_err(|e| Error::os("recvmsg", e))?,
        }
    };
    // Take ownership of every fd that arrived first, so that each one is closed on every path
    // out of here. Other control messages (`SCM_CREDENTIALS`) hold no resources.
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = message {
            fds.extend(rights);
        }
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) || fds.len() > max_fds {
        // Dropping `fds` closes every fd that arrived.
        drop(fds);
        return Err(Error::TruncatedControl { capacity: max_fds });
    }
    Ok(Received {
        len: msg.bytes,
        fds,
    })
}

/// `getsockopt(socket, SOL_SOCKET, SO_PEERCRED)`: the pid, uid and gid of the peer, as the
/// kernel recorded them when it connected (or created the socket pair). The pid is 0 for a
/// peer not visible in our pid namespace.
///
/// # Errors
///
/// [`Error::Os`] (`"getsockopt SO_PEERCRED"`) if `socket` is not a Unix socket or not
/// connected.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::os::unix::net::UnixStream;
/// use memwire_shm::fdpass::peer_credentials;
///
/// let (a, _b) = UnixStream::pair()?;
/// // We created the pair, so we are the peer of both ends.
/// assert_eq!(peer_credentials(&a)?.pid, std::process::id());
/// # Ok(())
/// # }
/// ```
pub fn peer_credentials(socket: impl AsFd) -> Result<PeerCredentials> {
    let cred =
        peercred::peer_ucred(socket.as_fd()).map_err(|e| Error::os("getsockopt SO_PEERCRED", e))?;
    Ok(PeerCredentials {
        // A pid is never negative: 0 (not visible) or positive, so it fits a u32 unchanged.
        pid: cred.pid.unsigned_abs(),
        uid: cred.uid,
        gid: cred.gid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::os::unix::net::UnixStream;

    use rustix::pipe::{PipeFlags, pipe_with};

    #[test]
    fn bytes_and_three_fds_round_trip() {
        let (a, b) = UnixStream::pair().unwrap();
        let files: Vec<File> = (0..3).map(|_| tempfile::tempfile().unwrap()).collect();
        let borrowed: Vec<_> = files.iter().map(AsFd::as_fd).collect();
        assert_eq!(send_with_fds(&a, b"hello", &borrowed).unwrap(), 5);

        let mut buf = [0; 64];
        let received = recv_with_fds(&b, &mut buf, 3).unwrap();
        assert_eq!(&buf[..received.len], b"hello");
        assert_eq!(received.fds.len(), 3);
        for (i, fd) in received.fds.into_iter().enumerate() {
            let flags = rustix::io::fcntl_getfd(&fd).unwrap();
            assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
            writeln!(File::from(fd), "file {i}").unwrap();
        }
        for (i, mut file) in files.into_iter().enumerate() {
            let mut text = String::new();
            file.seek(SeekFrom::Start(0)).unwrap();
            file.read_to_string(&mut text).unwrap();
            assert_eq!(text, format!("file {i}\n"));
        }
    }

    #[test]
    fn bytes_without_fds_and_eof() {
        let (a, b) = UnixStream::pair().unwrap();
        assert_eq!(send_with_fds(&a, b"xy", &[]).unwrap(), 2);
        drop(a);
        let mut buf = [0; 8];
        let received = recv_with_fds(&b, &mut buf, 0).unwrap();
        assert_eq!((received.len, received.fds.len()), (2, 0));
        assert!(recv_with_fds(&b, &mut buf, 0).unwrap().is_eof());
    }

    #[test]
    fn credentials_are_our_own() {
        // Both ends of a pair we created name us.
        let (a, _b) = UnixStream::pair().unwrap();
        let cred = peer_credentials(&a).unwrap();
        assert_eq!(
            cred,
            PeerCredentials {
                pid: std::process::id(),
                uid: rustix::process::geteuid().as_raw(),
                gid: rustix::process::getegid().as_raw(),
            }
        );
    }

    #[test]
    fn credentials_of_a_non_socket_fail() {
        let file = tempfile::tempfile().unwrap();
        let err = peer_credentials(&file).unwrap_err();
        assert_eq!(err.errno(), Some(Errno::NOTSOCK.raw_os_error()));
    }

    #[test]
    fn fds_need_data_and_a_bounded_count() {
        let (a, _b) = UnixStream::pair().unwrap();
        let file = tempfile::tempfile().unwrap();
        assert!(matches!(
            send_with_fds(&a, b"", &[file.as_fd()]),
            Err(Error::InvalidSize { size: 0, .. })
        ));
        let many = vec![file.as_fd(); MAX_FDS_PER_MESSAGE + 1];
        assert!(matches!(
            send_with_fds(&a, b"x", &many),
            Err(Error::TooManyFds { count, max: MAX_FDS_PER_MESSAGE }) if count == many.len()
        ));
        let mut buf = [0; 1];
        assert!(matches!(
            recv_with_fds(&a, &mut buf, MAX_FDS_PER_MESSAGE + 1),
            Err(Error::TooManyFds { .. })
        ));
        assert!(matches!(
            recv_with_fds(&a, &mut [], 1),
            Err(Error::InvalidSize { size: 0, .. })
        ));
    }

    #[test]
    fn send_to_a_closed_peer_is_epipe_not_sigpipe() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let err = send_with_fds(&a, b"x", &[]).unwrap_err();
        assert_eq!(err.errno(), Some(Errno::PIPE.raw_os_error()));
    }

    /// Sends `count` copies of a pipe's write end, receives with room for `max_fds`, and tells
    /// whether every copy is closed afterwards: the read end sees EOF only when no write end is
    /// left open anywhere. (Counting `/proc/self/fd` would race with other test threads; the
    /// integration test `fdpass_processes` counts them in a single-threaded child.)
    fn truncate(count: usize, max_fds: usize) -> (Result<Received>, bool) {
        let (a, b) = UnixStream::pair().unwrap();
        let (read_end, write_end) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).unwrap();
        let fds = vec![write_end.as_fd(); count];
        assert_eq!(send_with_fds(&a, b"fds", &fds).unwrap(), 3);
        drop(write_end);
        let mut buf = [0; 8];
        let result = recv_with_fds(&b, &mut buf, max_fds);
        let all_closed = match rustix::io::read(&read_end, &mut [0; 1]) {
            Ok(0) => true,
            Err(Errno::AGAIN) => false,
            other => panic!("unexpected read from pipe: {other:?}"),
        };
        (result, all_closed)
    }

    #[test]
    fn truncated_control_closes_every_fd_that_arrived() {
        // 4 fds may fit the rounded-up buffer for 1; 32 cannot, so the kernel sets MSG_CTRUNC.
        for count in [2, 4, MAX_FDS_PER_MESSAGE] {
            let (result, all_closed) = truncate(count, 1);
            assert!(
                matches!(result, Err(Error::TruncatedControl { capacity: 1 })),
                "{count}: {result:?}"
            );
            assert!(all_closed, "{count} fds sent: one leaked");
        }
    }

    #[test]
    fn fds_crowded_out_by_credentials_are_reported_not_lost() {
        // With SO_PASSCRED on, the kernel puts SCM_CREDENTIALS in the control buffer first;
        // it fills the room sized for one fd, so the fd is dropped with MSG_CTRUNC and no fd
        // in hand. That must be an error, never `Ok` with the fd silently missing.
        let (a, b) = UnixStream::pair().unwrap();
        rustix::net::sockopt::set_socket_passcred(&b, true).unwrap();
        let file = tempfile::tempfile().unwrap();
        send_with_fds(&a, b"x", &[file.as_fd()]).unwrap();
        let mut buf = [0; 4];
        assert!(matches!(
            recv_with_fds(&b, &mut buf, 1),
            Err(Error::TruncatedControl { capacity: 1 })
        ));
    }

    #[test]
    fn the_leak_check_sees_open_fds() {
        // The same check, with the fds accepted and still held: it must report them open.
        let (result, all_closed) = truncate(4, 4);
        assert_eq!(result.unwrap().fds.len(), 4);
        assert!(!all_closed);
    }
}
