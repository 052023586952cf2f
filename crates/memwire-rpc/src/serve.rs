//! A worker's side: [`serve`] the service on the link a parent spawned it with ([`serve_with`]:
//! with a wait strategy of its own).

use std::sync::Arc;

use std::time::Duration;

use memwire_transport::{Guest, Host, HostConfig, TICKET_ENV, WaitStrategy};

use crate::error::{Error, Result};
use crate::registry;
use crate::server::serve_link;
use crate::service::Service;

/// Serves `service` on the link this process was spawned with ([`crate::Worker::spawn`]), on
/// a runtime of its own, until the parent closes the link or dies, or SIGTERM comes (then it
/// returns `Ok`). Call it from `main`.
///
/// # Errors
/// [`Error::Io`] when this process was not started by a worker parent (no `MEMWIRE_TICKET`)
/// or its parent is already gone; the link's errors.
pub fn serve<S: Service>(service: S) -> Result<()> {
    serve_with(service, WaitStrategy::default())
}

/// [`serve`], with this end of the link waiting per `wait` instead of the default
/// spin-then-block. The parent's end waits per its own `WorkerConfig::host.wait`; a worker
/// meant to spin (a benchmark, a latency-bound pair pinned to CPUs of their own) passes
/// [`WaitStrategy::Spin`] here too, so neither end ever sleeps.
///
/// # Errors
/// As [`serve`].
pub fn serve_with<S: Service>(service: S, wait: WaitStrategy) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("start the worker's runtime", e))?;
    runtime.block_on(serve_async_with(Arc::new(service), wait))
}

/// [`serve`] on the caller's runtime.
///
/// # Errors
/// As [`serve`].
pub async fn serve_async<S: Service>(service: Arc<S>) -> Result<()> {
    serve_async_with(service, WaitStrategy::default()).await
}

/// [`serve_with`] on the caller's runtime.
///
/// # Errors
/// As [`serve`].
pub async fn serve_async_with<S: Service>(service: Arc<S>, wait: WaitStrategy) -> Result<()> {
    if std::env::var_os(TICKET_ENV).is_none() {
        return Err(Error::io(
            "serve",
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{TICKET_ENV} is not set: this process was not started by a Worker"),
            ),
        ));
    }
    let link = Guest::from_env_with(wait)?;
    // The parent named in the ticket must still be our parent: if it died before we got
    // here, we were re-parented and nobody will ever call us.
    let parent = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get().unsigned_abs());
    let host = link.peer().pid;
    if parent != host {
        return Err(Error::PeerGone { pid: host });
    }
    // SIGTERM (what `Worker::stop` sends) ends serving cleanly; so does the link closing.
    let mut terminate = signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        served = serve_link(link, service) => served,
        _ = terminate.recv() => Ok(()),
    }
}

/// Serves `service` as the named service `name` on a runtime of its own: binds the bootstrap
/// socket, registers the name (`memwire ls` lists it; [`crate::Worker::connect`] finds it), and
/// serves every client that connects, each on its own link, until SIGINT or SIGTERM. The
/// registration is removed on the way out (and ignored by everyone if the process is killed).
///
/// # Errors
/// [`Error::ServiceExists`] when a live process already serves `name`; the link's errors.
pub fn serve_as<S: Service>(name: &str, service: S) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("start the service's runtime", e))?;
    runtime.block_on(serve_as_async(
        name,
        Arc::new(service),
        HostConfig::default(),
    ))
}

/// [`serve_as`] on the caller's runtime, with the links' configuration.
///
/// # Errors
/// As [`serve_as`].
pub async fn serve_as_async<S: Service>(
    name: &str,
    service: Arc<S>,
    config: HostConfig,
) -> Result<()> {
    let host = Arc::new(Host::bind(name, config)?);
    let registration = registry::register(name, host.socket_path())?;
    tracing::info!(service = name, socket = %host.socket_path().display(), "serving");
    let mut interrupt = signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut terminate = signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let accepting = Arc::clone(&host);
        let accept = tokio::task::spawn_blocking(move || {
            accepting.accept_timeout(Duration::from_millis(200))
        });
        tokio::select! {
            accepted = accept => match accepted {
                Ok(Ok(link)) => {
                    let peer = link.peer();
                    tracing::debug!(service = name, %peer, "client connected");
                    tokio::spawn(serve_link(link, Arc::clone(&service)));
                }
                Ok(Err(memwire_transport::Error::Timeout(_))) => {}
                Ok(Err(e)) => tracing::warn!(service = name, error = %e, "accept failed"),
                Err(e) => return Err(Error::io("accept", std::io::Error::other(e))),
            },
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        }
    }
    tracing::info!(service = name, "stopping");
    drop(registration);
    Ok(())
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind).map_err(|e| Error::io("install a signal handler", e))
}
