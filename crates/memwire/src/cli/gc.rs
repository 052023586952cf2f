//! `memwire gc`: removes resources that no live process holds, and the sockets of transport
//! hosts and store servers that died.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context as _, Result};
use memwire::shm::resource;
use serde::Serialize;

use super::row::{HostRow, ResourceRow, Row, StoreServerRow, tables};
use super::units::parse_duration;
use super::{Globals, error_chain};

/// Remove resources nobody holds.
///
/// A resource is removed when no live process holds it and it is at least --max-age old, or
/// it outlived its TTL. A resource a live process holds is never removed. Files under memwire's
/// prefix that are not memwire resources are never touched: they are reported as skipped.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Only remove orphans at least this old (`500ms`, `30s`, `5m`); expired ones go anyway.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    max_age: Duration,
    /// Report what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Collect in every namespace of this user, not just one.
    #[arg(long)]
    all_namespaces: bool,
    /// Print a JSON object `{removed, kept, skipped, dry_run}` instead of text.
    #[arg(long)]
    json: bool,
}

/// A file gc left alone, and why.
#[derive(Debug, Serialize)]
struct SkippedRow {
    path: String,
    error: String,
}

#[derive(Debug, Serialize)]
struct Report {
    dry_run: bool,
    removed: Vec<Row>,
    kept: usize,
    skipped: Vec<SkippedRow>,
}

pub(crate) fn run(cx: &Globals, args: &Args) -> Result<()> {
    let scope = cx.scope(args.all_namespaces);
    let report =
        resource::gc(&scope, args.max_age, args.dry_run).context("collecting resources")?;
    let report = Report {
        dry_run: args.dry_run,
        removed: report
            .removed
            .iter()
            .map(|info| Row::Resource(ResourceRow::from(info)))
            .chain(
                memwire::transport::remove_stale_hosts(args.dry_run)
                    .context("removing stale host sockets")?
                    .iter()
                    .map(|h| Row::TransportHost(HostRow::from(h))),
            )
            .chain(
                super::ls::servers::remove_stale(args.dry_run)
                    .context("removing stale store server sockets")?
                    .into_iter()
                    .map(|(name, socket)| {
                        Row::StoreServer(StoreServerRow {
                            name,
                            pid: None,
                            socket,
                            tenants: None,
                            problem: Some("stale: nobody answers".to_owned()),
                        })
                    }),
            )
            .collect(),
        kept: report.kept,
        skipped: report
            .skipped
            .iter()
            .map(|s| SkippedRow {
                path: s.path.display().to_string(),
                error: error_chain(&s.error),
            })
            .collect(),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return out.flush().context("writing to stdout");
    }
    for s in &report.skipped {
        eprintln!("skipped {}: {}", s.path, s.error);
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    if report.removed.is_empty() {
        writeln!(out, "nothing to remove ({} kept)", report.kept)?;
    } else {
        writeln!(
            out,
            "{verb} {} resource(s) and stale socket(s), kept {}:",
            report.removed.len(),
            report.kept
        )?;
        for table in tables(&report.removed, args.all_namespaces) {
            writeln!(out, "{table}")?;
        }
    }
    out.flush().context("writing to stdout")
}
