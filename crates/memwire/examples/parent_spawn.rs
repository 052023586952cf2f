//! Spawns the `math_worker` example as a worker process and calls it: typed, by name, a
//! stream, an error, and the metrics at the end. The worker's stdout comes back as `tracing`
//! events.
//!
//! `cargo run --release --example parent_spawn` (it spawns `math_worker` from the same
//! directory if it is built, else itself in worker mode).

#[path = "math_service/mod.rs"]
mod math_service;

use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use math_service::{Calculator, MathClient, MathServer};
use memwire::rpc::{Error, Worker};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--worker") {
        return tokio::task::spawn_blocking(|| memwire::rpc::serve(MathServer::new(Calculator)))
            .await?
            .context("serving");
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let me = std::env::current_exe()?;
    let sibling = me.with_file_name("math_worker");
    let command = if sibling.exists() {
        Command::new(sibling)
    } else {
        let mut c = Command::new(&me);
        c.arg("--worker");
        c
    };
    let start = Instant::now();
    let worker = Worker::spawn(command).await?;
    println!("spawned worker {} in {:?}", worker.pid(), start.elapsed());

    let math = MathClient::new(worker.client());
    println!("add(1, 2)        = {}", math.add(1, 2).await?);
    println!("multiply(6, 7)   = {}", math.multiply(6, 7).await?);
    println!("factorial(20)    = {}", math.factorial(20).await?);
    match math.factorial(21).await {
        Err(Error::Remote { kind, message }) => println!("factorial(21)    : {kind}: {message}"),
        other => println!("factorial(21)    : unexpected {other:?}"),
    }
    let by_name: i64 = worker.client().call("add", &(40, 2)).await?;
    println!("add by name      = {by_name}");
    let items = math.count(5).await?.collect().await?;
    println!("count(5)         = {items:?}");

    let start = Instant::now();
    let n = 10_000;
    for i in 0..n {
        math.add(i, 1).await?;
    }
    println!(
        "{n} typed calls in {:?} ({:.1} µs each)",
        start.elapsed(),
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    println!("\n{}", worker.client().metrics());
    let status = worker.stop().await?;
    println!("worker stopped: {status:?}");
    Ok(())
}
