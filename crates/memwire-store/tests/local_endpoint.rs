//! The local endpoint with real processes: a store server child (this test binary re-run with
//! `MEMWIRE_TEST_ROLE=server`) and `Local` clients, over the real Unix socket.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use memwire_shm::Access;
use memwire_shm::segment::{MemfdSegment, Segment};
use memwire_store::local::{Answer, LOCAL_PROTOCOL_VERSION, Refusal, Reply, Request};
use memwire_store::store::{Store, StoreConfig, WatchEvent};
use memwire_store::{Error, Local, LocalServer, Role};

const ROLE: &str = "MEMWIRE_TEST_ROLE";

/// Runs a store server on `MEMWIRE_TEST_DATA` / `MEMWIRE_TEST_SOCKET` until killed; prints
/// `ready <admin key>` when it listens. Only as the child of another test.
#[test]
#[ignore = "the server role of the other tests"]
fn server_role() -> anyhow::Result<()> {
    if std::env::var(ROLE).as_deref() != Ok("server") {
        return Ok(());
    }
    let data = PathBuf::from(std::env::var("MEMWIRE_TEST_DATA")?);
    let socket = PathBuf::from(std::env::var("MEMWIRE_TEST_SOCKET")?);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let (store, _) = Store::open(StoreConfig::new(&data))?;
        let store = Arc::new(store);
        let server = LocalServer::bind(Arc::clone(&store), &socket)?;
        println!("ready");
        std::io::stdout().flush()?;
        server.run(std::future::pending()).await?;
        anyhow::Ok(())
    })
}

struct Server {
    child: Child,
    socket: PathBuf,
}

impl Server {
    fn start(dir: &Path) -> anyhow::Result<Self> {
        let socket = dir.join("store.sock");
        let mut child = Command::new(std::env::current_exe()?)
            .args([
                "--exact",
                "server_role",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, "server")
            .env("MEMWIRE_TEST_DATA", dir.join("data"))
            .env("MEMWIRE_TEST_SOCKET", &socket)
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next().transpose()? {
                Some(line) if line.ends_with("ready") => break,
                Some(_) => {}
                None => anyhow::bail!("the server exited before it was ready"),
            }
        }
        Ok(Self { child, socket })
    }

    fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn admin_key(dir: &Path) -> anyhow::Result<String> {
    Ok(memwire_store::read_admin_key(dir.join("data"))?)
}

#[test]
fn reads_writes_permissions_and_isolation() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let _server = Server::start(tmp.path())?;
    let admin = Local::connect_at(&_server.socket, &admin_key(tmp.path())?)?;
    let a = "acme/billing/rate".parse()?;
    let b = "bravo/billing/rate".parse()?;
    let w = admin.set(&a, b"0.19")?;
    admin.set(&b, b"secret")?;
    assert_eq!(
        admin.get(&a)?.map(|v| (v.value, v.version)),
        Some((b"0.19".to_vec(), w.version))
    );
    assert!(matches!(
        admin.compare_and_set(&a, b"x", w.version + 5),
        Err(Error::Conflict { .. })
    ));
    let many = admin.set_many("acme", "billing", &[("x", b"1"), ("y", b"2")])?;
    assert_eq!(
        admin.get(&"acme/billing/y".parse()?)?.map(|v| v.version),
        Some(many.version)
    );
    admin.delete(&"acme/billing/x".parse()?, None)?;
    assert_eq!(admin.get(&"acme/billing/x".parse()?)?, None);

    let (key_a, _) = admin.create_key(Some("acme"), Role::Read, None, None)?;
    let reader = Local::connect_at(&_server.socket, &key_a)?;
    assert_eq!(reader.get(&a)?.map(|v| v.value), Some(b"0.19".to_vec()));
    // Tenant B: refused, no fd, and the connection stays usable.
    assert!(matches!(reader.get(&b), Err(Error::PermissionDenied(_))));
    assert!(matches!(
        reader.tenant_fd("bravo"),
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(
        reader.set(&a, b"no"),
        Err(Error::PermissionDenied(_))
    ));
    reader.ping()?;
    assert!(matches!(
        Local::connect_at(&_server.socket, "mw_not-a-key"),
        Err(Error::Unauthenticated(_))
    ));

    // The kernel refuses every way to write the tenant's segment.
    let fd = reader.tenant_fd("acme")?;
    assert!(
        rustix::io::write(&fd, b"x").is_err(),
        "write(2) must be refused"
    );
    let reopened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ));
    if let Ok(mut file) = reopened {
        assert!(
            file.write_all(b"x").is_err(),
            "a /proc reopen must not write"
        );
    }
    let segment = MemfdSegment::from_fd(fd, 1)?;
    assert!(
        segment.map(Access::ReadWrite).is_err(),
        "a writable mapping must be refused"
    );

    // The audit log names both clients' authentications.
    let audit = std::fs::read_to_string(tmp.path().join("data/audit.log"))?;
    assert!(
        audit.lines().any(
            |l| l.contains("auth_ok") && l.contains(&format!("\"pid\":{}", std::process::id()))
        )
    );
    assert!(audit.lines().any(|l| l.contains("auth_failed")));
    Ok(())
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

/// The store's transport host of the server `pid`, found in the runtime directory.
fn link_host(pid: u32) -> anyhow::Result<memwire_transport::HostStatus> {
    memwire_transport::list_hosts()?
        .into_iter()
        .find(|h| h.pid == Some(pid) && h.name.as_str().starts_with("store-"))
        .ok_or_else(|| anyhow::anyhow!("the server {pid} has no store link host"))
}

fn attached(host: &memwire_transport::HostStatus) -> usize {
    match &host.state {
        memwire_transport::HostState::Live { peers, .. } => peers.len(),
        _ => 0,
    }
}

/// One request over a raw link, and its answer.
fn exchange(link: &mut memwire_transport::Link, bytes: &[u8]) -> anyhow::Result<Answer> {
    link.tx().send(bytes)?;
    let message = link.rx().recv()?;
    Ok(postcard::from_bytes(message.as_slice())?)
}

fn request(req: &Request) -> Vec<u8> {
    postcard::to_stdvec(req).expect("a request encodes")
}

#[test]
fn writes_travel_over_a_link_and_a_hostile_link_gets_typed_refusals() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let server = Server::start(tmp.path())?;
    let key = admin_key(tmp.path())?;
    let client = Local::connect_at(&server.socket, &key)?;
    let p: memwire_store::protocol::VarPath = "acme/svc/v".parse()?;
    // Reads from the mapping need no link; the first write joins one.
    let host = link_host(server.child.id())?;
    assert_eq!(attached(&host), 0);
    client.set(&p, b"1")?;
    let host = link_host(server.child.id())?;
    let memwire_transport::HostState::Live { peers, .. } = &host.state else {
        anyhow::bail!("the link host did not answer: {host:?}");
    };
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].pid, std::process::id());
    assert_eq!(
        peers[0].messages_received, 2,
        "auth and the set, both on the link"
    );

    // A walk-in guest that speaks the protocol badly.
    let mut raw = memwire_transport::Guest::connect_at(&host.socket, Default::default())?;
    let set = request(&Request::Set {
        path: p.to_string(),
        value: b"raw".to_vec(),
        expected_version: None,
    });
    assert!(matches!(
        exchange(&mut raw, &set)?,
        Err(Refusal::Unauthenticated(_))
    ));
    assert!(matches!(
        exchange(&mut raw, &[0xff, 0xff, 0xff, 0xff, 0x0f, 0x01])?,
        Err(Refusal::BadRequest(_))
    ));
    let auth = |key: &str| {
        request(&Request::Auth {
            version: LOCAL_PROTOCOL_VERSION,
            key: key.to_owned(),
        })
    };
    assert!(matches!(
        exchange(&mut raw, &auth("mw_not-a-key"))?,
        Err(Refusal::Unauthenticated(_))
    ));
    assert!(matches!(
        exchange(&mut raw, &auth(&key))?,
        Ok(Reply::Authenticated { .. })
    ));
    // What needs an fd stays on the socket.
    let map = request(&Request::Map {
        tenant: "acme".to_owned(),
    });
    assert!(matches!(
        exchange(&mut raw, &map)?,
        Err(Refusal::BadRequest(_))
    ));
    let Ok(Reply::Written { version, .. }) = exchange(&mut raw, &set)? else {
        anyhow::bail!("a set over an authenticated raw link failed");
    };
    drop(raw);
    // The server carries on: the client reads the raw link's write and writes again.
    assert_eq!(
        client.get(&p)?.map(|v| (v.value, v.version)),
        Some((b"raw".to_vec(), version))
    );
    assert!(client.set(&p, b"2")?.version > version);
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

#[test]
fn a_reader_reads_the_mapping_then_through_the_server_and_never_a_dead_servers_value()
-> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut server = Server::start(tmp.path())?;
    let key = admin_key(tmp.path())?;
    let admin = Local::connect_at(&server.socket, &key)?;
    admin.set(&"acme/svc/a".parse()?, b"one")?;
    let w = admin.set(&"acme/svc/b".parse()?, b"two")?;
    let mut reader = admin.reader("acme")?;
    let mut buf = b"stale".to_vec();
    let stamp = reader.get_into("svc", "b", &mut buf)?;
    assert_eq!(
        (stamp.map(|s| s.version), buf.as_slice()),
        (Some(w.version), &b"two"[..])
    );
    assert_eq!(reader.get_into("svc", "missing", &mut buf)?, None);
    assert!(buf.is_empty());
    assert_eq!(
        reader.get("svc", "a")?.map(|v| v.value),
        Some(b"one".to_vec())
    );
    // A key limited to one service may not map the tenant: its reader asks the server, which
    // applies the limit.
    let (limited, _) = admin.create_key(Some("acme"), Role::Read, Some("svc"), None)?;
    let limited = Local::connect_at(&server.socket, &limited)?;
    let mut through = limited.reader("acme")?;
    assert_eq!(
        through.get("svc", "a")?.map(|v| v.value),
        Some(b"one".to_vec())
    );
    admin.set(&"acme/other/x".parse()?, b"hidden")?;
    assert!(matches!(
        through.get("other", "x"),
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(admin.reader("../x"), Err(Error::BadRequest(_))));

    server.kill()?;
    loop {
        match reader.get_into("svc", "a", &mut buf) {
            Err(Error::ServerGone) => break,
            Ok(_) => std::thread::yield_now(),
            Err(e) => return Err(e.into()),
        }
    }
    let restarted = Server::start(tmp.path())?;
    let after = Local::connect_at(&restarted.socket, &key)?.set(&"acme/svc/a".parse()?, b"new")?;
    // The reader follows the client's reconnect to the new server's mapping.
    let stamp = loop {
        match reader.get_into("svc", "a", &mut buf) {
            Ok(Some(stamp)) if stamp.version == after.version => break stamp,
            Ok(_) | Err(Error::ServerGone) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => return Err(e.into()),
        }
    };
    assert_eq!(
        (stamp.version, buf.as_slice()),
        (after.version, &b"new"[..])
    );
    Ok(())
}

/// Whether the tenant segment behind `fd` holds `needle` anywhere (read through a read-only
/// mapping, the way a client maps it).
fn segment_holds(fd: std::os::fd::OwnedFd, needle: &[u8]) -> anyhow::Result<bool> {
    let segment = MemfdSegment::from_read_only_fd(fd, 1)?;
    let map = segment.map(Access::ReadOnly)?;
    let mut bytes = vec![0; map.len()];
    map.read(0, &mut bytes)?;
    Ok(bytes.windows(needle.len()).any(|w| w == needle))
}

/// A revoked key, against a server process: its client's next request fails at once, the
/// segment it mapped before (and its `Reader`) never shows a write made after the revocation,
/// and a client of another key of the same tenant follows the tenant to its new segment.
#[test]
fn a_revoked_keys_mapping_sees_no_later_write() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let server = Server::start(tmp.path())?;
    let admin = Local::connect_at(&server.socket, &admin_key(tmp.path())?)?;
    let path: memwire_store::protocol::VarPath = "acme/svc/v".parse()?;
    admin.set(&path, b"before the revocation")?;
    let (doomed, doomed_id) = admin.create_key(Some("acme"), Role::Write, None, None)?;
    let (kept, _) = admin.create_key(Some("acme"), Role::Read, None, None)?;
    let doomed = Local::connect_at(&server.socket, &doomed)?;
    let kept = Local::connect_at(&server.socket, &kept)?;
    let old_segment = doomed.tenant_fd("acme")?;
    let mut doomed_reader = doomed.reader("acme")?;
    let mut kept_reader = kept.reader("acme")?;
    let mut buf = Vec::new();
    assert!(doomed_reader.get_into("svc", "v", &mut buf)?.is_some());
    assert_eq!(buf, b"before the revocation");

    admin.revoke_key(&doomed_id)?;
    assert!(
        matches!(doomed.set(&path, b"x"), Err(Error::Unauthenticated(_))),
        "a revoked key's write went through"
    );
    let after = admin.set(&path, b"after the revocation")?;

    // The segment the revoked client mapped was retired before that write.
    assert!(!segment_holds(old_segment, b"after the revocation")?);
    match doomed_reader.get_into("svc", "v", &mut buf) {
        Ok(Some(stamp)) => assert!(
            stamp.version < after.version && buf == b"before the revocation",
            "the revoked reader read version {} ({buf:?})",
            stamp.version
        ),
        Ok(None) => {}
        Err(Error::Unauthenticated(_) | Error::PermissionDenied(_)) => {}
        Err(e) => return Err(e.into()),
    }

    // The other key's reader remaps and sees the write.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(stamp) = kept_reader.get_into("svc", "v", &mut buf)?
            && stamp.version == after.version
        {
            assert_eq!(buf, b"after the revocation");
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the kept key's reader never saw the write"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(segment_holds(
        kept.tenant_fd("acme")?,
        b"after the revocation"
    )?);
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
