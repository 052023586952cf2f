//! The reads: a variable (from the tenant's segment, no write lock), listings, a tenant's
//! segment fd, and watches.

use std::collections::{BTreeMap, HashSet};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use memwire_shm::Name;

use super::Store;
use crate::auth::{Action, authorize, may_map_tenant};
use crate::error::{Error, Result};
use crate::protocol::{ListEntry, Scope, VarPath};
use crate::store::watch::Watcher;
use crate::store::{Session, Stored, ms};

impl Store {
    /// The variable at `path`, `None` if it does not exist; [`Error::NotFound`] if the
    /// tenant does not.
    pub fn get(&self, s: &Session, path: &VarPath) -> Result<Option<Stored>> {
        let key = self.shared.check(s)?;
        authorize(
            key,
            Action::Read,
            path.tenant.as_str(),
            Some(path.service.as_str()),
        )?;
        let handle = self.shared.handle(path.tenant.as_str())?;
        let value = handle
            .view
            .get(path.service.as_str(), path.variable.as_str())?;
        Ok(value.map(|v| Stored {
            value: v.bytes,
            version: v.version,
            timestamp_ms: ms(v.timestamp_ns),
        }))
    }

    /// Tenants (`tenant` `None`), the services of a tenant, or the variables of a service,
    /// sorted by name, as far as the key may see them.
    pub fn list(
        &self,
        s: &Session,
        tenant: Option<&str>,
        service: Option<&str>,
    ) -> Result<Vec<ListEntry>> {
        let key = self.shared.check(s)?;
        let state = self.shared.state()?;
        let entry = |name: &str, version, count: Option<u64>, len: Option<u64>| {
            Ok(ListEntry {
                name: Name::new(name)?,
                version,
                count,
                len,
            })
        };
        match (tenant, service) {
            (None, None) => state
                .tenants
                .iter()
                .filter(|(name, _)| key.tenant.as_deref().is_none_or(|own| own == *name))
                .map(|(name, t)| {
                    let services: HashSet<String> = t
                        .writer
                        .variables()
                        .into_iter()
                        .map(|v| v.service)
                        .collect();
                    entry(name, t.writer.revision(), Some(services.len() as u64), None)
                })
                .collect(),
            (None, Some(_)) => Err(Error::BadRequest(
                "listing a service needs its tenant".to_owned(),
            )),
            (Some(tenant), None) => {
                if key.tenant.as_deref().is_some_and(|own| own != tenant) {
                    authorize(key, Action::Read, tenant, None)?;
                }
                let t = state
                    .tenants
                    .get(tenant)
                    .ok_or_else(|| Error::NotFound(format!("tenant {tenant:?}")))?;
                let mut services: BTreeMap<String, (u64, u64)> = BTreeMap::new();
                for v in t.writer.variables() {
                    let e = services.entry(v.service).or_default();
                    e.0 = e.0.max(v.version);
                    e.1 += 1;
                }
                services
                    .iter()
                    .filter(|(name, _)| authorize(key, Action::Read, tenant, Some(name)).is_ok())
                    .map(|(name, &(version, count))| entry(name, version, Some(count), None))
                    .collect()
            }
            (Some(tenant), Some(service)) => {
                authorize(key, Action::Read, tenant, Some(service))?;
                let t = state
                    .tenants
                    .get(tenant)
                    .ok_or_else(|| Error::NotFound(format!("tenant {tenant:?}")))?;
                let mut vars: Vec<_> = t
                    .writer
                    .variables()
                    .into_iter()
                    .filter(|v| v.service == service)
                    .collect();
                vars.sort_by(|a, b| a.variable.cmp(&b.variable));
                vars.iter()
                    .map(|v| entry(&v.variable, v.version, None, Some(u64::from(v.value_len))))
                    .collect()
            }
        }
    }

    /// A new read-only fd of `tenant`'s segment (sealed: no writable mapping, no `write(2)`)
    /// and its epoch. Only for a key that may map the whole tenant ([`may_map_tenant`]).
    pub fn tenant_fd(&self, s: &Session, tenant: &str) -> Result<(OwnedFd, u64)> {
        let key = self.shared.check(s)?;
        authorize(key, Action::Read, tenant, None)?;
        if !may_map_tenant(key, tenant) {
            return Err(Error::PermissionDenied(format!(
                "key {} may not map tenant {tenant:?}",
                key.id
            )));
        }
        let mut state = self.shared.state()?;
        let writer = &state.tenant_mut(tenant)?.writer;
        Ok((writer.try_clone_fd()?, writer.config().epoch))
    }

    /// Watches `scope` from `from_version` (every change with a version at least that; `None`:
    /// changes after now). See [`Watcher`].
    pub fn watch(&self, s: &Session, scope: &Scope, from_version: Option<u64>) -> Result<Watcher> {
        let key = self.shared.check(s)?;
        let service = match scope {
            Scope::Tenant(_) => None,
            Scope::Service(_, service) => Some(service.as_str()),
            Scope::Variable(path) => Some(path.service.as_str()),
        };
        authorize(key, Action::Read, scope.tenant().as_str(), service)?;
        let handle = self.shared.handle(scope.tenant().as_str())?;
        Ok(Watcher::new(
            Arc::clone(&self.shared),
            s.clone(),
            scope.clone(),
            Arc::clone(&handle.feed),
            from_version,
        ))
    }
}
