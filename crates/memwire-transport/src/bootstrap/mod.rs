//! Bootstrap: how a guest gets its link.
//!
//! - **Walk-in**: a host listens on `<runtime dir>/transport/<name>.sock`. A guest connects
//!   and sends its join frame (connections wait for their first frame side by side, each
//!   until its hello deadline, so a silent client delays nobody: `lobby.rs`); the host
//!   identifies it by `SO_PEERCRED`, opens a pidfd on it (a guest whose pid is not visible to
//!   the host, pid 0 because it runs in another pid namespace, is accepted without one: its
//!   link reports pid 0 and the control socket's hang-up is the only sign of its death, see
//!   `watch.rs`; such a guest must itself be able to see the host's pid, which it opens a
//!   pidfd on), takes a peer entry, creates
//!   the link's sealed memfd segment, and sends a [welcome frame](hello) with the segment's fd
//!   and the link's four doorbells (`SCM_RIGHTS`). The socket stays open as the link's control channel (large messages'
//!   memfds travel on it; its end-of-file is a second sign of death).
//! - **Spawned**: the host makes a socket pair, the child inherits one end and finds its
//!   number, with the host's identity, in `MEMWIRE_TICKET`; then the same welcome follows.
//!   (`SO_PEERCRED` of a socket pair names its creator, so the host uses the `Child`'s pid.)
//!
//! The guest checks everything it is handed: the frame, that the fd is a memfd sealed against
//! shrink and grow and as large as claimed, that the doorbells are eventfds, the segment header, and that the host named in the
//! frame is its peer.

mod guest;
pub(crate) mod hello;
pub(crate) mod host;
#[allow(unsafe_code)]
mod inherit;
mod lobby;
pub(crate) mod status;

pub use guest::Guest;
pub use hello::RefuseReason;
pub use host::{DEFAULT_HELLO_TIMEOUT, DEFAULT_JOIN_TIMEOUT, Host, HostConfig, PeerInfo};
pub use status::{HostState, HostStatus, PeerStatus, list_hosts, remove_stale_hosts};

use std::path::PathBuf;

use memwire_shm::Name;

use crate::error::{Error, Result};

/// Environment variable of a spawned guest's ticket.
pub const TICKET_ENV: &str = "MEMWIRE_TICKET";

/// Where host `name` listens.
pub(crate) fn socket_path(name: &Name) -> Result<PathBuf> {
    let dir = memwire_shm::name::runtime_dir()?.join("transport");
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io {
        op: "create the transport directory",
        source: e,
    })?;
    Ok(dir.join(format!("{name}.sock")))
}
