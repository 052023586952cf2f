//! memwire-store: a multi-tenant store of shared variables (tenant → service → variable).
//!
//! The server is the only writer. Each tenant's data lives in its own sealed memfd segment,
//! which local clients map read-only and read through sequence locks; writes travel to the
//! server, which logs them before it acknowledges them.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`Error`] | what an operation can fail with; [`Code`], what a client is told |
//! | [`protocol`] | the remote protocol's messages and their JSON / MessagePack codec (`docs/protocol.md`) |
#![deny(unsafe_code)]

mod error;
pub mod protocol;

pub use error::{Code, Error, Result};
