//! [`Local`]'s admin requests: API keys (`create_key`, `list_keys`, `revoke_key`) and tenants
//! (`create_tenant`, `delete_tenant`). The server's [`Store`](crate::Store) checks each
//! against the client's key: only an admin key may (an admin of the tenant, for a tenant;
//! [`Error::PermissionDenied`](crate::Error::PermissionDenied) for any other key).

use super::client::{Local, unexpected};
use super::wire::{KeyInfo, Reply, Request};
use crate::auth::Role;
use crate::error::Result;

impl Local {
    /// Makes an API key (admin keys); returns the key (show it once) and its id.
    pub fn create_key(
        &self,
        tenant: Option<&str>,
        role: Role,
        services: Option<&str>,
        label: Option<&str>,
    ) -> Result<(String, String)> {
        match self.call(&Request::CreateKey {
            tenant: tenant.map(str::to_owned),
            role,
            services: services.map(str::to_owned),
            label: label.map(str::to_owned),
        })? {
            Reply::KeyCreated { key, id } => Ok((key, id)),
            other => Err(unexpected(&other)),
        }
    }

    /// The keys an admin key may see.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        match self.call(&Request::ListKeys)? {
            Reply::Keys(k) => Ok(k),
            other => Err(unexpected(&other)),
        }
    }

    /// Revokes the key `id`.
    pub fn revoke_key(&self, id: &str) -> Result<()> {
        match self.call(&Request::RevokeKey { id: id.to_owned() })? {
            Reply::Revoked { .. } => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Creates `tenant` with a memory quota of `quota_bytes` and at most `max_variables` live
    /// variables (`None`: the server's default for either). Admin keys only;
    /// [`Error::BadRequest`](crate::Error::BadRequest) if it exists or the quota cannot be.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let store = memwire_store::Local::connect("default", &std::env::var("MEMWIRE_KEY")?)?;
    /// store.create_tenant("acme", Some(1 << 20), Some(100))?;
    /// let deleted_at = store.delete_tenant("acme")?;
    /// # let _ = deleted_at;
    /// # Ok(())
    /// # }
    /// ```
    pub fn create_tenant(
        &self,
        tenant: &str,
        quota_bytes: Option<u64>,
        max_variables: Option<u32>,
    ) -> Result<()> {
        match self.call(&Request::CreateTenant {
            tenant: tenant.to_owned(),
            quota_bytes,
            max_variables,
        })? {
            Reply::TenantCreated => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Deletes `tenant` and every variable in it; returns the delete's version (a tenant
    /// created again under the name starts there). Admin keys only;
    /// [`Error::NotFound`](crate::Error::NotFound) if there is no such tenant. Mapped reads
    /// of it, this client's and every other's, give `NotFound` from then on, and its watchers
    /// end with `NotFound` (see [`Store::delete_tenant`](crate::Store::delete_tenant)).
    pub fn delete_tenant(&self, tenant: &str) -> Result<u64> {
        match self.call(&Request::DeleteTenant {
            tenant: tenant.to_owned(),
        })? {
            Reply::TenantDeleted { version } => Ok(version),
            other => Err(unexpected(&other)),
        }
    }

    /// A request that passes no fd, and its answer.
    fn call(&self, request: &Request) -> Result<Reply> {
        self.inner.call(request, None).map(|(reply, _)| reply)
    }
}
