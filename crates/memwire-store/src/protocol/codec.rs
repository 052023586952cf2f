//! Bytes ↔ messages. A WebSocket text message is JSON, a binary message is MessagePack (maps
//! with named fields); one WebSocket message holds exactly one protocol message.
//!
//! What a hostile client can send and what the decoder does with it:
//! - more than [`Limits::max_message_bytes`]: refused by its length alone, never parsed;
//! - bytes that are not one JSON text / one MessagePack value (syntax, truncation, trailing
//!   bytes, nesting deeper than [`MAX_DEPTH`]): `bad_message`, `id` null;
//! - a value that is not a valid request (unknown `type` or field, missing field, wrong type,
//!   bad name, bad value encoding, value over [`Limits::max_value_bytes`]): `bad_request`, with
//!   the `id` when the message has a readable one (a second, lenient parse looks for it);
//! - `auth` with another protocol version: `unsupported_version`.
//!
//! Memory: JSON is parsed from the borrowed text; MessagePack `bin`/`str` lengths are checked
//! against the bytes present before anything is allocated for them, so a 5-byte message cannot
//! ask for 4 GiB.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::request::{Invalid, Request};
use super::response::{ErrorCode, Response};

/// The deepest nesting a MessagePack message may have (a request's own structure is 3 deep;
/// the rest is room for `{"json": ...}` values). serde_json's own limit is 128.
pub const MAX_DEPTH: usize = 64;

/// One WebSocket message as received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A text message: JSON.
    Text(&'a str),
    /// A binary message: MessagePack.
    Binary(&'a [u8]),
}

impl Frame<'_> {
    /// The encoding of the frame's message.
    #[must_use]
    pub fn format(&self) -> Format {
        match self {
            Self::Text(_) => Format::Json,
            Self::Binary(_) => Format::MessagePack,
        }
    }

    /// The message's length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::Text(text) => text.len(),
            Self::Binary(bytes) => bytes.len(),
        }
    }

    /// Whether the message is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A message encoding. A server answers in the encoding of the request; pushed messages go in
/// the encoding of the `watch` request that asked for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// JSON, in WebSocket text messages.
    Json,
    /// MessagePack with named fields, in WebSocket binary messages.
    MessagePack,
}

/// An encoded message, ready to become a WebSocket message of the matching kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encoded {
    /// JSON: send as a text message.
    Text(String),
    /// MessagePack: send as a binary message.
    Binary(Vec<u8>),
}

impl Encoded {
    /// The message as a received [`Frame`] would show it.
    #[must_use]
    pub fn as_frame(&self) -> Frame<'_> {
        match self {
            Self::Text(text) => Frame::Text(text),
            Self::Binary(bytes) => Frame::Binary(bytes),
        }
    }

    /// The bytes, whatever the encoding.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Self::Text(text) => text.into_bytes(),
            Self::Binary(bytes) => bytes,
        }
    }
}

/// What a decoder accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest message, in bytes, checked before parsing. Default 2 MiB: a 1 MiB value in
    /// base64 is 1.34 MiB.
    pub max_message_bytes: usize,
    /// The largest value, in bytes (after decoding base64). Default 1 MiB, the store's default.
    pub max_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 2 << 20,
            max_value_bytes: 1 << 20,
        }
    }
}

/// Why a message was refused. [`ProtocolError::to_response`] is the `error` a server sends
/// back; the connection stays usable.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct ProtocolError {
    id: Option<u64>,
    #[source]
    reason: Reason,
}

/// What was wrong with a refused message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Reason {
    /// Over [`Limits::max_message_bytes`]; not parsed.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The message's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not JSON, or JSON that is not a valid message.
    #[error("invalid JSON message: {0}")]
    Json(#[source] serde_json::Error),
    /// Not MessagePack, or MessagePack that is not a valid message.
    #[error("invalid MessagePack message: {0}")]
    MessagePack(#[source] rmp_serde::decode::Error),
    /// Bytes after the one MessagePack value.
    #[error("invalid MessagePack message: {0} bytes after the value")]
    TrailingBytes(usize),
    /// A well-formed request that breaks a rule.
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

impl ProtocolError {
    fn new(id: Option<u64>, reason: impl Into<Reason>) -> Self {
        Self {
            id,
            reason: reason.into(),
        }
    }

    /// The id of the refused request, when the message had a readable one.
    #[must_use]
    pub fn id(&self) -> Option<u64> {
        self.id
    }

    /// What was wrong.
    #[must_use]
    pub fn reason(&self) -> &Reason {
        &self.reason
    }

    /// The error code a client is told.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        use rmp_serde::decode::Error as Mp;
        match &self.reason {
            Reason::TooLarge { .. } => ErrorCode::TooLarge,
            Reason::Json(e) if e.is_data() => ErrorCode::BadRequest,
            Reason::Json(_) | Reason::TrailingBytes(_) => ErrorCode::BadMessage,
            // Truncation (the reads run out of bytes) and nesting; rmp-serde reports serde's
            // own errors (unknown field, missing field, a bad name) as `Syntax`, which is data.
            Reason::MessagePack(
                Mp::InvalidMarkerRead(_) | Mp::InvalidDataRead(_) | Mp::DepthLimitExceeded,
            ) => ErrorCode::BadMessage,
            Reason::MessagePack(_) => ErrorCode::BadRequest,
            Reason::Invalid(Invalid::UnsupportedVersion { .. }) => ErrorCode::UnsupportedVersion,
            Reason::Invalid(_) => ErrorCode::BadRequest,
        }
    }

    /// The `error` message that answers the refused message.
    #[must_use]
    pub fn to_response(&self) -> Response {
        Response::Error {
            id: self.id,
            code: self.code(),
            message: self.to_string(),
        }
    }
}

/// Decodes one message from a client.
///
/// ```
/// use memwire_store::protocol::{Frame, Limits, Request, decode_request};
///
/// let text = r#"{"type": "get", "id": 7, "path": "acme/billing/rate"}"#;
/// let request = decode_request(Frame::Text(text), &Limits::default())?;
/// assert!(matches!(request, Request::Get { id: 7, .. }));
///
/// let refused = decode_request(Frame::Text(r#"{"type": "get", "id": 8}"#), &Limits::default())
///     .unwrap_err();
/// assert_eq!(refused.id(), Some(8));
/// # Ok::<(), memwire_store::protocol::ProtocolError>(())
/// ```
pub fn decode_request(frame: Frame<'_>, limits: &Limits) -> Result<Request, ProtocolError> {
    let request: Request = decode(frame, limits)?;
    request
        .check(limits.max_value_bytes)
        .map_err(|e| ProtocolError::new(Some(request.id()), e))?;
    Ok(request)
}

/// Decodes one message from a server (the client's side). Unknown fields are ignored.
pub fn decode_response(frame: Frame<'_>, limits: &Limits) -> Result<Response, ProtocolError> {
    decode(frame, limits)
}

/// Encodes a message from a server.
#[must_use]
pub fn encode_response(response: &Response, format: Format) -> Encoded {
    encode(response, format)
}

/// Encodes a message from a client.
#[must_use]
pub fn encode_request(request: &Request, format: Format) -> Encoded {
    encode(request, format)
}

fn encode<T: serde::Serialize>(message: &T, format: Format) -> Encoded {
    // Neither encoder can fail on these types: every map key is a string, no float is
    // encoded (a `json` value is stored as bytes), and both write to memory.
    match format {
        Format::Json => {
            Encoded::Text(serde_json::to_string(message).expect("protocol messages encode"))
        }
        Format::MessagePack => {
            Encoded::Binary(rmp_serde::to_vec_named(message).expect("protocol messages encode"))
        }
    }
}

fn decode<T: DeserializeOwned>(frame: Frame<'_>, limits: &Limits) -> Result<T, ProtocolError> {
    if frame.len() > limits.max_message_bytes {
        return Err(ProtocolError::new(
            None,
            Reason::TooLarge {
                len: frame.len(),
                max: limits.max_message_bytes,
            },
        ));
    }
    let reason = match frame {
        Frame::Text(text) => match serde_json::from_str(text) {
            Ok(message) => return Ok(message),
            Err(e) => Reason::Json(e),
        },
        Frame::Binary(bytes) => match from_messagepack(bytes) {
            Ok(message) => return Ok(message),
            Err(reason) => reason,
        },
    };
    Err(ProtocolError::new(probe_id(frame), reason))
}

/// Decodes exactly one MessagePack value from `bytes`.
fn from_messagepack<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Reason> {
    let mut rest = bytes;
    let mut de = rmp_serde::Deserializer::new(&mut rest);
    de.set_max_depth(MAX_DEPTH);
    let message = T::deserialize(&mut de).map_err(Reason::MessagePack)?;
    drop(de);
    if rest.is_empty() {
        Ok(message)
    } else {
        Err(Reason::TrailingBytes(rest.len()))
    }
}

/// The `id` of a message that did not decode, if it is a map with an unsigned integer `id`.
fn probe_id(frame: Frame<'_>) -> Option<u64> {
    #[derive(Deserialize)]
    struct Probe {
        id: Option<u64>,
    }
    let probe: Probe = match frame {
        Frame::Text(text) => serde_json::from_str(text).ok()?,
        Frame::Binary(bytes) => from_messagepack(bytes).ok()?,
    };
    probe.id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Event, EventKind, Reply, Value};

    fn text(json: &str) -> Result<Request, ProtocolError> {
        decode_request(Frame::Text(json), &Limits::default())
    }

    fn refusal(json: &str) -> (Option<u64>, ErrorCode, String) {
        match text(json) {
            Ok(request) => panic!("{json} was accepted as {request:?}"),
            Err(e) => (e.id(), e.code(), e.to_string()),
        }
    }

    #[test]
    fn unknown_fields_and_types_are_bad_requests_with_their_id() {
        let (id, code, message) =
            refusal(r#"{"type":"get","id":4,"path":"a/b/c","expected_verison":1}"#);
        assert_eq!((id, code), (Some(4), ErrorCode::BadRequest));
        assert!(
            message.contains("unknown field `expected_verison`"),
            "{message}"
        );

        let (id, code, message) = refusal(r#"{"type":"fetch","id":5}"#);
        assert_eq!((id, code), (Some(5), ErrorCode::BadRequest));
        assert!(message.contains("unknown variant `fetch`"), "{message}");

        let (id, code, _) = refusal(r#"{"type":"get","id":6,"path":"a/b"}"#);
        assert_eq!((id, code), (Some(6), ErrorCode::BadRequest));
        let (id, code, _) = refusal(r#"{"type":"get","id":"6","path":"a/b/c"}"#);
        assert_eq!((id, code), (None, ErrorCode::BadRequest));
    }

    #[test]
    fn syntax_errors_are_bad_messages_without_id() {
        for bad in [
            r#"{"type":"ping","id":1"#,
            "",
            "pi",
            r#"{"type":"ping","id":1} x"#,
        ] {
            let (id, code, _) = refusal(bad);
            assert_eq!((id, code), (None, ErrorCode::BadMessage), "{bad}");
        }
        let e = decode_request(Frame::Binary(&[0xc4, 200, 1]), &Limits::default()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::BadMessage);
        let mut trailing =
            encode_request(&Request::Ping { id: 9 }, Format::MessagePack).into_bytes();
        trailing.push(0);
        let e = decode_request(Frame::Binary(&trailing), &Limits::default()).unwrap_err();
        assert_eq!((e.id(), e.code()), (None, ErrorCode::BadMessage));
    }

    #[test]
    fn null_is_an_absent_optional_field() -> anyhow::Result<()> {
        let set = text(
            r#"{"type":"set","id":1,"path":"a/b/c","value":{"text":"x"},"expected_version":null}"#,
        )?;
        assert!(matches!(
            set,
            Request::Set {
                expected_version: None,
                ..
            }
        ));
        let list = text(r#"{"type":"list","id":2,"tenant":null,"service":null}"#)?;
        assert!(matches!(
            list,
            Request::List {
                tenant: None,
                service: None,
                ..
            }
        ));
        Ok(())
    }

    #[test]
    fn messagepack_refusals_keep_the_id() {
        // {"type": "get", "id": 7} without its path.
        let bytes = [
            0x82, 0xa4, b't', b'y', b'p', b'e', 0xa3, b'g', b'e', b't', 0xa2, b'i', b'd', 7,
        ];
        let e = decode_request(Frame::Binary(&bytes), &Limits::default()).unwrap_err();
        assert_eq!((e.id(), e.code()), (Some(7), ErrorCode::BadRequest));
    }

    #[test]
    fn too_large_is_refused_unread() {
        let limits = Limits {
            max_message_bytes: 8,
            ..Limits::default()
        };
        let e = decode_request(Frame::Text(r#"{"type":"ping","id":1}"#), &limits).unwrap_err();
        assert_eq!((e.id(), e.code()), (None, ErrorCode::TooLarge));
    }

    #[test]
    fn checks_after_decoding() {
        let (id, code, _) = refusal(r#"{"type":"auth","id":1,"v":2,"key":"k"}"#);
        assert_eq!((id, code), (Some(1), ErrorCode::UnsupportedVersion));
        let (_, code, _) =
            refusal(r#"{"type":"set_many","id":2,"tenant":"t","service":"s","values":{}}"#);
        assert_eq!(code, ErrorCode::BadRequest);
        let (_, code, m) = refusal(
            r#"{"type":"set_many","id":2,"tenant":"t","service":"s","values":{"a":{"text":"1"},"a":{"text":"2"}}}"#,
        );
        assert_eq!(code, ErrorCode::BadRequest);
        assert!(m.contains("appears twice"), "{m}");
        let (_, code, _) = refusal(r#"{"type":"list","id":3,"service":"s"}"#);
        assert_eq!(code, ErrorCode::BadRequest);
        let limits = Limits {
            max_value_bytes: 2,
            ..Limits::default()
        };
        let e = decode_request(
            Frame::Text(r#"{"type":"set","id":4,"path":"t/s/v","value":{"text":"abc"}}"#),
            &limits,
        )
        .unwrap_err();
        assert_eq!((e.id(), e.code()), (Some(4), ErrorCode::BadRequest));
    }

    #[test]
    fn messagepack_values_are_bin_in_every_message() -> anyhow::Result<()> {
        let request = Request::Set {
            id: 1,
            path: "t/s/v".parse()?,
            value: Value(vec![0xff]),
            expected_version: None,
        };
        let event = Response::Event(Event {
            watch_id: 2,
            path: "t/s/v".parse()?,
            kind: EventKind::Set,
            value: Some(Value(vec![0xff])),
            version: 3,
            timestamp_ms: 4,
        });
        let ok = Response::Ok {
            id: 1,
            reply: Reply::Get {
                value: Value(vec![0xff]),
                version: 1,
                timestamp_ms: 2,
            },
        };
        let bin = [0xc4, 1, 0xff];
        let has_bin = |b: &[u8]| b.windows(3).any(|w| w == bin);
        assert!(has_bin(
            &encode_request(&request, Format::MessagePack).into_bytes()
        ));
        assert!(has_bin(
            &encode_response(&event, Format::MessagePack).into_bytes()
        ));
        assert!(has_bin(
            &encode_response(&ok, Format::MessagePack).into_bytes()
        ));
        for format in [Format::Json, Format::MessagePack] {
            let again =
                decode_response(encode_response(&ok, format).as_frame(), &Limits::default())?;
            assert_eq!(again, ok);
        }
        Ok(())
    }
}
