//! `memwire call` against a running named service (this test binary, re-run in the
//! `service` role), and `memwire ls` listing it.

#![allow(clippy::unwrap_used)]

#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;

use std::process::{Command, Output};
use std::sync::Arc;

use anyhow::{Result, bail, ensure};
use memwire::rpc::{BoxFuture, Fault, FunctionInfo, Param, Request, Service};
use support::{command, spawn, trial, wait_until};

const SERVICE_ENV: &str = "MEMWIRE_TEST_SERVICE";

fn main() {
    support::private_runtime_dir("memwire-cli-call");
    support::main(
        roles,
        vec![trial(
            "call_lists_calls_streams_and_reports_errors",
            call_service,
        )],
    )
}

fn roles(role: &str) -> Result<()> {
    match role {
        "service" => Ok(memwire::rpc::serve_as(&std::env::var(SERVICE_ENV)?, Calc)?),
        other => bail!("unknown role {other:?}"),
    }
}

/// A small service written by hand.
struct Calc;

impl Service for Calc {
    fn functions(&self) -> Vec<FunctionInfo> {
        let param = |name: &str, ty: &str| Param {
            name: name.into(),
            ty: ty.into(),
        };
        vec![
            FunctionInfo {
                name: "add".into(),
                params: vec![param("a", "i64"), param("b", "i64")],
                returns: "i64".into(),
                streaming: false,
                doc: "Adds two numbers.".into(),
            },
            FunctionInfo {
                name: "greet".into(),
                params: vec![param("who", "Person")],
                returns: "String".into(),
                streaming: false,
                doc: String::new(),
            },
            FunctionInfo {
                name: "count".into(),
                params: vec![param("n", "u64")],
                returns: "u64".into(),
                streaming: true,
                doc: "Counts from 0 to n - 1.".into(),
            },
        ]
    }

    fn call(self: Arc<Self>, request: Request) -> BoxFuture<Result<Vec<u8>, Fault>> {
        #[derive(serde::Deserialize)]
        struct Person {
            name: String,
        }
        match request.method() {
            "add" => Box::pin(async move {
                let ((a, b), r): ((i64, i64), _) = request.into_args()?;
                r.reply(&(a + b))
            }),
            "greet" => Box::pin(async move {
                let ((who,), r): ((Person,), _) = request.into_args()?;
                r.reply(&format!("hello, {}", who.name))
            }),
            "count" => Box::pin(async move {
                let ((n,), r): ((u64,), _) = request.into_args()?;
                let sink = r.sink::<u64>();
                for i in 0..n {
                    sink.send(&i).await?;
                }
                Ok(Vec::new())
            }),
            _ => Box::pin(async { Err(Fault::UnknownMethod) }),
        }
    }
}

fn memwire(args: &[&str]) -> Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_memwire"))
        .args(args)
        .output()?)
}

fn ok(args: &[&str]) -> Result<String> {
    let out = memwire(args)?;
    ensure!(
        out.status.success(),
        "memwire {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

fn fails(args: &[&str]) -> Result<String> {
    let out = memwire(args)?;
    ensure!(!out.status.success(), "memwire {args:?} succeeded");
    let err = String::from_utf8(out.stderr)?;
    ensure!(err.lines().count() == 1, "not one line: {err:?}");
    Ok(err)
}

fn call_service() -> Result<()> {
    let name = format!("calc-{}", std::process::id());
    let mut cmd = command("service")?;
    cmd.env(SERVICE_ENV, &name);
    let _service = spawn(cmd, None)?;
    wait_until("the service to register", || {
        Ok(memwire::rpc::registry::list()?
            .iter()
            .any(|e| e.name == name))
    })?;

    ensure!(ok(&["call", &name, "add", "1", "2"])? == "3\n");
    ensure!(ok(&["call", &name, "add", "-5", "2"])? == "-3\n");
    let greeting = ok(&["call", &name, "greet", r#"{"name":"Ada"}"#])?;
    ensure!(greeting == "\"hello, Ada\"\n", "greet printed {greeting:?}");
    let items = ok(&["call", &name, "count", "4"])?;
    ensure!(items == "0\n1\n2\n3\n", "count printed {items:?}");
    // A timeout longer than a monotonic clock can count to: it never runs out.
    let items = ok(&["call", &name, "--timeout", "500000000000y", "count", "2"])?;
    ensure!(items == "0\n1\n", "count printed {items:?}");

    let list = ok(&["call", &name, "--list"])?;
    ensure!(
        list.contains("add(a: i64, b: i64)")
            && list.contains("stream of u64")
            && list.contains("Adds two numbers."),
        "list: {list}"
    );
    let json: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&["call", &name, "--list", "--pretty"])?)?;
    ensure!(json.len() == 3 && json[2]["streaming"] == true, "{json:?}");

    let e = fails(&["call", &name, "nope"])?;
    ensure!(e.contains("unknown method \"nope\""), "{e}");
    let e = fails(&["call", &name, "add", "1", "x"])?;
    ensure!(e.contains("argument 2") && e.contains("not JSON"), "{e}");
    let e = fails(&["call", &name, "add", "\"a\"", "1"])?;
    ensure!(e.contains("bad arguments"), "{e}");
    let e = fails(&["call", "no-such-service", "add"])?;
    ensure!(e.contains("no-such-service"), "{e}");

    let rows: Vec<serde_json::Value> = serde_json::from_str(&ok(&["ls", "--json"])?)?;
    let row = rows
        .iter()
        .find(|r| r["kind"] == "service" && r["name"] == name.as_str());
    let Some(row) = row else {
        bail!("ls does not list the service: {rows:?}")
    };
    ensure!(row["health"] == "live" && row["clients"] == 0, "{row}");
    ensure!(
        !rows
            .iter()
            .any(|r| r["kind"] == "transport_host" && r["name"] == name.as_str()),
        "the service's host is listed twice"
    );
    Ok(())
}
