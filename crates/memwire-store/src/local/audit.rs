//! The audit log: `<data_dir>/audit.log`, one JSON line per authentication, success or
//! failure, with the peer's pid and uid as the kernel reported them (SO_PEERCRED). It never
//! holds a key, only a key's id.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use memwire_shm::PeerCredentials;
use serde::Serialize;

use crate::error::{Error, Result};

/// The audit log's file name in the data directory.
pub const AUDIT_FILE: &str = "audit.log";

/// An append-only file of JSON lines; each line goes out in one `write(2)` (`O_APPEND`), so
/// lines of concurrent writers never interleave.
#[derive(Debug)]
pub(crate) struct Audit {
    path: PathBuf,
    file: Mutex<File>,
}

#[derive(Serialize)]
struct Line<'a> {
    ts_ms: u64,
    event: &'a str,
    pid: u32,
    uid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

impl Audit {
    /// Opens (creates, mode 0600) `<data_dir>/audit.log` for appending.
    pub(crate) fn open(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(AUDIT_FILE);
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(format!("open audit log {}", path.display()), e))?;
        Ok(Self {
            path,
            file: Mutex::new(file),
        })
    }

    /// Records an authentication: `key_id` on success, `reason` on failure. A failed write is
    /// reported in the server's log and does not fail the request.
    pub(crate) fn auth(&self, peer: PeerCredentials, key_id: Option<&str>, reason: Option<&str>) {
        let line = Line {
            ts_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            event: if key_id.is_some() {
                "auth_ok"
            } else {
                "auth_failed"
            },
            pid: peer.pid,
            uid: peer.uid,
            key_id,
            reason,
        };
        let mut bytes = match serde_json::to_vec(&line) {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::error!(%err, "cannot encode an audit line");
                return;
            }
        };
        bytes.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(err) = file.write_all(&bytes) {
            tracing::error!(path = %self.path.display(), %err, "cannot write the audit log");
        }
    }
}
