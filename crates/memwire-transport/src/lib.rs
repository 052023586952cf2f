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
//! | `limits` | the receiver's view of the sender's pool: what a descriptor may name |
//! | `descriptor` | the 64-byte descriptor: layout, encode, decode and validate |
//! | `return_entry` | the 8-byte entry that gives a slot back to its sender |
//! | `fuzzing` | thin entry points for the fuzz targets in `fuzz/`; not an API |
#![deny(unsafe_code)]

mod config;
mod descriptor;
mod error;
#[doc(hidden)]
pub mod fuzzing;
// Used by the link, which lands next.
#[cfg_attr(not(test), allow(dead_code))]
mod layout;
mod limits;
#[cfg_attr(not(test), allow(dead_code))]
mod pool;
mod return_entry;
// The link layer, which uses the ring, is not written yet; tests and loom models exercise it.
#[cfg_attr(any(not(test), memwire_loom), allow(dead_code, unused_imports))]
mod ring;
mod sync;

pub use config::{
    INLINE_CAPACITY, LinkConfig, MAX_CLASSES, MAX_SLOTS_PER_CLASS, SizeClass, WaitStrategy,
};
pub use error::{ConfigError, Error, Result};
pub use pool::ClassUsage;
