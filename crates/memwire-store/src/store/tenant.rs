//! One tenant on the server: its segment's writer and its feed, how an [`Op`] is checked and
//! applied to them, and how the tenant moves to a fresh segment with the same contents.

use std::sync::Arc;

use super::feed::{Feed, FeedEntry};
use super::op::Op;
use crate::error::{Error, Result};
use crate::segment::{ChangeKind, TenantConfig, TenantView, TenantWriter};

/// What readers and watchers use without the write lock: a view of the tenant's current
/// segment (the server's own mapping, read as a client would) and its feed. Replaced when the
/// tenant moves to a fresh segment.
#[derive(Debug)]
pub(crate) struct TenantHandle {
    pub(crate) view: TenantView,
    pub(crate) feed: Arc<Feed>,
}

/// A tenant, owned by the store's state under its write lock.
#[derive(Debug)]
pub(crate) struct Tenant {
    pub(crate) writer: TenantWriter,
    pub(crate) feed: Arc<Feed>,
}

impl Tenant {
    /// A tenant with an empty segment made with `config`, at `revision` (0 for a new name;
    /// for a name deleted before, the version of its delete): its first write gets the next.
    pub(crate) fn create(name: &str, config: TenantConfig, revision: u64) -> Result<Self> {
        let mut writer = TenantWriter::create_with(name, config)?;
        if revision > 0 {
            writer.set_revision(revision)?;
        }
        let feed = Arc::new(Feed::new(
            revision,
            config.ring_slots as usize,
            usize::try_from(config.quota_bytes).unwrap_or(usize::MAX),
        ));
        Ok(Self { writer, feed })
    }

    /// A handle on the current segment.
    pub(crate) fn handle(&self) -> Result<Arc<TenantHandle>> {
        Ok(Arc::new(TenantHandle {
            view: TenantView::open(self.writer.try_clone_fd()?)?,
            feed: Arc::clone(&self.feed),
        }))
    }

    /// Whether `op` would apply now; changes nothing a reader can see.
    pub(crate) fn check(&mut self, op: &Op<'_>) -> Result<()> {
        match op {
            Op::Set {
                service,
                variable,
                value,
                ..
            } => self.writer.check_set(service, variable, value.0),
            Op::Delete {
                service, variable, ..
            } => self.writer.check_delete(service, variable),
            Op::SetMany {
                service, values, ..
            } => self.writer.check_set_many(service, &pairs(values)),
            Op::CreateTenant { tenant, .. } | Op::DeleteTenant { tenant, .. } => {
                Err(not_a_write(tenant))
            }
        }
    }

    /// Applies a write to the segment, then to the feed (waking the watchers); returns the
    /// tenant's revision after it.
    pub(crate) fn apply(&mut self, op: &Op<'_>) -> Result<u64> {
        let entry = |revision, service: &str, variable: &str, value: Option<&[u8]>, ts| FeedEntry {
            revision,
            service: Arc::from(service),
            variable: variable.into(),
            kind: if value.is_some() {
                ChangeKind::Set
            } else {
                ChangeKind::Delete
            },
            value: value.map(Arc::from),
            timestamp_ns: ts,
        };
        match *op {
            Op::Set {
                service,
                variable,
                value,
                timestamp_ns,
                ..
            } => {
                let r = self.writer.set(service, variable, value.0, timestamp_ns)?;
                self.feed
                    .push([entry(r, service, variable, Some(value.0), timestamp_ns)]);
                Ok(r)
            }
            Op::Delete {
                service,
                variable,
                timestamp_ns,
                ..
            } => {
                let r = self.writer.delete(service, variable, timestamp_ns)?;
                self.feed
                    .push([entry(r, service, variable, None, timestamp_ns)]);
                Ok(r)
            }
            Op::SetMany {
                service,
                ref values,
                timestamp_ns,
                ..
            } => {
                let last = self
                    .writer
                    .set_many(service, &pairs(values), timestamp_ns)?;
                let first = last + 1 - values.len() as u64;
                let service: Arc<str> = Arc::from(service);
                self.feed.push(
                    (first..)
                        .zip(values)
                        .map(|(r, &(variable, value))| FeedEntry {
                            revision: r,
                            service: Arc::clone(&service),
                            variable: variable.into(),
                            kind: ChangeKind::Set,
                            value: Some(Arc::from(value.0)),
                            timestamp_ns,
                        }),
                );
                Ok(last)
            }
            Op::CreateTenant { tenant, .. } | Op::DeleteTenant { tenant, .. } => {
                Err(not_a_write(tenant))
            }
        }
    }

    /// A fresh segment of epoch `epoch` holding exactly what this one holds: every variable
    /// with its value, version and timestamp, and the revision. Its ring starts empty.
    pub(crate) fn rebuilt(&self, epoch: u64) -> Result<TenantWriter> {
        let config = self.writer.config().epoch(epoch);
        let mut fresh = TenantWriter::create_with(self.writer.tenant(), config)?;
        let mut variables = self.writer.variables();
        variables.sort_by_key(|v| v.version);
        for v in variables {
            let value =
                self.writer
                    .get(&v.service, &v.variable)?
                    .ok_or_else(|| Error::CorruptSegment {
                        offset: 0,
                        what: format!("{}/{} is listed but not live", v.service, v.variable),
                    })?;
            fresh.restore(
                &v.service,
                &v.variable,
                &value.bytes,
                v.version,
                v.timestamp_ns,
            )?;
        }
        fresh.set_revision(self.writer.revision())?;
        Ok(fresh)
    }
}

fn pairs<'a>(values: &[(&'a str, super::op::Bytes<'a>)]) -> Vec<(&'a str, &'a [u8])> {
    values.iter().map(|&(v, b)| (v, b.0)).collect()
}

fn not_a_write(tenant: &str) -> Error {
    Error::BadRequest(format!(
        "creating or deleting tenant {tenant:?} is not a write of a variable"
    ))
}
