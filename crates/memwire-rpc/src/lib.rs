//! memwire-rpc: calls between processes over memwire's shared-memory links.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`Error`] | one typed error per failure a caller must tell apart |
//! | [`breaker`] | the circuit breaker: which failures open it, the half-open probe |
//! | [`Metrics`] | per-handle counts, calls in flight, latency percentiles, heartbeat RTT |
//! | [`registry`] | named services on this machine: register, look up, list; stale entries cleaned |
#![deny(unsafe_code)]

pub mod breaker;
mod error;
mod metrics;
pub mod registry;

pub use breaker::{Admission, BreakerConfig, BreakerState, CircuitBreaker};
pub use error::{Error, ErrorKind, Result};
pub use metrics::{CallTimer, Metrics, MetricsSnapshot};
pub use registry::{Registration, Registry, ServiceEntry};
