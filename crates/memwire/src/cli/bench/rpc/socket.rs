//! `unix-socket` (suite `baseline`): the same `add` call, with the same encoding as a typed
//! call (postcard), over a Unix socket between two processes, the way RPC is usually done.
//!
//! Frames are length-prefixed: a `u32` (LE) byte count, then the body. A request's body is
//! postcard of `(call id, method name, (a, b))`, an answer's of `(call id, a + b)`: the call
//! id and method travel as in an RPC frame, so both sides do the work a call does. The caller
//! writes each request with one `write` and reads through a `BufReader` (one `read` per
//! answer when it has arrived whole); the peer is a blocking server loop doing the same, so
//! the socket is measured at its best.
//!
//! The peer's end is its standard input (taking stdio needs no `unsafe`). Stop: the parent
//! shuts its sending side; end-of-file at a frame boundary ends the peer with success, and
//! ends it as well if the parent dies.

use std::io::{self, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, Result, bail, ensure};

use super::peer::Serve;
use crate::cli::bench::baseline::PEER_TIMEOUT;
use crate::cli::bench::measure::reap;

/// The largest frame either side accepts: an `add` request is under 40 bytes.
const MAX_FRAME: usize = 1024;

/// The method the peer serves.
const ADD: &str = "add";

/// The parent's side: a blocking caller on its end of the socket.
pub(crate) struct SocketCaller {
    tx: UnixStream,
    rx: BufReader<UnixStream>,
    child: Child,
    next_id: u64,
    buf: Vec<u8>,
}

impl SocketCaller {
    /// Spawns the peer (`memwire __bench-rpc-peer --serve socket`) on one end of a socket pair,
    /// pinned to `cpu`.
    pub(crate) fn spawn(cpu: Option<usize>) -> Result<Self> {
        let (ours, theirs) = UnixStream::pair().context("socketpair")?;
        let exe = std::env::current_exe().context("finding the memwire binary")?;
        let mut cmd = Command::new(exe);
        cmd.args(["__bench-rpc-peer", "--serve", Serve::Socket.as_str()])
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null());
        if let Some(cpu) = cpu {
            cmd.args(["--cpu", &cpu.to_string()]);
        }
        let child = cmd.spawn().context("spawning the socket peer")?;
        // `cmd` holds the peer's end: dropping it closes ours, so end-of-file can reach it.
        drop(cmd);
        // A stuck peer fails the run instead of hanging it, as in the transport bench.
        ours.set_read_timeout(Some(PEER_TIMEOUT))
            .context("setting the socket's timeout")?;
        let rx = BufReader::new(ours.try_clone().context("dup")?);
        Ok(Self {
            tx: ours,
            rx,
            child,
            next_id: 1,
            buf: Vec::with_capacity(MAX_FRAME),
        })
    }

    /// One call of `add(a, b)`: writes the request, reads the answer, checks its id.
    pub(crate) fn add(&mut self, a: i64, b: i64) -> Result<i64> {
        let id = self.next_id;
        self.next_id += 1;
        self.buf.clear();
        self.buf.extend_from_slice(&[0; 4]);
        let body = postcard::to_extend(&(id, ADD, (a, b)), std::mem::take(&mut self.buf))
            .context("encoding the request")?;
        self.buf = body;
        let len = u32::try_from(self.buf.len() - 4).context("a huge request")?;
        self.buf[..4].copy_from_slice(&len.to_le_bytes());
        self.tx
            .write_all(&self.buf)
            .context("sending the request")?;
        let Some(answer) = read_frame(&mut self.rx, &mut self.buf)? else {
            bail!("the socket peer closed the socket");
        };
        let (got, sum): (u64, i64) = postcard::from_bytes(answer).context("decoding the answer")?;
        ensure!(got == id, "answer {got} came back for call {id}");
        Ok(sum)
    }

    /// Tells the peer to stop (end-of-file) and waits for it to exit with success.
    pub(crate) fn finish(mut self) -> Result<()> {
        self.tx
            .shutdown(Shutdown::Write)
            .context("shutting the socket")?;
        let status = reap(&mut self.child)?;
        ensure!(status.success(), "the socket peer failed: {status}");
        Ok(())
    }
}

/// Reads one frame into `buf` and gives its body; `None` at end-of-file before a frame.
fn read_frame<'b>(rx: &mut impl Read, buf: &'b mut Vec<u8>) -> Result<Option<&'b [u8]>> {
    let mut len = [0; 4];
    match rx.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e).context("reading a frame's length"),
    }
    let len = u32::from_le_bytes(len) as usize;
    ensure!(len <= MAX_FRAME, "a {len}-byte frame");
    buf.resize(len, 0);
    rx.read_exact(buf).context("reading a frame")?;
    Ok(Some(buf))
}

/// The peer: a blocking server loop on the socket that is its standard input.
pub(crate) fn serve_stdin() -> Result<()> {
    let stdin = io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .context("dup stdin")?;
    let socket = UnixStream::from(stdin);
    let mut tx = socket.try_clone().context("dup")?;
    let mut rx = BufReader::new(socket);
    let mut frame = Vec::with_capacity(MAX_FRAME);
    let mut out = Vec::with_capacity(MAX_FRAME);
    while let Some(request) = read_frame(&mut rx, &mut frame)? {
        let (id, method, (a, b)): (u64, &str, (i64, i64)) =
            postcard::from_bytes(request).context("decoding a request")?;
        ensure!(method == ADD, "no method {method:?}");
        out.clear();
        out.extend_from_slice(&[0; 4]);
        out = postcard::to_extend(&(id, a.wrapping_add(b)), out).context("encoding")?;
        let len = u32::try_from(out.len() - 4).context("a huge answer")?;
        out[..4].copy_from_slice(&len.to_le_bytes());
        tx.write_all(&out).context("answering")?;
    }
    Ok(())
}
