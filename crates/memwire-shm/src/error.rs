//! The one error type of memwire-shm.
//!
//! Every variant names the thing it is about (a resource name, a path, an offset, a size), so a
//! message read in a log is enough to find the culprit. OS errors keep their `errno` in the
//! `#[source]` chain; use [`Error::errno`] to test for one.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// A specialised `Result` for memwire-shm.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in memwire-shm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A resource or segment name breaks the naming rules (1..=200 bytes of `[A-Za-z0-9._-]`,
    /// not `.` or `..`).
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name (lossily printable).
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// A namespace (from `MEMWIRE_NAMESPACE`) breaks the naming rules (those of a name, without
    /// `.`).
    #[error("invalid namespace {namespace:?}: {reason}")]
    InvalidNamespace {
        /// The rejected namespace.
        namespace: String,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// A requested size is zero or larger than memwire supports.
    #[error("invalid size {size} for {what}: {reason}")]
    InvalidSize {
        /// What was being sized (a resource name, "memfd segment", ...).
        what: String,
        /// The rejected size in bytes.
        size: u64,
        /// Why it is rejected.
        reason: &'static str,
    },

    /// No object exists under this name.
    #[error("resource {name:?} not found (looked for {})", path.display())]
    NotFound {
        /// The resource name.
        name: String,
        /// The path that does not exist.
        path: PathBuf,
    },

    /// Creation lost the race: the name is taken.
    #[error("resource {name:?} already exists at {}", path.display())]
    AlreadyExists {
        /// The resource name.
        name: String,
        /// The path that exists.
        path: PathBuf,
    },

    /// The file does not start with memwire's magic number: memwire will not touch it.
    #[error("{} is not a memwire resource (bad magic {found:#018x})", path.display())]
    NotMemwire {
        /// The file.
        path: PathBuf,
        /// The first eight bytes, little-endian.
        found: u64,
    },

    /// A path under memwire's prefix is not a regular file (a FIFO, a socket, ...): memwire
    /// will not touch it.
    #[error("{} is not a regular file", path.display())]
    NotRegularFile {
        /// The path.
        path: PathBuf,
    },

    /// The file was written by an incompatible version of memwire.
    #[error("{} has layout version {found}, this memwire reads version {expected}", path.display())]
    LayoutVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build understands.
        expected: u32,
    },

    /// The file belongs to another user, who may read and write it: memwire will not use it.
    #[error("{} belongs to uid {uid}, not to this user (uid {expected}): not used", path.display())]
    ForeignOwner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// Our effective uid, which owns every file memwire creates.
        expected: u32,
    },

    /// A header field is inconsistent (a length past the end of the file, ...).
    #[error("corrupt header in {}: {reason}", path.display())]
    CorruptHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Every holder slot of a resource is taken by a live process.
    #[error("resource {name:?} has all {capacity} holder slots taken by live processes")]
    HolderTableFull {
        /// The resource name.
        name: String,
        /// The number of holder slots.
        capacity: usize,
    },

    /// A resource exists but its creator did not finish initialising it in time.
    #[error("resource {name:?} was not initialised within {waited:?}")]
    InitTimeout {
        /// The resource name.
        name: String,
        /// How long we waited.
        waited: Duration,
    },

    /// The resource outlived its TTL: it can no longer be opened, and `gc` removes it once no
    /// process holds it.
    #[error("resource {name:?} expired (TTL {ttl:?})")]
    Expired {
        /// The resource name.
        name: String,
        /// Its time to live.
        ttl: Duration,
    },

    /// The caller is not allowed to open or create this path.
    #[error("permission denied on {}", path.display())]
    PermissionDenied {
        /// The path.
        path: PathBuf,
        /// The OS error (`EACCES` or `EPERM`).
        #[source]
        source: io::Error,
    },

    /// An OS call on a path failed.
    #[error("{op} {} failed", path.display())]
    Path {
        /// The operation (`"open"`, `"unlink"`, ...).
        op: &'static str,
        /// The path it was applied to.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// An OS call failed.
    #[error("{op} failed")]
    Os {
        /// The system call or operation (`"memfd_create"`, `"mmap"`, ...).
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// An access through a mapping view falls outside the mapping.
    #[error("access of {len} bytes at offset {offset} is outside the {size}-byte mapping")]
    OutOfBounds {
        /// Offset of the access.
        offset: usize,
        /// Length of the access.
        len: usize,
        /// Size of the mapping.
        size: usize,
    },

    /// An atomic access through a mapping view is not aligned to its width.
    #[error("atomic access at offset {offset} is not aligned to {align} bytes")]
    Misaligned {
        /// Offset of the access.
        offset: usize,
        /// Required alignment.
        align: usize,
    },

    /// A write was attempted through a read-only mapping.
    #[error("write at offset {offset} through a read-only mapping")]
    ReadOnly {
        /// Offset of the attempted write.
        offset: usize,
    },

    /// An fd handed to us lacks seals the receiver requires before mapping it.
    #[error("fd is missing required seals: has {present:?}, needs {required:?}")]
    MissingSeals {
        /// Seals present on the fd.
        present: rustix::fs::SealFlags,
        /// Seals the receiver requires.
        required: rustix::fs::SealFlags,
    },

    /// An fd handed to us is smaller than its sender claimed.
    #[error("fd is {actual} bytes, but {expected} bytes were claimed")]
    SizeMismatch {
        /// The size the sender claimed.
        expected: u64,
        /// The size `fstat` reports.
        actual: u64,
    },

    /// The runtime directory cannot be used.
    #[error("runtime directory {} unusable: {reason}", path.display())]
    RuntimeDir {
        /// The directory.
        path: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },

    /// More file descriptors than one message may carry ([`crate::fdpass::MAX_FDS_PER_MESSAGE`]).
    #[error("{count} fds in one message, at most {max} allowed")]
    TooManyFds {
        /// How many fds were asked for.
        count: usize,
        /// The limit.
        max: usize,
    },

    /// A message carried more file descriptors than the receiver accepts. The kernel drops
    /// those it had no room for, and every one that did arrive has been closed; the message's
    /// data bytes were consumed.
    #[error("control data truncated: more than {capacity} fds were sent")]
    TruncatedControl {
        /// How many fds the receiver had room for.
        capacity: usize,
    },

    /// An fd handed to us is not the kind of file it must be.
    #[error("fd {fd} is not {expected}")]
    WrongFdKind {
        /// The fd number, in this process.
        fd: i32,
        /// What it must be (`"an eventfd in counter mode"`, ...).
        expected: &'static str,
    },

    /// A process is not running (or the pid now belongs to another process).
    #[error("process {pid} is not running")]
    NoSuchProcess {
        /// The pid.
        pid: u32,
    },
}

impl Error {
    /// Wraps an OS error from the operation `op`.
    pub(crate) fn os(op: &'static str, source: impl Into<io::Error>) -> Self {
        Self::Os {
            op,
            source: source.into(),
        }
    }

    /// Wraps an OS error from operation `op` on `path`; `EACCES`/`EPERM` become
    /// [`Error::PermissionDenied`].
    pub(crate) fn path(
        op: &'static str,
        path: impl Into<PathBuf>,
        source: impl Into<io::Error>,
    ) -> Self {
        let source = source.into();
        let path = path.into();
        if source.kind() == io::ErrorKind::PermissionDenied {
            Self::PermissionDenied { path, source }
        } else {
            Self::Path { op, path, source }
        }
    }

    /// The OS error number behind this error, if there is one.
    #[must_use]
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::PermissionDenied { source, .. }
            | Self::Path { source, .. }
            | Self::Os { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> Self {
        let kind = match &err {
            Error::NotFound { .. } | Error::NoSuchProcess { .. } => io::ErrorKind::NotFound,
            Error::AlreadyExists { .. } => io::ErrorKind::AlreadyExists,
            Error::PermissionDenied { .. } | Error::ReadOnly { .. } => {
                io::ErrorKind::PermissionDenied
            }
            Error::InitTimeout { .. } => io::ErrorKind::TimedOut,
            Error::Expired { .. } => io::ErrorKind::NotFound,
            Error::InvalidName { .. }
            | Error::InvalidNamespace { .. }
            | Error::InvalidSize { .. }
            | Error::TooManyFds { .. } => io::ErrorKind::InvalidInput,
            Error::Path { source, .. } | Error::Os { source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, err)
    }
}
