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
//! | `layout` | where rings and pools sit in the segment; the header a guest validates |
//! | `control` | large messages' memfds on the control socket |
//! | `wait` | spin, then futex sleep, per [`WaitStrategy`] |
//! | `watch` | the one thread that sees every peer's death at once |
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

/// Items of the link layer: built normally, left out of the loom build (tokio's `cfg_*!`
/// macros do the same).
macro_rules! link_layer {
    ($($item:item)*) => { $( #[cfg(not(memwire_loom))] $item )* };
}

link_layer! {
    mod bootstrap;
    mod config;
    mod control;
    mod descriptor;
    mod error;
    #[doc(hidden)]
    pub mod fuzzing;
    mod layout;
    mod limits;
    mod link;
    #[allow(unsafe_code)]
    mod loan;
    #[allow(unsafe_code)]
    mod message;
    mod pool;
    mod return_entry;
    mod rx;
    mod tx;
    mod wait;
    mod watch;

    pub use bootstrap::{
        Guest, Host, HostConfig, HostState, HostStatus, PeerInfo, PeerStatus, RefuseReason,
        TICKET_ENV, list_hosts,
    };
    pub use config::{
        INLINE_CAPACITY, LinkConfig, MAX_CLASSES, MAX_SLOTS_PER_CLASS, SizeClass, WaitStrategy,
    };
    pub use error::{ConfigError, Error, Result};
    pub use link::{Link, Stats};
    pub use loan::Loan;
    pub use message::Message;
    pub use pool::ClassUsage;
    pub use rx::Rx;
    pub use tx::Tx;
}
