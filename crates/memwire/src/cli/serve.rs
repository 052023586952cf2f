//! `memwire serve`: the store server. With no configuration at all it keeps its data in
//! `memwire_store::default_data_dir()`, listens on a local socket in the runtime directory and
//! on WebSocket at `127.0.0.1:7117`; a TOML file (`--config`) or flags override each
//! ([`settings`]).
//!
//! On SIGINT or SIGTERM it stops accepting, lets every connection finish the request in hand,
//! writes a last snapshot and exits 0.

mod settings;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use memwire_store::remote::tls;
use memwire_store::{LocalServer, RemoteServer, ServerOptions, Store, StoreConfig, local};

pub(crate) use settings::Args;
use settings::{Settings, Tls};

pub(crate) fn run(args: &Args) -> Result<()> {
    let settings = Settings::resolve(args)?;
    harden()?;
    let mut config = StoreConfig::new(&settings.data_dir);
    config.fsync = settings.fsync;
    config.max_value_bytes = settings.max_value_bytes;
    config.default_quota = settings.default_quota;
    let (store, startup) = Store::open(config).map_err(|e| {
        // The log's directory lock is taken with LOCK_NB: EWOULDBLOCK means another server.
        let held = matches!(&e, memwire_store::Error::Io { source, .. }
            if source.kind() == std::io::ErrorKind::WouldBlock);
        let e = anyhow::Error::new(e);
        if held {
            e.context(format!(
                "another `memwire serve` already uses {}",
                settings.data_dir.display()
            ))
        } else {
            e.context(format!(
                "opening the store in {}",
                settings.data_dir.display()
            ))
        }
    })?;
    let mut out = std::io::stdout().lock();
    if let Some(torn) = &startup.torn_tail {
        tracing::warn!("{torn}");
        writeln!(out, "recovered: {torn}")?;
    }
    for bad in &startup.bad_snapshots {
        tracing::warn!("{bad}");
    }
    writeln!(
        out,
        "memwire store: {} tenant(s), {} variable(s), {} log record(s) replayed",
        startup.tenants, startup.variables, startup.records_replayed
    )?;
    writeln!(out, "  data    {}", settings.data_dir.display())?;
    let store = Arc::new(store);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.threads)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let served = runtime.block_on(serve(
        &settings,
        Arc::clone(&store),
        &mut out,
        startup.admin_key,
    ));
    drop(runtime);
    let closed = match Arc::try_unwrap(store) {
        Ok(store) => store.close(),
        Err(store) => store.snapshot(),
    };
    served?;
    closed.context("writing the final snapshot")?;
    writeln!(std::io::stdout(), "stopped")?;
    Ok(())
}

async fn serve(
    settings: &Settings,
    store: Arc<Store>,
    out: &mut std::io::StdoutLock<'_>,
    admin_key: Option<String>,
) -> Result<()> {
    let socket = local::socket_path(&settings.name)?;
    let local = LocalServer::bind(Arc::clone(&store), &socket)
        .with_context(|| format!("binding {}", socket.display()))?;
    writeln!(out, "  local   {}", socket.display())?;
    let remote = match settings.listen {
        None => None,
        Some(addr) => {
            let tls = match &settings.tls {
                Tls::None => None,
                Tls::Files { cert, key } => Some(tls::server_config(cert, key)?),
                Tls::SelfSigned => Some(self_signed(&settings.data_dir)?),
            };
            let scheme = if tls.is_some() { "wss" } else { "ws" };
            let options = ServerOptions::default().with_max_value_bytes(settings.max_value_bytes);
            let server = RemoteServer::bind(addr, Arc::clone(&store), tls, options)
                .await
                .with_context(|| format!("listening on {addr}"))?;
            writeln!(out, "  remote  {scheme}://{}", server.local_addr()?)?;
            Some(server)
        }
    };
    if let Some(key) = admin_key {
        writeln!(
            out,
            "admin key (shown once; also in {}):\n{key}",
            settings
                .data_dir
                .join(memwire_store::auth::ADMIN_KEY_FILE)
                .display()
        )?;
    }
    // Scripts and tests wait for this line.
    writeln!(out, "ready")?;
    out.flush()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let local_task = tokio::spawn(local.run(stopped(stop_rx.clone())));
    let remote_task = remote.map(|server| tokio::spawn(server.run(stopped(stop_rx.clone()))));
    wait_for_signal().await?;
    tracing::info!("stopping: no new connections; finishing requests in flight");
    let _ = stop_tx.send(true);
    local_task.await.context("the local endpoint panicked")??;
    if let Some(task) = remote_task {
        task.await.context("the WebSocket server panicked")??;
    }
    Ok(())
}

/// Makes a CA and a certificate for localhost and 127.0.0.1, writes the CA to `ca.pem` in the
/// data directory, and gives the server's TLS configuration.
fn self_signed(data_dir: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let made = tls::self_signed(&["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    let ca = data_dir.join("ca.pem");
    std::fs::write(&ca, &made.ca_pem).with_context(|| format!("writing {}", ca.display()))?;
    Ok(made.config)
}

/// Returns at SIGINT or SIGTERM.
async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM")?;
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}

/// No other process of this user may read our memory through /proc (and with it the keys),
/// and many clients must not run us out of descriptors.
fn harden() -> Result<()> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .context("prctl(PR_SET_DUMPABLE, 0)")?;
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if limit.current != limit.maximum {
        rustix::process::setrlimit(
            rustix::process::Resource::Nofile,
            rustix::process::Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        )
        .context("raising the soft RLIMIT_NOFILE to the hard limit")?;
    }
    Ok(())
}
