//! API keys: how one is made, what it looks like, and the record the server keeps of it.
//!
//! A key is `mw_` followed by the base64url (no padding) of 32 bytes from `getrandom(2)`:
//! 46 characters, 256 bits of entropy. The server stores only its SHA-256; with that much
//! entropy a slow password hash would add nothing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

use crate::auth::pattern::ServicePattern;
use crate::auth::policy::Role;
use crate::error::{Error, Result};

/// What every key starts with, so a leaked key is recognisable (and scanners can find it).
pub const KEY_PREFIX: &str = "mw_";

/// Random bytes in a key: 256 bits.
pub(crate) const KEY_BYTES: usize = 32;

/// Length of the base64url (no padding) of [`KEY_BYTES`] bytes: ⌈32 × 8 / 6⌉.
pub(crate) const KEY_BODY_LEN: usize = 43;

/// Length of a whole key.
pub const KEY_LEN: usize = KEY_PREFIX.len() + KEY_BODY_LEN;

/// Length of a key's id: the first characters of its body, shown in listings. 48 bits, so
/// ids of one store do not collide in practice (and `create` redraws if one would).
pub const KEY_ID_LEN: usize = 8;

/// The one message for an unknown, revoked or mistyped key, so an error tells a caller
/// nothing about which keys exist.
pub(crate) const UNKNOWN_KEY: &str = "unknown or revoked API key";

/// What the server keeps of a key: never the key itself.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyRecord {
    /// The first [`KEY_ID_LEN`] characters after `mw_`: names the key in listings and in
    /// `revoke`. Unique within a store.
    pub id: String,
    /// SHA-256 of the whole key (`mw_…`), in files as 64 lowercase hex digits.
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
    /// The tenant the key belongs to; `None`: every tenant (admin keys).
    pub tenant: Option<String>,
    /// What it may do.
    pub role: Role,
    /// The services it is limited to; `None`: the whole tenant (and may map it).
    pub services: Option<ServicePattern>,
    /// When it was created, in milliseconds since the Unix epoch (0 if the clock was before it).
    pub created_at_unix_ms: u64,
    /// Revoked keys stay listed but authenticate nothing.
    pub revoked: bool,
    /// A note for people (`memwire key create --label …`).
    pub label: Option<String>,
}

/// A new key from `getrandom(2)`.
pub(crate) fn generate() -> Result<String> {
    let mut bytes = [0_u8; KEY_BYTES];
    fill_random(&mut bytes)?;
    Ok(encode(&bytes))
}

/// `mw_` + base64url of `bytes`, without padding.
pub(crate) fn encode(bytes: &[u8; KEY_BYTES]) -> String {
    let mut key = String::with_capacity(KEY_LEN);
    key.push_str(KEY_PREFIX);
    URL_SAFE_NO_PAD.encode_string(bytes, &mut key);
    key
}

/// Fills `buf` from `getrandom(2)` (blocking until the kernel's pool is initialised, which
/// it is long before any server starts), retrying on `EINTR` and short reads.
fn fill_random(buf: &mut [u8]) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::io("getrandom(2) for a new API key", e.into())),
        }
    }
    Ok(())
}

/// Whether `presented` has a key's shape: `mw_`, then 43 base64url characters that decode
/// to 32 bytes (the last character carries 2 bits of padding, which must be zero).
pub(crate) fn is_well_formed(presented: &str) -> bool {
    presented.len() == KEY_LEN
        && presented.starts_with(KEY_PREFIX)
        && URL_SAFE_NO_PAD
            .decode(&presented.as_bytes()[KEY_PREFIX.len()..])
            .is_ok_and(|bytes| bytes.len() == KEY_BYTES)
}

/// The id of a well-formed key: the first [`KEY_ID_LEN`] characters of its body.
pub(crate) fn id_of(key: &str) -> String {
    key[KEY_PREFIX.len()..KEY_PREFIX.len() + KEY_ID_LEN].to_owned()
}

/// SHA-256 of the key as presented.
pub(crate) fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// `[u8; 32]` as 64 lowercase hex digits in files.
mod hex32 {
    use std::fmt::Write as _;

    pub(super) fn serialize<S: serde::Serializer>(
        bytes: &[u8; 32],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut hex = String::with_capacity(64);
        for b in bytes {
            // Writing to a String cannot fail.
            let _ = write!(hex, "{b:02x}");
        }
        serializer.serialize_str(&hex)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<[u8; 32], D::Error> {
        let hex = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
        let bad = || serde::de::Error::custom("a key hash must be 64 hex digits");
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut out = [0_u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let digits = std::str::from_utf8(pair).map_err(|_| bad())?;
            *byte = u8::from_str_radix(digits, 16).map_err(|_| bad())?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_key_is_mw_and_43_base64url_characters_of_32_bytes() {
        let key = generate().unwrap();
        assert_eq!(key.len(), 46);
        assert!(key.starts_with("mw_"));
        assert!(
            key[3..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{key}"
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(&key[3..]).unwrap().len(), 32);
        assert!(is_well_formed(&key));
        assert_eq!(id_of(&key), key[3..11]);
    }

    #[test]
    fn encoding_is_base64url_without_padding() {
        // 0xfb 0xff … exercises both URL-safe characters (`-` for 62, `_` for 63).
        let mut bytes = [0_u8; 32];
        bytes[..3].copy_from_slice(&[0xfb, 0xef, 0xff]);
        let key = encode(&bytes);
        assert_eq!(&key[..7], "mw_--__");
        assert_eq!(key.len(), 46);
        assert!(key.ends_with('A'), "zero bytes, no `=`: {key}");
    }

    #[test]
    fn getrandom_fills_all_32_bytes_with_fresh_values() {
        // Two draws of 256 bits agree only if the source is broken (or not filling the buffer).
        let (mut a, mut b) = ([0_u8; KEY_BYTES], [0_u8; KEY_BYTES]);
        fill_random(&mut a).unwrap();
        fill_random(&mut b).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0; KEY_BYTES]);
        // Every byte position is written: over 64 draws, a position stuck at zero would show.
        let mut seen_nonzero = [false; KEY_BYTES];
        for _ in 0..64 {
            fill_random(&mut a).unwrap();
            for (seen, &byte) in seen_nonzero.iter_mut().zip(&a) {
                *seen |= byte != 0;
            }
        }
        assert!(seen_nonzero.iter().all(|&s| s), "{seen_nonzero:?}");
    }

    #[test]
    fn malformed_keys_are_recognised() {
        let key = generate().unwrap();
        let wrong_prefix = format!("mx_{}", &key[3..]);
        let short = &key[..45];
        let long = format!("{key}A");
        let bad_char = format!("{}+", &key[..45]);
        // The 43rd character carries 2 padding bits; `B` sets one of them.
        let nonzero_padding = format!("mw_{}B", "A".repeat(42));
        for bad in [
            "",
            "mw_",
            &wrong_prefix,
            short,
            &long,
            &bad_char,
            &nonzero_padding,
        ] {
            assert!(!is_well_formed(bad), "{bad:?}");
        }
        assert!(is_well_formed(&format!("mw_{}A", "A".repeat(42))));
    }

    #[test]
    fn hash_is_sha256_of_the_whole_key() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(hash("abc")[..4], [0xba, 0x78, 0x16, 0xbf],);
    }

    proptest! {
        #[test]
        fn hex_round_trips(bytes in proptest::array::uniform32(any::<u8>())) {
            #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
            struct H(#[serde(with = "hex32")] [u8; 32]);
            let json = serde_json::to_string(&H(bytes)).unwrap();
            prop_assert_eq!(json.len(), 66);
            prop_assert_eq!(serde_json::from_str::<H>(&json).unwrap(), H(bytes));
        }

        #[test]
        fn every_encoded_key_is_well_formed(bytes in proptest::array::uniform32(any::<u8>())) {
            let key = encode(&bytes);
            prop_assert!(is_well_formed(&key));
            prop_assert_eq!(URL_SAFE_NO_PAD.decode(&key[3..]).unwrap(), bytes.to_vec());
        }
    }
}
