//! The local endpoint with real processes: a store server child (this test binary re-run with
//! `MEMWIRE_TEST_ROLE=server`) and `Local` clients, over the real Unix socket. Reads, writes,
//! permissions and tenant isolation; writes over a link, and a hostile link's typed refusals;
//! readers of the mapping; a revoked key's mapping.

mod local_support;

use std::io::Write;

use local_support::{Server, admin_key, link_host};
use memwire_shm::Access;
use memwire_shm::segment::{MemfdSegment, Segment};
use memwire_store::local::{Answer, LOCAL_PROTOCOL_VERSION, Refusal, Reply, Request};
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
