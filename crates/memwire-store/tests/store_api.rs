//! The store's requests and who may make them, in process.

use std::time::Duration;

mod store_support;

use anyhow::Result;
use memwire_store::store::Quota;
use memwire_store::{Error, Role, ServicePattern, TenantView};
use store_support::{key, open, p};

#[test]
fn set_get_delete_and_compare_and_set() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (store, admin) = open(tmp.path())?;
    // An admin's set creates the tenant.
    let w1 = store.set(&admin, &p("acme/billing/rate"), b"0.19", None)?;
    assert_eq!(w1.version, 1);
    let got = store.get(&admin, &p("acme/billing/rate"))?.expect("set");
    assert_eq!((got.value.as_slice(), got.version), (&b"0.19"[..], 1));
    assert_eq!(got.timestamp_ms, w1.timestamp_ms);
    assert_eq!(store.get(&admin, &p("acme/billing/none"))?, None);
    assert!(matches!(
        store.get(&admin, &p("nobody/billing/rate")),
        Err(Error::NotFound(_))
    ));

    assert!(matches!(
        store.set(&admin, &p("acme/billing/rate"), b"x", Some(0)),
        Err(Error::Conflict {
            expected: 0,
            found: 1
        })
    ));
    assert_eq!(
        store
            .set(&admin, &p("acme/billing/new"), b"x", Some(0))?
            .version,
        2
    );
    assert_eq!(
        store
            .set(&admin, &p("acme/billing/rate"), b"0.2", Some(1))?
            .version,
        3
    );
    assert!(matches!(
        store.delete(&admin, &p("acme/billing/rate"), Some(1)),
        Err(Error::Conflict {
            expected: 1,
            found: 3
        })
    ));
    assert_eq!(
        store
            .delete(&admin, &p("acme/billing/rate"), Some(3))?
            .version,
        4
    );
    assert!(matches!(
        store.delete(&admin, &p("acme/billing/rate"), None),
        Err(Error::NotFound(_))
    ));
    assert_eq!(store.get(&admin, &p("acme/billing/rate"))?, None);

    let big = vec![0; (1 << 20) + 1];
    assert!(matches!(
        store.set(&admin, &p("acme/billing/big"), &big, None),
        Err(Error::BadRequest(_))
    ));
    let names: Vec<String> = store
        .list(&admin, Some("acme"), Some("billing"))?
        .into_iter()
        .map(|e| e.name.to_string())
        .collect();
    assert_eq!(names, ["new"]);
    let tenants = store.list(&admin, None, None)?;
    assert_eq!(tenants.len(), 1);
    assert_eq!((tenants[0].version, tenants[0].count), (4, Some(1)));
    let stats = store.stats();
    assert_eq!(stats[0].revision, 4);
    assert_eq!(stats[0].variables, 1);
    assert_eq!(stats[0].quota, Quota::default());
    Ok(())
}

#[test]
fn permissions_are_checked_on_every_request() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (store, admin) = open(tmp.path())?;
    store.create_tenant(&admin, "a", None)?;
    store.create_tenant(&admin, "b", None)?;
    assert!(matches!(
        store.create_tenant(&admin, "a", None),
        Err(Error::BadRequest(_))
    ));
    store.set(&admin, &p("b/s/v"), b"b", None)?;

    let reader = key(&store, &admin, "a", Role::Read)?;
    let writer = key(&store, &admin, "a", Role::Write)?;
    let tenant_admin = key(&store, &admin, "a", Role::Admin)?;

    // A read key cannot write.
    assert!(matches!(
        store.set(&reader, &p("a/s/v"), b"1", None),
        Err(Error::PermissionDenied(_))
    ));
    store.set(&writer, &p("a/s/v"), b"1", None)?;
    assert_eq!(
        store.get(&reader, &p("a/s/v"))?.map(|s| s.value),
        Some(b"1".to_vec())
    );
    // A key of tenant a sees nothing of b.
    for s in [&reader, &writer, &tenant_admin] {
        assert!(matches!(
            store.get(s, &p("b/s/v")),
            Err(Error::PermissionDenied(_))
        ));
        assert!(matches!(
            store.set(s, &p("b/s/v"), b"x", None),
            Err(Error::PermissionDenied(_))
        ));
        assert!(matches!(
            store.tenant_fd(s, "b"),
            Err(Error::PermissionDenied(_))
        ));
        assert!(matches!(
            store.watch(s, &"b".parse()?, None),
            Err(Error::PermissionDenied(_))
        ));
        assert!(matches!(
            store.list(s, Some("b"), None),
            Err(Error::PermissionDenied(_))
        ));
    }
    // A write key does not create tenants; it cannot manage keys.
    assert!(matches!(
        store.set(&writer, &p("a2/s/v"), b"1", None),
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(
        store.create_key(&writer, Some("a"), Role::Read, None, None),
        Err(Error::PermissionDenied(_))
    ));
    // Nor list or revoke them: refused before the id is looked up, so a key that is not an
    // admin learns nothing of which ids exist.
    for s in [&reader, &writer] {
        assert!(matches!(
            store.list_keys(s),
            Err(Error::PermissionDenied(_))
        ));
        for id in [reader.key_id(), "nonexist"] {
            assert!(matches!(
                store.revoke_key(s, id),
                Err(Error::PermissionDenied(_))
            ));
        }
    }
    // A tenant admin makes keys of its tenant only, and sees only their records.
    store.create_key(&tenant_admin, Some("a"), Role::Read, None, Some("dash"))?;
    for other in [Some("b"), None] {
        assert!(matches!(
            store.create_key(&tenant_admin, other, Role::Read, None, None),
            Err(Error::PermissionDenied(_))
        ));
    }
    assert!(
        store
            .list_keys(&tenant_admin)?
            .iter()
            .all(|r| r.tenant.as_deref() == Some("a"))
    );
    assert!(store.list_keys(&admin)?.iter().any(|r| r.tenant.is_none()));
    assert!(matches!(
        store.create_tenant(&tenant_admin, "c", None),
        Err(Error::PermissionDenied(_))
    ));
    assert_eq!(store.list(&reader, None, None)?.len(), 1);

    // A pattern key reads its services through the store, never through a mapping.
    let (pattern_key, _) = store.create_key(
        &admin,
        Some("a"),
        Role::Write,
        Some(ServicePattern::new("s*")?),
        None,
    )?;
    let pattern = store.authenticate(&pattern_key)?;
    assert!(store.get(&pattern, &p("a/s/v"))?.is_some());
    assert!(matches!(
        store.get(&pattern, &p("a/other/v")),
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(
        store.tenant_fd(&pattern, "a"),
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(
        store.watch(&pattern, &"a".parse()?, None),
        Err(Error::PermissionDenied(_))
    ));
    store.watch(&pattern, &"a/s".parse()?, None)?;
    store.set(&admin, &p("a/other/x"), b"1", None)?;
    let services: Vec<String> = store
        .list(&pattern, Some("a"), None)?
        .into_iter()
        .map(|e| e.name.to_string())
        .collect();
    assert_eq!(services, ["s"]);

    assert!(matches!(
        store.authenticate("mw_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        Err(Error::Unauthenticated(_))
    ));
    Ok(())
}

#[test]
fn quotas_refuse_before_anything_is_logged() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    {
        let (store, admin) = open(tmp.path())?;
        store.create_tenant(
            &admin,
            "small",
            Some(Quota {
                bytes: 4096,
                variables: 2,
            }),
        )?;
        store.set(&admin, &p("small/s/a"), b"1", None)?;
        store.set(&admin, &p("small/s/b"), b"2", None)?;
        assert!(matches!(
            store.set(&admin, &p("small/s/c"), b"3", None),
            Err(Error::QuotaExceeded(_))
        ));
        assert!(matches!(
            store.set(&admin, &p("small/s/a"), &[0; 4096], None),
            Err(Error::BadRequest(_) | Error::QuotaExceeded(_))
        ));
        assert!(matches!(
            store.set_many(&admin, "small", "s", &[("a", b"x"), ("c", b"y")]),
            Err(Error::QuotaExceeded(_))
        ));
        assert_eq!(store.stats()[0].revision, 2);
    }
    // Nothing refused reached the log: the replay gives the same state.
    let (store, admin) = open(tmp.path())?;
    assert_eq!(store.stats()[0].revision, 2);
    assert_eq!(
        store.get(&admin, &p("small/s/a"))?.map(|s| s.value),
        Some(b"1".to_vec())
    );
    assert_eq!(store.get(&admin, &p("small/s/c"))?, None);
    Ok(())
}

#[test]
fn set_many_is_all_or_nothing_through_a_mapping() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (store, admin) = open(tmp.path())?;
    store.set(&admin, &p("t/s/a"), b"a0", None)?;
    let (fd, epoch) = store.tenant_fd(&admin, "t")?;
    assert_eq!(epoch, 0);
    let view = TenantView::open(fd)?;
    let w = store.set_many(
        &admin,
        "t",
        "s",
        &[("a", b"a1"), ("b", b"b1"), ("c", b"c1")],
    )?;
    assert_eq!(w.version, 4);
    for (var, version) in [("a", 2), ("b", 3), ("c", 4)] {
        let v = view.get("s", var)?.expect("set");
        assert_eq!(v.version, version);
        assert_eq!(v.bytes, format!("{var}1").into_bytes());
    }
    // A refused batch (a name twice) changes nothing.
    assert!(matches!(
        store.set_many(&admin, "t", "s", &[("a", b"a2"), ("a", b"a3")]),
        Err(Error::BadRequest(_))
    ));
    assert_eq!(view.revision()?, 4);
    assert_eq!(view.get("s", "a")?.map(|v| v.bytes), Some(b"a1".to_vec()));
    Ok(())
}

#[test]
fn a_revoked_key_fails_at_once_and_its_mapping_is_retired() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (store, admin) = open(tmp.path())?;
    store.set(&admin, &p("t/s/a"), b"1", None)?;
    let (key, record) = store.create_key(&admin, Some("t"), Role::Read, None, None)?;
    let reader = store.authenticate(&key)?;
    let (fd, epoch) = store.tenant_fd(&reader, "t")?;
    let old = TenantView::open(fd)?;
    let mut watcher = store.watch(&reader, &"t".parse()?, None)?;
    assert_eq!(store.get(&reader, &p("t/s/a"))?.map(|s| s.version), Some(1));

    let revoked = store.revoke_key(&admin, &record.id)?;
    assert!(revoked.revoked);
    assert!(matches!(
        store.get(&reader, &p("t/s/a")),
        Err(Error::Unauthenticated(_))
    ));
    assert!(matches!(
        store.tenant_fd(&reader, "t"),
        Err(Error::Unauthenticated(_))
    ));
    assert!(matches!(watcher.poll(), Err(Error::Unauthenticated(_))));
    assert!(matches!(
        store.authenticate(&key),
        Err(Error::Unauthenticated(_))
    ));

    store.set(&admin, &p("t/s/a"), b"2", None)?;
    store.set(&admin, &p("t/s/b"), b"3", None)?;
    assert!(old.is_retired()?);
    assert_eq!(old.revision()?, 1);
    assert_eq!(old.get("s", "a")?.map(|v| v.bytes), Some(b"1".to_vec()));
    assert_eq!(old.get("s", "b")?, None);

    let (fd, new_epoch) = store.tenant_fd(&admin, "t")?;
    assert_eq!(new_epoch, epoch + 1);
    let new = TenantView::open(fd)?;
    assert!(!new.is_retired()?);
    assert_eq!(new.revision()?, 3);
    assert_eq!(
        new.get("s", "a")?.map(|v| (v.bytes, v.version)),
        Some((b"2".to_vec(), 2))
    );
    assert_eq!(new.get("s", "b")?.map(|v| v.version), Some(3));
    assert_eq!(store.stats()[0].epoch, 1);
    // Reads through the store follow the move.
    assert_eq!(store.get(&admin, &p("t/s/a"))?.map(|s| s.version), Some(2));

    // A tenant admin cannot revoke a key of every tenant.
    let (ta, _) = store.create_key(&admin, Some("t"), Role::Admin, None, None)?;
    let ta = store.authenticate(&ta)?;
    let admin_id = admin.key_id().to_owned();
    assert!(matches!(
        store.revoke_key(&ta, &admin_id),
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(
        store.revoke_key(&ta, "nonexist"),
        Err(Error::NotFound(_))
    ));
    Ok(())
}

#[test]
fn blocking_and_async_waits_wake_on_a_write() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (store, admin) = open(tmp.path())?;
    store.set(&admin, &p("t/s/a"), b"0", None)?;
    let store = std::sync::Arc::new(store);
    let mut watcher = store.watch(&admin, &"t/s/a".parse()?, None)?;
    let writer = {
        let (store, admin) = (std::sync::Arc::clone(&store), admin.clone());
        std::thread::spawn(move || store.set(&admin, &p("t/s/a"), b"1", None))
    };
    let mut events = Vec::new();
    while events.is_empty() {
        events = watcher.wait_timeout(Duration::from_secs(30))?;
    }
    writer.join().expect("writer")?;
    assert_eq!(events.len(), 1);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let writer = {
        let (store, admin) = (std::sync::Arc::clone(&store), admin.clone());
        std::thread::spawn(move || store.set(&admin, &p("t/s/a"), b"2", None))
    };
    let events = runtime.block_on(watcher.next_batch())?;
    writer.join().expect("writer")?;
    assert!(matches!(
        &events[..],
        [memwire_store::WatchEvent::Changed { version: 3, .. }]
    ));
    Ok(())
}
