//! [`Remote`]: the store's API over one WebSocket connection. Requests are pipelined: each
//! takes the next id, and a reader task hands every answer to the caller waiting for its id
//! and every pushed message to its [`RemoteWatch`].
//!
//! When the connection drops, calls in flight fail with [`Error::ServerGone`] and every watch's
//! channel closes; the next call connects again (once; [`Error::ServerGone`] if that fails),
//! and each [`RemoteWatch`] resumes by itself from the version after the last one it saw.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use memwire_shm::Name;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;

use super::conn::{Conn, Url};
use super::tls;
use super::watch::RemoteWatch;
use crate::error::{Error, Result};
use crate::protocol::{self, Format, ListEntry, Reply, Request, Response, Scope, Value, VarPath};
use crate::store::{Stored, Written};

/// How a [`Remote`] connects.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RemoteOptions {
    /// For `wss://`: a PEM file of the CA certificates to trust; `None`: the Mozilla roots.
    pub ca_file: Option<PathBuf>,
    /// The encoding of the requests (and so of the answers). Default MessagePack.
    pub format: Format,
    /// How long connecting (TCP, TLS, WebSocket, `auth`) may take. Default 10 s.
    pub connect_timeout: Duration,
    /// How long a [`RemoteWatch`] keeps trying to reconnect before it reports
    /// [`Error::ServerGone`]. Default 30 s.
    pub reconnect_for: Duration,
    /// Pushed messages waiting per watch. When a watch is not read and this fills, the
    /// connection stops reading (so its answers wait too) and the server lags the watch.
    /// Default 4096.
    pub watch_buffer: usize,
    /// How long a call keeps polling for its answer before its task sleeps: a server on this
    /// machine (or next to it) answers within it, and the answer is then read without a
    /// thread wake-up. Spent only while answers came within it; zero: sleep at once.
    /// Default 50 µs (as memwire's links).
    pub busy_poll: Duration,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            ca_file: None,
            format: Format::MessagePack,
            connect_timeout: Duration::from_secs(10),
            reconnect_for: Duration::from_secs(30),
            watch_buffer: 4096,
            busy_poll: Duration::from_micros(50),
        }
    }
}

/// A byte stream, plain or TLS.
pub(super) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

pub(super) type Ws = WebSocketStream<Box<dyn Io>>;

/// A client of a remote store server; cheap to clone (clones share the connection).
///
/// ```no_run
/// # use memwire_store::remote::{Remote, RemoteOptions};
/// # async fn run() -> memwire_store::Result<()> {
/// let remote = Remote::connect("ws://127.0.0.1:7117", "mw_...", RemoteOptions::default()).await?;
/// let path = "acme/billing/rate".parse().expect("a path");
/// let written = remote.set(&path, b"0.19", None).await?;
/// assert_eq!(remote.get(&path).await?.version, written.version);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Remote {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    url: Url,
    key: String,
    options: RemoteOptions,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The current connection; replaced when it is found closed.
    conn: tokio::sync::Mutex<Arc<Conn>>,
}

impl Remote {
    /// Connects to `url` (`ws://HOST:PORT[/PATH]` or `wss://...`) and authenticates with
    /// `key`.
    pub async fn connect(url: &str, key: &str, options: RemoteOptions) -> Result<Self> {
        let url = Url::parse(url)?;
        let tls = if url.tls {
            Some(tls::client_config(options.ca_file.as_deref())?)
        } else {
            None
        };
        let conn = Conn::open(&url, key, &options, tls.as_ref()).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                url,
                key: key.to_owned(),
                options,
                tls,
                conn: tokio::sync::Mutex::new(conn),
            }),
        })
    }

    /// The options it connected with.
    #[must_use]
    pub fn options(&self) -> &RemoteOptions {
        &self.inner.options
    }

    /// The variable at `path`; [`Error::NotFound`] if it (or its tenant) does not exist.
    pub async fn get(&self, path: &VarPath) -> Result<Stored> {
        let request = |id| Request::Get {
            id,
            path: path.clone(),
        };
        match self.call(request, None).await? {
            Reply::Get {
                value,
                version,
                timestamp_ms,
            } => Ok(Stored {
                value: value.into_bytes(),
                version,
                timestamp_ms,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// Sets the variable at `path`; with `expected_version`, only if its version is that
    /// (`Some(0)`: only if it does not exist), else [`Error::Conflict`]. A value larger than
    /// the server takes is [`Error::BadRequest`], and not sent.
    pub async fn set(
        &self,
        path: &VarPath,
        value: &[u8],
        expected_version: Option<u64>,
    ) -> Result<Written> {
        let conn = self.conn().await?;
        conn.check_value(path, value)?;
        let request = Request::Set {
            id: conn.next_id(),
            path: path.clone(),
            value: Value(value.to_vec()),
            expected_version,
        };
        written(conn.call(request, expected_version, None).await?)
    }

    /// Deletes the variable at `path` ([`Error::NotFound`] if it does not exist), with
    /// `expected_version` as in [`Remote::set`].
    pub async fn delete(&self, path: &VarPath, expected_version: Option<u64>) -> Result<Written> {
        let request = |id| Request::Delete {
            id,
            path: path.clone(),
            expected_version,
        };
        written(self.call(request, expected_version).await?)
    }

    /// Sets several variables of one service atomically, under one version.
    pub async fn set_many(
        &self,
        tenant: &str,
        service: &str,
        values: &[(&str, &[u8])],
    ) -> Result<Written> {
        let conn = self.conn().await?;
        let mut map = std::collections::BTreeMap::new();
        for &(variable, value) in values {
            conn.check_value(&format_args!("{tenant}/{service}/{variable}"), value)?;
            map.insert(name(variable)?, Value(value.to_vec()));
        }
        let (tenant, service) = (name(tenant)?, name(service)?);
        let request = Request::SetMany {
            id: conn.next_id(),
            tenant,
            service,
            values: map,
        };
        written(conn.call(request, None, None).await?)
    }

    /// Tenants (`tenant` `None`), the services of a tenant, or the variables of a service.
    pub async fn list(
        &self,
        tenant: Option<&str>,
        service: Option<&str>,
    ) -> Result<Vec<ListEntry>> {
        let (tenant, service) = (
            tenant.map(name).transpose()?,
            service.map(name).transpose()?,
        );
        let request = |id| Request::List {
            id,
            tenant,
            service,
        };
        match self.call(request, None).await? {
            Reply::List { entries } => Ok(entries),
            other => Err(unexpected(&other)),
        }
    }

    /// A round trip to the server.
    pub async fn ping(&self) -> Result<()> {
        match self.call(|id| Request::Ping { id }, None).await? {
            Reply::Ping => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Watches `scope`: every change after now, or from `from_version` on (inclusive). See
    /// [`RemoteWatch`].
    pub async fn watch(&self, scope: &Scope, from_version: Option<u64>) -> Result<RemoteWatch> {
        let (watch_id, version, events, conn) = self.start_watch(scope, from_version).await?;
        // Before its first event, the watch has seen everything up to the version it
        // started from.
        let seen = from_version.map_or(version, |from| from.saturating_sub(1));
        Ok(RemoteWatch::new(
            self.clone(),
            scope.clone(),
            seen,
            watch_id,
            events,
            conn,
        ))
    }

    /// Sends `watch` and returns its id, the tenant's version, the watch's channel and the
    /// connection it lives on.
    pub(super) async fn start_watch(
        &self,
        scope: &Scope,
        from_version: Option<u64>,
    ) -> Result<(u64, u64, mpsc::Receiver<Response>, Arc<Conn>)> {
        let conn = self.conn().await?;
        let id = conn.next_id();
        let (events_tx, events) = mpsc::channel(self.inner.options.watch_buffer.max(1));
        let request = Request::Watch {
            id,
            path: scope.clone(),
            from_version,
        };
        match conn.call(request, None, Some(events_tx)).await? {
            Reply::Watch { watch_id, version } => Ok((watch_id, version, events, conn)),
            other => Err(unexpected(&other)),
        }
    }

    /// The connection, opened again if the last one closed.
    async fn conn(&self) -> Result<Arc<Conn>> {
        let mut conn = self.inner.conn.lock().await;
        if conn.is_closed() {
            let fresh = Conn::open(
                &self.inner.url,
                &self.inner.key,
                &self.inner.options,
                self.inner.tls.as_ref(),
            )
            .await
            .map_err(|e| match e {
                // A key refused on reconnect is worth telling as it is.
                e @ (Error::Unauthenticated(_) | Error::Remote { .. }) => e,
                e => {
                    tracing::debug!(error = %e, "reconnect failed");
                    Error::ServerGone
                }
            })?;
            *conn = fresh;
        }
        Ok(Arc::clone(&conn))
    }

    /// Sends the request `make` builds with the connection's next id; waits for its answer.
    pub(super) async fn call(
        &self,
        make: impl FnOnce(u64) -> Request,
        expected: Option<u64>,
    ) -> Result<Reply> {
        let conn = self.conn().await?;
        let request = make(conn.next_id());
        conn.call(request, expected, None).await
    }
}

pub(super) fn name(text: &str) -> Result<Name> {
    Name::new(text).map_err(|e| Error::BadRequest(format!("{text:?}: {e}")))
}

fn written(reply: Reply) -> Result<Written> {
    match reply {
        Reply::Set {
            version,
            timestamp_ms,
        }
        | Reply::Delete {
            version,
            timestamp_ms,
        }
        | Reply::SetMany {
            version,
            timestamp_ms,
        } => Ok(Written {
            version,
            timestamp_ms,
        }),
        other => Err(unexpected(&other)),
    }
}

pub(super) fn unexpected(reply: &Reply) -> Error {
    Error::Remote {
        code: protocol::ErrorCode::BadMessage,
        message: format!("the server answered with an unexpected reply: {reply:?}"),
    }
}
