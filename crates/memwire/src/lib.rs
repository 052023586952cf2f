//! memwire: shared-memory IPC between processes on one machine.
//!
//! This facade re-exports the layers under one roof:
//!
//! - [`shm`]: OS primitives: sealed segments, safe mapping views, fd passing, wake-ups,
//!   process liveness and crash-proof named resources.
//! - [`transport`]: zero-copy links between processes: hosts, guests, loans and messages.
//! - [`rpc`]: calls between processes: services, workers, calls by name, streams.
#![forbid(unsafe_code)]

pub use memwire_rpc as rpc;
pub use memwire_shm as shm;
pub use memwire_transport as transport;
