//! A store in process, in a directory of the test's, opened with its admin's session; and the
//! paths and keys the store's own tests make.

#![allow(dead_code, unreachable_pub)]

use std::path::Path;

use anyhow::Result;
use memwire_store::protocol::VarPath;
use memwire_store::store::{Session, Store, StoreConfig};
use memwire_store::{FsyncPolicy, Role};

/// The store in `dir` (made on the first call, opened again after), no fsync, default
/// snapshots, and the session of its `admin.key`.
pub fn open(dir: &Path) -> Result<(Store, Session)> {
    open_with(dir, StoreConfig::new(dir).snapshot_every)
}

/// As [`open`], with a snapshot every `snapshot_every` records.
pub fn open_with(dir: &Path, snapshot_every: u64) -> Result<(Store, Session)> {
    let mut config = StoreConfig::new(dir);
    config.fsync = FsyncPolicy::Never;
    config.snapshot_every = snapshot_every;
    let (store, _) = Store::open(config)?;
    let admin = store.authenticate(&memwire_store::read_admin_key(dir)?)?;
    Ok((store, admin))
}

/// A variable path the test knows to be valid.
pub fn p(path: &str) -> VarPath {
    path.parse().expect("a valid variable path")
}

/// The session of a new key of `tenant` with `role`.
pub fn key(store: &Store, admin: &Session, tenant: &str, role: Role) -> Result<Session> {
    let (key, _) = store.create_key(admin, Some(tenant), role, None, None)?;
    Ok(store.authenticate(&key)?)
}
