//! Calls between real processes: this test binary, re-run in the `math` role, serves a
//! hand-written service on the link its parent spawned it with.

#![allow(clippy::unwrap_used)]

#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use memwire_rpc::{
    BoxFuture, Client, Error, Fault, FunctionInfo, Param, Request, STREAM_WINDOW, Service,
    serve_link,
};
use memwire_rpc::{
    BreakerConfig, ClientConfig, ErrorKind, OutputLine, OutputStream, RestartPolicy, Worker,
    WorkerConfig, registry,
};
use memwire_shm::ProcessId;
use memwire_transport::{Guest, Host, HostConfig};
use support::{command, trial};

fn main() {
    support::private_runtime_dir("memwire-rpc-test");
    support::main(
        roles,
        vec![
            trial("typed_and_by_name_calls", typed_and_by_name),
            trial("failures_are_typed_and_the_worker_keeps_serving", failures),
            trial("ten_thousand_calls_from_eight_tasks", many_calls),
            trial(
                "a_timed_out_call_is_cancelled_at_the_handler",
                timeout_cancels,
            ),
            trial("a_dropped_call_is_cancelled_at_the_handler", drop_cancels),
            trial("streams_arrive_in_order_with_backpressure", streams),
            trial("loaned_buffers_cross_both_ways", loaned_buffers),
            trial(
                "a_worker_killed_mid_call_fails_every_pending_call",
                killed_mid_call,
            ),
            trial(
                "a_worker_forwards_its_output_and_stops_when_asked",
                worker_output_and_stop,
            ),
            trial("a_killed_worker_is_restarted", worker_restart),
            trial("dropping_a_worker_kills_it", worker_drop_kills),
            trial("a_worker_dies_with_its_parent", worker_dies_with_parent),
            trial(
                "a_named_service_serves_clients_that_connect_by_name",
                named_service,
            ),
            trial(
                "heartbeats_see_a_stopped_worker_and_its_return",
                heartbeats_see_a_stopped_worker,
            ),
            trial(
                "the_breaker_opens_on_failures_and_closes_after_a_good_probe",
                breaker_and_metrics,
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
        ],
    )
}

fn roles(role: &str) -> Result<()> {
    match role {
        "math" => {
            let link = Guest::from_env()?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(serve_link(link, Arc::new(Math::default())))?;
            Ok(())
        }
        "worker" => {
            println!("worker ready");
            eprintln!("a line on stderr");
            memwire_rpc::serve(Math::default())?;
            println!("worker done");
            Ok(())
        }
        "named" => {
            let name = std::env::var("MEMWIRE_TEST_SERVICE")?;
            memwire_rpc::serve_as(&name, Math::default())?;
            println!("stopped");
            Ok(())
        }
        // Answers every frame with bytes that are no frame.
        "bad_server" => {
            let mut link = Guest::from_env()?;
            loop {
                let message = link.rx().recv()?;
                drop(message);
                link.tx().send(&[9; 20])?;
            }
        }
        // Spawns a worker, prints its pid, and waits to be killed.
        "parent" => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let worker = Worker::spawn(command("worker")?).await?;
                println!("{}", worker.pid());
                std::future::pending::<()>().await;
                drop(worker);
                Ok(())
            })
        }
        other => anyhow::bail!("unknown role {other}"),
    }
}

/// A service written by hand, as `#[memwire::service]` would write it.
#[derive(Default)]
struct Math {
    /// Items `count` has sent so far.
    sent: AtomicU64,
    /// Calls whose handler saw the cancellation.
    saw_cancel: AtomicU64,
}

impl Service for Math {
    fn functions(&self) -> Vec<FunctionInfo> {
        let param = |name: &str, ty: &str| Param {
            name: name.into(),
            ty: ty.into(),
        };
        vec![FunctionInfo {
            name: "add".into(),
            params: vec![param("a", "i64"), param("b", "i64")],
            returns: "i64".into(),
            streaming: false,
            doc: "Adds two numbers.".into(),
        }]
    }

    fn call(self: Arc<Self>, request: Request) -> BoxFuture<Result<Vec<u8>, Fault>> {
        match request.method() {
            "add" => Box::pin(async move {
                let ((a, b), r): ((i64, i64), _) = request.into_args()?;
                let sum = a
                    .checked_add(b)
                    .ok_or_else(|| Fault::from_error("overflow"))?;
                r.reply(&sum)
            }),
            "panic" => Box::pin(async move { panic!("asked to panic") }),
            "fail" => Box::pin(async move {
                let ((message,), _): ((String,), _) = request.into_args()?;
                Err(Fault::Remote {
                    kind: "Refused".into(),
                    message,
                })
            }),
            // Waits until cancelled, counting the cancellations it saw.
            "hang" => Box::pin(async move {
                let r = request.into_responder();
                let ctx = r.context().clone();
                let seen = Arc::clone(&self);
                let _count = OnDrop(move || {
                    if ctx.is_cancelled() {
                        seen.saw_cancel.fetch_add(1, Ordering::SeqCst);
                    }
                });
                std::future::pending::<()>().await;
                r.reply(&())
            }),
            "cancels_seen" => Box::pin(async move {
                request
                    .into_responder()
                    .reply(&self.saw_cancel.load(Ordering::SeqCst))
            }),
            // Sums a loaned buffer where it lies.
            "checksum" => Box::pin(async move {
                let (payload, r) = request.into_payload();
                let sum = payload.iter().map(|&b| u64::from(b)).sum::<u64>();
                r.reply(&(payload.len(), sum))
            }),
            // Answers with `len` bytes of `byte`, written in place.
            "fill" => Box::pin(async move {
                let ((len, byte), r): ((usize, u8), _) = request.into_args()?;
                r.send_loaned(len, |buf| buf.fill(byte)).await?;
                Ok(Vec::new())
            }),
            "sent" => Box::pin(async move {
                request
                    .into_responder()
                    .reply(&self.sent.load(Ordering::SeqCst))
            }),
            "count" => Box::pin(async move {
                let ((n,), r): ((u64,), _) = request.into_args()?;
                let sink = r.sink::<u64>();
                for i in 0..n {
                    sink.send(&i).await?;
                    self.sent.fetch_add(1, Ordering::SeqCst);
                }
                Ok(Vec::new())
            }),
            _ => Box::pin(async { Err(Fault::UnknownMethod) }),
        }
    }
}

struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// A host with a spawned `math` worker and a client on its link, on a fresh runtime.
struct Setup {
    runtime: tokio::runtime::Runtime,
    client: Client,
    child: support::Guard,
    _host: Host,
}

fn setup(name: &str) -> Result<Setup> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let host = Host::bind(
        &format!("rpc-{name}-{}", std::process::id()),
        HostConfig::default(),
    )?;
    let (child, link) = host.spawn(&mut command("math")?)?;
    let client = runtime.block_on(async { Client::new(link) });
    Ok(Setup {
        runtime,
        client,
        child: support::Guard::from_child(child),
        _host: host,
    })
}

fn typed_and_by_name() -> Result<()> {
    let s = setup("calls")?;
    s.runtime.block_on(async {
        let typed: i64 = s.client.call_typed("add", &(1i64, 2i64)).await?;
        ensure!(typed == 3, "typed add gave {typed}");
        let by_name: i64 = s.client.call("add", &[40, 2]).await?;
        ensure!(by_name == 42, "add by name gave {by_name}");
        let json: serde_json::Value = s.client.call("add", &serde_json::json!([-5, 7])).await?;
        ensure!(
            json == serde_json::json!(2),
            "add with JSON values gave {json}"
        );
        let functions = s.client.list_functions().await?;
        ensure!(
            functions.len() == 1 && functions[0].name == "add" && functions[0].params.len() == 2,
            "functions: {functions:?}"
        );
        Ok(())
    })
}

fn failures() -> Result<()> {
    let s = setup("failures")?;
    s.runtime.block_on(async {
        let c = &s.client;
        let e = c.call::<_, i64>("nope", &()).await.unwrap_err();
        ensure!(matches!(&e, Error::UnknownMethod { method } if method == "nope"), "{e:?}");
        let e = c.call::<_, i64>("add", &("x", 1)).await.unwrap_err();
        ensure!(matches!(&e, Error::BadArguments { method, .. } if method == "add"), "{e:?}");
        let e = c.call::<_, i64>("add", &(i64::MAX, 1)).await.unwrap_err();
        ensure!(matches!(&e, Error::Remote { message, .. } if message == "overflow"), "{e:?}");
        let e = c.call::<_, ()>("panic", &()).await.unwrap_err();
        ensure!(
            matches!(&e, Error::Remote { kind, message } if kind == "panic" && message == "asked to panic"),
            "{e:?}"
        );
        let e = c.call::<_, ()>("fail", &("no",)).await.unwrap_err();
        ensure!(
            matches!(&e, Error::Remote { kind, message } if kind == "Refused" && message == "no"),
            "{e:?}"
        );
        let sum: i64 = c.call("add", &(2, 2)).await?;
        ensure!(sum == 4, "the worker no longer serves correctly after failures");
        Ok(())
    })
}

fn many_calls() -> Result<()> {
    let s = setup("many")?;
    s.runtime.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..8i64 {
            let client = s.client.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..1250i64 {
                    let (a, b) = (t * 1_000_000 + i, i * 7);
                    let sum: i64 = if i % 2 == 0 {
                        client.call_typed("add", &(a, b)).await?
                    } else {
                        client.call("add", &(a, b)).await?
                    };
                    ensure!(sum == a + b, "task {t} call {i}: {a} + {b} gave {sum}");
                }
                Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        Ok(())
    })
}

fn timeout_cancels() -> Result<()> {
    let s = setup("timeout")?;
    s.runtime.block_on(async {
        let e = s
            .client
            .call_with_timeout::<_, ()>("hang", &(), Duration::from_millis(50))
            .await
            .unwrap_err();
        ensure!(matches!(e, Error::Timeout(_)), "{e:?}");
        wait_for_cancels(&s.client, 1).await
    })
}

fn drop_cancels() -> Result<()> {
    let s = setup("drop")?;
    s.runtime.block_on(async {
        let client = s.client.clone();
        let call = tokio::spawn(async move { client.call::<_, ()>("hang", &()).await });
        // Let the request reach the worker, then drop the call.
        tokio::time::sleep(Duration::from_millis(20)).await;
        call.abort();
        let _ = call.await;
        wait_for_cancels(&s.client, 1).await
    })
}

async fn wait_for_cancels(client: &Client, n: u64) -> Result<()> {
    let deadline = tokio::time::Instant::now() + support::DEADLINE;
    loop {
        let seen: u64 = client.call("cancels_seen", &()).await?;
        if seen >= n {
            ensure!(seen == n, "{seen} cancellations seen, expected {n}");
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the handler never saw the cancel"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn streams() -> Result<()> {
    let s = setup("streams")?;
    s.runtime.block_on(async {
        let items: Vec<u64> = s
            .client
            .stream("count", &(1000u64,))
            .await?
            .collect()
            .await?;
        ensure!(
            items == (0..1000).collect::<Vec<_>>(),
            "items out of order or missing"
        );
        let sent: u64 = s.client.call("sent", &()).await?;
        ensure!(sent == 1000, "sent {sent}");

        // A consumer that takes nothing holds the producer at one window.
        let mut stream = s
            .client
            .stream_typed::<_, u64>("count", &(100_000u64,))
            .await?;
        let deadline = tokio::time::Instant::now() + support::DEADLINE;
        let window = u64::from(STREAM_WINDOW);
        loop {
            let sent: u64 = s.client.call("sent", &()).await?;
            ensure!(sent <= 1000 + window, "the producer ran ahead: {sent}");
            if sent == 1000 + window {
                break;
            }
            ensure!(tokio::time::Instant::now() < deadline, "stuck at {sent}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let sent: u64 = s.client.call("sent", &()).await?;
        ensure!(
            sent == 1000 + window,
            "the producer ran past its window: {sent}"
        );
        for i in 0..10 * window {
            let item = stream.next().await.context("stream ended early")??;
            ensure!(item == i, "item {i} is {item}");
        }
        drop(stream);
        wait_for_cancels_of_stream(&s.client).await
    })
}

/// After a stream is dropped its producer stops: `sent` stops moving.
async fn wait_for_cancels_of_stream(client: &Client) -> Result<()> {
    let mut last: u64 = client.call("sent", &()).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now: u64 = client.call("sent", &()).await?;
        if now == last {
            ensure!(now < 1000 + 100_000, "the dropped stream ran to its end");
            return Ok(());
        }
        last = now;
    }
}

fn killed_mid_call() -> Result<()> {
    let s = setup("killed")?;
    let pid = s.client.peer_pid();
    let calls = s.runtime.block_on(async {
        let mut calls = Vec::new();
        for _ in 0..16 {
            let client = s.client.clone();
            calls.push(tokio::spawn(async move {
                client.call::<_, ()>("hang", &()).await
            }));
        }
        // Every hang request is in before the add's answer: the worker reads them in order.
        let _: i64 = s.client.call("add", &(1, 1)).await?;
        Ok::<_, anyhow::Error>(calls)
    })?;
    let Setup {
        runtime,
        client,
        child,
        _host,
    } = s;
    child.kill()?;
    runtime.block_on(async {
        for call in calls {
            let e = call.await?.unwrap_err();
            ensure!(matches!(e, Error::PeerGone { pid: p } if p == pid), "{e:?}");
        }
        let e = client.call::<_, i64>("add", &(1, 1)).await.unwrap_err();
        ensure!(matches!(e, Error::PeerGone { pid: p } if p == pid), "{e:?}");
        Ok(())
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn worker_output_and_stop() -> Result<()> {
    runtime()?.block_on(async {
        let mut worker = Worker::spawn(command("worker")?).await?;
        let mut output = worker.output().context("the output, taken once")?;
        let sum: i64 = worker.client().call("add", &(20, 22)).await?;
        ensure!(sum == 42, "add gave {sum}");
        let mut lines = Vec::new();
        while lines.len() < 2 {
            lines.push(output.recv().await.context("output ended early")?);
        }
        lines.sort_by_key(|l| l.stream == OutputStream::Stderr);
        ensure!(
            lines
                == [
                    OutputLine {
                        stream: OutputStream::Stdout,
                        line: "worker ready".into()
                    },
                    OutputLine {
                        stream: OutputStream::Stderr,
                        line: "a line on stderr".into()
                    },
                ],
            "lines: {lines:?}"
        );
        // A client kept past `stop` holds the link open; the worker still stops cleanly.
        let kept = worker.client();
        let status = worker
            .stop()
            .await?
            .context("a spawned worker has a status")?;
        ensure!(
            status.success(),
            "the worker did not exit cleanly: {status}"
        );
        drop(kept);
        let last = output
            .recv()
            .await
            .context("no line after serve returned")?;
        ensure!(last.line == "worker done", "last line {last:?}");
        Ok(())
    })
}

fn worker_restart() -> Result<()> {
    runtime()?.block_on(async {
        let config = WorkerConfig {
            restart: Some(RestartPolicy {
                max_restarts: 3,
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(100),
            }),
            ..WorkerConfig::default()
        };
        let worker = Worker::spawn_with(command("worker")?, config).await?;
        let first = worker.pid();
        let client = worker.client();
        let hang = {
            let client = client.clone();
            tokio::spawn(async move { client.call::<_, ()>("hang", &()).await })
        };
        let _: i64 = client.call("add", &(1, 1)).await?;
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(i32::try_from(first)?).context("pid")?,
            rustix::process::Signal::KILL,
        )?;
        let e = hang.await?.unwrap_err();
        ensure!(
            matches!(e, Error::PeerGone { pid } if pid == first),
            "{e:?}"
        );
        let deadline = tokio::time::Instant::now() + support::DEADLINE;
        while worker.restarts() == 0 {
            ensure!(tokio::time::Instant::now() < deadline, "never restarted");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        ensure!(
            worker.pid() != first,
            "the restarted worker has the old pid"
        );
        let sum: i64 = worker.client().call("add", &(2, 3)).await?;
        ensure!(sum == 5, "the restarted worker gave {sum}");
        Ok(())
    })
}

fn worker_drop_kills() -> Result<()> {
    let id = runtime()?.block_on(async {
        let worker = Worker::spawn(command("worker")?).await?;
        let id = ProcessId::of(worker.pid())?;
        ensure!(id.is_alive(), "the worker is not running");
        drop(worker);
        Ok(id)
    })?;
    ensure!(!id.is_alive(), "the dropped worker still runs");
    Ok(())
}

fn worker_dies_with_parent() -> Result<()> {
    use std::io::BufRead;
    let mut cmd = command("parent")?;
    cmd.stdout(std::process::Stdio::piped());
    let mut parent = support::spawn(cmd, None)?;
    let stdout = parent.child().stdout.take().context("stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let worker = ProcessId::of(line.trim().parse()?)?;
    ensure!(worker.is_alive(), "the worker is not running");
    parent.kill()?;
    support::wait_until("the orphaned worker to exit", || Ok(!worker.is_alive()))
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

fn heartbeats_see_a_stopped_worker() -> Result<()> {
    use rustix::process::{Pid, Signal, kill_process};
    runtime()?.block_on(async {
        let config = WorkerConfig {
            client: ClientConfig {
                heartbeat: Some(Duration::from_millis(20)),
                heartbeat_misses: 2,
                ..ClientConfig::default()
            },
            ..WorkerConfig::default()
        };
        let worker = Worker::spawn_with(command("worker")?, config).await?;
        let client = worker.client();
        let pid = Pid::from_raw(i32::try_from(worker.pid())?).context("pid")?;
        wait_for(|| client.metrics().heartbeats >= 2, "two heartbeats").await?;
        ensure!(client.is_healthy(), "healthy while answering heartbeats");
        ensure!(
            client.metrics().last_heartbeat_rtt.is_some(),
            "no heartbeat RTT recorded"
        );
        kill_process(pid, Signal::STOP)?;
        wait_for(
            || !client.is_healthy(),
            "a stopped worker to look unhealthy",
        )
        .await?;
        ensure!(!client.is_closed(), "a stopped worker's link is still open");
        kill_process(pid, Signal::CONT)?;
        wait_for(|| client.is_healthy(), "the resumed worker to look healthy").await?;
        Ok(())
    })
}

async fn wait_for(mut cond: impl FnMut() -> bool, what: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + support::DEADLINE;
    while !cond() {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

fn breaker_and_metrics() -> Result<()> {
    runtime()?.block_on(async {
        let config = WorkerConfig {
            client: ClientConfig {
                breaker: Some(BreakerConfig {
                    failure_threshold: 3,
                    cool_down: Duration::from_millis(100),
                }),
                heartbeat: None,
                ..ClientConfig::default()
            },
            ..WorkerConfig::default()
        };
        let worker = Worker::spawn_with(command("worker")?, config).await?;
        let client = worker.client();
        for i in 0..10i64 {
            let _: i64 = client.call("add", &(i, i)).await?;
        }
        // Caller mistakes do not count against the worker.
        for _ in 0..5 {
            let _ = client.call::<_, i64>("nope", &()).await.unwrap_err();
        }
        ensure!(!client.circuit_open(), "unknown methods opened the breaker");
        for _ in 0..3 {
            let e = client.call::<_, ()>("fail", &("bad",)).await.unwrap_err();
            ensure!(matches!(e, Error::Remote { .. }), "{e:?}");
        }
        ensure!(
            client.circuit_open(),
            "three failures did not open the breaker"
        );
        let e = client.call::<_, i64>("add", &(1, 1)).await.unwrap_err();
        ensure!(matches!(e, Error::CircuitOpen { failures: 3, .. }), "{e:?}");
        let m = client.metrics();
        ensure!(m.requests == 19 && m.successes == 10, "metrics: {m:?}");
        ensure!(
            m.failures.get(&ErrorKind::UnknownMethod) == Some(&5),
            "{m:?}"
        );
        ensure!(m.failures.get(&ErrorKind::Remote) == Some(&3), "{m:?}");
        ensure!(m.failures.get(&ErrorKind::CircuitOpen) == Some(&1), "{m:?}");
        ensure!(m.in_flight == 0 && m.latency_p50 > Duration::ZERO, "{m:?}");
        // After the cool-down one probe goes through; its success closes the breaker.
        let deadline = tokio::time::Instant::now() + support::DEADLINE;
        let sum = loop {
            match client.call::<_, i64>("add", &(2, 2)).await {
                Ok(sum) => break sum,
                Err(Error::CircuitOpen { .. }) => {
                    ensure!(tokio::time::Instant::now() < deadline, "never half-opened");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        ensure!(
            sum == 4 && !client.circuit_open(),
            "the probe did not close the breaker"
        );
        Ok(())
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

fn loaned_buffers() -> Result<()> {
    let s = setup("loaned")?;
    s.runtime.block_on(async {
        for len in [0usize, 3, 56, 4096, 100_000, 8 << 20] {
            let payload = s
                .client
                .call_loaned("checksum", len, |buf| {
                    for (i, b) in buf.iter_mut().enumerate() {
                        *b = (i % 251) as u8;
                    }
                })
                .await?;
            let (n, sum): (usize, u64) = payload.decode().map_err(|f| anyhow::anyhow!("{f}"))?;
            let expected: u64 = (0..len).map(|i| (i % 251) as u64).sum();
            ensure!((n, sum) == (len, expected), "{len} bytes: got ({n}, {sum})");

            let back = s.client.call_for_payload("fill", &(len, 7u8)).await?;
            ensure!(
                back.encoding() == memwire_rpc::Encoding::Raw,
                "{:?}",
                back.encoding()
            );
            ensure!(
                back.len() == len && back.iter().all(|&b| b == 7),
                "{len} bytes back"
            );
        }
        Ok(())
    })
}
