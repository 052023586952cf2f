//! [`Target`]: where `get`, `set`, `del`, `watch`, `key` and `tenant` send their requests, a local server
//! (`--name`) or a remote one (`--remote ws[s]://HOST:PORT`, `--ca FILE` for `wss://`), and
//! [`Client`], the same operations over either, with the same results and errors.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use memwire::store::local::KeyInfo;
use memwire::store::protocol::{Scope, VarPath};
use memwire::store::store::{Stored, Written};
use memwire::store::{
    Error, Local, LocalWatcher, Remote, RemoteOptions, RemoteWatch, Role, WatchEvent,
};

use super::Server;

/// Which server, local or remote, and with what key.
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    #[command(flatten)]
    server: Server,
    /// A remote server, `ws://HOST:PORT` or `wss://HOST:PORT`, instead of the local one
    /// (`--name` is then unused; the key is found as for a local server).
    #[arg(long, value_name = "URL")]
    remote: Option<String>,
    /// For `wss://`: a PEM file of the CA certificates to trust (else the Mozilla roots).
    #[arg(long, value_name = "FILE", requires = "remote")]
    ca: Option<PathBuf>,
}

impl Target {
    /// Connects to the server.
    pub(crate) fn connect(&self) -> Result<Client> {
        let Some(url) = &self.remote else {
            return Ok(Client::Local(self.server.connect()?));
        };
        let key = self.server.key()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting a tokio runtime")?;
        let mut options = RemoteOptions::default();
        options.ca_file.clone_from(&self.ca);
        let remote = runtime.block_on(Remote::connect(url, &key, options))?;
        Ok(Client::Remote { runtime, remote })
    }
}

/// A client of a local or a remote server.
pub(crate) enum Client {
    Local(Local),
    Remote {
        runtime: tokio::runtime::Runtime,
        remote: Remote,
    },
}

impl Client {
    /// The variable at `path`, `None` when it (or its tenant or service) does not exist.
    pub(crate) fn get(&self, path: &VarPath) -> Result<Option<Stored>> {
        match self {
            Self::Local(local) => Ok(local.get(path)?),
            Self::Remote { runtime, remote } => match runtime.block_on(remote.get(path)) {
                Ok(stored) => Ok(Some(stored)),
                Err(Error::NotFound(_)) => Ok(None),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// Sets `path`; with `expected`, only at that version (`0`: only if it does not exist).
    pub(crate) fn set(
        &self,
        path: &VarPath,
        value: &[u8],
        expected: Option<u64>,
    ) -> Result<Written> {
        Ok(match (self, expected) {
            (Self::Local(local), Some(expected)) => local.compare_and_set(path, value, expected)?,
            (Self::Local(local), None) => local.set(path, value)?,
            (Self::Remote { runtime, remote }, _) => {
                runtime.block_on(remote.set(path, value, expected))?
            }
        })
    }

    /// Deletes `path`; with `expected`, only at that version.
    pub(crate) fn delete(&self, path: &VarPath, expected: Option<u64>) -> Result<Written> {
        Ok(match self {
            Self::Local(local) => local.delete(path, expected)?,
            Self::Remote { runtime, remote } => runtime.block_on(remote.delete(path, expected))?,
        })
    }

    /// Watches `scope`, from now or from `from_version` on.
    pub(crate) fn watch(&self, scope: &Scope, from_version: Option<u64>) -> Result<Watch<'_>> {
        Ok(match self {
            Self::Local(local) => Watch::Local(local.watch(scope, from_version)?),
            Self::Remote { runtime, remote } => Watch::Remote(
                runtime,
                runtime.block_on(remote.watch(scope, from_version))?,
            ),
        })
    }

    /// Makes an API key for `tenant` (`None`: every tenant); returns the key and its id.
    pub(crate) fn create_key(
        &self,
        tenant: Option<&str>,
        role: Role,
        services: Option<&str>,
        label: Option<&str>,
    ) -> Result<(String, String)> {
        Ok(match self {
            Self::Local(local) => local.create_key(tenant, role, services, label)?,
            Self::Remote { runtime, remote } => {
                runtime.block_on(remote.create_key(tenant, role, services, label))?
            }
        })
    }

    /// The records of the keys the key administers.
    pub(crate) fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        Ok(match self {
            Self::Local(local) => local.list_keys()?,
            Self::Remote { runtime, remote } => runtime.block_on(remote.list_keys())?,
        })
    }

    /// Revokes the key `id`.
    pub(crate) fn revoke_key(&self, id: &str) -> Result<()> {
        match self {
            Self::Local(local) => local.revoke_key(id)?,
            Self::Remote { runtime, remote } => runtime.block_on(remote.revoke_key(id))?,
        }
        Ok(())
    }

    /// Creates `tenant` with these quotas (`None`: the server's default).
    pub(crate) fn create_tenant(
        &self,
        tenant: &str,
        quota_bytes: Option<u64>,
        max_variables: Option<u32>,
    ) -> Result<()> {
        match self {
            Self::Local(local) => local.create_tenant(tenant, quota_bytes, max_variables)?,
            Self::Remote { runtime, remote } => {
                runtime.block_on(remote.create_tenant(tenant, quota_bytes, max_variables))?;
            }
        }
        Ok(())
    }

    /// Deletes `tenant`; the delete's version.
    pub(crate) fn delete_tenant(&self, tenant: &str) -> Result<u64> {
        Ok(match self {
            Self::Local(local) => local.delete_tenant(tenant)?,
            Self::Remote { runtime, remote } => runtime.block_on(remote.delete_tenant(tenant))?,
        })
    }
}

/// A watch of a local or a remote server.
pub(crate) enum Watch<'a> {
    Local(LocalWatcher),
    Remote(&'a tokio::runtime::Runtime, RemoteWatch),
}

impl Watch<'_> {
    /// The next event, waiting for it.
    pub(crate) fn next(&mut self) -> Result<WatchEvent> {
        Ok(match self {
            Self::Local(watcher) => watcher.next()?,
            Self::Remote(runtime, watch) => runtime.block_on(watch.next())?,
        })
    }
}
