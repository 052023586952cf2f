//! The store for the processes of this machine: [`LocalServer`] (the server's Unix socket) and
//! [`Local`] (the client).
//!
//! ```text
//!  Local ──Unix socket (framed postcard, SCM_RIGHTS)──▶ LocalServer ──▶ Store (auth, log, apply)
//!    │  auth · get · set · delete · set_many · list · map · wake · stats · keys
//!    │◀── map: the tenant's sealed memfd (read-only: no writable mmap, no write(2))
//!    ├─ get: straight from the mapping (TenantView, sequence locks), no syscall
//!    └─ watch: the mapping's change ring; sleeps on an eventfd the server rings after writes
//! ```
//!
//! | module | what it holds |
//! | --- | --- |
//! | `wire` | the messages ([`Request`], [`Reply`], [`Refusal`]) and their framing |
//! | `audit` | `<data_dir>/audit.log`: one JSON line per authentication, with SO_PEERCRED |
//! | `server` | [`LocalServer`]: one task per connection, requests checked by the [`Store`](crate::Store) |
//! | `client` | [`Local`]: reads from the mapping, writes through the server, reconnects by itself |
//! | `watch` | [`LocalWatcher`]: the change ring, in order, each change once, `Lagged` when it wrapped |
//!
//! Why a framed protocol and not memwire-rpc: the requests that matter here carry fds both
//! ways (`map` answers with a memfd, `wake` sends an eventfd) and run once per connection;
//! reads never reach the server. A write is one round trip on the socket either way.

mod audit;
mod client;
mod server;
mod watch;
mod wire;

pub use audit::AUDIT_FILE;
pub use client::Local;
pub use server::{LocalServer, MAX_WAKES, socket_path};
pub use watch::LocalWatcher;
pub use wire::{
    Answer, Entry, KeyInfo, LOCAL_PROTOCOL_VERSION, Refusal, Reply, Request, Stamped, TenantInfo,
};
