//! The admin requests: tenants (created, deleted) and API keys (a revoked key's tenants move to
//! fresh segments).

use super::{Store, write};
use crate::auth::{Action, KeyRecord, Role, ServicePattern, authorize, may_map_tenant};
use crate::error::{Error, Result};
use crate::segment::TenantConfig;
use crate::store::state::State;
use crate::store::{Quota, Session};

impl Store {
    /// Creates `tenant` with `quota` (default: the configured one). Admin keys only;
    /// [`Error::BadRequest`] if it exists, or for a bad name or quota (no variable, or more
    /// memory than a segment can have). A name deleted before starts at the version of its
    /// delete (see the [store docs](crate::store)).
    pub fn create_tenant(&self, s: &Session, tenant: &str, quota: Option<Quota>) -> Result<()> {
        let key = self.shared.check(s)?;
        authorize(key, Action::Admin, tenant, None)?;
        let mut state = self.shared.state()?;
        self.add_tenant(
            &mut state,
            tenant,
            quota.unwrap_or(self.shared.config.default_quota),
        )?;
        state.maybe_snapshot(self.shared.config.snapshot_every);
        Ok(())
    }

    /// A quota of `bytes` and `variables`, the store's default for either not given (what a
    /// client's `create_tenant` request asks for).
    #[must_use]
    pub fn quota_or_default(&self, bytes: Option<u64>, variables: Option<u32>) -> Quota {
        let default = self.shared.config.default_quota;
        Quota {
            bytes: bytes.unwrap_or(default.bytes),
            variables: variables.unwrap_or(default.variables),
        }
    }

    /// Deletes `tenant` with every variable in it, and returns the version of the delete
    /// (the tenant's revision + 1). Admin keys only (as [`Store::create_tenant`]);
    /// [`Error::NotFound`] if there is no such tenant.
    ///
    /// The delete is logged before it is answered (a restart does not bring the tenant
    /// back). Its segment is retired, as a revocation retires one: a local client that mapped
    /// it sees the flag on its next read, and finds the tenant gone (`NotFound`) instead of
    /// reading the old values; its watchers end ([`Watcher`](crate::Watcher) reads fail with
    /// `NotFound`). Keys of the tenant are kept: they work again for a tenant created later
    /// under the name, which starts empty at the version of this delete.
    pub fn delete_tenant(&self, s: &Session, tenant: &str) -> Result<u64> {
        let key = self.shared.check(s)?;
        authorize(key, Action::Admin, tenant, None)?;
        let mut state = self.shared.state()?;
        let (mut gone, version) = state.remove_tenant(tenant)?;
        write(&self.shared.handles).remove(tenant);
        gone.feed.end(version);
        // Logged and out of the state: a failure here (it cannot fail: a store to the
        // server's own mapping) must not bring the tenant back.
        if let Err(e) = gone.writer.retire() {
            tracing::error!(tenant, error = %e, "retiring a deleted tenant's segment failed");
        }
        self.shared.wakers.ring(tenant);
        state.maybe_snapshot(self.shared.config.snapshot_every);
        Ok(version)
    }

    /// Makes a key. Admin keys only; a key for every tenant (`tenant` `None`) or for another
    /// tenant needs an admin key of every tenant. Returns the key (show it once) and its
    /// record.
    pub fn create_key(
        &self,
        s: &Session,
        tenant: Option<&str>,
        role: Role,
        services: Option<ServicePattern>,
        label: Option<&str>,
    ) -> Result<(String, KeyRecord)> {
        let key = self.shared.check(s)?;
        admin_over(key, tenant)?;
        let mut state = self.shared.state()?;
        state.keys.create(tenant, role, services, label)
    }

    /// Revokes the key `id`: its sessions fail from now on, and each tenant it could map
    /// moves to a fresh segment, so its old mappings see no later write. Admin keys only,
    /// over the revoked key's tenant; any other key is refused before the id is looked up, so
    /// it learns nothing of which ids exist.
    pub fn revoke_key(&self, s: &Session, id: &str) -> Result<KeyRecord> {
        let key = self.shared.check(s)?;
        admin_over(key, key.tenant.as_deref())?;
        let mut state = self.shared.state()?;
        let target = state
            .keys
            .list()
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| Error::NotFound(format!("no API key with id {id:?}")))?;
        admin_over(key, target.tenant.as_deref())?;
        let record = state.keys.revoke(id)?;
        write(&self.shared.revoked).insert(record.id.clone());
        let moved: Vec<String> = state
            .tenants
            .keys()
            .filter(|t| may_map_tenant(&target, t))
            .cloned()
            .collect();
        for name in moved {
            let tenant = state.tenant_mut(&name)?;
            let epoch = tenant.writer.config().epoch + 1;
            let fresh = tenant.rebuilt(epoch)?;
            let mut old = std::mem::replace(&mut tenant.writer, fresh);
            let handle = tenant.handle()?;
            write(&self.shared.handles).insert(name.clone(), handle);
            old.retire()?;
            self.shared.wakers.ring(&name);
        }
        Ok(record)
    }

    /// Every key's record an admin key may see: all of them for an admin of every tenant,
    /// its tenant's for a tenant admin.
    pub fn list_keys(&self, s: &Session) -> Result<Vec<KeyRecord>> {
        let key = self.shared.check(s)?;
        admin_over(key, key.tenant.as_deref())?;
        let state = self.shared.state()?;
        Ok(state
            .keys
            .list()
            .into_iter()
            .filter(|r| key.tenant.is_none() || r.tenant == key.tenant)
            .collect())
    }

    pub(super) fn add_tenant(&self, state: &mut State, tenant: &str, quota: Quota) -> Result<()> {
        let max_value = self
            .shared
            .config
            .max_value_bytes
            .min(usize::try_from(quota.bytes).unwrap_or(usize::MAX));
        let config = TenantConfig::new(quota.bytes, quota.variables)
            .max_value_len(u32::try_from(max_value).unwrap_or(u32::MAX));
        let handle = state.add_tenant(tenant, config)?.handle()?;
        write(&self.shared.handles).insert(tenant.to_owned(), handle);
        Ok(())
    }
}

/// Whether `key` is an admin over `tenant` (`None`: every tenant, which needs an admin key
/// of every tenant).
fn admin_over(key: &KeyRecord, tenant: Option<&str>) -> Result<()> {
    match tenant {
        Some(tenant) => authorize(key, Action::Admin, tenant, None),
        None if key.tenant.is_none() && key.services.is_none() && key.role == Role::Admin => {
            if key.revoked {
                return Err(Error::Unauthenticated(
                    "unknown or revoked API key".to_owned(),
                ));
            }
            Ok(())
        }
        None => Err(Error::PermissionDenied(format!(
            "key {} is not an admin key of every tenant",
            key.id
        ))),
    }
}
