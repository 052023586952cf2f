//! One request of an authenticated connection, answered from the [`Store`] in the caller's own
//! task (the store's write lock makes it the single writer for the write's duration).

use crate::error::{Error, Result};
use crate::protocol::{KeyEntry, Reply, Request, TenantInfo, Value};
use crate::store::{Session, Store, Written};

/// The answer to a `get`, `set`, `delete`, `set_many`, `list`, `ping`, `create_key`,
/// `list_keys`, `revoke_key`, `create_tenant`, `delete_tenant` or `stats`. `auth`, `watch` and
/// `unwatch` belong to the connection and never reach here. The [`Store`] checks every one
/// against the session's key (the key and tenant requests need an admin key, as over the
/// local socket).
pub(super) fn dispatch(store: &Store, session: &Session, request: &Request) -> Result<Reply> {
    let written = |w: Written| (w.version, w.timestamp_ms);
    Ok(match request {
        Request::Get { path, .. } => {
            let stored = store
                .get(session, path)?
                .ok_or_else(|| Error::NotFound(format!("variable {path}")))?;
            Reply::Get {
                value: Value(stored.value),
                version: stored.version,
                timestamp_ms: stored.timestamp_ms,
            }
        }
        Request::Set {
            path,
            value,
            expected_version,
            ..
        } => {
            let (version, timestamp_ms) =
                written(store.set(session, path, value.as_bytes(), *expected_version)?);
            Reply::Set {
                version,
                timestamp_ms,
            }
        }
        Request::Delete {
            path,
            expected_version,
            ..
        } => {
            let (version, timestamp_ms) =
                written(store.delete(session, path, *expected_version)?);
            Reply::Delete {
                version,
                timestamp_ms,
            }
        }
        Request::SetMany {
            tenant,
            service,
            values,
            ..
        } => {
            let values: Vec<(&str, &[u8])> = values
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_bytes()))
                .collect();
            let (version, timestamp_ms) =
                written(store.set_many(session, tenant.as_str(), service.as_str(), &values)?);
            Reply::SetMany {
                version,
                timestamp_ms,
            }
        }
        Request::List {
            tenant, service, ..
        } => Reply::List {
            entries: store.list(
                session,
                tenant.as_ref().map(|t| t.as_str()),
                service.as_ref().map(|s| s.as_str()),
            )?,
        },
        Request::Ping { .. } => Reply::Ping,
        Request::CreateKey {
            tenant,
            role,
            services,
            label,
            ..
        } => {
            let (key, record) = store.create_key(
                session,
                tenant.as_ref().map(|t| t.as_str()),
                *role,
                services.clone(),
                label.as_deref(),
            )?;
            Reply::CreateKey {
                key,
                key_id: record.id,
            }
        }
        Request::ListKeys { .. } => Reply::ListKeys {
            keys: store
                .list_keys(session)?
                .into_iter()
                .map(KeyEntry::from)
                .collect(),
        },
        Request::RevokeKey { key_id, .. } => Reply::RevokeKey {
            key_id: store.revoke_key(session, key_id)?.id,
        },
        Request::CreateTenant {
            tenant,
            quota_bytes,
            max_variables,
            ..
        } => {
            let quota = store.quota_or_default(*quota_bytes, *max_variables);
            store.create_tenant(session, tenant.as_str(), Some(quota))?;
            Reply::CreateTenant
        }
        Request::Stats { .. } => Reply::Stats {
            tenants: store
                .visible_stats(session)?
                .into_iter()
                .map(TenantInfo::from)
                .collect(),
        },
        Request::DeleteTenant { tenant, .. } => Reply::DeleteTenant {
            version: store.delete_tenant(session, tenant.as_str())?,
        },
        Request::Auth { .. } | Request::Watch { .. } | Request::Unwatch { .. } => {
            return Err(Error::BadRequest(format!(
                "{} is handled by the connection",
                request.type_name()
            )));
        }
    })
}
