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

pub use gc::{GcReport, ResourceInfo, ResourceState, Scope, Skipped, gc, list};

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use rustix::fs::FlockOperation;

use self::header::{Header, Peek};
use crate::error::{Error, Result};
use crate::mapping::{Access, Mapping};
use crate::name::{Name, Namespace};
use crate::process::ProcessId;

/// Largest payload: 1 TiB. Untouched pages of a tmpfs file cost nothing, but a typo should not
/// reserve the machine's address space.
pub const MAX_RESOURCE_LEN: u64 = 1 << 40;

/// How to create or open a resource. Start from [`Resource::options`].
#[derive(Clone, Debug)]
#[must_use]
pub struct ResourceOptions {
    namespace: Option<Namespace>,
    ttl: Option<Duration>,
    remove_when_unused: bool,
    init_timeout: Duration,
    initial: Vec<u8>,
}

impl Default for ResourceOptions {
    fn default() -> Self {
        Self {
            namespace: None,
            ttl: None,
            remove_when_unused: false,
            init_timeout: Duration::from_secs(5),
            initial: Vec::new(),
        }
    }
}

impl ResourceOptions {
    /// Uses `namespace` instead of the one from `MEMWIRE_NAMESPACE`.
    pub fn namespace(mut self, namespace: Namespace) -> Self {
        self.namespace = Some(namespace);
        self
    }

    /// Time to live, counted from creation (creators only).
    pub fn ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl;
        self
    }

    /// Whether the last holder to leave removes the name (creators only; default false).
    pub fn remove_when_unused(mut self, remove: bool) -> Self {
        self.remove_when_unused = remove;
        self
    }

    /// How long an opener waits for a creator to finish initialising (default 5 s).
    pub fn init_timeout(mut self, timeout: Duration) -> Self {
        self.init_timeout = timeout;
        self
    }

    /// Payload bytes the creator writes before any other process can open the resource, and
    /// records as written (creators only).
    pub fn initial_contents(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.initial = bytes.into();
        self
    }

    fn resolve(&self, name: &str) -> Result<(Namespace, Name, PathBuf)> {
        let name = Name::new(name)?;
        let namespace = match &self.namespace {
            Some(ns) => ns.clone(),
            None => Namespace::from_env()?,
        };
        let path = namespace.shm_path(&name);
        Ok((namespace, name, path))
    }

    /// Creates `name` with `len` payload bytes; [`Error::AlreadyExists`] if it exists.
    pub fn create(&self, name: &str, len: u64) -> Result<Resource> {
        let (namespace, name, path) = self.resolve(name)?;
        check_len(&name, len, self.initial.len())?;
        loop {
            match try_create(self, &namespace, &name, &path, len)? {
                Created::Yes(resource) => return Ok(*resource),
                Created::Retry => continue,
                Created::Exists => {
                    return Err(Error::AlreadyExists {
                        name: name.to_string(),
                        path,
                    });
                }
            }
        }
    }

    /// Opens an existing resource; [`Error::NotFound`] if there is none.
    pub fn open(&self, name: &str) -> Result<Resource> {
        let (namespace, name, path) = self.resolve(name)?;
        try_open(self, &namespace, &name, &path)?.ok_or(Error::NotFound {
            name: name.to_string(),
            path,
        })
    }

    /// Removes `name` at once, held or not. Its holders keep their memory; new opens fail with
    /// [`Error::NotFound`].
    pub fn remove(&self, name: &str) -> Result<()> {
        let (_, name, path) = self.resolve(name)?;
        match file::open_rw(&path)? {
            None => Err(Error::NotFound {
                name: name.to_string(),
                path,
            }),
            Some(fd) => {
                // Refuse to remove a file that is not memwire's, or not this user's (`peek` checks).
                file::peek(fd.as_fd(), &path)?;
                if file::still_linked(fd.as_fd(), &path)? {
                    file::unlink(&path)?;
                }
                Ok(())
            }
        }
    }

    /// Opens `name`, creating it with `len` payload bytes if it does not exist. Of many
    /// processes racing here, exactly one creates; [`Resource::created`] tells which.
    ///
    /// `len` and the creator's options (TTL, removal, initial contents) apply only when this
    /// call creates: an existing resource keeps its own, so check [`Resource::len`].
    pub fn open_or_create(&self, name: &str, len: u64) -> Result<Resource> {
        let (namespace, name, path) = self.resolve(name)?;
        check_len(&name, len, self.initial.len())?;
        loop {
            if let Some(resource) = try_open(self, &namespace, &name, &path)? {
                return Ok(resource);
            }
            if let Created::Yes(resource) = try_create(self, &namespace, &name, &path, len)? {
                return Ok(*resource);
            }
        }
    }
}

fn check_len(name: &Name, len: u64, initial: usize) -> Result<()> {
    let reason = if len == 0 {
        "a resource needs at least one byte"
    } else if len > MAX_RESOURCE_LEN {
        "larger than the 1 TiB maximum"
    } else if initial as u64 > len {
        "initial contents are longer than the resource"
    } else {
        return Ok(());
    };
    Err(Error::InvalidSize {
        what: format!("resource {name:?}"),
        size: len,
        reason,
    })
}

enum Created {
    Yes(Box<Resource>),
    Exists,
    Retry,
}

/// Nanoseconds of `CLOCK_BOOTTIME`: shared by every process of the machine, never stepped by
/// clock changes, and counting suspended time, so ages and TTLs neither jump nor stall.
/// `/dev/shm` does not survive a reboot, so boot-relative times are all a resource needs.
fn now_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    u64::try_from(ts.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0))
}

fn try_create(
    opts: &ResourceOptions,
    namespace: &Namespace,
    name: &Name,
    path: &Path,
    len: u64,
) -> Result<Created> {
    let Some(fd) = file::create_excl(path)? else {
        return taken(opts, name, path);
    };
    let result = initialise(opts, &fd, path, len);
    match result {
        Ok(maps) => {
            // Downgrade to a holder's shared lock. The kernel does not promise the downgrade
            // is atomic; `still_linked` below catches a gc that slipped into the gap.
            file::flock(fd.as_fd(), FlockOperation::LockShared, path)?;
            if !file::still_linked(fd.as_fd(), path)? {
                return Ok(Created::Retry);
            }
            let me = ProcessId::current()?;
            Ok(Created::Yes(Box::new(Resource {
                namespace: namespace.clone(),
                name: name.clone(),
                path: path.to_owned(),
                header_map: maps.0,
                payload: maps.1,
                header: maps.2,
                slot: Some(0),
                me,
                created: true,
                fd,
            })))
        }
        Err(e) => {
            // Never leave a half-made file behind under our name, and never remove one that
            // is no longer ours (taken over while we were stalled, then recreated).
            if file::still_linked(fd.as_fd(), path).unwrap_or(false) {
                let _ = file::unlink(path);
            }
            Err(e)
        }
    }
}

/// The name is taken: by a resource ([`Created::Exists`]), or by the leftover of a creator
/// that died, which is removed ([`Created::Retry`]). A live creator is given time to finish.
fn taken(opts: &ResourceOptions, name: &Name, path: &Path) -> Result<Created> {
    let mut backoff = file::Backoff::new(opts.init_timeout);
    loop {
        let Some(fd) = file::open_rw(path)? else {
            return Ok(Created::Retry);
        };
        match file::peek(fd.as_fd(), path)?.0 {
            Peek::Ready(_) => return Ok(Created::Exists),
            Peek::Uninitialised if file::remove_if_dead_creator(&fd, path)? => {
                return Ok(Created::Retry);
            }
            Peek::Uninitialised => backoff.pause(name)?,
        }
    }
}

/// Writes a fresh resource file under `LOCK_EX`: size, header, initial payload, and the
/// initialised flag last.
fn initialise(
    opts: &ResourceOptions,
    fd: &OwnedFd,
    path: &Path,
    len: u64,
) -> Result<(Mapping, Mapping, Header)> {
    use header::*;
    file::flock(fd.as_fd(), FlockOperation::LockExclusive, path)?;
    rustix::fs::ftruncate(fd, PAYLOAD_OFFSET as u64 + len)
        .map_err(|e| Error::path("ftruncate", path, e))?;
    let head = Mapping::map(fd.as_fd(), 0, PAYLOAD_OFFSET, Access::ReadWrite)?;
    let payload_len = usize::try_from(len).map_err(|_| Error::InvalidSize {
        what: path.display().to_string(),
        size: len,
        reason: "larger than this machine can map",
    })?;
    let payload = Mapping::map(
        fd.as_fd(),
        PAYLOAD_OFFSET as u64,
        payload_len,
        Access::ReadWrite,
    )?;
    let me = ProcessId::current()?;
    let ttl_ns = opts.ttl.map_or(0, |t| {
        u64::try_from(t.as_nanos()).unwrap_or(u64::MAX).max(1)
    });
    let header = Header {
        flags: if opts.remove_when_unused {
            FLAG_REMOVE_WHEN_UNUSED
        } else {
            0
        },
        payload_len: len,
        written_len: opts.initial.len() as u64,
        created_at_ns: now_ns(),
        ttl_ns,
        creator_pid: me.pid,
        creator_start: me.start_time,
        holders: Vec::new(),
    };
    payload.write(0, &opts.initial)?;
    head.store_u64(MAGIC_OFFSET, MAGIC, Ordering::Relaxed)?;
    head.store_u32(VERSION_OFFSET, LAYOUT_VERSION, Ordering::Relaxed)?;
    head.store_u32(FLAGS_OFFSET, header.flags, Ordering::Relaxed)?;
    head.store_u32(CAPACITY_OFFSET, HOLDER_SLOTS as u32, Ordering::Relaxed)?;
    head.store_u64(PAYLOAD_LEN_OFFSET, len, Ordering::Relaxed)?;
    head.store_u64(WRITTEN_LEN_OFFSET, header.written_len, Ordering::Relaxed)?;
    head.store_u64(CREATED_AT_OFFSET, header.created_at_ns, Ordering::Relaxed)?;
    head.store_u64(TTL_OFFSET, ttl_ns, Ordering::Relaxed)?;
    head.store_u32(CREATOR_PID_OFFSET, me.pid, Ordering::Relaxed)?;
    head.store_u64(CREATOR_START_OFFSET, me.start_time, Ordering::Relaxed)?;
    holders::claim_first(&head, me)?;
    // Release: publishes every field above (and the initial payload) to an opener whose
    // header copy sees the flag set.
    head.store_u32(INITIALISED_OFFSET, 1, Ordering::Release)?;
    Ok((head, payload, header))
}

/// Opens an existing resource: `Ok(None)` if there is none (or it was just removed).
fn try_open(
    opts: &ResourceOptions,
    namespace: &Namespace,
    name: &Name,
    path: &Path,
) -> Result<Option<Resource>> {
    let mut backoff = file::Backoff::new(opts.init_timeout);
    loop {
        let Some(fd) = file::open_rw(path)? else {
            return Ok(None);
        };
        let waiting = match file::peek(fd.as_fd(), path)?.0 {
            Peek::Uninitialised => {
                if file::remove_if_dead_creator(&fd, path)? {
                    return Ok(None);
                }
                true
            }
            Peek::Ready(_) => {
                // A failed try means an exclusive lock: a gc or a last holder is deciding
                // whether to remove the file. Either way it is brief.
                !file::try_flock(fd.as_fd(), FlockOperation::NonBlockingLockShared, path)?
            }
        };
        if !waiting {
            if !file::still_linked(fd.as_fd(), path)? {
                continue; // Removed while we locked it: look again.
            }
            // Decode again under the lock: this copy is the one we act on.
            let Peek::Ready(header) = file::peek(fd.as_fd(), path)?.0 else {
                continue;
            };
            return Resource::adopt(namespace, name, path, fd, header).map(Some);
        }
        backoff.pause(name)?;
    }
}

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
    namespace: Namespace,
    name: Name,
    path: PathBuf,
    /// Holds our `LOCK_SH` while open; closing it releases the lock.
    fd: OwnedFd,
    /// The header page.
    header_map: Mapping,
    /// The payload, `header.payload_len` bytes.
    payload: Mapping,
    /// The immutable header fields, as decoded when we opened or created the resource.
    header: Header,
    slot: Option<usize>,
    me: ProcessId,
    created: bool,
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

    fn adopt(
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
