//! The store servers `ls` lists: every `*.sock` in the runtime directory's `store/` folder
//! that a server answers at, with the server's pid and its tenants.
//!
//! ```text
//!  <runtime>/store/<name>.sock ── connect ──▶ refused: a killed server's socket, skipped
//!                                   │
//!                                   ├─ SO_PEERCRED: the server's pid (its links' host is
//!                                   │  `store-<pid>-<n>`)
//!                                   └─ Local::connect_at + stats, with each key in turn
//! ```
//!
//! The keys, tried in this order until a server accepts one: each `--key`, `MEMWIRE_KEY`,
//! then the `admin.key` of the default data directory (`MEMWIRE_DATA_DIR`, else
//! `$XDG_STATE_HOME/memwire`). A server that accepts none is still listed, with the reason;
//! it is never skipped in silence. With `--remote URL`, the one server at that WebSocket
//! address, with the same keys, through its `stats` request.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use memwire::store::local::TenantInfo;
use memwire::store::{Error, Local, Remote, RemoteOptions};

use crate::cli::error_chain;
use crate::cli::store::KEY_ENV;

/// A store server that answered.
#[derive(Debug)]
pub(super) struct Server {
    /// Its name (`memwire serve --name`): the socket's file stem (a remote one: its URL).
    pub(super) name: String,
    /// Its socket, `<runtime>/store/<name>.sock` (a remote one: its URL).
    pub(super) socket: PathBuf,
    /// Its pid; `None` when it runs in a pid namespace this process cannot see.
    pub(super) pid: Option<u32>,
    /// Its tenants, as the first key it accepted sees them, or why there are none to show.
    pub(super) tenants: Result<Vec<Listed>, String>,
}

/// A tenant of a server, with the number of its services.
#[derive(Debug)]
pub(super) struct Listed {
    pub(super) info: TenantInfo,
    pub(super) services: usize,
}

/// The keys to try on each server, in order. No `Debug`: it would print the keys.
pub(super) struct Keys {
    /// Each key and where it came from (`--key`, `MEMWIRE_KEY` or the admin key's file).
    keys: Vec<(String, String)>,
    /// Why the default data directory gave no key, if it did not.
    no_admin_key: Option<String>,
}

impl Keys {
    /// `given` (the `--key`s), then `MEMWIRE_KEY`, then the default data directory's
    /// `admin.key`, each key once.
    pub(super) fn gather(given: &[String]) -> Self {
        let mut keys: Vec<(String, String)> = given
            .iter()
            .map(|k| (k.trim().to_owned(), "--key".to_owned()))
            .collect();
        match std::env::var(KEY_ENV) {
            Ok(key) => keys.push((key.trim().to_owned(), KEY_ENV.to_owned())),
            Err(std::env::VarError::NotPresent) => {}
            Err(std::env::VarError::NotUnicode(_)) => {
                tracing::debug!("{KEY_ENV} is not UTF-8; not trying it");
            }
        }
        let dir = memwire::store::default_data_dir();
        let no_admin_key = match memwire::store::read_admin_key(&dir) {
            Ok(key) => {
                let file = dir.join(memwire::store::auth::ADMIN_KEY_FILE);
                keys.push((key, file.display().to_string()));
                None
            }
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Some(format!("no admin.key in {}", dir.display()))
            }
            Err(err) => Some(error_chain(&err)),
        };
        let mut seen = std::collections::HashSet::new();
        keys.retain(|(key, _)| !key.is_empty() && seen.insert(key.clone()));
        Self { keys, no_admin_key }
    }

    /// Why a server that refused every key shows no tenants.
    fn refused(&self) -> String {
        if self.keys.is_empty() {
            let admin = self.no_admin_key.as_deref().unwrap_or("no admin.key");
            return format!("no key: no --key, no {KEY_ENV}, and {admin}");
        }
        let mut sources: Vec<&str> = self.keys.iter().map(|(_, from)| from.as_str()).collect();
        sources.dedup();
        format!("no key works (tried {})", sources.join(", "))
    }
}

/// Every store server that answers in the runtime directory, sorted by name.
pub(super) fn list(keys: &Keys) -> Result<Vec<Server>> {
    let mut servers = Vec::new();
    for (name, socket) in sockets()? {
        let Some(pid) = probe(&socket) else {
            tracing::debug!(socket = %socket.display(), "nobody answers: a stopped server's socket");
            continue;
        };
        servers.push(Server {
            tenants: tenants(&socket, keys),
            name,
            socket,
            pid,
        });
    }
    servers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(servers)
}

/// The store server at `url` (`ws://` or `wss://`, trusting `ca` when given), its tenants as
/// the first key it accepts sees them (`stats` over the WebSocket). Unreachable: an error.
pub(super) fn remote(url: &str, ca: Option<&Path>, keys: &Keys) -> Result<Server> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a tokio runtime")?;
    let mut options = RemoteOptions::default();
    options.ca_file = ca.map(Path::to_path_buf);
    let mut tenants = Err(keys.refused());
    for (key, _) in &keys.keys {
        let listed = runtime.block_on(async {
            let remote = Remote::connect(url, key, options.clone()).await?;
            let mut listed = Vec::new();
            for info in remote.stats().await? {
                let services = remote.list(Some(&info.tenant), None).await?.len();
                listed.push(Listed { info, services });
            }
            Ok::<_, Error>(listed)
        });
        match listed {
            Ok(listed) => {
                tenants = Ok(listed);
                break;
            }
            Err(Error::Unauthenticated(_) | Error::PermissionDenied(_)) => {}
            Err(err) => return Err(err).with_context(|| format!("listing {url}")),
        }
    }
    Ok(Server {
        name: url.to_owned(),
        socket: PathBuf::from(url),
        pid: None,
        tenants,
    })
}

/// Every `<name>.sock` in the store servers' socket folder, live or not.
fn sockets() -> Result<Vec<(String, PathBuf)>> {
    // The folder `socket_path` puts every server's socket in (it creates it, mode 0700).
    let sample = memwire::store::local::socket_path("default")?;
    let dir = sample
        .parent()
        .context("a store socket path has a folder")?;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("reading {}", dir.display())),
    };
    let mut found = Vec::new();
    for entry in entries {
        let socket = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        if let Some(name) = server_name(&socket) {
            found.push((name.to_owned(), socket));
        }
    }
    Ok(found)
}

/// The sockets of store servers that were killed (nobody answers there), removed unless
/// `dry_run`, sorted by name.
pub(crate) fn remove_stale(dry_run: bool) -> Result<Vec<(String, PathBuf)>> {
    let mut stale: Vec<(String, PathBuf)> = sockets()?
        .into_iter()
        .filter(|(_, socket)| probe(socket).is_none())
        .collect();
    if !dry_run {
        for (_, socket) in &stale {
            match std::fs::remove_file(socket) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(err).with_context(|| format!("removing {}", socket.display()));
                }
            }
        }
    }
    stale.sort();
    Ok(stale)
}

/// The server's name if `path` is `<name>.sock`.
fn server_name(path: &Path) -> Option<&str> {
    if path.extension()? != "sock" {
        return None;
    }
    path.file_stem()?.to_str()
}

/// Connects to `socket`: `None` if nobody answers, else the answering process's pid
/// (`Some(None)` if it is not visible here).
fn probe(socket: &Path) -> Option<Option<u32>> {
    let stream = UnixStream::connect(socket).ok()?;
    Some(
        memwire::shm::peer_credentials(&stream)
            .ok()
            .map(|cred| cred.pid)
            .filter(|&pid| pid != 0),
    )
}

/// The tenants the first key the server accepts may see.
fn tenants(socket: &Path, keys: &Keys) -> Result<Vec<Listed>, String> {
    for (key, _) in &keys.keys {
        let listed = Local::connect_at(socket, key).and_then(|local| {
            local
                .stats()?
                .into_iter()
                .map(|info| {
                    let services = local.list(Some(&info.tenant), None)?.len();
                    Ok(Listed { info, services })
                })
                .collect()
        });
        match listed {
            Ok(tenants) => return Ok(tenants),
            Err(Error::Unauthenticated(_) | Error::PermissionDenied(_)) => {}
            Err(err) => return Err(error_chain(&err)),
        }
    }
    Err(keys.refused())
}

/// What a transport host is, when its name says it carries a store server's links:
/// `store links of <server>`, or of its pid when no listed server has that pid.
pub(super) fn host_role(host: &str, servers: &[Server]) -> Option<String> {
    let pid = store_link_pid(host)?;
    Some(match servers.iter().find(|s| s.pid == Some(pid)) {
        Some(server) => format!("store links of {}", server.name),
        None => format!("store links of pid {pid}"),
    })
}

/// The pid in a store server's link host name, `store-<pid>-<n>` (memwire-store's
/// `local::link` names them so).
fn store_link_pid(host: &str) -> Option<u32> {
    let (pid, n) = host.strip_prefix("store-")?.split_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_hosts_are_recognised_by_name() {
        assert_eq!(store_link_pid("store-4121-0"), Some(4121));
        assert_eq!(store_link_pid("store-4121-12"), Some(4121));
        assert_eq!(store_link_pid("store-4121"), None);
        assert_eq!(store_link_pid("store-x-0"), None);
        assert_eq!(store_link_pid("store-1-x"), None);
        assert_eq!(store_link_pid("math"), None);
    }

    #[test]
    fn only_sock_files_name_servers() {
        assert_eq!(
            server_name(Path::new("/r/store/default.sock")),
            Some("default")
        );
        assert_eq!(server_name(Path::new("/r/store/a.b.sock")), Some("a.b"));
        assert_eq!(server_name(Path::new("/r/store/default.lock")), None);
        assert_eq!(server_name(Path::new("/r/store/sock")), None);
    }
}
