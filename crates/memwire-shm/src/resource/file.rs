//! File operations of the resource protocol: open, peek at the header, lock, check the name
//! still points at our inode.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use super::header::{HEADER_LEN, Header, INITIALISED_OFFSET, Peek};
use crate::error::{Error, Result};
use crate::name::Name;

/// How long an uninitialised, unlocked file must have been left alone before it counts as the
/// leftover of a creator that died. A live creator locks its file one syscall after creating
/// it, so this only has to outlast a preemption.
pub(crate) const DEAD_CREATOR_GRACE: Duration = Duration::from_millis(200);

/// `open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)`; `Ok(None)` if it does not exist.
pub(crate) fn open_rw(path: &Path) -> Result<Option<OwnedFd>> {
    match rustix::fs::open(
        path,
        OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(Error::path("open", path, e)),
    }
}

/// `open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600)`; `Ok(None)` if the
/// name is taken.
pub(crate) fn create_excl(path: &Path) -> Result<Option<OwnedFd>> {
    match rustix::fs::open(
        path,
        OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_raw_mode(0o600),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::EXIST) => Ok(None),
        Err(e) => Err(Error::path("create", path, e)),
    }
}

/// What `fstat` says of an open resource file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FileStat {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) size: u64,
    pub(crate) uid: u32,
    pub(crate) regular: bool,
    pub(crate) linked: bool,
    pub(crate) changed: SystemTime,
}

pub(crate) fn fstat(fd: BorrowedFd<'_>, path: &Path) -> Result<FileStat> {
    let st = rustix::fs::fstat(fd).map_err(|e| Error::path("fstat", path, e))?;
    let changed = since_epoch(
        u64::try_from(st.st_ctime).unwrap_or(0),
        u32::try_from(st.st_ctime_nsec).unwrap_or(0),
    );
    Ok(FileStat {
        dev: st.st_dev,
        ino: st.st_ino,
        size: u64::try_from(st.st_size).unwrap_or(0),
        uid: st.st_uid,
        regular: rustix::fs::FileType::from_raw_mode(st.st_mode)
            == rustix::fs::FileType::RegularFile,
        linked: st.st_nlink > 0,
        changed,
    })
}

/// `UNIX_EPOCH + secs + nanos`, for a timestamp `fstat` reported. A filesystem can report any
/// value: one past what a `SystemTime` holds counts as now (the file is not idle).
fn since_epoch(secs: u64, nanos: u32) -> SystemTime {
    Duration::from_secs(secs)
        .checked_add(Duration::from_nanos(u64::from(nanos)))
        .and_then(|d| SystemTime::UNIX_EPOCH.checked_add(d))
        .unwrap_or_else(SystemTime::now)
}

/// Reads a copy of the header and decodes it, after checking that the file is ours.
///
/// `/dev/shm` is writable by every user: another one can plant a file under our name, readable
/// and writable by all. Such a file is [`Error::ForeignOwner`], never used.
///
/// A creator may be writing the header while we copy it, and a copy reads the fields before
/// the initialised flag in no promised order. So when a first copy shows the flag set, a second
/// copy, made after the flag was seen, is the one decoded: the creator wrote every field before
/// the flag.
pub(crate) fn peek(fd: BorrowedFd<'_>, path: &Path) -> Result<(Peek, FileStat)> {
    let stat = fstat(fd, path)?;
    if !stat.regular {
        return Err(Error::NotRegularFile {
            path: path.to_owned(),
        });
    }
    let me = rustix::process::geteuid().as_raw();
    if stat.uid != me {
        return Err(Error::ForeignOwner {
            path: path.to_owned(),
            uid: stat.uid,
            expected: me,
        });
    }
    let mut buf = [0u8; HEADER_LEN];
    let got = pread_all(fd, &mut buf, path)?;
    if got > INITIALISED_OFFSET + 4 && buf[INITIALISED_OFFSET..INITIALISED_OFFSET + 4] != [0; 4] {
        let got = pread_all(fd, &mut buf, path)?;
        return Ok((Header::decode(&buf[..got], stat.size, path)?, stat));
    }
    Ok((Header::decode(&buf[..got], stat.size, path)?, stat))
}

/// `pread` until `buf` is full or the file ends; returns the bytes read.
fn pread_all(fd: BorrowedFd<'_>, buf: &mut [u8], path: &Path) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::pread(fd, &mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(Error::path("read", path, e)),
        }
    }
    Ok(got)
}

/// Whether `path` still names the file open as `fd` (it was not removed or replaced).
pub(crate) fn still_linked(fd: BorrowedFd<'_>, path: &Path) -> Result<bool> {
    let ours = fstat(fd, path)?;
    if !ours.linked {
        return Ok(false);
    }
    match rustix::fs::lstat(path) {
        Ok(st) => Ok(st.st_dev == ours.dev && st.st_ino == ours.ino),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(Error::path("stat", path, e)),
    }
}

/// `flock(fd, op | LOCK_NB)`: `Ok(false)` if another open file holds a conflicting lock.
pub(crate) fn try_flock(fd: BorrowedFd<'_>, op: FlockOperation, path: &Path) -> Result<bool> {
    loop {
        match rustix::fs::flock(fd, op) {
            Ok(()) => return Ok(true),
            Err(Errno::WOULDBLOCK) => return Ok(false),
            Err(Errno::INTR) => {}
            Err(e) => return Err(Error::path("flock", path, e)),
        }
    }
}

/// `flock(fd, op)`, blocking.
pub(crate) fn flock(fd: BorrowedFd<'_>, op: FlockOperation, path: &Path) -> Result<()> {
    loop {
        match rustix::fs::flock(fd, op) {
            Ok(()) => return Ok(()),
            Err(Errno::INTR) => {}
            Err(e) => return Err(Error::path("flock", path, e)),
        }
    }
}

/// If the uninitialised file open as `fd` was left by a creator that died (nobody holds a
/// lock on it, and it has not changed for [`DEAD_CREATOR_GRACE`]), removes its name and
/// returns true. The exclusive lock is released when `fd` closes.
pub(crate) fn remove_if_dead_creator(fd: &OwnedFd, path: &Path) -> Result<bool> {
    if !try_flock(fd.as_fd(), FlockOperation::NonBlockingLockExclusive, path)? {
        return Ok(false); // A live creator holds its exclusive lock while it initialises.
    }
    let (peek, stat) = peek(fd.as_fd(), path)?;
    let idle = SystemTime::now()
        .duration_since(stat.changed)
        .unwrap_or_default();
    let dead = matches!(peek, Peek::Uninitialised)
        && idle >= DEAD_CREATOR_GRACE
        && still_linked(fd.as_fd(), path)?;
    if dead {
        unlink(path)?;
    } else {
        flock(fd.as_fd(), FlockOperation::Unlock, path)?;
    }
    Ok(dead)
}

/// `unlink(path)`; a name already gone is not an error.
pub(crate) fn unlink(path: &Path) -> Result<()> {
    match rustix::fs::unlink(path) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(Error::path("unlink", path, e)),
    }
}

/// Waits between looks at a file another process is working on: 100 µs doubling to 20 ms, for
/// at most a timeout.
pub(crate) struct Backoff {
    start: Instant,
    timeout: Duration,
    pause: Duration,
}

impl Backoff {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self {
            start: Instant::now(),
            timeout,
            pause: Duration::from_micros(100),
        }
    }

    /// Sleeps, or fails with [`Error::InitTimeout`] once the timeout has passed.
    pub(crate) fn pause(&mut self, name: &Name) -> Result<()> {
        let waited = self.start.elapsed();
        if waited >= self.timeout {
            return Err(Error::InitTimeout {
                name: name.to_string(),
                waited,
            });
        }
        std::thread::sleep(self.pause);
        self.pause = (self.pause * 2).min(Duration::from_millis(20));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_past_what_system_time_holds_count_as_now() {
        let five = Duration::from_secs(5) + Duration::from_nanos(7);
        assert_eq!(since_epoch(5, 7), SystemTime::UNIX_EPOCH + five);
        let before = SystemTime::now();
        for (secs, nanos) in [
            (u64::MAX, u32::MAX),
            (i64::MAX as u64, 999_999_999),
            (i64::MAX as u64, u32::MAX),
        ] {
            assert!(since_epoch(secs, nanos) >= before, "{secs} s {nanos} ns");
        }
    }
}
