//! The guest side: connect by name, or take the link a spawning host left.

use std::os::unix::net::UnixStream;
use std::sync::Arc;

use memwire_shm::{Access, MemfdSegment, Name, ProcessHandle, ProcessId, Segment};

use super::hello::{FRAME, Hello, Request, WELCOME_FDS};
use super::{TICKET_ENV, inherit, socket_path};
use crate::bell::{Bells, WELCOME_BELLS};
use crate::config::WaitStrategy;
use crate::error::{Error, Result};
use crate::layout::{Layout, read_header};
use crate::link::{Link, LinkParts, Peer, Side};

/// Ways for a guest to get its link.
#[derive(Debug)]
pub struct Guest;

impl Guest {
    /// Connects to the host named `name`.
    pub fn connect(name: &str) -> Result<Link> {
        Self::connect_with(name, WaitStrategy::default())
    }

    /// Connects to the host named `name`, waiting on the link with `wait`.
    pub fn connect_with(name: &str, wait: WaitStrategy) -> Result<Link> {
        let name = Name::new(name)?;
        let path = socket_path(&name)?;
        connect_path(&path, name.as_str(), wait)
    }

    /// Connects to the host whose bootstrap socket is at `path` (its
    /// [`crate::Host::socket_path`]), wherever its runtime directory is: for a client told
    /// the path by a server it already speaks to.
    pub fn connect_at(path: &std::path::Path, wait: WaitStrategy) -> Result<Link> {
        let name = path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        connect_path(path, &name, wait)
    }

    /// Takes the link of a guest spawned by [`crate::Host::spawn`], from `MEMWIRE_TICKET`.
    /// Checks that the host named in the ticket is this process's parent.
    pub fn from_env() -> Result<Link> {
        Self::from_env_with(WaitStrategy::default())
    }

    /// [`Guest::from_env`], waiting on the link with `wait`.
    pub fn from_env_with(wait: WaitStrategy) -> Result<Link> {
        let ticket = std::env::var(TICKET_ENV)
            .map_err(|_| Error::BadTicket(format!("{TICKET_ENV} is not set")))?;
        let (fd, host) = parse_ticket(&ticket)?;
        let parent = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32);
        if parent != host.pid {
            return Err(Error::BadTicket(format!(
                "the ticket names host {}, but our parent is {parent}",
                host.pid
            )));
        }
        let stream = UnixStream::from(inherit::adopt_socket(fd)?);
        handshake(stream, Some(host), wait)
    }
}

fn connect_path(path: &std::path::Path, name: &str, wait: WaitStrategy) -> Result<Link> {
    let stream = UnixStream::connect(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => Error::NoHost {
            name: name.to_owned(),
            path: path.to_owned(),
        },
        _ => Error::Io {
            op: "connect to the host",
            source: e,
        },
    })?;
    handshake(stream, None, wait)
}

/// `memwire1:fd=N:host=PID:start=TICKS`.
fn parse_ticket(ticket: &str) -> Result<(i32, ProcessId)> {
    let bad = || Error::BadTicket(format!("{ticket:?} is not memwire1:fd=N:host=PID:start=T"));
    let mut parts = ticket.split(':');
    if parts.next() != Some("memwire1") {
        return Err(bad());
    }
    let mut field = |key: &str| {
        parts
            .next()
            .and_then(|p| p.strip_prefix(key))
            .and_then(|v| v.strip_prefix('='))
            .ok_or_else(bad)
    };
    let fd = field("fd")?.parse().map_err(|_| bad())?;
    let pid = field("host")?.parse().map_err(|_| bad())?;
    let start_time = field("start")?.parse().map_err(|_| bad())?;
    Ok((fd, ProcessId { pid, start_time }))
}

/// Reads the welcome frame, the segment fd and the doorbells, and checks everything before
/// mapping.
fn handshake(
    stream: UnixStream,
    expected_host: Option<ProcessId>,
    wait: WaitStrategy,
) -> Result<Link> {
    std::io::Write::write_all(&mut &stream, &Request::Join.encode()).map_err(|e| Error::Io {
        op: "ask the host to join",
        source: e,
    })?;
    let mut frame = [0u8; FRAME];
    let got = memwire_shm::recv_with_fds(&stream, &mut frame, WELCOME_FDS)?;
    let mut len = got.len;
    let mut fds = got.fds;
    while len < FRAME && len > 0 {
        let more = memwire_shm::recv_with_fds(&stream, &mut frame[len..], WELCOME_FDS)?;
        if more.len == 0 {
            break;
        }
        len += more.len;
        fds.extend(more.fds);
    }
    if len == 0 {
        return Err(Error::PeerGone {
            pid: expected_host.map_or(0, |h| h.pid),
        });
    }
    let violation = |what: String| Error::ProtocolViolation {
        pid: expected_host.map_or(0, |h| h.pid),
        what,
    };
    let hello = Hello::decode(&frame[..len]).map_err(|e| violation(e.to_string()))?;
    let (host, segment_len, epoch) = match hello {
        Hello::Refuse(reason) => return Err(Error::Refused(reason)),
        Hello::Welcome {
            host,
            segment_len,
            epoch,
            ..
        } => (host, segment_len, epoch),
    };
    if expected_host.is_some_and(|h| h != host) {
        return Err(violation(format!(
            "welcome names host {host}, the ticket another"
        )));
    }
    let [fd, b0, b1, b2, b3] = <[_; WELCOME_FDS]>::try_from(fds).map_err(|fds: Vec<_>| {
        violation(format!(
            "welcome carried {} fds, expected {WELCOME_FDS}",
            fds.len()
        ))
    })?;
    let segment = MemfdSegment::from_fd(fd, segment_len)?;
    let bells: [_; WELCOME_BELLS] = [b0, b1, b2, b3];
    let bells = Bells::from_welcome(bells)?;
    let map = segment.map(Access::ReadWrite)?;
    let header = read_header(&map)?;
    if header.host != host || header.epoch != epoch {
        return Err(violation(
            "segment header disagrees with the welcome".into(),
        ));
    }
    let peer =
        Peer::watched(ProcessHandle::open_id(host).map_err(|_| Error::PeerGone { pid: host.pid })?);
    let layout = Layout::new(&header.config);
    Link::new(LinkParts {
        map: Arc::new(map),
        config: header.config,
        layout,
        side: Side::Guest,
        control: stream,
        peer,
        wait,
        slot: None,
        bells,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_parse_and_garbage_is_refused() {
        let (fd, host) = parse_ticket("memwire1:fd=7:host=42:start=99").unwrap();
        assert_eq!((fd, host.pid, host.start_time), (7, 42, 99));
        for bad in [
            "",
            "memwire1",
            "memwire2:fd=7:host=1:start=2",
            "memwire1:fd=x:host=1:start=2",
            "memwire1:host=1:fd=7:start=2",
        ] {
            assert!(
                matches!(parse_ticket(bad), Err(Error::BadTicket(_))),
                "{bad:?}"
            );
        }
    }
}
