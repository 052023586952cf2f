//! The local endpoint's server killed under its clients: a store server child (this test
//! binary re-run with `MEMWIRE_TEST_ROLE=server`) SIGKILLed and restarted, and `Local` clients
//! over the real Unix socket that reconnect by themselves and find every acknowledged write.

mod local_support;

use local_support::{Server, admin_key, link_host};
use memwire_store::store::WatchEvent;
use memwire_store::{Error, Local};

/// Runs a store server on `MEMWIRE_TEST_DATA` / `MEMWIRE_TEST_SOCKET` until killed; prints
/// `ready` when it listens (the admin key is the data directory's). Only as the child of
/// another test.
#[test]
#[ignore = "the server role of the other tests"]
fn server_role() -> anyhow::Result<()> {
    local_support::server_role()
}

#[test]
fn server_killed_then_restarted_clients_recover_every_acknowledged_write() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut server = Server::start(tmp.path())?;
    let key = admin_key(tmp.path())?;
    let client = Local::connect_at(&server.socket, &key)?;
    let p = "acme/svc/v".parse()?;
    let mut acked = Vec::new();
    for i in 0..50u32 {
        acked.push((i, client.set(&p, &i.to_le_bytes())?.version));
    }
    let mut watcher = client.watch(&"acme".parse()?, None)?;
    server.kill()?;
    // Gone: never a stale read.
    loop {
        match client.get(&p) {
            Err(Error::ServerGone) => break,
            Ok(_) => std::thread::yield_now(),
            Err(e) => return Err(e.into()),
        }
    }
    assert!(matches!(watcher.next(), Err(Error::ServerGone)));
    let _server = Server::start(tmp.path())?;
    // The client reconnects by itself.
    let value = loop {
        match client.get(&p) {
            Ok(v) => break v,
            Err(Error::ServerGone) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Err(e) => return Err(e.into()),
        }
    };
    let (last, version) = acked[acked.len() - 1];
    assert_eq!(
        value.map(|v| (v.value, v.version)),
        Some((last.to_le_bytes().to_vec(), version))
    );
    // The watcher resumes: a write after the restart reaches it.
    let after = client.set(&p, b"after")?.version;
    loop {
        match watcher.next() {
            Ok(WatchEvent::Changed { version, .. }) if version == after => break,
            Ok(_) => {}
            Err(Error::ServerGone) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Writes `round << 32 | i` for i = 0, 1, … to `p` until the server is gone; reports each
/// acknowledged (i, version) to `acked`.
fn write_until_gone(
    client: &Local,
    p: &memwire_store::protocol::VarPath,
    round: u64,
    acked: impl Fn(u64, u64),
) -> Error {
    for i in 0u64.. {
        match client.set(p, &(round << 32 | i).to_le_bytes()) {
            Ok(w) => acked(i, w.version),
            Err(err) => return err,
        }
    }
    unreachable!("a u64 counter does not run out")
}

/// The crash test over the real endpoint: several writer clients (each its own
/// connection and link), the server SIGKILLed at a random moment, 20 times (200 with
/// `MEMWIRE_STRESS=1`); after each restart every acknowledged write is there.
#[test]
fn server_killed_mid_writes_fails_the_writers_and_keeps_every_acknowledged_write()
-> anyhow::Result<()> {
    const WRITERS: usize = 3;
    let rounds = if std::env::var_os("MEMWIRE_STRESS").is_some() {
        200
    } else {
        20
    };
    let tmp = tempfile::tempdir()?;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64
        | 1;
    let mut server = Server::start(tmp.path())?;
    let key = admin_key(tmp.path())?;
    let paths: Vec<memwire_store::protocol::VarPath> = (0..WRITERS)
        .map(|w| format!("acme/svc/w{w}").parse())
        .collect::<Result<_, _>>()?;
    for round in 0..rounds {
        let (acked_tx, acked_rx) = std::sync::mpsc::channel();
        let writers = paths
            .iter()
            .enumerate()
            .map(|(w, p)| {
                let client = Local::connect_at(&server.socket, &key)?;
                let (p, acked_tx) = (p.clone(), acked_tx.clone());
                Ok(std::thread::spawn(move || {
                    write_until_gone(&client, &p, round, |i, version| {
                        let _ = acked_tx.send((w, (i, version)));
                    })
                }))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        drop(acked_tx);
        // Every writer acknowledged at least once, then a random 0–40 ms more.
        let mut last = vec![None; WRITERS];
        while last.iter().any(Option::is_none) {
            let (w, ack) = acked_rx.recv()?;
            last[w] = Some(ack);
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(std::time::Duration::from_micros(seed % 40_000));
        server.kill()?;
        for writer in writers {
            let err = writer
                .join()
                .map_err(|_| anyhow::anyhow!("a writer panicked"))?;
            assert!(matches!(err, Error::ServerGone), "round {round}: {err:?}");
        }
        for (w, ack) in acked_rx.try_iter() {
            last[w] = Some(ack);
        }
        let killed = server.child.id();
        server = Server::start(tmp.path())?;
        // The killed server could not remove its link host's socket; the new one did.
        let hosts = link_host(server.child.id())?;
        let dir = hosts.socket.parent().expect("a socket has a folder");
        let left = dir.join(format!("store-{killed}-0.sock"));
        assert!(!left.exists(), "round {round}: {} is left", left.display());
        let reader = Local::connect_at(&server.socket, &key)?;
        for (p, last) in paths.iter().zip(&last) {
            let (i, version) = last.ok_or_else(|| anyhow::anyhow!("no ack"))?;
            let stored = reader
                .get(p)?
                .ok_or_else(|| anyhow::anyhow!("round {round}: {p} is gone"))?;
            let value = u64::from_le_bytes(stored.value.as_slice().try_into()?);
            // Every acknowledged write survived; at most the one in flight went further.
            assert!(
                stored.version >= version,
                "round {round}: {stored:?} lost ack {version}"
            );
            assert!(
                value == round << 32 | i || value == round << 32 | (i + 1),
                "round {round}: {p} holds {value:#x} after ack {i}"
            );
        }
    }
    Ok(())
}
