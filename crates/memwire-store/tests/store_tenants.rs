//! Tenants created and deleted at run time, in process: who may, what a delete leaves behind
//! (nothing: reads, listings, mappings and watchers all find the tenant gone), versions that
//! never go back under a name, and deletes that survive a restart, with or without a snapshot.

mod store_support;

use std::time::Duration;

use anyhow::{Result, ensure};
use memwire_store::store::{Quota, WatchEvent};
use memwire_store::{Error, Role, TenantView};
use store_support::{key, open, p};

/// Long enough that only a watcher nobody woke reaches it; never a measure of speed.
const HANG_GUARD: Duration = Duration::from_secs(30);

#[test]
fn only_admins_create_and_delete_and_quotas_hold() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (store, admin) = open(tmp.path())?;
    let quota = Quota {
        bytes: 1 << 20,
        variables: 2,
    };
    store.create_tenant(&admin, "q", Some(quota))?;
    ensure!(matches!(
        store.create_tenant(&admin, "q", None),
        Err(Error::BadRequest(_))
    ));
    store.set(&admin, &p("q/s/1"), b"1", None)?;
    store.set(&admin, &p("q/s/2"), b"2", None)?;
    ensure!(matches!(
        store.set(&admin, &p("q/s/3"), b"3", None),
        Err(Error::QuotaExceeded(_))
    ));
    // A quota of bytes: a value past it does not fit.
    store.create_tenant(
        &admin,
        "small",
        Some(store.quota_or_default(Some(4096), None)),
    )?;
    // Each costs 1000 value bytes, 8 of names and 64: the fourth is past 4096.
    for i in 0..3 {
        store.set(&admin, &p(&format!("small/s/v{i}")), &[0; 1000], None)?;
    }
    ensure!(matches!(
        store.set(&admin, &p("small/s/v3"), &[0; 1000], None),
        Err(Error::QuotaExceeded(_))
    ));
    ensure!(matches!(
        store.create_tenant(&admin, "none", Some(store.quota_or_default(None, Some(0)))),
        Err(Error::BadRequest(_))
    ));

    let writer = key(&store, &admin, "q", Role::Write)?;
    let reader = key(&store, &admin, "q", Role::Read)?;
    let other_admin = key(&store, &admin, "small", Role::Admin)?;
    for session in [&writer, &reader, &other_admin] {
        ensure!(matches!(
            store.delete_tenant(session, "q"),
            Err(Error::PermissionDenied(_))
        ));
        ensure!(matches!(
            store.create_tenant(session, "fresh", None),
            Err(Error::PermissionDenied(_))
        ));
    }
    // A tenant admin may delete its own tenant; nobody deletes a missing one.
    let q_admin = key(&store, &admin, "q", Role::Admin)?;
    ensure!(store.delete_tenant(&q_admin, "q")? == 3);
    ensure!(matches!(
        store.delete_tenant(&admin, "q"),
        Err(Error::NotFound(_))
    ));
    ensure!(matches!(
        store.delete_tenant(&admin, "never"),
        Err(Error::NotFound(_))
    ));
    Ok(())
}

#[test]
fn a_deleted_tenant_is_gone_and_its_name_counts_on() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (store, admin) = open(tmp.path())?;
    store.set(&admin, &p("t/s/a"), b"old a", None)?;
    store.set(&admin, &p("t/s/b"), b"old b", None)?;
    store.set(&admin, &p("keep/s/v"), b"kept", None)?;
    let writer = key(&store, &admin, "t", Role::Write)?;
    let (fd, _) = store.tenant_fd(&admin, "t")?;
    let mapped = TenantView::open(fd)?;
    ensure!(!mapped.is_retired()?);

    ensure!(
        store.delete_tenant(&admin, "t")? == 3,
        "the delete takes version 3"
    );
    ensure!(matches!(
        store.get(&admin, &p("t/s/a")),
        Err(Error::NotFound(_))
    ));
    ensure!(matches!(
        store.list(&admin, Some("t"), None),
        Err(Error::NotFound(_))
    ));
    ensure!(matches!(
        store.tenant_fd(&admin, "t"),
        Err(Error::NotFound(_))
    ));
    ensure!(matches!(
        store.watch(&admin, &"t".parse()?, None),
        Err(Error::NotFound(_))
    ));
    let tenants: Vec<String> = store
        .list(&admin, None, None)?
        .into_iter()
        .map(|e| e.name.to_string())
        .collect();
    ensure!(tenants == ["keep"], "{tenants:?}");
    ensure!(store.stats().iter().all(|s| s.tenant != "t"));
    // The mapping a client held is retired: it must look the tenant up again.
    ensure!(mapped.is_retired()?);
    ensure!(store.get(&admin, &p("keep/s/v"))?.is_some());

    // A write key does not bring the tenant back; an admin's set does, empty, and its
    // versions start after the delete's.
    ensure!(matches!(
        store.set(&writer, &p("t/s/a"), b"no", None),
        Err(Error::NotFound(_))
    ));
    let w = store.set(&admin, &p("t/s/a"), b"new a", None)?;
    ensure!(
        w.version == 4,
        "first write after the delete: {}",
        w.version
    );
    ensure!(store.get(&admin, &p("t/s/b"))?.is_none());
    ensure!(store.set(&writer, &p("t/s/c"), b"c", None)?.version == 5);
    // Deleted again, created again with create_tenant: still counting on.
    ensure!(store.delete_tenant(&admin, "t")? == 6);
    store.create_tenant(&admin, "t", None)?;
    ensure!(store.set(&admin, &p("t/s/a"), b"third", None)?.version == 7);
    Ok(())
}

#[test]
fn watchers_end_after_the_changes_before_the_delete() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (store, admin) = open(tmp.path())?;
    let store = std::sync::Arc::new(store);
    store.set(&admin, &p("t/s/a"), b"1", None)?;
    let mut unread = store.watch(&admin, &"t".parse()?, None)?;
    let mut sleeping = store.watch(&admin, &"t/s".parse()?, None)?;
    store.set(&admin, &p("t/s/a"), b"2", None)?;
    ensure!(sleeping.poll()?.len() == 1);

    // A blocked watcher wakes up for the delete, with the error.
    let waiter = std::thread::spawn(move || sleeping.wait_timeout(HANG_GUARD));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut async_watch = store.watch(&admin, &"t/s/a".parse()?, None)?;
    let deleted = runtime.block_on(async {
        let next = tokio::spawn(async move { async_watch.next_batch().await });
        tokio::task::yield_now().await;
        let version = store.delete_tenant(&admin, "t")?;
        anyhow::Ok((version, next.await?))
    });
    let (version, async_end) = deleted?;
    ensure!(version == 3);
    ensure!(
        matches!(&async_end, Err(Error::NotFound(m)) if m.contains("deleted")),
        "{async_end:?}"
    );
    let woken = waiter
        .join()
        .map_err(|_| anyhow::anyhow!("the waiter panicked"))?;
    ensure!(matches!(woken, Err(Error::NotFound(_))), "{woken:?}");

    // The watcher that had not read the second set gets it, then the end, then the end again
    // (even once the name is back).
    let events = unread.poll()?;
    ensure!(
        matches!(&events[..], [WatchEvent::Changed { version: 2, .. }]),
        "{events:?}"
    );
    ensure!(matches!(unread.poll(), Err(Error::NotFound(_))));
    Ok(())
}

#[test]
fn a_watch_resumed_across_a_delete_starts_over_from_the_new_tenant() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (store, admin) = open(tmp.path())?;
    store.set(&admin, &p("t/s/old"), b"old", None)?; // 1
    store.set(&admin, &p("t/s/both"), b"old", None)?; // 2
    let mut ended = store.watch(&admin, &"t".parse()?, None)?;
    ensure!(store.delete_tenant(&admin, "t")? == 3);
    store.set(&admin, &p("t/s/both"), b"new", None)?; // 4
    store.set(&admin, &p("t/s/new"), b"new", None)?; // 5
    ensure!(matches!(ended.poll(), Err(Error::NotFound(_))));

    // Resumed from a version the old tenant gave (or the delete's): `Lagged`, then the new
    // tenant's values alone, then `Synced`; never the old values, never a version going back.
    for from in [2, 3] {
        let mut resumed = store.watch(&admin, &"t".parse()?, Some(from))?;
        let events = resumed.poll()?;
        let current: Vec<(String, Vec<u8>, u64)> = events
            .iter()
            .filter_map(|e| match e {
                WatchEvent::Current {
                    path,
                    value,
                    version,
                    ..
                } => Some((path.to_string(), value.clone(), *version)),
                _ => None,
            })
            .collect();
        ensure!(
            matches!(
                events.first(),
                Some(WatchEvent::Lagged { resumed_at: 5, .. })
            ) && matches!(events.last(), Some(WatchEvent::Synced { version: 5 })),
            "from {from}: {events:?}"
        );
        ensure!(
            current
                == [
                    ("t/s/both".to_owned(), b"new".to_vec(), 4),
                    ("t/s/new".to_owned(), b"new".to_vec(), 5)
                ],
            "from {from}: {current:?}"
        );
    }
    // From just after the delete: the new tenant's changes, in order.
    let mut after = store.watch(&admin, &"t".parse()?, Some(4))?;
    let versions: Vec<u64> = after
        .poll()?
        .iter()
        .filter_map(|e| match e {
            WatchEvent::Changed { version, .. } => Some(*version),
            _ => None,
        })
        .collect();
    ensure!(versions == [4, 5], "{versions:?}");
    Ok(())
}

#[test]
fn deletes_survive_a_restart_with_and_without_a_snapshot() -> Result<()> {
    for snapshot in [false, true] {
        let tmp = tempfile::tempdir()?;
        {
            let (store, admin) = open(tmp.path())?;
            store.set(&admin, &p("gone/s/v"), b"1", None)?;
            store.set(&admin, &p("gone/s/v"), b"2", None)?;
            store.set(&admin, &p("back/s/v"), b"1", None)?;
            store.create_tenant(
                &admin,
                "kept",
                Some(Quota {
                    bytes: 1 << 20,
                    variables: 1,
                }),
            )?;
            ensure!(store.delete_tenant(&admin, "gone")? == 3);
            ensure!(store.delete_tenant(&admin, "back")? == 2);
            store.set(&admin, &p("back/s/w"), b"again", None)?;
            if snapshot {
                store.snapshot()?;
            }
            // No close: whatever was logged is what a killed server leaves.
        }
        let (store, admin) = open(tmp.path())?;
        ensure!(
            matches!(store.get(&admin, &p("gone/s/v")), Err(Error::NotFound(_))),
            "snapshot {snapshot}: the deleted tenant came back"
        );
        ensure!(store.get(&admin, &p("back/s/v"))?.is_none());
        let back = store
            .get(&admin, &p("back/s/w"))?
            .map(|s| (s.value, s.version));
        ensure!(back == Some((b"again".to_vec(), 3)), "{back:?}");
        store.set(&admin, &p("kept/s/2"), b"x", None)?;
        ensure!(matches!(
            store.set(&admin, &p("kept/s/3"), b"x", None),
            Err(Error::QuotaExceeded(_))
        ));
        // The deleted name still counts on from its delete, after the restart.
        let w = store.set(&admin, &p("gone/s/v"), b"new", None)?;
        ensure!(w.version == 4, "snapshot {snapshot}: version {}", w.version);
    }
    Ok(())
}
