//! `memwire serve`: the store server. With no configuration at all it keeps its data in
//! `memwire_store::default_data_dir()`, listens on a local socket in the runtime directory and
//! on WebSocket at `127.0.0.1:7117`; a TOML file (`--config`) or flags override each.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use memwire_store::remote::tls;
use memwire_store::{
    FsyncPolicy, LocalServer, RemoteServer, ServerOptions, Store, StoreConfig, local,
};

/// Run the store server.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A TOML file with any of: data_dir, name, fsync, listen, remote, tls_cert, tls_key,
    /// tls_self_signed, threads. Flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the data lives (default: `$MEMWIRE_DATA_DIR`, else `$XDG_STATE_HOME/memwire`,
    /// else `~/.local/state/memwire`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The server's name: its local socket is `<runtime dir>/store/<name>.sock`.
    #[arg(long)]
    name: Option<String>,
    /// When the log is fsynced: `always`, `every-1s` (default) or `never`.
    #[arg(long, value_parser = parse_fsync)]
    fsync: Option<FsyncPolicy>,
    /// The WebSocket address (default 127.0.0.1:7117).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Serve local clients only: no WebSocket listener.
    #[arg(long)]
    no_remote: bool,
    /// The TLS certificate chain (PEM) for `wss://`.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve `wss://` with a certificate made now for localhost and 127.0.0.1; its CA is
    /// written to `<data dir>/ca.pem` for clients to trust. For tests and trials.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    tls_self_signed: bool,
    /// Threads serving sockets and WebSocket clients (default 1: local writes have threads
    /// of their own, and one thread answers a lone remote client fastest; more help only
    /// many remote clients on several CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Option<u16>,
}

/// What `--config` may set; every field optional.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    name: Option<String>,
    fsync: Option<String>,
    listen: Option<SocketAddr>,
    remote: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_self_signed: Option<bool>,
    threads: Option<u16>,
}

/// The settings in force: flags over the file over the defaults.
#[derive(Debug)]
struct Settings {
    data_dir: PathBuf,
    name: String,
    fsync: FsyncPolicy,
    listen: Option<SocketAddr>,
    tls: Tls,
    threads: usize,
}

#[derive(Debug)]
enum Tls {
    None,
    Files { cert: PathBuf, key: PathBuf },
    SelfSigned,
}

fn parse_fsync(s: &str) -> Result<FsyncPolicy, String> {
    match s {
        "always" => Ok(FsyncPolicy::Always),
        "every-1s" | "everysec" => Ok(FsyncPolicy::EverySecond),
        "never" => Ok(FsyncPolicy::Never),
        other => Err(format!(
            "{other:?} is not an fsync policy: always, every-1s or never"
        )),
    }
}

impl Settings {
    fn resolve(args: &Args) -> Result<Self> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("parsing {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let fsync = match (args.fsync, &file.fsync) {
            (Some(f), _) => f,
            (None, Some(s)) => parse_fsync(s).map_err(anyhow::Error::msg)?,
            (None, None) => FsyncPolicy::EverySecond,
        };
        let remote = !args.no_remote && file.remote.unwrap_or(true);
        let tls = if args.tls_self_signed {
            Tls::SelfSigned
        } else if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
            Tls::Files {
                cert: cert.clone(),
                key: key.clone(),
            }
        } else if file.tls_self_signed.unwrap_or(false) {
            Tls::SelfSigned
        } else {
            match (file.tls_cert, file.tls_key) {
                (Some(cert), Some(key)) => Tls::Files { cert, key },
                (None, None) => Tls::None,
                _ => bail!("the config file gives only one of tls_cert and tls_key"),
            }
        };
        Ok(Self {
            data_dir: args
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(memwire_store::default_data_dir),
            name: args
                .name
                .clone()
                .or(file.name)
                .unwrap_or_else(|| "default".to_owned()),
            fsync,
            listen: remote.then(|| {
                args.listen
                    .or(file.listen)
                    .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7117)))
            }),
            tls,
            threads: match args.threads.or(file.threads) {
                Some(0) => bail!("threads must be at least 1"),
                Some(n) => usize::from(n),
                None => 1,
            },
        })
    }
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let settings = Settings::resolve(args)?;
    harden()?;
    let mut config = StoreConfig::new(&settings.data_dir);
    config.fsync = settings.fsync;
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
            let server =
                RemoteServer::bind(addr, Arc::clone(&store), tls, ServerOptions::default())
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
