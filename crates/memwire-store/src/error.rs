//! What a store operation can fail with. The first six are what a client is told when the
//! server refuses a request (on every transport: local calls and WebSocket alike, under the
//! names [`Code::as_str`] gives); the connection stays usable after each.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No key, or a key the server does not know (or revoked).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The key may not do this (another tenant, a read-only role, a service outside its
    /// pattern).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// No such tenant, service or variable.
    #[error("not found: {0}")]
    NotFound(String),
    /// The tenant's memory or variable quota would be exceeded.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The request is malformed (a bad name, a value too large, an unknown field).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A compare-and-set found another version.
    #[error("conflict: expected version {expected}, found {found}")]
    Conflict {
        /// The version the caller expected.
        expected: u64,
        /// The variable's version now (0: it does not exist).
        found: u64,
    },
    /// The server is gone; a local client reconnects by itself.
    #[error("the store server is gone")]
    ServerGone,
    /// A file of the server's data directory is corrupt (not a torn tail, which is dropped and
    /// reported at start-up).
    #[error("{path} is corrupt at offset {offset}: {what}")]
    Corrupt {
        /// The file.
        path: std::path::PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong there.
        what: String,
    },
    /// A tenant segment breaks its layout (a bad header, an offset outside its area): a server
    /// bug, reported instead of read through.
    #[error("tenant segment is inconsistent at offset {offset}: {what}")]
    CorruptSegment {
        /// Where in the segment.
        offset: u64,
        /// What is wrong there.
        what: String,
    },
    /// A remote server refused a request with a code that is none of the store's own
    /// (`bad_message`, `too_large`, `unsupported_version`, `internal`, or a newer one).
    #[error("the server refused the request ({}): {message}", code.as_str())]
    Remote {
        /// The code the server sent.
        code: crate::protocol::ErrorCode,
        /// The server's message.
        message: String,
    },
    /// A remote server sent a message this client cannot read.
    #[error("the server sent an unreadable message: {0}")]
    Protocol(#[from] crate::protocol::ProtocolError),
    /// A store URL is not `ws://HOST:PORT[/PATH]` or `wss://...`.
    #[error("invalid store URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The WebSocket connection to a server failed (refused, handshake, closed).
    #[error("WebSocket connection to {url}: {source}")]
    WebSocket {
        /// The server's URL.
        url: String,
        /// What failed.
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// A TLS configuration could not be built (a bad certificate or key).
    #[error("TLS {what}: {source}")]
    Tls {
        /// What was being set up, naming the file.
        what: String,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// A certificate could not be made.
    #[error("making a self-signed certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// An OS primitive failed.
    #[error(transparent)]
    Shm(#[from] memwire_shm::Error),
    /// A shared-memory link (a local client's write path) failed.
    #[error(transparent)]
    Transport(Box<memwire_transport::Error>),
    /// A variable's value is not the JSON of the type a typed helper (`get_as`) asked for.
    #[error("value of {path} is not the JSON of a {ty}")]
    Decode {
        /// The variable.
        path: crate::protocol::VarPath,
        /// The type asked for, as [`std::any::type_name`] gives it.
        ty: &'static str,
        /// What serde_json found.
        #[source]
        source: serde_json::Error,
    },
    /// A typed helper (`set_as`) could not encode a value as JSON (a map whose keys are not
    /// strings, a `Serialize` implementation's own error); nothing was sent.
    #[error("cannot write the value of {path} as JSON")]
    Encode {
        /// The variable.
        path: crate::protocol::VarPath,
        /// What serde_json said.
        #[source]
        source: serde_json::Error,
    },
    /// A file or socket operation failed.
    #[error("{op}")]
    Io {
        /// What was being done, naming the file or socket.
        op: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl From<memwire_transport::Error> for Error {
    fn from(err: memwire_transport::Error) -> Self {
        Self::Transport(Box::new(err))
    }
}

impl Error {
    /// The error's code on the wire, if a client may be told it.
    #[must_use]
    pub fn code(&self) -> Option<Code> {
        Some(match self {
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::NotFound(_) => Code::NotFound,
            Self::QuotaExceeded(_) => Code::QuotaExceeded,
            Self::BadRequest(_) => Code::BadRequest,
            Self::Conflict { .. } => Code::Conflict,
            _ => return None,
        })
    }

    /// An I/O error with what was being done.
    pub fn io(op: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            op: op.into(),
            source,
        }
    }
}

/// The errors a server tells its clients, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// [`Error::Unauthenticated`].
    Unauthenticated,
    /// [`Error::PermissionDenied`].
    PermissionDenied,
    /// [`Error::NotFound`].
    NotFound,
    /// [`Error::QuotaExceeded`].
    QuotaExceeded,
    /// [`Error::BadRequest`].
    BadRequest,
    /// [`Error::Conflict`].
    Conflict,
}

impl Code {
    /// The code as on the wire: `unauthenticated`, `permission_denied`, `not_found`,
    /// `quota_exceeded`, `bad_request`, `conflict`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::PermissionDenied => "permission_denied",
            Self::NotFound => "not_found",
            Self::QuotaExceeded => "quota_exceeded",
            Self::BadRequest => "bad_request",
            Self::Conflict => "conflict",
        }
    }
}

/// A specialised `Result` for the store.
pub type Result<T, E = Error> = std::result::Result<T, E>;
