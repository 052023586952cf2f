//! `memwire key create / list / revoke`: API keys, with an admin key, through the local server
//! or a remote one (`--remote ws[s]://HOST:PORT`); the same output either way.

use std::io::Write;

use anyhow::{Context as _, Result};
use comfy_table::{Table, presets};
use memwire::store::local::KeyInfo;
use memwire::store::{Role, ServicePattern};

use super::Target;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Make a key; it is printed once, alone on the last line.
    Create(CreateArgs),
    /// List the keys (never the keys themselves: ids, tenants, roles).
    List(ListArgs),
    /// Revoke a key: its requests fail from now on.
    Revoke(RevokeArgs),
}

/// Make an API key.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("whose").required(true).args(["tenant", "all_tenants"])))]
pub(crate) struct CreateArgs {
    /// The tenant the key is for.
    #[arg(long, value_name = "T")]
    tenant: Option<String>,
    /// A key for every tenant (with `--role admin`: an admin of everything).
    #[arg(long)]
    all_tenants: bool,
    /// `read`, `write` or `admin`.
    #[arg(long)]
    role: Role,
    /// Limit the key to the services matching this pattern (`billing`, `billing-*`).
    #[arg(long, value_name = "PATTERN")]
    services: Option<ServicePattern>,
    /// A note to tell keys apart in `key list`.
    #[arg(long, value_name = "L")]
    label: Option<String>,
    /// Print `{"key", "id"}`.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

/// List API keys.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Print a JSON array of keys instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

/// Revoke an API key.
#[derive(Debug, clap::Args)]
pub(crate) struct RevokeArgs {
    /// The key's id, as `key create` and `key list` show it.
    id: String,
    #[command(flatten)]
    target: Target,
}

pub(crate) fn run(cmd: &Command) -> Result<()> {
    match cmd {
        Command::Create(args) => create(args),
        Command::List(args) => list(args),
        Command::Revoke(args) => revoke(args),
    }
}

fn create(args: &CreateArgs) -> Result<()> {
    let client = args.target.connect()?;
    let (key, id) = client.create_key(
        args.tenant.as_deref(),
        args.role,
        args.services.as_ref().map(ServicePattern::as_str),
        args.label.as_deref(),
    )?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &serde_json::json!({"key": key, "id": id}))?;
        writeln!(out)?;
    } else {
        let tenant = args
            .tenant
            .as_deref()
            .map_or_else(|| "every tenant".to_owned(), |t| format!("tenant {t}"));
        writeln!(
            out,
            "created key {id} ({} of {tenant}); it is shown once:",
            args.role
        )?;
        writeln!(out, "{key}")?;
    }
    out.flush().context("writing to stdout")
}

fn list(args: &ListArgs) -> Result<()> {
    let keys = args.target.connect()?.list_keys()?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &keys)?;
        writeln!(out)?;
    } else if keys.is_empty() {
        writeln!(out, "no keys")?;
    } else {
        writeln!(out, "{}", key_table(&keys))?;
    }
    out.flush().context("writing to stdout")
}

fn key_table(keys: &[KeyInfo]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_header(vec![
        "ID", "TENANT", "ROLE", "SERVICES", "LABEL", "CREATED", "REVOKED",
    ]);
    for k in keys {
        let created =
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(k.created_at_unix_ms);
        table.add_row(vec![
            k.id.clone(),
            k.tenant.clone().unwrap_or_else(|| "*".to_owned()),
            k.role.to_string(),
            k.services.clone().unwrap_or_else(|| "*".to_owned()),
            k.label.clone().unwrap_or_default(),
            humantime::format_rfc3339_seconds(created).to_string(),
            if k.revoked { "yes" } else { "no" }.to_owned(),
        ]);
    }
    table
}

fn revoke(args: &RevokeArgs) -> Result<()> {
    args.target.connect()?.revoke_key(&args.id)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "revoked key {}", args.id)?;
    out.flush().context("writing to stdout")
}
