//! `unix-socket` and `pipe`: the payload through a byte stream the kernel copies, the way
//! most IPC is done. One protocol for both:
//!
//! - echo: the parent writes `size` bytes; the peer reads them all and writes them back.
//! - sink: the peer writes one [`READY`] byte; the parent writes messages back to back; the
//!   peer reads and counts them, and after end-of-file writes its count (8 bytes, LE).
//! - stop: the parent closes its sending side; end-of-file at a message boundary ends the peer.
//!
//! The peer's end arrives as its standard input (and, for the pipe, standard output): a socket
//! cannot be reopened through `/proc/self/fd`, and taking stdio needs no `unsafe`. Pipes keep
//! the kernel's default capacity (64 KiB), as an ordinary program's would.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use anyhow::{Context as _, Result, ensure};
use memwire::shm::Mapping;

use crate::cli::bench::case::{
    Case, Launcher, Parent, Payload, Peer, Role, Run, Setup, Suite, Wiring,
};
use crate::cli::bench::touch;

/// A byte-stream baseline.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stream {
    /// A `UnixStream` pair (`socketpair(AF_UNIX, SOCK_STREAM)`).
    UnixSocket,
    /// Two pipes, one each way.
    Pipe,
}

impl Case for Stream {
    fn name(&self) -> &'static str {
        match self {
            Self::UnixSocket => "unix-socket",
            Self::Pipe => "pipe",
        }
    }

    fn suite(&self) -> Suite {
        Suite::Baseline
    }

    fn payloads(&self) -> &'static [Payload] {
        &[Payload::Untouched, Payload::Touched]
    }

    fn streams(&self) -> bool {
        true
    }

    fn parent<'m>(
        &self,
        _shm: &'m Mapping,
        run: &Run,
        _launcher: &Launcher<'_>,
    ) -> Result<Setup<'m>> {
        let (tx, rx, wiring): (Tx, Box<dyn Read>, Wiring) = match self {
            Self::UnixSocket => {
                let (ours, theirs) = UnixStream::pair().context("socketpair")?;
                let rx = ours.try_clone().context("dup")?;
                let wiring = Wiring {
                    stdin: Some(OwnedFd::from(theirs)),
                    ..Wiring::default()
                };
                (Tx::Socket(ours), Box::new(rx), wiring)
            }
            Self::Pipe => {
                let (to_peer_rx, to_peer_tx) = io::pipe().context("pipe")?;
                let (from_peer_rx, from_peer_tx) = io::pipe().context("pipe")?;
                let wiring = Wiring {
                    stdin: Some(OwnedFd::from(to_peer_rx)),
                    stdout: Some(OwnedFd::from(from_peer_tx)),
                    ..Wiring::default()
                };
                let tx = Tx::Pipe(File::from(OwnedFd::from(to_peer_tx)));
                (tx, Box::new(from_peer_rx), wiring)
            }
        };
        Ok(Setup {
            endpoint: Box::new(StreamParent {
                tx: Some(tx),
                rx,
                buf: vec![0; run.size],
                touched: run.payload == Payload::Touched,
                sink: run.role == Role::Sink,
                k: 0,
            }),
            peer: Peer::Wired(wiring),
        })
    }

    fn peer(&self, _shm: &Mapping, run: &Run) -> Result<()> {
        let stdin = io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .context("dup stdin")?;
        let (mut rx, mut tx): (Box<dyn Read>, Box<dyn Write>) = match self {
            Self::UnixSocket => {
                let sock = UnixStream::from(stdin);
                let tx = sock.try_clone().context("dup")?;
                (Box::new(sock), Box::new(tx))
            }
            Self::Pipe => {
                let stdout = io::stdout().as_fd().try_clone_to_owned();
                let stdout = stdout.context("dup stdout")?;
                (Box::new(File::from(stdin)), Box::new(File::from(stdout)))
            }
        };
        if run.role == Role::Sink {
            tx.write_all(&[READY]).context("saying ready")?;
        }
        let touched = run.payload == Payload::Touched;
        let mut buf = vec![0; run.size];
        let mut k = 0u64;
        while read_message(&mut rx, &mut buf)? {
            let byte = touch::pattern(k);
            if touched {
                touch::verify(&buf, byte)?;
            }
            if run.role == Role::Echo {
                if touched {
                    touch::fill(&mut buf, !byte);
                }
                tx.write_all(&buf).context("echoing")?;
            }
            k += 1;
        }
        if run.role == Role::Sink {
            tx.write_all(&k.to_le_bytes()).context("acknowledging")?;
        }
        Ok(())
    }
}

/// The byte a sink sends when it starts reading, so the clock does not count its start-up.
const READY: u8 = b'r';

/// The parent's sending side; closing it is the peer's signal to stop.
enum Tx {
    Socket(UnixStream),
    Pipe(File),
}

impl Tx {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Self::Socket(s) => s.write_all(buf),
            Self::Pipe(f) => f.write_all(buf),
        }
    }

    /// Sends end-of-file: `shutdown(SHUT_WR)` (the socket's other clone still reads), or
    /// closes the pipe.
    fn close(self) -> io::Result<()> {
        match self {
            Self::Socket(s) => s.shutdown(Shutdown::Write),
            Self::Pipe(f) => {
                drop(f);
                Ok(())
            }
        }
    }
}

struct StreamParent {
    /// `None` once closed.
    tx: Option<Tx>,
    rx: Box<dyn Read>,
    buf: Vec<u8>,
    touched: bool,
    /// In the sink role: the peer says [`READY`] first.
    sink: bool,
    /// Messages sent so far.
    k: u64,
}

impl StreamParent {
    fn send_one(&mut self) -> Result<()> {
        let tx = self.tx.as_mut().context("the stream is closed")?;
        if self.touched {
            touch::fill(&mut self.buf, touch::pattern(self.k));
        }
        tx.write_all(&self.buf).context("sending")?;
        self.k += 1;
        Ok(())
    }
}

impl Parent for StreamParent {
    fn ready(&mut self) -> Result<()> {
        if !self.sink {
            return Ok(());
        }
        let mut hello = [0];
        self.rx
            .read_exact(&mut hello)
            .context("waiting for the peer")?;
        ensure!(hello == [READY], "the peer said {hello:?}, not ready");
        Ok(())
    }

    fn round_trip(&mut self) -> Result<()> {
        let byte = touch::pattern(self.k);
        self.send_one()?;
        ensure!(
            read_message(&mut self.rx, &mut self.buf)?,
            "the peer closed the stream"
        );
        if self.touched {
            touch::verify(&self.buf, !byte)?;
        }
        Ok(())
    }

    fn send(&mut self) -> Result<()> {
        self.send_one()
    }

    fn finish(&mut self) -> Result<Option<u64>> {
        if let Some(tx) = self.tx.take() {
            tx.close().context("closing the stream")?;
        }
        // In the echo role the peer writes nothing more; in the sink role, its count.
        let mut ack = [0; 8];
        match self.rx.read_exact(&mut ack) {
            Ok(()) => Ok(Some(u64::from_le_bytes(ack))),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e).context("reading the peer's count"),
        }
    }
}

/// Reads one whole message into `buf`; `false` at end-of-file before its first byte.
fn read_message(rx: &mut dyn Read, buf: &mut [u8]) -> Result<bool> {
    let first = loop {
        match rx.read(buf) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("receiving"),
        }
    };
    if first == 0 {
        return Ok(false);
    }
    rx.read_exact(&mut buf[first..])
        .context("receiving the rest of a message")?;
    Ok(true)
}
