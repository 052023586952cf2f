//! `memwire serve` as a real process: it prints where it listens and the admin key once,
//! refuses a second server on its data directory, keeps every acknowledged write across a
//! SIGKILL, and on SIGTERM lets writes in flight finish and snapshots; its limits from flags
//! and its config file; `get`/`set`/`del`/`watch`/`key --remote` and the clients' typed
//! helpers through it.

#![allow(clippy::unwrap_used)]

#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;

use anyhow::{Context, Result, bail, ensure};
use memwire::store::protocol::{Format, VarPath};
use memwire::store::{Error, Local, Remote, RemoteOptions};
use support::{DEADLINE, Guard, trial};

fn main() {
    support::private_runtime_dir("memwire-cli-serve");
    support::main(
        |role| bail!("no roles: {role}"),
        vec![
            trial(
                "serve_keeps_acknowledged_writes_across_kill_9",
                serve_across_kill_9,
            ),
            trial("cli_commands_over_remote", cli_over_remote),
            trial("key_commands_over_remote", keys_over_remote),
            trial(
                "serve_limits_from_flags_over_its_config_file",
                limits_from_flags_and_file,
            ),
            trial(
                "serve_carries_values_up_to_a_raised_limit",
                raised_value_limit,
            ),
            trial("serve_refuses_bad_limits_by_name", bad_limits_refused),
            trial("typed_values_through_a_real_server", typed_values),
            trial(
                "serve_on_sigterm_finishes_writes_in_flight_and_snapshots",
                sigterm_snapshots,
            ),
            trial(
                "ls_counts_websocket_clients_with_local_ones",
                ls_counts_clients,
            ),
        ],
    )
}

/// A running `memwire serve` and what it printed.
struct Served {
    guard: Guard,
    url: String,
    admin_key: Option<String>,
    banner: Vec<String>,
    /// The lines it prints after `ready` (it closes when the server exits).
    after: mpsc::Receiver<String>,
}

fn serve(data: &Path) -> Result<Served> {
    serve_with(data, &[])
}

fn serve_with(data: &Path, extra: &[&str]) -> Result<Served> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_memwire"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let guard = Guard::from_child(child);
    let mut lines = BufReader::new(stdout).lines();
    let mut banner = Vec::new();
    let mut url = None;
    let mut admin_key = None;
    // The banner ends with `ready`.
    while let Some(line) = lines.next().transpose()? {
        if line == "ready" {
            break;
        }
        if let Some(u) = line.trim().strip_prefix("remote  ") {
            url = Some(u.to_owned());
        }
        if line.starts_with("mw_") {
            admin_key = Some(line.clone());
        }
        banner.push(line);
    }
    // Keep reading the rest so the server never blocks on a full pipe.
    let (tx, after) = mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            // Nobody listens any more: drop the line, keep draining.
            let _ = tx.send(line);
        }
    });
    Ok(Served {
        guard,
        url: url.with_context(|| format!("no remote address in {banner:?}"))?,
        admin_key,
        banner,
        after,
    })
}

fn serve_across_kill_9() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let first = serve(&data)?;
    let key = first
        .admin_key
        .clone()
        .with_context(|| format!("no admin key on the first start: {:?}", first.banner))?;
    let on_disk = std::fs::read_to_string(data.join("admin.key"))?;
    ensure!(
        on_disk.trim() == key,
        "admin.key differs from the printed key"
    );

    // A second server on the same data directory is refused, with a reason.
    let second = Command::new(env!("CARGO_BIN_EXE_memwire"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()?;
    ensure!(!second.status.success(), "a second server started");
    let err = String::from_utf8(second.stderr)?;
    ensure!(
        err.contains("another `memwire serve` already uses"),
        "{err}"
    );

    let acked = runtime.block_on(async {
        let remote = Remote::connect(&first.url, &key, RemoteOptions::default()).await?;
        let mut acked = Vec::new();
        for i in 0..50u32 {
            let path: VarPath = format!("acme/app/v{i}").parse()?;
            let written = remote
                .set(&path, format!("value {i}").as_bytes(), None)
                .await?;
            acked.push((path, i, written.version));
        }
        anyhow::Ok(acked)
    })?;
    first.guard.kill()?;

    let again = serve(&data)?;
    ensure!(again.admin_key.is_none(), "the admin key was printed twice");
    ensure!(
        again.banner.iter().any(|l| l.contains("50 variable(s)")),
        "restart banner: {:?}",
        again.banner
    );
    runtime.block_on(async {
        let remote = Remote::connect(&again.url, &key, RemoteOptions::default()).await?;
        for (path, i, version) in &acked {
            let stored = remote.get(path).await?;
            ensure!(
                stored.value == format!("value {i}").as_bytes(),
                "{path}: wrong value"
            );
            ensure!(
                stored.version == *version,
                "{path}: version {}",
                stored.version
            );
        }
        anyhow::Ok(())
    })?;
    again.guard.kill()?;
    Ok(())
}

/// `memwire ARGS` with the key found in `data`'s `admin.key` unless ARGS give one.
fn memwire(data: &Path, args: &[&str]) -> Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_memwire"))
        .args(args)
        .env("MEMWIRE_DATA_DIR", data)
        .env_remove("MEMWIRE_KEY")
        .stdin(Stdio::null())
        .output()?)
}

fn ok(data: &Path, args: &[&str]) -> Result<String> {
    let out = memwire(data, args)?;
    ensure!(
        out.status.success(),
        "memwire {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// Runs a command that must fail with status 1 and one `error: ` line on stderr.
fn fails(data: &Path, args: &[&str]) -> Result<String> {
    let out = memwire(data, args)?;
    ensure!(
        out.status.code() == Some(1),
        "memwire {args:?}: {:?}, stdout {:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8(out.stderr)?;
    ensure!(
        err.lines().count() == 1 && err.starts_with("error: "),
        "memwire {args:?}: not one error line: {err:?}"
    );
    Ok(err)
}

/// `get`, `set`, `del` and `watch` with `--remote`, through a real `memwire serve`: the same
/// output as the local commands, and their errors (not found, conflict, permission denied,
/// unauthenticated, no server) as one line and exit status 1.
fn cli_over_remote() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let served = serve_with(&data, &["--name", "remote-cli"])?;
    let url = served.url.as_str();
    let remote = |args: &[&'static str]| {
        let mut all = args.to_vec();
        all.extend(["--remote", url]);
        all
    };

    ensure!(ok(&data, &remote(&["set", "a/s/v", "hello"]))? == "a/s/v = version 1\n");
    ensure!(ok(&data, &remote(&["get", "a/s/v"]))? == "hello\n");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&data, &remote(&["get", "a/s/v", "--json"]))?)?;
    ensure!(
        json["path"] == "a/s/v" && json["value"] == "hello" && json["version"] == 1,
        "{json}"
    );
    ensure!(ok(&data, &remote(&["get", "a/s/v", "--hex"]))? == "68656c6c6f\n");
    let e = fails(
        &data,
        &remote(&["set", "a/s/v", "x", "--expect-version", "7"]),
    )?;
    ensure!(e == "error: conflict: expected version 7, found 1\n", "{e}");
    ensure!(ok(&data, &remote(&["del", "a/s/v"]))? == "a/s/v = version 2\n");
    let e = fails(&data, &remote(&["get", "a/s/v"]))?;
    ensure!(e == "error: not found: a/s/v\n", "{e}");
    let e = fails(&data, &remote(&["get", "nobody/s/v"]))?;
    ensure!(e == "error: not found: nobody/s/v\n", "{e}");

    // A watch from version 3 on: the next write's version, so it cannot be missed.
    let mut watcher = Guard::from_child(
        Command::new(env!("CARGO_BIN_EXE_memwire"))
            .args(["watch", "a/s", "--from-version", "3", "--remote", url])
            .env("MEMWIRE_DATA_DIR", &data)
            .env_remove("MEMWIRE_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let stdout = watcher.child().stdout.take().context("no stdout")?;
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = || {
        lines
            .recv_timeout(DEADLINE)
            .context("no line from the watcher")
    };
    ensure!(ok(&data, &remote(&["set", "a/s/w", "one"]))? == "a/s/w = version 3\n");
    ensure!(ok(&data, &remote(&["set", "a/other/w", "no"]))? == "a/other/w = version 4\n");
    ensure!(ok(&data, &remote(&["set", "a/s/w", "two"]))? == "a/s/w = version 5\n");
    ensure!(ok(&data, &remote(&["del", "a/s/w"]))? == "a/s/w = version 6\n");
    for want in [
        "set a/s/w = one (version 3)",
        "set a/s/w = two (version 5)",
        "delete a/s/w (version 6)",
    ] {
        let line = next()?;
        ensure!(line == want, "watch printed {line:?}, not {want:?}");
    }
    watcher.kill()?;

    // A read key, made locally: it reads over the remote path, and may not write.
    ok(&data, &remote(&["set", "a/s/r", "readable"]))?;
    let made = ok(
        &data,
        &[
            "key",
            "create",
            "--tenant",
            "a",
            "--role",
            "read",
            "--name",
            "remote-cli",
        ],
    )?;
    let key = made.lines().last().context("no key printed")?;
    let with_key = |args: &[&'static str]| {
        let mut all = remote(args);
        all.extend(["--key", key]);
        all
    };
    ensure!(ok(&data, &with_key(&["get", "a/s/r"]))? == "readable\n");
    for args in [
        &["set", "a/s/r", "no"][..],
        &["del", "a/s/r"],
        &["get", "b/s/v"],
    ] {
        let e = fails(&data, &with_key(args))?;
        ensure!(e.starts_with("error: permission denied: "), "{args:?}: {e}");
    }
    let mut bad = remote(&["get", "a/s/r"]);
    bad.extend(["--key", "mw_not-a-key"]);
    let e = fails(&data, &bad)?;
    ensure!(e.starts_with("error: unauthenticated"), "{e}");

    // No server at the address: one line.
    let e = fails(&data, &["get", "a/s/r", "--remote", "ws://127.0.0.1:1"])?;
    ensure!(e.contains("127.0.0.1:1"), "{e}");
    served.guard.kill()?;
    Ok(())
}

/// `key create / list / revoke --remote` through a real `memwire serve`: a key made remotely
/// works within its limits, the listing is the local one byte for byte and never shows a key,
/// revoking ends the key, and a key that is not an admin is refused all three.
fn keys_over_remote() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let served = serve_with(&data, &["--name", "remote-keys"])?;
    let url = served.url.as_str();
    let remote = |args: &[&str]| -> Vec<String> {
        args.iter()
            .copied()
            .chain(["--remote", url])
            .map(str::to_owned)
            .collect()
    };
    let local = |args: &[&str]| -> Vec<String> {
        args.iter()
            .copied()
            .chain(["--name", "remote-keys"])
            .map(str::to_owned)
            .collect()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&data, &args)
    };
    let refused = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&data, &args)
    };
    run(remote(&["set", "a/s/v", "in a"]))?;
    run(remote(&["set", "b/s/v", "in b"]))?;

    let made = run(remote(&[
        "key", "create", "--tenant", "a", "--role", "read", "--label", "reader",
    ]))?;
    let mut lines = made.lines();
    let (Some(first), Some(key), None) = (lines.next(), lines.next(), lines.next()) else {
        bail!("key create printed {made:?}");
    };
    let id = &key[3..11];
    ensure!(
        key.len() == 46 && key.starts_with("mw_"),
        "not a key on the last line: {made:?}"
    );
    ensure!(
        first == format!("created key {id} (read of tenant a); it is shown once:"),
        "{first}"
    );

    // The key works within its limits, remotely and locally.
    ensure!(run(remote(&["get", "a/s/v", "--key", key]))? == "in a\n");
    ensure!(run(local(&["get", "a/s/v", "--key", key]))? == "in a\n");
    for args in [
        &["get", "b/s/v", "--key", key][..],
        &["set", "a/s/v", "no", "--key", key],
        &["key", "list", "--key", key],
        &[
            "key", "create", "--tenant", "a", "--role", "read", "--key", key,
        ],
        &["key", "revoke", id, "--key", key],
    ] {
        let e = refused(remote(args))?;
        ensure!(e.starts_with("error: permission denied: "), "{args:?}: {e}");
    }

    // The listing is the local one, byte for byte, and holds no key.
    for form in [&["key", "list", "--json"][..], &["key", "list"]] {
        let over_ws = run(remote(form))?;
        ensure!(
            run(local(form))? == over_ws,
            "{form:?} differs between local and remote"
        );
        ensure!(
            !over_ws.contains(&key[11..]),
            "{form:?} shows a key: {over_ws}"
        );
    }
    let keys: serde_json::Value = serde_json::from_str(&run(remote(&["key", "list", "--json"]))?)?;
    let listed = keys
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["id"] == id))
        .with_context(|| format!("key list misses {id}: {keys}"))?;
    ensure!(
        listed["tenant"] == "a"
            && listed["role"] == "read"
            && listed["label"] == "reader"
            && listed["revoked"] == false,
        "{listed}"
    );

    // `--json`: an admin of every tenant, which reads b.
    let made: serde_json::Value = serde_json::from_str(&run(remote(&[
        "key",
        "create",
        "--all-tenants",
        "--role",
        "admin",
        "--json",
    ]))?)?;
    let admin = made["key"].as_str().context("no key")?;
    ensure!(made["id"].is_string(), "{made}");
    ensure!(run(remote(&["get", "b/s/v", "--key", admin]))? == "in b\n");

    // Revoked remotely: refused from then on.
    ensure!(run(remote(&["key", "revoke", id]))? == format!("revoked key {id}\n"));
    let e = refused(remote(&["get", "a/s/v", "--key", key]))?;
    ensure!(e.starts_with("error: unauthenticated"), "{e}");
    let keys: serde_json::Value = serde_json::from_str(&run(remote(&["key", "list", "--json"]))?)?;
    ensure!(
        keys.as_array()
            .is_some_and(|keys| keys.iter().any(|k| k["id"] == id && k["revoked"] == true)),
        "{keys}"
    );
    let e = refused(remote(&["key", "revoke", "nonexist"]))?;
    ensure!(e.starts_with("error: not found: "), "{e}");
    served.guard.kill()?;

    // Over `wss://`, trusting the server's self-signed CA with `--ca`.
    let tls_data = dir.path().join("tls-data");
    let tls = serve_with(
        &tls_data,
        &["--name", "remote-keys-tls", "--tls-self-signed"],
    )?;
    ensure!(tls.url.starts_with("wss://"), "{}", tls.url);
    let ca = tls_data.join("ca.pem");
    let ca = ca.to_str().context("a UTF-8 temp path")?;
    let wss = |args: &[&str]| -> Vec<String> {
        args.iter()
            .copied()
            .chain(["--remote", &tls.url, "--ca", ca])
            .map(str::to_owned)
            .collect()
    };
    let in_tls = |args: Vec<String>, expect_ok: bool| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if expect_ok {
            ok(&tls_data, &args)
        } else {
            fails(&tls_data, &args)
        }
    };
    in_tls(wss(&["set", "a/s/v", "by the admin"]), true)?;
    let made = in_tls(
        wss(&["key", "create", "--tenant", "a", "--role", "write"]),
        true,
    )?;
    let key = made.lines().last().context("no key printed")?;
    ensure!(
        in_tls(wss(&["set", "a/s/v", "over tls", "--key", key]), true)? == "a/s/v = version 2\n"
    );
    let listed = in_tls(wss(&["key", "list", "--json"]), true)?;
    ensure!(
        listed.contains(&key[3..11]) && !listed.contains(&key[11..]),
        "{listed}"
    );
    // Without the CA, the server's certificate is not trusted: one error line.
    let untrusted = ["key", "list", "--remote", tls.url.as_str()].map(str::to_owned);
    let e = in_tls(untrusted.to_vec(), false)?;
    ensure!(e.contains("TLS handshake"), "{e}");
    tls.guard.kill()?;
    Ok(())
}

/// `serve`'s limits from a config file and flags, a flag over the file: the file's 64 KiB
/// largest value would not fit its own 4 KiB quota, so the server starts only because
/// `--max-value-bytes 1KiB` wins. A value over 1 KiB is `bad request` through the CLI (local
/// and remote) and both Rust clients; tenants an admin's `set` creates get the file's 4 KiB
/// and the flag's 4 variables, and `quota exceeded` past either.
fn limits_from_flags_and_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        "max_value_bytes = \"64KiB\"\ndefault_quota_bytes = \"4KiB\"\ndefault_max_variables = 100\n",
    )?;
    let config = config.to_str().context("a UTF-8 temp path")?;
    let served = serve_with(
        &data,
        &[
            "--name",
            "limits",
            "--config",
            config,
            "--max-value-bytes",
            "1KiB",
            "--default-max-variables",
            "4",
        ],
    )?;
    let key = served.admin_key.clone().context("no admin key printed")?;
    let url = served.url.as_str();
    let local_cli = |args: &[&str]| -> Vec<String> {
        args.iter()
            .copied()
            .chain(["--name", "limits"])
            .map(str::to_owned)
            .collect()
    };
    let remote_cli = |args: &[&str]| -> Vec<String> {
        args.iter()
            .copied()
            .chain(["--remote", url])
            .map(str::to_owned)
            .collect()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&data, &args)
    };
    let refused = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&data, &args)
    };
    let largest = "x".repeat(1024);
    let over = "x".repeat(1025);

    // The largest value passes; one byte more is refused, by every path, with the same words.
    ensure!(run(local_cli(&["set", "a/s/v1", &largest]))? == "a/s/v1 = version 1\n");
    for args in [
        local_cli(&["set", "a/s/big", &over]),
        remote_cli(&["set", "a/s/big", &over]),
    ] {
        let e = refused(args)?;
        ensure!(
            e == "error: bad request: value of a/s/big is 1025 bytes, at most 1024 allowed\n",
            "{e}"
        );
    }
    let path = |p: &str| -> Result<VarPath> { Ok(p.parse()?) };
    let local = Local::connect("limits", &key)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let remote = runtime.block_on(Remote::connect(url, &key, RemoteOptions::default()))?;
    let mut json = RemoteOptions::default();
    json.format = Format::Json;
    let remote_json = runtime.block_on(Remote::connect(url, &key, json))?;
    let bad_request = |result: memwire::store::Result<memwire::store::store::Written>| match result
    {
        Err(Error::BadRequest(m)) if m.contains("1025 bytes, at most 1024") => Ok(()),
        other => bail!("not a bad request for 1025 bytes: {other:?}"),
    };
    bad_request(local.set(&path("a/s/big")?, over.as_bytes()))?;
    bad_request(local.set_many("a", "s", &[("ok", b"1"), ("big", over.as_bytes())]))?;
    for client in [&remote, &remote_json] {
        bad_request(runtime.block_on(client.set(&path("a/s/big")?, over.as_bytes(), None)))?;
        bad_request(runtime.block_on(client.set_many("a", "s", &[("big", over.as_bytes())])))?;
    }

    // The memory quota: 4 KiB, three 1 KiB values and their names and entries fit, a fourth
    // does not.
    local.set(&path("a/s/v2")?, largest.as_bytes())?;
    runtime.block_on(remote.set(&path("a/s/v3")?, largest.as_bytes(), None))?;
    let e = refused(remote_cli(&["set", "a/s/v4", &largest]))?;
    ensure!(
        e.starts_with("error: quota exceeded: tenant a: memory quota 4096 bytes"),
        "{e}"
    );
    let memory_quota = |result: memwire::store::Result<memwire::store::store::Written>| match result
    {
        Err(Error::QuotaExceeded(m)) if m.contains("memory quota 4096 bytes") => Ok(()),
        other => bail!("not over the memory quota: {other:?}"),
    };
    memory_quota(local.set(&path("a/s/v4")?, largest.as_bytes()))?;
    memory_quota(runtime.block_on(remote.set(&path("a/s/v4")?, largest.as_bytes(), None)))?;

    // The variable quota: 4, from the flag over the file's 100.
    ensure!(run(local_cli(&["set", "a/s/v4", "small"]))? == "a/s/v4 = version 4\n");
    let e = refused(local_cli(&["set", "a/s/v5", "small"]))?;
    ensure!(
        e == "error: quota exceeded: tenant a: at most 4 variables, 4 live\n",
        "{e}"
    );
    let variables = |result: memwire::store::Result<memwire::store::store::Written>| match result {
        Err(Error::QuotaExceeded(m)) if m.contains("at most 4 variables") => Ok(()),
        other => bail!("not over the variable quota: {other:?}"),
    };
    variables(local.set(&path("a/s/v5")?, b"small"))?;
    variables(runtime.block_on(remote.set(&path("a/s/v5")?, b"small", None)))?;

    // A tenant made by a remote admin's `set` has the same quota; `ls` shows both.
    runtime.block_on(remote.set(&path("b/s/v")?, b"1", None))?;
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&data, &["ls", "--json", "--key", &key])?)?;
    for tenant in ["a", "b"] {
        let row = rows
            .iter()
            .find(|r| r["kind"] == "tenant" && r["server"] == "limits" && r["name"] == tenant)
            .with_context(|| format!("no tenant {tenant} in {rows:?}"))?;
        ensure!(row["quota_bytes"] == 4096, "{row}");
    }
    drop((local, remote, remote_json));
    served.guard.kill()?;
    Ok(())
}

/// `--max-value-bytes 5MiB`: a value of exactly 5 MiB travels both ways through both clients
/// (the WebSocket server takes its message, the remote client reads the answer, in
/// MessagePack and in JSON, where it is base64), and one byte more is `bad request`.
fn raised_value_limit() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let served = serve_with(
        &data,
        &[
            "--name",
            "big-values",
            "--max-value-bytes",
            "5MiB",
            "--default-quota-bytes",
            "32MiB",
        ],
    )?;
    let key = served.admin_key.clone().context("no admin key printed")?;
    // Not UTF-8, so JSON carries it as base64, its longest form.
    let largest: Vec<u8> = (0..5u32 << 20).map(|i| (i % 251) as u8 | 0x80).collect();
    let over = vec![0_u8; largest.len() + 1];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for (i, format) in [Format::MessagePack, Format::Json].into_iter().enumerate() {
        let mut options = RemoteOptions::default();
        options.format = format;
        let remote = runtime.block_on(Remote::connect(&served.url, &key, options))?;
        let path: VarPath = format!("t/s/remote{i}").parse()?;
        runtime.block_on(remote.set(&path, &largest, None))?;
        ensure!(
            runtime.block_on(remote.get(&path))?.value == largest,
            "{format:?}: a different value came back"
        );
        match runtime.block_on(remote.set(&path, &over, None)) {
            Err(Error::BadRequest(m)) if m.contains("at most 5242880 allowed") => {}
            other => bail!("{format:?}: not a bad request: {other:?}"),
        }
    }
    let local = Local::connect("big-values", &key)?;
    let path: VarPath = "t/s/local".parse()?;
    local.set(&path, &largest)?;
    ensure!(
        local.get(&path)?.map(|s| s.value).as_ref() == Some(&largest),
        "local: a different value came back"
    );
    match local.set(&path, &over) {
        Err(Error::BadRequest(m)) if m.contains("at most 5242880 allowed") => {}
        other => bail!("local: not a bad request: {other:?}"),
    }
    drop(local);
    served.guard.kill()?;
    Ok(())
}

/// A zero or absurd limit, from a flag or the config file, stops `serve` before it starts,
/// with one line that names the flag or the key.
fn bad_limits_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let config = dir.path().join("serve.toml");
    std::fs::write(&config, "default_quota_bytes = \"2TiB\"\n")?;
    let config = config.to_str().context("a UTF-8 temp path")?;
    let data_arg = data.to_str().context("a UTF-8 temp path")?;
    for (args, want) in [
        (
            &["--max-value-bytes", "0"][..],
            "error: --max-value-bytes: a value must be allowed at least 1 byte\n".to_owned(),
        ),
        (
            &["--max-value-bytes", "1GiB"],
            "error: --max-value-bytes: 1.0 GiB is over the 64.0 MiB the clients carry\n".to_owned(),
        ),
        (
            &["--default-max-variables", "0"],
            "error: --default-max-variables: a quota of 0 variables holds nothing\n".to_owned(),
        ),
        (
            &["--config", config],
            format!(
                "error: default_quota_bytes in {config}: 2.0 TiB is over the 1.0 TiB a \
                 tenant's segment may take\n"
            ),
        ),
        (
            &["--config", config, "--default-quota-bytes", "512KiB"],
            "error: the default quota (512.0 KiB) is smaller than the largest value (1.0 MiB): \
             no such value fits a new tenant; raise --default-quota-bytes or lower \
             --max-value-bytes\n"
                .to_owned(),
        ),
    ] {
        let mut all = vec![
            "serve",
            "--no-remote",
            "--name",
            "bad-limits",
            "--data-dir",
            data_arg,
        ];
        all.extend_from_slice(args);
        let e = fails(&data, &all)?;
        ensure!(e == want, "{args:?}: {e}");
    }
    ensure!(!data.exists(), "a refused server made its data directory");
    Ok(())
}

/// A value of the typed helpers' tests.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Rate {
    currency: String,
    rate: f64,
}

/// The typed helpers of both clients through a real `memwire serve`: a value they write is
/// JSON that `memwire get` prints as it is, a JSON value `memwire set` writes decodes, a
/// compare-and-set needs the version, and a value of another shape is `Error::Decode` naming
/// the variable and the type, after which both clients go on working.
fn typed_values() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let served = serve_with(&data, &["--name", "typed"])?;
    let key = served.admin_key.clone().context("no admin key printed")?;
    let url = served.url.as_str();
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--name", "typed"]);
        ok(&data, &all)
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let remote = runtime.block_on(Remote::connect(url, &key, RemoteOptions::default()))?;
    let local = Local::connect("typed", &key)?;
    let path = |p: &str| -> Result<VarPath> { Ok(p.parse()?) };

    // Written by the remote client: JSON for the CLI, local and remote, and the local client.
    let eur = Rate {
        currency: "EUR".to_owned(),
        rate: 0.19,
    };
    let written = runtime.block_on(remote.set_as(&path("a/fx/eur")?, &eur, None))?;
    ensure!(cli(&["get", "a/fx/eur"])? == "{\"currency\":\"EUR\",\"rate\":0.19}\n");
    ensure!(
        ok(&data, &["get", "a/fx/eur", "--remote", url])?
            == "{\"currency\":\"EUR\",\"rate\":0.19}\n"
    );
    let read = local
        .get_as::<Rate>(&path("a/fx/eur")?)?
        .context("a/fx/eur is missing")?;
    ensure!(
        read.value == eur
            && read.version == written.version
            && read.timestamp_ms == written.timestamp_ms,
        "{read:?} / {written:?}"
    );

    // Written by hand with the CLI, read typed by both clients.
    ensure!(
        cli(&["set", "a/fx/usd", r#"{"currency": "USD", "rate": 1.0}"#])?
            == "a/fx/usd = version 2\n"
    );
    let usd = Rate {
        currency: "USD".to_owned(),
        rate: 1.0,
    };
    let read = runtime.block_on(remote.get_as::<Rate>(&path("a/fx/usd")?))?;
    ensure!(read.value == usd && read.version == 2, "{read:?}");
    ensure!(local.get_as::<Rate>(&path("a/fx/usd")?)?.map(|t| t.value) == Some(usd));

    // Compare-and-set: only at the version read.
    let cheaper = Rate {
        currency: "EUR".to_owned(),
        rate: 0.18,
    };
    match local.compare_and_set_as(&path("a/fx/eur")?, &cheaper, written.version + 7) {
        Err(Error::Conflict { expected, found }) if found == written.version => {
            ensure!(expected == written.version + 7);
        }
        other => bail!("not a conflict: {other:?}"),
    }
    let again = local.compare_and_set_as(&path("a/fx/eur")?, &cheaper, written.version)?;
    match runtime.block_on(remote.set_as(&path("a/fx/eur")?, &eur, Some(written.version))) {
        Err(Error::Conflict { found, .. }) if found == again.version => {}
        other => bail!("not a conflict: {other:?}"),
    }
    let read = runtime.block_on(remote.get_as::<Rate>(&path("a/fx/eur")?))?;
    ensure!(
        read.value == cheaper && read.version == again.version,
        "{read:?}"
    );
    local.set_as(&path("a/fx/list")?, &[1_u32, 2, 3])?;
    ensure!(cli(&["get", "a/fx/list"])? == "[1,2,3]\n");

    // Not the type asked for: a typed error naming the variable and the type.
    cli(&["set", "a/fx/note", "hello"])?;
    let decode_error = |result: std::result::Result<(), Error>, p: &str| match result {
        Err(Error::Decode { path, ty, .. }) if path.to_string() == p && ty.ends_with("Rate") => {
            Ok(())
        }
        other => bail!("{p}: not a decode error: {other:?}"),
    };
    for p in ["a/fx/note", "a/fx/list"] {
        decode_error(local.get_as::<Rate>(&path(p)?).map(drop), p)?;
        decode_error(
            runtime.block_on(remote.get_as::<Rate>(&path(p)?)).map(drop),
            p,
        )?;
    }
    let e = local
        .get_as::<Rate>(&path("a/fx/note")?)
        .err()
        .context("hello decoded as a Rate")?;
    let chain = format!("{:#}", anyhow::Error::new(e));
    ensure!(
        chain.starts_with("value of a/fx/note is not the JSON of a cli_serve::Rate: "),
        "{chain}"
    );
    // Both clients go on: an absent value, and a present one.
    ensure!(local.get_as::<Rate>(&path("a/fx/none")?)?.is_none());
    match runtime.block_on(remote.get_as::<Rate>(&path("a/fx/none")?)) {
        Err(Error::NotFound(_)) => {}
        other => bail!("not a not-found: {other:?}"),
    }
    ensure!(
        runtime
            .block_on(remote.get_as::<Rate>(&path("a/fx/eur")?))?
            .value
            == cheaper
    );

    // A value serde_json cannot write: refused before anything is sent.
    let tuple_keys = std::collections::BTreeMap::from([((1_u8, 2_u8), 3_u8)]);
    for result in [
        local.set_as(&path("a/fx/map")?, &tuple_keys),
        runtime.block_on(remote.set_as(&path("a/fx/map")?, &tuple_keys, None)),
    ] {
        match result {
            Err(Error::Encode { path, .. }) if path.to_string() == "a/fx/map" => {}
            other => bail!("not an encode error: {other:?}"),
        }
    }
    ensure!(
        local.get(&path("a/fx/map")?)?.is_none(),
        "a/fx/map was written"
    );
    drop((local, remote));
    served.guard.kill()?;
    Ok(())
}

/// One acknowledged write of a [`sigterm_snapshots`] writer: which writer, the variable
/// (`g/s/w<writer>-<i>`), its value (`<writer>:<i>`) and version.
type Ack = (usize, String, String, u64);

/// SIGTERM while three remote writers (pipelined on one connection) and a local one write:
/// `serve` exits 0 after `stopped`, leaves a snapshot of everything it logged in its data
/// directory (the log after it empty) and no socket, every writer's calls end in
/// `ServerGone`, and the restarted server, replaying no log record, has every acknowledged
/// write.
fn sigterm_snapshots() -> Result<()> {
    const REMOTE_WRITERS: usize = 3;
    const LOCAL_WRITER: usize = REMOTE_WRITERS;
    /// Acknowledgements each writer gets before the SIGTERM.
    const BEFORE: usize = 20;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let served = serve_with(&data, &["--name", "graceful"])?;
    let key = served.admin_key.clone().context("no admin key printed")?;
    let (acks_tx, acks) = mpsc::channel::<Ack>();

    let remote = {
        let (url, key, acks) = (served.url.clone(), key.clone(), acks_tx.clone());
        std::thread::spawn(move || -> Result<Vec<Error>> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let remote = Remote::connect(&url, &key, RemoteOptions::default()).await?;
                let writers: Vec<_> = (0..REMOTE_WRITERS)
                    .map(|writer| {
                        let (remote, acks) = (remote.clone(), acks.clone());
                        tokio::spawn(async move {
                            for i in 0.. {
                                let variable = format!("g/s/w{writer}-{i}");
                                let value = format!("{writer}:{i}");
                                match remote.set(&variable.parse()?, value.as_bytes(), None).await {
                                    Ok(w) => {
                                        if acks.send((writer, variable, value, w.version)).is_err()
                                        {
                                            break;
                                        }
                                    }
                                    Err(e) => return Ok(e),
                                }
                            }
                            bail!("remote writer {writer} stopped without an error")
                        })
                    })
                    .collect();
                let mut ends = Vec::new();
                for writer in writers {
                    ends.push(writer.await??);
                }
                Ok(ends)
            })
        })
    };
    let local = {
        let (key, acks) = (key.clone(), acks_tx.clone());
        std::thread::spawn(move || -> Result<Error> {
            let local = Local::connect("graceful", &key)?;
            for i in 0.. {
                let variable = format!("g/s/w{LOCAL_WRITER}-{i}");
                let value = format!("{LOCAL_WRITER}:{i}");
                match local.set(&variable.parse()?, value.as_bytes()) {
                    Ok(w) => {
                        // The test stopped listening: it failed already.
                        if acks
                            .send((LOCAL_WRITER, variable, value, w.version))
                            .is_err()
                        {
                            break;
                        }
                    }
                    Err(e) => return Ok(e),
                }
            }
            bail!("the local writer stopped without an error")
        })
    };
    drop(acks_tx);

    let mut acked = Vec::new();
    let mut counts = [0_usize; REMOTE_WRITERS + 1];
    while counts.iter().any(|&n| n < BEFORE) {
        let ack = acks
            .recv_timeout(DEADLINE)
            .with_context(|| format!("writers stalled at {counts:?} acknowledgements"))?;
        counts[ack.0] += 1;
        acked.push(ack);
    }
    let mut guard = served.guard;
    let pid = rustix::process::Pid::from_raw(i32::try_from(guard.id())?).context("pid")?;
    rustix::process::kill_process(pid, rustix::process::Signal::TERM)?;
    let status = guard.wait_exit()?;
    ensure!(status.success(), "serve exited with {status} on SIGTERM");
    let printed: Vec<String> = served.after.iter().collect();
    ensure!(
        printed.last().map(String::as_str) == Some("stopped"),
        "{printed:?}"
    );

    // Every writer's calls end in ServerGone; what they had acknowledged is all in `acked`.
    let mut ends = remote
        .join()
        .map_err(|_| anyhow::anyhow!("remote writers panicked"))??;
    ends.push(
        local
            .join()
            .map_err(|_| anyhow::anyhow!("local writer panicked"))??,
    );
    for (writer, end) in ends.iter().enumerate() {
        ensure!(
            matches!(end, Error::ServerGone),
            "writer {writer} ended with {end:?}"
        );
    }
    acked.extend(acks.iter());
    let newest = acked
        .iter()
        .map(|a| a.3)
        .max()
        .context("no acknowledgement")?;

    // The data directory: one snapshot, after every record (the tenant's and each write's),
    // and no record after it. The local socket is gone.
    let mut snapshots = Vec::new();
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(data.join("log"))? {
        let entry = entry?;
        let name = entry
            .file_name()
            .into_string()
            .map_err(|n| anyhow::anyhow!("{n:?}"))?;
        let lsn = |prefix: &str| -> Option<u64> {
            name.strip_prefix(prefix)?
                .strip_suffix(".bin")?
                .parse()
                .ok()
        };
        if let Some(lsn) = lsn("snapshot-") {
            snapshots.push(lsn);
        } else if let Some(lsn) = lsn("log-") {
            logs.push((lsn, entry.metadata()?.len()));
        }
    }
    let [snapshot] = snapshots[..] else {
        bail!("not one snapshot: {snapshots:?}");
    };
    ensure!(
        snapshot > newest,
        "the snapshot at record {snapshot} misses version {newest} (record {})",
        newest + 1
    );
    ensure!(
        logs.iter().all(|&(lsn, len)| lsn > snapshot && len == 0),
        "log records besides the snapshot at {snapshot}: {logs:?}"
    );
    let socket = memwire::store::local::socket_path("graceful")?;
    ensure!(!socket.exists(), "{} is left", socket.display());

    let again = serve_with(&data, &["--name", "graceful"])?;
    ensure!(
        again
            .banner
            .iter()
            .any(|l| l.contains(" 0 log record(s) replayed")),
        "{:?}",
        again.banner
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let remote = Remote::connect(&again.url, &key, RemoteOptions::default()).await?;
        for (writer, variable, value, version) in &acked {
            let stored = remote.get(&variable.parse()?).await?;
            ensure!(
                stored.value == value.as_bytes() && stored.version == *version,
                "writer {writer}: {variable} is {:?} at version {}, not {value} at {version}",
                String::from_utf8_lossy(&stored.value),
                stored.version
            );
        }
        anyhow::Ok(())
    })?;
    again.guard.kill()?;
    Ok(())
}

/// `memwire ls` counts each tenant's WebSocket clients with its local ones: a remote client of
/// a tenant's key from its `auth` on, an admin's in each tenant it reads or watches, a local
/// client as before; each leaves the count when it disconnects.
fn ls_counts_clients() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let served = serve_with(&data, &["--name", "counted"])?;
    let admin = served.admin_key.clone().context("no admin key printed")?;
    let url = served.url.as_str();
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--name", "counted"]);
        ok(&data, &all)
    };
    cli(&["set", "a/s/v", "in a"])?;
    cli(&["set", "b/s/v", "in b"])?;
    let made = cli(&["key", "create", "--tenant", "a", "--role", "read"])?;
    let a_key = made.lines().last().context("no key printed")?.to_owned();
    // (clients of a, clients of b), as `ls --json` shows them.
    let counts = || -> Result<(u64, u64)> {
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(&ok(&data, &["ls", "--json", "--key", &admin])?)?;
        let count = |tenant: &str| {
            rows.iter()
                .find(|r| r["kind"] == "tenant" && r["server"] == "counted" && r["name"] == tenant)
                .and_then(|r| r["clients"].as_u64())
                .with_context(|| format!("no tenant {tenant} with clients in {rows:?}"))
        };
        Ok((count("a")?, count("b")?))
    };
    // `ls` itself, an admin that maps nothing, is no client of either.
    ensure!(counts()? == (0, 0));

    // A remote client of a's key, in a runtime of its own (dropped with it: its connection
    // closes at once).
    let a_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let a_remote = a_runtime.block_on(Remote::connect(url, &a_key, RemoteOptions::default()))?;
    ensure!(counts()? == (1, 0));

    // An admin's remote client: in b once it reads b, in a once it watches a.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let admin_remote = runtime.block_on(Remote::connect(url, &admin, RemoteOptions::default()))?;
    ensure!(counts()? == (1, 0));
    runtime.block_on(admin_remote.get(&"b/s/v".parse()?))?;
    runtime.block_on(admin_remote.get(&"b/s/v".parse()?))?;
    ensure!(counts()? == (1, 1));
    let tenant_a: memwire::store::protocol::Scope = "a".parse()?;
    let watch = runtime.block_on(admin_remote.watch(&tenant_a, None))?;
    ensure!(counts()? == (2, 1));

    // A local client of a's key, with the remote ones; the table shows the same.
    let local = Local::connect("counted", &a_key)?;
    ensure!(counts()? == (3, 1));
    let table = ok(&data, &["ls", "--key", &admin])?;
    let last_cells = |first: [&str; 2]| {
        table
            .lines()
            .find(|l| l.split_whitespace().take(2).eq(first))
            .and_then(|l| l.split_whitespace().last())
    };
    // CLIENTS is the last column (MEMORY's cells hold spaces).
    ensure!(
        last_cells(["SERVER", "TENANT"]) == Some("CLIENTS")
            && last_cells(["counted", "a"]) == Some("3")
            && last_cells(["counted", "b"]) == Some("1"),
        "{table}"
    );

    // Each leaves when it disconnects; the server learns of it when the socket closes.
    drop(a_remote);
    drop(a_runtime);
    support::wait_until("tenant a's remote client to leave", || {
        Ok(counts()? == (2, 1))
    })?;
    drop(local);
    support::wait_until("tenant a's local client to leave", || {
        Ok(counts()? == (1, 1))
    })?;
    drop((watch, admin_remote));
    drop(runtime);
    support::wait_until("the admin's remote client to leave", || {
        Ok(counts()? == (0, 0))
    })?;
    served.guard.kill()?;
    Ok(())
}
