//! [`send_with_fds`](super::send_with_fds) and [`recv_with_fds`](super::recv_with_fds) on a
//! tokio [`UnixStream`].
//!
//! Each call tries the syscall with `MSG_DONTWAIT`; on `EAGAIN` tokio clears the socket's
//! readiness and parks the task until the reactor reports it ready again. Cancel-safe: a
//! future dropped before it completes has sent or received nothing.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use ::tokio::io::Interest;
use ::tokio::net::UnixStream;
use rustix::net::{RecvFlags, SendFlags};

use super::{Received, recv_with_flags, send_with_flags};
use crate::error::{Error, Result};

/// `sendmsg(socket, {data, SCM_RIGHTS(fds)}, MSG_NOSIGNAL | MSG_DONTWAIT)`, waiting until the
/// socket is writable: the async [`send_with_fds`](super::send_with_fds), with the same
/// errors and the same short-send rule.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::os::fd::AsFd;
/// use memwire_shm::fdpass::{recv_with_fds_async, send_with_fds_async};
///
/// let (host, guest) = tokio::net::UnixStream::pair()?;
/// let file = tempfile::tempfile()?;
/// send_with_fds_async(&host, b"seg", &[file.as_fd()]).await?;
/// let mut buf = [0; 16];
/// let received = recv_with_fds_async(&guest, &mut buf, 4).await?;
/// assert_eq!((received.len, received.fds.len()), (3, 1));
/// # Ok(())
/// # }
/// ```
pub async fn send_with_fds_async(
    socket: &UnixStream,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<usize> {
    socket
        .async_io(Interest::WRITABLE, || {
            send_with_flags(socket.as_fd(), data, fds, SendFlags::DONTWAIT).map_err(io::Error::from)
        })
        .await
        .map_err(|e| unwrap_error("sendmsg", e))
}

/// `recvmsg(socket, {buf, SCM_RIGHTS}, MSG_CMSG_CLOEXEC | MSG_DONTWAIT)`, waiting until the
/// socket is readable: the async [`recv_with_fds`](super::recv_with_fds), with the same
/// errors; `len == 0` with no fds means the peer closed.
pub async fn recv_with_fds_async(
    socket: &UnixStream,
    buf: &mut [u8],
    max_fds: usize,
) -> Result<Received> {
    socket
        .async_io(Interest::READABLE, || {
            recv_with_flags(socket.as_fd(), buf, max_fds, RecvFlags::DONTWAIT)
                .map_err(io::Error::from)
        })
        .await
        .map_err(|e| unwrap_error("recvmsg", e))
}

/// Gets our [`Error`] back out of the `io::Error` that carried it through `async_io` (which
/// needs an `io::Error` of kind `WouldBlock` to know when to wait; `Error::Os` keeps the kind
/// of its errno). An error raised by tokio itself is wrapped as an OS error of `op`.
fn unwrap_error(op: &'static str, err: io::Error) -> Error {
    match err.downcast::<Error>() {
        Ok(err) => err,
        Err(err) => Error::os(op, err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;

    use rustix::pipe::{PipeFlags, pipe_with};

    #[::tokio::test]
    async fn waits_for_data_then_round_trips() {
        let (a, b) = UnixStream::pair().unwrap();
        let (read_end, write_end) = pipe_with(PipeFlags::CLOEXEC).unwrap();
        let receiver = ::tokio::spawn(async move {
            let mut buf = [0; 8];
            let received = recv_with_fds_async(&b, &mut buf, 2).await.unwrap();
            (buf[..received.len].to_vec(), received.fds)
        });
        // Whether or not the receiver already parked on an empty socket, it must get this.
        send_with_fds_async(&a, b"pipe", &[write_end.as_fd()])
            .await
            .unwrap();
        drop(write_end);
        let (bytes, mut fds): (Vec<u8>, Vec<OwnedFd>) = receiver.await.unwrap();
        assert_eq!(bytes, b"pipe");
        assert_eq!(fds.len(), 1);
        let received_write_end = fds.pop().unwrap();
        assert_eq!(rustix::io::write(&received_write_end, b"!").unwrap(), 1);
        let mut out = [0; 1];
        assert_eq!(rustix::io::read(&read_end, &mut out).unwrap(), 1);
        assert_eq!(&out, b"!");
    }

    #[::tokio::test]
    async fn would_block_is_not_an_error_and_errors_keep_their_type() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut buf = [0; 4];
        // Nothing queued: the non-blocking call must say "would block", which `async_io`
        // turns into a wait rather than an error.
        let err = recv_with_flags(b.as_fd(), &mut buf, 0, RecvFlags::DONTWAIT).unwrap_err();
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::WouldBlock);
        // A typed error comes back out of `async_io` as itself.
        let file = tempfile::tempfile().unwrap();
        assert!(matches!(
            send_with_fds_async(&a, b"", &[file.as_fd()]).await,
            Err(Error::InvalidSize { .. })
        ));
        drop(a);
        assert!(recv_with_fds_async(&b, &mut buf, 0).await.unwrap().is_eof());
    }
}
