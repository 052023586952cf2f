//! Shared by the local endpoint's tests: the store server child (this test binary re-run with
//! `MEMWIRE_TEST_ROLE=server`, through the `server_role` test each binary declares) and how the
//! parent starts it, kills it and finds its admin key and link host.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use memwire_store::LocalServer;
use memwire_store::store::{Store, StoreConfig};

pub const ROLE: &str = "MEMWIRE_TEST_ROLE";

/// The body of each binary's `server_role` test: runs a store server on `MEMWIRE_TEST_DATA` /
/// `MEMWIRE_TEST_SOCKET` until killed when `MEMWIRE_TEST_ROLE=server`, else returns at once.
pub fn server_role() -> anyhow::Result<()> {
    if std::env::var(ROLE).as_deref() != Ok("server") {
        return Ok(());
    }
    let data = PathBuf::from(std::env::var("MEMWIRE_TEST_DATA")?);
    let socket = PathBuf::from(std::env::var("MEMWIRE_TEST_SOCKET")?);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let (store, _) = Store::open(StoreConfig::new(&data))?;
        let store = Arc::new(store);
        let server = LocalServer::bind(Arc::clone(&store), &socket)?;
        println!("ready");
        std::io::stdout().flush()?;
        server.run(std::future::pending()).await?;
        anyhow::Ok(())
    })
}

pub struct Server {
    pub child: Child,
    pub socket: PathBuf,
}

impl Server {
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        let socket = dir.join("store.sock");
        let mut child = Command::new(std::env::current_exe()?)
            .args([
                "--exact",
                "server_role",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, "server")
            .env("MEMWIRE_TEST_DATA", dir.join("data"))
            .env("MEMWIRE_TEST_SOCKET", &socket)
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next().transpose()? {
                Some(line) if line.ends_with("ready") => break,
                Some(_) => {}
                None => anyhow::bail!("the server exited before it was ready"),
            }
        }
        Ok(Self { child, socket })
    }

    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn admin_key(dir: &Path) -> anyhow::Result<String> {
    Ok(memwire_store::read_admin_key(dir.join("data"))?)
}

/// The store's transport host of the server `pid`, found in the runtime directory.
pub fn link_host(pid: u32) -> anyhow::Result<memwire_transport::HostStatus> {
    memwire_transport::list_hosts()?
        .into_iter()
        .find(|h| h.pid == Some(pid) && h.name.as_str().starts_with("store-"))
        .ok_or_else(|| anyhow::anyhow!("the server {pid} has no store link host"))
}
