//! Service patterns: globs with `*` only, which limit a key to some services of its tenant.

use std::fmt;
use std::str::FromStr;

use crate::auth::name::quote;
use crate::error::{Error, Result};

/// Longest pattern, in bytes: a service name's limit (200) leaves room for a few `*`s.
const MAX_PATTERN_LEN: usize = 256;

/// A glob over service names: `*` matches any run of characters (possibly empty), every other
/// character matches itself. `billing-*` matches `billing-eu` and `billing-`, not `billing`.
///
/// Invariant: 1..=256 bytes of `[A-Za-z0-9._-*]`, so it can match only valid names.
///
/// ```
/// # use memwire_store::ServicePattern;
/// let p = ServicePattern::new("billing-*")?;
/// assert!(p.matches("billing-eu"));
/// assert!(!p.matches("payroll"));
/// # Ok::<(), memwire_store::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ServicePattern(String);

impl ServicePattern {
    /// Validates `pattern`: [`Error::BadRequest`] if it is empty, too long or holds a character
    /// a service name cannot (only `*` is special).
    pub fn new(pattern: &str) -> Result<Self> {
        let reason = if pattern.is_empty() {
            Some("must not be empty")
        } else if pattern.len() > MAX_PATTERN_LEN {
            Some("too long")
        } else if !pattern
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'*'))
        {
            Some("only ASCII letters, digits, `.`, `_`, `-` and `*` are allowed")
        } else {
            None
        };
        match reason {
            None => Ok(Self(pattern.to_owned())),
            Some(reason) => Err(Error::BadRequest(format!(
                "invalid service pattern {}: {reason}",
                quote(pattern)
            ))),
        }
    }

    /// The pattern as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `service` matches: the whole name, `*` standing for any run of characters.
    ///
    /// Runs in O(pattern × name) at worst: on a mismatch it backtracks only to the last `*`,
    /// which suffices because a later `*` can absorb anything an earlier one could.
    #[must_use]
    pub fn matches(&self, service: &str) -> bool {
        let (p, s) = (self.0.as_bytes(), service.as_bytes());
        let (mut pi, mut si) = (0, 0);
        // The last `*` seen, and the position in `s` it has absorbed up to.
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            if pi < p.len() && p[pi] == b'*' {
                star = Some((pi, si));
                pi += 1;
            } else if pi < p.len() && p[pi] == s[si] {
                pi += 1;
                si += 1;
            } else if let Some((star_pi, star_si)) = star {
                // Let the `*` absorb one more character and retry from just after it.
                pi = star_pi + 1;
                si = star_si + 1;
                star = Some((star_pi, star_si + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&b| b == b'*')
    }
}

impl fmt::Display for ServicePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ServicePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServicePattern({:?})", self.0)
    }
}

impl FromStr for ServicePattern {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl serde::Serialize for ServicePattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ServicePattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The obvious recursive definition, exponential at worst: the reference for `matches`.
    fn reference(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|i| reference(rest, &s[i..])),
            Some((&c, rest)) => s.first() == Some(&c) && reference(rest, &s[1..]),
        }
    }

    #[test]
    fn examples() {
        let cases = [
            ("billing-*", "billing-eu", true),
            ("billing-*", "billing-", true),
            ("billing-*", "billing", false),
            ("billing-*", "xbilling-eu", false),
            ("*", "anything", true),
            ("*-eu", "billing-eu", true),
            ("*-eu", "billing-us", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "acb", false),
            ("exact", "exact", true),
            ("exact", "exact2", false),
            ("**", "x", true),
        ];
        for (p, s, want) in cases {
            assert_eq!(
                ServicePattern::new(p).unwrap().matches(s),
                want,
                "{p} ~ {s}"
            );
        }
    }

    #[test]
    fn rejects_bad_patterns() {
        for bad in ["", "a/b", "billing-?", "a b", &"*".repeat(257)] {
            assert!(
                matches!(ServicePattern::new(bad), Err(Error::BadRequest(m)) if m.contains("service pattern")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn serde_round_trip_validates() {
        let p = ServicePattern::new("billing-*").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"billing-*\"");
        let back: ServicePattern = serde_json::from_str("\"billing-*\"").unwrap();
        assert_eq!(back, p);
        assert!(serde_json::from_str::<ServicePattern>("\"a/b\"").is_err());
    }

    proptest! {
        // A small alphabet makes matches and near-misses common.
        #[test]
        fn matches_agrees_with_the_reference(p in "[ab*-]{1,12}", s in "[ab-]{0,16}") {
            let pattern = ServicePattern::new(&p).unwrap();
            prop_assert_eq!(pattern.matches(&s), reference(p.as_bytes(), s.as_bytes()));
        }
    }
}
