//! What a server sends: an answer to each request (`ok` or `error`, with the request's `id`)
//! and, for watches, pushed messages (`event`, `lagged`, `synced`, `watch_ended`). A client
//! ignores fields it does not know, so a server of the same protocol version may add some.

use serde::{Deserialize, Serialize};

use super::path::{self, VarPath};
use super::value::Value;
use crate::auth::{KeyRecord, Role};
use crate::error::{Code, Error};

/// A message from the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Response {
    /// A request succeeded; `op` (the request's `type`) and its fields say how.
    Ok {
        /// The request's id.
        id: u64,
        /// What the request produced.
        #[serde(flatten)]
        reply: Reply,
    },
    /// A request failed, or a message could not be read (`id` null: its id is unknown).
    Error {
        /// The request's id, if it could be read.
        id: Option<u64>,
        /// What went wrong, by name.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
    },
    /// A change seen by a watch.
    Event(Event),
    /// A watch fell behind: `event`s of kind `current` follow, then `synced`.
    Lagged(Lagged),
    /// The current values after a `lagged` have all been sent.
    Synced {
        /// The watch.
        watch_id: u64,
        /// The version the current values were taken at (`resumed_at` of the `lagged`).
        version: u64,
    },
    /// The server ended a watch: no message of it follows. `code` and `message` say why, as
    /// in an `error` (`not_found`: its tenant was deleted; `unauthenticated`: its key was
    /// revoked).
    WatchEnded {
        /// The watch.
        watch_id: u64,
        /// Why, by name.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
    },
}

impl Response {
    /// The `error` answer to request `id` for a store error: its [`Code`] and message when a
    /// client may be told them, else `internal` with a message that reveals no server detail.
    #[must_use]
    pub fn from_error(id: Option<u64>, error: &Error) -> Self {
        let (code, message) = told(error);
        Self::Error { id, code, message }
    }

    /// The `watch_ended` message of watch `watch_id` for the store error that ended it, told
    /// as [`Response::from_error`] tells one.
    #[must_use]
    pub fn watch_ended(watch_id: u64, error: &Error) -> Self {
        let (code, message) = told(error);
        Self::WatchEnded {
            watch_id,
            code,
            message,
        }
    }
}

/// What a client is told of `error`: its [`Code`] and message when it may be told them, else
/// `internal` with a message that reveals no server detail.
fn told(error: &Error) -> (ErrorCode, String) {
    match error.code() {
        Some(code) => (code.into(), error.to_string()),
        None => (
            ErrorCode::Internal,
            "the server failed; the request was not applied".to_owned(),
        ),
    }
}

/// An `ok` answer's body, by request kind (`op` on the wire).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reply {
    /// The key was accepted.
    Auth {
        /// The protocol version the server speaks.
        v: u32,
        /// The largest message the server accepts, in bytes.
        max_message_bytes: u64,
        /// The largest value the server accepts, in bytes.
        max_value_bytes: u64,
    },
    /// The variable's value.
    Get {
        /// The value.
        value: Value,
        /// The version that wrote it.
        version: u64,
        /// When it was written, in milliseconds since the Unix epoch.
        timestamp_ms: u64,
    },
    /// The variable was written.
    Set {
        /// The write's version.
        version: u64,
        /// When it was applied (ms since the Unix epoch).
        timestamp_ms: u64,
    },
    /// The variable was deleted.
    Delete {
        /// The deletion's version.
        version: u64,
        /// When it was applied (ms since the Unix epoch).
        timestamp_ms: u64,
    },
    /// Every variable was written, under consecutive versions.
    SetMany {
        /// The version of the last write (the others have the ones before it).
        version: u64,
        /// When they were applied (ms since the Unix epoch).
        timestamp_ms: u64,
    },
    /// Tenants, services or variables, sorted by name.
    List {
        /// One entry per tenant, service or variable.
        entries: Vec<ListEntry>,
    },
    /// The watch is set up.
    Watch {
        /// Names the watch in its events and in `unwatch`.
        watch_id: u64,
        /// The tenant's version when the watch started: events follow with higher versions
        /// (or, with `from_version`, from that version on).
        version: u64,
    },
    /// The watch is gone; no event of it follows this answer.
    Unwatch,
    /// The answer to a ping.
    Ping,
    /// The key was made.
    CreateKey {
        /// The key itself: the only time anyone sees it (the server keeps its hash).
        key: String,
        /// Its id, which names it in `list_keys` and `revoke_key`.
        key_id: String,
    },
    /// The records of the keys the caller administers, oldest first.
    ListKeys {
        /// One entry per key, revoked ones included.
        keys: Vec<KeyEntry>,
    },
    /// The key is revoked (revoking a revoked key again is also this answer).
    RevokeKey {
        /// The revoked key's id.
        key_id: String,
    },
    /// The tenant was created, empty.
    CreateTenant,
    /// The numbers of the tenants the caller's key may see, by name.
    Stats {
        /// One entry per tenant.
        tenants: Vec<TenantInfo>,
    },
    /// The tenant and its variables were deleted.
    DeleteTenant {
        /// The delete's version (the tenant's last + 1): a tenant created again under the
        /// name starts there, so its first write gets the next.
        version: u64,
    },
}

/// A tenant's numbers, for `memwire ls`: the `stats` answer, over both endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantInfo {
    /// The tenant.
    pub tenant: String,
    /// Live variables.
    pub variables: u32,
    /// Memory charged to its quota.
    pub used_bytes: u64,
    /// Its memory quota.
    pub quota_bytes: u64,
    /// Its revision.
    pub revision: u64,
    /// Its segment's epoch.
    pub epoch: u64,
    /// Connections (local and WebSocket) of a key of this tenant, or that read or watched it.
    pub clients: u32,
}

impl From<crate::store::TenantStats> for TenantInfo {
    fn from(t: crate::store::TenantStats) -> Self {
        Self {
            tenant: t.tenant,
            variables: t.variables,
            used_bytes: t.used_bytes,
            quota_bytes: t.quota.bytes,
            revision: t.revision,
            epoch: t.epoch,
            clients: t.clients,
        }
    }
}

/// One line of a `list` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    /// The tenant, service or variable.
    #[serde(with = "path::name")]
    pub name: memwire_shm::Name,
    /// A tenant's revision; the newest version among a service's variables; a variable's
    /// version.
    pub version: u64,
    /// A tenant's services or a service's variables; absent for a variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// A variable's value length in bytes; absent for a tenant or service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<u64>,
}

/// One key of a `list_keys` answer: its record, never the key itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEntry {
    /// The key's id (the first characters of the key after `mw_`).
    pub id: String,
    /// The tenant the key is for; absent: every tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// What it may do.
    pub role: Role,
    /// The service pattern it is limited to; absent: the whole tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<String>,
    /// Revoked keys stay listed but authenticate nothing.
    pub revoked: bool,
    /// The note given at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// When it was made, in milliseconds since the Unix epoch.
    pub created_at_unix_ms: u64,
}

impl From<KeyRecord> for KeyEntry {
    fn from(record: KeyRecord) -> Self {
        Self {
            id: record.id,
            tenant: record.tenant,
            role: record.role,
            services: record.services.map(|p| p.as_str().to_owned()),
            revoked: record.revoked,
            label: record.label,
            created_at_unix_ms: record.created_at_unix_ms,
        }
    }
}

/// A change pushed to a watcher.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The watch that saw it.
    pub watch_id: u64,
    /// The variable.
    pub path: VarPath,
    /// What happened.
    pub kind: EventKind,
    /// The new value; absent for `delete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The change's version (for `current`: the version that wrote the value).
    pub version: u64,
    /// When the change was applied (ms since the Unix epoch).
    pub timestamp_ms: u64,
}

/// What an [`Event`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The variable was written.
    Set,
    /// The variable was deleted.
    Delete,
    /// After `lagged`: the variable's value now (between `lagged` and `synced`).
    Current,
}

/// A watch missed changes and starts over from the current values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lagged {
    /// The watch.
    pub watch_id: u64,
    /// The first version the watcher did not get.
    pub missed_from: u64,
    /// The version the current values that follow were taken at; events after `synced` have
    /// higher versions.
    pub resumed_at: u64,
}

/// The `code` of an `error` answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// No key yet (a request before `auth`), or a key the server does not know.
    Unauthenticated,
    /// The key may not do this.
    PermissionDenied,
    /// No such tenant, service, variable or watch.
    NotFound,
    /// The tenant's memory or variable quota would be exceeded.
    QuotaExceeded,
    /// The message is a JSON or MessagePack value but not a valid request.
    BadRequest,
    /// A compare-and-set found another version.
    Conflict,
    /// The message is not JSON (text) or MessagePack (binary) at all.
    BadMessage,
    /// The message is larger than the server accepts; it was not read.
    TooLarge,
    /// `auth` asked for a protocol version the server does not speak.
    UnsupportedVersion,
    /// The server failed (for instance, its log could not be written); the request was not
    /// applied.
    Internal,
}

impl ErrorCode {
    /// The code as on the wire (`not_found`, `bad_message`, ...).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::PermissionDenied => "permission_denied",
            Self::NotFound => "not_found",
            Self::QuotaExceeded => "quota_exceeded",
            Self::BadRequest => "bad_request",
            Self::Conflict => "conflict",
            Self::BadMessage => "bad_message",
            Self::TooLarge => "too_large",
            Self::UnsupportedVersion => "unsupported_version",
            Self::Internal => "internal",
        }
    }

    /// The store's [`Code`] this is, if it is one.
    #[must_use]
    pub fn store_code(self) -> Option<Code> {
        Some(match self {
            Self::Unauthenticated => Code::Unauthenticated,
            Self::PermissionDenied => Code::PermissionDenied,
            Self::NotFound => Code::NotFound,
            Self::QuotaExceeded => Code::QuotaExceeded,
            Self::BadRequest => Code::BadRequest,
            Self::Conflict => Code::Conflict,
            _ => return None,
        })
    }
}

impl From<Code> for ErrorCode {
    fn from(code: Code) -> Self {
        match code {
            Code::Unauthenticated => Self::Unauthenticated,
            Code::PermissionDenied => Self::PermissionDenied,
            Code::NotFound => Self::NotFound,
            Code::QuotaExceeded => Self::QuotaExceeded,
            Code::BadRequest => Self::BadRequest,
            Code::Conflict => Self::Conflict,
        }
    }
}
