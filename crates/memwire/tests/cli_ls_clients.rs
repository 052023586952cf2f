//! `memwire ls` counts a tenant's connected clients, WebSocket and local alike, against a real
//! `memwire serve`; `memwire ls --remote` lists a server's tenants over its WebSocket.

mod serve_support;
#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;

use anyhow::{Context, Result, bail, ensure};
use memwire::store::{Local, Remote, RemoteOptions};
use serve_support::{ok, serve_with};
use support::trial;

fn main() {
    support::private_runtime_dir("memwire-cli-ls-clients");
    support::main(
        |role| bail!("no roles: {role}"),
        vec![
            trial(
                "ls_counts_websocket_clients_with_local_ones",
                ls_counts_clients,
            ),
            trial("ls_remote_lists_the_tenants_a_key_sees", ls_remote),
        ],
    )
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

/// `memwire ls --remote URL`: the server (named by its URL) and the tenants the key sees, with
/// their services, variables and quota, over the WebSocket; a tenant's key
/// sees its own tenant only; an address nobody serves is an error.
fn ls_remote() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let served = serve_with(
        &data,
        &["--name", "listed", "--default-quota-bytes", "2MiB"],
    )?;
    let admin = served.admin_key.clone().context("no admin key printed")?;
    let url = served.url.as_str();
    for (path, value) in [("a/s/v", "1"), ("b/s/v", "2"), ("b/t/w", "3")] {
        ok(&data, &["set", path, value, "--remote", url])?;
    }
    let made = ok(
        &data,
        &[
            "key", "create", "--tenant", "a", "--role", "read", "--remote", url,
        ],
    )?;
    let a_key = made.lines().last().context("no key printed")?.to_owned();

    let listed = |key: &str| -> Result<Vec<serde_json::Value>> {
        Ok(serde_json::from_str(&ok(
            &data,
            &["ls", "--remote", url, "--key", key, "--json"],
        )?)?)
    };
    let rows = listed(&admin)?;
    let tenant = |rows: &[serde_json::Value], name: &str| {
        rows.iter()
            .find(|r| r["kind"] == "tenant" && r["name"] == name)
            .map(|r| {
                (
                    r["server"].as_str().map(str::to_owned),
                    r["services"].as_u64(),
                    r["variables"].as_u64(),
                    r["quota_bytes"].as_u64(),
                )
            })
    };
    let server = rows
        .iter()
        .find(|r| r["kind"] == "store_server")
        .with_context(|| format!("no server row in {rows:?}"))?;
    ensure!(
        server["name"] == url && server["tenants"] == 2,
        "server row {server}"
    );
    let at = Some(url.to_owned());
    ensure!(tenant(&rows, "a") == Some((at.clone(), Some(1), Some(1), Some(2 << 20))));
    ensure!(tenant(&rows, "b") == Some((at.clone(), Some(2), Some(2), Some(2 << 20))));
    ensure!(
        rows.len() == 3,
        "more rows than the server and its tenants: {rows:?}"
    );

    // A key of tenant a sees a alone.
    let rows = listed(&a_key)?;
    ensure!(
        tenant(&rows, "a").is_some() && tenant(&rows, "b").is_none(),
        "{rows:?}"
    );

    // The table names the server by its URL.
    let table = ok(&data, &["ls", "--remote", url, "--key", &admin])?;
    ensure!(table.contains(url) && table.contains("TENANT"), "{table}");

    // Nobody at the address: one error line.
    served.guard.kill()?;
    let err = serve_support::fails(&data, &["ls", "--remote", url, "--key", &admin])?;
    ensure!(err.contains(url), "{err}");
    Ok(())
}
