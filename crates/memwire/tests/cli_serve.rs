//! `memwire serve` as a real process: it prints where it listens and the admin key once,
//! refuses a second server on its data directory, keeps every acknowledged write across a
//! SIGKILL, and stops cleanly on SIGTERM; `get`/`set`/`del`/`watch`/`key --remote` through it;
//! started with a low descriptor limit, it raises it and holds a thousand clients at once, or,
//! when it cannot, backs off instead of ending its accept loop.

#![allow(clippy::unwrap_used)]

#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;

use anyhow::{Context, Result, bail, ensure};
use memwire::store::protocol::VarPath;
use memwire::store::{Remote, RemoteOptions};
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
                "serve_raises_its_fd_limit_and_holds_a_thousand_clients",
                thousand_clients,
            ),
            trial(
                "serve_backs_off_when_out_of_descriptors",
                out_of_descriptors,
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
}

fn serve(data: &Path) -> Result<Served> {
    serve_with(data, &[])
}

fn serve_with(data: &Path, extra: &[&str]) -> Result<Served> {
    serve_from(server_command(data, extra))
}

/// `memwire serve` on `data` at a free loopback port, with `extra` arguments.
fn server_command(data: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_memwire"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    command
}

/// Starts `command` (a [`server_command`]) and reads its banner up to `ready`.
fn serve_from(mut command: Command) -> Result<Served> {
    let mut child = command.spawn()?;
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
    // Keep reading (and dropping) the rest so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok(Served {
        guard,
        url: url.with_context(|| format!("no remote address in {banner:?}"))?,
        admin_key,
        banner,
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

    // SIGTERM: a clean stop.
    let mut guard = again.guard;
    let pid = rustix::process::Pid::from_raw(i32::try_from(guard.id())?).context("pid")?;
    rustix::process::kill_process(pid, rustix::process::Signal::TERM)?;
    let status = guard.wait_exit()?;
    ensure!(status.success(), "serve exited with {status} on SIGTERM");
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

/// Makes `command`'s process start with `soft` as its soft limit of open descriptors and `hard`
/// as its hard one.
fn with_fd_limit(command: &mut Command, soft: u64, hard: Option<u64>) {
    use std::os::unix::process::CommandExt as _;
    let limit = rustix::process::Rlimit {
        current: Some(soft),
        maximum: hard,
    };
    // SAFETY: the closure runs in the child between fork and exec; it makes one `setrlimit`
    // system call (async-signal-safe), allocates nothing and takes no lock.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(move || {
            rustix::process::setrlimit(rustix::process::Resource::Nofile, limit)
                .map_err(std::io::Error::from)
        });
    }
}

/// The soft and hard "Max open files" of process `pid`, from `/proc/PID/limits`.
fn fd_limits(pid: u32) -> Result<(String, String)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .context("no open-files line in /proc/PID/limits")?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    let soft = fields.next().context("no soft limit")?.to_owned();
    let hard = fields.next().context("no hard limit")?.to_owned();
    Ok((soft, hard))
}

/// Raises this process's soft descriptor limit to its hard one; returns the hard one.
fn raise_own_fd_limit() -> Result<Option<u64>> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )?;
    Ok(limit.maximum)
}

/// Started with a soft limit of 256 descriptors, the server raises it to its hard limit and
/// serves a thousand WebSocket clients connected all at once.
fn thousand_clients() -> Result<()> {
    const CLIENTS: usize = 1000;
    let hard = raise_own_fd_limit()?;
    // Both ends in this machine's limits: this process holds a client's socket per client.
    ensure!(
        hard.is_none_or(|h| h >= 2 * CLIENTS as u64 + 200),
        "the hard descriptor limit {hard:?} is too low for {CLIENTS} clients in one process"
    );
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let mut command = server_command(&data, &["--name", "fd-raised"]);
    with_fd_limit(&mut command, 256, hard);
    let served = serve_from(command)?;
    let key = served.admin_key.clone().context("no admin key printed")?;
    let (soft, hard_seen) = fd_limits(served.guard.id())?;
    ensure!(
        soft == hard_seen,
        "the server kept a soft limit of {soft} under a hard one of {hard_seen}"
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut options = RemoteOptions::default();
        options.busy_poll = std::time::Duration::ZERO;
        // Every client connects, then waits for all the others before it sets its variable and
        // reads it back, then waits again: all thousand are connected at once, twice.
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(CLIENTS));
        let mut clients = tokio::task::JoinSet::new();
        for i in 0..CLIENTS {
            let (url, key, options) = (served.url.clone(), key.clone(), options.clone());
            let barrier = std::sync::Arc::clone(&barrier);
            clients.spawn(async move {
                let remote = Remote::connect(&url, &key, options).await?;
                barrier.wait().await;
                let path: VarPath = format!("many/clients/v{i}").parse()?;
                remote.set(&path, &i.to_le_bytes(), None).await?;
                let stored = remote.get(&path).await?;
                ensure!(
                    stored.value == i.to_le_bytes(),
                    "client {i} read another value"
                );
                barrier.wait().await;
                anyhow::Ok(())
            });
        }
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while let Some(done) = tokio::time::timeout_at(deadline, clients.join_next())
            .await
            .context("the clients did not finish in time")?
        {
            done??;
        }
        let remote = Remote::connect(&served.url, &key, options).await?;
        let listed = remote.list(Some("many"), Some("clients")).await?.len();
        ensure!(
            listed == CLIENTS,
            "{listed} variables listed, {CLIENTS} set"
        );
        anyhow::Ok(())
    })
}

/// Started with 160 descriptors at most (soft and hard), the server runs out of them when 300
/// connections arrive; it keeps its accept loop (backing off), and once they close it serves
/// a new client.
fn out_of_descriptors() -> Result<()> {
    const HELD: usize = 300;
    raise_own_fd_limit()?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let mut command = server_command(&data, &["--name", "fd-starved"]);
    command.stderr(Stdio::piped());
    with_fd_limit(&mut command, 160, Some(160));
    let mut served = serve_from(command)?;
    let key = served.admin_key.clone().context("no admin key printed")?;
    let stderr = served.guard.child().stderr.take().context("stderr")?;
    let log = std::thread::spawn(move || std::io::read_to_string(stderr));
    let address = served
        .url
        .strip_prefix("ws://")
        .context("not a ws:// address")?
        .to_owned();
    // Plain TCP connections that never speak: each one the server accepts holds a descriptor.
    let held: Vec<std::net::TcpStream> = (0..HELD)
        .map(|_| std::net::TcpStream::connect(&address))
        .collect::<std::io::Result<_>>()?;
    // Give the accept loop time to run out of descriptors (it has far fewer than `HELD`).
    std::thread::sleep(std::time::Duration::from_millis(300));
    ensure!(
        served.guard.child().try_wait()?.is_none(),
        "the server exited when it ran out of descriptors"
    );
    drop(held);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let remote = loop {
            match Remote::connect(&served.url, &key, RemoteOptions::default()).await {
                Ok(remote) => break remote,
                Err(e) if tokio::time::Instant::now() > deadline => {
                    bail!("no client served after the connections closed: {e}")
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        };
        let path: VarPath = "after/emfile/v".parse()?;
        remote.set(&path, b"served", None).await?;
        ensure!(remote.get(&path).await?.value == b"served");
        anyhow::Ok(())
    })?;
    ensure!(
        served.guard.child().try_wait()?.is_none(),
        "the server exited"
    );
    drop(served.guard);
    let log = log
        .join()
        .map_err(|_| anyhow::anyhow!("the log reader panicked"))??;
    ensure!(
        log.contains("out of file descriptors; pausing"),
        "the server never ran out of descriptors: {log}"
    );
    Ok(())
}
