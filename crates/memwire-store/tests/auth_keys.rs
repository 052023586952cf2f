//! `KeyStore` and the admin key file against a real data directory: persistence across
//! reopening, revocation, file modes, `O_EXCL`, and damaged files.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use memwire_store::auth::{ADMIN_KEY_FILE, KEYS_FILE};
use memwire_store::{Error, KeyStore, Role, ServicePattern, ensure_admin_key, read_admin_key};
use proptest::prelude::*;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o7777
}

fn unauthenticated(store: &KeyStore, key: &str) -> String {
    match store.authenticate(key) {
        Err(Error::Unauthenticated(msg)) => msg,
        other => panic!("{key:?}: expected Unauthenticated, got {other:?}"),
    }
}

#[test]
fn keys_persist_across_reopening_and_only_their_hashes_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = KeyStore::open(dir.path()).unwrap();
    assert!(store.list().is_empty());
    let (reader, reader_rec) = store
        .create(Some("finance"), Role::Read, None, Some("dashboards"))
        .unwrap();
    let pattern = ServicePattern::new("billing-*").unwrap();
    let (writer, writer_rec) = store
        .create(Some("finance"), Role::Write, Some(pattern.clone()), None)
        .unwrap();
    let (admin, admin_rec) = store.create(None, Role::Admin, None, None).unwrap();

    assert_eq!(reader_rec.id, reader[3..11]);
    assert_eq!(reader_rec.tenant.as_deref(), Some("finance"));
    assert_eq!(reader_rec.label.as_deref(), Some("dashboards"));
    assert_eq!(writer_rec.services, Some(pattern));
    assert_eq!(admin_rec.tenant, None);
    assert!(reader_rec.created_at_unix_ms > 1_600_000_000_000);
    assert_eq!(
        store.list(),
        [reader_rec.clone(), writer_rec.clone(), admin_rec.clone()]
    );

    let path = dir.path().join(KEYS_FILE);
    assert_eq!(mode(&path), 0o600);
    assert!(!dir.path().join("keys.json.tmp").exists());
    let text = fs::read_to_string(&path).unwrap();
    for key in [&reader, &writer, &admin] {
        assert!(!text.contains(&key[3..]), "keys.json holds a key");
    }

    let mut store = KeyStore::open(dir.path()).unwrap();
    assert_eq!(store.list().len(), 3);
    assert_eq!(store.authenticate(&reader).unwrap(), &reader_rec);
    assert_eq!(store.authenticate(&writer).unwrap(), &writer_rec);
    assert_eq!(store.authenticate(&admin).unwrap(), &admin_rec);

    let revoked = store.revoke(&writer_rec.id).unwrap();
    assert!(revoked.revoked);
    assert_eq!(revoked.id, writer_rec.id);
    assert!(matches!(
        store.authenticate(&writer),
        Err(Error::Unauthenticated(_))
    ));
    // Revoking again changes nothing.
    assert_eq!(store.revoke(&writer_rec.id).unwrap(), revoked);

    let store = KeyStore::open(dir.path()).unwrap();
    let listed = store.list();
    assert_eq!(listed.iter().filter(|r| r.revoked).count(), 1);
    assert!(listed[1].revoked);
    assert!(matches!(
        store.authenticate(&writer),
        Err(Error::Unauthenticated(_))
    ));
    assert_eq!(store.authenticate(&reader).unwrap(), &reader_rec);
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn revoked_and_unknown_keys_get_the_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = KeyStore::open(dir.path()).unwrap();
    let (key, record) = store.create(Some("t"), Role::Write, None, None).unwrap();
    let (other, _) = store.create(Some("t"), Role::Write, None, None).unwrap();
    // A well-formed key that was never issued: the real one with its first character changed.
    let first = if key.as_bytes()[3] == b'A' { 'B' } else { 'A' };
    let unknown = format!("mw_{first}{}", &key[4..]);
    let unknown_msg = unauthenticated(&store, &unknown);
    store.revoke(&record.id).unwrap();
    assert_eq!(unauthenticated(&store, &key), unknown_msg);
    assert!(store.authenticate(&other).is_ok());
}

#[test]
fn malformed_keys_are_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = KeyStore::open(dir.path()).unwrap();
    let (key, _) = store.create(None, Role::Admin, None, None).unwrap();
    let with_space = format!(" {key}");
    let upper_prefix = format!("MW_{}", &key[3..]);
    let truncated = &key[..40];
    for bad in [
        "",
        "mw_",
        "Bearer",
        truncated,
        &with_space,
        &upper_prefix,
        "mw_💥",
    ] {
        let msg = unauthenticated(&store, bad);
        assert!(msg.contains("malformed"), "{msg}");
    }
}

#[test]
fn unknown_ids_and_bad_arguments_are_refused_without_touching_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = KeyStore::open(dir.path()).unwrap();
    store.create(Some("t"), Role::Read, None, None).unwrap();
    let before = fs::read(dir.path().join(KEYS_FILE)).unwrap();
    assert!(matches!(store.revoke("NoSuchId"), Err(Error::NotFound(m)) if m.contains("NoSuchId")));
    assert!(matches!(
        store.create(Some("a/b"), Role::Read, None, None),
        Err(Error::BadRequest(m)) if m.contains("tenant")
    ));
    assert!(matches!(
        store.create(Some("t"), Role::Read, None, Some("line\nbreak")),
        Err(Error::BadRequest(m)) if m.contains("label")
    ));
    assert_eq!(fs::read(dir.path().join(KEYS_FILE)).unwrap(), before);
    assert_eq!(store.list().len(), 1);
}

#[test]
fn the_admin_key_is_made_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = ensure_admin_key(dir.path()).unwrap().unwrap();
    let path = dir.path().join(ADMIN_KEY_FILE);
    assert_eq!(fs::read_to_string(&path).unwrap(), format!("{key}\n"));
    assert_eq!(mode(&path), 0o600);
    assert_eq!(read_admin_key(dir.path()).unwrap(), key);

    let store = KeyStore::open(dir.path()).unwrap();
    let record = store.authenticate(&key).unwrap();
    assert_eq!((record.tenant.as_deref(), record.role), (None, Role::Admin));
    assert_eq!(record.label.as_deref(), Some(ADMIN_KEY_FILE));

    // Later starts make no other key and leave the file alone.
    let inode = fs::metadata(&path).unwrap().ino();
    assert_eq!(ensure_admin_key(dir.path()).unwrap(), None);
    assert_eq!(fs::read_to_string(&path).unwrap(), format!("{key}\n"));
    assert_eq!(fs::metadata(&path).unwrap().ino(), inode);
    assert_eq!(KeyStore::open(dir.path()).unwrap().list().len(), 1);

    // Nor after the file is deleted: keys.json remembers that the admin key was made.
    fs::remove_file(&path).unwrap();
    assert_eq!(ensure_admin_key(dir.path()).unwrap(), None);
    assert!(!path.exists());
}

#[test]
fn an_existing_admin_key_file_is_never_overwritten() {
    // Garbage: refused, named, left as it is.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(ADMIN_KEY_FILE);
    fs::write(&path, "hunter2\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let err = ensure_admin_key(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { path: p, .. } if *p == path),
        "{err}"
    );
    assert!(err.to_string().contains("admin.key"), "{err}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "hunter2\n");
    assert!(KeyStore::open(dir.path()).unwrap().list().is_empty());

    // A key written by a start that crashed before saving its hash: adopted as it is.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(ADMIN_KEY_FILE);
    let other = tempfile::tempdir().unwrap();
    let mut scratch = KeyStore::open(other.path()).unwrap();
    let (key, _) = scratch.create(None, Role::Admin, None, None).unwrap();
    fs::write(&path, format!("{key}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(ensure_admin_key(dir.path()).unwrap(), Some(key.clone()));
    assert_eq!(fs::read_to_string(&path).unwrap(), format!("{key}\n"));
    let store = KeyStore::open(dir.path()).unwrap();
    assert_eq!(store.authenticate(&key).unwrap().role, Role::Admin);
    assert_eq!(ensure_admin_key(dir.path()).unwrap(), None);
}

#[test]
fn read_admin_key_names_the_file_when_it_cannot_be_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(ADMIN_KEY_FILE);
    let shown = path.display().to_string();

    let err = read_admin_key(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains(&shown) && err.contains("no admin key"),
        "{err}"
    );

    let key = ensure_admin_key(dir.path()).unwrap().unwrap();
    fs::write(&path, format!("  {key}\n\n")).unwrap();
    assert_eq!(read_admin_key(dir.path()).unwrap(), key, "trimmed");

    for open_mode in [0o640, 0o604, 0o644] {
        fs::set_permissions(&path, fs::Permissions::from_mode(open_mode)).unwrap();
        let err = read_admin_key(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&shown) && err.contains(&format!("{open_mode:04o}")),
            "{err}"
        );
    }

    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&path, b"\xff\xfe not a key").unwrap();
    let err = read_admin_key(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { path: p, .. } if *p == path),
        "{err}"
    );
}

/// A valid keys.json with one key, to damage.
fn valid_keys_json() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = KeyStore::open(dir.path()).unwrap();
    store
        .create(
            Some("finance"),
            Role::Read,
            Some(ServicePattern::new("b-*").unwrap()),
            None,
        )
        .unwrap();
    let text = fs::read_to_string(dir.path().join(KEYS_FILE)).unwrap();
    (dir, text)
}

fn open_err(dir: &Path, contents: &[u8]) -> Error {
    let path = dir.join(KEYS_FILE);
    fs::write(&path, contents).unwrap();
    match KeyStore::open(dir) {
        Err(e) => e,
        Ok(store) => panic!(
            "{:?} accepted: {:?}",
            String::from_utf8_lossy(contents),
            store.list()
        ),
    }
}

#[test]
fn a_damaged_keys_json_is_a_clear_error() {
    let (dir, valid) = valid_keys_json();
    let hash_at = valid.find("\"hash\": \"").unwrap() + 9;
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "EOF"),
        ("garbage".into(), "expected"),
        ("{".into(), "EOF"),
        ("[]".into(), "expected struct"),
        (
            valid.replace("\"version\": 1", "\"version\": 2"),
            "version 2",
        ),
        (
            valid.replace("\"version\": 1", "\"version\": -1"),
            "invalid value",
        ),
        (valid.replace("\"read\"", "\"root\""), "unknown variant"),
        (valid.replace("\"b-*\"", "\"b/*\""), "service pattern"),
        (valid.replace("\"finance\"", "\"fi/nance\""), "tenant name"),
        (valid.replace("\"keys\"", "\"kees\""), "unknown field"),
        (
            format!("{}zz{}", &valid[..hash_at], &valid[hash_at + 2..]),
            "64 hex digits",
        ),
        (
            format!("{}{}", &valid[..hash_at], &valid[hash_at + 2..]),
            "64 hex digits",
        ),
        (
            valid.replace("\"admin_key_id\": null", "\"admin_key_id\": \"Nobody00\""),
            "names no stored key",
        ),
        (valid[..valid.len() / 2].to_owned(), "EOF"),
    ];
    let path = dir.path().join(KEYS_FILE);
    for (contents, what) in cases {
        let err = open_err(dir.path(), contents.as_bytes());
        let Error::Corrupt {
            path: p, offset, ..
        } = &err
        else {
            panic!("{contents:?}: expected Corrupt, got {err:?}");
        };
        assert_eq!(p, &path);
        assert!(*offset <= contents.len() as u64, "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("keys.json") && msg.contains(what),
            "{what}: {msg}"
        );
    }

    // Two keys with one id.
    let (other, _) = valid_keys_json();
    let list = KeyStore::open(other.path()).unwrap().list();
    let two = serde_json::json!({ "version": 1, "keys": [list[0], list[0]] });
    let err = open_err(dir.path(), two.to_string().as_bytes());
    assert!(err.to_string().contains("appears twice"), "{err}");

    // Binary garbage.
    let err = open_err(dir.path(), b"\x00\xff\xfe\x80{\"version\"");
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
}

#[test]
fn an_unreadable_keys_json_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be: reading it fails with EISDIR.
    fs::create_dir(dir.path().join(KEYS_FILE)).unwrap();
    let err = KeyStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("keys.json"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any damage to a valid file: a clear error or a loadable store, never a panic.
    #[test]
    fn damaged_files_never_panic(
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let (dir, valid) = valid_keys_json();
        let mut bytes = valid.into_bytes();
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        fs::write(dir.path().join(KEYS_FILE), &bytes).unwrap();
        if let Err(e) = KeyStore::open(dir.path()) {
            prop_assert!(matches!(e, Error::Corrupt { .. }), "{}", e);
        }
    }

    #[test]
    fn presented_strings_never_panic_and_never_authenticate(s in ".{0,64}", tail in "[A-Za-z0-9_-]{43}") {
        let dir = tempfile::tempdir().unwrap();
        let mut store = KeyStore::open(dir.path()).unwrap();
        store.create(None, Role::Admin, None, None).unwrap();
        let guessed = format!("mw_{tail}");
        for presented in [s.as_str(), guessed.as_str()] {
            prop_assert!(matches!(store.authenticate(presented), Err(Error::Unauthenticated(_))));
        }
    }
}
