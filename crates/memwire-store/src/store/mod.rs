//! The store's core, in process: [`Store`] holds the tenants, checks every request against
//! the caller's key, logs every write before applying it, and recovers everything on start.
//! The local endpoint, the WebSocket server and the CLI are built on exactly this API.
//!
//! ```text
//!  Store::set(session, path, value)
//!    ├─ session's key not revoked (a set of ids, read-locked)   ─ Unauthenticated
//!    ├─ auth::authorize(key, Write, tenant, service)             ─ PermissionDenied
//!    ├─ size ≤ max_value_bytes                                   ─ BadRequest
//!    └─ the write lock (one std Mutex, taken by the caller's own thread: the single writer)
//!         ├─ missing tenant: an admin key creates it (default quota), else NotFound
//!         ├─ compare-and-set: the version now                    ─ Conflict
//!         ├─ TenantWriter::check_*: names, sizes, quotas, room   ─ QuotaExceeded, BadRequest
//!         ├─ Log::append(Op)   write(2) done: acknowledged writes survive kill -9
//!         ├─ TenantWriter::set → segment (readers and mappings see it), feed (watchers wake)
//!         └─ every `snapshot_every` records: the state encoded and a new log file started;
//!            the snapshot file is written and fsynced on a thread of its own
//! ```
//!
//! Reads (`get`) take no write lock: they read the tenant's segment through the server's own
//! read-only view, under its sequence locks, as a mapped client would.
//!
//! # On disk
//!
//! ```text
//!  <data_dir>/            mode 0700
//!    keys.json            API key hashes, roles, revocations (the auth module; replaced whole)
//!    admin.key            the first admin key, mode 0600 (written once, on the first start)
//!    log/                 the Log (flocked: one server per data directory)
//!      snapshot-<lsn>.bin the state after record <lsn> (format: the `snapshot` module)
//!      log-<lsn>.bin      records from <lsn> on, one `Op` each (format: the `op` module)
//! ```
//!
//! What lives where: tenants (with their quotas and segment configuration), variables and the
//! names of deleted tenants (with the version of their delete) are in the log and snapshots;
//! keys and their revocations only in `keys.json`. Epochs are not stored: every start builds
//! fresh segments at epoch 0, and every client remaps after a restart anyway.
//!
//! # Versions
//!
//! Each tenant has one revision counter; every write of a variable takes the next revision as
//! its version. A `set_many` of n variables takes n consecutive revisions, applied at once
//! (readers and watchers see all or none); its [`Written::version`] is the last.
//!
//! # Watchers
//!
//! [`Store::watch`] gives a [`Watcher`] that reads the tenant's feed: the server's in-memory
//! copy of its last changes with their values (as many as the tenant's change ring holds, and
//! at most its quota in value bytes). Events come in version order, each once; a watcher that
//! fell out of the window gets [`WatchEvent::Lagged`], the current values
//! ([`WatchEvent::Current`]) and [`WatchEvent::Synced`], then live changes again. After a
//! restart the window starts empty at the recovered revision (plus the records replayed).
//!
//! # Revocation
//!
//! [`Store::revoke_key`] saves the revocation, then every later request of a session of that
//! key fails (the session is checked on every request), and every tenant the key could map is
//! moved to a fresh segment (epoch + 1, same variables, versions and revision); the old
//! segment is retired, so a mapping of it sees no later write.
//!
//! # Tenants created and deleted
//!
//! [`Store::create_tenant`] (or a `set` with an admin key) creates a tenant;
//! [`Store::delete_tenant`] deletes it with its variables. Both are logged (`CreateTenant`,
//! `DeleteTenant`) before they are answered, and replayed on start; a snapshot holds the
//! tenants alive and, for each deleted name, the version of its delete.
//!
//! A delete retires the tenant's segment as a revocation does, without a successor: a local
//! client's next mapped read sees the retired flag, asks for the tenant again and gets
//! `NotFound`, never the old values; its watchers wake and end with `NotFound`, and so do the
//! server's own ([`Watcher`]) once they have read the changes before the delete.
//!
//! A deleted name may be created again: a fresh, empty tenant (default or given quota, epoch
//! 0). Versions under a name never go back: the delete takes the version after the tenant's
//! revision, and the tenant created again starts there, so its first write gets the next one.
//! A watch resumed with `from_version` at or before the delete finds those versions gone
//! (they were the old tenant's) and gets `Lagged`, then the new tenant's current values
//! (none for a variable of the old tenant), then `Synced`: a client mirroring the tenant
//! drops what it held, as the protocol says of `lagged`.

mod api;
mod clients;
mod feed;
mod op;
mod snapshot;
mod state;
mod tenant;
mod wake;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;

pub use api::Store;
pub use clients::Presence;
pub use wake::{WakeId, Wakers};
pub use watch::{WatchEvent, Watcher};

use crate::auth::KeyRecord;
use crate::log::{BadSnapshot, FsyncPolicy, TornTail};

/// How a [`Store`] runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoreConfig {
    /// Where keys, the log and snapshots live (created mode 0700).
    pub data_dir: PathBuf,
    /// When the log `fdatasync`s.
    pub fsync: FsyncPolicy,
    /// The quota of a tenant created without one.
    pub default_quota: Quota,
    /// The largest value, in bytes; a larger one is [`Error::BadRequest`](crate::Error).
    /// A tenant keeps the maximum it was created with.
    pub max_value_bytes: usize,
    /// Log records between automatic snapshots.
    pub snapshot_every: u64,
}

impl StoreConfig {
    /// The largest [`max_value_bytes`](Self::max_value_bytes) both clients carry: 64 MiB. A
    /// [`Remote`](crate::Remote) reads messages up to such a value in base64, a
    /// [`Local`](crate::Local) answers up to 256 MiB, and a log record holds one whole.
    /// `memwire serve` refuses more.
    pub const MAX_VALUE_BYTES_LIMIT: usize = 64 << 20;

    /// The defaults: fsync every second, a 64 MiB / 100 000 variable quota, values up to
    /// 1 MiB, a snapshot every 100 000 records.
    #[must_use]
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            fsync: FsyncPolicy::EverySecond,
            default_quota: Quota::default(),
            max_value_bytes: 1 << 20,
            snapshot_every: 100_000,
        }
    }
}

/// A tenant's quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Memory: value and name bytes (rounded to 8) plus 64 per live variable.
    pub bytes: u64,
    /// Live variables at most.
    pub variables: u32,
}

impl Default for Quota {
    /// 64 MiB and 100 000 variables.
    fn default() -> Self {
        Self {
            bytes: 64 << 20,
            variables: 100_000,
        }
    }
}

/// What [`Store::open`] found, for the server's start-up lines.
#[derive(Debug)]
#[non_exhaustive]
pub struct Startup {
    /// The admin key made on the first start (print it once); `None` later.
    pub admin_key: Option<String>,
    /// A torn record dropped from the log's tail.
    pub torn_tail: Option<TornTail>,
    /// Damaged snapshots skipped.
    pub bad_snapshots: Vec<BadSnapshot>,
    /// Log records replayed after the snapshot.
    pub records_replayed: usize,
    /// Tenants.
    pub tenants: usize,
    /// Live variables in all tenants.
    pub variables: usize,
    /// Each tenant's revision, by name.
    pub revisions: Vec<(String, u64)>,
}

/// An authenticated caller: the key's id and record, checked again (not revoked) on every
/// request. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Session {
    record: Arc<KeyRecord>,
}

impl Session {
    /// The key's id.
    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.record.id
    }

    /// The key's record as it was when the session began.
    #[must_use]
    pub fn record(&self) -> &KeyRecord {
        &self.record
    }
}

/// A variable's value as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The bytes.
    pub value: Vec<u8>,
    /// The revision of the write that set it.
    pub version: u64,
    /// When it was written, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Its version (for `set_many`, the last of its consecutive versions).
    pub version: u64,
    /// When it was applied, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

/// One tenant, for `memwire ls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantStats {
    /// The tenant.
    pub tenant: String,
    /// Live variables.
    pub variables: u32,
    /// Memory charged against the quota.
    pub used_bytes: u64,
    /// The quota.
    pub quota: Quota,
    /// The last write's version.
    pub revision: u64,
    /// How many times the tenant moved to a fresh segment in this run.
    pub epoch: u64,
    /// Connections of the store's endpoints (local and WebSocket) counted in the tenant: each
    /// of a key of the tenant from its authentication on, and each that read or watched it
    /// (a local client's mapping; a remote client's `get` or `watch`).
    pub clients: u32,
}

/// Nanoseconds to whole milliseconds.
fn ms(ns: u64) -> u64 {
    ns / 1_000_000
}
