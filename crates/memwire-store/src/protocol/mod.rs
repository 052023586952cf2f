//! The remote protocol: the messages a WebSocket client and the store server exchange, and
//! their codec. `docs/protocol.md` is the reference for other languages; this module is its
//! Rust side, used by the server and by the remote client.
//!
//! ```text
//!  client                                          server
//!  encode_request(&Request, Format) ──ws message──▶ decode_request(Frame, &Limits)
//!  decode_response(Frame, &Limits)  ◀─ws message── encode_response(&Response, Format)
//! ```
//!
//! | module | what it holds |
//! | --- | --- |
//! | `path` | [`VarPath`] (`TENANT/SERVICE/VARIABLE`) and [`Scope`] (what a watch covers) |
//! | `value` | [`Value`]: bytes, as `bin` or `{"text"}`/`{"base64"}`/`{"json"}` |
//! | `request` | [`Request`], one variant per request `type` |
//! | `response` | [`Response`]: `ok` ([`Reply`], [`ListEntry`], [`KeyEntry`]), `error` ([`ErrorCode`]), [`Event`], [`Lagged`], `synced`, `watch_ended` |
//! | `codec` | [`decode_request`], [`encode_response`], [`decode_response`], [`encode_request`], [`Limits`], [`ProtocolError`] |
//!
//! The version is negotiated once: `auth` carries `v` ([`PROTOCOL_VERSION`]) and the server
//! refuses any other with `unsupported_version`.
//!
//! ```
//! use memwire_store::protocol::{self, Format, Limits, Reply, Request, Response, Value};
//!
//! // The server decodes a request and answers in its format.
//! let request = protocol::decode_request(
//!     protocol::Frame::Text(r#"{"type":"set","id":3,"path":"acme/billing/rate","value":{"text":"0.19"}}"#),
//!     &Limits::default(),
//! )?;
//! let Request::Set { id, value, .. } = &request else { unreachable!() };
//! assert_eq!(value, &Value::from("0.19"));
//! let answer = Response::Ok { id: *id, reply: Reply::Set { version: 8, timestamp_ms: 1_764_000_000_000 } };
//! let encoded = protocol::encode_response(&answer, Format::Json);
//! assert_eq!(protocol::decode_response(encoded.as_frame(), &Limits::default())?, answer);
//! # Ok::<(), protocol::ProtocolError>(())
//! ```

mod codec;
mod path;
mod request;
mod response;
mod value;

pub use codec::{
    Encoded, Format, Frame, Limits, MAX_DEPTH, ProtocolError, Reason, decode_request,
    decode_response, encode_request, encode_response,
};
pub use path::{PathError, Scope, VarPath};
pub use request::{Invalid, Request};
pub use response::{
    ErrorCode, Event, EventKind, KeyEntry, Lagged, ListEntry, Reply, Response, TenantInfo,
};
pub use value::Value;

/// The protocol version this crate speaks, sent as `v` in `auth` and its answer.
pub const PROTOCOL_VERSION: u32 = 1;
