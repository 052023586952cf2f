//! OS primitives for memwire.
//!
//! This crate is the only place in memwire that talks to the kernel about memory, file
//! descriptors and processes. The crates above it (transport, rpc, store, the CLI) need no
//! `unsafe` of their own.
//!
//! | module | what it gives |
//! | --- | --- |
//! | [`name`] | names, namespaces, `/dev/shm` paths, the runtime directory |
//! | [`process`] | process identity and liveness (start time, pidfd) |
//! | [`futex`] | futex wait and wake on a word in shared memory |
//! | [`doorbell`] | eventfd wake-ups, blocking or with tokio |
//! | [`Error`] | the one error type |
#![deny(unsafe_code)]

pub mod doorbell;
mod error;
pub mod futex;
pub mod name;
pub mod process;
#[cfg(feature = "tokio")]
#[allow(unsafe_code)]
mod reactor;
mod sys;

#[cfg(feature = "tokio")]
pub use doorbell::AsyncDoorbell;
pub use doorbell::Doorbell;
pub use error::{Error, Result};
pub use name::{Name, Namespace};
pub use process::{ProcessHandle, ProcessId};
