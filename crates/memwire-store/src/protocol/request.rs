//! What a client sends. Every request is a map with `type`, a client-chosen `id` and the
//! fields of its type, nothing else: an unknown field is refused, never ignored, so a typo such
//! as `expected_verison` cannot turn a compare-and-set into a plain set.

use std::collections::BTreeMap;

use memwire_shm::Name;
use serde::{Deserialize, Serialize};

use super::path::{self, Scope, VarPath};
use super::value::Value;
use crate::auth::{Role, ServicePattern};

/// A request, as decoded by [`decode_request`](super::decode_request). Each carries the
/// client's `id`, echoed in its answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Request {
    /// Presents an API key; must be the connection's first request. `v` is the protocol
    /// version the client speaks ([`PROTOCOL_VERSION`](super::PROTOCOL_VERSION)).
    Auth {
        /// The request id.
        id: u64,
        /// The protocol version.
        v: u32,
        /// The API key.
        key: String,
    },
    /// Reads one variable.
    Get {
        /// The request id.
        id: u64,
        /// The variable.
        path: VarPath,
    },
    /// Writes one variable, creating it (and, for an admin key, its tenant and service).
    Set {
        /// The request id.
        id: u64,
        /// The variable.
        path: VarPath,
        /// The new value.
        value: Value,
        /// Compare-and-set: applied only if the variable's version is this (`0`: only if it
        /// does not exist); otherwise `conflict`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_version: Option<u64>,
    },
    /// Deletes one variable.
    Delete {
        /// The request id.
        id: u64,
        /// The variable.
        path: VarPath,
        /// Applied only if the variable's version is this; otherwise `conflict`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_version: Option<u64>,
    },
    /// Writes several variables of one service atomically, under consecutive versions.
    SetMany {
        /// The request id.
        id: u64,
        /// The tenant.
        #[serde(with = "path::name")]
        tenant: Name,
        /// The service.
        #[serde(with = "path::name")]
        service: Name,
        /// Variable name → new value; at least one.
        #[serde(with = "path::values")]
        values: BTreeMap<Name, Value>,
    },
    /// Lists tenants (no field), the services of a tenant, or the variables of a service.
    List {
        /// The request id.
        id: u64,
        /// The tenant whose services (or, with `service`, variables) to list.
        #[serde(
            default,
            with = "path::name::option",
            skip_serializing_if = "Option::is_none"
        )]
        tenant: Option<Name>,
        /// The service whose variables to list; needs `tenant`.
        #[serde(
            default,
            with = "path::name::option",
            skip_serializing_if = "Option::is_none"
        )]
        service: Option<Name>,
    },
    /// Watches a tenant, a service or a variable; answered with a `watch_id`, then events.
    Watch {
        /// The request id.
        id: u64,
        /// What to watch.
        path: Scope,
        /// Replay the changes from this version on (inclusive); absent: only changes after
        /// the version in the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from_version: Option<u64>,
    },
    /// Ends a watch.
    Unwatch {
        /// The request id.
        id: u64,
        /// The watch, as its `watch` answer named it.
        watch_id: u64,
    },
    /// Asks for an empty answer (liveness, round-trip time).
    Ping {
        /// The request id.
        id: u64,
    },
    /// Makes an API key (admin keys only); the answer carries the key, shown this once.
    CreateKey {
        /// The request id.
        id: u64,
        /// The tenant the key is for; absent: every tenant (needs an admin key of every
        /// tenant, as does a key for another tenant than the caller's).
        #[serde(
            default,
            with = "path::name::option",
            skip_serializing_if = "Option::is_none"
        )]
        tenant: Option<Name>,
        /// What the key may do.
        role: Role,
        /// Limits the key to the services matching this pattern; absent: the whole tenant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        services: Option<ServicePattern>,
        /// A note for people, shown in `list_keys`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
    },
    /// Lists the records of the keys the caller administers (admin keys only); never a key.
    ListKeys {
        /// The request id.
        id: u64,
    },
    /// Revokes a key (admin keys only, over the revoked key's tenant): its sessions fail from
    /// now on.
    RevokeKey {
        /// The request id.
        id: u64,
        /// The key's id, as `create_key` and `list_keys` give it.
        key_id: String,
    },
    /// Creates an empty tenant (admin keys only); `bad_request` if it exists.
    CreateTenant {
        /// The request id.
        id: u64,
        /// The tenant.
        #[serde(with = "path::name")]
        tenant: Name,
        /// Its memory quota in bytes (values and names, plus 64 per variable); absent: the
        /// server's default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quota_bytes: Option<u64>,
        /// Its live variables at most; absent: the server's default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_variables: Option<u32>,
    },
    /// Deletes a tenant and every variable in it (admin keys only); its watches end.
    DeleteTenant {
        /// The request id.
        id: u64,
        /// The tenant.
        #[serde(with = "path::name")]
        tenant: Name,
    },
    /// The numbers of the tenants the key may see (`memwire ls --remote`): variables, memory
    /// used and quota, revision, epoch, connected clients.
    Stats {
        /// The request id.
        id: u64,
    },
}

impl Request {
    /// The client's id for this request.
    #[must_use]
    pub fn id(&self) -> u64 {
        match self {
            Self::Auth { id, .. }
            | Self::Get { id, .. }
            | Self::Set { id, .. }
            | Self::Delete { id, .. }
            | Self::SetMany { id, .. }
            | Self::List { id, .. }
            | Self::Watch { id, .. }
            | Self::Unwatch { id, .. }
            | Self::Ping { id }
            | Self::CreateKey { id, .. }
            | Self::ListKeys { id }
            | Self::RevokeKey { id, .. }
            | Self::CreateTenant { id, .. }
            | Self::DeleteTenant { id, .. } => *id,
            Self::Stats { id } => *id,
        }
    }

    /// The request's `type` on the wire (`get`, `set_many`, ...).
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Auth { .. } => "auth",
            Self::Get { .. } => "get",
            Self::Set { .. } => "set",
            Self::Delete { .. } => "delete",
            Self::SetMany { .. } => "set_many",
            Self::List { .. } => "list",
            Self::Watch { .. } => "watch",
            Self::Unwatch { .. } => "unwatch",
            Self::Ping { .. } => "ping",
            Self::CreateKey { .. } => "create_key",
            Self::ListKeys { .. } => "list_keys",
            Self::RevokeKey { .. } => "revoke_key",
            Self::CreateTenant { .. } => "create_tenant",
            Self::DeleteTenant { .. } => "delete_tenant",
            Self::Stats { .. } => "stats",
        }
    }

    /// Checks what serde cannot: the values' sizes, a non-empty `set_many`, `list`'s
    /// `service` only with a `tenant`, the protocol version of `auth`.
    pub(super) fn check(&self, max_value_bytes: usize) -> Result<(), Invalid> {
        let too_large = |name: String, len: usize| Invalid::ValueTooLarge {
            name,
            len,
            max: max_value_bytes,
        };
        match self {
            Self::Auth { v, .. } if *v != super::PROTOCOL_VERSION => {
                Err(Invalid::UnsupportedVersion { v: *v })
            }
            Self::Set { path, value, .. } if value.len() > max_value_bytes => {
                Err(too_large(path.to_string(), value.len()))
            }
            Self::SetMany { values, .. } if values.is_empty() => Err(Invalid::EmptySetMany),
            Self::SetMany {
                tenant,
                service,
                values,
                ..
            } => match values.iter().find(|(_, v)| v.len() > max_value_bytes) {
                Some((name, value)) => {
                    Err(too_large(format!("{tenant}/{service}/{name}"), value.len()))
                }
                None => Ok(()),
            },
            Self::List {
                tenant: None,
                service: Some(_),
                ..
            } => Err(Invalid::ServiceWithoutTenant),
            _ => Ok(()),
        }
    }
}

/// A request that decoded but breaks a rule serde does not check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Invalid {
    /// `auth` named a protocol version this side does not speak.
    #[error(
        "unsupported protocol version {v}; this server speaks version {}",
        super::PROTOCOL_VERSION
    )]
    UnsupportedVersion {
        /// The version the client asked for.
        v: u32,
    },
    /// A value is larger than the limit.
    #[error("the value of {name} is {len} bytes, more than the limit of {max}")]
    ValueTooLarge {
        /// The variable.
        name: String,
        /// The value's size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `set_many` with no value.
    #[error("set_many needs at least one value")]
    EmptySetMany,
    /// `list` with a `service` but no `tenant`.
    #[error("list: `service` needs `tenant`")]
    ServiceWithoutTenant,
}
