//! `memwire ls`: what memwire objects exist, who holds them, and whether `gc` may take them.

use std::io::Write;

use anyhow::{Context as _, Result};
use memwire::shm::resource;

use super::Globals;
use super::row::{HostRow, ResourceRow, Row, ServiceRow, TenantRow, tables};

/// List memwire resources.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print a JSON array of rows (each with `kind` and `name`) instead of a table.
    #[arg(long)]
    json: bool,
    /// Look in every namespace of this user, not just one.
    #[arg(long)]
    all_namespaces: bool,
}

/// Every row `ls` shows in `scope`: resources, then RPC services and transport hosts (which
/// belong to the user's runtime directory, not to a namespace). A service's own transport
/// host is shown in its service row, not again as a host.
pub(crate) fn rows(scope: &resource::Scope) -> Result<Vec<Row>> {
    let resources = resource::list(scope).context("listing resources")?;
    let hosts = memwire::transport::list_hosts().context("listing transport hosts")?;
    let services = memwire::rpc::registry::list().context("listing services")?;
    let host_of = |name: &str| hosts.iter().find(|h| h.name.as_str() == name);
    Ok(resources
        .iter()
        .map(|info| Row::Resource(ResourceRow::from(info)))
        .chain(store_tenants().into_iter().map(Row::Tenant))
        .chain(
            services
                .iter()
                .map(|s| Row::Service(ServiceRow::new(s, host_of(&s.name)))),
        )
        .chain(
            hosts
                .iter()
                .filter(|h| !services.iter().any(|s| s.name == h.name.as_str()))
                .map(|h| Row::TransportHost(HostRow::from(h))),
        )
        .collect())
}

pub(crate) fn run(cx: &Globals, args: &Args) -> Result<()> {
    let rows = rows(&cx.scope(args.all_namespaces))?;
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

/// The tenants of the local store server `default`, if one runs and a key is at hand
/// (`MEMWIRE_KEY`, else `admin.key` in the default data directory); nothing otherwise.
fn store_tenants() -> Vec<TenantRow> {
    let Ok(socket) = memwire::store::local::socket_path("default") else {
        return Vec::new();
    };
    if !socket.exists() {
        return Vec::new();
    }
    let key = std::env::var("MEMWIRE_KEY")
        .ok()
        .or_else(|| memwire::store::auth::read_admin_key(memwire::store::default_data_dir()).ok());
    let Some(key) = key else {
        tracing::debug!("a store server runs, but no key is at hand to list its tenants");
        return Vec::new();
    };
    match memwire::store::Local::connect_at(&socket, &key).and_then(|local| local.stats()) {
        Ok(tenants) => tenants.iter().map(TenantRow::from).collect(),
        Err(e) => {
            tracing::debug!(error = %e, "cannot list the store's tenants");
            Vec::new()
        }
    }
}
