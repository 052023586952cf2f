//! The server's keys: `keys.json` in its data directory, hashes only.
//!
//! The file is replaced whole on every change (a temporary file written, fsynced and renamed
//! over it, then the directory fsynced), so a crash leaves either the old list or the new one.
//! It is created mode 0600. The data directory is the user's: a damaged or hand-edited file
//! stops start-up with [`Error::Corrupt`] naming it, never a panic.
//!
//! ```text
//! {
//!   "version": 1,
//!   "admin_key_id": "Q2x1c3Rl",            // the key written to admin.key, once made
//!   "keys": [ { "id": "Q2x1c3Rl", "hash": "<64 hex digits>", "tenant": null,
//!               "role": "admin", "services": null, "created_at_unix_ms": 1767225600000,
//!               "revoked": false, "label": "admin.key" } ]
//! }
//! ```

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use subtle::{Choice, ConditionallySelectable as _, ConstantTimeEq as _};

use crate::auth::key::{self, KEY_ID_LEN, KeyRecord, UNKNOWN_KEY};
use crate::auth::name::{quote, validate_name};
use crate::auth::pattern::ServicePattern;
use crate::auth::policy::Role;
use crate::error::{Error, Result};

/// The file's name in the data directory.
pub const KEYS_FILE: &str = "keys.json";

/// The temporary file a new list is written to before it is renamed over [`KEYS_FILE`].
const KEYS_TMP: &str = "keys.json.tmp";

/// The format this code reads and writes.
const VERSION: u32 = 1;

/// Longest label, in bytes: a note for a listing, not a document.
const MAX_LABEL_LEN: usize = 200;

/// A new id collides with an existing one with probability n / 2⁴⁸; after this many draws
/// in a row something other than chance is wrong.
const ID_DRAWS: usize = 8;

/// `keys.json` as stored.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    version: u32,
    /// The id of the key [`KeyStore::ensure_admin_key`] wrote to `admin.key`, once it has.
    #[serde(default)]
    admin_key_id: Option<String>,
    keys: Vec<KeyRecord>,
}

/// The API keys of one server, loaded from and saved to `keys.json` in its data directory.
///
/// Changes (`create`, `revoke`) reach the file before they reach memory: when they return
/// `Ok`, the file holds them; when they fail, neither does. One process owns the file (the
/// server's lock on its data directory), so the store does no locking of its own.
///
/// ```
/// # use memwire_store::{KeyStore, Role};
/// # let dir = tempfile::tempdir().map_err(|e| memwire_store::Error::io("tempdir", e))?;
/// let mut keys = KeyStore::open(dir.path())?;
/// let (key, record) = keys.create(Some("finance"), Role::Read, None, Some("dashboards"))?;
/// assert_eq!(keys.authenticate(&key)?.id, record.id);
/// keys.revoke(&record.id)?;
/// assert!(keys.authenticate(&key).is_err());
/// # Ok::<(), memwire_store::Error>(())
/// ```
#[derive(Debug)]
pub struct KeyStore {
    dir: PathBuf,
    file: KeysFile,
}

impl KeyStore {
    /// Loads `dir/keys.json` (an empty store if there is none), creating `dir` (mode 0700) if
    /// it is missing. [`Error::Corrupt`] names the file if it is not a valid key list.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io(format!("create data directory {}", dir.display()), e))?;
        let path = dir.join(KEYS_FILE);
        let file = match fs::read(&path) {
            Ok(bytes) => parse(&path, &bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => KeysFile {
                version: VERSION,
                ..KeysFile::default()
            },
            Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
        };
        Ok(Self { dir, file })
    }

    /// The data directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes a key for `tenant` (`None`: every tenant) with `role`, limited to `services` if
    /// given, and saves its hash. Returns the key, which exists nowhere else: show it once.
    ///
    /// [`Error::BadRequest`] for an invalid tenant name or a label over 200 bytes or holding
    /// control characters.
    pub fn create(
        &mut self,
        tenant: Option<&str>,
        role: Role,
        services: Option<ServicePattern>,
        label: Option<&str>,
    ) -> Result<(String, KeyRecord)> {
        if let Some(tenant) = tenant {
            validate_name("tenant", tenant)?;
        }
        if let Some(label) = label {
            check_label(label)?;
        }
        let key = self.fresh_key()?;
        let record = KeyRecord {
            id: key::id_of(&key),
            hash: key::hash(&key),
            tenant: tenant.map(str::to_owned),
            role,
            services,
            created_at_unix_ms: now_unix_ms(),
            revoked: false,
            label: label.map(str::to_owned),
        };
        self.insert(record.clone(), false)?;
        Ok((key, record))
    }

    /// Every key's record, revoked ones included, oldest first. Never the keys themselves.
    #[must_use]
    pub fn list(&self) -> Vec<KeyRecord> {
        self.file.keys.clone()
    }

    /// Revokes the key with this id: it authenticates nothing from now on. Returns its record;
    /// revoking a revoked key again changes nothing. [`Error::NotFound`] for an unknown id.
    pub fn revoke(&mut self, id: &str) -> Result<KeyRecord> {
        let Some(index) = self.file.keys.iter().position(|r| r.id == id) else {
            return Err(Error::NotFound(format!("no API key with id {}", quote(id))));
        };
        if !self.file.keys[index].revoked {
            let mut next = self.file.clone();
            next.keys[index].revoked = true;
            self.save(next)?;
        }
        Ok(self.file.keys[index].clone())
    }

    /// The record of the key `presented`, if it is known and not revoked.
    ///
    /// The key's SHA-256 is compared with every stored hash in constant time, and the loop
    /// neither stops at a match nor branches on one, so timing tells nothing about which
    /// stored key matched or how many were compared before it. [`Error::Unauthenticated`],
    /// with one message for unknown and revoked keys alike, and another for a string that is
    /// not shaped like a key at all.
    pub fn authenticate(&self, presented: &str) -> Result<&KeyRecord> {
        if !key::is_well_formed(presented) {
            return Err(Error::Unauthenticated(
                "malformed API key: expected `mw_` followed by 43 base64url characters".to_owned(),
            ));
        }
        let hash = key::hash(presented);
        let mut found = Choice::from(0);
        let mut index = 0_u64;
        for (i, record) in (0_u64..).zip(&self.file.keys) {
            let usable = record.hash.ct_eq(&hash) & Choice::from(u8::from(!record.revoked));
            index.conditional_assign(&i, usable);
            found |= usable;
        }
        let record = usize::try_from(index)
            .ok()
            .and_then(|i| self.file.keys.get(i))
            .filter(|_| bool::from(found));
        record.ok_or_else(|| Error::Unauthenticated(UNKNOWN_KEY.to_owned()))
    }

    /// The id of the key written to `admin.key`, once one has been.
    pub(crate) fn admin_key_id(&self) -> Option<&str> {
        self.file.admin_key_id.as_deref()
    }

    /// Saves the record of `key`, an admin key for every tenant written to `admin.key`, and
    /// marks it as that key. A key already stored (a start that crashed after saving it) is
    /// only marked.
    pub(crate) fn insert_admin_key(&mut self, key: &str) -> Result<KeyRecord> {
        let hash = key::hash(key);
        if let Some(existing) = self.file.keys.iter().find(|r| r.hash == hash) {
            let existing = existing.clone();
            let mut next = self.file.clone();
            next.admin_key_id = Some(existing.id.clone());
            self.save(next)?;
            return Ok(existing);
        }
        let record = KeyRecord {
            id: key::id_of(key),
            hash,
            tenant: None,
            role: Role::Admin,
            services: None,
            created_at_unix_ms: now_unix_ms(),
            revoked: false,
            label: Some(crate::auth::admin::ADMIN_KEY_FILE.to_owned()),
        };
        if self.file.keys.iter().any(|r| r.id == record.id) {
            return Err(Error::BadRequest(format!(
                "the key in {} has the id {} of another stored key; remove the file to let \
                 the server make a new one",
                crate::auth::admin::ADMIN_KEY_FILE,
                record.id
            )));
        }
        self.insert(record.clone(), true)?;
        Ok(record)
    }

    /// A new key whose id no stored key has.
    fn fresh_key(&self) -> Result<String> {
        for _ in 0..ID_DRAWS {
            let key = key::generate()?;
            let id = key::id_of(&key);
            if !self.file.keys.iter().any(|r| r.id == id) {
                return Ok(key);
            }
        }
        Err(Error::io(
            "draw an API key with an unused id",
            io::Error::other("getrandom(2) keeps returning ids already in use"),
        ))
    }

    /// Appends `record` (marking it as the admin key if `admin`) and saves.
    fn insert(&mut self, record: KeyRecord, admin: bool) -> Result<()> {
        let mut next = self.file.clone();
        if admin {
            next.admin_key_id = Some(record.id.clone());
        }
        next.keys.push(record);
        self.save(next)
    }

    /// Writes `next` to the file atomically, then makes it the store's state.
    fn save(&mut self, next: KeysFile) -> Result<()> {
        let mut json = serde_json::to_vec_pretty(&next)
            .map_err(|e| Error::io("encode the key list", e.into()))?;
        json.push(b'\n');
        write_atomically(&self.dir, KEYS_TMP, KEYS_FILE, &json)?;
        self.file = next;
        Ok(())
    }
}

/// Writes `bytes` to `dir/name`, mode 0600, replacing it whole: `dir/tmp` is written, fsynced
/// and renamed over it, then `dir` is fsynced so the rename survives a crash.
pub(crate) fn write_atomically(dir: &Path, tmp: &str, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(tmp);
    let path = dir.join(name);
    // A temporary file left by a crash holds nothing that was acknowledged.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(Error::io(format!("remove {}", tmp.display()), e));
        }
        _ => {}
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::io(format!("create {}", tmp.display()), e))?;
    let written = file
        .set_permissions(fs::Permissions::from_mode(0o600))
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(format!("write {}", tmp.display()), e));
    }
    drop(file);
    fs::rename(&tmp, &path)
        .map_err(|e| Error::io(format!("rename {} to {}", tmp.display(), path.display()), e))?;
    sync_dir(dir)
}

/// fsyncs the directory `dir`, so that entries created or renamed in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("fsync directory {}", dir.display()), e))
}

/// Decodes and checks `keys.json`.
fn parse(path: &Path, bytes: &[u8]) -> Result<KeysFile> {
    let corrupt = |offset: u64, what: String| Error::Corrupt {
        path: path.to_path_buf(),
        offset,
        what,
    };
    let file: KeysFile = serde_json::from_slice(bytes)
        .map_err(|e| corrupt(offset_of(bytes, e.line(), e.column()), e.to_string()))?;
    if file.version != VERSION {
        return Err(corrupt(
            0,
            format!(
                "version {} (this memwire reads version {VERSION})",
                file.version
            ),
        ));
    }
    let mut ids = HashSet::new();
    let mut hashes = HashSet::new();
    for (n, record) in file.keys.iter().enumerate() {
        // Where the record is, as near as the text tells: the first occurrence of its id.
        let at = find(bytes, &format!("\"{}\"", record.id));
        let problem = if record.id.len() != KEY_ID_LEN
            || !record
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            Some(format!(
                "key {n}: id {} is not {KEY_ID_LEN} base64url characters",
                quote(&record.id)
            ))
        } else if !ids.insert(record.id.as_str()) {
            Some(format!("key {n}: id {} appears twice", record.id))
        } else if !hashes.insert(record.hash) {
            Some(format!(
                "key {n} (id {}): its hash appears twice",
                record.id
            ))
        } else if let Some(Err(e)) = record.tenant.as_deref().map(|t| validate_name("tenant", t)) {
            Some(format!("key {n} (id {}): {e}", record.id))
        } else if let Some(Err(e)) = record.label.as_deref().map(check_label) {
            Some(format!("key {n} (id {}): {e}", record.id))
        } else {
            None
        };
        if let Some(what) = problem {
            return Err(corrupt(at, what));
        }
    }
    if let Some(id) = &file.admin_key_id
        && !ids.contains(id.as_str())
    {
        return Err(corrupt(
            find(bytes, "\"admin_key_id\""),
            format!("admin_key_id {} names no stored key", quote(id)),
        ));
    }
    Ok(file)
}

/// Checks a key's label: at most 200 bytes, no control characters.
fn check_label(label: &str) -> Result<()> {
    if label.len() > MAX_LABEL_LEN || label.chars().any(char::is_control) {
        return Err(Error::BadRequest(format!(
            "invalid key label {}: at most {MAX_LABEL_LEN} bytes, no control characters",
            quote(label)
        )));
    }
    Ok(())
}

/// The byte offset of 1-based `line` and `column` in `bytes` (serde_json's error position).
fn offset_of(bytes: &[u8], line: usize, column: usize) -> u64 {
    let line_start: usize = bytes
        .split_inclusive(|&b| b == b'\n')
        .take(line.saturating_sub(1))
        .map(<[u8]>::len)
        .sum();
    u64::try_from(line_start + column.saturating_sub(1)).unwrap_or(u64::MAX)
}

/// The offset of the first occurrence of `needle` in `bytes`, else 0.
fn find(bytes: &[u8], needle: &str) -> u64 {
    if needle.is_empty() {
        return 0;
    }
    bytes
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .and_then(|i| u64::try_from(i).ok())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch; 0 if the clock is set before it.
fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_lines_and_columns() {
        let text = b"ab\ncde\nf";
        assert_eq!(offset_of(text, 1, 1), 0);
        assert_eq!(offset_of(text, 2, 2), 4);
        assert_eq!(offset_of(text, 3, 1), 7);
        assert_eq!(find(text, "cd"), 3);
        assert_eq!(find(text, "zz"), 0);
    }

    #[test]
    fn labels_are_short_and_printable() {
        assert!(check_label("dashboards (grafana)").is_ok());
        assert!(check_label("a\nb").is_err());
        assert!(check_label("\u{1b}[31m").is_err());
        assert!(check_label(&"x".repeat(201)).is_err());
    }
}
