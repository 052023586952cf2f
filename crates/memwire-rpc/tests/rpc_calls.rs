//! Calls between real processes: this test binary, re-run in the `math` role, serves a
//! hand-written service on the link its parent spawned it with; typed calls and calls by name,
//! typed failures, many calls at once, cancellation by timeout or drop, streams with
//! backpressure, loaned buffers both ways.

#![allow(clippy::unwrap_used)]

mod rpc_support;
#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use memwire_rpc::{Client, Error, STREAM_WINDOW};
use rpc_support::setup;
use support::trial;

fn main() {
    rpc_support::run(vec![
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
    ])
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
