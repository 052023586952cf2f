//! Payload encodings: postcard for typed Rust calls, MessagePack for calls by name and for
//! error records, which any language can read.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::frame::Encoding;

/// The capacity an encoding starts with: room for the scalars and short tuples most calls
/// carry, in one allocation.
const SMALL: usize = 64;

/// Buffers kept for reuse on one thread, at most.
const SPARES: usize = 8;

thread_local! {
    /// Buffers handed back by [`recycle`] once their bytes were sent, for the next [`encode`]
    /// on this thread: a server answering call after call allocates none.
    static SPARE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An empty buffer with room for a small value: a recycled one if this thread has one.
fn buffer() -> Vec<u8> {
    SPARE
        .with(|spare| spare.borrow_mut().pop())
        .unwrap_or_else(|| Vec::with_capacity(SMALL))
}

/// Hands back an encoding whose bytes were sent, for [`encode`] to reuse (a small one only:
/// a large buffer is freed).
pub(crate) fn recycle(mut buf: Vec<u8>) {
    if buf.capacity() < SMALL || buf.capacity() > 4 * SMALL {
        return;
    }
    buf.clear();
    SPARE.with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < SPARES {
            spare.push(buf);
        }
    });
}

/// Encodes `value` as `encoding` says (`Raw` is not a value encoding: MessagePack is used).
pub(crate) fn encode<T: Serialize + ?Sized>(
    encoding: Encoding,
    value: &T,
) -> Result<Vec<u8>, String> {
    match encoding {
        // Sized for a small value up front: growing from empty cost a reallocation or two.
        Encoding::Postcard => postcard::to_extend(value, buffer()).map_err(|e| e.to_string()),
        Encoding::MessagePack | Encoding::Raw => {
            rmp_serde::to_vec_named(value).map_err(|e| e.to_string())
        }
    }
}

/// Decodes a `T` from `bytes`; every byte must be used (a shorter value is an error, so a
/// peer cannot smuggle trailing data past a decoder).
pub(crate) fn decode<T: DeserializeOwned>(encoding: Encoding, bytes: &[u8]) -> Result<T, String> {
    match encoding {
        Encoding::Postcard => match postcard::take_from_bytes(bytes) {
            Ok((value, [])) => Ok(value),
            Ok((_, rest)) => Err(format!("{} bytes left over", rest.len())),
            Err(e) => Err(e.to_string()),
        },
        Encoding::MessagePack => {
            let mut unread = bytes;
            let value = T::deserialize(&mut rmp_serde::Deserializer::new(&mut unread))
                .map_err(|e| e.to_string())?;
            let rest = unread.len();
            if rest == 0 {
                Ok(value)
            } else {
                Err(format!("{rest} bytes left over"))
            }
        }
        Encoding::Raw => Err("a raw payload holds no value".into()),
    }
}

/// What an [`crate::frame::Kind::Error`] frame carries, always as MessagePack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ErrorRecord {
    /// `remote`, `unknown_method`, `bad_arguments` or `cancelled`.
    pub(crate) code: String,
    /// For `remote`: the handler's error kind.
    #[serde(default)]
    pub(crate) kind: String,
    /// Human-readable detail.
    #[serde(default)]
    pub(crate) message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_decode_from_message_pack_arrays() {
        let bytes = rmp_serde::to_vec(&vec![1i64, 2]).expect("encode");
        let (a, b): (i64, i64) = decode(Encoding::MessagePack, &bytes).expect("decode");
        assert_eq!((a, b), (1, 2));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(Encoding::Postcard, &5u32).expect("encode");
        bytes.push(0);
        assert!(decode::<u32>(Encoding::Postcard, &bytes).is_err());
        let mut bytes = encode(Encoding::MessagePack, &5u32).expect("encode");
        bytes.push(0);
        assert!(decode::<u32>(Encoding::MessagePack, &bytes).is_err());
    }
}
