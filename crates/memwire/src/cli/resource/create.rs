//! `memwire resource create`: make a resource, and optionally hold it until a signal.

use std::time::Duration;

use anyhow::{Context as _, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::options;
use crate::cli::Globals;
use crate::cli::units::{parse_duration, parse_size};

/// Create a resource.
///
/// Without --hold, the command creates the resource and exits: nobody holds it any more, so
/// it is an orphan from the start, and stays until `memwire gc` (or `memwire resource rm`)
/// removes it. With --hold, the command holds it until SIGINT (Ctrl-C) or SIGTERM, so a shell
/// script can keep a resource alive for as long as it needs it.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The resource name: 1 to 200 bytes of `[A-Za-z0-9._-]`.
    name: String,
    /// Payload size: `4096`, `64KiB`, `1MiB`.
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    size: u64,
    /// Time to live (`500ms`, `30s`, `5m`): past it, the resource can no longer be opened and
    /// `gc` removes it once nobody holds it.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    ttl: Option<Duration>,
    /// Hold the resource until SIGINT or SIGTERM, then release it and exit 0.
    #[arg(long)]
    hold: bool,
    /// Remove the name when the last holder releases it (needs --hold: without it, the
    /// resource would vanish as soon as this command exits).
    #[arg(long, requires = "hold")]
    remove_when_unused: bool,
}

pub(crate) fn run(cx: &Globals, args: &Args) -> Result<()> {
    // Catch the signals before the resource exists, so none arrives between creating it and
    // waiting without our hearing it.
    let mut signals = if args.hold {
        Some(Signals::new([SIGINT, SIGTERM]).context("installing signal handlers")?)
    } else {
        None
    };
    let resource = options(cx)
        .ttl(args.ttl)
        .remove_when_unused(args.remove_when_unused)
        .create(&args.name, args.size)?;
    let Some(signals) = signals.as_mut() else {
        eprintln!(
            "created {} ({} bytes) in namespace `{}`; nobody holds it: `memwire gc` removes it",
            resource.name(),
            resource.len(),
            resource.namespace(),
        );
        return resource
            .release()
            .with_context(|| format!("releasing {}", args.name));
    };
    eprintln!(
        "holding {} (pid {}); Ctrl-C to release",
        resource.name(),
        std::process::id()
    );
    let signal = signals.forever().next();
    tracing::debug!(?signal, name = %resource.name(), "releasing");
    resource
        .release()
        .with_context(|| format!("releasing {}", args.name))
}
