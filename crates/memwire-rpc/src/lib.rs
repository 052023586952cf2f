//! memwire-rpc: calls between processes over memwire's shared-memory links.
//!
//! A server runs a [`Service`] on a link ([`serve_link`]); a [`Client`] calls it, typed
//! (postcard) or by name (MessagePack). Many calls share one link: each has an id, and
//! answers come back in any order.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`Error`] | one typed error per failure a caller must tell apart |
//! | [`frame`] | the frame every link message carries: header, kinds, encodings |
//! | `codec` | postcard and MessagePack payloads; the error record |
//! | `service` | [`Service`], [`Request`], [`Responder`], [`CallContext`], [`Sink`] |
//! | `server` | [`serve_link`]: run a service's calls on a link |
//! | `client` | [`Client`]: calls, timeouts, cancellation, streams |
//! | `serve` | [`serve`]: a worker's `main` serves on the link it was spawned with; [`serve_as`]: a named service |
//! | `worker` | [`Worker`]: spawn a worker (output forwarded, restarts) or connect to a service |
//! | `writer` | the link's sending half, shared by every call |
//! | [`breaker`] | the circuit breaker: which failures open it, the half-open probe |
//! | [`Metrics`] | per-handle counts, calls in flight, latency percentiles, heartbeat RTT |
//! | [`registry`] | named services on this machine: register, look up, list; stale entries cleaned |
#![deny(unsafe_code)]

pub mod breaker;
mod client;
mod codec;
mod error;
pub mod frame;
mod metrics;
pub mod registry;
mod serve;
mod server;
mod service;
mod worker;
mod writer;

pub use breaker::{Admission, BreakerConfig, BreakerState, CircuitBreaker};
pub use client::{Client, ClientConfig, ItemStream, STREAM_WINDOW};
pub use error::{Error, ErrorKind, Result};
pub use frame::Encoding;
pub use metrics::{CallTimer, Metrics, MetricsSnapshot};
pub use registry::{Registration, Registry, ServiceEntry};
pub use serve::{serve, serve_as, serve_as_async, serve_async};
pub use server::{LIST_FUNCTIONS, serve_link};
pub use service::{
    BoxFuture, CallContext, Fault, FunctionInfo, Param, Request, Responder, Service, Sink,
};
pub use worker::{OutputLine, OutputStream, RestartPolicy, Worker, WorkerConfig};
