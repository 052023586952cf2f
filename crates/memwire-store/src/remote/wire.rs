//! Between the store's types and the protocol's: watch events both ways, store errors from
//! `error` answers, and WebSocket messages from encoded ones.

use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::Error;
use crate::protocol::{Encoded, ErrorCode, Event, EventKind, Lagged, Response, Value};
use crate::segment::ChangeKind;
use crate::store::WatchEvent;

/// Bytes a WebSocket read asks the socket for. tungstenite zeroes that much of its buffer
/// before every read: at its default, 128 KiB, the zeroing cost more than the rest of a small
/// request's handling (`memwire bench store`, `remote-set`). A large message takes more reads.
const READ_BUFFER: usize = 8 << 10;

/// The smallest `max_message_bytes` of a server: the protocol's default (2 MiB).
const MIN_MESSAGE: usize = 2 << 20;

/// Room in a message for everything but the value: the request's other fields.
const MESSAGE_OVERHEAD: usize = 64 << 10;

/// The largest message that must pass for values up to `max_value` bytes: the value in base64
/// (JSON's form, the longer one) and the other fields, at least [`MIN_MESSAGE`].
pub(super) fn message_limit(max_value: usize) -> usize {
    max_value
        .div_ceil(3)
        .saturating_mul(4)
        .saturating_add(MESSAGE_OVERHEAD)
        .max(MIN_MESSAGE)
}

/// The WebSocket settings of both ends, for messages up to `max_message` bytes.
pub(super) fn websocket_config(max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

/// The WebSocket message that carries `encoded`.
pub(super) fn message(encoded: Encoded) -> Message {
    match encoded {
        Encoded::Text(text) => Message::text(text),
        Encoded::Binary(bytes) => Message::binary(bytes),
    }
}

/// The pushed message of watch `watch_id` for `event`.
pub(super) fn event_response(watch_id: u64, event: WatchEvent) -> Response {
    match event {
        WatchEvent::Changed {
            path,
            kind,
            value,
            version,
            timestamp_ms,
        } => Response::Event(Event {
            watch_id,
            path,
            kind: match kind {
                ChangeKind::Set => EventKind::Set,
                ChangeKind::Delete => EventKind::Delete,
            },
            value: value.map(Value),
            version,
            timestamp_ms,
        }),
        WatchEvent::Lagged {
            missed_from,
            resumed_at,
        } => Response::Lagged(Lagged {
            watch_id,
            missed_from,
            resumed_at,
        }),
        WatchEvent::Current {
            path,
            value,
            version,
            timestamp_ms,
        } => Response::Event(Event {
            watch_id,
            path,
            kind: EventKind::Current,
            value: Some(Value(value)),
            version,
            timestamp_ms,
        }),
        WatchEvent::Synced { version } => Response::Synced { watch_id, version },
    }
}

/// The store's event for a pushed message; `None` for a message that is none (`ok`, `error`,
/// `watch_ended`) or an `event` of kind `set`/`current` without its value.
pub(super) fn watch_event(response: Response) -> Option<WatchEvent> {
    Some(match response {
        Response::Event(e) => match e.kind {
            EventKind::Set | EventKind::Delete => WatchEvent::Changed {
                path: e.path,
                kind: if e.kind == EventKind::Set {
                    ChangeKind::Set
                } else {
                    ChangeKind::Delete
                },
                value: match e.kind {
                    EventKind::Set => Some(e.value?.into_bytes()),
                    _ => None,
                },
                version: e.version,
                timestamp_ms: e.timestamp_ms,
            },
            EventKind::Current => WatchEvent::Current {
                path: e.path,
                value: e.value?.into_bytes(),
                version: e.version,
                timestamp_ms: e.timestamp_ms,
            },
        },
        Response::Lagged(l) => WatchEvent::Lagged {
            missed_from: l.missed_from,
            resumed_at: l.resumed_at,
        },
        Response::Synced { version, .. } => WatchEvent::Synced { version },
        Response::Ok { .. } | Response::Error { .. } | Response::WatchEnded { .. } => {
            return None;
        }
    })
}

/// The typed error for an `error` answer. The server sends a store error's own text
/// (`"permission denied: ..."`), so its prefix is cut to avoid saying it twice.
pub(super) fn error_from(code: ErrorCode, message: String, expected: Option<u64>) -> Error {
    let detail = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|m| m.strip_prefix(": "))
            .unwrap_or(&message)
            .to_owned()
    };
    match code {
        ErrorCode::Unauthenticated => Error::Unauthenticated(detail("unauthenticated")),
        ErrorCode::PermissionDenied => Error::PermissionDenied(detail("permission denied")),
        ErrorCode::NotFound => Error::NotFound(detail("not found")),
        ErrorCode::QuotaExceeded => Error::QuotaExceeded(detail("quota exceeded")),
        ErrorCode::BadRequest => Error::BadRequest(detail("bad request")),
        ErrorCode::Conflict => {
            // "conflict: expected version 7, found 8": the numbers are the message's last
            // word and the caller's own expectation.
            let found = message
                .rsplit(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            Error::Conflict {
                expected: expected.unwrap_or(0),
                found,
            }
        }
        code => Error::Remote { code, message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Response;

    #[test]
    fn a_message_of_the_largest_value_fits_its_limit() {
        use crate::protocol::{Format, Limits, Request, encode_request};
        assert_eq!(message_limit(1 << 20), Limits::default().max_message_bytes);
        for len in [0, 1, 1 << 20, (3 << 20) + 1, 5 << 20] {
            let request = Request::Set {
                id: u64::MAX,
                path: "t/s/v".parse().expect("a valid path"),
                // Not UTF-8: JSON carries it as base64, its longest form.
                value: Value(vec![0xff; len]),
                expected_version: Some(u64::MAX),
            };
            for format in [Format::Json, Format::MessagePack] {
                let encoded = match encode_request(&request, format) {
                    Encoded::Text(text) => text.len(),
                    Encoded::Binary(bytes) => bytes.len(),
                };
                assert!(encoded <= message_limit(len), "{len} B in {format:?}");
            }
        }
    }

    #[test]
    fn store_errors_round_trip() {
        for error in [
            Error::PermissionDenied("key k may not read tenant \"b\"".into()),
            Error::NotFound("variable t/s/v".into()),
            Error::Conflict {
                expected: 7,
                found: 8,
            },
        ] {
            let Response::Error { code, message, .. } = Response::from_error(Some(1), &error)
            else {
                panic!("not an error answer");
            };
            let again = error_from(code, message, Some(7));
            assert_eq!(again.to_string(), error.to_string());
        }
        let e = error_from(ErrorCode::TooLarge, "big".into(), None);
        assert!(matches!(
            e,
            Error::Remote {
                code: ErrorCode::TooLarge,
                ..
            }
        ));
    }
}
