//! Names, namespaces and the places memwire keeps things.
//!
//! - A **name** is 1..=200 bytes of `[A-Za-z0-9._-]`, and not `.` or `..`.
//! - A **namespace** follows the same rules but holds no `.`: the first `.` after the uid ends
//!   it, so one file name means one namespace and one name. It comes from `MEMWIRE_NAMESPACE`
//!   (default `default`), so that tests and separate deployments never see each other's objects.
//! - A named shared-memory object lives at `/dev/shm/memwire.<uid>.<namespace>.<name>`.
//! - The **runtime directory** is `$MEMWIRE_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/memwire`, else
//!   `/tmp/memwire-<uid>`; it is created mode 0700 and refused if another user owns it.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Longest name, in bytes. Keeps `memwire.<uid>.<namespace>.<name>` under `NAME_MAX` (255).
pub const MAX_NAME_LEN: usize = 200;

/// Longest namespace, in bytes: 255 (`NAME_MAX`) minus the longest name, `memwire.`, a 10-digit
/// uid and the two separating dots.
pub const MAX_NAMESPACE_LEN: usize = 255 - MAX_NAME_LEN - "memwire.".len() - 10 - 2;

/// Directory that holds named shared-memory objects.
pub const SHM_DIR: &str = "/dev/shm";

/// Environment variable that selects the namespace.
pub const NAMESPACE_ENV: &str = "MEMWIRE_NAMESPACE";

/// Environment variable that overrides the runtime directory.
pub const RUNTIME_DIR_ENV: &str = "MEMWIRE_RUNTIME_DIR";

/// Checks `s` against the naming rules; `Err` carries the rule it breaks.
fn check(s: &[u8], max: usize) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("must not be empty");
    }
    if s.len() > max {
        return Err("too long");
    }
    if s == b"." || s == b".." {
        return Err("must not be `.` or `..`");
    }
    if let Some(_bad) = s
        .iter()
        .find(|&&b| !(b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-'))
    {
        return Err("only ASCII letters, digits, `.`, `_` and `-` are allowed");
    }
    Ok(())
}

/// A validated resource name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    /// Validates `name`.
    ///
    /// ```
    /// # use memwire_shm::Name;
    /// assert!(Name::new("frames-0").is_ok());
    /// assert!(Name::new("a/b").is_err());
    /// ```
    pub fn new(name: impl AsRef<[u8]>) -> Result<Self> {
        let bytes = name.as_ref();
        match check(bytes, MAX_NAME_LEN) {
            // The rules admit ASCII only, so the bytes are valid UTF-8.
            Ok(()) => Ok(Self(String::from_utf8_lossy(bytes).into_owned())),
            Err(reason) => Err(Error::InvalidName {
                name: String::from_utf8_lossy(bytes).into_owned(),
                reason,
            }),
        }
    }

    /// The name as a string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A validated namespace.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(String);

impl Namespace {
    /// The namespace used when `MEMWIRE_NAMESPACE` is unset.
    pub const DEFAULT: &'static str = "default";

    /// Validates `namespace`: the rules of a [`Name`], without `.` (which separates the
    /// namespace from the name in a file name, so `a.b` + `c` and `a` + `b.c` would be one file).
    ///
    /// ```
    /// # use memwire_shm::Namespace;
    /// assert!(Namespace::new("tests-1").is_ok());
    /// assert!(Namespace::new("a.b").is_err());
    /// ```
    pub fn new(namespace: impl AsRef<[u8]>) -> Result<Self> {
        let bytes = namespace.as_ref();
        let checked = check(bytes, MAX_NAMESPACE_LEN).and_then(|()| {
            if bytes.contains(&b'.') {
                Err("must not contain `.` (it ends the namespace in file names)")
            } else {
                Ok(())
            }
        });
        match checked {
            Ok(()) => Ok(Self(String::from_utf8_lossy(bytes).into_owned())),
            Err(reason) => Err(Error::InvalidNamespace {
                namespace: String::from_utf8_lossy(bytes).into_owned(),
                reason,
            }),
        }
    }

    /// The namespace from `MEMWIRE_NAMESPACE`, or `default`.
    pub fn from_env() -> Result<Self> {
        match std::env::var_os(NAMESPACE_ENV) {
            Some(ns) if !ns.is_empty() => Self::new(ns.as_encoded_bytes()),
            _ => Ok(Self(Self::DEFAULT.to_owned())),
        }
    }

    /// The namespace as a string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The file-name prefix of this namespace's objects: `memwire.<uid>.<namespace>.`.
    #[must_use]
    pub fn prefix(&self) -> String {
        format!("{}{}.", user_prefix(), self.0)
    }

    /// The path of the named object `name` in this namespace.
    #[must_use]
    pub fn shm_path(&self, name: &Name) -> PathBuf {
        Path::new(SHM_DIR).join(format!("{}{}", self.prefix(), name))
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// `memwire.<uid>.`: the prefix of every object of this user, in any namespace.
#[must_use]
pub fn user_prefix() -> String {
    format!("memwire.{}.", rustix::process::getuid().as_raw())
}

/// Splits a `/dev/shm` file name of this user into `(namespace, name)`, or `None` when the file
/// is not one of this user's memwire objects.
#[must_use]
pub fn parse_shm_file_name(file_name: &OsStr) -> Option<(Namespace, Name)> {
    let rest = file_name.to_str()?.strip_prefix(&user_prefix())?;
    let (namespace, name) = rest.split_once('.')?;
    Some((Namespace::new(namespace).ok()?, Name::new(name).ok()?))
}

/// The runtime directory: created if missing (mode 0700), refused if another user owns it or
/// others can write to it.
pub fn runtime_dir() -> Result<PathBuf> {
    let uid = rustix::process::getuid().as_raw();
    let dir = if let Some(dir) = std::env::var_os(RUNTIME_DIR_ENV).filter(|d| !d.is_empty()) {
        PathBuf::from(dir)
    } else if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        PathBuf::from(xdg).join("memwire")
    } else {
        PathBuf::from(format!("/tmp/memwire-{uid}"))
    };
    prepare_runtime_dir(dir, uid)
}

/// Creates `dir` (mode 0700) if missing and checks that `uid` owns it and nobody else can
/// write to it.
fn prepare_runtime_dir(dir: PathBuf, uid: u32) -> Result<PathBuf> {
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
    {
        Ok(()) => {}
        Err(e) => return Err(Error::path("mkdir", dir, e)),
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| Error::path("stat", &dir, e))?;
    if !meta.is_dir() {
        return Err(Error::RuntimeDir {
            path: dir,
            reason: "not a directory",
        });
    }
    if meta.uid() != uid {
        return Err(Error::RuntimeDir {
            path: dir,
            reason: "owned by another user",
        });
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(Error::RuntimeDir {
            path: dir,
            reason: "writable by group or others",
        });
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_and_rejects() {
        for ok in ["a", "frames-0", "A.b_c-9", &"x".repeat(MAX_NAME_LEN)] {
            assert!(Name::new(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "/",
            "a/b",
            ".",
            "..",
            "é",
            "a b",
            "a\0b",
            &"x".repeat(MAX_NAME_LEN + 1),
        ] {
            assert!(
                matches!(Name::new(bad), Err(Error::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn shm_path_round_trips() {
        let ns = Namespace::new("tests").unwrap();
        let name = Name::new("x.y").unwrap();
        let path = ns.shm_path(&name);
        let (ns2, name2) = parse_shm_file_name(path.file_name().unwrap()).unwrap();
        assert_eq!((ns2, name2), (ns, name));
        assert!(path.file_name().unwrap().len() <= 255);
    }

    #[test]
    fn longest_path_fits_name_max() {
        let ns = Namespace::new("n".repeat(MAX_NAMESPACE_LEN)).unwrap();
        let name = Name::new("x".repeat(MAX_NAME_LEN)).unwrap();
        // uid 4294967295 is the longest prefix; ours is at most that long.
        assert!(ns.shm_path(&name).file_name().unwrap().len() <= 255);
    }

    #[test]
    fn runtime_dir_is_created_private_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let uid = rustix::process::getuid().as_raw();
        let dir = prepare_runtime_dir(tmp.path().join("a/memwire"), uid).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // Idempotent.
        assert_eq!(prepare_runtime_dir(dir.clone(), uid).unwrap(), dir);
        // Somebody else's directory is refused.
        assert!(matches!(
            prepare_runtime_dir(dir.clone(), uid.wrapping_add(1)),
            Err(Error::RuntimeDir {
                reason: "owned by another user",
                ..
            })
        ));
        // A directory others can write to is refused.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            prepare_runtime_dir(dir.clone(), uid),
            Err(Error::RuntimeDir {
                reason: "writable by group or others",
                ..
            })
        ));
        // A file is not a directory.
        let file = tmp.path().join("file");
        std::fs::write(&file, b"").unwrap();
        assert!(prepare_runtime_dir(file, uid).is_err());
    }

    #[test]
    fn a_path_names_one_namespace_and_name() {
        // Both pairs would be `memwire.<uid>.a.b.c` if a namespace could hold a dot: `gc` of
        // namespace `a` would then take namespace `a.b`'s resources for its own.
        let paths: Vec<_> = [("a.b", "c"), ("a", "b.c")]
            .into_iter()
            .filter_map(|(ns, name)| {
                Some(Namespace::new(ns).ok()?.shm_path(&Name::new(name).ok()?))
            })
            .collect();
        assert!(paths.len() < 2 || paths[0] != paths[1], "{paths:?}");
    }

    proptest! {
        #[test]
        fn validation_never_panics_and_is_exact(bytes in proptest::collection::vec(any::<u8>(), 0..260)) {
            let allowed = |b: &u8| b.is_ascii_alphanumeric() || b"._-".contains(b);
            let expect_ok = !bytes.is_empty()
                && bytes.len() <= MAX_NAME_LEN
                && bytes != b"." && bytes != b".."
                && bytes.iter().all(allowed);
            let got = Name::new(&bytes);
            prop_assert_eq!(got.is_ok(), expect_ok);
            if let Ok(name) = got {
                prop_assert_eq!(name.as_str().as_bytes(), &bytes[..]);
            }
        }

        #[test]
        fn every_path_parses_back_to_its_namespace_and_name(
            ns in "[A-Za-z0-9._-]{1,12}",
            name in "[A-Za-z0-9._-]{1,12}",
        ) {
            if let (Ok(ns), Ok(name)) = (Namespace::new(&ns), Name::new(&name)) {
                let path = ns.shm_path(&name);
                let parsed = parse_shm_file_name(path.file_name().unwrap_or_default());
                prop_assert_eq!(parsed, Some((ns, name)));
            }
        }
    }
}
