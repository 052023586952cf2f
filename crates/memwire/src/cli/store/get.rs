//! `memwire get T/S/V`: one variable's value, as text (or hex), or as JSON with its version.

use std::io::Write;

use anyhow::{Context as _, Result, bail};
use memwire::store::protocol::VarPath;

use super::{Target, to_hex, value_fields};

/// Print a variable's value.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The variable: `TENANT/SERVICE/VARIABLE`.
    path: VarPath,
    /// Print the value as hex (a value that is not UTF-8 text needs this).
    #[arg(long)]
    hex: bool,
    /// Print `{"path", "value", "hex"?, "version", "timestamp_ms"}` (`value` is null when the
    /// bytes are not UTF-8; `hex` is there then, or with `--hex`).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let client = args.target.connect()?;
    let Some(stored) = client.get(&args.path)? else {
        bail!("not found: {}", args.path);
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut object = serde_json::Map::new();
        object.insert("path".to_owned(), args.path.to_string().into());
        value_fields(&mut object, &stored.value, args.hex);
        object.insert("version".to_owned(), stored.version.into());
        object.insert("timestamp_ms".to_owned(), stored.timestamp_ms.into());
        serde_json::to_writer(&mut out, &object)?;
        writeln!(out)?;
    } else if args.hex {
        writeln!(out, "{}", to_hex(&stored.value))?;
    } else {
        let Ok(text) = std::str::from_utf8(&stored.value) else {
            bail!(
                "{} holds {} bytes that are not UTF-8 text: add --hex (or --json)",
                args.path,
                stored.value.len()
            );
        };
        writeln!(out, "{text}")?;
    }
    out.flush().context("writing to stdout")
}
