//! A worker serving the `math` service.
//!
//! - Spawned by a parent (see `parent_spawn`): serves the link it inherited, and exits when the
//!   parent closes it or dies.
//! - `--serve`: runs as the named service `math` until Ctrl-C; then
//!   `memwire call math add 1 2` prints `3`, and `memwire ls` lists it.

#[path = "math_service/mod.rs"]
mod math_service;

use math_service::{Calculator, MathServer};

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if std::env::args().any(|a| a == "--serve") {
        eprintln!("serving `math`; try: memwire call math add 1 2   (Ctrl-C stops)");
        memwire::rpc::serve_as("math", MathServer::new(Calculator))?;
    } else {
        println!("math worker {} ready", std::process::id());
        memwire::rpc::serve(MathServer::new(Calculator))?;
    }
    Ok(())
}
