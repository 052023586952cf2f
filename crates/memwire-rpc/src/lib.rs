//! memwire-rpc: calls between processes over memwire's shared-memory links.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`Error`] | one typed error per failure a caller must tell apart |
//! | [`breaker`] | the circuit breaker: which failures open it, the half-open probe |
#![deny(unsafe_code)]

pub mod breaker;
mod error;

pub use breaker::{Admission, BreakerConfig, BreakerState, CircuitBreaker};
pub use error::{Error, ErrorKind, Result};
