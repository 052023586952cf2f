//! `memwire resource ...`: one named resource at a time.
//!
//! | module | command |
//! | --- | --- |
//! | [`create`] | `create NAME --size BYTES [--ttl D] [--hold] [--remove-when-unused]` |
//! | [`put`] | `put NAME` (stdin → payload) |
//! | [`cat`] | `cat NAME` (payload → stdout) |
//! | [`rm`] | `rm NAME` |
//! | [`info`] | `info NAME [--json]` |

mod cat;
mod create;
mod info;
mod put;
mod rm;

use anyhow::Result;
use clap::Subcommand;
use memwire::shm::{Resource, ResourceOptions};

use super::Globals;

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a resource.
    Create(create::Args),
    /// Replace a resource's contents with stdin.
    Put(put::Args),
    /// Write a resource's contents to stdout.
    Cat(cat::Args),
    /// Remove a resource's name at once, held or not (its holders keep their memory).
    Rm(rm::Args),
    /// Show one resource: size, holders, age, TTL, state.
    Info(info::Args),
}

pub(crate) fn run(cx: &Globals, cmd: Command) -> Result<()> {
    match cmd {
        Command::Create(args) => create::run(cx, &args),
        Command::Put(args) => put::run(cx, &args),
        Command::Cat(args) => cat::run(cx, &args),
        Command::Rm(args) => rm::run(cx, &args),
        Command::Info(args) => info::run(cx, &args),
    }
}

/// Options that create or open resources in the context's namespace.
fn options(cx: &Globals) -> ResourceOptions {
    Resource::options().namespace(cx.namespace.clone())
}
