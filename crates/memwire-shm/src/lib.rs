//! OS primitives for memwire.
//!
//! This crate is the only place in memwire that talks to the kernel about memory, file
//! descriptors and processes. The crates above it (transport, rpc, store, the CLI) need no
//! `unsafe` of their own.
//!
//! | module | what it gives |
//! | --- | --- |
//! | [`clock`] | a cheap clock for timing short operations (the CPU's invariant TSC) |
//! | [`fdpass`] | fds over Unix sockets (`SCM_RIGHTS`), the peer's pid/uid/gid (`SO_PEERCRED`) |
//! | [`name`] | names, namespaces, `/dev/shm` paths, the runtime directory |
//! | [`segment`] | memfd, named (`/dev/shm`) and file-backed segments; seals |
//! | [`Mapping`] | a shared mapping and its safe, bounds-checked view |
//! | [`resource`] | named, shared buffers with TTL that no crash can leak, `ls` and `gc` |
//! | [`process`] | process identity and liveness (start time, pidfd) |
//! | [`futex`] | futex wait and wake on a word in shared memory |
//! | [`doorbell`] | eventfd wake-ups, blocking or with tokio |
//! | [`Error`] | the one error type |
#![deny(unsafe_code)]

pub mod clock;
pub mod doorbell;
mod error;
pub mod fdpass;
pub mod futex;
#[allow(unsafe_code)]
mod mapping;
pub mod name;
pub mod process;
#[cfg(feature = "tokio")]
#[allow(unsafe_code)]
mod reactor;
pub mod resource;
pub mod segment;
mod sys;

#[cfg(feature = "tokio")]
pub use doorbell::AsyncDoorbell;
pub use doorbell::Doorbell;
pub use error::{Error, Result};
pub use fdpass::{PeerCredentials, peer_credentials, recv_with_fds, send_with_fds};
pub use mapping::{Access, Mapping};
pub use name::{Name, Namespace};
pub use process::{ProcessHandle, ProcessId};
pub use resource::{Resource, ResourceOptions};
pub use segment::{FileSegment, MemfdSegment, NamedSegment, Segment};
