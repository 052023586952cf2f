//! The snapshot's state: every tenant with its segment configuration and revision, and every
//! live variable with its value, version and timestamp. Postcard after a format byte, inside
//! the log's snapshot file (which adds the lsn and checksums).
//!
//! ```text
//!  state = [SNAPSHOT_FORMAT u8] ‖ postcard(Vec<TenantState>)
//!  TenantState { tenant, quota_bytes, max_variables, max_value_len, ring_slots, revision,
//!                variables: [VariableState { service, variable, value, version, timestamp_ns }] }
//! ```
//!
//! Restoring it gives each tenant a fresh segment with the same variables, versions,
//! timestamps and revision; its change ring starts empty at that revision.

use serde::{Deserialize, Serialize};

use super::op::Bytes;
use crate::error::{Error, Result};

/// The first byte of every snapshot state this code writes.
const SNAPSHOT_FORMAT: u8 = 1;

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

/// Encodes the state of every tenant.
pub(crate) fn encode(tenants: &[TenantState<'_>]) -> Result<Vec<u8>> {
    postcard::to_extend(tenants, vec![SNAPSHOT_FORMAT])
        .map_err(|e| Error::BadRequest(format!("the snapshot cannot be encoded: {e}")))
}

/// Decodes a snapshot's state; `Err` holds what is wrong with it.
pub(crate) fn decode(state: &[u8]) -> std::result::Result<Vec<TenantState<'_>>, String> {
    match state.split_first() {
        Some((&SNAPSHOT_FORMAT, rest)) => {
            let (tenants, left) = postcard::take_from_bytes(rest).map_err(|e| e.to_string())?;
            if left.is_empty() {
                Ok(tenants)
            } else {
                Err(format!("{} bytes after the state", left.len()))
            }
        }
        Some((other, _)) => Err(format!(
            "snapshot format {other} (this memwire reads format {SNAPSHOT_FORMAT})"
        )),
        None => Err("an empty snapshot state".to_owned()),
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
        let bytes = encode(&tenants).expect("encode");
        assert_eq!(decode(&bytes), Ok(tenants));
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode(&[2]).is_err());
        assert_eq!(decode(&encode(&[]).expect("encode")), Ok(vec![]));
    }
}
