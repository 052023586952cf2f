//! The local endpoint's watchers with real processes: a store server child (this test binary
//! re-run with `MEMWIRE_TEST_ROLE=server`) and `Local` clients, over the real Unix socket.
//! Every change seen once, lag then resync; spinning and sleeping watchers and `next_async`;
//! a service-limited key that watches through the server, across a server restart.

mod local_support;

use local_support::{Server, admin_key};
use memwire_store::store::WatchEvent;
use memwire_store::{Error, Local, Role};

/// Runs a store server on `MEMWIRE_TEST_DATA` / `MEMWIRE_TEST_SOCKET` until killed; prints
/// `ready` when it listens (the admin key is the data directory's). Only as the child of
/// another test.
#[test]
#[ignore = "the server role of the other tests"]
fn server_role() -> anyhow::Result<()> {
    local_support::server_role()
}

#[test]
fn watchers_see_every_change_once_and_lag_then_resync() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let server = Server::start(tmp.path())?;
    let admin = Local::connect_at(&server.socket, &admin_key(tmp.path())?)?;
    let p = "acme/svc/v".parse()?;
    admin.set(&p, b"0")?;
    let mut watcher = admin.watch(&"acme/svc".parse()?, None)?;
    let writer = std::thread::spawn({
        let key = admin_key(tmp.path())?;
        let socket = server.socket.clone();
        move || -> anyhow::Result<Vec<u64>> {
            let w = Local::connect_at(&socket, &key)?;
            let mut versions = Vec::new();
            for i in 0..200u32 {
                versions.push(w.set(&"acme/svc/v".parse()?, &i.to_le_bytes())?.version);
            }
            Ok(versions)
        }
    });
    let mut seen = Vec::new();
    while seen.len() < 200 {
        match watcher.next()? {
            WatchEvent::Changed { version, .. } => seen.push(version),
            other => anyhow::bail!("unexpected {other:?}"),
        }
    }
    let written = writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer panicked"))??;
    assert_eq!(seen, written);

    // A slow watcher: the ring (as many slots as the quota's variables, at most) wraps.
    let mut slow = admin.watch(&"acme/svc".parse()?, None)?;
    let mut last = 0;
    for i in 0..70_000u32 {
        last = admin.set(&p, &i.to_le_bytes())?.version;
    }
    assert!(matches!(slow.next()?, WatchEvent::Lagged { .. }));
    match slow.next()? {
        WatchEvent::Current { version, value, .. } => {
            assert_eq!(version, last);
            assert_eq!(value, 69_999u32.to_le_bytes());
        }
        other => anyhow::bail!("unexpected {other:?}"),
    }
    assert!(matches!(slow.next()?, WatchEvent::Synced { version } if version == last));
    Ok(())
}

/// A watcher told to spin polls the ring instead of sleeping while changes come within its
/// spin; one that does not spin sleeps; `next_async` delivers the same changes in order.
#[test]
fn a_spinning_watcher_does_not_sleep_and_next_async_delivers_in_order() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let server = Server::start(tmp.path())?;
    let key = admin_key(tmp.path())?;
    let admin = Local::connect_at(&server.socket, &key)?;
    let path: memwire_store::protocol::VarPath = "acme/svc/v".parse()?;
    admin.set(&path, b"0")?;
    let scope: memwire_store::protocol::Scope = "acme/svc".parse()?;
    let write = |n: u32| {
        let (socket, key, path) = (server.socket.clone(), key.clone(), path.clone());
        std::thread::spawn(move || -> anyhow::Result<Vec<u64>> {
            let w = Local::connect_at(&socket, &key)?;
            let mut versions = Vec::new();
            for i in 0..n {
                versions.push(w.set(&path, &i.to_le_bytes())?.version);
            }
            Ok(versions)
        })
    };
    let joined = |h: std::thread::JoinHandle<anyhow::Result<Vec<u64>>>| {
        h.join().map_err(|_| anyhow::anyhow!("writer panicked"))?
    };
    let changed = |event: WatchEvent| match event {
        WatchEvent::Changed { version, .. } => Ok(version),
        other => Err(anyhow::anyhow!("unexpected {other:?}")),
    };

    // A spin far longer than the writes take: the watcher never sleeps.
    let mut spinning = admin.watch(&scope, None)?;
    spinning.set_spin(std::time::Duration::from_secs(60));
    let writer = write(100);
    let seen = (0..100)
        .map(|_| changed(spinning.next()?))
        .collect::<anyhow::Result<Vec<_>>>()?;
    assert_eq!(seen, joined(writer)?);
    assert_eq!(spinning.sleeps(), 0);

    // Without a spin, a watcher waiting before the first write sleeps.
    let mut sleeping = admin.watch(&scope, None)?;
    let writer = {
        let (socket, key, path) = (server.socket.clone(), key.clone(), path.clone());
        let stat = format!(
            "/proc/self/task/{}/stat",
            rustix::thread::gettid().as_raw_nonzero()
        );
        std::thread::spawn(move || -> anyhow::Result<Vec<u64>> {
            // Write once the watcher's thread sleeps in the kernel (state `S` in its stat
            // line, after the parenthesised command name).
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let line = std::fs::read_to_string(&stat)?;
                let state = line
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim().chars().next());
                if state == Some('S') {
                    break;
                }
                anyhow::ensure!(
                    std::time::Instant::now() < deadline,
                    "the watcher never slept"
                );
                std::thread::yield_now();
            }
            Ok(vec![
                Local::connect_at(&socket, &key)?
                    .set(&path, b"late")?
                    .version,
            ])
        })
    };
    let version = changed(sleeping.next()?)?;
    assert_eq!(vec![version], joined(writer)?);
    assert!(sleeping.sleeps() >= 1, "the watcher never slept");

    // `next_async`, on a tokio runtime.
    let mut watcher = admin.watch(&scope, None)?;
    let writer = write(50);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let seen = runtime.block_on(async {
        let mut seen = Vec::new();
        while seen.len() < 50 {
            seen.push(changed(watcher.next_async().await?)?);
        }
        anyhow::Ok(seen)
    })?;
    assert_eq!(seen, joined(writer)?);
    Ok(())
}

/// A key limited to one service may not map its tenant, so its local watch is served by the
/// server process: it sees the changes of its service in order, none of another service's
/// (even a write in between), sleeps on its eventfd until a change comes, and may not watch
/// the other service at all.
#[test]
fn a_service_limited_key_watches_through_the_server() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let server = Server::start(tmp.path())?;
    let admin = Local::connect_at(&server.socket, &admin_key(tmp.path())?)?;
    admin.set(&"acme/billing/rate".parse()?, b"0.19")?;
    let (limited, _) = admin.create_key(Some("acme"), Role::Read, Some("billing"), None)?;
    let limited = Local::connect_at(&server.socket, &limited)?;
    let mut watcher = limited.watch(&"acme/billing".parse()?, None)?;
    assert!(matches!(
        limited.watch(&"acme/secret".parse()?, None),
        Err(Error::PermissionDenied(_))
    ));
    assert!(watcher.try_next()?.is_none());

    let mut written = Vec::new();
    for (path, value) in [
        ("acme/billing/rate", &b"0.21"[..]),
        ("acme/secret/plan", b"hidden"),
        ("acme/billing/rate", b"0.22"),
    ] {
        let w = admin.set(&path.parse()?, value)?;
        if path.starts_with("acme/billing") {
            written.push((path.to_owned(), w.version, value.to_vec()));
        }
    }
    admin.delete(&"acme/billing/rate".parse()?, None)?;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match watcher.next()? {
            WatchEvent::Changed {
                path,
                version,
                value,
                ..
            } => seen.push((path.to_string(), version, value)),
            other => anyhow::bail!("unexpected {other:?}"),
        }
    }
    let want: Vec<_> = written
        .into_iter()
        .map(|(p, v, value)| (p, v, Some(value)))
        .collect();
    assert_eq!(&seen[..2], &want[..]);
    assert_eq!(
        (seen[2].0.as_str(), &seen[2].2),
        ("acme/billing/rate", &None)
    );

    // A change that comes later wakes it from its eventfd.
    let writer = {
        let (socket, key) = (server.socket.clone(), admin_key(tmp.path())?);
        std::thread::spawn(move || -> anyhow::Result<u64> {
            std::thread::sleep(std::time::Duration::from_millis(20));
            Ok(Local::connect_at(&socket, &key)?
                .set(&"acme/billing/late".parse()?, b"late")?
                .version)
        })
    };
    let version = match watcher.next()? {
        WatchEvent::Changed { version, .. } => version,
        other => anyhow::bail!("unexpected {other:?}"),
    };
    let written = writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer panicked"))??;
    assert_eq!(version, written);

    // The server dies: the watch says so; it comes back: the watch opens again on the new
    // connection and goes on from the next version.
    let mut server = server;
    server.kill()?;
    match watcher.next() {
        Err(Error::ServerGone) => {}
        Ok(event) => anyhow::bail!("an event from a dead server: {event:?}"),
        Err(e) => return Err(e.into()),
    }
    let restarted = Server::start(tmp.path())?;
    let after = Local::connect_at(&restarted.socket, &admin_key(tmp.path())?)?
        .set(&"acme/billing/after".parse()?, b"after")?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match watcher.next() {
            Ok(WatchEvent::Changed { path, version, .. }) => {
                assert_eq!(
                    (path.to_string(), version),
                    ("acme/billing/after".to_owned(), after.version)
                );
                break;
            }
            Ok(other) => anyhow::bail!("unexpected {other:?}"),
            Err(Error::ServerGone) => {
                anyhow::ensure!(std::time::Instant::now() < deadline, "never reconnected");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
