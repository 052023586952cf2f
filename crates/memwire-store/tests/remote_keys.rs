//! The key requests (`create_key`, `list_keys`, `revoke_key`) over WebSocket, against a real
//! `RemoteServer` on 127.0.0.1: an admin key makes a key that works within its limits, lists it
//! without its secret and revokes it; every other key is refused with `permission_denied`.

mod remote_support;

use anyhow::{Context, Result, bail, ensure};
use memwire_store::protocol::{ErrorCode, Format, Reply, Response};
use memwire_store::remote::{Remote, RemoteOptions, ServerOptions};
use memwire_store::{Error, Role};
use remote_support::{Server, auth, options, p, raw, recv, send_text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_makes_lists_and_revokes_a_key_over_websocket() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    for format in [Format::Json, Format::MessagePack] {
        let admin = Remote::connect(&server.url, &server.admin_key, options(format)).await?;
        admin.set(&p("a/s/v"), b"in a", None).await?;
        admin.set(&p("b/s/v"), b"in b", None).await?;

        let (key, id) = admin
            .create_key(Some("a"), Role::Read, None, Some("reader"))
            .await?;
        ensure!(key.len() == 46 && key.starts_with("mw_"), "{key}");
        ensure!(key[3..11] == id, "id {id} is not the start of the key");

        // The new key reads tenant a, and nothing else.
        let reader = Remote::connect(&server.url, &key, options(format)).await?;
        ensure!(reader.get(&p("a/s/v")).await?.value == b"in a");
        for refused in [
            reader.get(&p("b/s/v")).await.map(drop),
            reader.set(&p("a/s/v"), b"no", None).await.map(drop),
            reader.delete(&p("a/s/v"), None).await.map(drop),
            reader.set(&p("b/s/v"), b"no", None).await.map(drop),
        ] {
            ensure!(
                matches!(refused, Err(Error::PermissionDenied(_))),
                "{refused:?}"
            );
        }

        // Listed, with its record and never its secret.
        let keys = admin.list_keys().await?;
        let Some(mine) = keys.iter().find(|k| k.id == id) else {
            bail!("list_keys misses {id}: {keys:?}");
        };
        ensure!(
            mine.tenant.as_deref() == Some("a")
                && mine.role == Role::Read
                && mine.services.is_none()
                && !mine.revoked
                && mine.label.as_deref() == Some("reader")
                && mine.created_at_unix_ms > 0,
            "{mine:?}"
        );
        ensure!(
            keys.iter()
                .any(|k| k.id == server.admin.key_id() && k.tenant.is_none()),
            "{keys:?}"
        );

        // Revoked: the reader's next request, on its open connection and on a new one, is
        // refused as the store refuses a revoked key.
        admin.revoke_key(&id).await?;
        ensure!(matches!(
            reader.get(&p("a/s/v")).await,
            Err(Error::Unauthenticated(_))
        ));
        ensure!(matches!(
            Remote::connect(&server.url, &key, options(format)).await,
            Err(Error::Unauthenticated(_))
        ));
        let keys = admin.list_keys().await?;
        ensure!(
            keys.iter().any(|k| k.id == id && k.revoked),
            "not listed as revoked: {keys:?}"
        );
        // Revoking it again changes nothing; an unknown id is not found.
        admin.revoke_key(&id).await?;
        ensure!(matches!(
            admin.revoke_key("nonexist").await,
            Err(Error::NotFound(_))
        ));
        admin.ping().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_every_tenant_and_of_some_services_work_as_made() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let admin = Remote::connect(&server.url, &server.admin_key, RemoteOptions::default()).await?;
    admin.set(&p("a/billing-eu/v"), b"eu", None).await?;
    admin.set(&p("a/payroll/v"), b"pay", None).await?;
    admin.set(&p("b/s/v"), b"in b", None).await?;

    // An admin of every tenant, made remotely, administers everything.
    let (everything, _) = admin.create_key(None, Role::Admin, None, None).await?;
    let everything = Remote::connect(&server.url, &everything, RemoteOptions::default()).await?;
    ensure!(everything.get(&p("b/s/v")).await?.value == b"in b");
    ensure!(everything.list_keys().await?.len() == 2);

    // A key limited to `billing-*` of tenant a.
    let (limited, limited_id) = admin
        .create_key(Some("a"), Role::Write, Some("billing-*"), None)
        .await?;
    let limited = Remote::connect(&server.url, &limited, RemoteOptions::default()).await?;
    limited.set(&p("a/billing-eu/v"), b"eu2", None).await?;
    ensure!(matches!(
        limited.get(&p("a/payroll/v")).await,
        Err(Error::PermissionDenied(_))
    ));
    let keys = admin.list_keys().await?;
    ensure!(
        keys.iter()
            .any(|k| k.id == limited_id && k.services.as_deref() == Some("billing-*")),
        "{keys:?}"
    );

    // What the server refuses as a bad request, and what the client refuses before sending.
    ensure!(matches!(
        admin
            .create_key(Some("a"), Role::Read, None, Some("two\nlines"))
            .await,
        Err(Error::BadRequest(_))
    ));
    for (tenant, services) in [(Some("a/b"), None), (Some("a"), Some("bill?ng"))] {
        ensure!(matches!(
            admin.create_key(tenant, Role::Read, services, None).await,
            Err(Error::BadRequest(_))
        ));
    }
    admin.ping().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_are_not_admins_are_refused_every_key_request() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let admin = Remote::connect(&server.url, &server.admin_key, RemoteOptions::default()).await?;
    admin.set(&p("a/s/v"), b"1", None).await?;
    admin.set(&p("b/s/v"), b"1", None).await?;
    let (read_key, read_id) = server.key("a", Role::Read)?;
    let (write_key, write_id) = server.key("a", Role::Write)?;
    let (b_key, b_id) = server.key("b", Role::Read)?;
    let admin_id = server.admin.key_id().to_owned();

    for key in [&read_key, &write_key] {
        let client = Remote::connect(&server.url, key, RemoteOptions::default()).await?;
        for tenant in [Some("a"), None] {
            let made = client.create_key(tenant, Role::Read, None, None).await;
            ensure!(matches!(made, Err(Error::PermissionDenied(_))), "{made:?}");
        }
        let listed = client.list_keys().await;
        ensure!(
            matches!(listed, Err(Error::PermissionDenied(_))),
            "{listed:?}"
        );
        // Refused whether the id exists or not: such a key learns nothing of the ids.
        for id in [
            read_id.as_str(),
            write_id.as_str(),
            admin_id.as_str(),
            "nonexist",
        ] {
            let revoked = client.revoke_key(id).await;
            ensure!(
                matches!(revoked, Err(Error::PermissionDenied(_))),
                "{id}: {revoked:?}"
            );
        }
        client.ping().await?;
    }

    // A tenant admin manages its tenant's keys only.
    let (tenant_admin, _) = admin.create_key(Some("a"), Role::Admin, None, None).await?;
    let tenant_admin =
        Remote::connect(&server.url, &tenant_admin, RemoteOptions::default()).await?;
    for tenant in [Some("b"), None] {
        ensure!(matches!(
            tenant_admin
                .create_key(tenant, Role::Read, None, None)
                .await,
            Err(Error::PermissionDenied(_))
        ));
    }
    for id in [&b_id, &admin_id] {
        ensure!(matches!(
            tenant_admin.revoke_key(id).await,
            Err(Error::PermissionDenied(_))
        ));
    }
    let seen = tenant_admin.list_keys().await?;
    ensure!(
        !seen.is_empty() && seen.iter().all(|k| k.tenant.as_deref() == Some("a")),
        "{seen:?}"
    );
    tenant_admin.revoke_key(&read_id).await?;
    // Nothing above revoked anything else.
    let b = Remote::connect(&server.url, &b_key, RemoteOptions::default()).await?;
    ensure!(b.get(&p("b/s/v")).await?.value == b"1");
    admin.ping().await?;
    Ok(())
}

/// The messages themselves, as `docs/protocol.md` shows them: a refusal is the
/// `permission_denied` error with the request's id, a made key comes once in `create_key`'s
/// answer, and `list_keys` never carries it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wire_carries_permission_denied_and_never_a_listed_key() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let (write_key, _) = server.key("a", Role::Write)?;
    let mut writer = raw(server.addr).await?;
    auth(&mut writer, &write_key).await?;
    for (id, request) in [
        (
            1,
            r#"{"type": "create_key", "id": 1, "tenant": "a", "role": "read"}"#,
        ),
        (2, r#"{"type": "list_keys", "id": 2}"#),
        (
            3,
            r#"{"type": "revoke_key", "id": 3, "key_id": "nonexist"}"#,
        ),
    ] {
        send_text(&mut writer, request).await?;
        match recv(&mut writer).await? {
            Some(Response::Error {
                id: Some(got),
                code: ErrorCode::PermissionDenied,
                ..
            }) if got == id => {}
            other => bail!("{request} was answered {other:?}"),
        }
    }

    let mut admin = raw(server.addr).await?;
    auth(&mut admin, &server.admin_key).await?;
    send_text(
        &mut admin,
        r#"{"type": "create_key", "id": 4, "tenant": "a", "role": "read", "label": "wire"}"#,
    )
    .await?;
    let (key, key_id) = match recv(&mut admin).await? {
        Some(Response::Ok {
            id: 4,
            reply: Reply::CreateKey { key, key_id },
        }) => (key, key_id),
        other => bail!("create_key was answered {other:?}"),
    };
    let reader = Remote::connect(&server.url, &key, RemoteOptions::default()).await?;
    reader.ping().await?;

    send_text(&mut admin, r#"{"type": "list_keys", "id": 5}"#).await?;
    let message = tokio::time::timeout(
        remote_support::GUARD,
        futures_util::StreamExt::next(&mut admin),
    )
    .await
    .context("hang guard: no answer to list_keys")?
    .context("the server closed")??;
    let text = message.to_text()?;
    // The id is the key's first characters; nothing after it may appear.
    ensure!(
        text.contains(&key_id) && !text.contains(&key[11..]),
        "list_keys shows the key: {text}"
    );
    Ok(())
}
