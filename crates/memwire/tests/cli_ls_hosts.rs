//! `memwire ls` lists transport hosts: live with their peers, then stale once killed.

#![allow(clippy::unwrap_used)]

#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};
use memwire::transport::{Guest, Host, HostConfig};
use support::{command, spawn, trial, wait_until};

const HOST_ENV: &str = "MEMWIRE_TEST_HOST";

fn main() {
    support::private_runtime_dir("memwire-ls-hosts");
    support::main(
        roles,
        vec![trial(
            "ls_shows_a_host_its_peer_and_then_its_stale_socket",
            ls_hosts,
        )],
    )
}

fn roles(role: &str) -> Result<()> {
    match role {
        "host" => {
            let host = Host::bind(&std::env::var(HOST_ENV)?, HostConfig::default())?;
            println!("ready");
            std::io::stdout().flush()?;
            let mut links = Vec::new();
            loop {
                links.push(host.accept()?);
            }
        }
        other => bail!("unknown role {other:?}"),
    }
}

fn ls() -> Result<Vec<serde_json::Value>> {
    let out = Command::new(env!("CARGO_BIN_EXE_memwire"))
        .args(["ls", "--json"])
        .output()?;
    ensure!(
        out.status.success(),
        "ls failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
    Ok(rows
        .into_iter()
        .filter(|r| r["kind"] == "transport_host")
        .collect())
}

fn ls_hosts() -> Result<()> {
    let name = format!("ls-host-{}", std::process::id());
    let mut cmd = command("host")?;
    cmd.env(HOST_ENV, &name).stdout(Stdio::piped());
    let mut host = spawn(cmd, None)?;
    let mut line = String::new();
    BufReader::new(host.child().stdout.take().context("stdout")?).read_line(&mut line)?;
    ensure!(line.trim() == "ready");

    let rows = ls()?;
    ensure!(rows.len() == 1, "{rows:?}");
    ensure!(
        rows[0]["name"] == name.as_str() && rows[0]["state"] == "live",
        "{rows:?}"
    );
    ensure!(rows[0]["pid"] == host.id(), "{rows:?}");
    ensure!(
        rows[0]["peers"].as_array().is_some_and(Vec::is_empty),
        "{rows:?}"
    );

    let mut link = Guest::connect(&name)?;
    link.tx().send(b"hello")?;
    wait_until("ls to show our link", || {
        let rows = ls()?;
        let peers = rows[0]["peers"].as_array().cloned().unwrap_or_default();
        Ok(peers.len() == 1 && peers[0]["pid"] == std::process::id())
    })?;

    host.kill()?;
    let rows = ls()?;
    ensure!(rows.len() == 1 && rows[0]["state"] == "stale", "{rows:?}");
    drop(link);
    // gc takes the dead host's socket away.
    let out = Command::new(env!("CARGO_BIN_EXE_memwire"))
        .args(["gc", "--json"])
        .output()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let removed = report["removed"].as_array().context("removed")?;
    ensure!(
        removed
            .iter()
            .any(|r| r["kind"] == "transport_host" && r["name"] == name.as_str()),
        "{report}"
    );
    ensure!(ls()?.is_empty());
    Ok(())
}
