//! Watchers: every change in order exactly once, and `Lagged` + current values + `Synced`
//! for one that fell behind.

use std::collections::BTreeMap;

mod store_support;

use anyhow::{Result, ensure};
use memwire_store::segment::ChangeKind;
use memwire_store::store::{Quota, WatchEvent};
use store_support::{open, p};

/// A change as the writer made it and a watcher saw it: version, path, value (`None`: deleted).
type Change = (u64, String, Option<Vec<u8>>);

#[test]
fn every_change_in_order_exactly_once() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (store, admin) = open(tmp.path())?;
    store.create_tenant(&admin, "t", None)?;
    let store = std::sync::Arc::new(store);
    let mut tenant = store.watch(&admin, &"t".parse()?, None)?;
    let mut service = store.watch(&admin, &"t/a".parse()?, None)?;
    let mut variable = store.watch(&admin, &"t/a/x".parse()?, Some(1))?;

    let writer = {
        let (store, admin) = (std::sync::Arc::clone(&store), admin.clone());
        std::thread::spawn(move || -> Result<Vec<Change>> {
            let mut expected = Vec::new();
            for i in 0..500_u32 {
                let value = i.to_le_bytes().to_vec();
                match i % 4 {
                    0 | 1 => {
                        let path = format!("t/{}/x", ["a", "b"][(i % 2) as usize]);
                        let w = store.set(&admin, &p(&path), &value, None)?;
                        expected.push((w.version, path, Some(value)));
                    }
                    2 => {
                        let w =
                            store.set_many(&admin, "t", "a", &[("x", &value), ("y", &value)])?;
                        expected.push((w.version - 1, "t/a/x".into(), Some(value.clone())));
                        expected.push((w.version, "t/a/y".into(), Some(value)));
                    }
                    _ => {
                        let w = store.delete(&admin, &p("t/a/y"), None)?;
                        expected.push((w.version, "t/a/y".into(), None));
                    }
                }
            }
            Ok(expected)
        })
    };
    let mut seen: BTreeMap<&str, Vec<Change>> = BTreeMap::new();
    let watchers = [
        ("tenant", &mut tenant),
        ("service", &mut service),
        ("variable", &mut variable),
    ];
    // Read while the writer writes, then until every watcher reached the end.
    let mut done = false;
    let mut watchers = watchers;
    loop {
        let finished = writer.is_finished();
        for (name, w) in &mut watchers {
            for e in w.poll()? {
                match e {
                    WatchEvent::Changed {
                        path,
                        kind,
                        value,
                        version,
                        ..
                    } => {
                        ensure!((kind == ChangeKind::Delete) == value.is_none());
                        seen.entry(name)
                            .or_default()
                            .push((version, path.to_string(), value));
                    }
                    other => anyhow::bail!("{name}: unexpected {other:?}"),
                }
            }
        }
        if done {
            break;
        }
        done = finished;
    }
    let expected = writer.join().expect("writer")?;
    assert_eq!(expected.len(), 625);
    assert_eq!(seen["tenant"], expected);
    let in_a: Vec<_> = expected
        .iter()
        .filter(|e| e.1.starts_with("t/a/"))
        .cloned()
        .collect();
    assert_eq!(seen["service"], in_a);
    let x: Vec<_> = expected
        .iter()
        .filter(|e| e.1 == "t/a/x")
        .cloned()
        .collect();
    assert_eq!(seen["variable"], x);
    Ok(())
}

#[test]
fn a_watcher_that_falls_behind_gets_lagged_current_synced_then_live() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (store, admin) = open(tmp.path())?;
    // 16 variables: a change ring (and feed window) of 64 changes.
    store.create_tenant(
        &admin,
        "t",
        Some(Quota {
            bytes: 1 << 16,
            variables: 16,
        }),
    )?;
    store.set(&admin, &p("t/s/keep"), b"k", None)?;
    store.set(&admin, &p("t/other/z"), b"z", None)?;
    let mut watcher = store.watch(&admin, &"t/s".parse()?, None)?;
    store.set(&admin, &p("t/s/gone"), b"g", None)?;
    for i in 0..100_u32 {
        store.set(
            &admin,
            &p(&format!("t/s/v{}", i % 3)),
            &i.to_le_bytes(),
            None,
        )?;
    }
    store.delete(&admin, &p("t/s/gone"), None)?;
    let head = store.stats()[0].revision;
    assert_eq!(head, 2 + 1 + 100 + 1);
    let events = watcher.poll()?;
    assert_eq!(
        events[0],
        WatchEvent::Lagged {
            missed_from: 3,
            resumed_at: head
        }
    );
    let current: Vec<(String, Vec<u8>, u64)> = events[1..events.len() - 1]
        .iter()
        .map(|e| match e {
            WatchEvent::Current {
                path,
                value,
                version,
                ..
            } => (path.to_string(), value.clone(), *version),
            other => panic!("expected current values, got {other:?}"),
        })
        .collect();
    assert_eq!(
        current,
        [
            ("t/s/keep".to_owned(), b"k".to_vec(), 1),
            ("t/s/v0".to_owned(), 99_u32.to_le_bytes().to_vec(), 103),
            ("t/s/v1".to_owned(), 97_u32.to_le_bytes().to_vec(), 101),
            ("t/s/v2".to_owned(), 98_u32.to_le_bytes().to_vec(), 102),
        ]
    );
    assert_eq!(events.last(), Some(&WatchEvent::Synced { version: head }));
    assert!(watcher.poll()?.is_empty());
    // Then live again, from the next version.
    store.set(&admin, &p("t/s/keep"), b"k2", None)?;
    store.set(&admin, &p("t/other/z"), b"z2", None)?;
    let events = watcher.poll()?;
    assert!(matches!(
        &events[..],
        [WatchEvent::Changed { version, kind: ChangeKind::Set, .. }] if *version == head + 1
    ));
    // A resume from a version the window still holds misses nothing.
    let mut resumed = store.watch(&admin, &"t".parse()?, Some(head))?;
    let versions: Vec<u64> = resumed
        .poll()?
        .iter()
        .map(|e| match e {
            WatchEvent::Changed { version, .. } => *version,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(versions, [head, head + 1, head + 2]);
    Ok(())
}
