//! What a call can fail with: one typed error per failure a caller must tell apart.

use std::time::Duration;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The handler returned an error (or panicked: `kind` is then `"panic"`). The worker keeps
    /// serving.
    #[error("{kind}: {message}")]
    Remote {
        /// A short machine-readable kind, chosen by the handler (the error type's name by
        /// default).
        kind: String,
        /// The handler's message.
        message: String,
    },
    /// No answer within the call's timeout; the call was cancelled at the server.
    #[error("call timed out after {0:?}")]
    Timeout(Duration),
    /// The call was cancelled before it completed.
    #[error("call cancelled")]
    Cancelled,
    /// The peer process is gone: every pending call fails with this at once.
    #[error("peer {pid} is gone")]
    PeerGone {
        /// The peer's pid.
        pid: u32,
    },
    /// The circuit breaker is open after repeated failures; no request was sent.
    #[error("circuit open: {failures} consecutive failures; next probe in {retry_in:?}")]
    CircuitOpen {
        /// Consecutive failures that opened it.
        failures: u32,
        /// Time until the breaker lets a probe through.
        retry_in: Duration,
    },
    /// The service has no method of that name.
    #[error("unknown method {method:?}")]
    UnknownMethod {
        /// The name asked for.
        method: String,
    },
    /// The arguments did not decode into the method's parameters.
    #[error("bad arguments for {method:?}: {message}")]
    BadArguments {
        /// The method.
        method: String,
        /// What the decoder said.
        message: String,
    },
    /// The peer sent a frame that breaks the protocol, or a value that does not decode.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The link below failed.
    #[error(transparent)]
    Transport(memwire_transport::Error),
    /// Starting, finding or stopping a worker failed.
    #[error("{op}")]
    Io {
        /// What was being done.
        op: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A live process already serves under this name in the service registry.
    #[error("service {name:?} is already registered by live process {pid}")]
    ServiceExists {
        /// The service name.
        name: String,
        /// The pid of the process that holds it.
        pid: u32,
    },
    /// No live process serves under this name in the service registry.
    #[error("no service {name:?} is running")]
    NoService {
        /// The service name asked for.
        name: String,
    },
}

impl Error {
    /// The kind of failure, for metrics and the circuit breaker.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Remote { .. } => ErrorKind::Remote,
            Self::Timeout(_) => ErrorKind::Timeout,
            Self::Cancelled => ErrorKind::Cancelled,
            Self::PeerGone { .. } => ErrorKind::PeerGone,
            Self::CircuitOpen { .. } => ErrorKind::CircuitOpen,
            Self::UnknownMethod { .. } => ErrorKind::UnknownMethod,
            Self::BadArguments { .. } => ErrorKind::BadArguments,
            Self::Protocol(_) => ErrorKind::Protocol,
            Self::Transport(_)
            | Self::Io { .. }
            | Self::ServiceExists { .. }
            | Self::NoService { .. } => ErrorKind::Transport,
        }
    }
}

impl Error {
    pub(crate) fn io(op: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            op: op.into(),
            source,
        }
    }
}

impl From<memwire_transport::Error> for Error {
    fn from(e: memwire_transport::Error) -> Self {
        match e {
            memwire_transport::Error::PeerGone { pid } => Self::PeerGone { pid },
            other => Self::Transport(other),
        }
    }
}

impl From<memwire_shm::Error> for Error {
    fn from(e: memwire_shm::Error) -> Self {
        Self::Transport(memwire_transport::Error::Shm(e))
    }
}

/// [`Error`] without its details: what metrics count and the breaker weighs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`Error::Remote`].
    Remote,
    /// [`Error::Timeout`].
    Timeout,
    /// [`Error::Cancelled`].
    Cancelled,
    /// [`Error::PeerGone`].
    PeerGone,
    /// [`Error::CircuitOpen`].
    CircuitOpen,
    /// [`Error::UnknownMethod`].
    UnknownMethod,
    /// [`Error::BadArguments`].
    BadArguments,
    /// [`Error::Protocol`].
    Protocol,
    /// [`Error::Transport`] and [`Error::Io`]; also the registry's [`Error::ServiceExists`] and
    /// [`Error::NoService`] (setting up a link failed).
    Transport,
}

impl ErrorKind {
    /// Every kind, in a stable order (for tables).
    pub const ALL: [Self; 9] = [
        Self::Remote,
        Self::Timeout,
        Self::Cancelled,
        Self::PeerGone,
        Self::CircuitOpen,
        Self::UnknownMethod,
        Self::BadArguments,
        Self::Protocol,
        Self::Transport,
    ];

    /// A short lowercase name, as on the wire and in tables.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Remote => "remote",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
            Self::PeerGone => "peer_gone",
            Self::CircuitOpen => "circuit_open",
            Self::UnknownMethod => "unknown_method",
            Self::BadArguments => "bad_arguments",
            Self::Protocol => "protocol",
            Self::Transport => "transport",
        }
    }
}

/// A specialised `Result` for calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;
