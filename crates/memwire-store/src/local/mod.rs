//! The store for the processes of this machine: [`LocalServer`] (the server's Unix socket) and
//! [`Local`] (the client).
//!
//! ```text
//!  Local ──Unix socket (framed postcard, SCM_RIGHTS)──▶ LocalServer ──▶ Store (auth, log, apply)
//!    │  auth · map · wake · unwake · watch_open/poll/close (and anything else until the link
//!    │  is up)
//!    │◀── map: the tenant's sealed memfd (read-only: no writable mmap, no write(2))
//!    ├──memwire-transport link (one per writing client)──▶ link thread ──▶ Store
//!    │  set · delete · set_many · get (keys that may not map) · list · stats · keys · tenants
//!    ├─ get: straight from the mapping (TenantView, sequence locks), no syscall
//!    └─ watch: the mapping's change ring; sleeps on an eventfd the server rings after writes
//!       (a key limited to some services may not map its tenant: the server reads the ring
//!       for it, `watch_open` then `watch_poll` when the eventfd rings)
//! ```
//!
//! | module | what it holds |
//! | --- | --- |
//! | `wire` | the messages ([`Request`], [`Reply`], [`Refusal`]) and their framing |
//! | `audit` | `<data_dir>/audit.log`: one JSON line per authentication, with SO_PEERCRED |
//! | `server` | [`LocalServer`]: one task per connection, requests checked by the [`Store`](crate::Store) |
//! | `link` | the shared-memory request path: the server's transport host and a client's link |
//! | `client` | [`Local`]: reads from the mapping, writes over its link, reconnects by itself |
//! | `admin` | [`Local`]'s admin requests: API keys, tenants created and deleted |
//! | `reader` | [`Reader`]: one tenant's mapped reads for a hot loop; the read `Local::get` shares |
//! | `watch` | [`LocalWatcher`]: the change ring, in order, each change once, `Lagged` when it wrapped |
//!
//! Why a framed socket protocol for the first requests: they carry fds both ways (`map`
//! answers with a memfd, `wake` sends an eventfd) and run once per connection. Why a link for
//! the rest: a socket round trip costs two thread wake-ups here (8–20 µs each), a link whose
//! ends spin a moment costs none while the client is busy (`memwire bench store`,
//! `local-set`: 31.6 µs on the socket, 3.1 µs on the link). The requests and answers are the
//! same messages on both, checked by the same code.

mod admin;
mod audit;
mod client;
mod link;
mod reader;
mod server;
mod watch;
mod wire;

pub use audit::AUDIT_FILE;
pub use client::Local;
pub use reader::Reader;
pub use server::{LocalServer, MAX_WAKES, socket_path};
pub use watch::LocalWatcher;
pub use wire::{
    Answer, Entry, KeyInfo, LOCAL_PROTOCOL_VERSION, Refusal, Reply, Request, Stamped, TenantInfo,
};
