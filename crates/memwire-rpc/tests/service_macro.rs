//! `#[service]` across real processes: this test binary, re-run in the `math` role, serves the
//! macro-generated `MathServer`; the parent calls it through the generated `MathClient`
//! (postcard) and by name (MessagePack), which reach the same handlers.

#![allow(clippy::unwrap_used)]

#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use memwire_rpc::{
    CallContext, Client, Encoding, Error, Fault, FunctionInfo, Param, Payload, Sink, serve_link,
};
use memwire_transport::{Guest, Host, HostConfig};
use support::{command, trial};

fn main() {
    support::private_runtime_dir("memwire-rpc-macro-test");
    support::main(
        roles,
        vec![
            trial("typed_calls_through_the_generated_client", typed),
            trial("calls_by_name_reach_the_same_handlers", by_name),
            trial("list_functions_gives_the_generated_descriptions", functions),
            trial(
                "a_blocking_handler_sees_its_call_cancelled",
                blocking_sees_cancel,
            ),
            trial(
                "a_panicking_blocking_handler_is_a_remote_error",
                blocking_panic,
            ),
            trial(
                "calls_wait_their_turn_for_room_in_a_two_slot_ring",
                two_slot_ring,
            ),
        ],
    )
}

/// Why `multiply` refuses.
#[derive(Debug, thiserror::Error)]
enum MathError {
    #[error("{0} * {1} overflows")]
    Overflow(i64, i64),
}

/// Arithmetic across processes.
#[memwire_rpc::service(crate = memwire_rpc)]
trait Math {
    /// Adds two numbers.
    async fn add(&self, a: i64, b: i64) -> i64;

    /// Multiplies two numbers,
    /// unless the product overflows.
    fn multiply(&self, a: i64, b: i64) -> Result<i64, MathError>;

    /// `n!`, computed on a blocking thread.
    #[rpc(blocking)]
    fn factorial(&self, n: u64) -> Result<u64, String>;

    /// Streams `0..n`.
    async fn count(&self, n: u64, sink: Sink<u64>) -> Result<(), Fault>;

    /// The id of this call on its link.
    async fn call_id(&self, ctx: CallContext) -> u64;

    /// Waits until its call is cancelled, then counts it.
    #[rpc(blocking)]
    fn wait_for_cancel(&self, ctx: CallContext);

    /// How many cancellations `wait_for_cancel` saw.
    fn cancels_seen(&self) -> u64;

    /// Panics with `message`.
    #[rpc(blocking)]
    fn panics(&self, message: String) -> Vec<u8>;

    /// The length and byte sum of a buffer read in place.
    async fn checksum(&self, data: Payload) -> (u64, u64);
}

/// The `math` role's implementation.
#[derive(Default)]
struct Calculator {
    cancels: AtomicU64,
}

impl Math for Calculator {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }

    fn multiply(&self, a: i64, b: i64) -> Result<i64, MathError> {
        a.checked_mul(b).ok_or(MathError::Overflow(a, b))
    }

    fn factorial(&self, n: u64) -> Result<u64, String> {
        (1..=n).try_fold(1u64, |acc, k| {
            acc.checked_mul(k)
                .ok_or_else(|| format!("{n}! does not fit in a u64"))
        })
    }

    async fn count(&self, n: u64, sink: Sink<u64>) -> Result<(), Fault> {
        for i in 0..n {
            sink.send(&i).await?;
        }
        Ok(())
    }

    async fn call_id(&self, ctx: CallContext) -> u64 {
        ctx.call_id()
    }

    fn wait_for_cancel(&self, ctx: CallContext) {
        while !ctx.is_cancelled() {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.cancels.fetch_add(1, Ordering::SeqCst);
    }

    fn cancels_seen(&self) -> u64 {
        self.cancels.load(Ordering::SeqCst)
    }

    fn panics(&self, message: String) -> Vec<u8> {
        panic!("{message}")
    }

    async fn checksum(&self, data: Payload) -> (u64, u64) {
        let sum = data.iter().map(|&b| u64::from(b)).sum();
        (data.len() as u64, sum)
    }
}

fn roles(role: &str) -> Result<()> {
    match role {
        "math" => {
            let link = Guest::from_env()?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let server = MathServer::new(Calculator::default());
            runtime.block_on(serve_link(link, std::sync::Arc::new(server)))?;
            Ok(())
        }
        other => anyhow::bail!("unknown role {other}"),
    }
}

/// A host with a spawned `math` worker and a typed client on its link, on a fresh runtime.
struct Setup {
    runtime: tokio::runtime::Runtime,
    math: MathClient,
    _child: support::Guard,
    _host: Host,
}

fn setup(name: &str) -> Result<Setup> {
    setup_with(name, HostConfig::default())
}

fn setup_with(name: &str, config: HostConfig) -> Result<Setup> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let host = Host::bind(&format!("macro-{name}-{}", std::process::id()), config)?;
    let (child, link) = host.spawn(&mut command("math")?)?;
    let math = runtime.block_on(async { MathClient::from(Client::new(link)) });
    Ok(Setup {
        runtime,
        math,
        _child: support::Guard::from_child(child),
        _host: host,
    })
}

fn typed() -> Result<()> {
    let s = setup("typed")?;
    s.runtime.block_on(async {
        let m = &s.math;
        ensure!(m.add(40, 2).await? == 42, "add");
        ensure!(m.multiply(-6, 7).await? == -42, "multiply");
        ensure!(
            m.factorial(20).await? == 2_432_902_008_176_640_000,
            "factorial"
        );
        let e = m.multiply(i64::MAX, 2).await.unwrap_err();
        ensure!(
            matches!(&e, Error::Remote { kind, message }
                if kind == "MathError" && message == &format!("{} * 2 overflows", i64::MAX)),
            "{e:?}"
        );
        let e = m.factorial(21).await.unwrap_err();
        ensure!(
            matches!(&e, Error::Remote { kind, message }
                if kind == "String" && message == "21! does not fit in a u64"),
            "{e:?}"
        );
        let items = m.count(300).await?.collect().await?;
        ensure!(
            items == (0..300).collect::<Vec<u64>>(),
            "count gave {items:?}"
        );
        ensure!(m.count(0).await?.collect().await?.is_empty(), "count(0)");
        // A buffer in place: inline, a pool slot, and one past every class (its own memfd).
        for len in [5usize, 3000, 3 << 20] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sum = data.iter().map(|&b| u64::from(b)).sum::<u64>();
            ensure!(
                m.checksum(&data).await? == (len as u64, sum),
                "checksum({len})"
            );
            let filled = m
                .checksum_with(len, |buf| buf.copy_from_slice(&data))
                .await?;
            ensure!(filled == (len as u64, sum), "checksum_with({len})");
        }
        let (first, second) = (m.call_id().await?, m.call_id().await?);
        ensure!(
            first != 0 && second != 0 && first != second,
            "call ids {first} and {second}"
        );
        ensure!(m.cancels_seen().await? == 0, "no call was cancelled yet");
        Ok(())
    })
}

fn by_name() -> Result<()> {
    let s = setup("by-name")?;
    s.runtime.block_on(async {
        let c = s.math.client();
        let sum: i64 = c.call("add", &(40, 2)).await?;
        ensure!(sum == 42, "add by name gave {sum}");
        let product: serde_json::Value = c.call("multiply", &serde_json::json!([6, 7])).await?;
        ensure!(
            product == serde_json::json!(42),
            "multiply by name gave {product}"
        );
        let f: u64 = c.call("factorial", &[5]).await?;
        ensure!(f == 120, "factorial by name gave {f}");
        let e = c
            .call::<_, i64>("multiply", &(i64::MIN, 2))
            .await
            .unwrap_err();
        ensure!(
            matches!(&e, Error::Remote { kind, .. } if kind == "MathError"),
            "{e:?}"
        );
        let items: Vec<u64> = c.stream("count", &(5,)).await?.collect().await?;
        ensure!(items == [0, 1, 2, 3, 4], "count by name gave {items:?}");
        // Both encodings, one handler: the typed path and the by-name path agree.
        let typed: i64 = c
            .call_with("add", Encoding::Postcard, &(1i64, 2i64), None)
            .await?;
        let named: i64 = c
            .call_with("add", Encoding::MessagePack, &(1, 2), None)
            .await?;
        ensure!(typed == 3 && named == 3, "typed {typed}, by name {named}");
        let seen: u64 = c.call("cancels_seen", &()).await?;
        ensure!(seen == 0, "cancels_seen by name gave {seen}");

        let e = c.call::<_, i64>("add", &("one", 2)).await.unwrap_err();
        ensure!(
            matches!(&e, Error::BadArguments { method, .. } if method == "add"),
            "{e:?}"
        );
        let e = c.call::<_, i64>("subtract", &(1, 2)).await.unwrap_err();
        ensure!(
            matches!(&e, Error::UnknownMethod { method } if method == "subtract"),
            "{e:?}"
        );
        Ok(())
    })
}

fn functions() -> Result<()> {
    let s = setup("functions")?;
    let listed = s.runtime.block_on(s.math.client().list_functions())?;
    let f = |name: &str, params: &[(&str, &str)], returns: &str, streaming: bool, doc: &str| {
        FunctionInfo {
            name: name.into(),
            params: params
                .iter()
                .map(|(name, ty)| Param {
                    name: (*name).into(),
                    ty: (*ty).into(),
                })
                .collect(),
            returns: returns.into(),
            streaming,
            doc: doc.into(),
        }
    };
    let expected = vec![
        f(
            "add",
            &[("a", "i64"), ("b", "i64")],
            "i64",
            false,
            "Adds two numbers.",
        ),
        f(
            "multiply",
            &[("a", "i64"), ("b", "i64")],
            "i64",
            false,
            "Multiplies two numbers,\nunless the product overflows.",
        ),
        f(
            "factorial",
            &[("n", "u64")],
            "u64",
            false,
            "`n!`, computed on a blocking thread.",
        ),
        f("count", &[("n", "u64")], "u64", true, "Streams `0..n`."),
        f(
            "call_id",
            &[],
            "u64",
            false,
            "The id of this call on its link.",
        ),
        f(
            "wait_for_cancel",
            &[],
            "()",
            false,
            "Waits until its call is cancelled, then counts it.",
        ),
        f(
            "cancels_seen",
            &[],
            "u64",
            false,
            "How many cancellations `wait_for_cancel` saw.",
        ),
        f(
            "panics",
            &[("message", "String")],
            "Vec<u8>",
            false,
            "Panics with `message`.",
        ),
        f(
            "checksum",
            &[("data", "Payload")],
            "(u64, u64)",
            false,
            "The length and byte sum of a buffer read in place.",
        ),
    ];
    ensure!(listed == expected, "list_functions gave {listed:#?}");
    ensure!(
        MathClient::METHODS
            == [
                "add",
                "multiply",
                "factorial",
                "count",
                "call_id",
                "wait_for_cancel",
                "cancels_seen",
                "panics",
                "checksum"
            ],
        "METHODS: {:?}",
        MathClient::METHODS
    );
    Ok(())
}

fn blocking_sees_cancel() -> Result<()> {
    let s = setup("cancel")?;
    s.runtime
        .block_on(async {
            let e = s
                .math
                .client()
                .call_with::<_, ()>(
                    "wait_for_cancel",
                    Encoding::Postcard,
                    &(),
                    Some(Duration::from_millis(50)),
                )
                .await
                .unwrap_err();
            ensure!(matches!(e, Error::Timeout(_)), "{e:?}");
            let deadline = tokio::time::Instant::now() + support::DEADLINE;
            loop {
                let seen = s.math.cancels_seen().await?;
                if seen == 1 {
                    break;
                }
                ensure!(seen == 0, "{seen} cancellations seen, expected 1");
                ensure!(
                    tokio::time::Instant::now() < deadline,
                    "the blocking handler never saw the cancel"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            ensure!(s.math.add(1, 1).await? == 2, "the worker stopped serving");
            Ok(())
        })
        .context("cancellation")
}

fn blocking_panic() -> Result<()> {
    let s = setup("panic")?;
    s.runtime.block_on(async {
        let e = s.math.panics("on purpose".into()).await.unwrap_err();
        ensure!(
            matches!(&e, Error::Remote { kind, message } if kind == "panic" && message == "on purpose"),
            "{e:?}"
        );
        ensure!(s.math.add(2, 2).await? == 4, "the worker stopped serving");
        Ok(())
    })
}

/// A link whose rings hold two frames, and a worker stopped (SIGSTOP) while 300 calls start:
/// the ring fills after two, one sender takes the link out of its mutex to wait for room and
/// the others wait for it to come back. Once the worker continues, every call gets its answer
/// (the worker's answers wait for room the same way).
fn two_slot_ring() -> Result<()> {
    let mut config = HostConfig::default();
    config.link.ring_depth = 2;
    let s = setup_with("two-slot", config)?;
    let worker = rustix::process::Pid::from_raw(i32::try_from(s._child.id())?)
        .ok_or_else(|| anyhow::anyhow!("no worker pid"))?;
    // Answered once before the stop, so the worker is serving.
    ensure!(s.runtime.block_on(s.math.add(1, 1))? == 2, "add");
    rustix::process::kill_process(worker, rustix::process::Signal::STOP)?;
    let resumed = s.runtime.block_on(async {
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..300i64 {
            let math = s.math.clone();
            calls.spawn(async move { (i, math.add(i, 1_000).await) });
        }
        // Let the calls run into the full ring (how far they get does not matter).
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        rustix::process::kill_process(worker, rustix::process::Signal::CONT)?;
        let mut answered = 0;
        while let Some(done) = calls.join_next().await {
            let (i, sum) = done?;
            ensure!(sum? == i + 1_000, "call {i} got another answer");
            answered += 1;
        }
        ensure!(answered == 300, "{answered} calls answered");
        anyhow::Ok(())
    });
    // Never leave the worker stopped, whatever happened.
    let _ = rustix::process::kill_process(worker, rustix::process::Signal::CONT);
    resumed
}
