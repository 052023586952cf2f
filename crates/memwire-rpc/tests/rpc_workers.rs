//! Workers in real processes (this test binary, re-run in the `math` or `worker` role): a
//! worker killed mid-call fails every pending call; workers forward their output, stop when
//! asked, restart when killed, die when dropped or when their parent dies; heartbeats see a
//! stopped worker, and the breaker opens on failures and closes after a good probe.

#![allow(clippy::unwrap_used)]

mod rpc_support;
#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use memwire_rpc::{
    BreakerConfig, ClientConfig, Error, ErrorKind, OutputLine, OutputStream, RestartPolicy, Worker,
    WorkerConfig,
};
use memwire_shm::ProcessId;
use rpc_support::{Setup, runtime, setup};
use support::{command, trial};

fn main() {
    rpc_support::run(vec![
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
            "heartbeats_see_a_stopped_worker_and_its_return",
            heartbeats_see_a_stopped_worker,
        ),
        trial(
            "the_breaker_opens_on_failures_and_closes_after_a_good_probe",
            breaker_and_metrics,
        ),
    ])
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
