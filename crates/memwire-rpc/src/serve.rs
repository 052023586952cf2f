//! A worker's side: [`serve`] the service on the link a parent spawned it with.

use std::sync::Arc;

use memwire_transport::{Guest, TICKET_ENV};

use crate::error::{Error, Result};
use crate::server::serve_link;
use crate::service::Service;

/// Serves `service` on the link this process was spawned with ([`crate::Worker::spawn`]), on
/// a runtime of its own, until the parent closes the link or dies. Call it from `main`.
///
/// # Errors
/// [`Error::Io`] when this process was not started by a worker parent (no `MEMWIRE_TICKET`)
/// or its parent is already gone; the link's errors.
pub fn serve<S: Service>(service: S) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("start the worker's runtime", e))?;
    runtime.block_on(serve_async(Arc::new(service)))
}

/// [`serve`] on the caller's runtime.
///
/// # Errors
/// As [`serve`].
pub async fn serve_async<S: Service>(service: Arc<S>) -> Result<()> {
    if std::env::var_os(TICKET_ENV).is_none() {
        return Err(Error::io(
            "serve",
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{TICKET_ENV} is not set: this process was not started by a Worker"),
            ),
        ));
    }
    let link = Guest::from_env()?;
    // The parent named in the ticket must still be our parent: if it died before we got
    // here, we were re-parented and nobody will ever call us.
    let parent = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get().unsigned_abs());
    let host = link.peer().pid;
    if parent != host {
        return Err(Error::PeerGone { pid: host });
    }
    serve_link(link, service).await
}
