//! The control socket's one message: a large message's memfd.
//!
//! ```text
//! 0  magic "MWLARGE1"   8  sequence number u64      (+ 1 fd: the sealed memfd)
//! ```
//! The sender sends the frame *before* publishing the descriptor that names its sequence
//! number, so the receiver finds it waiting; a descriptor whose frame is missing, out of
//! order, or whose memfd lacks its seals or bytes, is a protocol violation.

use std::os::fd::AsFd;
use std::time::Duration;

use memwire_shm::{Access, Mapping, MemfdSegment};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::link::Shared;

const MAGIC: u64 = u64::from_le_bytes(*b"MWLARGE1");
/// Size of a control frame.
pub(crate) const FRAME: usize = 16;

/// Why the bytes read from the control socket are not a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("control frame of {0} bytes, expected 16")]
    Length(usize),
    #[error("bad control frame magic {0:#018x}")]
    Magic(u64),
}

/// The frame announcing large message `seq`.
pub(crate) fn encode_frame(seq: u64) -> [u8; FRAME] {
    let mut frame = [0u8; FRAME];
    frame[..8].copy_from_slice(&MAGIC.to_le_bytes());
    frame[8..].copy_from_slice(&seq.to_le_bytes());
    frame
}

/// Decodes the bytes a peer sent on the control socket into the sequence number they
/// announce; any bytes give a number or an error, never a panic.
pub(crate) fn decode_frame(b: &[u8]) -> std::result::Result<u64, FrameError> {
    let Ok(frame) = <&[u8; FRAME]>::try_from(b) else {
        return Err(FrameError::Length(b.len()));
    };
    let [magic, seq] = [0, 8].map(|o| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&frame[o..o + 8]);
        u64::from_le_bytes(x)
    });
    if magic != MAGIC {
        return Err(FrameError::Magic(magic));
    }
    Ok(seq)
}

fn would_block(e: &memwire_shm::Error) -> bool {
    e.errno() == Some(Errno::AGAIN.raw_os_error())
}

/// Sends `frame` with `segment` attached if the socket has room: `Ok(false)` when it is full.
fn try_send(shared: &Shared, frame: &[u8; FRAME], segment: &MemfdSegment) -> Result<bool> {
    match memwire_shm::send_with_fds(&shared.control, frame, &[segment.as_fd()]) {
        Ok(n) => sent(shared, n).map(|()| true),
        Err(e) if would_block(&e) => Ok(false),
        Err(e) => Err(send_error(shared, e)),
    }
}

/// Checks that a send took the whole frame.
fn sent(shared: &Shared, n: usize) -> Result<()> {
    if n == FRAME {
        Ok(())
    } else {
        Err(shared.violate("control socket took part of a frame"))
    }
}

/// A failed send: the link's own error once it is gone (the peer closed the socket).
fn send_error(shared: &Shared, e: memwire_shm::Error) -> Error {
    if shared.is_gone() {
        shared.gone_error()
    } else {
        e.into()
    }
}

/// Sends the frame for large message `seq`, waiting for room in the socket if needed (this
/// thread sleeps in `poll`, waking every 100 ms to see whether the link is gone).
pub(crate) fn send_large(shared: &Shared, seq: u64, segment: &MemfdSegment) -> Result<()> {
    let frame = encode_frame(seq);
    while !try_send(shared, &frame, segment)? {
        if shared.is_gone() {
            return Err(shared.gone_error());
        }
        let mut fds = [rustix::event::PollFd::new(
            &shared.control,
            rustix::event::PollFlags::OUT,
        )];
        let timeout = rustix::event::Timespec::try_from(Duration::from_millis(100)).ok();
        let _ = rustix::event::poll(&mut fds, timeout.as_ref());
    }
    Ok(())
}

/// [`send_large`] for async code: when the socket is full, the task awaits its writability
/// through tokio's reactor (no thread blocks) or the link going, whichever comes first.
///
/// Only a full socket costs anything: a dup of it is registered with the reactor for this one
/// wait (a dup, so the registration is ours alone, whatever else watches the socket). Cancel
/// safe: a future dropped while it waits has sent nothing.
#[cfg(feature = "tokio")]
pub(crate) async fn send_large_async(
    shared: &Shared,
    seq: u64,
    segment: &MemfdSegment,
) -> Result<()> {
    let frame = encode_frame(seq);
    if try_send(shared, &frame, segment)? {
        return Ok(());
    }
    let io = |op| move |source| Error::Io { op, source };
    let dup = shared
        .control
        .try_clone()
        .map_err(io("dup the control socket"))?;
    let socket = tokio::net::UnixStream::from_std(dup)
        .map_err(io("register the control socket with tokio"))?;
    // Made before the check: `notify_waiters` wakes every `Notified` made before it.
    let mut gone = std::pin::pin!(shared.gone_waiters.notified());
    if shared.is_gone() {
        return Err(shared.gone_error());
    }
    let fds = [segment.as_fd()];
    let mut send = std::pin::pin!(memwire_shm::fdpass::send_with_fds_async(
        &socket, &frame, &fds
    ));
    let result = std::future::poll_fn(|cx| {
        if gone.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(None);
        }
        send.as_mut().poll(cx).map(Some)
    })
    .await;
    match result {
        Some(Ok(n)) => sent(shared, n),
        Some(Err(e)) => Err(send_error(shared, e)),
        None => Err(shared.gone_error()),
    }
}

/// Takes the frame of large message `seq` (already waiting: the sender sent it first) and
/// maps its memfd read-only, after checking its seals and size.
pub(crate) fn recv_large(shared: &Shared, seq: u64, len: u64) -> Result<Mapping> {
    let mut frame = [0u8; FRAME];
    let got = match memwire_shm::recv_with_fds(&shared.control, &mut frame, 1) {
        Ok(got) => got,
        Err(e) if would_block(&e) => {
            return Err(shared.violate(format!("large message {seq} arrived without its memfd")));
        }
        Err(e) => return Err(shared.violate(e)),
    };
    // `got.len` is at most `FRAME` (no `MSG_TRUNC`); a longer one would be refused all the same.
    let bytes = frame.get(..got.len).unwrap_or_default();
    if decode_frame(bytes) != Ok(seq) || got.fds.len() != 1 {
        return Err(shared.violate(format!("bad control frame for large message {seq}")));
    }
    let Some(fd) = got.fds.into_iter().next() else {
        return Err(shared.violate("large message without a memfd"));
    };
    let segment = MemfdSegment::from_fd(fd, len).map_err(|e| shared.violate(e))?;
    let len = usize::try_from(len).map_err(|_| Error::TooLarge {
        len,
        max: usize::MAX as u64,
    })?;
    if len == 0 {
        return Err(shared.violate("empty large message"));
    }
    Ok(Mapping::map(segment.as_fd(), 0, len, Access::ReadOnly)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_round_trip_and_bad_ones_are_refused() {
        assert_eq!(decode_frame(&encode_frame(7)), Ok(7));
        assert_eq!(decode_frame(&encode_frame(u64::MAX)), Ok(u64::MAX));
        assert_eq!(decode_frame(&[0; 15]), Err(FrameError::Length(15)));
        assert_eq!(decode_frame(&[0; 17]), Err(FrameError::Length(17)));
        assert_eq!(decode_frame(&[0; 16]), Err(FrameError::Magic(0)));
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(seq) = decode_frame(&bytes) {
                prop_assert_eq!(&encode_frame(seq)[..], &bytes[..]);
            }
        }
    }
}
