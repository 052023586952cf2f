//! `memwire resource put`: stdin becomes the resource's contents.

use std::io::Read;

use anyhow::{Context as _, Result, bail};

use super::options;
use crate::cli::Globals;

/// Replace a resource's contents with stdin (which must fit the resource).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The resource name.
    name: String,
}

pub(crate) fn run(cx: &Globals, args: &Args) -> Result<()> {
    let resource = options(cx).open(&args.name)?;
    let capacity = resource.len() as u64;
    // Read one byte more than fits, so an oversized input is caught without buffering it all.
    let mut stdin = std::io::stdin().lock();
    let mut data = Vec::new();
    (&mut stdin)
        .take(capacity + 1)
        .read_to_end(&mut data)
        .context("reading stdin")?;
    if data.len() as u64 > capacity {
        // Count the rest, to name the real size.
        let rest = std::io::copy(&mut stdin, &mut std::io::sink()).context("reading stdin")?;
        bail!(
            "stdin holds {} bytes, more than the {capacity} bytes of resource {:?}",
            data.len() as u64 + rest,
            args.name
        );
    }
    resource.put(&data)?;
    Ok(resource.release()?)
}
