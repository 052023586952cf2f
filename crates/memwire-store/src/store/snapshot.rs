//! The snapshot's state: every tenant with its segment configuration and revision, every live
//! variable with its value, version and timestamp, and the names of deleted tenants with the
//! version of their delete. Postcard after a format byte, inside the log's snapshot file (which
//! adds the lsn and checksums).
//!
//! ```text
//!  state = [SNAPSHOT_FORMAT u8] ‖ postcard(Snapshot)
//!  Snapshot { tenants: [TenantState], deleted: [(tenant, revision of its delete)] }
//!  TenantState { tenant, quota_bytes, max_variables, max_value_len, ring_slots, revision,
//!                variables: [VariableState { service, variable, value, version, timestamp_ns }] }
//!  format 1 (still read): postcard([TenantState]), no deleted tenants
//! ```
//!
//! Restoring it gives each tenant a fresh segment with the same variables, versions,
//! timestamps and revision; its change ring starts empty at that revision. A deleted tenant
//! is no tenant of the snapshot; its name and the version of its delete are kept so that a
//! tenant created again under the name counts its versions on from there (see the
//! [store docs](super)).

use serde::{Deserialize, Serialize};

use super::op::Bytes;
use crate::error::{Error, Result};

/// The first byte of every snapshot state this code writes.
const SNAPSHOT_FORMAT: u8 = 2;
/// The format before deleted tenants were kept: tenants alone.
const TENANTS_ONLY_FORMAT: u8 = 1;

/// A snapshot's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Snapshot<'a> {
    #[serde(borrow)]
    pub(crate) tenants: Vec<TenantState<'a>>,
    /// Deleted tenants (not created again since) and the version of each one's delete.
    #[serde(borrow)]
    pub(crate) deleted: Vec<(&'a str, u64)>,
}

/// One tenant in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TenantState<'a> {
    pub(crate) tenant: &'a str,
    pub(crate) quota_bytes: u64,
    pub(crate) max_variables: u32,
    pub(crate) max_value_len: u32,
    pub(crate) ring_slots: u32,
    pub(crate) revision: u64,
    #[serde(borrow)]
    pub(crate) variables: Vec<VariableState<'a>>,
}

/// One live variable in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VariableState<'a> {
    pub(crate) service: &'a str,
    pub(crate) variable: &'a str,
    #[serde(borrow)]
    pub(crate) value: Bytes<'a>,
    pub(crate) version: u64,
    pub(crate) timestamp_ns: u64,
}

/// Encodes the state.
pub(crate) fn encode(state: &Snapshot<'_>) -> Result<Vec<u8>> {
    postcard::to_extend(state, vec![SNAPSHOT_FORMAT])
        .map_err(|e| Error::BadRequest(format!("the snapshot cannot be encoded: {e}")))
}

/// Decodes a snapshot's state (this format or the one before); `Err` holds what is wrong
/// with it.
pub(crate) fn decode(state: &[u8]) -> std::result::Result<Snapshot<'_>, String> {
    match state.split_first() {
        Some((&SNAPSHOT_FORMAT, rest)) => whole(rest),
        Some((&TENANTS_ONLY_FORMAT, rest)) => whole(rest).map(|tenants| Snapshot {
            tenants,
            deleted: Vec::new(),
        }),
        Some((other, _)) => Err(format!(
            "snapshot format {other} (this memwire reads formats {TENANTS_ONLY_FORMAT} and \
             {SNAPSHOT_FORMAT})"
        )),
        None => Err("an empty snapshot state".to_owned()),
    }
}

/// `bytes` as one `T`, with nothing after it.
fn whole<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> std::result::Result<T, String> {
    let (value, left) = postcard::take_from_bytes(bytes).map_err(|e| e.to_string())?;
    if left.is_empty() {
        Ok(value)
    } else {
        Err(format!("{} bytes after the state", left.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        let tenants = vec![TenantState {
            tenant: "acme",
            quota_bytes: 1 << 20,
            max_variables: 8,
            max_value_len: 1024,
            ring_slots: 64,
            revision: 42,
            variables: vec![VariableState {
                service: "billing",
                variable: "rate",
                value: Bytes(b"0.19"),
                version: 40,
                timestamp_ns: 1_000,
            }],
        }];
        let state = Snapshot {
            tenants: tenants.clone(),
            deleted: vec![("gone", 17)],
        };
        let bytes = encode(&state).expect("encode");
        assert_eq!(decode(&bytes), Ok(state));
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode(&[3]).is_err());
        assert!(decode(&[]).is_err());
        let empty = Snapshot::default();
        assert_eq!(decode(&encode(&empty).expect("encode")), Ok(empty));
        // A format-1 state: the tenants alone.
        let old = postcard::to_extend(&tenants, vec![TENANTS_ONLY_FORMAT]).expect("encode");
        assert_eq!(
            decode(&old),
            Ok(Snapshot {
                tenants,
                deleted: Vec::new()
            })
        );
    }
}
