//! [`RemoteServer`]: the accept loop. Each connection runs in its own task
//! ([`connection`](super::connection)); the loop never stops on a failed `accept`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::connection;
use crate::error::{Error, Result};
use crate::protocol::Limits;
use crate::store::Store;

/// How long the accept loop pauses when the process (`EMFILE`) or the system (`ENFILE`) is
/// out of file descriptors: long enough for connections to end, short enough to go unnoticed.
const FD_BACKOFF: Duration = Duration::from_millis(100);

/// How a [`RemoteServer`] treats its connections.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerOptions {
    /// A connection must finish its TLS and WebSocket handshakes and authenticate within
    /// this; else it is closed. Default 10 s.
    pub auth_timeout: Duration,
    /// Messages waiting to be written, per connection. A watch that finds the queue full
    /// is lagged. Default 1024.
    pub send_queue: usize,
    /// The message and value limits (the store's `max_value_bytes` should match). The
    /// WebSocket layer refuses, and closes on, messages over twice `max_message_bytes`.
    pub limits: Limits,
    /// Watches per connection at most; another `watch` is `bad_request`. Default 1024.
    pub max_watches: usize,
    /// How long a connection keeps polling for its client's next message after it answered,
    /// before it sleeps: a busy client's next request is then read without a thread wake-up.
    /// Spent only while the client's last request came within it. Zero: sleep at once.
    /// Default 50 µs (as memwire's links).
    pub busy_poll: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            auth_timeout: Duration::from_secs(10),
            send_queue: 1024,
            limits: Limits::default(),
            max_watches: 1024,
            busy_poll: Duration::from_micros(50),
        }
    }
}

impl ServerOptions {
    /// Limits for a store whose values reach `max_value_bytes` (its
    /// [`StoreConfig::max_value_bytes`](crate::StoreConfig::max_value_bytes)): values up to
    /// that, messages up to its base64 and 64 KiB more (at least the default 2 MiB).
    #[must_use]
    pub fn with_max_value_bytes(mut self, max_value_bytes: usize) -> Self {
        self.limits = Limits {
            max_message_bytes: super::wire::message_limit(max_value_bytes),
            max_value_bytes,
        };
        self
    }
}

/// The store's WebSocket server.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use memwire_store::remote::{RemoteServer, ServerOptions};
/// # use memwire_store::store::{Store, StoreConfig};
/// # async fn run() -> memwire_store::Result<()> {
/// let (store, _) = Store::open(StoreConfig::new("/tmp/memwire-data"))?;
/// let server = RemoteServer::bind("127.0.0.1:7117", Arc::new(store), None, ServerOptions::default()).await?;
/// println!("listening on ws://{}", server.local_addr()?);
/// server.run(async { let _ = tokio::signal::ctrl_c().await; }).await
/// # }
/// ```
pub struct RemoteServer {
    listener: TcpListener,
    store: Arc<Store>,
    tls: Option<TlsAcceptor>,
    options: Arc<ServerOptions>,
}

impl std::fmt::Debug for RemoteServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteServer")
            .field("listener", &self.listener)
            .field("tls", &self.tls.is_some())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl RemoteServer {
    /// Listens on `addr`; with `tls`, every connection is `wss://`.
    pub async fn bind(
        addr: impl ToSocketAddrs,
        store: Arc<Store>,
        tls: Option<Arc<rustls::ServerConfig>>,
        options: ServerOptions,
    ) -> Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::io("bind the WebSocket listener", e))?;
        Ok(Self::from_listener(listener, store, tls, options))
    }

    /// Serves on a listener made elsewhere.
    #[must_use]
    pub fn from_listener(
        listener: TcpListener,
        store: Arc<Store>,
        tls: Option<Arc<rustls::ServerConfig>>,
        options: ServerOptions,
    ) -> Self {
        Self {
            listener,
            store,
            tls: tls.map(TlsAcceptor::from),
            options: Arc::new(options),
        }
    }

    /// The address it listens on (the port, when bound to port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|e| Error::io("read the WebSocket listener's address", e))
    }

    /// Accepts connections until `shutdown` completes, then ends every connection (between
    /// requests: a store call in progress finishes first, since it holds no await point).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        connections.spawn(connection::serve(
                            tcp,
                            peer,
                            Arc::clone(&self.store),
                            self.tls.clone(),
                            Arc::clone(&self.options),
                        ));
                    }
                    Err(e) if out_of_fds(&e) => {
                        tracing::warn!(error = %e, "accept: out of file descriptors; pausing");
                        tokio::time::sleep(FD_BACKOFF).await;
                    }
                    // A connection reset before it was accepted, and the like: its own
                    // problem, not the listener's.
                    Err(e) => tracing::debug!(error = %e, "accept failed"),
                },
            }
        }
        connections.shutdown().await;
        Ok(())
    }
}

/// Whether `e` says the process or the system is out of file descriptors (or the kernel out
/// of socket memory): conditions that pass when connections close.
fn out_of_fds(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc_errno::EMFILE | libc_errno::ENFILE | libc_errno::ENOBUFS | libc_errno::ENOMEM)
    )
}

/// The errno values `out_of_fds` looks for (Linux's, as rustix names them).
mod libc_errno {
    pub(super) const EMFILE: i32 = rustix::io::Errno::MFILE.raw_os_error();
    pub(super) const ENFILE: i32 = rustix::io::Errno::NFILE.raw_os_error();
    pub(super) const ENOBUFS: i32 = rustix::io::Errno::NOBUFS.raw_os_error();
    pub(super) const ENOMEM: i32 = rustix::io::Errno::NOMEM.raw_os_error();
}
