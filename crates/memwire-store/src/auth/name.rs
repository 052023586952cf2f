//! Names of tenants, services and variables: memwire-shm's resource-name rules.

use crate::error::{Error, Result};

/// How much of a rejected name an error message quotes: a client may send megabytes.
const QUOTED_MAX: usize = 64;

/// Checks `name` against the resource-name rules of [`memwire_shm::Name`] (1..=200 bytes of
/// `[A-Za-z0-9._-]`, not `.` or `..`); [`Error::BadRequest`] names the `kind` ("tenant",
/// "service", "variable") and the rule broken.
///
/// ```
/// # use memwire_store::validate_name;
/// validate_name("tenant", "finance")?;
/// assert!(validate_name("service", "a/b").is_err());
/// # Ok::<(), memwire_store::Error>(())
/// ```
pub fn validate_name(kind: &str, name: &str) -> Result<()> {
    match memwire_shm::Name::new(name) {
        Ok(_) => Ok(()),
        Err(memwire_shm::Error::InvalidName { reason, .. }) => Err(Error::BadRequest(format!(
            "invalid {kind} name {}: {reason}",
            quote(name)
        ))),
        Err(other) => Err(Error::BadRequest(format!(
            "invalid {kind} name {}: {other}",
            quote(name)
        ))),
    }
}

/// `name` in quotes for an error message, escaped and cut to [`QUOTED_MAX`] characters.
pub(crate) fn quote(name: &str) -> String {
    let mut chars = name.chars();
    let head: String = chars.by_ref().take(QUOTED_MAX).collect();
    if chars.next().is_some() {
        format!("{head:?}… ({} bytes)", name.len())
    } else {
        format!("{head:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_resource_names() {
        for ok in ["finance", "billing-eu.v2", "a", "A_b-c.d", &"x".repeat(200)] {
            assert!(validate_name("tenant", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_with_the_kind_and_the_rule() {
        for (bad, rule) in [
            ("", "empty"),
            (".", "`.`"),
            ("..", "`.`"),
            ("a/b", "only ASCII"),
            ("é", "only ASCII"),
            ("a b", "only ASCII"),
        ] {
            let Err(Error::BadRequest(msg)) = validate_name("service", bad) else {
                panic!("{bad:?} accepted");
            };
            assert!(msg.starts_with("invalid service name"), "{msg}");
            assert!(msg.contains(rule), "{msg}");
        }
        let long = "y".repeat(201);
        let Err(Error::BadRequest(msg)) = validate_name("variable", &long) else {
            panic!("201 bytes accepted");
        };
        assert!(
            msg.contains("too long") && msg.contains("(201 bytes)"),
            "{msg}"
        );
        assert!(
            msg.len() < 150,
            "the message quotes a bounded prefix: {msg}"
        );
    }
}
