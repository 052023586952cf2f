//! `memwire ls`: what memwire objects exist, who holds them, and whether `gc` may take them.
//! The store servers and their tenants come from [`servers`]; `--remote URL` lists one remote
//! server's tenants instead, through its WebSocket.

pub(crate) mod servers;

use std::io::Write;

use anyhow::{Context as _, Result};
use memwire::shm::resource;

use super::Globals;
use super::row::{HostRow, ResourceRow, Row, ServiceRow, StoreServerRow, TenantRow, tables};

/// List memwire resources.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print a JSON array of rows (each with `kind` and `name`) instead of a table.
    #[arg(long)]
    json: bool,
    /// Look in every namespace of this user, not just one.
    #[arg(long)]
    all_namespaces: bool,
    /// A key to list the store servers' tenants with; repeat it for servers with different
    /// keys. Each server gets the first it accepts of these, `MEMWIRE_KEY`, and the default
    /// data directory's `admin.key`.
    #[arg(long, value_name = "KEY")]
    key: Vec<String>,
    /// List the tenants of the store server at this WebSocket address (`ws://HOST:PORT` or
    /// `wss://HOST:PORT`) instead of this machine's objects; keys as for local servers.
    #[arg(long, value_name = "URL", conflicts_with = "all_namespaces")]
    remote: Option<String>,
    /// For `wss://`: a PEM file of the CA certificates to trust (else the Mozilla roots).
    #[arg(long, value_name = "FILE", requires = "remote")]
    ca: Option<std::path::PathBuf>,
}

/// The rows of the remote store server at `url`: the server, then its tenants.
fn remote_rows(url: &str, ca: Option<&std::path::Path>, keys: &[String]) -> Result<Vec<Row>> {
    let server = servers::remote(url, ca, &servers::Keys::gather(keys))?;
    let tenants: Vec<Row> = server
        .tenants
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|t| Row::Tenant(TenantRow::new(&server.name, &t.info, t.services)))
        .collect();
    Ok(std::iter::once(store_server_row(&server))
        .chain(tenants)
        .collect())
}

/// A store server's row.
fn store_server_row(server: &servers::Server) -> Row {
    Row::StoreServer(StoreServerRow {
        name: server.name.clone(),
        pid: server.pid,
        socket: server.socket.clone(),
        tenants: server.tenants.as_ref().ok().map(Vec::len),
        problem: server.tenants.as_ref().err().cloned(),
    })
}

/// Every row `ls` shows in `scope`: resources, then the store servers and their tenants (the
/// servers tried with `keys`), RPC services and transport hosts (which belong to the user's
/// runtime directory, not to a namespace). A service's own transport host is shown in its
/// service row, not again as a host; a store server's link host says whose it is.
fn rows(scope: &resource::Scope, keys: &[String]) -> Result<Vec<Row>> {
    let resources = resource::list(scope).context("listing resources")?;
    let stores = servers::list(&servers::Keys::gather(keys)).context("listing store servers")?;
    let hosts = memwire::transport::list_hosts().context("listing transport hosts")?;
    let services = memwire::rpc::registry::list().context("listing services")?;
    let host_of = |name: &str| hosts.iter().find(|h| h.name.as_str() == name);
    let tenants = stores.iter().flat_map(|server| {
        let listed = server.tenants.as_deref().unwrap_or_default();
        listed
            .iter()
            .map(|t| Row::Tenant(TenantRow::new(&server.name, &t.info, t.services)))
    });
    Ok(resources
        .iter()
        .map(|info| Row::Resource(ResourceRow::from(info)))
        .chain(stores.iter().map(store_server_row))
        .chain(tenants)
        .chain(
            services
                .iter()
                .map(|s| Row::Service(ServiceRow::new(s, host_of(&s.name)))),
        )
        .chain(
            hosts
                .iter()
                .filter(|h| !services.iter().any(|s| s.name == h.name.as_str()))
                .map(|h| {
                    Row::TransportHost(HostRow {
                        what: servers::host_role(h.name.as_str(), &stores),
                        ..HostRow::from(h)
                    })
                }),
        )
        .collect())
}

pub(crate) fn run(cx: &Globals, args: &Args) -> Result<()> {
    let rows = match &args.remote {
        Some(url) => remote_rows(url, args.ca.as_deref(), &args.key)?,
        None => rows(&cx.scope(args.all_namespaces), &args.key)?,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
    } else if rows.is_empty() {
        if args.all_namespaces {
            writeln!(
                out,
                "no memwire resources in any namespace, no services and no transport hosts"
            )?;
        } else {
            writeln!(
                out,
                "no memwire resources in namespace `{}`, no services and no transport hosts",
                cx.namespace
            )?;
        }
    } else {
        for table in tables(&rows, args.all_namespaces) {
            writeln!(out, "{table}")?;
        }
    }
    out.flush().context("writing to stdout")
}
