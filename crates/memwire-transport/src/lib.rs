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
//! | `sync` | the atomics facade (std, or loom under `cfg(memwire_loom)`) |
//! | `ring` | the SPSC ring algorithm and its sleep/wake handshake, generic over memory |
//! | `descriptor` | the 64-byte descriptor and the return entry: encode, copy out, validate |
#![deny(unsafe_code)]

mod config;
mod error;
// Used by the link, which lands next.
#[cfg_attr(not(test), allow(dead_code))]
mod layout;
#[cfg_attr(not(test), allow(dead_code))]
mod pool;
mod sync;

pub use config::{
    INLINE_CAPACITY, LinkConfig, MAX_CLASSES, MAX_SLOTS_PER_CLASS, SizeClass, WaitStrategy,
};
pub use error::{ConfigError, Error, Result};
pub use pool::ClassUsage;
