//! [`Reader`]: one tenant's mapped reads for a hot loop, and the read that [`Local::get`]
//! shares with it.
//!
//! A mapped read is valid only for the connection it was mapped on and until the tenant moves
//! to a fresh segment. [`mapped`] checks both around every read: the client state before and
//! after (a death or reconnect between them throws the read away) and the segment's retired
//! flag (a retired mapping is forgotten and the tenant mapped again; a deleted tenant is not
//! found then).
//!
//! [`Local::get`] looks its mapping up in the client's table on every call (a lock, a hash, a
//! reference count); a `Reader` keeps the mapping of the connection it last saw and looks it
//! up again only when the connection or the segment changed, and copies into the caller's
//! buffer, so a read allocates nothing and touches nothing shared but the mapping.

use std::sync::Arc;

use super::client::{Inner, Local, unexpected};
use super::wire::{Reply, Request};
use crate::error::Result;
use crate::segment::{Stamp, TenantView};
use crate::store::Stored;

/// Mapped reads overlapping a reconnect or a move retried before reading through the server.
const READ_RETRIES: usize = 4;

/// A tenant's mapping as last looked up: the client state it is valid for, and the mapping
/// (`None`: the key may not map the tenant).
pub(super) type Cached = Option<(u64, Option<Arc<TenantView>>)>;

/// One read of `tenant`'s mapping by `read`, retried while it overlaps a reconnect or a
/// move. `Ok(None)` when the key may not map the tenant (or every retry overlapped one): the
/// caller reads through the server.
pub(super) fn mapped<T>(
    inner: &Inner,
    tenant: &str,
    cache: &mut Cached,
    mut read: impl FnMut(&TenantView) -> Result<T>,
) -> Result<Option<T>> {
    for _ in 0..READ_RETRIES {
        let s = inner.alive()?;
        let view = match cache {
            Some((at, view)) if *at == s => view,
            _ => &mut cache.insert((s, inner.view(tenant)?)).1,
        };
        let Some(view) = view else {
            return Ok(None);
        };
        let value = read(view)?;
        if view.is_retired()? {
            inner.forget(tenant, view);
            *cache = None;
            continue;
        }
        if inner.unchanged(s) {
            return Ok(Some(value));
        }
    }
    Ok(None)
}

/// `TENANT/SERVICE/VARIABLE` read through the server.
pub(super) fn through_server(inner: &Inner, path: String) -> Result<Option<Stored>> {
    match inner.call(&Request::Get { path }, None)? {
        (Reply::Value(v), _) => Ok(v.map(|v| Stored {
            value: v.value,
            version: v.version,
            timestamp_ms: v.timestamp_ms,
        })),
        (other, _) => Err(unexpected(&other)),
    }
}

/// Reads one tenant's variables for a hot loop: from the mapping when the key may map the
/// tenant (a key limited to some services reads through the server), copying into a buffer
/// the caller reuses. Same guarantees as [`Local::get`]: [`Error::ServerGone`] while the
/// server is down, never a stale value of a dead server or a retired segment, and
/// `NotFound` once its tenant was deleted (until a tenant of that name is created again,
/// which it then reads).
///
/// Made by [`Local::reader`]; it keeps the client alive. `Send`, not `Sync`: one per thread.
///
/// [`Error::ServerGone`]: crate::Error::ServerGone
#[derive(Debug)]
pub struct Reader {
    inner: Arc<Inner>,
    tenant: String,
    cache: Cached,
}

impl Reader {
    pub(super) fn new(inner: Arc<Inner>, tenant: String) -> Self {
        Self {
            inner,
            tenant,
            cache: None,
        }
    }

    /// The tenant it reads.
    #[must_use]
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Copies the value of `service/variable` into `out` (cleared first) and returns its
    /// version and timestamp, or `None` (and `out` empty) if it does not exist.
    pub fn get_into(
        &mut self,
        service: &str,
        variable: &str,
        out: &mut Vec<u8>,
    ) -> Result<Option<Stamp>> {
        if let Some(stamp) = mapped(&self.inner, &self.tenant, &mut self.cache, |view| {
            view.get_into(service, variable, out)
        })? {
            if stamp.is_none() {
                out.clear();
            }
            return Ok(stamp);
        }
        let path = format!("{}/{service}/{variable}", self.tenant);
        out.clear();
        Ok(through_server(&self.inner, path)?.map(|stored| {
            out.extend_from_slice(&stored.value);
            Stamp {
                version: stored.version,
                timestamp_ns: stored.timestamp_ms.saturating_mul(1_000_000),
            }
        }))
    }

    /// The value of `service/variable`, `None` if it does not exist (as [`Local::get`]).
    pub fn get(&mut self, service: &str, variable: &str) -> Result<Option<Stored>> {
        let mut value = Vec::new();
        Ok(self
            .get_into(service, variable, &mut value)?
            .map(|stamp| Stored {
                value,
                version: stamp.version,
                timestamp_ms: stamp.timestamp_ns / 1_000_000,
            }))
    }
}

impl Local {
    /// A [`Reader`] of `tenant` for a hot loop (no allocation, no lock per read).
    pub fn reader(&self, tenant: &str) -> Result<Reader> {
        crate::auth::validate_name("tenant", tenant)?;
        Ok(Reader::new(self.inner(), tenant.to_owned()))
    }
}
