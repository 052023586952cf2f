//! `memwire resource rm`: remove a resource's name.

use anyhow::Result;

use super::options;
use crate::cli::Globals;

/// Remove a resource's name at once, held or not: its holders keep their memory, new opens
/// fail.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The resource name.
    name: String,
}

pub(crate) fn run(cx: &Globals, args: &Args) -> Result<()> {
    Ok(options(cx).remove(&args.name)?)
}
