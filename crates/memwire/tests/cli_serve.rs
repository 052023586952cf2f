//! `memwire serve` as a real process: it prints where it listens and the admin key once,
//! refuses a second server on its data directory, keeps every acknowledged write across a
//! SIGKILL, and stops cleanly on SIGTERM.

#![allow(clippy::unwrap_used)]

#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};
use memwire::store::protocol::VarPath;
use memwire::store::{Remote, RemoteOptions};
use support::{Guard, trial};

fn main() {
    support::private_runtime_dir("memwire-cli-serve");
    support::main(
        |role| bail!("no roles: {role}"),
        vec![trial(
            "serve_keeps_acknowledged_writes_across_kill_9",
            serve_across_kill_9,
        )],
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_memwire"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
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
