//! Shared-memory segments: one trait, three kinds.
//!
//! | kind | lives | passed by | sealed |
//! | --- | --- | --- | --- |
//! | [`MemfdSegment`] | anonymous, in RAM | fd (inheritance, `SCM_RIGHTS`) | shrink + grow once sized; optionally future-write |
//! | [`NamedSegment`] | `/dev/shm/memwire.<uid>.<namespace>.<name>` | name | cannot be (tmpfs files opened by name take no seals) |
//! | [`FileSegment`] | any path | path | no |
//!
//! All three are mapped the same way, through [`Segment::map`], into a [`Mapping`].
//!
//! # Read-only, enforced by the kernel
//! A memfd owner that wants to hand out read-only access maps the segment writable first, then
//! calls [`MemfdSegment::seal_future_write`] and hands out that fd. From then on the kernel
//! refuses every new writable mapping and every `write(2)` on the file, through any fd, also one
//! reopened read-write through `/proc/self/fd/N`. An `O_RDONLY` fd alone is not enough: its holder
//! can reopen it read-write through `/proc`, so it protects only between users.

mod file;
mod memfd;

pub use file::{FileSegment, NamedSegment};
pub use memfd::MemfdSegment;

use std::os::fd::AsFd;

use crate::error::Result;
use crate::mapping::{Access, Mapping};

/// A file whose bytes can be mapped shared.
pub trait Segment: AsFd {
    /// Size of the segment in bytes, as it was when the segment was created or opened.
    fn len(&self) -> usize;

    /// Whether the segment holds no bytes (never true for a segment memwire created).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Maps the whole segment.
    fn map(&self, access: Access) -> Result<Mapping> {
        Mapping::map(self.as_fd(), 0, self.len(), access)
    }
}

/// Refuses sizes memwire never maps: zero, and above `isize::MAX` (Rust's object size limit).
pub(crate) fn check_len(what: &str, len: u64) -> Result<usize> {
    if len == 0 {
        return Err(crate::Error::InvalidSize {
            what: what.to_owned(),
            size: len,
            reason: "must not be zero",
        });
    }
    match usize::try_from(len) {
        Ok(n) if isize::try_from(n).is_ok() => Ok(n),
        _ => Err(crate::Error::InvalidSize {
            what: what.to_owned(),
            size: len,
            reason: "larger than this machine can map",
        }),
    }
}
