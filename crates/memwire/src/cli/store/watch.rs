//! `memwire watch T[/S[/V]]`: one line per change of a tenant, a service or a variable, in
//! version order, flushed as it comes, until SIGINT or until the server goes away (then an
//! error line and exit status 1).
//!
//! ```text
//! set acme/billing/rate = 0.21 (version 7)
//! delete acme/billing/old (version 8)
//! lagged: missed from 9, resumed at 5000
//! current acme/billing/rate = 0.30 (version 4990)
//! synced at version 5000
//! ```

use std::io::Write;

use anyhow::{Context as _, Result};
use memwire::store::WatchEvent;
use memwire::store::protocol::Scope;
use memwire::store::segment::ChangeKind;
use serde_json::json;

use super::{Target, to_hex, value_fields};

/// Print the changes of a tenant, service or variable as they happen.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// What to watch: `TENANT`, `TENANT/SERVICE` or `TENANT/SERVICE/VARIABLE`.
    scope: Scope,
    /// Start at this version (inclusive; resume after a `watch` that stopped), not at now.
    #[arg(long, value_name = "N")]
    from_version: Option<u64>,
    /// Print values as hex.
    #[arg(long)]
    hex: bool,
    /// Print one JSON object per event, with an `event` field: `set`, `delete`, `lagged`,
    /// `current`, `synced`.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let client = args.target.connect()?;
    let mut watcher = client.watch(&args.scope, args.from_version)?;
    let mut out = std::io::stdout().lock();
    loop {
        let event = watcher.next()?;
        if args.json {
            serde_json::to_writer(&mut out, &event_json(&event, args.hex))?;
            writeln!(out)?;
        } else {
            writeln!(out, "{}", event_line(&event, args.hex))?;
        }
        out.flush().context("writing to stdout")?;
    }
}

/// A value as a line shows it: the text, else (or with `--hex`) `0x` and its hex.
fn shown(value: &[u8], hex: bool) -> String {
    match std::str::from_utf8(value) {
        Ok(text) if !hex => text.to_owned(),
        _ => format!("0x{}", to_hex(value)),
    }
}

/// The event as one line of text.
fn event_line(event: &WatchEvent, hex: bool) -> String {
    match event {
        WatchEvent::Changed {
            path,
            kind: ChangeKind::Set,
            value: Some(value),
            version,
            ..
        } => format!("set {path} = {} (version {version})", shown(value, hex)),
        // A later write replaced the value before the watcher read it; that write follows.
        WatchEvent::Changed {
            path,
            kind: ChangeKind::Set,
            value: None,
            version,
            ..
        } => format!("set {path} (version {version}; value since replaced)"),
        WatchEvent::Changed { path, version, .. } => format!("delete {path} (version {version})"),
        WatchEvent::Lagged {
            missed_from,
            resumed_at,
        } => format!("lagged: missed from {missed_from}, resumed at {resumed_at}"),
        WatchEvent::Current {
            path,
            value,
            version,
            ..
        } => format!("current {path} = {} (version {version})", shown(value, hex)),
        WatchEvent::Synced { version } => format!("synced at version {version}"),
    }
}

/// The event as one JSON object.
fn event_json(event: &WatchEvent, hex: bool) -> serde_json::Value {
    let with_value = |event: &str,
                      path: &dyn std::fmt::Display,
                      value: Option<&[u8]>,
                      version: u64,
                      timestamp_ms: u64| {
        let mut object = serde_json::Map::new();
        object.insert("event".to_owned(), event.into());
        object.insert("path".to_owned(), path.to_string().into());
        if let Some(value) = value {
            value_fields(&mut object, value, hex);
        }
        object.insert("version".to_owned(), version.into());
        object.insert("timestamp_ms".to_owned(), timestamp_ms.into());
        serde_json::Value::Object(object)
    };
    match event {
        WatchEvent::Changed {
            path,
            kind: ChangeKind::Set,
            value,
            version,
            timestamp_ms,
        } => {
            let mut object = with_value("set", path, value.as_deref(), *version, *timestamp_ms);
            if value.is_none() {
                object["value"] = serde_json::Value::Null;
                object["replaced"] = true.into();
            }
            object
        }
        WatchEvent::Changed {
            path,
            version,
            timestamp_ms,
            ..
        } => with_value("delete", path, None, *version, *timestamp_ms),
        WatchEvent::Lagged {
            missed_from,
            resumed_at,
        } => json!({"event": "lagged", "missed_from": missed_from, "resumed_at": resumed_at}),
        WatchEvent::Current {
            path,
            value,
            version,
            timestamp_ms,
        } => with_value("current", path, Some(value), *version, *timestamp_ms),
        WatchEvent::Synced { version } => json!({"event": "synced", "version": version}),
    }
}
