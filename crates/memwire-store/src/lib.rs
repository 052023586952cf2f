//! memwire-store: a multi-tenant store of shared variables (tenant → service → variable).
//!
//! The server is the only writer. Each tenant's data lives in its own sealed memfd segment,
//! which local clients map read-only and read through sequence locks; writes travel to the
//! server, which logs them before it acknowledges them.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`Error`] | what an operation can fail with; [`Code`], what a client is told |
//! | [`auth`] | API keys ([`KeyStore`]), roles and [`authorize`]; the admin key file; [`validate_name`] |
//! | [`Log`] | the durable log and its snapshots: [`Log::append`] before acknowledging, [`Recovery`] on start-up |
//! | [`segment`] | a tenant's sealed memfd segment: [`TenantWriter`] (server), [`TenantView`] (local reads, change ring) |
//! | [`store`] | the store's core in process: [`Store`] (requests, permissions, write path, recovery), [`Watcher`] |
//! | [`default_data_dir`] | where a server keeps its data when nobody says |
//! | [`remote`] | the store over WebSocket (+ TLS): [`RemoteServer`], the [`Remote`] client and its [`RemoteWatch`] |
//! | [`local`] | the local endpoint: [`LocalServer`] (Unix socket, fds by SCM_RIGHTS, audit log) and [`Local`] (mapped reads, writes through the server, watchers) |
//! | [`Typed`] | typed values for both clients, as JSON: `get_as`, `set_as`, `compare_and_set_as` |
//! | [`protocol`] | the remote protocol's messages and their JSON / MessagePack codec (`docs/protocol.md`) |
#![deny(unsafe_code)]

pub mod auth;
mod error;
pub mod local;
mod log;
mod places;
pub mod protocol;
pub mod remote;
pub mod segment;
pub mod store;
mod typed;

pub use auth::{
    Action, KeyRecord, KeyStore, Role, ServicePattern, authorize, ensure_admin_key, may_map_tenant,
    read_admin_key, validate_name,
};
pub use error::{Code, Error, Result};
pub use local::{Local, LocalServer, LocalWatcher, Reader};
pub use log::{BadSnapshot, FsyncPolicy, Log, LogOptions, PendingSnapshot, Recovery, TornTail};
pub use places::{DATA_DIR_ENV, default_data_dir};
pub use remote::{Remote, RemoteOptions, RemoteServer, RemoteWatch, ServerOptions};
pub use segment::{TenantView, TenantWriter};
pub use store::{Quota, Session, Store, StoreConfig, WatchEvent, Watcher};
pub use typed::Typed;
