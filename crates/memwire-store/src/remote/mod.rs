//! The store over WebSocket: [`RemoteServer`] serves a [`Store`](crate::Store) to remote
//! clients, [`Remote`] is such a client. Messages are the [`protocol`](crate::protocol)'s
//! (`docs/protocol.md`); TLS is rustls with the ring provider ([`tls`]).
//!
//! ```text
//!  RemoteServer::run ── accept ──▶ one task per connection
//!                                    ├─ TLS + WebSocket handshakes, `auth` (all within auth_timeout)
//!                                    ├─ reads a request, calls the Store in its own task
//!                                    │  (the write lock is the single writer), writes what the
//!                                    │  pumps queued, then the answer, then polls a moment
//!                                    │  (`busy_poll`) for the client's next request
//!                                    └─ one pump task per `watch`: Watcher ─try_send─▶ bounded queue
//!  Remote ── requests by id ──▶ socket ──▶ reader task ─ answers by id ─▶ callers
//!                                                     └ events by watch_id ─▶ RemoteWatch
//! ```
//!
//! `Remote`'s variable requests are in `client`, its admin requests (`create_key`,
//! `list_keys`, `revoke_key`, `create_tenant`, `delete_tenant`, admin keys only) in `admin`,
//! its connection (URL, handshakes, the reader task) in `conn`; busy polling, both ends', in
//! `spin`; the server answers requests in `dispatch`.
//!
//! What a hostile client can do and what the server does:
//! - never authenticate, or never finish a TLS or WebSocket handshake: closed after
//!   [`ServerOptions::auth_timeout`] (a close frame `1008` when the WebSocket is up);
//! - send a message over [`Limits::max_message_bytes`](crate::protocol::Limits): a `too_large`
//!   error, unread; one over twice that is refused by the WebSocket layer itself, which closes
//!   the connection (`1009`) without buffering it;
//! - send anything else that is not a request: a typed `error`, the connection stays usable;
//! - stop reading: its connection's task waits on the socket with the next answer (and its
//!   requests are not read meanwhile); its watches, which never wait, are marked lagged when the queue is full:
//!   the pump drops that watch's backlog and later sends `lagged`, the current values and
//!   `synced`. The store's writer never waits for a client.
//!
//! A watch the server can no longer serve (its tenant was deleted, its key revoked) ends with
//! `watch_ended`, carrying the error; the connection and its other watches go on.
//!
//! Memory per connection: the send queue ([`ServerOptions::send_queue`] messages), one
//! message being read (at most twice `max_message_bytes`), and each watch's feed cursor.

mod admin;
mod client;
mod conn;
mod connection;
mod dispatch;
mod pump;
mod server;
mod spin;
pub mod tls;
mod watch;
mod wire;

pub use client::{Remote, RemoteOptions};
pub use server::{RemoteServer, ServerOptions};
pub use watch::RemoteWatch;
