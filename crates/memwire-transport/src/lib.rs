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
//! | `descriptor` | the 64-byte descriptor and the return entry: encode, copy out, validate |
#![deny(unsafe_code)]

// The link layer, which uses the ring, is not written yet; tests and loom models exercise it.
#[cfg_attr(any(not(test), memwire_loom), allow(dead_code, unused_imports))]
mod ring;
mod sync;
