//! The writes: each checked against the key and the sizes, then under the write lock checked
//! against the tenant, logged and applied.

use std::time::{SystemTime, UNIX_EPOCH};

use super::Store;
use crate::auth::{Action, KeyRecord, authorize};
use crate::error::{Error, Result};
use crate::protocol::VarPath;
use crate::store::op::{Bytes, Op};
use crate::store::state::State;
use crate::store::{Session, Written, ms};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// With `expected`, [`Error::Conflict`] unless the variable at `path` is at that version now
/// (0: it does not exist). A missing tenant is [`Error::NotFound`], with or without `expected`
/// (without, the write itself finds it missing).
fn check_version(state: &mut State, path: &VarPath, expected: Option<u64>) -> Result<()> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let found = state
        .tenant_mut(path.tenant.as_str())?
        .writer
        .version(path.service.as_str(), path.variable.as_str())
        .unwrap_or(0);
    if found != expected {
        return Err(Error::Conflict { expected, found });
    }
    Ok(())
}

impl Store {
    /// Sets the variable at `path`. With `expected_version`, only if its version is that
    /// (`Some(0)`: only if it does not exist), else [`Error::Conflict`]. A write key needs
    /// the tenant to exist ([`Error::NotFound`]); an admin key creates it with the default
    /// quota.
    pub fn set(
        &self,
        s: &Session,
        path: &VarPath,
        value: &[u8],
        expected_version: Option<u64>,
    ) -> Result<Written> {
        let (tenant, service, variable) = (
            path.tenant.as_str(),
            path.service.as_str(),
            path.variable.as_str(),
        );
        let key = self.shared.check(s)?;
        authorize(key, Action::Write, tenant, Some(service))?;
        self.check_size(path, value)?;
        let mut state = self.shared.state()?;
        self.ensure_tenant(&mut state, key, tenant)?;
        check_version(&mut state, path, expected_version)?;
        let timestamp_ns = now_ns();
        self.write(
            &mut state,
            &Op::Set {
                tenant,
                service,
                variable,
                value: Bytes(value),
                timestamp_ns,
            },
        )
    }

    /// Deletes the variable at `path` ([`Error::NotFound`] if it does not exist), with
    /// `expected_version` as in [`Store::set`].
    pub fn delete(
        &self,
        s: &Session,
        path: &VarPath,
        expected_version: Option<u64>,
    ) -> Result<Written> {
        let (tenant, service, variable) = (
            path.tenant.as_str(),
            path.service.as_str(),
            path.variable.as_str(),
        );
        let key = self.shared.check(s)?;
        authorize(key, Action::Write, tenant, Some(service))?;
        let mut state = self.shared.state()?;
        check_version(&mut state, path, expected_version)?;
        let timestamp_ns = now_ns();
        self.write(
            &mut state,
            &Op::Delete {
                tenant,
                service,
                variable,
                timestamp_ns,
            },
        )
    }

    /// Sets several variables of one service at once: readers and watchers see all of them
    /// or none, and a refused write changes none.
    pub fn set_many(
        &self,
        s: &Session,
        tenant: &str,
        service: &str,
        values: &[(&str, &[u8])],
    ) -> Result<Written> {
        let key = self.shared.check(s)?;
        authorize(key, Action::Write, tenant, Some(service))?;
        for &(variable, value) in values {
            if value.len() > self.shared.config.max_value_bytes {
                return Err(self.too_large(&format!("{tenant}/{service}/{variable}"), value));
            }
        }
        let mut state = self.shared.state()?;
        self.ensure_tenant(&mut state, key, tenant)?;
        let timestamp_ns = now_ns();
        self.write(
            &mut state,
            &Op::SetMany {
                tenant,
                service,
                values: values.iter().map(|&(v, b)| (v, Bytes(b))).collect(),
                timestamp_ns,
            },
        )
    }

    /// Checks, logs and applies a write of an existing tenant, under the write lock.
    fn write(&self, state: &mut State, op: &Op<'_>) -> Result<Written> {
        let version = state.write(op)?;
        self.shared.wakers.ring(op.tenant());
        state.maybe_snapshot(self.shared.config.snapshot_every);
        let timestamp_ns = match op {
            Op::Set { timestamp_ns, .. }
            | Op::Delete { timestamp_ns, .. }
            | Op::SetMany { timestamp_ns, .. } => *timestamp_ns,
            Op::CreateTenant { .. } | Op::DeleteTenant { .. } => 0,
        };
        Ok(Written {
            version,
            timestamp_ms: ms(timestamp_ns),
        })
    }

    /// Creates a missing tenant for an admin key (default quota); [`Error::NotFound`] for
    /// any other.
    fn ensure_tenant(&self, state: &mut State, key: &KeyRecord, tenant: &str) -> Result<()> {
        if state.tenants.contains_key(tenant) {
            return Ok(());
        }
        if authorize(key, Action::Admin, tenant, None).is_err() {
            return Err(Error::NotFound(format!(
                "tenant {tenant:?} (an admin creates it)"
            )));
        }
        self.add_tenant(state, tenant, self.shared.config.default_quota)
    }

    fn check_size(&self, path: &VarPath, value: &[u8]) -> Result<()> {
        if value.len() > self.shared.config.max_value_bytes {
            return Err(self.too_large(&path.to_string(), value));
        }
        Ok(())
    }

    fn too_large(&self, what: &str, value: &[u8]) -> Error {
        Error::BadRequest(format!(
            "value of {what} is {} bytes, at most {} allowed",
            value.len(),
            self.shared.config.max_value_bytes
        ))
    }
}
