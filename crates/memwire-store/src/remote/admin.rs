//! [`Remote`]'s admin requests, `create_key`, `list_keys`, `revoke_key`, `create_tenant` and
//! `delete_tenant`: the same calls as [`Local`](crate::Local)'s, with the same results. The
//! server's [`Store`](crate::Store) checks each against the connection's key: only an admin
//! key may make, list or revoke keys, or create and delete tenants
//! ([`Error::PermissionDenied`](crate::Error::PermissionDenied) for any other), and a tenant
//! admin only keys of its tenant, and its tenant.

use super::client::{Remote, name, unexpected};
use crate::auth::{Role, ServicePattern};
use crate::error::Result;
use crate::local::KeyInfo;
use crate::protocol::{KeyEntry, Reply, Request, TenantInfo};

impl Remote {
    /// Makes an API key for `tenant` (`None`: every tenant) with `role`, limited to the
    /// services matching `services` if given; returns the key (show it once: the server keeps
    /// only its hash) and its id. [`Error::BadRequest`](crate::Error::BadRequest) for an
    /// invalid tenant name, pattern or label.
    ///
    /// ```no_run
    /// # use memwire_store::remote::{Remote, RemoteOptions};
    /// # use memwire_store::Role;
    /// # async fn run(admin: Remote) -> memwire_store::Result<()> {
    /// let (key, id) = admin.create_key(Some("acme"), Role::Read, None, Some("dashboard")).await?;
    /// let reader = Remote::connect("ws://127.0.0.1:7117", &key, RemoteOptions::default()).await?;
    /// reader.ping().await?;
    /// admin.revoke_key(&id).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create_key(
        &self,
        tenant: Option<&str>,
        role: Role,
        services: Option<&str>,
        label: Option<&str>,
    ) -> Result<(String, String)> {
        let tenant = tenant.map(name).transpose()?;
        let services = services.map(ServicePattern::new).transpose()?;
        let request = |id| Request::CreateKey {
            id,
            tenant,
            role,
            services,
            label: label.map(str::to_owned),
        };
        match self.call(request, None).await? {
            Reply::CreateKey { key, key_id } => Ok((key, key_id)),
            other => Err(unexpected(&other)),
        }
    }

    /// The records of the keys this admin key administers (all of them for an admin of every
    /// tenant, its tenant's for a tenant admin), oldest first; never the keys themselves.
    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        match self.call(|id| Request::ListKeys { id }, None).await? {
            Reply::ListKeys { keys } => Ok(keys.into_iter().map(key_info).collect()),
            other => Err(unexpected(&other)),
        }
    }

    /// Revokes the key `id`: its sessions, here and over the local socket, fail from now on
    /// ([`Error::NotFound`](crate::Error::NotFound) if there is no such key). Revoking a
    /// revoked key is no error.
    pub async fn revoke_key(&self, id: &str) -> Result<()> {
        let request = |request_id| Request::RevokeKey {
            id: request_id,
            key_id: id.to_owned(),
        };
        match self.call(request, None).await? {
            Reply::RevokeKey { .. } => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}

impl Remote {
    /// Creates `tenant`, empty, with a memory quota of `quota_bytes` and at most
    /// `max_variables` live variables (`None`: the server's default for either).
    /// [`Error::BadRequest`](crate::Error::BadRequest) if it exists, or for a bad name or a
    /// quota the server cannot give.
    ///
    /// ```no_run
    /// # use memwire_store::remote::Remote;
    /// # async fn run(admin: Remote) -> memwire_store::Result<()> {
    /// admin.create_tenant("acme", Some(1 << 20), Some(100)).await?;
    /// let deleted_at = admin.delete_tenant("acme").await?;
    /// # let _ = deleted_at;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create_tenant(
        &self,
        tenant: &str,
        quota_bytes: Option<u64>,
        max_variables: Option<u32>,
    ) -> Result<()> {
        let tenant = name(tenant)?;
        let request = |id| Request::CreateTenant {
            id,
            tenant,
            quota_bytes,
            max_variables,
        };
        match self.call(request, None).await? {
            Reply::CreateTenant => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Deletes `tenant` and every variable in it; returns the delete's version (a tenant
    /// created again under the name starts there).
    /// [`Error::NotFound`](crate::Error::NotFound) if there is no such tenant. Its watches,
    /// on every connection, end with `NotFound`.
    pub async fn delete_tenant(&self, tenant: &str) -> Result<u64> {
        let tenant = name(tenant)?;
        match self
            .call(|id| Request::DeleteTenant { id, tenant }, None)
            .await?
        {
            Reply::DeleteTenant { version } => Ok(version),
            other => Err(unexpected(&other)),
        }
    }

    /// The numbers of the tenants this key may see, as `memwire ls` shows them: its own
    /// tenant, or every one for an admin key of all tenants.
    pub async fn stats(&self) -> Result<Vec<TenantInfo>> {
        match self.call(|id| Request::Stats { id }, None).await? {
            Reply::Stats { tenants } => Ok(tenants),
            other => Err(unexpected(&other)),
        }
    }
}

/// A wire entry as the local client lists it.
fn key_info(entry: KeyEntry) -> KeyInfo {
    KeyInfo {
        id: entry.id,
        tenant: entry.tenant,
        role: entry.role,
        services: entry.services,
        revoked: entry.revoked,
        label: entry.label,
        created_at_unix_ms: entry.created_at_unix_ms,
    }
}
