//! memwire: shared-memory IPC between processes on one machine.
//!
//! This facade re-exports the layers under one roof:
//!
//! - [`shm`]: OS primitives: sealed segments, safe mapping views, fd passing, wake-ups,
//!   process liveness and crash-proof named resources.
//! - [`transport`]: zero-copy links between processes: hosts, guests, loans and messages.
//! - [`rpc`]: calls between processes over those links: typed services and calls by name;
//!   [`service`] turns a trait into a typed client and a dispatcher.
//! - [`store`]: a multi-tenant store of shared variables: one server, local clients that read
//!   from read-only mapped memory, remote clients over WebSocket, watchers.
//!
//! ```
//! /// Greetings across processes.
//! #[memwire::service] // the generated code names `::memwire::rpc`
//! pub trait Greeter {
//!     /// Greets `name`.
//!     async fn hello(&self, name: String) -> String;
//! }
//!
//! struct English;
//!
//! impl Greeter for English {
//!     async fn hello(&self, name: String) -> String {
//!         format!("hello, {name}")
//!     }
//! }
//!
//! use memwire::rpc::Service as _;
//! let hello = &GreeterServer::new(English).functions()[0];
//! assert_eq!((hello.name.as_str(), hello.params[0].ty.as_str()), ("hello", "String"));
//! ```
//! - [`store`]: the multi-tenant store of shared variables: server, local and remote clients.
#![forbid(unsafe_code)]

pub use memwire_rpc as rpc;
pub use memwire_rpc::service;
pub use memwire_shm as shm;
pub use memwire_store as store;
pub use memwire_transport as transport;
