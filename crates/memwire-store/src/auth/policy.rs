//! What a key may do: its role against the action, its tenant against the request's, its
//! service pattern against the service.

use std::fmt;
use std::str::FromStr;

use crate::auth::key::KeyRecord;
use crate::auth::name::quote;
use crate::error::{Error, Result};

/// What a key may do, in increasing power: each role includes the ones below it
/// (`Admin ⊇ Write ⊇ Read`, so `Read < Write < Admin`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read variables and watch them.
    Read,
    /// Read, and set, delete and compare-and-set variables.
    Write,
    /// Write, and manage keys, tenants and quotas.
    Admin,
}

impl Role {
    /// The role as the CLI and the files spell it: `read`, `write`, `admin`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "admin" => Ok(Self::Admin),
            _ => Err(Error::BadRequest(format!(
                "unknown role {}: expected read, write or admin",
                quote(s)
            ))),
        }
    }
}

/// What a request does, for [`authorize`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Get, list or watch variables (or map the tenant).
    Read,
    /// Set, delete, compare-and-set.
    Write,
    /// Manage keys, tenants and quotas.
    Admin,
}

impl Action {
    /// The lowest role that may do this.
    #[must_use]
    pub const fn required_role(self) -> Role {
        match self {
            Self::Read => Role::Read,
            Self::Write => Role::Write,
            Self::Admin => Role::Admin,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        })
    }
}

/// Whether the key `record` may do `action` on `tenant`, and on `service` (`None`: the whole
/// tenant, such as a mapping of it, a tenant-wide watch or key management).
///
/// [`Error::PermissionDenied`] for a key of another tenant, a role below
/// [`Action::required_role`], a service outside the key's pattern, or a whole-tenant request
/// from a pattern-limited key (such keys read through the server, never through a mapping,
/// since a mapping shows every service). [`Error::Unauthenticated`] for a revoked key, so a
/// record held since before its revocation grants nothing.
///
/// ```
/// # use memwire_store::{authorize, Action, KeyRecord, Role, ServicePattern};
/// let key = KeyRecord {
///     id: "AbCdEfGh".into(),
///     hash: [0; 32],
///     tenant: Some("finance".into()),
///     role: Role::Read,
///     services: Some(ServicePattern::new("billing-*")?),
///     created_at_unix_ms: 0,
///     revoked: false,
///     label: None,
/// };
/// authorize(&key, Action::Read, "finance", Some("billing-eu"))?;
/// assert!(authorize(&key, Action::Write, "finance", Some("billing-eu")).is_err());
/// assert!(authorize(&key, Action::Read, "finance", None).is_err());
/// # Ok::<(), memwire_store::Error>(())
/// ```
pub fn authorize(
    record: &KeyRecord,
    action: Action,
    tenant: &str,
    service: Option<&str>,
) -> Result<()> {
    if record.revoked {
        return Err(Error::Unauthenticated(
            crate::auth::key::UNKNOWN_KEY.to_owned(),
        ));
    }
    if let Some(own) = &record.tenant
        && own != tenant
    {
        return Err(Error::PermissionDenied(format!(
            "key {} belongs to tenant {}, not {}",
            record.id,
            quote(own),
            quote(tenant)
        )));
    }
    let needed = action.required_role();
    if record.role < needed {
        return Err(Error::PermissionDenied(format!(
            "key {} has role {}; {action} needs role {needed}",
            record.id, record.role
        )));
    }
    if let Some(pattern) = &record.services {
        match service {
            None => {
                return Err(Error::PermissionDenied(format!(
                    "key {} is limited to services matching `{pattern}`, so it may not {action} \
                     the whole tenant {}: such keys read through the server, never through a \
                     mapping",
                    record.id,
                    quote(tenant)
                )));
            }
            Some(service) if !pattern.matches(service) => {
                return Err(Error::PermissionDenied(format!(
                    "key {} is limited to services matching `{pattern}`; service {} does not \
                     match",
                    record.id,
                    quote(service)
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Whether the key `record` may receive a read-only mapping of `tenant`'s segment: only a key
/// of that tenant (or of all tenants) with no service pattern, since a mapping shows every
/// service. Any role may read.
#[must_use]
pub fn may_map_tenant(record: &KeyRecord, tenant: &str) -> bool {
    !record.revoked
        && record.services.is_none()
        && record.tenant.as_deref().is_none_or(|own| own == tenant)
}
