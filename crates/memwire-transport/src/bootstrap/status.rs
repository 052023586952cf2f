//! A host's status, for `memwire ls`: asked for over the bootstrap socket.
//!
//! ```text
//! reply (host → asker), little-endian:
//!  0  magic "MWSTATR1"   8  host pid u32   12  max peers u32   16  peer count u32   20  0 u32
//! 24  per peer, 32 bytes: pid u32, slots out u32, slots total u32, 0 u32,
//!                         messages sent u64, messages received u64
//! ```
//! The asker decodes a copy and checks the count against the bytes it got; a host that does not
//! answer within a short timeout (busy, not in `accept`) is reported without peers.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use memwire_shm::Name;

use super::hello::Request;
use crate::error::{Error, Result};
use crate::wire::{u32_at, u64_at};

const MAGIC: u64 = u64::from_le_bytes(*b"MWSTATR1");
const HEAD: usize = 24;
const PEER: usize = 32;
/// The most peers a reply may list (`max_peers` is at most 1024).
const MAX_PEERS: usize = 1024;

/// One attached guest, as its host reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The guest's pid.
    pub pid: u32,
    /// Slots of the host's sending pool the guest holds (or that are loaned to the host app).
    pub slots_out: u32,
    /// Slots of that pool in all.
    pub slots_total: u32,
    /// Messages the host sent on this link.
    pub messages_sent: u64,
    /// Messages the host received on this link.
    pub messages_received: u64,
}

/// Whether a host answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostState {
    /// It answered with its status.
    Live {
        /// Most guests at once.
        max_peers: u32,
        /// Guests attached now.
        peers: Vec<PeerStatus>,
    },
    /// It is running (its socket accepts) but did not answer in time: it is not in `accept`.
    Busy,
    /// Nobody listens on the socket: a host that died left it.
    Stale,
}

/// A transport host found in the runtime directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostStatus {
    /// Its name.
    pub name: Name,
    /// Its pid (from `SO_PEERCRED`), if it is running.
    pub pid: Option<u32>,
    /// Its bootstrap socket.
    pub socket: PathBuf,
    /// What it said.
    pub state: HostState,
}

/// Encodes a status reply.
pub(crate) fn encode(pid: u32, max_peers: usize, peers: &[PeerStatus]) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEAD + PEER * peers.len());
    b.extend_from_slice(&MAGIC.to_le_bytes());
    b.extend_from_slice(&pid.to_le_bytes());
    b.extend_from_slice(&(max_peers as u32).to_le_bytes());
    b.extend_from_slice(&(peers.len() as u32).to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    for p in peers {
        b.extend_from_slice(&p.pid.to_le_bytes());
        b.extend_from_slice(&p.slots_out.to_le_bytes());
        b.extend_from_slice(&p.slots_total.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&p.messages_sent.to_le_bytes());
        b.extend_from_slice(&p.messages_received.to_le_bytes());
    }
    b
}

/// Decodes a status reply; `None` for anything malformed.
pub(crate) fn decode(b: &[u8]) -> Option<(u32, HostState)> {
    if b.len() < HEAD || u64_at(b, 0) != MAGIC {
        return None;
    }
    let count = u32_at(b, 16) as usize;
    if count > MAX_PEERS || b.len() != HEAD + count * PEER {
        return None;
    }
    let peers = (0..count)
        .map(|i| {
            let o = HEAD + i * PEER;
            PeerStatus {
                pid: u32_at(b, o),
                slots_out: u32_at(b, o + 4),
                slots_total: u32_at(b, o + 8),
                messages_sent: u64_at(b, o + 16),
                messages_received: u64_at(b, o + 24),
            }
        })
        .collect();
    Some((
        u32_at(b, 8),
        HostState::Live {
            max_peers: u32_at(b, 12),
            peers,
        },
    ))
}

/// Asks the host at `socket` for its status.
fn ask(name: Name, socket: &Path) -> HostStatus {
    let status = |pid, state| HostStatus {
        name: name.clone(),
        pid,
        socket: socket.to_owned(),
        state,
    };
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return status(None, HostState::Stale);
    };
    // The listener's credentials, recorded by the kernel when it listened.
    let pid = memwire_shm::peer_credentials(&stream).ok().map(|c| c.pid);
    let timeout = Some(Duration::from_millis(300));
    let asked = stream.set_read_timeout(timeout).is_ok()
        && stream.set_write_timeout(timeout).is_ok()
        && stream.write_all(&Request::Status.encode()).is_ok();
    let mut reply = Vec::new();
    let limited = (&mut stream)
        .take((HEAD + MAX_PEERS * PEER) as u64)
        .read_to_end(&mut reply);
    match (asked, limited, decode(&reply)) {
        (true, Ok(_), Some((_, state))) => status(pid, state),
        _ => status(pid, HostState::Busy),
    }
}

/// Every transport host of this user in the runtime directory, sorted by name.
pub fn list_hosts() -> Result<Vec<HostStatus>> {
    let dir = memwire_shm::name::runtime_dir()?.join("transport");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Io {
                op: "read the transport directory",
                source: e,
            });
        }
    };
    let mut hosts: Vec<HostStatus> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let file = e.file_name();
            let name = Name::new(file.to_str()?.strip_suffix(".sock")?).ok()?;
            Some(ask(name, &e.path()))
        })
        .collect();
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(hosts)
}

/// Removes the sockets of hosts that died (nobody listens on them), unless `dry_run`; returns
/// what it removed. A socket is removed only after a second failed connect, so a host that is
/// just starting is left alone.
pub fn remove_stale_hosts(dry_run: bool) -> Result<Vec<HostStatus>> {
    let mut removed = Vec::new();
    for host in list_hosts()? {
        if host.state != HostState::Stale || UnixStream::connect(&host.socket).is_ok() {
            continue;
        }
        if !dry_run {
            match std::fs::remove_file(&host.socket) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(Error::Io {
                        op: "remove a stale host socket",
                        source: e,
                    });
                }
            }
        }
        removed.push(host);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn replies_round_trip() {
        let peers = vec![PeerStatus {
            pid: 7,
            slots_out: 3,
            slots_total: 10,
            messages_sent: 100,
            messages_received: 99,
        }];
        let (pid, state) = decode(&encode(42, 64, &peers)).unwrap();
        assert_eq!(pid, 42);
        assert_eq!(
            state,
            HostState::Live {
                max_peers: 64,
                peers
            }
        );
        assert_eq!(decode(&encode(1, 1, &[])[..HEAD - 1]), None);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }
    }
}
