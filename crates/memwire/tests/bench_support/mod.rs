//! What the `memwire bench` tests share: a run of one bench with its JSON and runtime
//! directory in a temporary directory, the checks every row of the JSON must pass, and the
//! refusals of bad arguments.
//!
//! No timing is asserted here either: a row's figures are checked for order and sanity only.

#![allow(dead_code, unreachable_pub)]

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

/// A bench that ran and succeeded.
pub struct Ran {
    /// Its JSON and its `MEMWIRE_RUNTIME_DIR` (`run`), kept to look at what it left behind.
    pub dir: TempDir,
    pub stdout: String,
    /// The rows of its JSON.
    pub rows: Vec<Value>,
}

/// Runs `memwire bench ARGS --json FILE` with `env` set, asserts that it succeeded, and
/// returns its stdout and rows. Hosts' sockets and peers live in the temporary directory's
/// `run`, not in the user's runtime directory.
pub fn bench(args: &[&str], env: &[(&str, &OsStr)]) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_memwire"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .arg(&json)
        .envs(env.iter().copied())
        .env("MEMWIRE_RUNTIME_DIR", dir.path().join("run"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "memwire bench {args:?} failed: {stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let rows = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    Ran { dir, stdout, rows }
}

/// Each row's string fields `a` and `b`, in order.
pub fn pairs<'r>(rows: &'r [Value], a: &str, b: &str) -> Vec<(&'r str, &'r str)> {
    rows.iter()
        .map(|r| (r[a].as_str().unwrap(), r[b].as_str().unwrap()))
        .collect()
}

/// What every row has: percentiles above 0 and in order, and the machine it ran on.
pub fn assert_row(r: &Value) {
    let (p50, p99, p999) = (
        r["rtt_p50_ns"].as_u64().unwrap(),
        r["rtt_p99_ns"].as_u64().unwrap(),
        r["rtt_p999_ns"].as_u64().unwrap(),
    );
    assert!(0 < p50 && p50 <= p99 && p99 <= p999, "percentiles: {r}");
    assert!(r["machine"]["cpu"].is_string(), "{r}");
}

/// Asserts that the number `field` of `r` is there, finite and above 0.
pub fn assert_positive(r: &Value, field: &str) {
    let v = r[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} missing: {r}"));
    assert!(v.is_finite() && v > 0.0, "{field} = {v}: {r}");
}

/// Asserts that no host socket was left behind in the runtime directory `run`.
pub fn assert_no_host_socket(run: &Path) {
    let transport = run.join("transport");
    assert!(
        !transport.exists() || std::fs::read_dir(&transport).unwrap().next().is_none(),
        "a host socket was left behind"
    );
}

/// `memwire ARGS --help`: what it prints.
pub fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_memwire"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts that `memwire ARGS` fails, saying `says` on stderr.
pub fn assert_refused(args: &[&str], says: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_memwire"))
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "memwire {args:?} succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(says), "memwire {args:?}: {stderr}");
}
