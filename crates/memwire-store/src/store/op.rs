//! The log's records: one [`Op`] each, postcard-encoded after a format byte.
//!
//! ```text
//!  record payload = [OP_FORMAT u8] ‖ postcard(Op)
//!  Op::CreateTenant { tenant, quota_bytes, max_variables, max_value_len, ring_slots }
//!  Op::Set          { tenant, service, variable, value, timestamp_ns }
//!  Op::Delete       { tenant, service, variable, timestamp_ns }
//!  Op::SetMany      { tenant, service, values: [(variable, value)], timestamp_ns }
//!  Op::DeleteTenant { tenant, revision }
//! ```
//!
//! An op holds everything its replay needs: the server's timestamp (never the replaying
//! clock), and for a tenant the whole segment configuration it was made with (so a later
//! change of the store's defaults cannot change a replayed tenant). A compare-and-set is
//! logged as the `Set` it became: its check ran before the op was logged, and replay on the
//! same state would find the same version. Keys live in `keys.json` (the auth module), not
//! here.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// The first byte of every record this code writes; bumped on an incompatible change.
const OP_FORMAT: u8 = 1;

/// Bytes borrowed from a record, encoded as one length and the bytes (not a sequence of
/// integers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bytes<'a>(pub(crate) &'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Bytes<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a [u8]>::deserialize(d).map(Bytes)
    }
}

/// One logged write. See the [module docs](self). New variants go at the end: postcard
/// names a variant by its position, so records of the older ones still decode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Op<'a> {
    /// A tenant is created with this segment configuration (epoch 0).
    CreateTenant {
        tenant: &'a str,
        quota_bytes: u64,
        max_variables: u32,
        max_value_len: u32,
        ring_slots: u32,
    },
    /// `service/variable` of `tenant` is set to `value`.
    Set {
        tenant: &'a str,
        service: &'a str,
        variable: &'a str,
        #[serde(borrow)]
        value: Bytes<'a>,
        timestamp_ns: u64,
    },
    /// `service/variable` of `tenant` is deleted.
    Delete {
        tenant: &'a str,
        service: &'a str,
        variable: &'a str,
        timestamp_ns: u64,
    },
    /// Several variables of one service are set at once.
    SetMany {
        tenant: &'a str,
        service: &'a str,
        #[serde(borrow)]
        values: Vec<(&'a str, Bytes<'a>)>,
        timestamp_ns: u64,
    },
    /// `tenant` is deleted with everything in it. `revision` is the delete's own version (the
    /// tenant's last revision + 1): a tenant created again under the name counts on from it.
    DeleteTenant { tenant: &'a str, revision: u64 },
}

impl<'a> Op<'a> {
    /// The tenant the op changes.
    pub(crate) fn tenant(&self) -> &'a str {
        match self {
            Self::CreateTenant { tenant, .. }
            | Self::Set { tenant, .. }
            | Self::Delete { tenant, .. }
            | Self::SetMany { tenant, .. }
            | Self::DeleteTenant { tenant, .. } => tenant,
        }
    }

    /// Encodes the op into `buf` (cleared first).
    pub(crate) fn encode_into(&self, buf: &mut Vec<u8>) -> Result<()> {
        buf.clear();
        buf.push(OP_FORMAT);
        let taken = std::mem::take(buf);
        *buf = postcard::to_extend(self, taken)
            .map_err(|e| Error::BadRequest(format!("the write cannot be encoded: {e}")))?;
        Ok(())
    }

    /// Decodes a record's payload; `Err` holds what is wrong with it.
    pub(crate) fn decode(payload: &'a [u8]) -> std::result::Result<Self, String> {
        match payload.split_first() {
            Some((&OP_FORMAT, rest)) => {
                let (op, left) = postcard::take_from_bytes(rest).map_err(|e| e.to_string())?;
                if left.is_empty() {
                    Ok(op)
                } else {
                    Err(format!("{} bytes after the op", left.len()))
                }
            }
            Some((other, _)) => Err(format!(
                "op format {other} (this memwire reads format {OP_FORMAT})"
            )),
            None => Err("an empty record".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip_and_values_are_stored_as_bytes() {
        let value = vec![7_u8; 300];
        let ops = [
            Op::CreateTenant {
                tenant: "acme",
                quota_bytes: 1 << 20,
                max_variables: 10,
                max_value_len: 4096,
                ring_slots: 64,
            },
            Op::Set {
                tenant: "acme",
                service: "billing",
                variable: "rate",
                value: Bytes(&value),
                timestamp_ns: 5,
            },
            Op::Delete {
                tenant: "acme",
                service: "billing",
                variable: "rate",
                timestamp_ns: 6,
            },
            Op::SetMany {
                tenant: "acme",
                service: "billing",
                values: vec![("a", Bytes(b"1")), ("b", Bytes(b""))],
                timestamp_ns: 7,
            },
            Op::DeleteTenant {
                tenant: "acme",
                revision: 8,
            },
        ];
        let mut buf = Vec::new();
        for op in &ops {
            op.encode_into(&mut buf).expect("encode");
            assert_eq!(Op::decode(&buf).as_ref(), Ok(op));
        }
        ops[1].encode_into(&mut buf).expect("encode");
        // Format byte, variant, three names with their lengths, the value's length (2 bytes of
        // varint), the value, the timestamp: bytes, not 300 integers.
        assert!(buf.len() < value.len() + 30, "{} bytes", buf.len());
        assert!(Op::decode(&[]).is_err());
        assert!(Op::decode(&[9, 0]).is_err());
        assert!(Op::decode(&buf[..buf.len() - 1]).is_err());
        let mut longer = buf.clone();
        longer.push(0);
        assert!(Op::decode(&longer).is_err());
        // Variants keep their positions (records logged before `DeleteTenant` existed).
        assert_eq!(buf[1], 1, "Set is variant 1");
        ops[4].encode_into(&mut buf).expect("encode");
        assert_eq!(buf[1], 4, "DeleteTenant is variant 4");
    }
}
