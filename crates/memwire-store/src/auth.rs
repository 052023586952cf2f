//! Who may do what: API keys, the roles they carry and the check every request passes.
//!
//! ```text
//!   request ──► KeyStore::authenticate(key) ──► &KeyRecord ──► authorize(record, action,
//!                 SHA-256, constant-time compare        tenant, service) ──► Ok / PermissionDenied
//!                 against every stored hash
//! ```
//!
//! - A **key** is `mw_` + 43 base64url characters (256 random bits from `getrandom(2)`). The
//!   server keeps only its SHA-256, in `keys.json` ([`KeyStore`]); the key is shown once.
//! - A key has a **tenant** (`None`: all of them), a [`Role`] (`read` ⊆ `write` ⊆ `admin`) and
//!   optionally a [`ServicePattern`]. A pattern-limited key reads through the server only: a
//!   mapping shows the whole tenant, so [`may_map_tenant`] refuses it, and so does
//!   [`authorize`] for every whole-tenant request (`service: None`).
//! - Unknown, revoked and malformed keys are [`Error::Unauthenticated`](crate::Error::Unauthenticated); a key
//!   asking beyond its tenant, role or pattern is
//!   [`Error::PermissionDenied`](crate::Error::PermissionDenied), with a message that says which.
//! - On its first start the server writes an admin key to `admin.key`
//!   ([`ensure_admin_key`]); the CLI reads it with [`read_admin_key`].
//!
//! What a hostile client can do: present any string as a key (it is hashed, never parsed
//! beyond its shape, and compared in constant time), and ask for any tenant or service name
//! (names reach messages quoted and cut short). What the user's own data directory may hold:
//! anything; a damaged `keys.json` is [`Error::Corrupt`](crate::Error::Corrupt), never a panic.

mod admin;
mod key;
mod name;
mod pattern;
mod policy;
mod store;

pub use admin::{ADMIN_KEY_FILE, ensure_admin_key, read_admin_key};
pub use key::{KEY_ID_LEN, KEY_LEN, KEY_PREFIX, KeyRecord};
pub use name::validate_name;
pub use pattern::ServicePattern;
pub use policy::{Action, Role, authorize, may_map_tenant};
pub use store::{KEYS_FILE, KeyStore};
