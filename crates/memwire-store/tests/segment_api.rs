//! The tenant segment through its public API, writer and reader in one process: values,
//! versions, compare-and-set, quotas, the change ring and its `Lagged`, header checks.

#![allow(clippy::unwrap_used)]

use memwire_shm::{Access, MemfdSegment, Segment};
use memwire_store::segment::{ChangeEvent, ChangeKind, Changes, TenantConfig, Value};
use memwire_store::{Error, TenantView, TenantWriter};

fn pair(config: TenantConfig) -> (TenantWriter, TenantView) {
    let writer = TenantWriter::create_with("acme", config).unwrap();
    let view = TenantView::open(writer.try_clone_fd().unwrap()).unwrap();
    (writer, view)
}

fn event(revision: u64, kind: ChangeKind, service: &str, variable: &str, ts: u64) -> ChangeEvent {
    ChangeEvent {
        revision,
        kind,
        service: service.into(),
        variable: variable.into(),
        timestamp_ns: ts,
    }
}

#[test]
fn set_get_list_delete() {
    let (mut w, r) = pair(TenantConfig::new(1 << 20, 100));
    assert_eq!(
        (r.tenant(), r.epoch(), r.revision().unwrap()),
        ("acme", 0, 0)
    );
    assert_eq!(w.set("svc", "a", b"one", 10).unwrap(), 1);
    assert_eq!(w.set("svc", "b", b"", 11).unwrap(), 2);
    assert_eq!(w.set("other", "a", b"x", 12).unwrap(), 3);
    assert_eq!(
        r.get("svc", "a").unwrap(),
        Some(Value {
            bytes: b"one".to_vec(),
            version: 1,
            timestamp_ns: 10
        })
    );
    assert_eq!(r.get("svc", "b").unwrap().unwrap().bytes, b"");
    assert_eq!(r.get("svc", "zzz").unwrap(), None);
    assert_eq!(r.get("svc", "bad/name").unwrap(), None);
    // Replacing in place (same rounded size) and growing.
    assert_eq!(w.set("svc", "a", b"two", 13).unwrap(), 4);
    assert_eq!(r.get("svc", "a").unwrap().unwrap().bytes, b"two");
    let long = vec![7; 5000];
    w.set("svc", "a", &long, 14).unwrap();
    let mut buf = Vec::with_capacity(8192);
    let stamp = r.get_into("svc", "a", &mut buf).unwrap().unwrap();
    assert_eq!((buf.as_slice(), stamp.version), (long.as_slice(), 5));
    let names: Vec<String> = r.list("svc").unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(w.delete("svc", "a", 15).unwrap(), 6);
    assert_eq!(r.get("svc", "a").unwrap(), None);
    assert!(matches!(w.delete("svc", "a", 16), Err(Error::NotFound(_))));
    assert_eq!(r.list("svc").unwrap().len(), 1);
    assert_eq!((w.len(), r.revision().unwrap()), (2, 6));
    assert!(matches!(r.changes_since(7), Err(Error::BadRequest(_))));
    assert!(!r.is_retired().unwrap());
    w.retire().unwrap();
    assert!(r.is_retired().unwrap());
}

#[test]
fn compare_and_set_checks_the_version() {
    let (mut w, r) = pair(TenantConfig::new(1 << 16, 10));
    assert!(matches!(
        w.compare_and_set("s", "v", 3, b"x", 0),
        Err(Error::Conflict {
            expected: 3,
            found: 0
        })
    ));
    assert_eq!(w.compare_and_set("s", "v", 0, b"x", 0).unwrap(), 1);
    assert!(matches!(
        w.compare_and_set("s", "v", 0, b"y", 0),
        Err(Error::Conflict {
            expected: 0,
            found: 1
        })
    ));
    assert_eq!(w.compare_and_set("s", "v", 1, b"y", 0).unwrap(), 2);
    assert_eq!(r.get("s", "v").unwrap().unwrap().bytes, b"y");
}

#[test]
fn quotas_refuse_with_numbers_and_keep_old_values() {
    // Variable count.
    let (mut w, r) = pair(TenantConfig::new(1 << 16, 2));
    w.set("s", "a", b"1", 0).unwrap();
    w.set("s", "b", b"2", 0).unwrap();
    let err = w.set("s", "c", b"3", 0).unwrap_err();
    assert!(
        matches!(&err, Error::QuotaExceeded(m) if m.contains("at most 2 variables")),
        "{err}"
    );
    // A batch that would pass the count is refused whole.
    w.delete("s", "b", 0).unwrap();
    assert!(matches!(
        w.set_many("s", &[("a", b"9"), ("c", b"3"), ("d", b"4")], 0),
        Err(Error::QuotaExceeded(_))
    ));
    assert_eq!(r.get("s", "a").unwrap().unwrap().bytes, b"1");
    assert_eq!(r.get("s", "c").unwrap(), None);
    assert_eq!(r.revision().unwrap(), 3);

    // Memory: 64 per variable + names and value in 8-byte granules.
    let (mut w, r) = pair(TenantConfig::new(300, 10).max_value_len(200));
    w.set("s", "a", &[1; 100], 0).unwrap(); // 64 + 8 + 104 = 176
    assert_eq!(w.used_bytes(), 176);
    let err = w.set("s", "b", &[2; 100], 0).unwrap_err();
    assert!(
        matches!(&err, Error::QuotaExceeded(m) if m.contains("memory quota 300")),
        "{err}"
    );
    assert!(matches!(
        w.set("s", "a", &[3; 201], 0),
        Err(Error::BadRequest(m)) if m.contains("201 bytes")
    ));
    // Replacing within the quota works, and the failed writes left `a` alone.
    assert_eq!(r.get("s", "a").unwrap().unwrap().bytes, [1; 100]);
    w.set("s", "a", &[4; 180], 0).unwrap();
    assert_eq!(r.get("s", "a").unwrap().unwrap().bytes, [4; 180]);
    assert!(matches!(w.set("s", "", b"x", 0), Err(Error::BadRequest(_))));
    assert!(matches!(
        w.set_many("s", &[("x", b"1"), ("x", b"2")], 0),
        Err(Error::BadRequest(_))
    ));
}

#[test]
fn the_ring_wraps_into_lagged_with_the_right_numbers() {
    let (mut w, r) = pair(TenantConfig::new(1 << 16, 8).ring_slots(8));
    for i in 0..20u64 {
        w.set("s", &format!("v{}", i % 3), &i.to_le_bytes(), 100 + i)
            .unwrap();
    }
    assert_eq!(
        r.changes_since(0).unwrap(),
        Changes::Lagged {
            missed_from: 1,
            resumed_at: 20
        }
    );
    assert_eq!(
        r.changes_since(11).unwrap(),
        Changes::Lagged {
            missed_from: 12,
            resumed_at: 20
        }
    );
    let Changes::Events(events) = r.changes_since(12).unwrap() else {
        panic!("expected events");
    };
    let revisions: Vec<u64> = events.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, (13..=20).collect::<Vec<_>>());
    assert_eq!(events[0], event(13, ChangeKind::Set, "s", "v0", 112));
    assert_eq!(r.changes_since(20).unwrap(), Changes::Events(vec![]));
}

#[test]
fn a_batch_reaches_watchers_whole_and_deletes_keep_their_names() {
    let (mut w, r) = pair(TenantConfig::new(1 << 16, 8).ring_slots(16));
    w.set("s", "a", b"0", 1).unwrap();
    let last = w.set_many("s", &[("a", b"1"), ("b", b"1")], 2).unwrap();
    assert_eq!(last, 3);
    w.delete("s", "a", 3).unwrap();
    assert_eq!(
        r.changes_since(1).unwrap(),
        Changes::Events(vec![
            event(2, ChangeKind::Set, "s", "a", 2),
            event(3, ChangeKind::Set, "s", "b", 2),
            event(4, ChangeKind::Delete, "s", "a", 3),
        ])
    );
    assert_eq!(r.get("s", "b").unwrap().unwrap().version, 3);
}

#[test]
fn deleted_slots_are_reused_once_their_delete_leaves_the_ring() {
    // 16 table slots, 8 ring slots: thousands of distinct names pass through.
    let (mut w, r) = pair(TenantConfig::new(4096, 8).ring_slots(8));
    for i in 0..2000 {
        let name = format!("var{i}");
        w.set("s", &name, b"value", i).unwrap();
        if i >= 4 {
            w.delete("s", &format!("var{}", i - 4), i).unwrap();
        }
    }
    let names: Vec<String> = r.list("s").unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["var1996", "var1997", "var1998", "var1999"]);
    assert_eq!(r.get("s", "var10").unwrap(), None);
    assert!(w.used_bytes() <= 4096);
}

#[test]
fn open_refuses_unsealed_or_foreign_memfds() {
    // Not sealed against writes: another holder could change it.
    let seg = MemfdSegment::create("not-read-only", 64 * 1024).unwrap();
    assert!(matches!(
        TenantView::open(seg.try_clone_fd().unwrap()),
        Err(Error::Shm(memwire_shm::Error::MissingSeals { .. }))
    ));
    // Sealed, but not a tenant segment.
    let map = seg.map(Access::ReadWrite).unwrap();
    map.write(0, b"something else").unwrap();
    seg.seal_future_write().unwrap();
    assert!(matches!(
        TenantView::open(seg.try_clone_fd().unwrap()),
        Err(Error::CorruptSegment { offset: 0, .. })
    ));
    // A real one carries all the seals.
    let w = TenantWriter::create("t", 1 << 16, 4).unwrap();
    let fd = w.try_clone_fd().unwrap();
    let adopted = MemfdSegment::from_read_only_fd(fd, 0).unwrap();
    assert!(adopted.map(Access::ReadWrite).is_err());
}
