//! The `Remote` client against an in-process `RemoteServer`: every request over JSON and
//! MessagePack, pipelining, and a typed error for each refusal.

mod remote_support;

use anyhow::{Result, ensure};
use memwire_store::protocol::{Format, Scope};
use memwire_store::remote::{Remote, RemoteOptions, ServerOptions};
use memwire_store::store::WatchEvent;
use memwire_store::{Error, Role};
use remote_support::{GUARD, Server, options, p};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_over_json_and_messagepack() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    for (tenant, format) in [("j", Format::Json), ("m", Format::MessagePack)] {
        let remote = Remote::connect(&server.url, &server.admin_key, options(format)).await?;
        remote.ping().await?;
        let rate = p(&format!("{tenant}/billing/rate"));
        let first = remote.set(&rate, b"0.19", Some(0)).await?;
        let got = remote.get(&rate).await?;
        ensure!(
            got.value == b"0.19" && got.version == first.version,
            "{got:?}"
        );

        // Binary bytes survive both encodings.
        let seed = p(&format!("{tenant}/billing/seed"));
        remote.set(&seed, &[0, 255, 1], None).await?;
        ensure!(remote.get(&seed).await?.value == [0, 255, 1]);

        let second = remote.set(&rate, b"0.21", Some(first.version)).await?;
        match remote.set(&rate, b"0.25", Some(first.version)).await {
            Err(Error::Conflict { expected, found }) => {
                ensure!(expected == first.version && found == second.version)
            }
            other => anyhow::bail!("stale compare-and-set gave {other:?}"),
        }

        let mut watch = remote
            .watch(&format!("{tenant}/billing").parse::<Scope>()?, None)
            .await?;
        let many = remote
            .set_many(tenant, "billing", &[("a", b"1"), ("b", b"2")])
            .await?;
        for (name, value) in [("a", b"1"), ("b", b"2")] {
            let event = tokio::time::timeout(GUARD, watch.next()).await??;
            let WatchEvent::Changed {
                path,
                value: Some(v),
                ..
            } = event
            else {
                anyhow::bail!("expected a set event, got {event:?}");
            };
            ensure!(path.variable.as_str() == name && v == value);
        }
        ensure!(watch.version() == many.version);

        let entries = remote.list(Some(tenant), Some("billing")).await?;
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        ensure!(names == ["a", "b", "rate", "seed"], "{names:?}");
        ensure!(remote.list(Some(tenant), None).await?.len() == 1);
        ensure!(
            remote
                .list(None, None)
                .await?
                .iter()
                .any(|e| e.name.as_str() == tenant)
        );

        let deleted = remote.delete(&rate, Some(second.version)).await?;
        ensure!(deleted.version > many.version);
        ensure!(matches!(remote.get(&rate).await, Err(Error::NotFound(_))));
        ensure!(matches!(
            remote.delete(&rate, None).await,
            Err(Error::NotFound(_))
        ));
        let event = tokio::time::timeout(GUARD, watch.next()).await??;
        ensure!(
            matches!(&event, WatchEvent::Changed { value: None, version, .. } if *version == deleted.version),
            "{event:?}"
        );
        drop(watch);
        // The connection is still usable after every error.
        remote.ping().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_on_one_connection() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let remote = Remote::connect(&server.url, &server.admin_key, RemoteOptions::default()).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200_u32 {
        let remote = remote.clone();
        tasks.spawn(async move {
            let path = p(&format!("t/s/v{}", i % 10));
            let w = remote.set(&path, &i.to_le_bytes(), None).await?;
            Ok::<_, Error>(w.version)
        });
    }
    let mut versions = Vec::new();
    while let Some(v) = tasks.join_next().await {
        versions.push(v??);
    }
    versions.sort_unstable();
    ensure!(versions == (1..=200).collect::<Vec<u64>>(), "{versions:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_typed_and_the_connection_stays_usable() -> Result<()> {
    let server = Server::start(ServerOptions::default()).await?;
    let admin = Remote::connect(&server.url, &server.admin_key, RemoteOptions::default()).await?;
    admin.set(&p("a/s/v"), b"1", None).await?;
    admin.set(&p("b/s/v"), b"1", None).await?;

    let (a_key, a_id) = server.key("a", Role::Write)?;
    let a = Remote::connect(&server.url, &a_key, options(Format::Json)).await?;
    a.set(&p("a/s/w"), b"2", None).await?;
    ensure!(matches!(
        a.get(&p("b/s/v")).await,
        Err(Error::PermissionDenied(_))
    ));
    ensure!(matches!(
        a.set(&p("b/s/v"), b"x", None).await,
        Err(Error::PermissionDenied(_))
    ));
    ensure!(matches!(
        a.watch(&"b".parse()?, None).await,
        Err(Error::PermissionDenied(_))
    ));
    ensure!(matches!(
        a.get(&p("a/s/missing")).await,
        Err(Error::NotFound(_))
    ));

    let (read_key, _) = server.key("a", Role::Read)?;
    let reader = Remote::connect(&server.url, &read_key, RemoteOptions::default()).await?;
    ensure!(reader.get(&p("a/s/w")).await?.value == b"2");
    ensure!(matches!(
        reader.set(&p("a/s/w"), b"3", None).await,
        Err(Error::PermissionDenied(_))
    ));

    // Over the quota.
    let quota = memwire_store::store::Quota {
        bytes: 1 << 20,
        variables: 2,
    };
    server
        .store
        .create_tenant(&server.admin, "q", Some(quota))?;
    admin.set(&p("q/s/1"), b"1", None).await?;
    admin.set(&p("q/s/2"), b"1", None).await?;
    ensure!(matches!(
        admin.set(&p("q/s/3"), b"1", None).await,
        Err(Error::QuotaExceeded(_))
    ));

    // A value over the limit, and a bad name.
    let big = vec![0_u8; (1 << 20) + 1];
    ensure!(matches!(
        admin.set(&p("a/s/big"), &big, None).await,
        Err(Error::BadRequest(_))
    ));
    ensure!(matches!(
        admin.set_many("a", "s/x", &[("v", b"1")]).await,
        Err(Error::BadRequest(_))
    ));

    // A revoked key fails at once, on its open connection and on a new one.
    server.store.revoke_key(&server.admin, &a_id)?;
    ensure!(matches!(
        a.get(&p("a/s/w")).await,
        Err(Error::Unauthenticated(_))
    ));
    ensure!(matches!(
        Remote::connect(&server.url, &a_key, RemoteOptions::default()).await,
        Err(Error::Unauthenticated(_))
    ));
    ensure!(matches!(
        Remote::connect(&server.url, "mw_not-a-key", RemoteOptions::default()).await,
        Err(Error::Unauthenticated(_))
    ));
    admin.ping().await?;
    Ok(())
}

#[tokio::test]
async fn a_gone_server_is_server_gone() -> Result<()> {
    let mut server = Server::start(ServerOptions::default()).await?;
    let remote = Remote::connect(&server.url, &server.admin_key, RemoteOptions::default()).await?;
    remote.ping().await?;
    server.stop().await?;
    ensure!(matches!(remote.ping().await, Err(Error::ServerGone)));
    // It connects again by itself once the server is back.
    server.restart(ServerOptions::default()).await?;
    remote.ping().await?;
    ensure!(matches!(
        Remote::connect("http://x", "k", RemoteOptions::default()).await,
        Err(Error::BadUrl { .. })
    ));
    Ok(())
}
