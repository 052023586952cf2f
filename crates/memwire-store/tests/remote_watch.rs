//! Remote watches: every change in order exactly once, a watcher that does not read gets
//! `lagged`, the current values and `synced` (and the writer never waits for it), and a watch
//! resumes after a reconnect without a gap.

mod remote_support;

use std::collections::BTreeMap;

use anyhow::{Result, bail, ensure};
use memwire_store::protocol::{EventKind, Response, VarPath};
use memwire_store::remote::{Remote, RemoteOptions, ServerOptions};
use memwire_store::store::WatchEvent;
use remote_support::{GUARD, Server, auth, raw, recv, send_text};

fn p(path: &str) -> VarPath {
    path.parse().expect("path")
}

/// (version, path, value; `None`: deleted)
type Change = (u64, String, Option<Vec<u8>>);

fn change(event: &WatchEvent) -> Option<Change> {
    match event {
        WatchEvent::Changed {
            path,
            value,
            version,
            ..
        } => Some((*version, path.to_string(), value.clone())),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_in_order_exactly_once() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let remote = Remote::connect(&server.url, &server.admin_key, RemoteOptions::default()).await?;
    server.store.create_tenant(&server.admin, "t", None)?;
    let mut watch = remote.watch(&"t".parse()?, None).await?;
    let writer = {
        let remote = remote.clone();
        tokio::spawn(async move {
            let mut expected = Vec::new();
            for i in 0..600_u32 {
                let value = i.to_le_bytes().to_vec();
                match i % 3 {
                    0 => {
                        let path = format!("t/{}/x", ["a", "b"][(i % 2) as usize]);
                        let w = remote.set(&p(&path), &value, None).await?;
                        expected.push((w.version, path, Some(value)));
                    }
                    1 => {
                        let w = remote.set_many("t", "a", &[("y", &value)]).await?;
                        expected.push((w.version, "t/a/y".to_owned(), Some(value)));
                    }
                    _ => {
                        let w = remote.delete(&p("t/a/y"), None).await?;
                        expected.push((w.version, "t/a/y".to_owned(), None));
                    }
                }
            }
            Ok::<_, memwire_store::Error>(expected)
        })
    };
    let mut seen = Vec::new();
    while seen.len() < 600 {
        let event = tokio::time::timeout(GUARD, watch.next()).await??;
        match change(&event) {
            Some(c) => seen.push(c),
            None => bail!("unexpected {event:?}"),
        }
    }
    let expected = writer.await??;
    ensure!(seen == expected, "the watch saw another sequence");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_does_not_read_lags_and_resyncs() -> Result<()> {
    let mut options = ServerOptions::default();
    options.send_queue = 8;
    let server = Server::start(options).await?;
    server.store.create_tenant(&server.admin, "t", None)?;
    let mut ws = raw(server.addr).await?;
    auth(&mut ws, &server.admin_key).await?;
    send_text(&mut ws, r#"{"type":"watch","id":1,"path":"t/s"}"#).await?;
    ensure!(matches!(
        recv(&mut ws).await?,
        Some(Response::Ok { id: 1, .. })
    ));

    // 10 000 writes of 2 KiB (20 MB: more than the socket buffers hold) while the client
    // does not read; the writer never waits for it.
    let (store, admin) = (std::sync::Arc::clone(&server.store), server.admin.clone());
    let written =
        tokio::task::spawn_blocking(move || -> Result<BTreeMap<String, (u64, Vec<u8>)>> {
            let mut last = BTreeMap::new();
            for i in 0..10_000_u32 {
                let path = format!("t/s/v{}", i % 50);
                let mut value = vec![0_u8; 2048];
                value[..4].copy_from_slice(&i.to_le_bytes());
                let w = store.set(&admin, &p(&path), &value, None)?;
                last.insert(path, (w.version, value));
            }
            Ok(last)
        });
    let last = tokio::time::timeout(GUARD, written).await???;
    let final_version = last.values().map(|(v, _)| *v).max().unwrap_or(0);

    // Now read, mirroring the values: changes in order without a gap; each `lagged` starts
    // at the next version expected and is followed by the current values and `synced`.
    let mut mirror: BTreeMap<String, (u64, Vec<u8>)> = BTreeMap::new();
    let (mut next, mut lags) = (1, 0);
    while next <= final_version {
        match recv(&mut ws).await? {
            Some(Response::Event(e)) if e.kind == EventKind::Set => {
                ensure!(
                    e.version == next,
                    "version {} after {}",
                    e.version,
                    next - 1
                );
                let value = e.value.map(|v| v.into_bytes()).unwrap_or_default();
                mirror.insert(e.path.to_string(), (e.version, value));
                next += 1;
            }
            Some(Response::Lagged(l)) => {
                ensure!(
                    l.missed_from == next,
                    "lagged from {}, next was {next}",
                    l.missed_from
                );
                lags += 1;
                mirror.clear();
                loop {
                    match recv(&mut ws).await? {
                        Some(Response::Event(e)) if e.kind == EventKind::Current => {
                            ensure!(e.version <= l.resumed_at);
                            let value = e.value.map(|v| v.into_bytes()).unwrap_or_default();
                            mirror.insert(e.path.to_string(), (e.version, value));
                        }
                        Some(Response::Synced { version, .. }) => {
                            ensure!(version == l.resumed_at);
                            next = version + 1;
                            break;
                        }
                        other => bail!("expected current values then synced, got {other:?}"),
                    }
                }
            }
            other => bail!("expected changes or lagged, got {other:?}"),
        }
    }
    ensure!(lags > 0, "the queue never filled");
    ensure!(mirror == last, "the mirrored values are not the store's");

    // Then live again.
    let w = server
        .store
        .set(&server.admin, &p("t/s/live"), b"1", None)?;
    match recv(&mut ws).await? {
        Some(Response::Event(e)) if e.version == w.version && e.kind == EventKind::Set => {}
        other => bail!("expected the live change, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumes_after_a_reconnect_without_a_gap() -> Result<()> {
    let mut server = Server::start(ServerOptions::default()).await?;
    let remote = Remote::connect(&server.url, &server.admin_key, RemoteOptions::default()).await?;
    server.store.create_tenant(&server.admin, "t", None)?;
    let mut watch = remote.watch(&"t/s".parse()?, None).await?;
    let mut expected = Vec::new();
    let (store, admin) = (std::sync::Arc::clone(&server.store), server.admin.clone());
    let mut write = |i: u32| -> Result<()> {
        let path = format!("t/s/v{}", i % 7);
        let value = i.to_le_bytes().to_vec();
        let w = store.set(&admin, &p(&path), &value, None)?;
        expected.push((w.version, path, Some(value)));
        // Outside the scope: never seen.
        store.set(&admin, &p("t/other/x"), b"-", None)?;
        Ok(())
    };
    for i in 0..50 {
        write(i)?;
    }
    let mut seen = Vec::new();
    while seen.len() < 30 {
        let event = tokio::time::timeout(GUARD, watch.next()).await??;
        seen.extend(change(&event));
    }
    // The connection goes; writes go on meanwhile; the server comes back on the same port.
    server.stop().await?;
    for i in 50..120 {
        write(i)?;
    }
    server.restart(ServerOptions::default()).await?;
    while seen.len() < expected.len() {
        let event = tokio::time::timeout(GUARD, watch.next()).await??;
        match change(&event) {
            Some(c) => seen.push(c),
            None => bail!("unexpected {event:?}"),
        }
    }
    ensure!(
        seen == expected,
        "a change was missed or repeated across the reconnect"
    );
    Ok(())
}
