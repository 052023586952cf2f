//! `create_tenant` and `delete_tenant` over WebSocket, against an in-process `RemoteServer`:
//! the `Remote` client in both encodings, refusals for keys that are not admins, and watches
//! of a deleted tenant ending with `watch_ended` while their connection goes on.

mod remote_support;

use anyhow::{Result, bail, ensure};
use memwire_store::protocol::{ErrorCode, Format, Reply, Response, Scope};
use memwire_store::remote::{Remote, RemoteOptions, ServerOptions};
use memwire_store::store::WatchEvent;
use memwire_store::{Error, Role};
use remote_support::{GUARD, Server, auth, options, p, raw, recv, send_text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_with_quotas_and_delete_in_both_encodings() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    for (tenant, format) in [("j", Format::Json), ("m", Format::MessagePack)] {
        let admin = Remote::connect(&server.url, &server.admin_key, options(format)).await?;
        admin.create_tenant(tenant, None, Some(2)).await?;
        ensure!(matches!(
            admin.create_tenant(tenant, None, None).await,
            Err(Error::BadRequest(_))
        ));
        admin.set(&p(&format!("{tenant}/s/1")), b"1", None).await?;
        admin.set(&p(&format!("{tenant}/s/2")), b"2", None).await?;
        ensure!(matches!(
            admin.set(&p(&format!("{tenant}/s/3")), b"3", None).await,
            Err(Error::QuotaExceeded(_))
        ));
        ensure!(admin.delete_tenant(tenant).await? == 3);
        ensure!(matches!(
            admin.get(&p(&format!("{tenant}/s/1"))).await,
            Err(Error::NotFound(_))
        ));
        ensure!(matches!(
            admin.delete_tenant(tenant).await,
            Err(Error::NotFound(_))
        ));
        // The name again: empty, default quota, versions after the delete's.
        let again = admin.set(&p(&format!("{tenant}/s/3")), b"3", None).await?;
        ensure!(again.version == 4, "{again:?}");
        admin.set(&p(&format!("{tenant}/s/4")), b"4", None).await?;

        // A quota of bytes, and quotas the server cannot give.
        let small = format!("{tenant}-small");
        admin.create_tenant(&small, Some(4096), None).await?;
        for i in 0..3 {
            admin
                .set(&p(&format!("{small}/s/v{i}")), &[0; 1000], None)
                .await?;
        }
        ensure!(matches!(
            admin
                .set(&p(&format!("{small}/s/v3")), &[0; 1000], None)
                .await,
            Err(Error::QuotaExceeded(_))
        ));
        for (bytes, variables) in [(None, Some(0)), (Some(u64::MAX), None)] {
            let refused = admin.create_tenant("nope", bytes, variables).await;
            ensure!(matches!(refused, Err(Error::BadRequest(_))), "{refused:?}");
        }
        ensure!(matches!(
            admin.create_tenant("not/a/name", None, None).await,
            Err(Error::BadRequest(_))
        ));
    }

    // Keys that are not admins of the tenant are refused, whether or not it exists.
    let (write_key, _) = server.key("j", Role::Write)?;
    let (other_admin, _) = server.key("m", Role::Admin)?;
    for key in [&write_key, &other_admin] {
        let remote = Remote::connect(&server.url, key, RemoteOptions::default()).await?;
        for tenant in ["j", "absent"] {
            ensure!(matches!(
                remote.delete_tenant(tenant).await,
                Err(Error::PermissionDenied(_))
            ));
            ensure!(matches!(
                remote.create_tenant(tenant, None, None).await,
                Err(Error::PermissionDenied(_))
            ));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_tenants_watches_end_and_the_connection_goes_on() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let admin = Remote::connect(&server.url, &server.admin_key, RemoteOptions::default()).await?;
    admin.set(&p("t/s/v"), b"1", None).await?;
    admin.set(&p("other/s/v"), b"1", None).await?;
    let watcher = Remote::connect(&server.url, &server.admin_key, RemoteOptions::default()).await?;
    let mut gone = watcher.watch(&"t".parse::<Scope>()?, None).await?;
    let mut kept = watcher.watch(&"other".parse::<Scope>()?, None).await?;

    admin.set(&p("t/s/v"), b"2", None).await?;
    let version = admin.delete_tenant("t").await?;
    ensure!(version == 3);
    // The change before the delete, then the end, and the end again.
    let event = tokio::time::timeout(GUARD, gone.next()).await??;
    ensure!(
        matches!(event, WatchEvent::Changed { version: 2, .. }),
        "{event:?}"
    );
    for _ in 0..2 {
        let end = tokio::time::timeout(GUARD, gone.next()).await?;
        ensure!(
            matches!(&end, Err(Error::NotFound(m)) if m.contains("deleted")),
            "{end:?}"
        );
    }
    // The same connection still serves its other watch and its requests.
    admin.set(&p("other/s/v"), b"2", None).await?;
    let event = tokio::time::timeout(GUARD, kept.next()).await??;
    ensure!(
        matches!(event, WatchEvent::Changed { version: 2, .. }),
        "{event:?}"
    );
    watcher.ping().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wire_shows_watch_ended_and_its_unwatch_is_ok() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let mut ws = raw(server.addr).await?;
    auth(&mut ws, &server.admin_key).await?;
    send_text(
        &mut ws,
        r#"{"type":"create_tenant","id":1,"tenant":"t","max_variables":10}"#,
    )
    .await?;
    match recv(&mut ws).await? {
        Some(Response::Ok {
            id: 1,
            reply: Reply::CreateTenant,
        }) => {}
        other => bail!("create_tenant answered {other:?}"),
    }
    send_text(&mut ws, r#"{"type":"watch","id":2,"path":"t"}"#).await?;
    let watch_id = match recv(&mut ws).await? {
        Some(Response::Ok {
            id: 2,
            reply: Reply::Watch { watch_id, .. },
        }) => watch_id,
        other => bail!("watch answered {other:?}"),
    };
    send_text(&mut ws, r#"{"type":"delete_tenant","id":3,"tenant":"t"}"#).await?;
    // The delete's answer and the watch's end, in either order.
    let (mut answered, mut ended) = (false, false);
    while !(answered && ended) {
        match recv(&mut ws).await? {
            Some(Response::Ok {
                id: 3,
                reply: Reply::DeleteTenant { version: 1 },
            }) => answered = true,
            Some(Response::WatchEnded {
                watch_id: w,
                code: ErrorCode::NotFound,
                ..
            }) if w == watch_id => ended = true,
            other => bail!("after delete_tenant: {other:?}"),
        }
    }
    send_text(
        &mut ws,
        &format!(r#"{{"type":"unwatch","id":4,"watch_id":{watch_id}}}"#),
    )
    .await?;
    match recv(&mut ws).await? {
        Some(Response::Ok {
            id: 4,
            reply: Reply::Unwatch,
        }) => {}
        other => bail!("unwatch of an ended watch answered {other:?}"),
    }
    send_text(&mut ws, r#"{"type":"unwatch","id":5,"watch_id":99}"#).await?;
    match recv(&mut ws).await? {
        Some(Response::Error {
            id: Some(5),
            code: ErrorCode::NotFound,
            ..
        }) => {}
        other => bail!("unwatch of a watch never given answered {other:?}"),
    }
    send_text(&mut ws, r#"{"type":"delete_tenant","id":6,"tenant":"t"}"#).await?;
    match recv(&mut ws).await? {
        Some(Response::Error {
            id: Some(6),
            code: ErrorCode::NotFound,
            ..
        }) => {}
        other => bail!("a second delete_tenant answered {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_keys_watch_ends_unauthenticated() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    server.store.set(&server.admin, &p("a/s/v"), b"1", None)?;
    let (key, id) = server.key("a", Role::Read)?;
    let reader = Remote::connect(&server.url, &key, RemoteOptions::default()).await?;
    let mut watch = reader.watch(&"a".parse::<Scope>()?, None).await?;
    server.store.revoke_key(&server.admin, &id)?;
    // The watch's next read after the revocation ends it (a write wakes it up).
    server.store.set(&server.admin, &p("a/s/v"), b"2", None)?;
    let end = tokio::time::timeout(GUARD, watch.next()).await?;
    ensure!(matches!(end, Err(Error::Unauthenticated(_))), "{end:?}");
    Ok(())
}
