//! `memwire serve`'s limits as a real process: the largest value and the default quota from
//! flags over its config file, enforced through the CLI and both Rust clients (`bad request`,
//! `quota exceeded`), values past the default 1 MiB limit both ways when it is raised, and
//! bad limits refused at start with the flag or key named; started with a low descriptor
//! limit, it raises it and holds a thousand clients at once, or, when it cannot, backs off
//! instead of ending its accept loop.

mod serve_support;
#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};
use memwire::store::protocol::{Format, VarPath};
use memwire::store::{Error, Local, Remote, RemoteOptions};
use serve_support::{fails, ok, serve_from, serve_with, server_command};
use support::{DEADLINE, trial};

fn main() {
    support::private_runtime_dir("memwire-cli-serve-limits");
    support::main(
        |role| bail!("no roles: {role}"),
        vec![
            trial(
                "serve_limits_from_flags_over_its_config_file",
                limits_from_flags_and_file,
            ),
            trial(
                "serve_carries_values_up_to_a_raised_limit",
                raised_value_limit,
            ),
            trial("serve_refuses_bad_limits_by_name", bad_limits_refused),
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
    let run = |args: Vec<String>| ok(&data, &args);
    let refused = |args: Vec<String>| fails(&data, &args);
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

/// Started with a soft limit of 256 descriptors, the server raises it to its hard limit and
/// serves a thousand WebSocket clients connected all at once.
fn thousand_clients() -> Result<()> {
    const CLIENTS: usize = 1000;
    let hard = support::raise_fd_limit()?;
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
    support::raise_fd_limit()?;
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
