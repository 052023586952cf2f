//! memwire-transport: zero-copy links between processes over shared memory.
//!
//! A **host** creates one sealed memfd segment per link (per peer); a **guest** maps it. Each
//! link carries one SPSC descriptor ring per direction, a return ring per direction for freed
//! slots, and slot pools by size class owned by each direction's sender.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`LinkConfig`] | ring depth, size classes, inline threshold; [`WaitStrategy`] |
//! | `pool` | the sender's private slot pools: alloc, send, return, reclaim |
//! | `bootstrap` | [`Host`] (bind, accept, spawn) and [`Guest`] (connect, from the ticket) |
//! | [`Link`] | a peer's two directions: [`Tx`] (loans, [`Loan`]) and [`Rx`] ([`Message`]) |
//! | `awaiting` | with the `tokio` feature (default): [`Rx::recv_async`], [`Tx::loan_async`], [`Tx::send_async`] |
//! | [`PeerWatch`] | whether the peer is still there, without receiving |
//! | `bell` | the link's eventfd doorbells, one per half of each end, that async waiters sleep on |
//! | `layout` | where rings and pools sit in the segment; the header a guest validates |
//! | `control` | large messages' memfds on the control socket |
//! | `wait` | spin, then futex sleep, per [`WaitStrategy`] |
//! | `watch` | the one thread that sees every peer's death at once (and wakes sync and async waiters) |
//! | `sync` | the atomics facade (std, or loom under `cfg(memwire_loom)`) |
//! | `limits` | the receiver's view of the sender's pool: what a descriptor may name |
//! | `descriptor` | the 64-byte descriptor: layout, encode, decode and validate |
//! | `return_entry` | the 8-byte entry that gives a slot back to its sender |
//! | `fuzzing` | thin entry points for the fuzz targets in `fuzz/`; not an API |
#![deny(unsafe_code)]

// Under `cfg(memwire_loom)` only the ring and the atomics facade are built: the loom models
// check them alone (`.ci/run`, step "loom models").
#[cfg_attr(memwire_loom, allow(dead_code, unused_imports))]
mod ring;
mod sync;

// The link layer is left out of the loom build (`cfg(memwire_loom)`): the loom models check
// the ring alone, and the link's segment-backed ring cannot use loom's atomics.
#[cfg(all(not(memwire_loom), feature = "tokio"))]
mod awaiting;
#[cfg(all(not(memwire_loom), feature = "tokio"))]
pub use awaiting::yield_to_tasks;
#[cfg(not(memwire_loom))]
mod bell;
#[cfg(not(memwire_loom))]
mod bootstrap;
#[cfg(not(memwire_loom))]
mod config;
#[cfg(not(memwire_loom))]
mod control;
#[cfg(not(memwire_loom))]
mod descriptor;
#[cfg(not(memwire_loom))]
mod error;
#[cfg(not(memwire_loom))]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(not(memwire_loom))]
mod layout;
#[cfg(not(memwire_loom))]
mod limits;
#[cfg(not(memwire_loom))]
mod link;
#[cfg(not(memwire_loom))]
#[allow(unsafe_code)]
mod loan;
#[cfg(not(memwire_loom))]
#[allow(unsafe_code)]
mod message;
#[cfg(not(memwire_loom))]
mod peer;
#[cfg(not(memwire_loom))]
mod pool;
#[cfg(not(memwire_loom))]
mod return_entry;
#[cfg(not(memwire_loom))]
mod rx;
#[cfg(not(memwire_loom))]
mod tx;
#[cfg(not(memwire_loom))]
mod wait;
#[cfg(not(memwire_loom))]
mod watch;
#[cfg(not(memwire_loom))]
mod wire;
#[cfg(not(memwire_loom))]
pub use bootstrap::{
    DEFAULT_HELLO_TIMEOUT, DEFAULT_JOIN_TIMEOUT, Guest, Host, HostConfig, HostState, HostStatus,
    PeerInfo, PeerStatus, RefuseReason, TICKET_ENV, list_hosts, remove_stale_hosts,
};
#[cfg(not(memwire_loom))]
pub use config::{
    INLINE_CAPACITY, LinkConfig, MAX_CLASSES, MAX_SLOTS_PER_CLASS, SizeClass, WaitStrategy,
};
#[cfg(not(memwire_loom))]
pub use error::{ConfigError, Error, Result};
#[cfg(not(memwire_loom))]
pub use link::{Link, Stats};
#[cfg(not(memwire_loom))]
pub use loan::Loan;
#[cfg(not(memwire_loom))]
pub use message::Message;
#[cfg(not(memwire_loom))]
pub use peer::PeerWatch;
#[cfg(not(memwire_loom))]
pub use pool::ClassUsage;
#[cfg(not(memwire_loom))]
pub use rx::Rx;
#[cfg(not(memwire_loom))]
pub use tx::Tx;
