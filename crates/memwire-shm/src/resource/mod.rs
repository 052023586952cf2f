//! Named, shared buffers that no crash can leak.
//!
//! A resource is a file `/dev/shm/memwire.<uid>.<namespace>.<name>`: one page of header (see
//! `header.rs` for the layout), then the payload. Processes of one user share it by name; a file
//! under the name that belongs to another user is refused ([`Error::ForeignOwner`]), never used.
//!
//! # Liveness without counters
//! A reference count in shared memory is wrong the moment a holder is killed. Instead, every
//! holder keeps `flock(LOCK_SH)` on its open file for as long as it holds the resource; the
//! kernel drops that lock when the holder closes the file or dies, however it dies. "Nobody
//! holds it" is then a question the kernel answers: `flock(LOCK_EX | LOCK_NB)` succeeds.
//!
//! # Creating and opening, concurrently
//! - The creator makes the file with `O_CREAT | O_EXCL` (of many racing creators, exactly one
//!   wins), takes `LOCK_EX` before writing anything, writes the header and the initial payload,
//!   sets the initialised flag last, then downgrades to `LOCK_SH`.
//! - An opener reads a copy of the header. While it is not initialised, the opener waits (with a
//!   bounded timeout, [`ResourceOptions::init_timeout`]). Once it is, the opener takes `LOCK_SH`.
//! - A creator that died before initialising leaves an uninitialised file that nobody locks;
//!   the next creator or opener removes it (creators then create afresh).
//! - After taking its lock, every process checks that the name still points at the inode it
//!   locked, and starts over if not: a concurrent `gc` or a last holder may have removed it.
//!
//! # Removal
//! The creator chooses whether the last holder to leave removes the name
//! ([`ResourceOptions::remove_when_unused`]); otherwise [`gc`] removes resources nobody holds.
//! A resource past its TTL can no longer be opened, and `gc` removes it once nobody holds it.
//! Nothing ever removes a resource that a live process holds.

mod file;
mod gc;
mod header;
mod holders;
mod options;

pub use gc::{GcReport, ResourceInfo, ResourceState, Scope, Skipped, gc, list};
pub use options::{MAX_RESOURCE_LEN, ResourceOptions};

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use rustix::fs::FlockOperation;

use self::header::{Header, now_ns};
use crate::error::{Error, Result};
use crate::mapping::{Access, Mapping};
use crate::name::{Name, Namespace};
use crate::process::ProcessId;

/// A named shared buffer, held by this process until dropped.
///
/// ```
/// # use memwire_shm::{Namespace, Resource};
/// # let ns = Namespace::new(format!("doctest-{}", std::process::id()))?;
/// let frames = Resource::options()
///     .namespace(ns.clone())
///     .remove_when_unused(true)
///     .create("frames", 4096)?;
/// frames.put(b"hello")?;
///
/// let other = Resource::options().namespace(ns).open("frames")?;
/// assert_eq!(other.get()?, b"hello");
/// # Ok::<(), memwire_shm::Error>(())
/// ```
#[derive(Debug)]
pub struct Resource {
    pub(super) namespace: Namespace,
    pub(super) name: Name,
    pub(super) path: PathBuf,
    /// Holds our `LOCK_SH` while open; closing it releases the lock.
    pub(super) fd: OwnedFd,
    /// The header page.
    pub(super) header_map: Mapping,
    /// The payload, `header.payload_len` bytes.
    pub(super) payload: Mapping,
    /// The immutable header fields, as decoded when we opened or created the resource.
    pub(super) header: Header,
    pub(super) slot: Option<usize>,
    pub(super) me: ProcessId,
    pub(super) created: bool,
}

impl Resource {
    /// Options for creating or opening a resource.
    pub fn options() -> ResourceOptions {
        ResourceOptions::default()
    }

    /// Creates `name` in the namespace from `MEMWIRE_NAMESPACE`, with `len` payload bytes and
    /// an optional time to live. The name stays until `gc` removes it.
    pub fn create(name: &str, len: u64, ttl: Option<Duration>) -> Result<Self> {
        Self::options().ttl(ttl).create(name, len)
    }

    /// Opens (acquires) an existing resource in the namespace from `MEMWIRE_NAMESPACE`.
    pub fn open(name: &str) -> Result<Self> {
        Self::options().open(name)
    }

    /// Removes `name` from the namespace from `MEMWIRE_NAMESPACE` at once, held or not. Its
    /// holders keep their memory; new opens fail with [`Error::NotFound`]. See
    /// [`ResourceOptions::remove`] to choose the namespace.
    pub fn remove(name: &str) -> Result<()> {
        Self::options().remove(name)
    }

    pub(super) fn adopt(
        namespace: &Namespace,
        name: &Name,
        path: &Path,
        fd: OwnedFd,
        header: Header,
    ) -> Result<Self> {
        if header.ttl_ns > 0 && now_ns().saturating_sub(header.created_at_ns) > header.ttl_ns {
            return Err(Error::Expired {
                name: name.to_string(),
                ttl: Duration::from_nanos(header.ttl_ns),
            });
        }
        let head = Mapping::map(fd.as_fd(), 0, header::PAYLOAD_OFFSET, Access::ReadWrite)?;
        // `decode` checked that the payload fits the file, and the file cannot shrink under a
        // mapping without its owner truncating it (which memwire never does to a held file).
        let len = usize::try_from(header.payload_len).map_err(|_| Error::InvalidSize {
            what: name.to_string(),
            size: header.payload_len,
            reason: "larger than this machine can map",
        })?;
        let payload = Mapping::map(
            fd.as_fd(),
            header::PAYLOAD_OFFSET as u64,
            len,
            Access::ReadWrite,
        )?;
        let me = ProcessId::current()?;
        let slot = holders::claim(&head, me, name.as_str())?;
        Ok(Self {
            namespace: namespace.clone(),
            name: name.clone(),
            path: path.to_owned(),
            fd,
            header_map: head,
            payload,
            header,
            slot: Some(slot),
            me,
            created: false,
        })
    }

    /// The resource's name.
    #[must_use]
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The namespace it lives in.
    #[must_use]
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// Its file under `/dev/shm`.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Payload length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.payload.len()
    }

    /// Always false: a resource holds at least one byte.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.payload.is_empty()
    }

    /// Whether this process created the resource (rather than opened it).
    #[must_use]
    pub fn created(&self) -> bool {
        self.created
    }

    /// Its time to live, if it has one.
    #[must_use]
    pub fn ttl(&self) -> Option<Duration> {
        (self.header.ttl_ns > 0).then(|| Duration::from_nanos(self.header.ttl_ns))
    }

    /// The payload, as a bounds-checked view: atomics, copies in and out at offsets.
    #[must_use]
    pub fn payload(&self) -> &Mapping {
        &self.payload
    }

    /// Replaces the contents: copies `data` to the start of the payload and records its
    /// length as the written length.
    ///
    /// `put` and [`Resource::get`] take no lock: a `get` that runs during a `put` in another
    /// process may see a mix of old and new bytes. Processes that write while others read
    /// agree on their own protocol (a sequence word in the payload, or a memwire transport).
    pub fn put(&self, data: &[u8]) -> Result<()> {
        if data.len() > self.payload.len() {
            return Err(Error::InvalidSize {
                what: format!(
                    "contents of resource {:?} ({} bytes)",
                    self.name,
                    self.payload.len()
                ),
                size: data.len() as u64,
                reason: "longer than the resource",
            });
        }
        self.payload.write(0, data)?;
        // Release: a reader whose Acquire load sees this length sees the bytes written above.
        self.header_map.store_u64(
            header::WRITTEN_LEN_OFFSET,
            data.len() as u64,
            Ordering::Release,
        )
    }

    /// The written length: what the last [`Resource::put`] stored (clamped to the payload
    /// length, since any process of the user can write the header).
    pub fn written_len(&self) -> Result<usize> {
        let n = self
            .header_map
            .load_u64(header::WRITTEN_LEN_OFFSET, Ordering::Acquire)?;
        Ok(usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(self.payload.len()))
    }

    /// A copy of the contents: the first [`Resource::written_len`] bytes.
    pub fn get(&self) -> Result<Vec<u8>> {
        self.payload.read_vec(0, self.written_len()?)
    }

    /// Pids of the live processes that hold this resource now (from the holder table).
    pub fn holders(&self) -> Result<Vec<u32>> {
        let mut words = [0u64; header::HOLDER_SLOTS];
        for (i, w) in words.iter_mut().enumerate() {
            *w = self
                .header_map
                .load_u64(header::HOLDERS_OFFSET + 8 * i, Ordering::Acquire)?;
        }
        Ok(holders::live_pids(&words))
    }

    /// Releases the resource now, reporting what `drop` would ignore.
    pub fn release(mut self) -> Result<()> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> Result<()> {
        // A child forked without exec shares our open file, and with it our lock: its copy of
        // this value must leave both, and our holder slot, alone. It only closes its fd.
        if std::process::id() != self.me.pid {
            self.slot = None;
            return Ok(());
        }
        if let Some(slot) = self.slot.take() {
            holders::release(&self.header_map, slot, self.me)?;
            // Drop our shared lock first, then ask for an exclusive one: of several holders
            // leaving at once, each unlocks before it asks, so the last to ask succeeds
            // (converting in place could leave two leavers each blocking the other).
            if self.header.remove_when_unused()
                && file::flock(self.fd.as_fd(), FlockOperation::Unlock, &self.path).is_ok()
                && file::try_flock(
                    self.fd.as_fd(),
                    FlockOperation::NonBlockingLockExclusive,
                    &self.path,
                )?
                && file::still_linked(self.fd.as_fd(), &self.path)?
            {
                // Nobody else holds it: we were the last. Openers that are waiting for our
                // exclusive lock find the name gone once we close the file.
                file::unlink(&self.path)?;
            }
        }
        Ok(())
    }
}

impl Drop for Resource {
    fn drop(&mut self) {
        let _ = self.release_inner();
    }
}
