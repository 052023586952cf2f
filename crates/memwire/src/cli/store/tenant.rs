//! `memwire tenant create / delete`: tenants, with an admin key, through the local server or a
//! remote one (`--remote ws[s]://HOST:PORT`); the same output either way.

use std::io::Write;

use anyhow::{Context as _, Result};

use super::Target;
use crate::cli::units::parse_size;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Create an empty tenant, with its own quota or the server's default.
    Create(CreateArgs),
    /// Delete a tenant and every variable in it; its watchers end.
    Delete(DeleteArgs),
}

/// Create a tenant.
#[derive(Debug, clap::Args)]
pub(crate) struct CreateArgs {
    /// The tenant.
    tenant: String,
    /// Its memory quota: value and name bytes plus 64 per variable (`1048576`, `64MiB`;
    /// default: the server's, 64 MiB).
    #[arg(long, value_name = "N", value_parser = parse_size)]
    quota_bytes: Option<u64>,
    /// Its live variables at most (default: the server's, 100 000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_variables: Option<u32>,
    /// Print `{"tenant"}`.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

/// Delete a tenant.
#[derive(Debug, clap::Args)]
pub(crate) struct DeleteArgs {
    /// The tenant.
    tenant: String,
    /// Print `{"tenant", "version"}` (the delete's version).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

pub(crate) fn run(cmd: &Command) -> Result<()> {
    match cmd {
        Command::Create(args) => create(args),
        Command::Delete(args) => delete(args),
    }
}

fn create(args: &CreateArgs) -> Result<()> {
    args.target
        .connect()?
        .create_tenant(&args.tenant, args.quota_bytes, args.max_variables)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &serde_json::json!({"tenant": args.tenant}))?;
        writeln!(out)?;
    } else {
        writeln!(out, "created tenant {}", args.tenant)?;
    }
    out.flush().context("writing to stdout")
}

fn delete(args: &DeleteArgs) -> Result<()> {
    let version = args.target.connect()?.delete_tenant(&args.tenant)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let object = serde_json::json!({"tenant": args.tenant, "version": version});
        serde_json::to_writer(&mut out, &object)?;
        writeln!(out)?;
    } else {
        writeln!(out, "deleted tenant {} (version {version})", args.tenant)?;
    }
    out.flush().context("writing to stdout")
}
