//! `memwire del T/S/V`: delete one variable, optionally only at an expected version.

use anyhow::Result;
use memwire::store::protocol::VarPath;

use super::Target;

/// Delete a variable.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The variable: `TENANT/SERVICE/VARIABLE`.
    path: VarPath,
    /// Delete only if the variable is at this version now; else fail with `conflict`.
    #[arg(long, value_name = "N")]
    expect_version: Option<u64>,
    /// Print `{"path", "version", "timestamp_ms"}` (the version of the delete).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let client = args.target.connect()?;
    let written = client.delete(&args.path, args.expect_version)?;
    super::print_written(&args.path, written, args.json)
}
