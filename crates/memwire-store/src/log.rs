//! The store's durable log and its snapshots: every write is appended here (one `write(2)`)
//! before the server acknowledges it, and a snapshot of the whole state now and then lets
//! start-up replay only the records after it. The payloads are opaque bytes.
//!
//! # The directory
//!
//! ```text
//! <dir>/                                  mode 0700, created by `Log::open`
//!   snapshot-00000000000000000340.bin     the state after records 1..=340
//!   log-00000000000000000341.bin          records 341, 342, ... (appends go to the newest file)
//! ```
//!
//! Numbers are lsns (log sequence numbers, from 1, one per record, never reused), written with
//! 20 digits so names sort by number. Other files in the directory are left alone.
//!
//! # Records
//!
//! A log file is a sequence of records, each a 24-byte header and its payload (little-endian):
//!
//! ```text
//!  0       4         8                16            20           24
//!  +-------+---------+----------------+-------------+------------+------------------+
//!  | MWLR  | len u32 |    lsn u64     | payload crc | header crc | payload (len B)  |
//!  +-------+---------+----------------+-------------+------------+------------------+
//!   payload crc = CRC32C(lsn as 8 bytes ‖ payload)
//!   header crc  = CRC32C(bytes 0..20)
//! ```
//!
//! The header checksum makes a length trustworthy before the reader acts on it, so a damaged
//! length is reported where it is instead of swallowing the records after it. `len` is at most
//! [`LogOptions::max_payload`] on append and [`LogOptions::PAYLOAD_LIMIT`] (1 GiB) on reading.
//! The first record of `log-<N>.bin` has lsn N and each next record the next lsn.
//!
//! # Snapshots
//!
//! ```text
//!  0       4             8                16               24          28           32
//!  +-------+-------------+----------------+----------------+-----------+------------+---------+
//!  | MWLS  | version u32 |    lsn u64     | state len u64  | state crc | header crc |  state  |
//!  +-------+-------------+----------------+----------------+-----------+------------+---------+
//!   version = 1; state crc = CRC32C(lsn as 8 bytes ‖ state); header crc = CRC32C(bytes 0..28)
//! ```
//!
//! A snapshot has two steps, so a writer need not wait for its disk work:
//! [`Log::begin_snapshot`] starts `log-<lsn + 1>.bin` (`fsync`ing the directory) so later
//! appends go there, and returns a [`PendingSnapshot`] of lsn `lsn`;
//! [`PendingSnapshot::write`], on any thread, writes `snapshot-<lsn>.bin.tmp`, `fdatasync`s
//! it, renames it into place, `fsync`s the directory, and only then removes the log files and
//! snapshots it covers. [`Log::snapshot`] does both at once. A crash at any point leaves either
//! the old snapshot with all the logs it needs, or the new snapshot (with or without
//! leftovers, which are skipped and removed by the next snapshot).
//!
//! # Durability
//!
//! [`Log::append`] returns once the record is in the kernel (`write(2)` done): a user-space
//! buffer never counts as logged. That alone survives the death of the process, `kill -9`
//! included: the page cache belongs to the kernel. Only a crash of the machine (or of its
//! power) loses what is not yet on the disk, which is what [`FsyncPolicy`] bounds:
//! `Always` `fdatasync`s before `append` returns, `EverySecond` (the default) from a
//! background thread at most once a second when something is new (and on close), `Never`
//! leaves it to the kernel.
//!
//! # Recovery
//!
//! Files in the directory come from the same user but may be damaged by crashes, so
//! [`Log::open`] trusts none of them: it never panics on their contents and never allocates
//! more than a file's size for a length it read. It
//! - picks the newest snapshot that reads back whole; newer damaged ones are reported in
//!   [`Recovery::bad_snapshots`] (a damaged snapshot with no valid older one is
//!   [`Error::Corrupt`]);
//! - replays the records after it, across the log files in order; a missing lsn is `Corrupt`;
//! - drops a torn record at the very end of the newest log file (a partial header, a length
//!   running past the end, a payload checksum mismatch in the last record, or zeros to the end
//!   where a machine crash left the file's size ahead of its data): the file is truncated to
//!   its last whole record and [`Recovery::torn_tail`] says what was dropped. A process kill
//!   can leave only such a tail, since a record is written by one `write(2)`;
//! - stops at any other damage (a bad magic, a header checksum mismatch, a payload checksum
//!   mismatch with data after it, an lsn out of sequence) with `Corrupt` naming the file and
//!   the offset of the damaged record, or a file named for an lsn no log takes (`log-0`, or
//!   past 2^62, from where counting on could overflow) with `Corrupt` at offset 0.
//!
//! # Memory and concurrency
//!
//! One `Log` per directory and one writer (`&mut self`): `open` takes an exclusive `flock` of
//! the directory, held until the log is dropped (the kernel drops it when the process dies), so
//! a second `Log` of the same directory, in this process or another, is refused. Recovery holds all replayed records in memory at once, as
//! the caller will; appends reuse one buffer.

mod format;
mod recover;
mod syncer;

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{Error, Result};
use format::FileName;
use syncer::Syncer;

/// When the log `fdatasync`s, like Redis's `appendfsync`. Every policy survives a process kill;
/// they differ in what a machine crash can lose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FsyncPolicy {
    /// Before each [`Log::append`] returns: a machine crash loses nothing acknowledged.
    Always,
    /// From a background thread, at most once a second when something is new, and on close:
    /// a machine crash loses about the last second.
    #[default]
    EverySecond,
    /// Never (the kernel writes back when it likes, typically within 30 s).
    Never,
}

/// How a [`Log`] behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogOptions {
    /// When to `fdatasync`.
    pub fsync: FsyncPolicy,
    /// The largest payload [`Log::append`] accepts, at most [`LogOptions::PAYLOAD_LIMIT`];
    /// 64 MiB by default (a `set_many` of several 1 MiB values fits many times over).
    pub max_payload: u32,
}

impl LogOptions {
    /// The largest payload the format admits (1 GiB): a record header claiming more is
    /// damaged, whatever the configured maximum.
    pub const PAYLOAD_LIMIT: u32 = format::PAYLOAD_LIMIT;

    /// The default options with fsync policy `fsync`.
    #[must_use]
    pub fn new(fsync: FsyncPolicy) -> Self {
        Self {
            fsync,
            ..Self::default()
        }
    }

    /// These options with `max_payload` as the largest payload.
    #[must_use]
    pub fn with_max_payload(self, max_payload: u32) -> Self {
        Self {
            max_payload,
            ..self
        }
    }
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::default(),
            max_payload: 64 << 20,
        }
    }
}

/// What [`Log::open`] found: the state to start from and the records to replay on it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Recovery {
    /// The newest valid snapshot: the lsn it covers records up to, and its state.
    pub snapshot: Option<(u64, Vec<u8>)>,
    /// The records after the snapshot (all of them if there is none), in lsn order with no gap.
    pub records: Vec<(u64, Vec<u8>)>,
    /// A torn record at the end of the newest log file, dropped; the caller logs it.
    pub torn_tail: Option<TornTail>,
    /// Snapshots newer than [`Recovery::snapshot`] that were damaged and skipped, newest
    /// first; the caller logs them.
    pub bad_snapshots: Vec<BadSnapshot>,
}

/// A torn record dropped from the end of a log file: what a crash during `write(2)` leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TornTail {
    /// The log file.
    pub path: PathBuf,
    /// Where the torn record started: the file's length now.
    pub offset: u64,
    /// How many bytes were cut off.
    pub bytes_dropped: u64,
}

impl std::fmt::Display for TornTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "dropped a torn record of {} bytes at offset {} of {}",
            self.bytes_dropped,
            self.offset,
            self.path.display()
        )
    }
}

/// A snapshot that did not read back whole.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BadSnapshot {
    /// The snapshot file.
    pub path: PathBuf,
    /// Where the damage is.
    pub offset: u64,
    /// What is wrong there.
    pub what: String,
}

impl std::fmt::Display for BadSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "skipped snapshot {}, damaged at offset {}: {}",
            self.path.display(),
            self.offset,
            self.what
        )
    }
}

/// The durable log of one directory: append records, take snapshots, recover both on open.
///
/// ```
/// use memwire_store::{FsyncPolicy, Log};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// # let dir = tmp.path().join("log");
/// let (mut log, recovery) = Log::open(&dir, FsyncPolicy::EverySecond)?;
/// assert!(recovery.records.is_empty());
/// assert_eq!(log.append(b"set a 1")?, 1);
/// log.snapshot(b"a=1")?;
/// assert_eq!(log.append(b"set b 2")?, 2);
/// log.close()?;
///
/// let (_log, recovery) = Log::open(&dir, FsyncPolicy::EverySecond)?;
/// assert_eq!(recovery.snapshot, Some((1, b"a=1".to_vec())));
/// assert_eq!(recovery.records, vec![(2, b"set b 2".to_vec())]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    /// The directory, `flock`ed exclusively while this log lives.
    _lock: File,
    options: LogOptions,
    /// The newest log file, opened `O_APPEND`; shared with the sync thread.
    file: Arc<File>,
    /// Its path.
    path: PathBuf,
    /// The lsn its name carries (its first record's).
    first_lsn: u64,
    /// Its length: the end of its last whole record (a failed write is cut back to it).
    len: u64,
    /// The lsn the next append gets; `next_lsn - 1` records have been appended ever.
    next_lsn: u64,
    /// The record being assembled; kept to reuse its allocation.
    buf: Vec<u8>,
    /// The sync thread, under `FsyncPolicy::EverySecond`.
    syncer: Option<Syncer>,
    /// Set when the log can no longer promise that what it wrote is intact (an `fdatasync`
    /// failed, or a failed write could not be cut back): every later write is refused.
    failed: Option<Failure>,
}

impl Log {
    /// Opens (creating it, mode 0700, if missing) the log in `dir` with the default options and
    /// fsync policy `policy`, and recovers what it holds. Errors: [`Error::Corrupt`] for damage
    /// other than a torn tail (see the module doc), [`Error::Io`] for the file system.
    pub fn open(dir: &Path, policy: FsyncPolicy) -> Result<(Self, Recovery)> {
        Self::open_with(dir, LogOptions::new(policy))
    }

    /// [`Log::open`] with all the options; a `max_payload` above
    /// [`LogOptions::PAYLOAD_LIMIT`] is [`Error::BadRequest`].
    pub fn open_with(dir: &Path, options: LogOptions) -> Result<(Self, Recovery)> {
        if options.max_payload > LogOptions::PAYLOAD_LIMIT {
            return Err(Error::BadRequest(format!(
                "a log's maximum payload of {} bytes exceeds the format's limit of {} bytes",
                options.max_payload,
                LogOptions::PAYLOAD_LIMIT
            )));
        }
        if !dir.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io(format!("create directory {}", dir.display()), e))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let lock = lock_dir(dir)?;
        let recovered = recover::recover(dir)?;
        let (file, path, first_lsn, len) = match recovered.current {
            Some((first_lsn, len)) => {
                let path = dir.join(format::log_name(first_lsn));
                let file = File::options()
                    .append(true)
                    .open(&path)
                    .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
                (file, path, first_lsn, len)
            }
            None => {
                let (file, path) = create_log(dir, recovered.next_lsn)?;
                (file, path, recovered.next_lsn, 0)
            }
        };
        let file = Arc::new(file);
        let syncer = match options.fsync {
            FsyncPolicy::EverySecond => Some(
                Syncer::start(Arc::clone(&file))
                    .map_err(|e| Error::io("spawn the log's sync thread", e))?,
            ),
            FsyncPolicy::Always | FsyncPolicy::Never => None,
        };
        let log = Self {
            dir: dir.to_owned(),
            _lock: lock,
            options,
            file,
            path,
            first_lsn,
            len,
            next_lsn: recovered.next_lsn,
            buf: Vec::new(),
            syncer,
            failed: None,
        };
        Ok((log, recovered.recovery))
    }

    /// Appends a record holding `payload` and returns its lsn. When this returns, the record
    /// has been written to the log file with one `write(2)` (and `fdatasync`ed under
    /// [`FsyncPolicy::Always`]). A payload over [`LogOptions::max_payload`] is
    /// [`Error::BadRequest`]. After a failed `write(2)` nothing of the record is left in the
    /// file; after a failed `fdatasync` the record may be there, and the log refuses every
    /// later write (the kernel may have dropped pages it could not write back).
    pub fn append(&mut self, payload: &[u8]) -> Result<u64> {
        if payload.len() > self.options.max_payload as usize {
            return Err(Error::BadRequest(format!(
                "a log record of {} bytes exceeds the maximum of {} bytes",
                payload.len(),
                self.options.max_payload
            )));
        }
        self.check()?;
        let lsn = self.next_lsn;
        self.buf.clear();
        format::encode_record(&mut self.buf, lsn, payload);
        if let Err(error) = (&*self.file).write_all(&self.buf) {
            let op = format!("append to {}", self.path.display());
            // Cut a partial record off, or a later record would follow damage.
            if let Err(cut) = self.file.set_len(self.len) {
                return Err(self.fail(
                    format!("cut back a failed append to {}", self.path.display()),
                    cut,
                ));
            }
            return Err(Error::io(op, error));
        }
        self.len += self.buf.len() as u64;
        self.next_lsn += 1;
        match (&self.syncer, self.options.fsync) {
            (Some(syncer), _) => syncer.mark_dirty(),
            (None, FsyncPolicy::Always) => self.sync_file()?,
            (None, _) => {}
        }
        Ok(lsn)
    }

    /// `fdatasync`s the log file now, whatever the policy.
    pub fn sync(&mut self) -> Result<()> {
        self.check()?;
        if let Some(syncer) = &self.syncer {
            syncer.mark_clean();
        }
        self.sync_file()
    }

    /// Saves `state`, the caller's state after every record appended so far, as the snapshot
    /// of lsn [`Log::last_lsn`], and removes the log files and snapshots it covers:
    /// [`Log::begin_snapshot`] then [`PendingSnapshot::write`].
    pub fn snapshot(&mut self, state: &[u8]) -> Result<()> {
        self.begin_snapshot()?.write(state)
    }

    /// The first step of a snapshot of lsn [`Log::last_lsn`]: later appends go to a new log
    /// file (none is started when the current one is still empty). The caller takes its state
    /// as of now, then hands it to [`PendingSnapshot::write`], which may run on another thread
    /// while appends go on. Until it has written, the log files it covers stay: a crash
    /// recovers from the previous snapshot and every log.
    pub fn begin_snapshot(&mut self) -> Result<PendingSnapshot> {
        self.check()?;
        let lsn = self.last_lsn();
        if self.first_lsn != lsn + 1 {
            let (file, path) = create_log(&self.dir, lsn + 1)?;
            self.file = Arc::new(file);
            self.path = path;
            self.first_lsn = lsn + 1;
            self.len = 0;
            if let Some(syncer) = &self.syncer {
                syncer.switch(Arc::clone(&self.file));
            }
        }
        Ok(PendingSnapshot {
            dir: self.dir.clone(),
            lsn,
        })
    }

    /// The lsn of the last record appended (0 if none ever was).
    #[must_use]
    pub fn last_lsn(&self) -> u64 {
        self.next_lsn - 1
    }

    /// The log's directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Closes the log, after a last `fdatasync` under [`FsyncPolicy::EverySecond`], and reports
    /// a failure of it. Dropping the log does the same, silently.
    pub fn close(mut self) -> Result<()> {
        if let Some(syncer) = self.syncer.take()
            && let Some(error) = syncer.stop()
        {
            return Err(Error::io(
                format!("fdatasync {}", self.path.display()),
                error,
            ));
        }
        Ok(())
    }

    /// Refuses to go on after a failure, including one the sync thread met.
    fn check(&mut self) -> Result<()> {
        if let Some(failure) = &self.failed {
            return Err(failure.error());
        }
        if let Some(error) = self.syncer.as_ref().and_then(Syncer::take_error) {
            return Err(self.fail(format!("fdatasync {}", self.path.display()), error));
        }
        Ok(())
    }

    fn sync_file(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| self.fail(format!("fdatasync {}", self.path.display()), e))
    }

    /// Records that the log failed doing `op` and returns the error. A failed `fdatasync`
    /// cannot be retried: the kernel may have dropped the pages it could not write.
    fn fail(&mut self, op: String, error: io::Error) -> Error {
        self.failed = Some(Failure {
            op: op.clone(),
            kind: error.kind(),
            os_error: error.raw_os_error(),
        });
        Error::io(op, error)
    }
}

/// A snapshot begun by [`Log::begin_snapshot`], to be written with the state it was begun at.
#[derive(Debug)]
#[must_use = "a begun snapshot saves nothing until it is written"]
pub struct PendingSnapshot {
    dir: PathBuf,
    lsn: u64,
}

impl PendingSnapshot {
    /// The lsn whose state it saves.
    #[must_use]
    pub fn lsn(&self) -> u64 {
        self.lsn
    }

    /// Writes `state` as the snapshot (atomically, made durable), then removes the log files
    /// and older snapshots it covers. On failure nothing is removed: the previous snapshot
    /// and the logs still recover everything.
    pub fn write(self, state: &[u8]) -> Result<()> {
        write_snapshot(&self.dir, self.lsn, state)?;
        remove_covered(&self.dir, self.lsn)
    }
}

/// Removes the log files whose records are all at or below `lsn` (those that start at or
/// below it: [`Log::begin_snapshot`] ended the last of them at `lsn`) and the snapshots older
/// than `lsn`.
fn remove_covered(dir: &Path, lsn: u64) -> Result<()> {
    let read = |e| Error::io(format!("read directory {}", dir.display()), e);
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let entry = entry.map_err(read)?;
        let stale = match entry.file_name().to_str().and_then(format::parse_name) {
            Some(FileName::Log(first)) => first <= lsn,
            Some(FileName::Snapshot(other)) => other < lsn,
            Some(FileName::SnapshotTemp) | None => false,
        };
        if stale {
            let path = entry.path();
            std::fs::remove_file(&path)
                .map_err(|e| Error::io(format!("remove {}", path.display()), e))?;
        }
    }
    sync_dir(dir)
}

/// A failure that ended the log's writes.
#[derive(Debug)]
struct Failure {
    op: String,
    kind: io::ErrorKind,
    os_error: Option<i32>,
}

impl Failure {
    fn error(&self) -> Error {
        let source = self
            .os_error
            .map_or_else(|| io::Error::from(self.kind), io::Error::from_raw_os_error);
        Error::io(
            format!("the log accepts no more writes: {} failed earlier", self.op),
            source,
        )
    }
}

/// `flock(dir, LOCK_EX | LOCK_NB)`: the directory, locked for this log alone.
fn lock_dir(dir: &Path) -> Result<File> {
    let op = || format!("lock directory {}", dir.display());
    let file = File::open(dir).map_err(|e| Error::io(op(), e))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(Error::io(
            format!("{}: another log has it open", op()),
            rustix::io::Errno::WOULDBLOCK.into(),
        )),
        Err(errno) => Err(Error::io(op(), errno.into())),
    }
}

/// Creates the empty log file of records from `first_lsn` on and makes its name durable.
fn create_log(dir: &Path, first_lsn: u64) -> Result<(File, PathBuf)> {
    let path = dir.join(format::log_name(first_lsn));
    let file = File::options()
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
    sync_dir(dir)?;
    Ok((file, path))
}

/// Writes the snapshot of `lsn` atomically: a temporary file, `fdatasync`, rename, `fsync` of
/// the directory. A failure removes the temporary file.
fn write_snapshot(dir: &Path, lsn: u64, state: &[u8]) -> Result<()> {
    let path = dir.join(format::snapshot_name(lsn));
    let tmp = dir.join(format!("{}.tmp", format::snapshot_name(lsn)));
    let written = (|| {
        let mut file = File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&format::encode_snapshot_header(lsn, state))?;
        file.write_all(state)?;
        file.sync_data()
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(format!("write {}", tmp.display()), error));
    }
    std::fs::rename(&tmp, &path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(format!("rename {} to {}", tmp.display(), path.display()), e)
    })?;
    sync_dir(dir)
}

/// `fsync(2)`s directory `dir`, making the names created, renamed or removed in it durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("fsync directory {}", dir.display()), e))
}
