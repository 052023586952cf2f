//! Remote watches: every change in order exactly once, a watcher that does not read gets
//! `lagged`, the current values and `synced` (and the writer never waits for it), and a watch
//! resumes after a reconnect without a gap (and reports the server gone, without overflowing,
//! when a hostile one claimed the last version a u64 holds).

mod remote_support;

use std::collections::BTreeMap;

use anyhow::{Result, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use memwire_store::protocol::{
    Encoded, EventKind, Format, Frame, Limits, PROTOCOL_VERSION, Reply, Request, Response,
    decode_request, encode_response,
};
use memwire_store::remote::{Remote, RemoteOptions, ServerOptions};
use memwire_store::store::WatchEvent;
use remote_support::{GUARD, Server, auth, p, raw, recv, send_text};
use tokio_tungstenite::tungstenite::Message;

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

/// A server that answers one `auth` and one `watch`, claiming the tenant is at `u64::MAX`,
/// then goes (and refuses later connections).
async fn claim_the_last_version(listener: tokio::net::TcpListener) -> Result<()> {
    let (tcp, _) = listener.accept().await?;
    drop(listener);
    let mut ws = tokio_tungstenite::accept_async(tcp).await?;
    let limits = Limits {
        max_message_bytes: 1 << 20,
        max_value_bytes: 1 << 20,
    };
    for _ in 0..2 {
        let Some(message) = ws.next().await else {
            bail!("the client left");
        };
        let (request, format) = match message? {
            Message::Text(t) => (
                decode_request(Frame::Text(t.as_str()), &limits)?,
                Format::Json,
            ),
            Message::Binary(b) => (
                decode_request(Frame::Binary(&b), &limits)?,
                Format::MessagePack,
            ),
            other => bail!("unexpected {other:?}"),
        };
        let id = request.id();
        let reply = match request {
            Request::Auth { .. } => Reply::Auth {
                v: PROTOCOL_VERSION,
                max_message_bytes: 1 << 20,
                max_value_bytes: 1 << 20,
            },
            Request::Watch { .. } => Reply::Watch {
                watch_id: 1,
                version: u64::MAX,
            },
            other => bail!("unexpected {other:?}"),
        };
        let answer = match encode_response(&Response::Ok { id, reply }, format) {
            Encoded::Text(text) => Message::text(text),
            Encoded::Binary(bytes) => Message::binary(bytes),
        };
        ws.send(answer).await?;
    }
    ws.close(None).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resuming_after_the_last_version_reports_the_server_gone() -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}", listener.local_addr()?);
    let server = tokio::spawn(claim_the_last_version(listener));
    let mut options = RemoteOptions::default();
    options.reconnect_for = std::time::Duration::from_millis(200);
    let key = format!("mw_{}", "A".repeat(43));
    let remote = Remote::connect(&url, &key, options).await?;
    let mut watch = remote.watch(&"t/s".parse()?, None).await?;
    ensure!(watch.version() == u64::MAX);
    server.await??;
    // It resumes from the version after the last one a u64 holds: it cannot, and says so.
    match tokio::time::timeout(GUARD, watch.next()).await? {
        Err(memwire_store::Error::ServerGone) => Ok(()),
        other => bail!("expected ServerGone, got {other:?}"),
    }
}
