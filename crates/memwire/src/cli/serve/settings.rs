//! What `memwire serve` runs with: its flags, the TOML file `--config` names, and the
//! [`Settings`] they resolve to (a flag over the file over the default), each checked before
//! anything starts.
//!
//! The store's limits are bounded so that a typo fails at start-up with the flag or key named,
//! instead of a server that refuses every write or runs out of address space later:
//!
//! | flag / key | default | allowed |
//! | --- | --- | --- |
//! | `--max-value-bytes` / `max_value_bytes` | 1 MiB | 1 B ..= 64 MiB ([`StoreConfig::MAX_VALUE_BYTES_LIMIT`]) |
//! | `--default-quota-bytes` / `default_quota_bytes` | 64 MiB | the largest value ..= 1 TiB |
//! | `--default-max-variables` / `default_max_variables` | 100 000 | 1 ..= 16 777 216 ([`MAX_VARIABLES`]) |

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use memwire_store::segment::MAX_VARIABLES;
use memwire_store::store::Quota;
use memwire_store::{FsyncPolicy, StoreConfig};
use serde::Deserialize;

use crate::cli::units::{parse_size, show_size};

/// The largest default memory quota: a tenant's segment takes its quota in address space in
/// the server and in every client that maps it (untouched pages cost no memory), and 128 TiB of
/// user address space holds 128 such tenants.
const MAX_QUOTA_BYTES: u64 = 1 << 40;

/// Run the store server.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A TOML file with any of: data_dir, name, fsync, listen, remote, tls_cert, tls_key,
    /// tls_self_signed, threads, max_value_bytes, default_quota_bytes, default_max_variables.
    /// Flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the data lives (default: `$MEMWIRE_DATA_DIR`, else `$XDG_STATE_HOME/memwire`,
    /// else `~/.local/state/memwire`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The server's name: its local socket is `<runtime dir>/store/<name>.sock`.
    #[arg(long)]
    name: Option<String>,
    /// When the log is fsynced: `always`, `every-1s` (default) or `never`.
    #[arg(long, value_parser = parse_fsync)]
    fsync: Option<FsyncPolicy>,
    /// The WebSocket address (default 127.0.0.1:7117).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Serve local clients only: no WebSocket listener.
    #[arg(long)]
    no_remote: bool,
    /// The TLS certificate chain (PEM) for `wss://`.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve `wss://` with a certificate made now for localhost and 127.0.0.1; its CA is
    /// written to `<data dir>/ca.pem` for clients to trust. For tests and trials.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    tls_self_signed: bool,
    /// Threads serving sockets and WebSocket clients (default 1: local writes have threads
    /// of their own, and one thread answers a lone remote client fastest; more help only
    /// many remote clients on several CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Option<u16>,
    /// The largest value a write may carry (default 1MiB, at most 64MiB); a larger one is
    /// refused with `bad request`. Tenants keep the largest value they were created with.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_value_bytes: Option<u64>,
    /// The memory quota of a tenant created without one, as by an admin key's first `set`
    /// (default 64MiB; at least the largest value, at most 1TiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    default_quota_bytes: Option<u64>,
    /// The variable quota of a tenant created without one (default 100000, at most
    /// 16777216).
    #[arg(long, value_name = "N")]
    default_max_variables: Option<u32>,
}

/// What `--config` may set; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    name: Option<String>,
    fsync: Option<String>,
    listen: Option<SocketAddr>,
    remote: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_self_signed: Option<bool>,
    threads: Option<u16>,
    #[serde(default, deserialize_with = "size")]
    max_value_bytes: Option<u64>,
    #[serde(default, deserialize_with = "size")]
    default_quota_bytes: Option<u64>,
    default_max_variables: Option<u32>,
}

/// The settings in force: flags over the file over the defaults.
#[derive(Debug)]
pub(super) struct Settings {
    pub(super) data_dir: PathBuf,
    pub(super) name: String,
    pub(super) fsync: FsyncPolicy,
    pub(super) listen: Option<SocketAddr>,
    pub(super) tls: Tls,
    pub(super) threads: usize,
    /// The store's largest value, checked against [`StoreConfig::MAX_VALUE_BYTES_LIMIT`].
    pub(super) max_value_bytes: usize,
    /// The quota of tenants created without one, checked against the bounds above.
    pub(super) default_quota: Quota,
}

#[derive(Debug)]
pub(super) enum Tls {
    None,
    Files { cert: PathBuf, key: PathBuf },
    SelfSigned,
}

fn parse_fsync(s: &str) -> Result<FsyncPolicy, String> {
    match s {
        "always" => Ok(FsyncPolicy::Always),
        "every-1s" | "everysec" => Ok(FsyncPolicy::EverySecond),
        "never" => Ok(FsyncPolicy::Never),
        other => Err(format!(
            "{other:?} is not an fsync policy: always, every-1s or never"
        )),
    }
}

/// A size in the config file: a number of bytes (`1048576`) or a string with a unit
/// (`"1MiB"`), as the flags take.
fn size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct Size;
    impl serde::de::Visitor<'_> for Size {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size: a number of bytes or a string like \"64KiB\"")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
            parse_size(v).map_err(E::custom)
        }
    }
    d.deserialize_any(Size).map(Some)
}

/// A setting and where it came from, for errors: the flag, or the key in the file.
struct Given<T> {
    value: T,
    from: String,
}

/// The flag's value if given, else the file's, each with where it came from.
fn given<T>(flag: Option<T>, file: Option<T>, name: &str, path: Option<&Path>) -> Option<Given<T>> {
    match (flag, file, path) {
        (Some(value), _, _) => Some(Given {
            value,
            from: format!("--{}", name.replace('_', "-")),
        }),
        (None, Some(value), Some(path)) => Some(Given {
            value,
            from: format!("{name} in {}", path.display()),
        }),
        _ => None,
    }
}

impl Settings {
    pub(super) fn resolve(args: &Args) -> Result<Self> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("parsing {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let fsync = match (args.fsync, &file.fsync) {
            (Some(f), _) => f,
            (None, Some(s)) => parse_fsync(s).map_err(anyhow::Error::msg)?,
            (None, None) => FsyncPolicy::EverySecond,
        };
        let remote = !args.no_remote && file.remote.unwrap_or(true);
        let tls = if args.tls_self_signed {
            Tls::SelfSigned
        } else if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
            Tls::Files {
                cert: cert.clone(),
                key: key.clone(),
            }
        } else if file.tls_self_signed.unwrap_or(false) {
            Tls::SelfSigned
        } else {
            match (file.tls_cert, file.tls_key) {
                (Some(cert), Some(key)) => Tls::Files { cert, key },
                (None, None) => Tls::None,
                _ => bail!("the config file gives only one of tls_cert and tls_key"),
            }
        };
        let path = args.config.as_deref();
        let (max_value_bytes, default_quota) = limits(
            given(
                args.max_value_bytes,
                file.max_value_bytes,
                "max_value_bytes",
                path,
            ),
            given(
                args.default_quota_bytes,
                file.default_quota_bytes,
                "default_quota_bytes",
                path,
            ),
            given(
                args.default_max_variables,
                file.default_max_variables,
                "default_max_variables",
                path,
            ),
        )?;
        Ok(Self {
            data_dir: args
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(memwire_store::default_data_dir),
            name: args
                .name
                .clone()
                .or(file.name)
                .unwrap_or_else(|| "default".to_owned()),
            fsync,
            listen: remote.then(|| {
                args.listen
                    .or(file.listen)
                    .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7117)))
            }),
            tls,
            threads: match args.threads.or(file.threads) {
                Some(0) => bail!("threads must be at least 1"),
                Some(n) => usize::from(n),
                None => 1,
            },
            max_value_bytes,
            default_quota,
        })
    }
}

/// The largest value and the default quota, each given or the store's default, checked
/// against the bounds in the module docs; an error names the flag or key at fault.
fn limits(
    max_value: Option<Given<u64>>,
    quota_bytes: Option<Given<u64>>,
    max_variables: Option<Given<u32>>,
) -> Result<(usize, Quota)> {
    let defaults = StoreConfig::new("");
    let limit = StoreConfig::MAX_VALUE_BYTES_LIMIT as u64;
    let max_value_bytes = match max_value {
        None => defaults.max_value_bytes as u64,
        Some(Given { value: 0, from }) => bail!("{from}: a value must be allowed at least 1 byte"),
        Some(Given { value, from }) if value > limit => bail!(
            "{from}: {} is over the {} the clients carry",
            show_size(value),
            show_size(limit)
        ),
        Some(given) => given.value,
    };
    let bytes = match quota_bytes {
        None => defaults.default_quota.bytes,
        Some(Given { value: 0, from }) => bail!("{from}: a quota of 0 bytes holds nothing"),
        Some(Given { value, from }) if value > MAX_QUOTA_BYTES => bail!(
            "{from}: {} is over the {} a tenant's segment may take",
            show_size(value),
            show_size(MAX_QUOTA_BYTES)
        ),
        Some(given) => given.value,
    };
    if bytes < max_value_bytes {
        bail!(
            "the default quota ({}) is smaller than the largest value ({}): no such value fits \
             a new tenant; raise --default-quota-bytes or lower --max-value-bytes",
            show_size(bytes),
            show_size(max_value_bytes)
        );
    }
    let variables = match max_variables {
        None => defaults.default_quota.variables,
        Some(Given { value: 0, from }) => bail!("{from}: a quota of 0 variables holds nothing"),
        Some(Given { value, from }) if value > MAX_VARIABLES => {
            bail!("{from}: {value} is over the {MAX_VARIABLES} variables a tenant may hold")
        }
        Some(given) => given.value,
    };
    // Cannot truncate: at most MAX_VALUE_BYTES_LIMIT, a usize, checked above.
    let max_value_bytes = usize::try_from(max_value_bytes).unwrap_or(usize::MAX);
    Ok((max_value_bytes, Quota { bytes, variables }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag<T>(value: T, name: &str) -> Option<Given<T>> {
        given(Some(value), None, name, None)
    }

    fn file(text: &str) -> Result<FileConfig> {
        Ok(toml::from_str(text)?)
    }

    #[test]
    fn defaults_are_the_stores() -> Result<()> {
        let defaults = StoreConfig::new("");
        assert_eq!(
            limits(None, None, None)?,
            (defaults.max_value_bytes, defaults.default_quota)
        );
        Ok(())
    }

    #[test]
    fn flags_override_the_file_and_sizes_take_units() -> Result<()> {
        let config = file(
            "max_value_bytes = \"64KiB\"\ndefault_quota_bytes = 1048576\n\
             default_max_variables = 10\n",
        )?;
        assert_eq!(config.max_value_bytes, Some(64 << 10));
        assert_eq!(config.default_quota_bytes, Some(1 << 20));
        let path = Path::new("serve.toml");
        let (max_value, quota) = limits(
            given(
                Some(1024),
                config.max_value_bytes,
                "max_value_bytes",
                Some(path),
            ),
            given(
                None,
                config.default_quota_bytes,
                "default_quota_bytes",
                Some(path),
            ),
            given(
                Some(3),
                config.default_max_variables,
                "default_max_variables",
                Some(path),
            ),
        )?;
        assert_eq!(max_value, 1024);
        assert_eq!(
            quota,
            Quota {
                bytes: 1 << 20,
                variables: 3
            }
        );
        Ok(())
    }

    #[test]
    fn bad_sizes_in_the_file_name_the_key() {
        for text in [
            "max_value_bytes = -1",
            "max_value_bytes = \"lots\"",
            "max_value_bytes = true",
            "default_max_variables = -3",
            "default_max_variables = 5000000000",
            "max_value_byte = 1",
        ] {
            let err = match file(text) {
                Ok(config) => panic!("{text} was accepted: {config:?}"),
                Err(err) => format!("{err:#}"),
            };
            let key = text.split(' ').next().unwrap_or_default();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn zero_and_absurd_limits_are_refused_by_name() {
        let from_file = |name: &str, value: u64| {
            given(None, Some(value), name, Some(Path::new("/etc/serve.toml")))
        };
        let cases: Vec<(Result<(usize, Quota)>, &str)> = vec![
            (
                limits(flag(0, "max_value_bytes"), None, None),
                "--max-value-bytes: a value must be allowed at least 1 byte",
            ),
            (
                limits(from_file("max_value_bytes", 1 << 30), None, None),
                "max_value_bytes in /etc/serve.toml: 1.0 GiB is over the 64.0 MiB",
            ),
            (
                limits(None, flag(0, "default_quota_bytes"), None),
                "--default-quota-bytes: a quota of 0 bytes holds nothing",
            ),
            (
                limits(None, flag(1 << 50, "default_quota_bytes"), None),
                "--default-quota-bytes: 1.0 PiB is over the 1.0 TiB",
            ),
            (
                limits(None, None, flag(0, "default_max_variables")),
                "--default-max-variables: a quota of 0 variables holds nothing",
            ),
            (
                limits(None, None, flag(u32::MAX, "default_max_variables")),
                "--default-max-variables: 4294967295 is over the 16777216 variables",
            ),
            (
                limits(None, flag(4096, "default_quota_bytes"), None),
                "the default quota (4.0 KiB) is smaller than the largest value (1.0 MiB)",
            ),
        ];
        for (result, want) in cases {
            match result {
                Ok(ok) => panic!("accepted {ok:?}, wanted {want:?}"),
                Err(err) => assert!(err.to_string().starts_with(want), "{err} / {want}"),
            }
        }
    }
}
