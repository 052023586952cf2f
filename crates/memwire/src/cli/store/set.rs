//! `memwire set T/S/V VALUE`: write one variable (a missing tenant or service is created for an
//! admin key), optionally only at an expected version.

use std::io::Read as _;

use anyhow::{Context as _, Result};
use memwire::store::protocol::VarPath;

use super::{Target, from_hex};

/// Set a variable.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The variable: `TENANT/SERVICE/VARIABLE`.
    path: VarPath,
    /// The value, as text; `-` reads it from stdin, byte for byte.
    #[arg(allow_hyphen_values = true)]
    value: String,
    /// The value is hex (`ff00`), decoded before it is stored.
    #[arg(long)]
    hex: bool,
    /// Set only if the variable is at this version now (`0`: only if it does not exist); else
    /// fail with `conflict`.
    #[arg(long, value_name = "N")]
    expect_version: Option<u64>,
    /// Print `{"path", "version", "timestamp_ms"}`.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let mut value = if args.value == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .context("reading the value from stdin")?;
        bytes
    } else {
        args.value.clone().into_bytes()
    };
    if args.hex {
        value = from_hex(std::str::from_utf8(&value).context("hex value is not text")?)?;
    }
    let client = args.target.connect()?;
    let written = client.set(&args.path, &value, args.expect_version)?;
    super::print_written(&args.path, written, args.json)
}
