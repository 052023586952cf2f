//! The resource API's errors, one by one, in one process.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use memwire_shm::resource::{MAX_RESOURCE_LEN, Scope, gc};
use memwire_shm::{Error, Namespace, Resource, ResourceOptions};

fn opts(test: &str) -> ResourceOptions {
    let ns = Namespace::new(format!("api-{test}-{}", std::process::id())).unwrap();
    Resource::options().namespace(ns)
}

#[test]
fn bad_names_and_sizes_are_distinct_errors() {
    let o = opts("bad");
    for name in ["", "/", "a/b", &"x".repeat(201), "sp ace"] {
        assert!(
            matches!(o.create(name, 10), Err(Error::InvalidName { .. })),
            "{name:?}"
        );
        assert!(
            matches!(o.open(name), Err(Error::InvalidName { .. })),
            "{name:?}"
        );
    }
    assert!(matches!(
        o.create("zero", 0),
        Err(Error::InvalidSize { size: 0, .. })
    ));
    assert!(matches!(
        o.create("huge", MAX_RESOURCE_LEN + 1),
        Err(Error::InvalidSize { .. })
    ));
    assert!(matches!(
        o.clone().initial_contents(vec![1; 11]).create("short", 10),
        Err(Error::InvalidSize { .. })
    ));
}

#[test]
fn missing_and_existing_names() {
    let o = opts("exists").remove_when_unused(true);
    assert!(matches!(o.open("nope"), Err(Error::NotFound { .. })));
    let first = o.create("taken", 10).unwrap();
    assert!(first.created());
    assert!(matches!(
        o.create("taken", 10),
        Err(Error::AlreadyExists { .. })
    ));
    let again = o.open_or_create("taken", 10).unwrap();
    assert!(!again.created());
    assert_eq!(again.len(), 10);
}

#[test]
fn contents_round_trip_and_overflow_is_refused() {
    let o = opts("contents").remove_when_unused(true);
    let r = o.clone().initial_contents(*b"abc").create("c", 8).unwrap();
    assert_eq!(r.get().unwrap(), b"abc");
    r.put(b"12345678").unwrap();
    assert_eq!(o.open("c").unwrap().get().unwrap(), b"12345678");
    let err = r.put(b"123456789").unwrap_err();
    assert!(matches!(err, Error::InvalidSize { size: 9, .. }));
    assert!(err.to_string().contains("(8 bytes)"), "{err}");
}

#[test]
fn holder_table_full_is_an_error_not_a_panic() {
    let o = opts("full").remove_when_unused(true);
    let mut held = vec![o.create("crowded", 10).unwrap()];
    // Every open, even by the same process, takes a slot of its own.
    let err = loop {
        match o.open("crowded") {
            Ok(r) => held.push(r),
            Err(e) => break e,
        }
        assert!(held.len() <= 64, "more holders than slots");
    };
    assert_eq!(held.len(), 64);
    assert!(
        matches!(err, Error::HolderTableFull { capacity: 64, .. }),
        "{err}"
    );
    // A slot freed is a slot to take.
    held.pop();
    held.push(o.open("crowded").unwrap());
}

#[test]
fn an_expired_resource_cannot_be_opened_and_gc_removes_it() {
    let o = opts("ttl");
    let r = o
        .clone()
        .ttl(Some(Duration::from_millis(1)))
        .create("short-lived", 10)
        .unwrap();
    assert_eq!(r.ttl(), Some(Duration::from_millis(1)));
    std::thread::sleep(Duration::from_millis(20));
    assert!(matches!(o.open("short-lived"), Err(Error::Expired { .. })));
    let ns = r.namespace().clone();
    drop(r);
    let report = gc(&Scope::Namespace(ns), Duration::from_secs(3600), false).unwrap();
    assert_eq!(report.removed.len(), 1, "{report:?}");
}

#[test]
fn remove_takes_the_name_but_holders_keep_their_memory() {
    let o = opts("remove");
    let r = o.create("gone", 10).unwrap();
    r.put(b"still here").unwrap();
    o.remove("gone").unwrap();
    assert!(matches!(o.open("gone"), Err(Error::NotFound { .. })));
    assert_eq!(r.get().unwrap(), b"still here");
    assert!(matches!(o.remove("gone"), Err(Error::NotFound { .. })));
}
