//! The local endpoint with real processes: a store server child (this test binary re-run with
//! `MEMWIRE_TEST_ROLE=server`) and `Local` clients, over the real Unix socket.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use memwire_shm::Access;
use memwire_shm::segment::{MemfdSegment, Segment};
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
