//! Listing resources and collecting the ones nobody holds.
//!
//! `list` only looks: it reads headers and asks the kernel (`/proc/locks`) which files are
//! locked, without taking a lock itself, so it never disturbs an open or a last holder's
//! removal. `gc` takes `flock(LOCK_EX | LOCK_NB)` on each candidate, which succeeds only when no
//! live process holds it, checks the name still points at the inode it locked, and only then
//! unlinks it. It never touches a file that does not start with memwire's magic.

use std::collections::HashSet;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::FlockOperation;

use super::file;
use super::header::now_ns;
use super::header::{Header, Peek};
use super::holders;
use crate::error::{Error, Result};
use crate::name::{Name, Namespace, SHM_DIR, parse_shm_file_name};

/// Which namespaces to look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One namespace.
    Namespace(Namespace),
    /// Every namespace of this user.
    All,
}

impl Scope {
    /// The namespace from `MEMWIRE_NAMESPACE`.
    pub fn from_env() -> Result<Self> {
        Ok(Self::Namespace(Namespace::from_env()?))
    }

    fn includes(&self, namespace: &Namespace) -> bool {
        match self {
            Self::All => true,
            Self::Namespace(ns) => ns == namespace,
        }
    }
}

/// Whether anybody holds a resource, and whether it outlived its TTL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResourceState {
    /// A live process holds it and its TTL (if any) has not run out.
    Live,
    /// Nobody holds it: `gc` may remove it.
    Orphan,
    /// Past its TTL: it can no longer be opened; `gc` removes it once nobody holds it.
    Expired,
}

impl ResourceState {
    /// `live`, `orphan` or `expired`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Orphan => "orphan",
            Self::Expired => "expired",
        }
    }
}

/// What `list` and `gc` report of one resource.
#[derive(Clone, Debug)]
pub struct ResourceInfo {
    /// Its namespace.
    pub namespace: Namespace,
    /// Its name.
    pub name: Name,
    /// Its file.
    pub path: PathBuf,
    /// Payload length in bytes (0 for the leftover of a creator that died).
    pub size: u64,
    /// Bytes last written with `put`.
    pub written: u64,
    /// Pids of the live processes in its holder table.
    pub holders: Vec<u32>,
    /// Time since creation.
    pub age: Duration,
    /// Time to live, if any.
    pub ttl: Option<Duration>,
    /// Live, orphan or expired.
    pub state: ResourceState,
}

/// A file `gc` left alone, and why.
#[derive(Debug)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why it was not considered (not memwire's, unreadable, ...).
    pub error: Error,
}

/// What `gc` did.
#[derive(Debug, Default)]
pub struct GcReport {
    /// Resources removed (or, in a dry run, that would have been).
    pub removed: Vec<ResourceInfo>,
    /// Resources kept because a live process holds them or they are younger than `max_age`.
    pub kept: usize,
    /// Files under memwire's prefix that are not (valid) memwire resources: never touched.
    pub skipped: Vec<Skipped>,
}

/// This user's memwire files in `scope`, sorted by path.
fn candidates(scope: &Scope) -> Result<Vec<(Namespace, Name, PathBuf)>> {
    let dir = std::fs::read_dir(SHM_DIR).map_err(|e| Error::path("read_dir", SHM_DIR, e))?;
    let mut out: Vec<_> = dir
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let (ns, name) = parse_shm_file_name(&entry.file_name())?;
            scope.includes(&ns).then(|| (ns, name, entry.path()))
        })
        .collect();
    out.sort_by(|a, b| a.2.cmp(&b.2));
    Ok(out)
}

/// `(major, minor, inode)` of every file someone holds an `flock` on, from `/proc/locks`;
/// `None` if that file cannot be read.
fn flocked_inodes() -> Option<HashSet<(u32, u32, u64)>> {
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    let mut set = HashSet::new();
    for line in text.lines() {
        // `N: FLOCK ADVISORY READ pid maj:min:ino 0 EOF`. Only shared (`READ`) locks are
        // holders; an exclusive one is a gc or a last holder deciding, and `N: -> FLOCK ...`
        // lines are waiters.
        let mut fields = line.split_whitespace().skip(1);
        if fields.next() != Some("FLOCK") || fields.nth(1) != Some("READ") {
            continue;
        }
        let Some(id) = fields.find(|f| f.matches(':').count() == 2) else {
            continue;
        };
        let mut parts = id.split(':');
        let (Some(major), Some(minor), Some(ino)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if let (Ok(major), Ok(minor), Ok(ino)) = (
            u32::from_str_radix(major, 16),
            u32::from_str_radix(minor, 16),
            ino.parse(),
        ) {
            set.insert((major, minor, ino));
        }
    }
    Some(set)
}

fn info(
    namespace: Namespace,
    name: Name,
    path: PathBuf,
    header: &Header,
    held: bool,
) -> ResourceInfo {
    let age = Duration::from_nanos(now_ns().saturating_sub(header.created_at_ns));
    let ttl = (header.ttl_ns > 0).then(|| Duration::from_nanos(header.ttl_ns));
    let state = match ttl {
        Some(ttl) if age > ttl => ResourceState::Expired,
        _ if held => ResourceState::Live,
        _ => ResourceState::Orphan,
    };
    ResourceInfo {
        namespace,
        name,
        path,
        size: header.payload_len,
        written: header.written_len,
        holders: if held {
            holders::live_pids(&header.holders)
        } else {
            Vec::new()
        },
        age,
        ttl,
        state,
    }
}

/// Lists the resources in `scope` without disturbing them. Files that are not valid memwire
/// resources, and resources still being created, are left out.
pub fn list(scope: &Scope) -> Result<Vec<ResourceInfo>> {
    let locked = flocked_inodes();
    let mut out = Vec::new();
    for (namespace, name, path) in candidates(scope)? {
        let Ok(Some(fd)) = file::open_rw(&path) else {
            continue;
        };
        let Ok((Peek::Ready(header), stat)) = file::peek(fd.as_fd(), &path) else {
            continue;
        };
        let held = match &locked {
            Some(set) => set.contains(&(
                rustix::fs::major(stat.dev),
                rustix::fs::minor(stat.dev),
                stat.ino,
            )),
            // No /proc/locks: ask the lock itself (and let it go at once).
            None => {
                match file::try_flock(fd.as_fd(), FlockOperation::NonBlockingLockExclusive, &path) {
                    Ok(free) => !free,
                    Err(_) => continue,
                }
            }
        };
        out.push(info(namespace, name, path, &header, held));
    }
    Ok(out)
}

/// Removes the resources in `scope` that no live process holds and that are at least
/// `max_age` old or past their TTL, and the leftovers of creators that died. With `dry_run`,
/// reports what it would remove and removes nothing.
pub fn gc(scope: &Scope, max_age: Duration, dry_run: bool) -> Result<GcReport> {
    let mut report = GcReport::default();
    for (namespace, name, path) in candidates(scope)? {
        match collect_one(&path, max_age, dry_run) {
            Ok(Verdict::Removed(header)) => {
                report
                    .removed
                    .push(info(namespace, name, path, &header, false));
            }
            Ok(Verdict::DeadCreator) => report.removed.push(ResourceInfo {
                namespace,
                name,
                path,
                size: 0,
                written: 0,
                holders: Vec::new(),
                age: Duration::ZERO,
                ttl: None,
                state: ResourceState::Orphan,
            }),
            Ok(Verdict::Kept) => report.kept += 1,
            Ok(Verdict::Gone) => {}
            Err(error) => report.skipped.push(Skipped { path, error }),
        }
    }
    Ok(report)
}

enum Verdict {
    Removed(Header),
    DeadCreator,
    Kept,
    Gone,
}

fn collect_one(path: &Path, max_age: Duration, dry_run: bool) -> Result<Verdict> {
    let Some(fd) = file::open_rw(path)? else {
        return Ok(Verdict::Gone);
    };
    let (peek, _) = file::peek(fd.as_fd(), path)?;
    let header = match peek {
        Peek::Ready(header) => header,
        Peek::Uninitialised if dry_run => return Ok(Verdict::Kept),
        Peek::Uninitialised => {
            return Ok(if file::remove_if_dead_creator(&fd, path)? {
                Verdict::DeadCreator
            } else {
                Verdict::Kept
            });
        }
    };
    // Succeeds only when no live process holds `LOCK_SH`: the kernel dropped the locks of the
    // dead ones. Held until `fd` closes, so no opener can slip in before the unlink.
    if !file::try_flock(fd.as_fd(), FlockOperation::NonBlockingLockExclusive, path)? {
        return Ok(Verdict::Kept);
    }
    let age = Duration::from_nanos(now_ns().saturating_sub(header.created_at_ns));
    let expired = header.ttl_ns > 0 && age > Duration::from_nanos(header.ttl_ns);
    if !(expired || age >= max_age) {
        return Ok(Verdict::Kept);
    }
    if !file::still_linked(fd.as_fd(), path)? {
        return Ok(Verdict::Gone); // Replaced since we opened it: not the file we locked.
    }
    if !dry_run {
        file::unlink(path)?;
    }
    Ok(Verdict::Removed(header))
}
