//! `memwire call SERVICE METHOD [ARGS…]`: call a running named service by name, with JSON
//! arguments, and print its result as JSON (a streaming method prints one item per line).

use std::io::Write;
use std::time::Duration;

use anyhow::{Context as _, Result};
use comfy_table::{Table, presets};
use memwire::rpc::{ClientConfig, FunctionInfo, Worker};

use super::units::parse_duration;

/// Call a method of a running service.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The service's name, as `memwire ls` lists it.
    service: String,
    /// The method to call (omit with `--list`).
    #[arg(required_unless_present = "list")]
    method: Option<String>,
    /// The arguments, each one JSON value: `1`, `"text"`, `[1,2]`, `{"a":1}`.
    #[arg(allow_hyphen_values = true)]
    args: Vec<String>,
    /// List the service's functions instead of calling one.
    #[arg(long, conflicts_with = "method")]
    list: bool,
    /// Give up after this long (e.g. `500ms`, `10s`).
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    timeout: Duration,
    /// Print JSON indented (results), or the function list as JSON (`--list`).
    #[arg(long)]
    pretty: bool,
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(call(args))
}

async fn call(args: &Args) -> Result<()> {
    let values = args
        .args
        .iter()
        .enumerate()
        .map(|(i, text)| {
            serde_json::from_str::<serde_json::Value>(text).with_context(|| {
                format!(
                    "argument {} ({text:?}) is not JSON; a string needs quotes: '\"{text}\"'",
                    i + 1
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let config = ClientConfig {
        heartbeat: None,
        breaker: None,
        ..ClientConfig::default()
    };
    let worker = Worker::connect_with(&args.service, config)
        .await
        .with_context(|| format!("connecting to service {:?}", args.service))?;
    let client = worker.client();
    let functions = tokio::time::timeout(args.timeout, client.list_functions())
        .await
        .with_context(|| format!("no answer from {:?} in {:?}", args.service, args.timeout))??;
    let mut out = std::io::stdout().lock();
    let Some(method) = args.method.as_deref() else {
        if args.pretty {
            serde_json::to_writer_pretty(&mut out, &functions)?;
            writeln!(out)?;
        } else {
            writeln!(out, "{}", function_table(&functions))?;
        }
        return Ok(out.flush()?);
    };
    let streaming = functions
        .iter()
        .find(|f| f.name == method)
        .is_some_and(|f| f.streaming);
    let print = |out: &mut std::io::StdoutLock<'_>, value: &serde_json::Value| -> Result<()> {
        if args.pretty {
            serde_json::to_writer_pretty(&mut *out, value)?;
        } else {
            serde_json::to_writer(&mut *out, value)?;
        }
        writeln!(out)?;
        Ok(())
    };
    if streaming {
        let mut stream = client
            .stream::<_, serde_json::Value>(method, &values)
            .await?;
        // `None`: a timeout past what an `Instant` holds (`--timeout 500000000000y`) never ends.
        let deadline = tokio::time::Instant::now().checked_add(args.timeout);
        loop {
            let next = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, stream.next())
                    .await
                    .with_context(|| format!("the stream did not end within {:?}", args.timeout))?,
                None => stream.next().await,
            };
            match next {
                Some(item) => print(&mut out, &item?)?,
                None => break,
            }
            out.flush()?;
        }
    } else {
        let value: serde_json::Value = client
            .call_with_timeout(method, &values, args.timeout)
            .await?;
        print(&mut out, &value)?;
    }
    Ok(out.flush()?)
}

fn function_table(functions: &[FunctionInfo]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_header(vec!["FUNCTION", "RETURNS", "DOC"]);
    for f in functions {
        let params: Vec<String> = f
            .params
            .iter()
            .map(|p| format!("{}: {}", p.name, p.ty))
            .collect();
        let returns = if f.streaming {
            format!("stream of {}", f.returns)
        } else {
            f.returns.clone()
        };
        let doc = f.doc.lines().next().unwrap_or_default().to_owned();
        table.add_row(vec![
            format!("{}({})", f.name, params.join(", ")),
            returns,
            doc,
        ]);
    }
    table
}
