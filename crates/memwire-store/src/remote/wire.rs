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
