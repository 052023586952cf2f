//! An in-process store with its WebSocket server on 127.0.0.1:0, and a raw WebSocket client
//! for sending what the `Remote` client never would.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use memwire_store::FsyncPolicy;
use memwire_store::protocol::{Frame, Limits, Response, decode_response};
use memwire_store::remote::{RemoteServer, ServerOptions};
use memwire_store::store::{Session, Store, StoreConfig};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// A hang guard: every wait in these tests ends by then.
pub const GUARD: Duration = Duration::from_secs(60);

/// A variable path the test knows to be valid.
pub fn p(path: &str) -> memwire_store::protocol::VarPath {
    path.parse().expect("a valid variable path")
}

/// The default client options with requests in `format`.
pub fn options(format: memwire_store::protocol::Format) -> memwire_store::remote::RemoteOptions {
    let mut options = memwire_store::remote::RemoteOptions::default();
    options.format = format;
    options
}

pub struct Server {
    pub url: String,
    pub addr: std::net::SocketAddr,
    pub admin_key: String,
    pub store: Arc<Store>,
    pub admin: Session,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<memwire_store::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start(options: ServerOptions) -> Result<Self> {
        Self::start_tls(options, None).await
    }

    pub async fn start_tls(
        options: ServerOptions,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut config = StoreConfig::new(dir.path());
        config.fsync = FsyncPolicy::Never;
        let (store, startup) = Store::open(config)?;
        let admin_key = startup.admin_key.context("first start")?;
        let admin = store.authenticate(&admin_key)?;
        let store = Arc::new(store);
        let scheme = if tls.is_some() { "wss" } else { "ws" };
        let server = RemoteServer::bind(
            "127.0.0.1:0",
            Arc::clone(&store),
            tls.clone(),
            options.clone(),
        )
        .await?;
        let addr = server.local_addr()?;
        let mut this = Self {
            url: format!("{scheme}://{addr}"),
            addr,
            admin_key,
            store,
            admin,
            shutdown: None,
            task: None,
            _dir: dir,
        };
        this.run(server);
        Ok(this)
    }

    fn run(&mut self, server: RemoteServer) {
        let (tx, rx) = oneshot::channel();
        self.shutdown = Some(tx);
        self.task = Some(tokio::spawn(server.run(async {
            let _ = rx.await;
        })));
    }

    /// Stops the server: its listener closes and every connection ends.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(GUARD, task).await???;
        }
        Ok(())
    }

    /// Serves again on the same address.
    pub async fn restart(&mut self, options: ServerOptions) -> Result<()> {
        let server = RemoteServer::bind(self.addr, Arc::clone(&self.store), None, options).await?;
        self.run(server);
        Ok(())
    }

    pub fn key(&self, tenant: &str, role: memwire_store::Role) -> Result<(String, String)> {
        let (key, record) = self
            .store
            .create_key(&self.admin, Some(tenant), role, None, None)?;
        Ok((key, record.id))
    }
}

pub type Raw = WebSocketStream<TcpStream>;

/// A plain WebSocket connection, nothing sent yet.
pub async fn raw(addr: std::net::SocketAddr) -> Result<Raw> {
    let tcp = TcpStream::connect(addr).await?;
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}"), tcp).await?;
    Ok(ws)
}

/// The next protocol message, skipping pings; `None` when the server closed.
pub async fn recv(ws: &mut Raw) -> Result<Option<Response>> {
    loop {
        let message = tokio::time::timeout(GUARD, ws.next())
            .await
            .context("hang guard: no message from the server")?;
        let limits = Limits {
            max_message_bytes: usize::MAX,
            max_value_bytes: usize::MAX,
        };
        return Ok(Some(match message {
            None | Some(Ok(Message::Close(_))) | Some(Err(_)) => return Ok(None),
            Some(Ok(Message::Text(t))) => decode_response(Frame::Text(t.as_str()), &limits)?,
            Some(Ok(Message::Binary(b))) => decode_response(Frame::Binary(&b), &limits)?,
            Some(Ok(_)) => continue,
        }));
    }
}

pub async fn send_text(ws: &mut Raw, text: &str) -> Result<()> {
    ws.send(Message::text(text)).await?;
    Ok(())
}

pub async fn send_binary(ws: &mut Raw, bytes: &[u8]) -> Result<()> {
    ws.send(Message::binary(bytes.to_vec())).await?;
    Ok(())
}

pub async fn auth(ws: &mut Raw, key: &str) -> Result<()> {
    send_text(
        ws,
        &format!(r#"{{"type":"auth","id":0,"v":1,"key":"{key}"}}"#),
    )
    .await?;
    match recv(ws).await? {
        Some(Response::Ok { id: 0, .. }) => Ok(()),
        other => anyhow::bail!("auth answered {other:?}"),
    }
}
