//! `memwire serve` as a real process: it prints where it listens and the admin key once,
//! refuses a second server on its data directory, keeps every acknowledged write across a
//! SIGKILL, and on SIGTERM lets writes in flight finish and snapshots;
//! `get`/`set`/`del`/`watch`/`key --remote` through it.

#![allow(clippy::unwrap_used)]

mod serve_support;
#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::sync::mpsc;

use anyhow::{Context, Result, bail, ensure};
use memwire::store::protocol::VarPath;
use memwire::store::{Error, Local, Remote, RemoteOptions};
use serve_support::{Lines, fails, ok, serve, serve_with};
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
                "serve_on_sigterm_finishes_writes_in_flight_and_snapshots",
                sigterm_snapshots,
            ),
        ],
    )
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
    let lines = Lines::of(&mut watcher)?;
    ensure!(ok(&data, &remote(&["set", "a/s/w", "one"]))? == "a/s/w = version 3\n");
    ensure!(ok(&data, &remote(&["set", "a/other/w", "no"]))? == "a/other/w = version 4\n");
    ensure!(ok(&data, &remote(&["set", "a/s/w", "two"]))? == "a/s/w = version 5\n");
    ensure!(ok(&data, &remote(&["del", "a/s/w"]))? == "a/s/w = version 6\n");
    for want in [
        "set a/s/w = one (version 3)",
        "set a/s/w = two (version 5)",
        "delete a/s/w (version 6)",
    ] {
        let line = lines.next()?;
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
    let run = |args: Vec<String>| ok(&data, &args);
    let refused = |args: Vec<String>| fails(&data, &args);
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
