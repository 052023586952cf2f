//! The transport's errors.

use std::time::Duration;

/// A [`crate::LinkConfig`] that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The ring depth is not a power of two in 2..=65536.
    #[error("ring depth {0} is not a power of two in 2..=65536")]
    RingDepth(u32),
    /// More size classes than fit the wire format.
    #[error("{0} size classes, at most 16 allowed")]
    TooManyClasses(usize),
    /// A class size is zero, not a multiple of 64, or not larger than the class before it.
    #[error(
        "size class {class} has size {size}: sizes must be non-zero multiples of 64, ascending"
    )]
    ClassSize {
        /// Index of the class.
        class: usize,
        /// Its size.
        size: u32,
    },
    /// A class has no slots, or more than 2^24.
    #[error("size class {class} has {count} slots: 1..=16777216 allowed")]
    ClassCount {
        /// Index of the class.
        class: usize,
        /// Its slot count.
        count: u32,
    },
    /// The inline threshold is larger than a descriptor holds.
    #[error("inline threshold {0} is larger than the 56 bytes a descriptor holds")]
    InlineMax(u8),
    /// The largest message is smaller than the largest class.
    #[error("largest message {0} is smaller than the largest size class")]
    MaxLarge(u64),
    /// `max_peers` is zero or too large.
    #[error("max_peers {0} must be in 1..=1024")]
    MaxPeers(usize),
}

/// What a link operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer process is gone (its pidfd fired, or its control socket closed). Every waiting
    /// call on the link returns this at once.
    #[error("peer {pid} is gone")]
    PeerGone {
        /// The peer's pid.
        pid: u32,
    },
    /// The peer broke the protocol (a descriptor out of range, a slot freed twice, corrupt
    /// ring indices, a memfd without seals). The link is closed; the host and its other peers
    /// carry on.
    #[error("peer {pid} violated the protocol: {what}")]
    ProtocolViolation {
        /// The peer's pid.
        pid: u32,
        /// What it did.
        what: String,
    },
    /// Nothing to receive, or no room to send, and the caller asked not to wait.
    #[error("operation would block")]
    WouldBlock,
    /// The wait ran out.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// A message longer than the link allows.
    #[error("message of {len} bytes exceeds the link's maximum of {max}")]
    TooLarge {
        /// Requested length.
        len: u64,
        /// The link's `max_large`.
        max: u64,
    },
    /// `MEMWIRE_TICKET` is missing or malformed, or names an fd that is not ours.
    #[error("bad MEMWIRE_TICKET: {0}")]
    BadTicket(String),
    /// The host turned this guest away.
    #[error("host refused the connection: {0:?}")]
    Refused(crate::bootstrap::RefuseReason),
    /// A guest spawned by [`crate::Host::spawn`] did not ask for its link within the host's
    /// [`crate::HostConfig::join_timeout`]; it was killed and reaped.
    #[error("spawned guest {pid} did not join within {timeout:?}: killed")]
    JoinTimeout {
        /// The child's pid.
        pid: u32,
        /// The deadline it missed.
        timeout: Duration,
    },
    /// A guest spawned by [`crate::Host::spawn`] exited before it asked for its link.
    #[error("spawned guest {pid} exited before it joined: {status}")]
    GuestExited {
        /// The child's pid.
        pid: u32,
        /// How it exited.
        status: std::process::ExitStatus,
    },
    /// Another live host already serves this name.
    #[error("a host named {name:?} is already running (socket {})", path.display())]
    HostExists {
        /// The name.
        name: String,
        /// Its bootstrap socket.
        path: std::path::PathBuf,
    },
    /// No host serves this name.
    #[error("no host named {name:?} (no socket at {})", path.display())]
    NoHost {
        /// The name.
        name: String,
        /// Where its socket would be.
        path: std::path::PathBuf,
    },
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The segment a peer handed over does not have the layout it claims.
    #[error("bad segment: {0}")]
    BadSegment(String),
    /// An OS primitive failed.
    #[error(transparent)]
    Shm(#[from] memwire_shm::Error),
    /// A socket or file operation failed.
    #[error("{op} failed")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A specialised `Result` for the transport.
pub type Result<T, E = Error> = std::result::Result<T, E>;
