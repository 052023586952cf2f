//! Named services between real processes (this test binary, re-run in the `named` or
//! `bad_server` role): clients connect by name through the registry, a killed service's entry
//! is ignored, and a peer that sends malformed frames, client or server, is cut off or fails its
//! calls with a protocol error while others are served.

#![allow(clippy::unwrap_used)]

mod rpc_support;
#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;

use anyhow::{Context, Result, ensure};
use memwire_rpc::{Client, Error, Worker, registry};
use memwire_transport::{Guest, Host, HostConfig};
use rpc_support::runtime;
use support::{command, trial};

fn main() {
    rpc_support::run(vec![
        trial(
            "a_named_service_serves_clients_that_connect_by_name",
            named_service,
        ),
        trial(
            "a_client_sending_malformed_frames_is_cut_off_and_others_are_served",
            malformed_from_client,
        ),
        trial(
            "a_server_answering_malformed_frames_fails_calls_with_protocol",
            malformed_from_server,
        ),
        trial(
            "a_killed_services_registry_entry_is_ignored",
            killed_service_is_ignored,
        ),
    ])
}

fn named_service() -> Result<()> {
    let name = format!("math-{}", std::process::id());
    let mut cmd = command("named")?;
    cmd.env("MEMWIRE_TEST_SERVICE", &name)
        .stdout(std::process::Stdio::piped());
    let mut service = support::spawn(cmd, None)?;
    wait_until_registered(&name)?;
    let entry = registry::lookup(&name)?;
    ensure!(
        entry.pid == service.id(),
        "registered pid {} is not the service's",
        entry.pid
    );
    runtime()?.block_on(async {
        let a = Worker::connect(&name).await?;
        let b = Worker::connect(&name).await?;
        let (ca, cb) = (a.client(), b.client());
        let (x, y): (i64, i64) = tokio::try_join!(
            ca.call::<_, i64>("add", &(1, 2)),
            cb.call::<_, i64>("add", &(3, 4)),
        )?;
        ensure!((x, y) == (3, 7), "sums {x} {y}");
        ensure!(
            a.pid() == service.id() && b.pid() == service.id(),
            "wrong peer"
        );
        Ok(())
    })?;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(i32::try_from(service.id())?).context("pid")?,
        rustix::process::Signal::TERM,
    )?;
    let status = service.wait_exit()?;
    ensure!(
        status.success(),
        "the service did not stop cleanly: {status}"
    );
    let mut out = String::new();
    std::io::Read::read_to_string(
        &mut service.child().stdout.take().context("stdout")?,
        &mut out,
    )?;
    ensure!(out.trim() == "stopped", "service printed {out:?}");
    ensure!(
        registry::list()?.iter().all(|e| e.name != name),
        "the stopped service is still registered"
    );
    let gone = runtime()?.block_on(Worker::connect(&name)).unwrap_err();
    ensure!(matches!(gone, Error::NoService { .. }), "{gone:?}");
    Ok(())
}

fn wait_until_registered(name: &str) -> Result<()> {
    support::wait_until("the service to register", || {
        Ok(registry::list()?.iter().any(|e| e.name == name))
    })
}

fn malformed_from_client() -> Result<()> {
    let name = format!("math-bad-client-{}", std::process::id());
    let mut cmd = command("named")?;
    cmd.env("MEMWIRE_TEST_SERVICE", &name);
    let _service = support::spawn(cmd, None)?;
    wait_until_registered(&name)?;
    runtime()?.block_on(async {
        let good = Worker::connect(&name).await?;
        let client = good.client();
        for garbage in [
            vec![],
            vec![1; 15],
            vec![
                2, 1, 2, 0, 3, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, b'a', b'd', b'd',
            ],
            vec![1, 1, 2, 0, 200, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, b'a'],
            vec![1, 2, 2, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0],
        ] {
            let owned = name.clone();
            let mut bad = tokio::task::spawn_blocking(move || Guest::connect(&owned)).await??;
            bad.tx().send(&garbage)?;
            let e = tokio::time::timeout(support::DEADLINE, bad.rx().recv_async())
                .await
                .context("the server neither answered nor cut off a malformed client")?
                .unwrap_err();
            ensure!(
                matches!(e, memwire_transport::Error::PeerGone { .. }),
                "the server kept a client that sent {garbage:?}: {e:?}"
            );
            let sum: i64 = client.call("add", &(2, 3)).await?;
            ensure!(sum == 5, "the good client got {sum}");
        }
        // A call id used again while its call is in flight (`hang` never answers).
        let owned = name.clone();
        let mut bad = tokio::task::spawn_blocking(move || Guest::connect(&owned)).await??;
        let hang = |id| {
            let mut frame = vec![0; memwire_rpc::frame::encoded_len("hang", 1)];
            let at = memwire_rpc::frame::encode_head(
                &mut frame,
                memwire_rpc::frame::Kind::Request,
                memwire_rpc::Encoding::MessagePack,
                id,
                "hang",
            );
            frame[at] = 0x90; // MessagePack: an empty array, no arguments
            frame
        };
        bad.tx().send(&hang(7))?;
        bad.tx().send(&hang(7))?;
        let e = tokio::time::timeout(support::DEADLINE, bad.rx().recv_async())
            .await
            .context("the server did not cut off a client that reused a call id")?
            .unwrap_err();
        ensure!(
            matches!(e, memwire_transport::Error::PeerGone { .. }),
            "the server kept a client that reused a call id: {e:?}"
        );
        let sum: i64 = client.call("add", &(2, 3)).await?;
        ensure!(sum == 5, "the good client got {sum}");
        Ok(())
    })
}

fn malformed_from_server() -> Result<()> {
    let host = Host::bind(
        &format!("rpc-bad-server-{}", std::process::id()),
        HostConfig::default(),
    )?;
    let (child, link) = host.spawn(&mut command("bad_server")?)?;
    let _child = support::Guard::from_child(child);
    runtime()?.block_on(async {
        let client = Client::new(link);
        let e = client.call::<_, i64>("add", &(1, 2)).await.unwrap_err();
        ensure!(matches!(e, Error::Protocol(_)), "{e:?}");
        let e = client.call::<_, i64>("add", &(1, 2)).await.unwrap_err();
        ensure!(matches!(e, Error::Protocol(_)), "a second call: {e:?}");
        ensure!(client.is_closed(), "the link is still open");
        Ok(())
    })
}

fn killed_service_is_ignored() -> Result<()> {
    let name = format!("math-killed-{}", std::process::id());
    let mut cmd = command("named")?;
    cmd.env("MEMWIRE_TEST_SERVICE", &name);
    let service = support::spawn(cmd, None)?;
    wait_until_registered(&name)?;
    service.kill()?;
    let entries = registry::list()?;
    ensure!(
        entries.iter().all(|e| e.name != name),
        "a killed service is listed: {entries:?}"
    );
    let e = runtime()?.block_on(Worker::connect(&name)).unwrap_err();
    ensure!(matches!(e, Error::NoService { .. }), "{e:?}");
    // Its name is free again.
    let mut cmd = command("named")?;
    cmd.env("MEMWIRE_TEST_SERVICE", &name);
    let _again = support::spawn(cmd, None)?;
    wait_until_registered(&name)
}
