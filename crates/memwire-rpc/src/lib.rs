//! memwire-rpc: calls between processes over memwire's shared-memory links.
//!
//! A server runs a [`Service`] on a link ([`serve_link`]); a [`Client`] calls it, typed
//! (postcard) or by name (MessagePack). Many calls share one link: each has an id, and
//! answers come back in any order.
//!
//! [`macro@service`] writes both sides from one trait: a typed client (`MathClient` below) and
//! a [`Service`] that runs an implementation (`MathServer`).
//!
//! ```
//! use memwire_rpc::{Fault, Service as _, Sink};
//!
//! /// Arithmetic.
//! #[memwire_rpc::service(crate = memwire_rpc)]
//! pub trait Math {
//!     /// Adds two numbers.
//!     async fn add(&self, a: i64, b: i64) -> i64;
//!     /// `n!`, on a blocking thread.
//!     #[rpc(blocking)]
//!     fn factorial(&self, n: u64) -> Result<u64, String>;
//!     /// Streams `0..n`.
//!     async fn count(&self, n: u64, sink: Sink<u64>) -> Result<(), Fault>;
//! }
//!
//! struct Calculator;
//!
//! impl Math for Calculator {
//!     async fn add(&self, a: i64, b: i64) -> i64 {
//!         a + b
//!     }
//!     fn factorial(&self, n: u64) -> Result<u64, String> {
//!         (1..=n).try_fold(1u64, |acc, k| acc.checked_mul(k).ok_or_else(|| "overflow".into()))
//!     }
//!     async fn count(&self, n: u64, sink: Sink<u64>) -> Result<(), Fault> {
//!         for i in 0..n {
//!             sink.send(&i).await?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! // In the worker: `serve_link(link, Arc::new(MathServer::new(Calculator)))`.
//! // In the caller: `MathClient::new(Client::new(link)).add(1, 2).await?` is `3`.
//! let server = MathServer::new(Calculator);
//! let add = &server.functions()[0];
//! assert_eq!((add.name.as_str(), add.returns.as_str()), ("add", "i64"));
//! assert_eq!(add.doc, "Adds two numbers.");
//! assert_eq!(MathClient::METHODS, ["add", "factorial", "count"]);
//! ```
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`Error`] | one typed error per failure a caller must tell apart |
//! | [`frame`] | the frame every link message carries: header, kinds, encodings |
//! | `codec` | postcard and MessagePack payloads; the error record |
//! | `service` | [`Service`], [`Request`], [`Responder`], [`CallContext`], [`Sink`], [`run_blocking`] |
//! | [`macro@service`] | the `#[service]` attribute (from memwire-macros) |
//! | `server` | [`serve_link`]: run a service's calls on a link |
//! | `client` | [`Client`]: calls, timeouts, cancellation, streams |
//! | `serve` | [`serve`]: a worker's `main` serves on the link it was spawned with ([`serve_with`]: waiting its own way); [`serve_as`]: a named service |
//! | `worker` | [`Worker`]: spawn a worker (output forwarded, restarts) or connect to a service |
//! | `ids` | maps keyed by call id, hashed with one multiplication |
//! | `writer` | the link's sending half, shared by every call |
//! | `fuzzing` | thin entry points for the fuzz targets in `fuzz/`; not an API |
//! | [`breaker`] | the circuit breaker: which failures open it, the half-open probe |
//! | [`Metrics`] | per-handle counts, calls in flight, latency percentiles, heartbeat RTT |
//! | [`registry`] | named services on this machine: register, look up, list; stale entries cleaned |
#![deny(unsafe_code)]

pub mod breaker;
mod client;
mod codec;
mod error;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
mod ids;
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
pub use memwire_macros::service;
pub use metrics::{CallTimer, Metrics, MetricsSnapshot};
pub use registry::{Registration, Registry, ServiceEntry};
pub use serve::{serve, serve_as, serve_as_async, serve_async, serve_async_with, serve_with};
pub use server::{LIST_FUNCTIONS, serve_link};
pub use service::{
    BoxFuture, CallContext, Fault, FunctionInfo, Param, Payload, Request, Responder, Service, Sink,
    run_blocking,
};
pub use worker::{OutputLine, OutputStream, RestartPolicy, Worker, WorkerConfig};
