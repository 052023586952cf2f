//! The admin key file: on its first start the server makes a key for every tenant with the
//! admin role and writes it to `admin.key` in its data directory (mode 0600), where the CLI of
//! the same user finds it. Processes of that user are as trusted as the user: they can read it.
//!
//! The file is created with `O_EXCL`, so an existing one is never overwritten, and written
//! before the key's hash is saved: a start that crashes in between leaves a file the next
//! start adopts. Once `keys.json` records the admin key, later starts make no other, even if
//! the file has been deleted (make another with `memwire key create --role admin`).

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use crate::auth::key;
use crate::auth::store::{KeyStore, sync_dir};
use crate::error::{Error, Result};

/// The file's name in the data directory.
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// More than any key file holds (46 bytes and a newline): a larger file is not one.
const MAX_ADMIN_KEY_FILE_LEN: u64 = 1024;

/// Makes the admin key on the first start of the server whose data directory is `data_dir`:
/// see [`KeyStore::ensure_admin_key`]. Call it before the server opens its own [`KeyStore`].
///
/// ```
/// # let dir = tempfile::tempdir().map_err(|e| memwire_store::Error::io("tempdir", e))?;
/// let key = memwire_store::ensure_admin_key(dir.path())?;
/// assert!(key.is_some_and(|k| k.starts_with("mw_")));
/// assert_eq!(memwire_store::ensure_admin_key(dir.path())?, None);
/// # Ok::<(), memwire_store::Error>(())
/// ```
pub fn ensure_admin_key(data_dir: impl AsRef<Path>) -> Result<Option<String>> {
    KeyStore::open(data_dir)?.ensure_admin_key()
}

impl KeyStore {
    /// On the first start, makes an admin key for every tenant, writes it to `admin.key`
    /// (mode 0600, `O_EXCL`), saves its hash and returns it, for the server to print once.
    /// Later starts return `None`.
    ///
    /// If `keys.json` records no admin key but `admin.key` exists (a start crashed between
    /// the two), the key in it is adopted and returned; if that file is not a key or is open
    /// to group or others, the error names it and nothing is changed.
    pub fn ensure_admin_key(&mut self) -> Result<Option<String>> {
        if self.admin_key_id().is_some() {
            return Ok(None);
        }
        let path = self.dir().join(ADMIN_KEY_FILE);
        let key = match read_admin_key_file(&path) {
            Ok(key) => key,
            Err(ReadError::Missing(_)) => write_new_admin_key(self.dir())?,
            Err(ReadError::Other(e)) => return Err(e),
        };
        self.insert_admin_key(&key)?;
        Ok(Some(key))
    }
}

/// The admin key of the server whose data directory is `data_dir`, from its `admin.key`,
/// trimmed. For the CLI, when no key is given. The error names the file if it is missing, is
/// open to group or others (mode bits 0077), or holds no key.
///
/// ```
/// # let dir = tempfile::tempdir().map_err(|e| memwire_store::Error::io("tempdir", e))?;
/// # let made = memwire_store::ensure_admin_key(dir.path())?;
/// let key = memwire_store::read_admin_key(dir.path())?;
/// # assert_eq!(Some(key), made);
/// # Ok::<(), memwire_store::Error>(())
/// ```
pub fn read_admin_key(data_dir: impl AsRef<Path>) -> Result<String> {
    read_admin_key_file(&data_dir.as_ref().join(ADMIN_KEY_FILE)).map_err(|e| match e {
        ReadError::Missing(e) | ReadError::Other(e) => e,
    })
}

/// Why `admin.key` could not be read: missing (which `ensure_admin_key` acts on), or another
/// reason.
enum ReadError {
    Missing(Error),
    Other(Error),
}

/// Reads and checks the key in `path`.
fn read_admin_key_file(path: &Path) -> Result<String, ReadError> {
    let name = path.display();
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ReadError::Missing(Error::io(
                format!(
                    "no admin key at {name} (the server writes it on its first start; or pass \
                     --key or MEMWIRE_KEY)"
                ),
                e,
            )));
        }
        Err(e) => return Err(ReadError::Other(Error::io(format!("open {name}"), e))),
    };
    let meta = file
        .metadata()
        .map_err(|e| ReadError::Other(Error::io(format!("stat {name}"), e)))?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(ReadError::Other(Error::io(
            format!(
                "refusing {name}: its mode {mode:04o} lets group or others use it \
                 (`chmod 600 {name}`, and consider the key exposed)"
            ),
            io::Error::from(io::ErrorKind::PermissionDenied),
        )));
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(MAX_ADMIN_KEY_FILE_LEN)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::Other(Error::io(format!("read {name}"), e)))?;
    let key = std::str::from_utf8(&bytes).map(str::trim).unwrap_or("");
    if !key::is_well_formed(key) {
        return Err(ReadError::Other(Error::Corrupt {
            path: path.to_path_buf(),
            offset: 0,
            what: "it holds no memwire API key (`mw_` and 43 base64url characters); remove it \
                   to let the server make a new one"
                .to_owned(),
        }));
    }
    Ok(key.to_owned())
}

/// Makes a key and writes it to `dir/admin.key`: created with `O_EXCL` and mode 0600,
/// fsynced, and the directory fsynced.
fn write_new_admin_key(dir: &Path) -> Result<String> {
    let path = dir.join(ADMIN_KEY_FILE);
    let key = key::generate()?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|()| file.write_all(format!("{key}\n").as_bytes()))
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    sync_dir(dir)?;
    Ok(key)
}
