//! Reopening a store gives back exactly what it held: values, versions, timestamps,
//! revisions, with and without a snapshot, across several tenants.

mod store_support;

use anyhow::Result;
use memwire_store::store::{Quota, Session, Store, StoreConfig, Stored, WatchEvent};
use memwire_store::{FsyncPolicy, Role};
use store_support::{open_with as open, p};

/// Every variable with its value, and every tenant's revision.
type Everything = (Vec<(String, Stored)>, Vec<(String, u64)>);

/// Every variable of every tenant with its value, version and timestamp, and the revisions.
fn everything(store: &Store, admin: &Session) -> Result<Everything> {
    let mut all = Vec::new();
    for t in store.list(admin, None, None)? {
        let t = t.name.to_string();
        for s in store.list(admin, Some(&t), None)? {
            let s = s.name.to_string();
            for v in store.list(admin, Some(&t), Some(&s))? {
                let path = format!("{t}/{s}/{}", v.name);
                let stored = store.get(admin, &p(&path))?.expect("listed");
                all.push((path, stored));
            }
        }
    }
    let revisions = store
        .stats()
        .into_iter()
        .map(|s| (s.tenant, s.revision))
        .collect();
    Ok((all, revisions))
}

fn writes(store: &Store, admin: &Session, round: u32) -> Result<()> {
    for i in 0..40_u32 {
        let t = ["alpha", "beta"][(i % 2) as usize];
        store.set(
            admin,
            &p(&format!("{t}/s{}/v{}", i % 3, i % 7)),
            format!("{round}-{i}").as_bytes(),
            None,
        )?;
        if i % 5 == 0 {
            let _ = store.delete(admin, &p(&format!("{t}/s0/v{}", i % 7)), None);
        }
    }
    store.set_many(
        admin,
        "alpha",
        "batch",
        &[("x", b"1"), ("y", b""), ("z", &[9; 3000])],
    )?;
    Ok(())
}

#[test]
fn reopening_gives_back_everything() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let before = {
        let (store, admin) = open(tmp.path(), 1_000_000)?;
        store.create_tenant(
            &admin,
            "beta",
            Some(Quota {
                bytes: 1 << 20,
                variables: 64,
            }),
        )?;
        writes(&store, &admin, 0)?;
        everything(&store, &admin)?
        // Dropped without a snapshot: the log alone brings it back.
    };
    let (store, admin) = open(tmp.path(), 1_000_000)?;
    assert_eq!(everything(&store, &admin)?, before);
    let quota = store
        .stats()
        .into_iter()
        .find(|s| s.tenant == "beta")
        .expect("beta")
        .quota;
    assert_eq!(
        quota,
        Quota {
            bytes: 1 << 20,
            variables: 64
        }
    );

    // A snapshot, more writes, a reopen: the snapshot and the records after it.
    store.snapshot()?;
    writes(&store, &admin, 1)?;
    let before = everything(&store, &admin)?;
    drop(store);
    let (store, admin) = open(tmp.path(), 1_000_000)?;
    assert_eq!(everything(&store, &admin)?, before);

    // close() snapshots: the next start replays nothing.
    writes(&store, &admin, 2)?;
    let before = everything(&store, &admin)?;
    store.close()?;
    let mut config = StoreConfig::new(tmp.path());
    config.fsync = FsyncPolicy::Never;
    let (store, startup) = Store::open(config)?;
    assert_eq!(startup.records_replayed, 0);
    assert_eq!(startup.tenants, 2);
    assert_eq!(startup.revisions, before.1);
    assert_eq!(everything(&store, &admin)?, before);

    // Writes continue from the restored revision; a watcher from before it has lagged.
    let alpha = before
        .1
        .iter()
        .find(|(t, _)| t == "alpha")
        .expect("alpha")
        .1;
    let w = store.set(&admin, &p("alpha/s0/new"), b"n", None)?;
    assert_eq!(w.version, alpha + 1);
    let mut watcher = store.watch(&admin, &"alpha/batch".parse()?, Some(alpha))?;
    let events = watcher.poll()?;
    assert_eq!(
        events.first(),
        Some(&WatchEvent::Lagged {
            missed_from: alpha,
            resumed_at: alpha + 1
        })
    );
    assert_eq!(
        events.last(),
        Some(&WatchEvent::Synced { version: alpha + 1 })
    );
    assert_eq!(events.len(), 2 + 3);
    Ok(())
}

#[test]
fn automatic_snapshots_and_keys_survive() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (key, before) = {
        let (store, admin) = open(tmp.path(), 7)?;
        for round in 0..3 {
            writes(&store, &admin, round)?;
        }
        let (key, _) = store.create_key(&admin, Some("alpha"), Role::Read, None, None)?;
        (key, everything(&store, &admin)?)
    };
    let snapshots = std::fs::read_dir(tmp.path().join("log"))?
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("snapshot-"))
        })
        .count();
    assert_eq!(snapshots, 1);
    let (store, admin) = open(tmp.path(), 7)?;
    assert_eq!(everything(&store, &admin)?, before);
    let reader = store.authenticate(&key)?;
    assert!(store.get(&reader, &p("alpha/batch/x"))?.is_some());
    Ok(())
}
