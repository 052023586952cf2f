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
const FRAME: usize = 16;

fn would_block(e: &memwire_shm::Error) -> bool {
    e.errno() == Some(Errno::AGAIN.raw_os_error())
}

/// Sends the frame for large message `seq`, waiting for room in the socket if needed.
pub(crate) fn send_large(shared: &Shared, seq: u64, segment: &MemfdSegment) -> Result<()> {
    let mut frame = [0u8; FRAME];
    frame[..8].copy_from_slice(&MAGIC.to_le_bytes());
    frame[8..].copy_from_slice(&seq.to_le_bytes());
    loop {
        match memwire_shm::send_with_fds(&shared.control, &frame, &[segment.as_fd()]) {
            Ok(n) if n == FRAME => return Ok(()),
            Ok(_) => return Err(shared.violate("control socket took part of a frame")),
            Err(e) if would_block(&e) => {
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
            Err(e) if shared.is_gone() => {
                drop(e);
                return Err(shared.gone_error());
            }
            Err(e) => return Err(e.into()),
        }
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
    let mut seq_bytes = [0u8; 8];
    seq_bytes.copy_from_slice(&frame[8..]);
    if got.len != FRAME
        || frame[..8] != MAGIC.to_le_bytes()
        || u64::from_le_bytes(seq_bytes) != seq
        || got.fds.len() != 1
    {
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
