//! Creating and opening: the options, and the protocol that makes concurrent creators,
//! openers, dead creators and `gc` safe with each other (see the module doc of `resource`).

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use rustix::fs::FlockOperation;

use super::header::{self, Header, Peek};
use super::{Resource, file, holders};
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
