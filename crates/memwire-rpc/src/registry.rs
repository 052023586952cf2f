//! The service registry: which named services run on this machine, and where to reach them.
//!
//! A directory, `<runtime dir>/services/` (mode 0700), holds one file per service:
//!
//! ```text
//! services/
//!   .lock            flock(2)ed while an entry is written or removed
//!   math.json        {"name":"math","pid":4242,"start_time":987654,
//!                     "socket":"/run/user/1000/memwire/transport/math.sock",
//!                     "started_at_unix_ms":1767225600000,"version":1}
//!   .math.4242.tmp   an entry being written (renamed over math.json when complete)
//! ```
//!
//! - **Identity.** An entry names its process by pid *and* start time (see
//!   [`ProcessId`]): an entry whose pid is gone, or now belongs to a process started at another
//!   time, is *stale*. Readers ignore stale entries and remove them.
//! - **Atomic writes.** An entry is written to a temporary file in the same directory and
//!   renamed over `<name>.json`, so a reader sees either the old entry or the new one, never half
//!   of one. Readers take no lock.
//! - **One live holder per name.** [`Registry::register`] refuses a name held by a live process
//!   ([`Error::ServiceExists`]) and replaces a stale entry. Writers (register, the removal of a
//!   stale entry, a [`Registration`] dropped) hold an exclusive `flock` on `.lock` while they
//!   check and change an entry, so two processes racing for one name cannot both win, and a
//!   reader removing a stale entry never removes a fresh one written in between. The kernel
//!   drops the lock of a process that dies.
//! - **Cleanup.** A [`Registration`] removes its entry when dropped, if the entry still names
//!   its process. A process killed before that leaves a stale entry, which the next reader
//!   removes.
//! - **Hand-edited files.** The directory belongs to the user; memwire never trusts an entry's
//!   content. A file that is not a regular file, is larger than 64 KiB, does not parse, has
//!   another version or names another service is skipped with a `tracing` warning and left in
//!   place (a register of that name replaces it).
//!
//! The free functions [`register`], [`lookup`] and [`list`] use the registry of the runtime
//! directory (`MEMWIRE_RUNTIME_DIR` overrides it); [`Registry::at`] opens one anywhere.
//!
//! ```
//! # let tmp = tempfile::tempdir()?;
//! use memwire_rpc::registry::Registry;
//!
//! let registry = Registry::at(tmp.path().join("services"))?;
//! let registration = registry.register("math", "/run/memwire/math.sock".as_ref())?;
//! let entry = registry.lookup("math")?;
//! assert_eq!(entry.pid, std::process::id());
//! drop(registration);
//! assert!(registry.lookup("math").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use memwire_shm::{Name, ProcessId};
use rustix::fs::{FlockOperation, Mode, OFlags};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The registry's directory under the runtime directory.
pub const SERVICES_DIR: &str = "services";

/// The entry format this memwire writes and reads.
pub const ENTRY_VERSION: u32 = 1;

/// Largest entry file read, in bytes: a real entry is a few hundred bytes, and a reader must not
/// be made to read a huge hand-made file.
const MAX_ENTRY_LEN: u64 = 64 * 1024;

/// The lock file writers hold while they change entries.
const LOCK_FILE: &str = ".lock";

/// One running service, as its registry entry says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    /// The service name (also the entry's file name, without `.json`).
    pub name: String,
    /// The serving process.
    pub pid: u32,
    /// Its start time in clock ticks after boot, as [`ProcessId::start_time`].
    pub start_time: u64,
    /// Its bootstrap socket.
    pub socket: PathBuf,
    /// When it registered, in milliseconds since the Unix epoch.
    pub started_at_unix_ms: u64,
    /// The entry format, [`ENTRY_VERSION`].
    pub version: u32,
}

impl ServiceEntry {
    /// The serving process.
    #[must_use]
    pub fn process(&self) -> ProcessId {
        ProcessId {
            pid: self.pid,
            start_time: self.start_time,
        }
    }

    /// Whether the serving process still runs (same pid, same start time).
    #[must_use]
    pub fn is_alive(&self) -> bool {
        self.process().is_alive()
    }

    /// When the service registered.
    #[must_use]
    pub fn started_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.started_at_unix_ms)
    }

    /// Time since the service registered (zero if the clock went backwards).
    #[must_use]
    pub fn uptime(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.started_at())
            .unwrap_or(Duration::ZERO)
    }
}

/// A service registry: one directory of entries.
#[derive(Clone, Debug)]
pub struct Registry {
    dir: PathBuf,
}

/// A registered service: its entry is removed when this is dropped, if it still names this
/// process.
#[derive(Debug)]
#[must_use = "the service is unregistered when the Registration is dropped"]
pub struct Registration {
    registry: Registry,
    path: PathBuf,
    entry: ServiceEntry,
}

/// What reading one entry file found.
enum Found {
    Missing,
    Entry(ServiceEntry),
    /// Unusable; the warning is logged.
    Malformed,
}

/// Registers `name`, served at `socket`, in the runtime directory's registry.
pub fn register(name: &str, socket: &Path) -> Result<Registration> {
    Registry::open()?.register(name, socket)
}

/// The live service `name` in the runtime directory's registry.
pub fn lookup(name: &str) -> Result<ServiceEntry> {
    Registry::open()?.lookup(name)
}

/// Every live service in the runtime directory's registry, sorted by name.
pub fn list() -> Result<Vec<ServiceEntry>> {
    Registry::open()?.list()
}

fn io_error(op: &str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        op: format!("{op} {}", path.display()),
        source,
    }
}

impl Registry {
    /// The registry of the runtime directory (`MEMWIRE_RUNTIME_DIR` overrides it), created if
    /// missing.
    pub fn open() -> Result<Self> {
        Self::at(memwire_shm::name::runtime_dir()?.join(SERVICES_DIR))
    }

    /// The registry in `dir`, created (mode 0700) if missing.
    pub fn at(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| io_error("create the service registry", &dir, e))?;
        Ok(Self { dir })
    }

    /// The registry's directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry_path(&self, name: &Name) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// Registers `name` for this process, served at `socket`.
    ///
    /// Fails with [`Error::ServiceExists`] if a live process (this one included) holds the
    /// name; a stale or malformed entry is replaced.
    pub fn register(&self, name: &str, socket: &Path) -> Result<Registration> {
        let name = Name::new(name)?;
        let me = ProcessId::current()?;
        let path = self.entry_path(&name);
        let _lock = self.lock()?;
        match self.read(&path, &name)? {
            Found::Entry(held) if held.is_alive() => {
                return Err(Error::ServiceExists {
                    name: name.to_string(),
                    pid: held.pid,
                });
            }
            Found::Entry(stale) => tracing::debug!(
                service = %name,
                pid = stale.pid,
                "replacing the registry entry of a dead process"
            ),
            Found::Malformed => tracing::warn!(
                service = %name,
                path = %path.display(),
                "replacing a malformed registry entry"
            ),
            Found::Missing => {}
        }
        let entry = ServiceEntry {
            name: name.to_string(),
            pid: me.pid,
            start_time: me.start_time,
            socket: socket.to_owned(),
            started_at_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            version: ENTRY_VERSION,
        };
        let json = serde_json::to_vec_pretty(&entry).map_err(|e| {
            // `PathBuf` serialises only as UTF-8, and nothing else in an entry can fail.
            io_error(
                "encode the registry entry of",
                &path,
                io::Error::new(io::ErrorKind::InvalidInput, e),
            )
        })?;
        let tmp = self.dir.join(format!(".{name}.{}.tmp", me.pid));
        let written = write_new(&tmp, &json)
            .map_err(|e| io_error("write", &tmp, e))
            .and_then(|()| std::fs::rename(&tmp, &path).map_err(|e| io_error("rename", &tmp, e)));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(Registration {
            registry: self.clone(),
            path,
            entry,
        })
    }

    /// The live service `name`; [`Error::NoService`] if there is none. A stale entry is
    /// removed.
    pub fn lookup(&self, name: &str) -> Result<ServiceEntry> {
        let name = Name::new(name)?;
        let path = self.entry_path(&name);
        match self.read(&path, &name)? {
            Found::Entry(entry) if entry.is_alive() => Ok(entry),
            Found::Entry(stale) => {
                self.remove_stale(&path, &name, &stale)?;
                Err(Error::NoService {
                    name: name.to_string(),
                })
            }
            Found::Missing | Found::Malformed => Err(Error::NoService {
                name: name.to_string(),
            }),
        }
    }

    /// Every live service, sorted by name. Stale entries are removed, malformed ones skipped.
    pub fn list(&self) -> Result<Vec<ServiceEntry>> {
        let dir = match std::fs::read_dir(&self.dir) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("read the service registry", &self.dir, e)),
        };
        let mut live = Vec::new();
        for file in dir {
            let file = file.map_err(|e| io_error("read the service registry", &self.dir, e))?;
            let file_name = file.file_name();
            let Some(stem) = file_name.to_str().and_then(|f| f.strip_suffix(".json")) else {
                continue;
            };
            if stem.starts_with('.') {
                continue;
            }
            let Ok(name) = Name::new(stem) else {
                tracing::warn!(
                    path = %file.path().display(),
                    "skipping a registry entry whose file name is not a service name"
                );
                continue;
            };
            let path = file.path();
            match self.read(&path, &name)? {
                Found::Entry(entry) if entry.is_alive() => live.push(entry),
                Found::Entry(stale) => self.remove_stale(&path, &name, &stale)?,
                Found::Missing | Found::Malformed => {}
            }
        }
        live.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(live)
    }

    /// Takes the writers' lock; it is released when the file is closed.
    fn lock(&self) -> Result<File> {
        let path = self.dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
            .map_err(|e| io_error("open", &path, e))?;
        rustix::fs::flock(&file, FlockOperation::LockExclusive)
            .map_err(|e| io_error("lock", &path, e.into()))?;
        Ok(file)
    }

    /// Removes the entry at `path` if it still is `stale` and its process is still dead.
    fn remove_stale(&self, path: &Path, name: &Name, stale: &ServiceEntry) -> Result<()> {
        let _lock = self.lock()?;
        match self.read(path, name)? {
            Found::Entry(now) if now.process() == stale.process() && !now.is_alive() => {
                tracing::debug!(service = %name, pid = now.pid, "removing a stale registry entry");
                remove(path)
            }
            // Replaced in between, or gone already.
            _ => Ok(()),
        }
    }

    /// Reads the entry of `name` at `path`. Errors only when the file exists and cannot be
    /// read; a file that does not hold a valid entry is `Malformed` (and a warning is logged).
    fn read(&self, path: &Path, name: &Name) -> Result<Found> {
        let warn = |reason: &dyn std::fmt::Display| {
            tracing::warn!(path = %path.display(), %reason, "skipping a malformed registry entry");
            Ok(Found::Malformed)
        };
        // O_NONBLOCK: opening a FIFO someone put here must not hang the reader; O_NOFOLLOW: an
        // entry is a regular file of its own, not a link to somewhere else.
        let fd = match rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(Found::Missing),
            Err(rustix::io::Errno::LOOP) => return warn(&"a symbolic link"),
            Err(e) => return Err(io_error("open", path, e.into())),
        };
        let mut file = File::from(fd);
        let meta = file.metadata().map_err(|e| io_error("stat", path, e))?;
        if !meta.is_file() {
            return warn(&"not a regular file");
        }
        let mut bytes = Vec::new();
        (&mut file)
            .take(MAX_ENTRY_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io_error("read", path, e))?;
        if bytes.len() as u64 > MAX_ENTRY_LEN {
            return warn(&format_args!("larger than {MAX_ENTRY_LEN} bytes"));
        }
        let entry: ServiceEntry = match serde_json::from_slice(&bytes) {
            Ok(entry) => entry,
            Err(e) => return warn(&e),
        };
        if entry.version != ENTRY_VERSION {
            return warn(&format_args!(
                "version {}, this memwire reads version {ENTRY_VERSION}",
                entry.version
            ));
        }
        if entry.name != name.as_str() {
            return warn(&format_args!("names service {:?}", entry.name));
        }
        Ok(Found::Entry(entry))
    }
}

/// Creates (or truncates) `path`, mode 0600, and writes `bytes` to it.
fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .custom_flags(OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    file.write_all(bytes)
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("remove", path, e)),
        _ => Ok(()),
    }
}

impl Registration {
    /// The entry as written.
    #[must_use]
    pub fn entry(&self) -> &ServiceEntry {
        &self.entry
    }

    /// The entry's file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the entry if it still names this process.
    fn unregister(&self) -> Result<()> {
        let _lock = self.registry.lock()?;
        // The name was validated when the entry was written.
        let name = Name::new(&self.entry.name)?;
        match self.registry.read(&self.path, &name)? {
            Found::Entry(now) if now.process() == self.entry.process() => remove(&self.path),
            _ => Ok(()),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Err(error) = self.unregister() {
            tracing::warn!(service = %self.entry.name, %error, "could not unregister the service");
        }
    }
}

#[cfg(test)]
mod tests;
