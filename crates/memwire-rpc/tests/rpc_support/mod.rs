//! Shared by the cross-process rpc tests: the roles this test binary plays when re-run as a
//! child (`MEMWIRE_TEST_ROLE`, dispatched by [`roles`] from each binary's `main`), the
//! hand-written `Math` service they serve, and a host with a spawned `math` worker.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use memwire_rpc::{
    BoxFuture, Client, Fault, FunctionInfo, Param, Request, Service, Worker, serve_link,
};
use memwire_transport::{Guest, Host, HostConfig};

use crate::support::{self, command};

/// The `main` of each of these test binaries: a runtime directory of its own, then the child
/// role the binary was started in (`MEMWIRE_TEST_ROLE`, dispatched by [`roles`]) or `trials`.
pub fn run(trials: Vec<libtest_mimic::Trial>) -> ! {
    support::private_runtime_dir("memwire-rpc-test");
    support::main(roles, trials)
}

pub fn roles(role: &str) -> Result<()> {
    match role {
        "math" => {
            let link = Guest::from_env()?;
            runtime()?.block_on(serve_link(link, Arc::new(Math::default())))?;
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
pub struct Setup {
    pub runtime: tokio::runtime::Runtime,
    pub client: Client,
    pub child: support::Guard,
    pub _host: Host,
}

pub fn setup(name: &str) -> Result<Setup> {
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

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}
