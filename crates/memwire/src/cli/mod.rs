//! Command-line parsing and dispatch: one module per command.
//!
//! | module | command |
//! | --- | --- |
//! | [`ls`] | `memwire ls` |
//! | [`gc`] | `memwire gc` |
//! | [`resource`] | `memwire resource create / put / cat / rm / info` |
//! | [`call`] | `memwire call SERVICE METHOD [ARGS…]`, `memwire call SERVICE --list` |
//! | [`serve`] | `memwire serve`: the store server (local socket, WebSocket) |
//! | [`store`] | the store's clients: `memwire get`, `set`, `del`, `watch`, `key create / list / revoke`, `tenant create / delete` |
//! | [`bench`] | `memwire bench transport`, `bench rpc` and `bench store` (and their hidden helpers, `memwire __bench-peer`, `__bench-rpc-peer`, `__bench-pinned`) |
//! | [`row`] | the rows `ls`, `gc` and `info` print, as tables or JSON |
//! | [`units`] | sizes and durations on the command line and in tables |

mod bench;
mod call;
mod gc;
mod ls;
mod resource;
mod row;
mod serve;
mod store;
mod units;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use memwire::shm::Namespace;
use memwire::shm::name::NAMESPACE_ENV;
use memwire::shm::resource::Scope;

/// Shared-memory IPC for processes on one machine.
#[derive(Debug, Parser)]
#[command(
    name = "memwire",
    version,
    about = "memwire: shared-memory IPC between processes on one machine",
    propagate_version = true
)]
pub(crate) struct Cli {
    /// Namespace to work in (overrides MEMWIRE_NAMESPACE; default `default`).
    #[arg(long, global = true, value_name = "NS")]
    namespace: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List memwire resources: size, live holders, age, TTL and state.
    Ls(ls::Args),
    /// Remove resources that no live process holds.
    Gc(gc::Args),
    /// Create, fill, read and remove named resources.
    #[command(subcommand)]
    Resource(resource::Command),
    /// Run the store server: shared variables for local (mapped) and WebSocket clients.
    Serve(serve::Args),
    /// Call a method of a running service by name, with JSON arguments.
    Call(call::Args),
    /// Print a store variable's value (`TENANT/SERVICE/VARIABLE`).
    Get(store::GetArgs),
    /// Set a store variable (VALUE, or `-` for stdin).
    Set(store::SetArgs),
    /// Delete a store variable.
    Del(store::DelArgs),
    /// Print the changes of a store tenant, service or variable as they happen.
    Watch(store::WatchArgs),
    /// Create, list and revoke the store's API keys.
    #[command(subcommand)]
    Key(store::KeyCommand),
    /// Create and delete the store's tenants.
    #[command(subcommand)]
    Tenant(store::TenantCommand),
    /// Benchmarks to run on this machine: message passing between two processes.
    #[command(subcommand)]
    Bench(bench::Command),
    /// The peer process `memwire bench` spawns (internal).
    #[command(name = "__bench-peer", hide = true)]
    BenchPeer(bench::PeerArgs),
    /// The worker `memwire bench rpc` spawns (internal).
    #[command(name = "__bench-rpc-peer", hide = true)]
    BenchRpcPeer(bench::RpcPeerArgs),
    /// Pins itself and runs a program: the servers `memwire bench store` starts (internal).
    #[command(name = "__bench-pinned", hide = true)]
    BenchPinned(bench::PinnedArgs),
}

impl Cli {
    /// Parses the command line. Help and `--version` print and give `Err(SUCCESS)`; a usage
    /// error prints one line and gives `Err(FAILURE)`.
    pub(crate) fn parse_args() -> Result<Self, ExitCode> {
        match Self::try_parse() {
            Ok(cli) => Ok(cli),
            Err(err) if !err.use_stderr() => {
                // --help, --version: clap prints to stdout.
                let _ = err.print();
                Err(ExitCode::SUCCESS)
            }
            Err(err) => {
                eprintln!("{}", one_line(&err.render().to_string()));
                Err(ExitCode::FAILURE)
            }
        }
    }
}

/// Folds clap's multi-line usage error into one line, dropping the usage and help hints.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `err: its source: its source's source`, on one line, like anyhow's `{:#}`.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        line.push_str(": ");
        line.push_str(&e.to_string());
        source = e.source();
    }
    line.replace('\n', " ")
}

/// What every command is given: the namespace it works in (global options).
#[derive(Debug)]
pub(crate) struct Globals {
    /// `--namespace`, else `MEMWIRE_NAMESPACE`, else `default`.
    pub(crate) namespace: Namespace,
}

impl Globals {
    fn new(cli_namespace: Option<&str>) -> Result<Self> {
        let namespace = match cli_namespace {
            Some(ns) => Namespace::new(ns)?,
            None => Namespace::from_env().with_context(|| format!("reading {NAMESPACE_ENV}"))?,
        };
        Ok(Self { namespace })
    }

    /// `Scope::All` with `--all-namespaces`, else this namespace.
    pub(crate) fn scope(&self, all_namespaces: bool) -> Scope {
        if all_namespaces {
            Scope::All
        } else {
            Scope::Namespace(self.namespace.clone())
        }
    }
}

/// Runs the parsed command.
pub(crate) fn run(cli: Cli) -> Result<()> {
    let cx = Globals::new(cli.namespace.as_deref())?;
    match cli.command {
        Command::Ls(args) => ls::run(&cx, &args),
        Command::Gc(args) => gc::run(&cx, &args),
        Command::Resource(cmd) => resource::run(&cx, cmd),
        Command::Call(args) => call::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Get(args) => store::get(&args),
        Command::Set(args) => store::set(&args),
        Command::Del(args) => store::del(&args),
        Command::Watch(args) => store::watch(&args),
        Command::Key(cmd) => store::key(&cmd),
        Command::Tenant(cmd) => store::tenant(&cmd),
        Command::Bench(cmd) => bench::run(&cmd),
        Command::BenchPeer(args) => bench::run_peer(&args),
        Command::BenchRpcPeer(args) => bench::run_rpc_peer(&args),
        Command::BenchPinned(args) => bench::run_pinned(&args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_errors_fold_to_one_line() {
        let text = "error: the following required arguments were not provided:\n  --size <BYTES>\n\nUsage: memwire resource create --size <BYTES> <NAME>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(text),
            "error: the following required arguments were not provided: --size <BYTES>"
        );
    }
}
