//! The local protocol: the messages a [`Local`](super::Local) client and the
//! [`LocalServer`](super::LocalServer) exchange over the Unix socket, and their framing.
//!
//! ```text
//!  frame = len: u32 little-endian ‖ body: len bytes (postcard)
//!  client → server   Request   (Auth first; Wake carries one eventfd by SCM_RIGHTS)
//!  server → client   Answer    (Ok(Reply) | Err(Refusal); Ok(Mapped) carries the tenant's memfd)
//! ```
//!
//! One request, then its answer: a client never pipelines, so the fds that arrive while a
//! frame is read belong to that frame. A reader bounds what it buffers: a frame longer than
//! its limit is read and thrown away ([`Frames::try_take`] reports it) so the connection stays
//! usable, and at most [`MAX_FDS`] fds are taken per `recvmsg` (more are closed by the kernel's
//! truncation, `MSG_CTRUNC`).

use std::os::fd::{AsFd, OwnedFd};

use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::error::{Error, Result};
use crate::store::WatchEvent;

/// The local protocol's version, sent in [`Request::Auth`].
pub const LOCAL_PROTOCOL_VERSION: u32 = 2;

/// Fds taken per `recvmsg`: a request carries at most one, an answer at most one.
pub(crate) const MAX_FDS: usize = 2;

/// Bytes read per `recvmsg`.
const CHUNK: usize = 64 << 10;

/// What a client asks. Paths are `TENANT/SERVICE/VARIABLE` strings and names plain strings:
/// the server parses and checks each ([`Refusal::BadRequest`] on a bad one). New requests go
/// at the end: postcard names a variant by its position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// The connection's first request: the API key and the protocol version.
    Auth {
        /// [`LOCAL_PROTOCOL_VERSION`].
        version: u32,
        /// The API key.
        key: String,
    },
    /// An empty answer.
    Ping,
    /// One variable's value.
    Get {
        /// `TENANT/SERVICE/VARIABLE`.
        path: String,
    },
    /// Writes a variable; with `expected_version`, a compare-and-set.
    Set {
        /// `TENANT/SERVICE/VARIABLE`.
        path: String,
        /// The bytes.
        value: Vec<u8>,
        /// Only if the variable's version is this (`0`: it does not exist).
        expected_version: Option<u64>,
    },
    /// Deletes a variable.
    Delete {
        /// `TENANT/SERVICE/VARIABLE`.
        path: String,
        /// Only if the variable's version is this.
        expected_version: Option<u64>,
    },
    /// Writes several variables of one service at once.
    SetMany {
        /// The tenant.
        tenant: String,
        /// The service.
        service: String,
        /// Variable → bytes.
        values: Vec<(String, Vec<u8>)>,
    },
    /// Tenants, a tenant's services, or a service's variables.
    List {
        /// The tenant.
        tenant: Option<String>,
        /// The service (needs `tenant`).
        service: Option<String>,
    },
    /// The tenant's segment, read-only (answered with [`Reply::Mapped`] and the fd).
    Map {
        /// The tenant.
        tenant: String,
    },
    /// Registers the eventfd sent with this message: rung after each write of the tenant.
    Wake {
        /// The tenant.
        tenant: String,
    },
    /// Stops ringing an eventfd registered by `wake`.
    Unwake {
        /// The id the `wake` answer gave.
        wake_id: u64,
    },
    /// Each tenant the key may see, with its numbers.
    Stats,
    /// Makes an API key (admin keys).
    CreateKey {
        /// The key's tenant; `None`: every tenant.
        tenant: Option<String>,
        /// Its role.
        role: Role,
        /// A service pattern limiting it.
        services: Option<String>,
        /// A note for people.
        label: Option<String>,
    },
    /// The keys an admin key may see.
    ListKeys,
    /// Revokes a key by id.
    RevokeKey {
        /// The key's id.
        id: String,
    },
    /// Creates a tenant (admin keys); answered [`Reply::TenantCreated`].
    CreateTenant {
        /// The tenant.
        tenant: String,
        /// Its memory quota in bytes; `None`: the server's default.
        quota_bytes: Option<u64>,
        /// Its live variables at most; `None`: the server's default.
        max_variables: Option<u32>,
    },
    /// Deletes a tenant and its variables (admin keys); answered [`Reply::TenantDeleted`].
    DeleteTenant {
        /// The tenant.
        tenant: String,
    },
    /// Watches `scope` through the server, for a key that may not map its tenant (one limited
    /// to some services): the server reads the changes and gives those the key may see. The
    /// eventfd sent with this message is rung after each write of the tenant. Answered
    /// [`Reply::WatchOpened`].
    WatchOpen {
        /// `TENANT`, `TENANT/SERVICE` or `TENANT/SERVICE/VARIABLE`.
        scope: String,
        /// From this version on (`None`: the changes after now).
        from_version: Option<u64>,
    },
    /// What a watch opened by `watch_open` saw since the last poll: [`Reply::Events`].
    WatchPoll {
        /// The id the `watch_open` answer gave.
        watch_id: u64,
    },
    /// Ends a watch opened by `watch_open`.
    WatchClose {
        /// The id the `watch_open` answer gave.
        watch_id: u64,
    },
}

impl Request {
    /// Whether it may travel over a link: all but the requests that pass fds (`map`, `wake`,
    /// `watch_open`) or name the socket's registrations (`unwake`, `watch_poll`,
    /// `watch_close`). A link's first message is `auth`.
    pub(crate) fn fits_link(&self) -> bool {
        !matches!(
            self,
            Self::Map { .. }
                | Self::Wake { .. }
                | Self::Unwake { .. }
                | Self::WatchOpen { .. }
                | Self::WatchPoll { .. }
                | Self::WatchClose { .. }
        )
    }

    /// Whether it carries an fd: `wake` and `watch_open` do, one each.
    pub(crate) fn carries_fd(&self) -> bool {
        matches!(self, Self::Wake { .. } | Self::WatchOpen { .. })
    }
}

/// A successful answer. New answers go at the end, as requests do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The key was accepted.
    Authenticated {
        /// The key's id.
        key_id: String,
        /// The server's pid (the client watches it through a pidfd).
        server_pid: u32,
        /// The largest frame the server reads.
        max_frame: u32,
        /// The bootstrap socket of the transport host to join for a shared-memory link
        /// (`None`: the socket alone).
        link_socket: Option<String>,
    },
    /// Answer to [`Request::Ping`].
    Pong,
    /// A variable's value; `None` if it does not exist.
    Value(Option<Stamped>),
    /// A write was logged and applied.
    Written {
        /// Its version.
        version: u64,
        /// When (ms since the Unix epoch).
        timestamp_ms: u64,
    },
    /// Names, sorted.
    Entries(Vec<Entry>),
    /// The segment's fd came with this message.
    Mapped {
        /// The segment's epoch.
        epoch: u64,
    },
    /// The eventfd is registered.
    WakeRegistered {
        /// Names it in `unwake`.
        wake_id: u64,
    },
    /// The eventfd is no longer rung (or was not registered).
    Unwoken,
    /// Per tenant.
    Stats(Vec<TenantInfo>),
    /// A new key: shown once.
    KeyCreated {
        /// The key.
        key: String,
        /// Its id.
        id: String,
    },
    /// Key records (never the keys).
    Keys(Vec<KeyInfo>),
    /// The key is revoked.
    Revoked {
        /// Its id.
        id: String,
    },
    /// The tenant was created.
    TenantCreated,
    /// The tenant was deleted.
    TenantDeleted {
        /// The delete's version: a tenant created again under the name starts there.
        version: u64,
    },
    /// A watch through the server is open.
    WatchOpened {
        /// Names it in `watch_poll` and `watch_close`.
        watch_id: u64,
        /// The last version it passed over: its events have higher ones.
        version: u64,
    },
    /// What a watch through the server saw, in order (empty: nothing new).
    Events(Vec<WatchEvent>),
    /// The watch is closed.
    WatchClosed,
}

/// A value with its version and timestamp.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped {
    /// The bytes.
    pub value: Vec<u8>,
    /// The write that set it.
    pub version: u64,
    /// When (ms since the Unix epoch).
    pub timestamp_ms: u64,
}

/// One line of a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The tenant, service or variable.
    pub name: String,
    /// The last version written under it.
    pub version: u64,
    /// Services (of a tenant) or variables (of a service).
    pub count: Option<u64>,
    /// A variable's length in bytes.
    pub len: Option<u64>,
}

/// A tenant's numbers, for `memwire ls` (the same over both endpoints).
pub use crate::protocol::TenantInfo;

/// A key's record as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// The id.
    pub id: String,
    /// The tenant; `None`: every tenant.
    pub tenant: Option<String>,
    /// The role.
    pub role: Role,
    /// The service pattern.
    pub services: Option<String>,
    /// Revoked.
    pub revoked: bool,
    /// The note.
    pub label: Option<String>,
    /// Creation time (ms since the Unix epoch).
    pub created_at_unix_ms: u64,
}

/// Why the server refused a request: the store's typed errors, plus what only a transport
/// can say.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// [`Error::Unauthenticated`].
    Unauthenticated(String),
    /// [`Error::PermissionDenied`].
    PermissionDenied(String),
    /// [`Error::NotFound`].
    NotFound(String),
    /// [`Error::QuotaExceeded`].
    QuotaExceeded(String),
    /// [`Error::BadRequest`].
    BadRequest(String),
    /// [`Error::Conflict`].
    Conflict {
        /// Expected version.
        expected: u64,
        /// Version found.
        found: u64,
    },
    /// The server failed (its log, its memory); the request was not applied. Details stay in
    /// the server's log.
    Internal,
}

impl Refusal {
    /// What a client may be told of `err`.
    pub(crate) fn from_error(err: &Error) -> Self {
        match err {
            Error::Unauthenticated(m) => Self::Unauthenticated(m.clone()),
            Error::PermissionDenied(m) => Self::PermissionDenied(m.clone()),
            Error::NotFound(m) => Self::NotFound(m.clone()),
            Error::QuotaExceeded(m) => Self::QuotaExceeded(m.clone()),
            Error::BadRequest(m) => Self::BadRequest(m.clone()),
            Error::Conflict { expected, found } => Self::Conflict {
                expected: *expected,
                found: *found,
            },
            _ => Self::Internal,
        }
    }

    /// The store error a client returns for it.
    pub(crate) fn into_error(self) -> Error {
        match self {
            Self::Unauthenticated(m) => Error::Unauthenticated(m),
            Self::PermissionDenied(m) => Error::PermissionDenied(m),
            Self::NotFound(m) => Error::NotFound(m),
            Self::QuotaExceeded(m) => Error::QuotaExceeded(m),
            Self::BadRequest(m) => Error::BadRequest(m),
            Self::Conflict { expected, found } => Error::Conflict { expected, found },
            Self::Internal => Error::io(
                "the store server",
                std::io::Error::other("the server failed; the request was not applied"),
            ),
        }
    }
}

/// The server's answer to one request.
pub type Answer = std::result::Result<Reply, Refusal>;

/// Encodes `msg` as one frame.
pub(crate) fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>> {
    let mut out = vec![0; 4];
    let body = postcard::to_extend(msg, Vec::new())
        .map_err(|e| Error::BadRequest(format!("cannot encode a local message: {e}")))?;
    let len = u32::try_from(body.len())
        .map_err(|_| Error::BadRequest(format!("message of {} bytes is too large", body.len())))?;
    out[..4].copy_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// A message's body alone (a link message is its own frame).
pub(crate) fn encode_body<T: Serialize>(msg: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(msg)
        .map_err(|e| Error::BadRequest(format!("cannot encode a local message: {e}")))
}

/// Decodes a frame's body.
pub(crate) fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T> {
    postcard::from_bytes(body)
        .map_err(|e| Error::BadRequest(format!("malformed local message: {e}")))
}

/// What [`Frames::try_take`] found.
#[derive(Debug)]
pub(crate) enum Taken {
    /// A whole frame and the fds that came with it.
    Frame(Vec<u8>, Vec<OwnedFd>),
    /// A frame longer than the limit was thrown away (its length).
    TooLarge(u64),
}

/// Bytes and fds read from a socket, cut into frames. See the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct Frames {
    buf: Vec<u8>,
    fds: Vec<OwnedFd>,
    /// Bytes of an over-long frame still to throw away.
    skip: u64,
    /// The over-long frame's length, reported once it is skipped.
    skipped: u64,
}

impl Frames {
    /// The next whole frame already read, if any.
    pub(crate) fn try_take(&mut self, max: u32) -> Option<Taken> {
        if self.skip > 0 {
            let n = usize::try_from(self.skip)
                .unwrap_or(usize::MAX)
                .min(self.buf.len());
            self.buf.drain(..n);
            self.skip -= n as u64;
            if self.skip > 0 {
                return None;
            }
            self.fds.clear();
            return Some(Taken::TooLarge(self.skipped));
        }
        let header: [u8; 4] = self.buf.get(..4)?.try_into().ok()?;
        let len = u32::from_le_bytes(header);
        if len > max {
            self.buf.drain(..4);
            self.skip = u64::from(len);
            self.skipped = u64::from(len);
            return self.try_take(max);
        }
        let end = 4 + len as usize;
        if self.buf.len() < end {
            return None;
        }
        let body = self.buf[4..end].to_vec();
        self.buf.drain(..end);
        Some(Taken::Frame(body, std::mem::take(&mut self.fds)))
    }

    /// Reads what the socket has (blocking); `false` at end of stream.
    pub(crate) fn fill(&mut self, socket: impl AsFd) -> Result<bool> {
        let mut chunk = vec![0; CHUNK];
        let got = memwire_shm::recv_with_fds(socket, &mut chunk, MAX_FDS)?;
        Ok(self.push(&chunk, got))
    }

    /// Reads what the socket has (tokio); `false` at end of stream.
    pub(crate) async fn fill_async(&mut self, socket: &tokio::net::UnixStream) -> Result<bool> {
        let mut chunk = vec![0; CHUNK];
        let got = memwire_shm::fdpass::recv_with_fds_async(socket, &mut chunk, MAX_FDS).await?;
        Ok(self.push(&chunk, got))
    }

    fn push(&mut self, chunk: &[u8], got: memwire_shm::fdpass::Received) -> bool {
        if got.is_eof() {
            return false;
        }
        self.buf.extend_from_slice(&chunk[..got.len]);
        // At most one message's worth is kept: a client that sends fds without asking for
        // anything cannot pile them up.
        self.fds.extend(got.fds);
        self.fds.truncate(MAX_FDS);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_an_over_long_one_is_skipped() {
        let mut frames = Frames::default();
        let a = encode(&Request::Ping).unwrap();
        let big = encode(&Request::Get {
            path: "x".repeat(100),
        })
        .unwrap();
        let b = encode(&Request::Stats).unwrap();
        frames.buf.extend_from_slice(&a);
        frames.buf.extend_from_slice(&big);
        frames.buf.extend_from_slice(&b);
        let Some(Taken::Frame(body, fds)) = frames.try_take(50) else {
            panic!("a frame")
        };
        assert!(fds.is_empty());
        assert_eq!(decode::<Request>(&body).unwrap(), Request::Ping);
        assert!(matches!(frames.try_take(50), Some(Taken::TooLarge(_))));
        let Some(Taken::Frame(body, _)) = frames.try_take(50) else {
            panic!("a frame")
        };
        assert_eq!(decode::<Request>(&body).unwrap(), Request::Stats);
        assert!(frames.try_take(50).is_none());
        assert!(frames.buf.is_empty());
    }

    #[test]
    fn tenant_requests_round_trip_and_older_variants_keep_their_bytes() {
        for request in [
            Request::CreateTenant {
                tenant: "acme".to_owned(),
                quota_bytes: Some(1 << 20),
                max_variables: None,
            },
            Request::DeleteTenant {
                tenant: "acme".to_owned(),
            },
        ] {
            let body = encode_body(&request).unwrap();
            assert_eq!(decode::<Request>(&body).unwrap(), request);
        }
        for reply in [Reply::TenantCreated, Reply::TenantDeleted { version: 9 }] {
            let body = encode_body(&Answer::Ok(reply.clone())).unwrap();
            assert_eq!(decode::<Answer>(&body).unwrap(), Ok(reply));
        }
        // Appended, not inserted: a request of an older client decodes as it did.
        assert_eq!(encode_body(&Request::Ping).unwrap(), [1]);
        assert_eq!(encode_body(&Request::ListKeys).unwrap(), [12]);
    }

    #[test]
    fn watches_through_the_server_round_trip_and_only_the_socket_carries_them() {
        let requests = [
            Request::WatchOpen {
                scope: "acme/billing".to_owned(),
                from_version: Some(7),
            },
            Request::WatchPoll { watch_id: 3 },
            Request::WatchClose { watch_id: 3 },
        ];
        for request in requests {
            let body = encode_body(&request).unwrap();
            assert_eq!(decode::<Request>(&body).unwrap(), request);
            assert!(!request.fits_link(), "{request:?} names the socket's state");
        }
        let path: crate::protocol::VarPath = "acme/billing/rate".parse().unwrap();
        let events = vec![
            WatchEvent::Changed {
                path: path.clone(),
                kind: crate::segment::ChangeKind::Set,
                value: Some(b"0.2".to_vec()),
                version: 8,
                timestamp_ms: 1,
            },
            WatchEvent::Lagged {
                missed_from: 9,
                resumed_at: 12,
            },
            WatchEvent::Current {
                path,
                value: b"0.3".to_vec(),
                version: 11,
                timestamp_ms: 2,
            },
            WatchEvent::Synced { version: 12 },
        ];
        for reply in [
            Reply::WatchOpened {
                watch_id: 3,
                version: 7,
            },
            Reply::Events(events),
            Reply::WatchClosed,
        ] {
            let body = encode_body(&Answer::Ok(reply.clone())).unwrap();
            assert_eq!(decode::<Answer>(&body).unwrap(), Ok(reply));
        }
        // An event whose path is no path (variant 2, `Current`, then its fields) is refused
        // when read.
        let bad =
            postcard::to_allocvec(&(2u32, "not a path", Vec::<u8>::new(), 1u64, 0u64)).unwrap();
        assert!(postcard::from_bytes::<WatchEvent>(&bad).is_err());
    }

    #[test]
    fn garbage_is_a_bad_request_not_a_panic() {
        assert!(matches!(
            decode::<Request>(&[0xff, 0xff, 0xff]),
            Err(Error::BadRequest(_))
        ));
    }
}
