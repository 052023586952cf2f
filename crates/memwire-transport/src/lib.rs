//! memwire-transport: zero-copy links between processes over shared memory.
//!
//! A **host** creates one sealed memfd segment per link (per peer); a **guest** maps it. Each
//! link carries one SPSC descriptor ring per direction, a return ring per direction for freed
//! slots, and slot pools by size class owned by each direction's sender.
//!
//! | module | what it holds |
//! | --- | --- |
//! | `sync` | the atomics facade (std, or loom under `cfg(memwire_loom)`) |
//! | `ring` | the SPSC ring algorithm and its sleep/wake handshake, generic over memory |
//! | `limits` | the receiver's view of the sender's pool: what a descriptor may name |
//! | `descriptor` | the 64-byte descriptor: layout, encode, decode and validate |
//! | `return_entry` | the 8-byte entry that gives a slot back to its sender |
//! | `fuzzing` | thin entry points for the fuzz targets in `fuzz/`; not an API |
#![deny(unsafe_code)]

mod descriptor;
#[doc(hidden)]
pub mod fuzzing;
mod limits;
mod return_entry;
mod sync;
