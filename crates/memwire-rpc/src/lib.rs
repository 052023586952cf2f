//! memwire-rpc: calls between processes over memwire's shared-memory links.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`Error`] | one typed error per failure a caller must tell apart |
#![deny(unsafe_code)]

mod error;

pub use error::{Error, ErrorKind, Result};
