//! The store's client commands (`get`, `set`, `del`, `watch`, `key`) through the real
//! `memwire` binary, against a store server that is this test binary re-run in the `store`
//! role (a `Store` in a temp data dir behind a `LocalServer`), each trial with its own server.

#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;

mod serve_support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use memwire_store::local::socket_path;
use memwire_store::{LocalServer, Store, StoreConfig};
use serve_support::Lines;
use support::{Guard, command, spawn, trial};

/// The store role's data directory.
const DATA_ENV: &str = "MEMWIRE_TEST_DATA";
/// The store role's server name.
const NAME_ENV: &str = "MEMWIRE_TEST_STORE_NAME";

fn main() {
    support::private_runtime_dir("memwire-cli-store");
    support::main(
        roles,
        vec![
            trial("set_get_del_round_trip", set_get_del_round_trip),
            trial("watch_prints_later_changes_in_order", watch_in_order),
            trial("keys_are_limited_and_revocable", keys_limited_and_revocable),
            trial("no_server_is_one_clear_line", no_server),
        ],
    )
}

fn roles(role: &str) -> Result<()> {
    match role {
        "store" => serve(),
        other => bail!("unknown role {other:?}"),
    }
}

/// The store role: serves until killed; prints `ready` once it listens.
fn serve() -> Result<()> {
    let data = PathBuf::from(std::env::var(DATA_ENV)?);
    let name = std::env::var(NAME_ENV)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (store, _) = Store::open(StoreConfig::new(&data))?;
        let server = LocalServer::bind(Arc::new(store), &socket_path(&name)?)?;
        println!("ready");
        std::io::stdout().flush()?;
        server.run(std::future::pending()).await?;
        Ok(())
    })
}

/// A running store server and its data directory.
struct Server {
    name: String,
    data: tempfile::TempDir,
    guard: Option<Guard>,
}

impl Server {
    fn start(name: &str) -> Result<Self> {
        let data = tempfile::tempdir()?;
        let mut cmd = command("store")?;
        cmd.env(DATA_ENV, data.path())
            .env(NAME_ENV, name)
            .stdout(Stdio::piped());
        let mut guard = spawn(cmd, None)?;
        let stdout = guard.child().stdout.take().context("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        ensure!(line == "ready\n", "the store role said {line:?}");
        Ok(Self {
            name: name.to_owned(),
            data,
            guard: Some(guard),
        })
    }

    fn dir(&self) -> &Path {
        self.data.path()
    }

    /// `memwire ARGS --name NAME`, finding `admin.key` through `MEMWIRE_DATA_DIR` unless the
    /// caller gives a key; `stdin` fed to it.
    fn run(&self, args: &[&str], stdin: &[u8]) -> Result<Output> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_memwire"))
            .args(args)
            .args(["--name", &self.name])
            .env("MEMWIRE_DATA_DIR", self.dir())
            .env_remove("MEMWIRE_KEY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut input = child.stdin.take().context("no stdin")?;
        input.write_all(stdin)?;
        drop(input);
        Ok(child.wait_with_output()?)
    }

    fn ok(&self, args: &[&str]) -> Result<String> {
        self.ok_with_stdin(args, b"")
    }

    fn ok_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Result<String> {
        let out = self.run(args, stdin)?;
        ensure!(
            out.status.success(),
            "memwire {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Runs a command that must fail with status 1 and one line on stderr; returns the line.
    fn fails(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args, b"")?;
        failure(args, &out)
    }
}

fn failure(args: &[&str], out: &Output) -> Result<String> {
    ensure!(
        out.status.code() == Some(1),
        "memwire {args:?}: {:?}, stdout {:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8(out.stderr.clone())?;
    ensure!(
        err.lines().count() == 1 && err.starts_with("error: "),
        "memwire {args:?}: not one error line: {err:?}"
    );
    Ok(err)
}

fn set_get_del_round_trip() -> Result<()> {
    let server = Server::start("round-trip")?;
    ensure!(server.ok(&["set", "a/s/v", "hello"])? == "a/s/v = version 1\n");
    ensure!(server.ok(&["get", "a/s/v"])? == "hello\n");
    let json: serde_json::Value = serde_json::from_str(&server.ok(&["get", "a/s/v", "--json"])?)?;
    ensure!(
        json["path"] == "a/s/v"
            && json["value"] == "hello"
            && json["version"] == 1
            && json["timestamp_ms"].as_u64().is_some_and(|t| t > 0)
            && json.get("hex").is_none(),
        "{json}"
    );

    // From stdin, byte for byte; not UTF-8, so `get` wants --hex.
    let stored = server.ok_with_stdin(&["set", "a/s/bin", "-"], &[0xff, 0x00, 0x41])?;
    ensure!(stored == "a/s/bin = version 2\n", "{stored}");
    let e = server.fails(&["get", "a/s/bin"])?;
    ensure!(e.contains("not UTF-8") && e.contains("--hex"), "{e}");
    ensure!(server.ok(&["get", "a/s/bin", "--hex"])? == "ff0041\n");
    let json: serde_json::Value = serde_json::from_str(&server.ok(&["get", "a/s/bin", "--json"])?)?;
    ensure!(json["value"].is_null() && json["hex"] == "ff0041", "{json}");
    server.ok(&["set", "a/s/hex", "00ff", "--hex"])?;
    ensure!(server.ok(&["get", "a/s/hex", "--hex"])? == "00ff\n");
    let text = server.ok_with_stdin(&["set", "a/s/text", "-"], b"line one\nline two")?;
    ensure!(text == "a/s/text = version 4\n", "{text}");
    ensure!(server.ok(&["get", "a/s/text"])? == "line one\nline two\n");

    // Compare-and-set.
    let e = server.fails(&["set", "a/s/v", "x", "--expect-version", "7"])?;
    ensure!(
        e.starts_with("error: conflict: expected version 7, found 1"),
        "{e}"
    );
    let e = server.fails(&["set", "a/s/v", "x", "--expect-version", "0"])?;
    ensure!(e.contains("conflict:"), "{e}");
    let json: serde_json::Value = serde_json::from_str(&server.ok(&[
        "set",
        "a/s/v",
        "bye",
        "--expect-version",
        "1",
        "--json",
    ])?)?;
    ensure!(json["path"] == "a/s/v" && json["version"] == 5, "{json}");
    ensure!(
        server.ok(&["set", "a/s/new", "1", "--expect-version", "0"])? == "a/s/new = version 6\n"
    );
    ensure!(server.ok(&["get", "a/s/v"])? == "bye\n");

    // Delete.
    let e = server.fails(&["del", "a/s/v", "--expect-version", "1"])?;
    ensure!(e.contains("conflict:"), "{e}");
    ensure!(server.ok(&["del", "a/s/v", "--expect-version", "5"])? == "a/s/v = version 7\n");
    let e = server.fails(&["get", "a/s/v"])?;
    ensure!(e == "error: not found: a/s/v\n", "{e}");
    let e = server.fails(&["get", "a/nosuch/v"])?;
    ensure!(e.starts_with("error: not found: "), "{e}");
    let e = server.fails(&["get", "nosuch/s/v"])?;
    ensure!(e.starts_with("error: not found: "), "{e}");
    let e = server.fails(&["get", "not/a/path/at-all"])?;
    ensure!(e.contains("invalid path"), "{e}");
    Ok(())
}

fn watch_in_order() -> Result<()> {
    let mut server = Server::start("watch")?;
    server.ok(&["set", "t/svc/x", "0"])?; // version 1: before the watch's start
    server.ok(&["set", "t/other/y", "0"])?; // version 2: another service

    let watch = |extra: &[&str]| -> Result<Guard> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_memwire"));
        cmd.args(["watch", "t/svc", "--from-version", "2", "--name", "watch"])
            .args(extra)
            .env("MEMWIRE_DATA_DIR", server.dir())
            .env_remove("MEMWIRE_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        spawn(cmd, None)
    };
    let mut text = watch(&[])?;
    let mut json = watch(&["--json"])?;
    let text_lines = Lines::of(&mut text)?;
    let json_lines = Lines::of(&mut json)?;

    server.ok(&["set", "t/svc/x", "1"])?;
    server.ok(&["set", "t/other/y", "1"])?; // outside the scope
    server.ok(&["set", "t/svc/z", "two words"])?;
    server.ok(&["del", "t/svc/x"])?;
    server.ok(&["set", "t/svc/x", "3"])?;

    let expected = [
        "set t/svc/x = 1 (version 3)",
        "set t/svc/z = two words (version 5)",
        "delete t/svc/x (version 6)",
        "set t/svc/x = 3 (version 7)",
    ];
    for want in expected {
        let got = text_lines.next()?;
        ensure!(got == want, "watch printed {got:?}, expected {want:?}");
    }
    let events: Vec<serde_json::Value> = (0..4)
        .map(|_| Ok(serde_json::from_str(&json_lines.next()?)?))
        .collect::<Result<_>>()?;
    let kinds: Vec<_> = events.iter().map(|e| e["event"].clone()).collect();
    ensure!(kinds == ["set", "set", "delete", "set"], "{events:?}");
    let versions: Vec<_> = events.iter().map(|e| e["version"].clone()).collect();
    ensure!(versions == [3, 5, 6, 7], "{events:?}");
    ensure!(
        events[1]["path"] == "t/svc/z" && events[1]["value"] == "two words",
        "{events:?}"
    );

    // The server goes away: the watch says so in one line and exits 1.
    server.guard.take().context("no server")?.kill()?;
    for watcher in [&mut text, &mut json] {
        let status = watcher.wait_exit()?;
        ensure!(status.code() == Some(1), "watch ended with {status:?}");
        let mut err = String::new();
        let mut stderr = watcher.child().stderr.take().context("no stderr")?;
        std::io::Read::read_to_string(&mut stderr, &mut err)?;
        ensure!(
            err.lines().count() == 1 && err.contains("the store server is gone"),
            "{err:?}"
        );
    }
    Ok(())
}

fn keys_limited_and_revocable() -> Result<()> {
    let server = Server::start("keys")?;
    server.ok(&["set", "a/s/v", "in a"])?;
    server.ok(&["set", "b/s/v", "in b"])?;

    let made = server.ok(&[
        "key", "create", "--tenant", "a", "--role", "read", "--label", "reader",
    ])?;
    let key = made.lines().last().context("no key printed")?.to_owned();
    ensure!(!key.is_empty() && !key.contains(' '), "{made}");

    // The key through --key, then through MEMWIRE_KEY.
    ensure!(server.ok(&["get", "a/s/v", "--key", &key])? == "in a\n");
    let out = Command::new(env!("CARGO_BIN_EXE_memwire"))
        .args(["get", "a/s/v", "--name", "keys"])
        .env("MEMWIRE_KEY", &key)
        .env("MEMWIRE_DATA_DIR", "/nonexistent")
        .output()?;
    ensure!(out.status.success() && out.stdout == b"in a\n", "{out:?}");
    let e = server.fails(&["get", "b/s/v", "--key", &key])?;
    ensure!(e.starts_with("error: permission denied: "), "{e}");
    let e = server.fails(&["set", "a/s/v", "no", "--key", &key])?;
    ensure!(e.starts_with("error: permission denied: "), "{e}");
    let e = server.fails(&["key", "list", "--key", &key])?;
    ensure!(e.starts_with("error: permission denied: "), "{e}");

    let keys: Vec<serde_json::Value> =
        serde_json::from_str(&server.ok(&["key", "list", "--json"])?)?;
    let Some(mine) = keys.iter().find(|k| k["label"] == "reader") else {
        bail!("key list misses the new key: {keys:?}")
    };
    ensure!(
        mine["tenant"] == "a" && mine["role"] == "read" && mine["revoked"] == false,
        "{mine}"
    );
    let id = mine["id"].as_str().context("no id")?.to_owned();
    let table = server.ok(&["key", "list"])?;
    ensure!(
        table.contains("REVOKED")
            && table
                .lines()
                .any(|l| l.contains(&id) && l.contains("reader")),
        "{table}"
    );

    let made: serde_json::Value = serde_json::from_str(&server.ok(&[
        "key",
        "create",
        "--all-tenants",
        "--role",
        "admin",
        "--json",
    ])?)?;
    let admin = made["key"].as_str().context("no key")?;
    ensure!(made["id"].is_string(), "{made}");
    ensure!(server.ok(&["get", "b/s/v", "--key", admin])? == "in b\n");

    ensure!(server.ok(&["key", "revoke", &id])? == format!("revoked key {id}\n"));
    let e = server.fails(&["get", "a/s/v", "--key", &key])?;
    ensure!(e.starts_with("error: unauthenticated"), "{e}");
    let keys: Vec<serde_json::Value> =
        serde_json::from_str(&server.ok(&["key", "list", "--json"])?)?;
    ensure!(
        keys.iter()
            .any(|k| k["id"] == id.as_str() && k["revoked"] == true),
        "{keys:?}"
    );
    Ok(())
}

fn no_server() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for args in [
        &["get", "a/s/v", "--name", "nobody"][..],
        &["set", "a/s/v", "1", "--name", "nobody"],
        &["watch", "a", "--name", "nobody"],
        &["key", "list", "--name", "nobody"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_memwire"))
            .args(args)
            .env("MEMWIRE_DATA_DIR", dir.path())
            .env_remove("MEMWIRE_KEY")
            .output()?;
        let e = failure(args, &out)?;
        ensure!(
            e == "error: no store server named \"nobody\" (is `memwire serve` running?)\n",
            "{e}"
        );
    }
    Ok(())
}
