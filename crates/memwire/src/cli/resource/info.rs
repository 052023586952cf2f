//! `memwire resource info`: one resource, as `ls` sees it.

use std::io::Write;

use anyhow::{Context as _, Result};
use memwire::shm::resource::{self, Scope};
use memwire::shm::{Error, Name};

use crate::cli::Globals;
use crate::cli::row::{ResourceRow, Row, resource_details};

/// Show one resource without opening it (so an expired one can be inspected too).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The resource name.
    name: String,
    /// Print a JSON object (an `ls --json` row) instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cx: &Globals, args: &Args) -> Result<()> {
    let name = Name::new(&args.name)?;
    let infos =
        resource::list(&Scope::Namespace(cx.namespace.clone())).context("listing resources")?;
    let Some(info) = infos.iter().find(|i| i.name == name) else {
        return Err(Error::NotFound {
            path: cx.namespace.shm_path(&name),
            name: args.name.clone(),
        }
        .into());
    };
    let row = ResourceRow::from(info);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &Row::Resource(row))?;
        writeln!(out)?;
    } else {
        writeln!(out, "{}", resource_details(&row))?;
    }
    out.flush().context("writing to stdout")
}
