//! The lobby: connections to a host's bootstrap socket that have not yet said what they want.
//!
//! Every connection is non-blocking and waits here, all of them polled together with the
//! listener, until its first frame (64 bytes: join or status) is complete. So a client that
//! connects and stays silent, or dribbles its frame a byte at a time, delays nobody: a guest
//! that connects after it is served as soon as its own frame is in. Each connection has its
//! own hello deadline ([`crate::HostConfig::hello_timeout`]); a connection still short of a
//! frame then, one that sends a frame that is neither join nor status, and one that hangs up,
//! is closed. The lobby holds at most [`MAX_WAITING`] connections; a newcomer beyond that
//! evicts the oldest.
//!
//! Memory cost: one fd and 64 bytes of frame per waiting connection.

use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};

use super::hello::{FRAME, Request};
use crate::error::{Error, Result};

/// Most connections waiting for their first frame at once: far more than guests connect at
/// once in practice, few enough that a flood of silent clients costs bounded fds.
pub(crate) const MAX_WAITING: usize = 256;

/// A connection whose first frame is complete.
#[derive(Debug)]
pub(crate) enum Arrival {
    /// A guest asks for a link; the stream is blocking again.
    Join(UnixStream),
    /// `memwire ls` asks for the host's status; the stream is blocking again.
    Status(UnixStream),
}

/// A connection that has not yet sent its whole first frame.
#[derive(Debug)]
struct Caller {
    stream: UnixStream,
    frame: [u8; FRAME],
    /// Bytes of `frame` received: `0 .. FRAME`.
    got: usize,
    /// When it is closed if its frame is still incomplete.
    deadline: Instant,
}

/// What reading a caller gave.
enum Heard {
    /// Nothing more yet: keep waiting.
    More,
    /// Its frame is complete.
    Done(Request),
    /// It hung up, failed, or sent something that is not a request: close it.
    Drop,
}

impl Caller {
    /// Reads what the caller sent so far (the stream is non-blocking).
    fn hear(&mut self) -> Heard {
        loop {
            let Some(rest) = self.frame.get_mut(self.got..) else {
                return Heard::Drop;
            };
            match std::io::Read::read(&mut &self.stream, rest) {
                Ok(0) => return Heard::Drop,
                Ok(n) => {
                    self.got += n;
                    if self.got == FRAME {
                        return match Request::decode(&self.frame) {
                            Ok(request) => Heard::Done(request),
                            Err(e) => {
                                tracing::debug!(error = %e, "not a memwire client: closed");
                                Heard::Drop
                            }
                        };
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Heard::More,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Heard::Drop,
            }
        }
    }
}

/// The connections of one host waiting for their first frame.
#[derive(Debug, Default)]
pub(crate) struct Lobby {
    waiting: Vec<Caller>,
}

impl Lobby {
    /// Waits until a connection's first frame is complete, taking new connections from
    /// `listener` (non-blocking) meanwhile, each with `hello_timeout` to send its frame.
    /// `None` once `until` passed with no arrival; the connections still waiting stay here
    /// for the next call.
    pub(crate) fn next(
        &mut self,
        listener: &UnixListener,
        hello_timeout: Duration,
        until: Option<Instant>,
    ) -> Result<Option<Arrival>> {
        loop {
            let now = Instant::now();
            self.waiting.retain(|c| {
                let keep = c.deadline > now;
                if !keep {
                    tracing::debug!("a client sent no request by its hello deadline: closed");
                }
                keep
            });
            if until.is_some_and(|u| u <= now) {
                return Ok(None);
            }
            // Wake for the first of: our caller's deadline, the next hello deadline.
            let wake = self
                .waiting
                .iter()
                .map(|c| c.deadline)
                .chain(until)
                .min()
                .map(|d| d.saturating_duration_since(now));
            let ts = wake.and_then(|w| Timespec::try_from(w).ok());
            let mut fds = Vec::with_capacity(1 + self.waiting.len());
            fds.push(PollFd::new(listener, PollFlags::IN));
            fds.extend(
                self.waiting
                    .iter()
                    .map(|c| PollFd::new(&c.stream, PollFlags::IN)),
            );
            match rustix::event::poll(&mut fds, ts.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    return Err(Error::Io {
                        op: "wait for a guest",
                        source: e.into(),
                    });
                }
            }
            let newcomers = !fds[0].revents().is_empty();
            let heard: Vec<bool> = fds[1..].iter().map(|f| !f.revents().is_empty()).collect();
            drop(fds);
            // Hear the callers that spoke, up to the first whose frame is complete (the others
            // stay readable, so the next poll returns at once for them).
            let mut arrival = None;
            for (c, spoke) in std::mem::take(&mut self.waiting).into_iter().zip(heard) {
                let mut c = c;
                match if spoke && arrival.is_none() {
                    c.hear()
                } else {
                    Heard::More
                } {
                    Heard::More => self.waiting.push(c),
                    Heard::Drop => {}
                    Heard::Done(request) => arrival = Some((request, c.stream)),
                }
            }
            if newcomers {
                self.admit(listener, hello_timeout)?;
            }
            if let Some((request, stream)) = arrival {
                if stream.set_nonblocking(false).is_err() {
                    continue;
                }
                return Ok(Some(match request {
                    Request::Join => Arrival::Join(stream),
                    Request::Status => Arrival::Status(stream),
                }));
            }
        }
    }

    /// Takes every connection the listener has queued.
    fn admit(&mut self, listener: &UnixListener, hello_timeout: Duration) -> Result<()> {
        loop {
            let stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::Interrupted | std::io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    return Err(Error::Io {
                        op: "accept a guest",
                        source: e,
                    });
                }
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            if self.waiting.len() >= MAX_WAITING {
                // The oldest has had the longest to speak.
                tracing::warn!("{MAX_WAITING} clients silent at once: the oldest is closed");
                self.waiting.remove(0);
            }
            let now = Instant::now();
            self.waiting.push(Caller {
                stream,
                frame: [0; FRAME],
                got: 0,
                deadline: now.checked_add(hello_timeout).unwrap_or(now),
            });
        }
    }
}
