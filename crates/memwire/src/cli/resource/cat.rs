//! `memwire resource cat`: the resource's contents go to stdout, byte for byte.

use std::io::Write;

use anyhow::{Context as _, Result};

use super::options;
use crate::cli::Globals;

/// Write a resource's contents (what the last `put` stored) to stdout.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The resource name.
    name: String,
}

pub(crate) fn run(cx: &Globals, args: &Args) -> Result<()> {
    let resource = options(cx).open(&args.name)?;
    let data = resource.get()?;
    resource.release()?;
    let mut out = std::io::stdout().lock();
    out.write_all(&data).context("writing to stdout")?;
    out.flush().context("writing to stdout")
}
