//! `memwire ls` lists every store server of the runtime directory, not only `default`: two
//! real `memwire serve` children with their own names and data directories, each server's
//! tenants under its name, one row for a server no key opens, its link host named, and a
//! killed server's socket skipped.

#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use support::{Guard, trial};

fn main() {
    support::private_runtime_dir("memwire-ls-stores");
    support::main(
        |role| bail!("no roles: {role}"),
        vec![trial(
            "ls_lists_the_tenants_of_every_store_server",
            ls_every_server,
        )],
    )
}

/// A running `memwire serve --name NAME` and its data directory.
struct Served {
    name: &'static str,
    guard: Guard,
    data: tempfile::TempDir,
    admin_key: String,
}

impl Served {
    fn start(name: &'static str) -> Result<Self> {
        let data = tempfile::tempdir()?;
        let mut child = Command::new(env!("CARGO_BIN_EXE_memwire"))
            .args(["serve", "--no-remote", "--name", name, "--data-dir"])
            .arg(data.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let guard = Guard::from_child(child);
        let mut lines = BufReader::new(stdout).lines();
        let mut admin_key = None;
        while let Some(line) = lines.next().transpose()? {
            if line == "ready" {
                break;
            }
            if line.starts_with("mw_") {
                admin_key = Some(line);
            }
        }
        // Keep reading (and dropping) the rest so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Self {
            name,
            guard,
            admin_key: admin_key.with_context(|| format!("{name}: no admin key printed"))?,
            data,
        })
    }

    fn dir(&self) -> &Path {
        self.data.path()
    }

    /// `memwire set PATH VALUE` on this server, with its own admin key.
    fn set(&self, path: &str, value: &str) -> Result<()> {
        let out = Command::new(env!("CARGO_BIN_EXE_memwire"))
            .args(["set", path, value, "--name", self.name, "--data-dir"])
            .arg(self.dir())
            .env_remove("MEMWIRE_KEY")
            .output()?;
        ensure!(
            out.status.success(),
            "set {path} on {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

/// `memwire ls ARGS` with `data` as the default data directory and `key` (if any) in
/// `MEMWIRE_KEY`.
fn ls(args: &[&str], data: &Path, key: Option<&str>) -> Result<Output> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_memwire"));
    cmd.arg("ls")
        .args(args)
        .env("MEMWIRE_DATA_DIR", data)
        .env_remove("MEMWIRE_KEY");
    if let Some(key) = key {
        cmd.env("MEMWIRE_KEY", key);
    }
    let out = cmd.output()?;
    ensure!(
        out.status.success(),
        "ls {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out)
}

fn ls_json(args: &[&str], data: &Path, key: Option<&str>) -> Result<Vec<Value>> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    Ok(serde_json::from_slice(&ls(&all, data, key)?.stdout)?)
}

fn of_kind<'a>(rows: &'a [Value], kind: &str) -> Vec<&'a Value> {
    rows.iter().filter(|r| r["kind"] == kind).collect()
}

/// `(server, tenant)` of every tenant row, sorted.
fn tenants(rows: &[Value]) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = of_kind(rows, "tenant")
        .iter()
        .map(|t| {
            (
                t["server"].as_str().unwrap_or_default().to_owned(),
                t["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}

fn server<'a>(rows: &'a [Value], name: &str) -> Result<&'a Value> {
    of_kind(rows, "store_server")
        .into_iter()
        .find(|s| s["name"] == name)
        .with_context(|| format!("no store_server row {name:?} in {rows:?}"))
}

fn pair(server: &str, tenant: &str) -> (String, String) {
    (server.to_owned(), tenant.to_owned())
}

fn ls_every_server() -> Result<()> {
    let alpha = Served::start("alpha")?;
    let beta = Served::start("beta")?;
    alpha.set("acme/app/greeting", "hello")?;
    alpha.set("acme/billing/rate", "0.19")?;
    alpha.set("zeta/app/x", "1")?;
    beta.set("globex/app/v", "2")?;
    let both = vec![
        pair("alpha", "acme"),
        pair("alpha", "zeta"),
        pair("beta", "globex"),
    ];

    // alpha's key from the default data directory, beta's from --key.
    let rows = ls_json(&["--key", &beta.admin_key], alpha.dir(), None)?;
    ensure!(tenants(&rows) == both, "{rows:?}");
    // Each tenant row counts its services and variables.
    let acme = of_kind(&rows, "tenant")
        .into_iter()
        .find(|t| t["name"] == "acme")
        .with_context(|| format!("no tenant acme in {rows:?}"))?;
    ensure!(acme["services"] == 2 && acme["variables"] == 2, "{acme}");
    for (served, count) in [(&alpha, 2), (&beta, 1)] {
        let row = server(&rows, served.name)?;
        ensure!(
            row["pid"] == served.guard.id() && row["tenants"] == count && row["problem"].is_null(),
            "{row}"
        );
        // Its link host says whose it is.
        let host = format!("store-{}-0", served.guard.id());
        let links = of_kind(&rows, "transport_host")
            .into_iter()
            .find(|h| h["name"] == host.as_str())
            .with_context(|| format!("no host {host} in {rows:?}"))?;
        ensure!(
            links["what"] == format!("store links of {}", served.name).as_str(),
            "{links}"
        );
    }

    // beta's key from MEMWIRE_KEY, alpha's from its admin.key: the same.
    let rows = ls_json(&[], alpha.dir(), Some(&beta.admin_key))?;
    ensure!(tenants(&rows) == both, "{rows:?}");

    // No key beta accepts: beta is one row that says so, alpha is listed as before.
    let rows = ls_json(&[], alpha.dir(), None)?;
    ensure!(
        tenants(&rows) == [pair("alpha", "acme"), pair("alpha", "zeta")],
        "{rows:?}"
    );
    let refused = server(&rows, "beta")?;
    ensure!(
        refused["tenants"].is_null()
            && refused["problem"]
                .as_str()
                .is_some_and(|p| p.starts_with("no key works")),
        "{refused}"
    );
    // No key at all (a data directory with no admin.key): each server says so in its row.
    let keyless = tempfile::tempdir()?;
    let rows = ls_json(&[], keyless.path(), None)?;
    ensure!(tenants(&rows).is_empty(), "{rows:?}");
    for name in ["alpha", "beta"] {
        let row = server(&rows, name)?;
        ensure!(
            row["problem"]
                .as_str()
                .is_some_and(|p| p.starts_with("no key: ") && p.contains("no admin.key in")),
            "{row}"
        );
    }
    let text = String::from_utf8(ls(&[], alpha.dir(), None)?.stdout)?;
    let has_row = |cells: &[&str]| {
        text.lines().any(|l| {
            l.split_whitespace()
                .take(cells.len())
                .eq(cells.iter().copied())
        })
    };
    let alpha_pid = alpha.guard.id().to_string();
    ensure!(has_row(&["alpha", &alpha_pid, "2"]), "{text}");
    ensure!(
        text.lines()
            .any(|l| l.trim_start().starts_with("beta") && l.contains("no key works")),
        "{text}"
    );
    ensure!(
        has_row(&["SERVER", "TENANT"])
            && has_row(&["alpha", "acme"])
            && has_row(&["alpha", "zeta"]),
        "{text}"
    );

    // A killed server leaves its socket behind; nobody answers there, so ls skips it.
    let beta_pid = beta.guard.id();
    let beta_socket: PathBuf = socket_of(&rows, "beta")?;
    beta.guard.kill()?;
    ensure!(beta_socket.exists(), "SIGKILL left no socket to skip");
    let rows = ls_json(&["--key", &beta.admin_key], alpha.dir(), None)?;
    ensure!(
        of_kind(&rows, "store_server").len() == 1 && server(&rows, "alpha").is_ok(),
        "{rows:?}"
    );
    ensure!(
        tenants(&rows) == [pair("alpha", "acme"), pair("alpha", "zeta")],
        "{rows:?}"
    );
    // Its links' host is stale now, and named by the pid it had.
    let host = format!("store-{beta_pid}-0");
    ensure!(
        of_kind(&rows, "transport_host")
            .iter()
            .any(|h| h["name"] == host.as_str()
                && h["state"] == "stale"
                && h["what"] == format!("store links of pid {beta_pid}").as_str()),
        "{rows:?}"
    );
    // gc removes the dead server's socket (and says so), never a live one's.
    let alpha_socket = socket_of(&rows, "alpha")?;
    let out = Command::new(env!("CARGO_BIN_EXE_memwire"))
        .args(["gc", "--json"])
        .output()?;
    ensure!(
        out.status.success(),
        "gc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout)?;
    let removed = report["removed"].as_array().context("removed is a list")?;
    ensure!(
        removed
            .iter()
            .any(|r| r["kind"] == "store_server" && r["name"] == "beta"),
        "{report}"
    );
    ensure!(!beta_socket.exists() && alpha_socket.exists(), "{report}");
    drop(alpha);
    Ok(())
}

fn socket_of(rows: &[Value], name: &str) -> Result<PathBuf> {
    Ok(PathBuf::from(
        server(rows, name)?["socket"]
            .as_str()
            .context("socket is a string")?,
    ))
}
