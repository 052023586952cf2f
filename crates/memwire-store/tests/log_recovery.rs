//! The log's recovery, through its public API: round trips, torn tails cut at every byte,
//! damage in the middle, snapshots and the crashes around them, and random operation sequences
//! against an in-memory model.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use memwire_store::{Error, FsyncPolicy, Log, LogOptions, Recovery};
use proptest::prelude::*;

/// A payload that differs with `lsn` and has a length that varies from 0 to 99.
fn payload(lsn: u64) -> Vec<u8> {
    (0..lsn * 37 % 100).map(|i| (lsn * 31 + i) as u8).collect()
}

/// The only log file in `dir`.
fn only_log(dir: &Path) -> PathBuf {
    let logs = names(dir, "log-");
    assert_eq!(logs.len(), 1, "{logs:?}");
    dir.join(&logs[0])
}

/// Names in `dir` starting with `prefix`, sorted.
fn names(dir: &Path, prefix: &str) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// Copies the files of `from` into a new directory.
fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn expected(lsns: std::ops::RangeInclusive<u64>) -> Vec<(u64, Vec<u8>)> {
    lsns.map(|lsn| (lsn, payload(lsn))).collect()
}

/// Opens `dir` and expects corruption, returning its path and offset.
fn corrupt(dir: &Path) -> (PathBuf, u64, String) {
    match Log::open(dir, FsyncPolicy::Never) {
        Err(Error::Corrupt { path, offset, what }) => (path, offset, what),
        other => panic!("expected corruption, got {other:?}"),
    }
}

/// A log of records 1..=n in `dir`, returning the end offset of each record.
fn write_records(dir: &Path, n: u64) -> Vec<u64> {
    let (mut log, _) = Log::open(dir, FsyncPolicy::Never).unwrap();
    let mut ends = Vec::new();
    for lsn in 1..=n {
        assert_eq!(log.append(&payload(lsn)).unwrap(), lsn);
        ends.push(fs::metadata(only_log(dir)).unwrap().len());
    }
    ends
}

#[test]
fn round_trip_and_appends_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/log");
    write_records(&dir, 50);
    let mode = fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);

    for policy in [
        FsyncPolicy::Always,
        FsyncPolicy::EverySecond,
        FsyncPolicy::Never,
    ] {
        let (mut log, recovery) = Log::open(&dir, policy).unwrap();
        assert!(recovery.snapshot.is_none());
        assert!(recovery.torn_tail.is_none());
        assert_eq!(recovery.records.len() as u64, log.last_lsn());
        let next = log.append(&payload(log.last_lsn() + 1)).unwrap();
        log.sync().unwrap();
        log.close().unwrap();
        let (_, recovery) = Log::open(&dir, policy).unwrap();
        assert_eq!(recovery.records, expected(1..=next));
    }
}

#[test]
fn a_second_log_of_a_directory_is_refused_while_the_first_lives() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(tmp.path(), FsyncPolicy::Never).unwrap();
    assert!(matches!(
        Log::open(tmp.path(), FsyncPolicy::Never),
        Err(Error::Io { .. })
    ));
    drop(log);
    Log::open(tmp.path(), FsyncPolicy::Never).unwrap();
}

#[test]
fn an_oversized_payload_is_a_bad_request_and_leaves_no_trace() {
    let tmp = tempfile::tempdir().unwrap();
    let options = LogOptions::new(FsyncPolicy::Never).with_max_payload(10);
    let (mut log, _) = Log::open_with(tmp.path(), options).unwrap();
    assert!(matches!(log.append(&[0; 11]), Err(Error::BadRequest(_))));
    assert_eq!(log.append(&[7; 10]).unwrap(), 1);
    drop(log);
    let (_, recovery) = Log::open(tmp.path(), FsyncPolicy::Never).unwrap();
    assert_eq!(recovery.records, vec![(1, vec![7; 10])]);

    let too_large =
        LogOptions::new(FsyncPolicy::Never).with_max_payload(LogOptions::PAYLOAD_LIMIT + 1);
    assert!(matches!(
        Log::open_with(tmp.path(), too_large),
        Err(Error::BadRequest(_))
    ));
}

#[test]
fn a_last_record_cut_at_any_byte_is_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let original = tmp.path().join("original");
    let ends = write_records(&original, 3);
    let (start, end) = (ends[1], ends[2]);
    let name = only_log(&original).file_name().unwrap().to_owned();
    for cut in start..end {
        let dir = tmp.path().join(format!("cut-{cut}"));
        copy_dir(&original, &dir);
        let file = dir.join(&name);
        fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(cut)
            .unwrap();

        let (mut log, recovery) = Log::open(&dir, FsyncPolicy::Never).unwrap();
        assert_eq!(recovery.records, expected(1..=2), "cut at {cut}");
        if cut == start {
            assert_eq!(recovery.torn_tail, None);
        } else {
            let torn = recovery.torn_tail.unwrap();
            assert_eq!(
                (torn.path, torn.offset, torn.bytes_dropped),
                (file.clone(), start, cut - start)
            );
        }
        assert_eq!(fs::metadata(&file).unwrap().len(), start);
        assert_eq!(log.append(&payload(3)).unwrap(), 3);
        drop(log);
        let (_, recovery) = Log::open(&dir, FsyncPolicy::Never).unwrap();
        assert_eq!(
            (recovery.records, recovery.torn_tail),
            (expected(1..=3), None)
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_bad_payload_checksum_or_zeros_at_the_end_are_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let ends = write_records(tmp.path(), 3);
    let file = only_log(tmp.path());
    let mut bytes = fs::read(&file).unwrap();
    *bytes.last_mut().unwrap() ^= 0x40;
    fs::write(&file, &bytes).unwrap();
    let (log, recovery) = Log::open(tmp.path(), FsyncPolicy::Never).unwrap();
    assert_eq!(recovery.records, expected(1..=2));
    assert_eq!(recovery.torn_tail.unwrap().offset, ends[1]);
    drop(log);

    // A machine crash can leave the size ahead of the data: zeros where records were.
    let mut bytes = fs::read(&file).unwrap();
    bytes.extend_from_slice(&[0; 5000]);
    fs::write(&file, &bytes).unwrap();
    let (_, recovery) = Log::open(tmp.path(), FsyncPolicy::Never).unwrap();
    assert_eq!(recovery.records, expected(1..=2));
    let torn = recovery.torn_tail.unwrap();
    assert_eq!((torn.offset, torn.bytes_dropped), (ends[1], 5000));
    assert_eq!(
        torn.to_string(),
        format!(
            "dropped a torn record of 5000 bytes at offset {} of {}",
            ends[1],
            file.display()
        )
    );
}

#[test]
fn a_flipped_byte_in_a_middle_record_is_corruption_at_its_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let original = tmp.path().join("original");
    let ends = write_records(&original, 4);
    let name = only_log(&original).file_name().unwrap().to_owned();
    let bytes = fs::read(original.join(&name)).unwrap();
    let (start, end) = (ends[1], ends[2]);
    for at in start..end {
        let dir = tmp.path().join(format!("flip-{at}"));
        copy_dir(&original, &dir);
        let mut damaged = bytes.clone();
        damaged[at as usize] ^= 0x01;
        fs::write(dir.join(&name), &damaged).unwrap();
        let (path, offset, what) = corrupt(&dir);
        assert_eq!(
            (path, offset),
            (dir.join(&name), start),
            "byte {at}: {what}"
        );
        // Start-up refuses the directory and leaves the damage for an operator to see.
        assert_eq!(fs::read(dir.join(&name)).unwrap(), damaged);
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn snapshot_then_more_records_then_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut log, _) = Log::open(dir, FsyncPolicy::Always).unwrap();
    for lsn in 1..=10 {
        log.append(&payload(lsn)).unwrap();
    }
    log.snapshot(b"state at 10").unwrap();
    for lsn in 11..=15 {
        assert_eq!(log.append(&payload(lsn)).unwrap(), lsn);
    }
    log.close().unwrap();
    assert_eq!(names(dir, "snapshot-").len(), 1);
    assert_eq!(names(dir, "log-").len(), 1);

    let (mut log, recovery) = Log::open(dir, FsyncPolicy::Always).unwrap();
    assert_eq!(recovery.snapshot, Some((10, b"state at 10".to_vec())));
    assert_eq!(recovery.records, expected(11..=15));
    // A snapshot with nothing new since the last one keeps the (empty) current file.
    log.snapshot(b"state at 15").unwrap();
    log.snapshot(b"state at 15, again").unwrap();
    drop(log);
    let (_, recovery) = Log::open(dir, FsyncPolicy::Always).unwrap();
    assert_eq!(
        recovery.snapshot,
        Some((15, b"state at 15, again".to_vec()))
    );
    assert!(recovery.records.is_empty());
    assert_eq!(
        names(dir, ""),
        [
            "log-00000000000000000016.bin",
            "snapshot-00000000000000000015.bin"
        ]
    );
}

/// A snapshot in two steps, as the store takes one: appends go on between the begin and the
/// write (on another thread), and until the write the old files recover everything.
#[test]
fn a_snapshot_written_after_more_appends_covers_only_its_lsn() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut log, _) = Log::open(dir, FsyncPolicy::Always).unwrap();
    for lsn in 1..=10 {
        log.append(&payload(lsn)).unwrap();
    }
    let pending = log.begin_snapshot().unwrap();
    assert_eq!(pending.lsn(), 10);
    for lsn in 11..=15 {
        assert_eq!(log.append(&payload(lsn)).unwrap(), lsn);
    }
    // Begun, not written: a crash now recovers from the logs alone.
    let before = tempfile::tempdir().unwrap();
    copy_dir(dir, before.path());
    std::thread::spawn(move || pending.write(b"state at 10"))
        .join()
        .unwrap()
        .unwrap();
    for lsn in 16..=17 {
        assert_eq!(log.append(&payload(lsn)).unwrap(), lsn);
    }
    drop(log);
    let (_, recovery) = Log::open(before.path(), FsyncPolicy::Never).unwrap();
    assert_eq!(recovery.snapshot, None);
    assert_eq!(recovery.records, expected(1..=15));
    let (_, recovery) = Log::open(dir, FsyncPolicy::Never).unwrap();
    assert_eq!(recovery.snapshot, Some((10, b"state at 10".to_vec())));
    assert_eq!(recovery.records, expected(11..=17));
    assert_eq!(
        names(dir, ""),
        [
            "log-00000000000000000011.bin",
            "snapshot-00000000000000000010.bin"
        ]
    );
}

#[test]
fn a_crash_before_the_old_files_are_removed_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let before = tmp.path().join("before");
    write_records(&before, 5);
    let old_log = only_log(&before);

    let after = tmp.path().join("after");
    copy_dir(&before, &after);
    let (mut log, _) = Log::open(&after, FsyncPolicy::Never).unwrap();
    log.snapshot(b"five").unwrap();
    drop(log);

    // Crash after the snapshot and the new log file, before the removals.
    let leftovers = tmp.path().join("leftovers");
    copy_dir(&after, &leftovers);
    fs::copy(&old_log, leftovers.join(old_log.file_name().unwrap())).unwrap();
    // Crash after the snapshot, before the new log file; a temporary file of a later one too.
    let no_new_log = tmp.path().join("no-new-log");
    copy_dir(&before, &no_new_log);
    for name in names(&after, "snapshot-") {
        fs::copy(after.join(&name), no_new_log.join(&name)).unwrap();
    }
    fs::write(
        no_new_log.join("snapshot-00000000000000000009.bin.tmp"),
        b"partial",
    )
    .unwrap();

    for dir in [&leftovers, &no_new_log] {
        let (mut log, recovery) = Log::open(dir, FsyncPolicy::Never).unwrap();
        assert_eq!(recovery.snapshot, Some((5, b"five".to_vec())));
        assert!(recovery.records.is_empty());
        assert_eq!(log.append(&payload(6)).unwrap(), 6);
        drop(log);
        let (mut log, recovery) = Log::open(dir, FsyncPolicy::Never).unwrap();
        assert_eq!(recovery.records, expected(6..=6));
        assert!(names(dir, "snapshot-").iter().all(|n| !n.ends_with(".tmp")));
        log.snapshot(b"six").unwrap();
        drop(log);
        assert_eq!(
            names(dir, ""),
            [
                "log-00000000000000000007.bin",
                "snapshot-00000000000000000006.bin"
            ]
        );
    }
}

#[test]
fn a_damaged_newest_snapshot_falls_back_to_an_older_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut log, _) = Log::open(dir, FsyncPolicy::Never).unwrap();
    for lsn in 1..=3 {
        log.append(&payload(lsn)).unwrap();
    }
    log.snapshot(b"three").unwrap();
    for lsn in 4..=5 {
        log.append(&payload(lsn)).unwrap();
    }
    drop(log);
    // A newer snapshot that is damaged (its old logs still there, as a crash can leave them).
    let bad = dir.join("snapshot-00000000000000000005.bin");
    fs::write(&bad, b"MWLS not a snapshot header").unwrap();
    let (_, recovery) = Log::open(dir, FsyncPolicy::Never).unwrap();
    assert_eq!(recovery.snapshot, Some((3, b"three".to_vec())));
    assert_eq!(recovery.records, expected(4..=5));
    assert_eq!(recovery.bad_snapshots.len(), 1);
    assert_eq!(recovery.bad_snapshots[0].path, bad);
    assert_eq!(
        recovery.bad_snapshots[0].to_string(),
        format!(
            "skipped snapshot {}, damaged at offset 0: 26 bytes, shorter than a snapshot header",
            bad.display()
        )
    );
    fs::remove_file(&bad).unwrap();

    // The only snapshot damaged: nothing to fall back to.
    let only = dir.join("snapshot-00000000000000000003.bin");
    let mut bytes = fs::read(&only).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    fs::write(&only, &bytes).unwrap();
    let (path, offset, _) = corrupt(dir);
    assert_eq!((path, offset), (only.clone(), 32));
    // A snapshot named for another lsn than it holds is damaged too.
    let renamed = dir.join("snapshot-00000000000000000004.bin");
    fs::rename(&only, &renamed).unwrap();
    let (path, offset, what) = corrupt(dir);
    assert_eq!((path, offset), (renamed, 0), "{what}");
}

#[test]
fn missing_records_are_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("first");
    write_records(&first, 2);
    let old_log = only_log(&first);

    let dir = tmp.path().join("dir");
    let (mut log, _) = Log::open(&dir, FsyncPolicy::Never).unwrap();
    for lsn in 1..=3 {
        log.append(&payload(lsn)).unwrap();
    }
    log.snapshot(b"three").unwrap();
    log.append(&payload(4)).unwrap();
    drop(log);
    let snapshot = dir.join(&names(&dir, "snapshot-")[0]);
    let new_log = dir.join("log-00000000000000000004.bin");

    // Without the snapshot, records 1..=3 are missing.
    let saved = fs::read(&snapshot).unwrap();
    fs::remove_file(&snapshot).unwrap();
    let (path, offset, what) = corrupt(&dir);
    assert_eq!((path, offset), (new_log.clone(), 0), "{what}");
    // An old log with records 1..=2 leaves lsn 3 missing between the files.
    fs::copy(&old_log, dir.join(old_log.file_name().unwrap())).unwrap();
    let (path, _, what) = corrupt(&dir);
    assert_eq!(path, new_log, "{what}");
    // With the snapshot back, the old log is not needed and not read.
    fs::write(&snapshot, saved).unwrap();
    let (_, recovery) = Log::open(&dir, FsyncPolicy::Never).unwrap();
    assert_eq!(recovery.records, expected(4..=4));
}

#[test]
fn a_torn_record_in_an_older_file_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ends = write_records(dir, 3);
    let old_log = only_log(dir);
    fs::OpenOptions::new()
        .write(true)
        .open(&old_log)
        .unwrap()
        .set_len(ends[2] - 1)
        .unwrap();
    // A newer file after it, as if the old one had been complete.
    fs::write(dir.join("log-00000000000000000004.bin"), b"").unwrap();
    let (path, offset, _) = corrupt(dir);
    assert_eq!((path, offset), (old_log, ends[1]));
}

fn reopen(dir: &Path, policy: FsyncPolicy) -> (Log, Recovery) {
    Log::open(dir, policy).unwrap()
}

#[derive(Clone, Debug)]
enum Op {
    Append(Vec<u8>),
    Snapshot,
    Sync,
    Reopen,
    /// Reopen after cutting `n` bytes (at most the last record's) off the newest file.
    Tear(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(Op::Append),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
        1 => (1usize..300).prop_map(Op::Tear),
    ]
}

fn policy() -> impl Strategy<Value = FsyncPolicy> {
    prop_oneof![
        Just(FsyncPolicy::Always),
        Just(FsyncPolicy::EverySecond),
        Just(FsyncPolicy::Never)
    ]
}

/// The model's state as a snapshot: every record so far.
fn model_state(records: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut state = Vec::new();
    for (lsn, payload) in records {
        state.extend_from_slice(&lsn.to_le_bytes());
        state.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        state.extend_from_slice(payload);
    }
    state
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_operations_match_a_model(ops in proptest::collection::vec(op(), 1..40), policy in policy()) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        // Every record appended (less the torn ones), and the last snapshot.
        let mut records: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut snapshot: Option<(u64, Vec<u8>)> = None;
        // Bytes of the last record, if it is still in the newest file.
        let mut last_len: Option<usize> = None;
        let (mut log, _) = reopen(dir, policy);
        for op in ops {
            match op {
                Op::Append(payload) => {
                    let lsn = log.append(&payload).unwrap();
                    prop_assert_eq!(lsn, records.last().map_or(0, |r| r.0) + 1);
                    last_len = Some(24 + payload.len());
                    records.push((lsn, payload));
                }
                Op::Snapshot => {
                    let state = model_state(&records);
                    log.snapshot(&state).unwrap();
                    snapshot = Some((log.last_lsn(), state));
                    last_len = None;
                }
                Op::Sync => log.sync().unwrap(),
                Op::Reopen | Op::Tear(_) => {
                    log.close().unwrap();
                    let mut torn = None;
                    if let (Op::Tear(n), Some(len)) = (&op, last_len) {
                        let n = (*n).min(len) as u64;
                        let file = only_log(dir);
                        let size = fs::metadata(&file).unwrap().len();
                        fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(size - n).unwrap();
                        if n == len as u64 {
                            last_len = None;
                        } else {
                            torn = Some((size - len as u64, len as u64 - n));
                        }
                        records.pop();
                    }
                    let (reopened, recovery) = reopen(dir, policy);
                    log = reopened;
                    prop_assert_eq!(recovery.torn_tail.map(|t| (t.offset, t.bytes_dropped)), torn);
                    prop_assert_eq!(&recovery.snapshot, &snapshot);
                    let covered = snapshot.as_ref().map_or(0, |s| s.0);
                    let after: Vec<_> = records.iter().filter(|r| r.0 > covered).cloned().collect();
                    prop_assert_eq!(recovery.records, after);
                    prop_assert_eq!(log.last_lsn(), records.last().map_or(covered, |r| r.0.max(covered)));
                    if torn.is_some() {
                        last_len = None;
                    }
                }
            }
        }
    }

    #[test]
    fn garbage_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), magic in any::<bool>()) {
        let tmp = tempfile::tempdir().unwrap();
        let mut contents = if magic { b"MWLR".to_vec() } else { Vec::new() };
        contents.extend_from_slice(&bytes);
        fs::write(tmp.path().join("log-00000000000000000001.bin"), &contents).unwrap();
        let _ = Log::open(tmp.path(), FsyncPolicy::Never);
        let mut snapshot = if magic { b"MWLS".to_vec() } else { Vec::new() };
        snapshot.extend_from_slice(&bytes);
        fs::write(tmp.path().join("snapshot-00000000000000000001.bin"), &snapshot).unwrap();
        let _ = Log::open(tmp.path(), FsyncPolicy::Never);
    }
}
