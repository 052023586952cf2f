//! The store's client commands: `get`, `set`, `del`, `watch`, `key` and `tenant`, each a [`Local`]
//! client of a running `memwire serve`, or a [`Remote`](memwire::store::Remote) one with
//! `--remote ws[s]://HOST:PORT` (see [`client`]).
//!
//! | module | command |
//! | --- | --- |
//! | [`get`] | `memwire get T/S/V [--hex] [--json]` |
//! | [`set`] | `memwire set T/S/V VALUE\|- [--hex] [--expect-version N] [--json]` |
//! | [`del`] | `memwire del T/S/V [--expect-version N] [--json]` |
//! | [`watch`] | `memwire watch T[/S[/V]] [--from-version N] [--hex] [--json]` |
//! | [`key`] | `memwire key create / list / revoke` (admin keys) |
//! | [`tenant`] | `memwire tenant create T [--quota-bytes N] [--max-variables N]`, `tenant delete T` (admin keys) |
//!
//! Every one takes [`Server`]'s options: which server (`--name`), and the key: `--key`, else
//! `MEMWIRE_KEY`, else the server's `admin.key` (in `--data-dir`, else
//! [`default_data_dir`](memwire::store::default_data_dir)), which only its own user can read.

mod client;
mod del;
mod get;
mod key;
mod set;
mod tenant;
mod watch;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use memwire::store::protocol::VarPath;
use memwire::store::store::Written;
use memwire::store::{Error, Local};

use client::Target;

pub(crate) use del::Args as DelArgs;
pub(crate) use get::Args as GetArgs;
pub(crate) use key::Command as KeyCommand;
pub(crate) use set::Args as SetArgs;
pub(crate) use tenant::Command as TenantCommand;
pub(crate) use watch::Args as WatchArgs;

pub(crate) use del::run as del;
pub(crate) use get::run as get;
pub(crate) use key::run as key;
pub(crate) use set::run as set;
pub(crate) use tenant::run as tenant;
pub(crate) use watch::run as watch;

/// The environment variable that holds the key when `--key` is not given.
pub(crate) const KEY_ENV: &str = "MEMWIRE_KEY";

/// Which store server to talk to, and with what key.
#[derive(Debug, clap::Args)]
pub(crate) struct Server {
    /// The server's name, as `memwire serve --name` was given.
    #[arg(long, value_name = "NAME", default_value = "default")]
    name: String,
    /// The API key (else `MEMWIRE_KEY`, else the server's `admin.key`).
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
    /// The server's data directory, where its `admin.key` is (else `MEMWIRE_DATA_DIR`, else
    /// `$XDG_STATE_HOME/memwire`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl Server {
    /// Connects to the server with the key. A server that is not there is one clear line, not
    /// a socket error (nor a complaint about a missing `admin.key`).
    pub(crate) fn connect(&self) -> Result<Local> {
        let socket = memwire::store::local::socket_path(&self.name)?;
        let absent = || {
            anyhow::anyhow!(
                "no store server named {:?} (is `memwire serve` running?)",
                self.name
            )
        };
        if !socket.exists() {
            return Err(absent());
        }
        let key = self.key()?;
        match Local::connect_at(&socket, &key) {
            Ok(local) => Ok(local),
            Err(Error::Io { source, .. })
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                Err(absent())
            }
            Err(err) => Err(err.into()),
        }
    }

    /// `--key`, else `MEMWIRE_KEY`, else the admin key file.
    fn key(&self) -> Result<String> {
        if let Some(key) = &self.key {
            return Ok(key.clone());
        }
        match std::env::var(KEY_ENV) {
            Ok(key) if !key.trim().is_empty() => return Ok(key.trim().to_owned()),
            Ok(_) | Err(std::env::VarError::NotPresent) => {}
            Err(std::env::VarError::NotUnicode(_)) => bail!("{KEY_ENV} is not UTF-8"),
        }
        let dir = self
            .data_dir
            .clone()
            .unwrap_or_else(memwire::store::default_data_dir);
        memwire::store::read_admin_key(&dir).with_context(|| {
            format!(
                "no --key and no {KEY_ENV}, so reading the admin key of {}",
                dir.display()
            )
        })
    }
}

/// What `set` and `del` print: `T/S/V = version N`, or `{"path", "version", "timestamp_ms"}`.
fn print_written(path: &VarPath, written: Written, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let object = serde_json::json!({
            "path": path.to_string(),
            "version": written.version,
            "timestamp_ms": written.timestamp_ms,
        });
        serde_json::to_writer(&mut out, &object)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{path} = version {}", written.version)?;
    }
    out.flush().context("writing to stdout")
}

/// Bytes as lowercase hex, two digits each.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Hex (upper or lower case, an even number of digits, no prefix) as bytes.
pub(crate) fn from_hex(text: &str) -> Result<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        bail!("hex value has an odd number of digits ({})", text.len());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .filter(|pair| pair.bytes().all(|c| c.is_ascii_hexdigit()))
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .with_context(|| format!("hex value is not hex at offset {i}"))
        })
        .collect()
}

/// A value as `value` / `hex` JSON fields: the text when it is UTF-8 (else `null`), and the hex
/// when asked for or when the value is not text.
pub(crate) fn value_fields(
    object: &mut serde_json::Map<String, serde_json::Value>,
    value: &[u8],
    hex: bool,
) {
    let text = std::str::from_utf8(value).ok();
    object.insert(
        "value".to_owned(),
        text.map_or(serde_json::Value::Null, |t| t.into()),
    );
    if hex || text.is_none() {
        object.insert("hex".to_owned(), to_hex(value).into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() -> Result<()> {
        let bytes = [0x00, 0x7f, 0xff, 0x10];
        assert_eq!(to_hex(&bytes), "007fff10");
        assert_eq!(from_hex("007FFF10")?, bytes);
        assert!(from_hex("abc").is_err());
        assert!(from_hex("zz").is_err());
        assert!(from_hex("+1").is_err());
        Ok(())
    }
}
