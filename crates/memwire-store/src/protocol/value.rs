//! A variable's value on the wire: bytes.
//!
//! MessagePack carries them as `bin`. JSON has no bytes, so there a value is an object with
//! exactly one key:
//!
//! | form | meaning |
//! | --- | --- |
//! | `{"text": "0.19"}` | the UTF-8 bytes of the string |
//! | `{"base64": "AAEC"}` | standard base64 (RFC 4648 §4, `+/`, padded) |
//! | `{"json": {"rate": 0.19}}` | the compact serialisation of the JSON value: `{"rate":0.19}` |
//!
//! A server sends `text` when the bytes are valid UTF-8 and `base64` otherwise. A decoder
//! accepts the three object forms in MessagePack too (so one client library may use them
//! everywhere), and `bin` nowhere else.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// A variable's value: bytes, whatever they hold.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Value(pub Vec<u8>);

impl Value {
    /// The bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, owned.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The number of bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty (an empty value is a value, not an absent one).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for Value {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<&[u8]> for Value {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Self(text.as_bytes().to_vec())
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(text) => write!(f, "Value({text:?})"),
            Err(_) => write!(f, "Value({} bytes)", self.0.len()),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            return s.serialize_bytes(&self.0);
        }
        let mut map = s.serialize_map(Some(1))?;
        match std::str::from_utf8(&self.0) {
            Ok(text) => map.serialize_entry("text", text)?,
            Err(_) => map.serialize_entry("base64", &BASE64.encode(&self.0))?,
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

const FORMS: &[&str] = &["text", "base64", "json"];

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            r#"a value: {"text": ...}, {"base64": ...} or {"json": ...} (MessagePack: bin)"#,
        )
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Value, E> {
        Ok(Value(bytes.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Value, E> {
        Ok(Value(bytes))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Some(form) = map.next_key::<String>()? else {
            return Err(de::Error::invalid_length(0, &self));
        };
        let bytes = match form.as_str() {
            "text" => map.next_value::<String>()?.into_bytes(),
            "base64" => {
                let text = map.next_value::<String>()?;
                BASE64
                    .decode(text.as_bytes())
                    .map_err(|e| de::Error::custom(format_args!("invalid base64 value: {e}")))?
            }
            "json" => {
                let json = map.next_value::<serde_json::Value>()?;
                serde_json::to_vec(&json).map_err(de::Error::custom)?
            }
            other => return Err(de::Error::unknown_field(other, FORMS)),
        };
        if map.next_key::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(
                "a value is an object with exactly one key: `text`, `base64` or `json`",
            ));
        }
        Ok(Value(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_json(json: &str) -> serde_json::Result<Value> {
        serde_json::from_str(json)
    }

    #[test]
    fn json_forms() -> anyhow::Result<()> {
        assert_eq!(from_json(r#"{"text": "hé"}"#)?.0, "hé".as_bytes());
        assert_eq!(from_json(r#"{"base64": "AP8="}"#)?.0, [0, 255]);
        assert_eq!(
            from_json(r#"{"json": {"a": [1, 2.5, null]}}"#)?.0,
            br#"{"a":[1,2.5,null]}"#
        );
        assert_eq!(from_json(r#"{"json": "x"}"#)?.0, br#""x""#);
        Ok(())
    }

    #[test]
    fn json_refusals() {
        for bad in [
            r#"{}"#,
            r#"{"hex": "00"}"#,
            r#"{"text": "a", "base64": "AA=="}"#,
            r#"{"base64": "AP8"}"#,
            r#"{"base64": "@@@@"}"#,
            r#"{"text": 5}"#,
            r#""plain""#,
            r#"[1, 2]"#,
        ] {
            assert!(from_json(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn encodes_text_or_base64() -> anyhow::Result<()> {
        assert_eq!(
            serde_json::to_string(&Value::from("hi"))?,
            r#"{"text":"hi"}"#
        );
        assert_eq!(
            serde_json::to_string(&Value(vec![0, 255]))?,
            r#"{"base64":"AP8="}"#
        );
        Ok(())
    }

    #[test]
    fn messagepack_is_bin() -> anyhow::Result<()> {
        let bytes = rmp_serde::to_vec_named(&Value(vec![1, 2]))?;
        assert_eq!(bytes, [0xc4, 2, 1, 2]);
        assert_eq!(rmp_serde::from_slice::<Value>(&bytes)?, Value(vec![1, 2]));
        Ok(())
    }
}
