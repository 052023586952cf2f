//! Start-up: find the newest valid snapshot, replay the log files after it, drop a torn tail
//! of the newest log file, and refuse anything else that is damaged.
//!
//! Nothing here trusts a file: every length is checked against the bytes left in the file
//! before anything is allocated for it, and every failure is an [`Error::Corrupt`] naming the
//! file and offset, never a panic.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::format::{self, FileName, MAX_LSN, RECORD_HEADER_LEN, SNAPSHOT_HEADER_LEN};
use super::{BadSnapshot, Recovery, TornTail};
use crate::{Error, Result};

/// What start-up found, and where appending goes on.
#[derive(Debug)]
pub(super) struct Recovered {
    /// What the caller replays.
    pub(super) recovery: Recovery,
    /// The lsn the next append gets.
    pub(super) next_lsn: u64,
    /// The log file appends go on in (its first lsn and its length, the end of its last whole
    /// record), or `None` when a new file `log-<next_lsn>.bin` must be started: there is no
    /// log file yet, or the newest one ends before the snapshot (whose lsns it would repeat).
    pub(super) current: Option<(u64, u64)>,
}

/// Reads the log directory `dir` (which exists). Removes leftover temporary snapshots and
/// truncates a torn tail; changes nothing else.
pub(super) fn recover(dir: &Path) -> Result<Recovered> {
    let (logs, snapshots) = list(dir)?;
    let mut recovery = Recovery {
        snapshot: None,
        records: Vec::new(),
        torn_tail: None,
        bad_snapshots: Vec::new(),
    };

    // The newest snapshot that reads back whole; newer damaged ones are reported.
    for &(lsn, ref path) in snapshots.iter().rev() {
        match read_snapshot(path, lsn)? {
            Ok(state) => {
                recovery.snapshot = Some((lsn, state));
                break;
            }
            Err(bad) => recovery.bad_snapshots.push(bad),
        }
    }
    if recovery.snapshot.is_none()
        && let Some(newest) = recovery.bad_snapshots.drain(..).next()
    {
        return Err(Error::Corrupt {
            path: newest.path,
            offset: newest.offset,
            what: format!("{} (and no older valid snapshot)", newest.what),
        });
    }
    let covered = recovery.snapshot.as_ref().map_or(0, |(lsn, _)| *lsn);

    // Files that hold only records the snapshot covers are not read: the last one starting at
    // or before `covered + 1` is the first needed.
    let Some(start) = logs.iter().rposition(|&(first, _)| first <= covered + 1) else {
        if let Some((first, path)) = logs.first() {
            return Err(Error::Corrupt {
                path: path.clone(),
                offset: 0,
                what: format!(
                    "the log starts at lsn {first}, but records from {} on are missing",
                    covered + 1
                ),
            });
        }
        return Ok(Recovered {
            recovery,
            next_lsn: covered + 1,
            current: None,
        });
    };

    let mut next = logs[start].0;
    let mut current_len = 0;
    for (i, (first, path)) in logs.iter().enumerate().skip(start) {
        if *first != next {
            return Err(Error::Corrupt {
                path: path.clone(),
                offset: 0,
                what: format!(
                    "the file starts at lsn {first}, but the one before it ends at lsn {}",
                    next - 1
                ),
            });
        }
        let newest = i + 1 == logs.len();
        let end = scan(path, newest, &mut next, |lsn, payload| {
            if lsn > covered {
                recovery.records.push((lsn, payload));
            }
        })?;
        if let Some(torn) = end.torn {
            truncate(path, end.good_len)?;
            recovery.torn_tail = Some(torn);
        }
        current_len = end.good_len;
    }

    let newest_first = logs[logs.len() - 1].0;
    if next <= covered {
        // The newest file ends before the snapshot: appending to it would skip lsns (it
        // cannot happen after a process kill; it can after a machine crash under a policy
        // that did not fsync the log before the snapshot).
        Ok(Recovered {
            recovery,
            next_lsn: covered + 1,
            current: None,
        })
    } else {
        Ok(Recovered {
            recovery,
            next_lsn: next,
            current: Some((newest_first, current_len)),
        })
    }
}

/// Log files and snapshots of `dir`, each sorted by lsn. Leftover temporary snapshots are
/// removed.
#[allow(clippy::type_complexity)]
fn list(dir: &Path) -> Result<(Vec<(u64, PathBuf)>, Vec<(u64, PathBuf)>)> {
    let mut logs = Vec::new();
    let mut snapshots = Vec::new();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("read directory {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("read directory {}", dir.display()), e))?;
        let Some(name) = entry.file_name().to_str().and_then(format::parse_name) else {
            continue;
        };
        let path = entry.path();
        // Lsns start at 1 (a snapshot of a log with no records is lsn 0); a name past
        // `MAX_LSN` is none this log wrote, and counting on from it could overflow.
        let refused = match name {
            FileName::Log(0) => Some((0, "lsns start at 1")),
            FileName::Log(lsn) | FileName::Snapshot(lsn) if lsn > MAX_LSN => {
                Some((lsn, "no log reaches it"))
            }
            _ => None,
        };
        if let Some((lsn, why)) = refused {
            return Err(Error::Corrupt {
                path,
                offset: 0,
                what: format!("the file is named for lsn {lsn}: {why}"),
            });
        }
        match name {
            FileName::Log(first) => logs.push((first, path)),
            FileName::Snapshot(lsn) => snapshots.push((lsn, path)),
            FileName::SnapshotTemp => std::fs::remove_file(&path)
                .map_err(|e| Error::io(format!("remove {}", path.display()), e))?,
        }
    }
    logs.sort_unstable_by_key(|&(first, _)| first);
    snapshots.sort_unstable_by_key(|&(lsn, _)| lsn);
    Ok((logs, snapshots))
}

/// The state in snapshot file `path` (named for `lsn`), or what is wrong with it. An I/O error
/// (other than the file being short) is an error of its own.
fn read_snapshot(path: &Path, lsn: u64) -> Result<Result<Vec<u8>, BadSnapshot>> {
    let bad = |offset: u64, what: String| {
        Ok(Err(BadSnapshot {
            path: path.to_owned(),
            offset,
            what,
        }))
    };
    let io = |e| Error::io(format!("read {}", path.display()), e);
    let mut file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size < SNAPSHOT_HEADER_LEN as u64 {
        return bad(0, format!("{size} bytes, shorter than a snapshot header"));
    }
    let mut header = [0u8; SNAPSHOT_HEADER_LEN];
    file.read_exact(&mut header).map_err(io)?;
    let header = match format::decode_snapshot_header(&header) {
        Ok(header) => header,
        Err(what) => return bad(0, what.to_owned()),
    };
    if header.lsn != lsn {
        return bad(
            0,
            format!("holds lsn {} but is named for lsn {lsn}", header.lsn),
        );
    }
    let left = size - SNAPSHOT_HEADER_LEN as u64;
    if header.len != left {
        return bad(
            0,
            format!(
                "the header claims {} bytes of state, the file holds {left}",
                header.len
            ),
        );
    }
    // `left` is what the file holds, so this allocates no more than the file's size.
    let Ok(len) = usize::try_from(left) else {
        return bad(0, format!("{left} bytes of state do not fit in memory"));
    };
    let mut state = vec![0u8; len];
    file.read_exact(&mut state).map_err(io)?;
    if !header.matches(&state) {
        return bad(
            SNAPSHOT_HEADER_LEN as u64,
            "state checksum mismatch".to_owned(),
        );
    }
    Ok(Ok(state))
}

/// How a log file ended.
#[derive(Debug)]
struct ScanEnd {
    /// The offset just past the last whole, valid record.
    good_len: u64,
    /// A torn last record (only in the newest file), dropped from `good_len` on.
    torn: Option<TornTail>,
}

/// Reads the records of log file `path`, handing each to `record`. `next` is the lsn the first
/// record must have; on return it is the lsn after the last record. Damage at the end of the
/// newest file is a torn tail; anywhere else it is [`Error::Corrupt`].
fn scan(
    path: &Path,
    newest: bool,
    next: &mut u64,
    mut record: impl FnMut(u64, Vec<u8>),
) -> Result<ScanEnd> {
    let io = |e| Error::io(format!("read {}", path.display()), e);
    let file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut reader = BufReader::new(file);
    let mut offset = 0u64;
    // Damage at `offset`: a torn tail if allowed there, else corruption.
    let damaged = |offset: u64, what: &str, tail: bool| {
        if tail && newest {
            Ok(ScanEnd {
                good_len: offset,
                torn: Some(TornTail {
                    path: path.to_owned(),
                    offset,
                    bytes_dropped: size - offset,
                }),
            })
        } else {
            Err(Error::Corrupt {
                path: path.to_owned(),
                offset,
                what: what.to_owned(),
            })
        }
    };
    loop {
        let left = size - offset;
        if left == 0 {
            return Ok(ScanEnd {
                good_len: offset,
                torn: None,
            });
        }
        if left < RECORD_HEADER_LEN as u64 {
            return damaged(offset, "a partial record header at the end of a file", true);
        }
        let mut header = [0u8; RECORD_HEADER_LEN];
        reader.read_exact(&mut header).map_err(io)?;
        let header = match format::decode_record_header(&header) {
            Ok(header) => header,
            Err(what) => {
                // A machine crash can leave a file's new size with zeros where its data
                // had not reached the disk: zeros to the end are a torn tail.
                let zeros =
                    header.iter().all(|&b| b == 0) && rest_is_zero(&mut reader).map_err(io)?;
                return damaged(offset, what, zeros);
            }
        };
        let end = offset + RECORD_HEADER_LEN as u64 + u64::from(header.len);
        if end > size {
            return damaged(
                offset,
                &format!("record length {} runs past the end of the file", header.len),
                true,
            );
        }
        // `end <= size`: the allocation is bounded by the file's size (and by PAYLOAD_LIMIT).
        let mut payload = vec![0u8; header.len as usize];
        reader.read_exact(&mut payload).map_err(io)?;
        if !header.matches(&payload) {
            return damaged(offset, "record payload checksum mismatch", end == size);
        }
        if header.lsn != *next {
            return damaged(
                offset,
                &format!("record has lsn {} where lsn {} belongs", header.lsn, *next),
                false,
            );
        }
        record(header.lsn, payload);
        *next += 1;
        offset = end;
    }
}

/// Whether everything left in `reader` is zero bytes.
fn rest_is_zero(reader: &mut impl Read) -> std::io::Result<bool> {
    let mut chunk = [0u8; 8192];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return Ok(true),
            Ok(n) if chunk[..n].iter().all(|&b| b == 0) => {}
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Cuts log file `path` to `len` bytes and makes the cut durable.
fn truncate(path: &Path, len: u64) -> Result<()> {
    let io = |e| Error::io(format!("truncate torn tail of {}", path.display()), e);
    let file = File::options().write(true).open(path).map_err(io)?;
    file.set_len(len).map_err(io)?;
    file.sync_data().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(dir: &Path) -> (PathBuf, String) {
        match recover(dir) {
            Err(Error::Corrupt { path, offset, what }) => {
                assert_eq!(offset, 0, "{what}");
                (path, what)
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn file_names_outside_the_lsns_a_log_takes_are_corruption()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        // An empty `log-0` then a later file: the lsn before the later one would be -1.
        let tmp = tempfile::tempdir()?;
        let zero = tmp.path().join(format::log_name(0));
        std::fs::write(&zero, b"")?;
        std::fs::write(tmp.path().join(format::log_name(5)), b"")?;
        let (path, what) = refused(tmp.path());
        assert_eq!(path, zero, "{what}");

        // A valid snapshot of lsn u64::MAX: the first lsn after it would overflow.
        let tmp = tempfile::tempdir()?;
        let last = tmp.path().join(format::snapshot_name(u64::MAX));
        std::fs::write(&last, format::encode_snapshot_header(u64::MAX, b""))?;
        assert_eq!(refused(tmp.path()).0, last);

        // A log file whose records would count up to u64::MAX.
        let tmp = tempfile::tempdir()?;
        let mut record = Vec::new();
        format::encode_record(&mut record, u64::MAX, b"x");
        let late = tmp.path().join(format::log_name(u64::MAX));
        std::fs::write(&late, &record)?;
        std::fs::write(
            tmp.path().join(format::snapshot_name(u64::MAX - 1)),
            format::encode_snapshot_header(u64::MAX - 1, b""),
        )?;
        assert!(matches!(recover(tmp.path()), Err(Error::Corrupt { .. })));

        // The largest lsn a name may carry is still read.
        let tmp = tempfile::tempdir()?;
        let mut snapshot = format::encode_snapshot_header(MAX_LSN, b"state").to_vec();
        snapshot.extend_from_slice(b"state");
        std::fs::write(tmp.path().join(format::snapshot_name(MAX_LSN)), snapshot)?;
        let recovered = recover(tmp.path())?;
        assert_eq!(recovered.next_lsn, MAX_LSN + 1);
        Ok(())
    }
}
