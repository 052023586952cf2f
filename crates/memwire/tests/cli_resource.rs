//! The `memwire` command against real processes: resources made, held, killed and collected.
//!
//! Each test has its own namespace and runtime directory, so tests never see each other's
//! resources, and collects what it made before it ends. Tests take [`SERIAL`] so that at most
//! one of them runs processes at a time (this machine has 2 vCPUs).
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

static SERIAL: Mutex<()> = Mutex::new(());

/// How long a poll waits for a state it expects before the test fails (instead of hanging).
const DEADLINE: Duration = Duration::from_secs(20);

/// One test's private world: a namespace and a runtime directory, and the serial lock.
struct World {
    namespace: String,
    runtime_dir: TempDir,
    _serial: MutexGuard<'static, ()>,
}

impl World {
    fn new(test: &str) -> Self {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        Self {
            namespace: format!("test-{test}-{}", std::process::id()),
            runtime_dir: TempDir::new().unwrap(),
            _serial: serial,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_memwire"));
        cmd.args(args)
            .env("MEMWIRE_NAMESPACE", &self.namespace)
            .env("MEMWIRE_RUNTIME_DIR", self.runtime_dir.path())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        cmd
    }

    /// A second namespace of this test's own, collected on drop too.
    fn other_namespace(&self) -> String {
        format!("{}-other", self.namespace)
    }

    /// Runs `memwire ARGS` to completion.
    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs `memwire ARGS` with `input` on stdin.
    fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // The command may refuse the input early and close its end: a broken pipe is fine.
        let _ = stdin.write_all(input);
        drop(stdin);
        child.wait_with_output().unwrap()
    }

    /// Runs `memwire ARGS`, asserting success, and parses its stdout as JSON.
    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert_success(&out, args);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `memwire ls --json`, as an array of rows.
    fn ls(&self) -> Vec<Value> {
        match self.json(&["ls", "--json"]) {
            Value::Array(rows) => rows,
            other => panic!("ls --json printed {other}, not an array"),
        }
    }

    /// The `ls --json` row named `name`, if listed.
    fn row(&self, name: &str) -> Option<Value> {
        self.ls().into_iter().find(|r| r["name"] == name)
    }

    /// Polls `ls --json` until the row of `name` satisfies `done`; fails after [`DEADLINE`].
    fn wait_for_row(&self, name: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let row = self.row(name);
            if let Some(row) = row.as_ref().filter(|r| done(r)) {
                return row.clone();
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{name} never became {what}; last row: {row:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Spawns `memwire resource create NAME --size 4096 --hold` and waits until `ls` shows it
    /// live with the child among its holders.
    fn hold(&self, name: &str) -> Holder {
        let child = self
            .command(&["resource", "create", name, "--size", "4096", "--hold"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut holder = Holder(child);
        let pid = holder.0.id();
        let start = Instant::now();
        loop {
            if let Some(status) = holder.0.try_wait().unwrap() {
                panic!("holder of {name} exited early with {status}");
            }
            let row = self.row(name);
            if row
                .as_ref()
                .is_some_and(|r| r["state"] == "live" && holders(r).contains(&pid))
            {
                return holder;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{name} never showed as held by {pid}; last row: {row:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Names that `gc --json ARGS` reports removed.
    fn gc(&self, args: &[&str]) -> Vec<String> {
        let mut full = vec!["gc", "--json"];
        full.extend_from_slice(args);
        let report = self.json(&full);
        assert_eq!(report["skipped"], Value::Array(Vec::new()), "{report}");
        report["removed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Collect whatever a failed test left behind in its own namespace.
        let _ = self.run(&["gc"]);
        let _ = self.run(&["gc", "--namespace", &self.other_namespace()]);
    }
}

/// A `--hold` child, killed (SIGKILL) and reaped on drop if the test did not end it.
struct Holder(Child);

impl Holder {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn holders(row: &Value) -> Vec<u32> {
    row["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| u32::try_from(p.as_u64().unwrap()).unwrap())
        .collect()
}

fn assert_success(out: &Output, args: &[&str]) {
    assert!(
        out.status.success(),
        "memwire {args:?} failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts exit status 1 with exactly one line on stderr, and returns that line.
fn assert_one_line_failure(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr:?}");
    assert!(stderr.starts_with("error: "), "stderr: {stderr:?}");
    stderr.trim_end().to_owned()
}

#[test]
fn put_then_cat_round_trips_every_byte_value() {
    let w = World::new("roundtrip");
    assert_success(
        &w.run(&["resource", "create", "blob", "--size", "16KiB"]),
        &["create"],
    );
    let data: Vec<u8> = (0..=255u8).cycle().take(3 * 1024 + 7).collect();
    let out = w.run_with_input(&["resource", "put", "blob"], &data);
    assert_success(&out, &["put"]);
    let out = w.run(&["resource", "cat", "blob"]);
    assert_success(&out, &["cat"]);
    assert_eq!(out.stdout, data);
    let row = w.row("blob").unwrap();
    assert_eq!(row["kind"], "resource");
    assert_eq!(row["size"], 16 * 1024);
    assert_eq!(row["written"], data.len());
    assert_eq!(w.gc(&[]), ["blob"]);
}

#[test]
fn put_larger_than_the_resource_fails_naming_both_sizes() {
    let w = World::new("toolarge");
    assert_success(
        &w.run(&["resource", "create", "small", "--size", "100"]),
        &["create"],
    );
    let out = w.run_with_input(&["resource", "put", "small"], &[7u8; 101]);
    let line = assert_one_line_failure(&out);
    assert!(line.contains("101") && line.contains("100"), "{line}");
    // The contents were left alone.
    assert_eq!(w.row("small").unwrap()["written"], 0);
    assert_eq!(w.gc(&[]), ["small"]);
}

#[test]
fn killed_holder_leaves_an_orphan_that_gc_removes() {
    let w = World::new("crash");
    let mut holder = w.hold("crashy");
    holder.0.kill().unwrap(); // SIGKILL: no chance to release anything.
    holder.0.wait().unwrap();
    let row = w.row("crashy").unwrap();
    assert_eq!(row["state"], "orphan", "{row}");
    assert!(holders(&row).is_empty(), "{row}");
    assert_eq!(w.gc(&[]), ["crashy"]);
    assert!(w.row("crashy").is_none());
}

#[test]
fn gc_keeps_a_resource_held_by_a_live_process() {
    let w = World::new("held");
    let mut holder = w.hold("kept");
    let removed = w.gc(&[]);
    assert!(removed.is_empty(), "gc removed {removed:?}");
    let row = w.row("kept").unwrap();
    assert_eq!(row["state"], "live", "{row}");
    assert!(holders(&row).contains(&holder.pid()), "{row}");

    // SIGTERM: the holder releases and exits 0; the resource is then an orphan.
    let pid = rustix::process::Pid::from_child(&holder.0);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = holder.0.wait().unwrap();
    assert!(status.success(), "holder exited with {status}");
    let row = w.row("kept").unwrap();
    assert_eq!(row["state"], "orphan", "{row}");
    assert_eq!(w.gc(&[]), ["kept"]);
    assert!(w.row("kept").is_none());
}

#[test]
fn ls_of_an_empty_namespace_is_an_empty_array() {
    let w = World::new("empty");
    let out = w.run(&["ls", "--json"]);
    assert_success(&out, &["ls", "--json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        Value::Array(Vec::new())
    );
    let out = w.run(&["ls"]);
    assert_success(&out, &["ls"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&w.namespace));
}

#[test]
fn a_bad_name_fails_with_one_line_naming_it() {
    let w = World::new("badname");
    let out = w.run(&["resource", "create", "a/b", "--size", "4096"]);
    let line = assert_one_line_failure(&out);
    assert!(line.contains("a/b"), "{line}");
    assert!(w.ls().is_empty());
}

#[test]
fn a_bad_size_fails_with_one_line() {
    let w = World::new("badsize");
    for size in ["0", "abc"] {
        let out = w.run(&["resource", "create", "sized", "--size", size]);
        let line = assert_one_line_failure(&out);
        assert!(line.contains("size"), "{line}");
    }
    assert!(w.ls().is_empty());
}

#[test]
fn an_expired_resource_cannot_be_read_and_gc_removes_it() {
    let w = World::new("ttl");
    assert_success(
        &w.run(&[
            "resource", "create", "brief", "--size", "4096", "--ttl", "200ms",
        ]),
        &["create brief"],
    );
    // An orphan without a TTL, younger than --max-age below: gc must keep it.
    assert_success(
        &w.run(&["resource", "create", "lasting", "--size", "4096"]),
        &["create lasting"],
    );
    let row = w.wait_for_row("brief", "expired", |r| r["state"] == "expired");
    assert!((row["ttl_s"].as_f64().unwrap() - 0.2).abs() < 1e-9, "{row}");

    let out = w.run(&["resource", "cat", "brief"]);
    let line = assert_one_line_failure(&out);
    assert!(line.contains("expired"), "{line}");

    assert_eq!(w.gc(&["--max-age", "1h"]), ["brief"]);
    assert!(w.row("brief").is_none());
    assert_eq!(w.row("lasting").unwrap()["state"], "orphan");
    assert_eq!(w.gc(&[]), ["lasting"]);
}

#[test]
fn the_namespace_flag_overrides_the_environment() {
    let w = World::new("nsflag");
    let other = w.other_namespace();
    assert_success(
        &w.run(&[
            "--namespace",
            &other,
            "resource",
            "create",
            "elsewhere",
            "--size",
            "1",
        ]),
        &["create elsewhere"],
    );
    assert!(w.ls().is_empty(), "seen from the environment's namespace");
    let rows = w.json(&["ls", "--json", "--namespace", &other]);
    assert_eq!(rows[0]["name"], "elsewhere");
    assert_eq!(rows[0]["namespace"], other.as_str());
    let all = w.json(&["ls", "--json", "--all-namespaces"]);
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|r| r["namespace"] == other.as_str()),
        "{all}"
    );
    // rm honours --namespace too.
    assert_success(
        &w.run(&["--namespace", &other, "resource", "rm", "elsewhere"]),
        &["rm"],
    );
    assert_eq!(
        w.json(&["ls", "--json", "--namespace", &other]),
        Value::Array(Vec::new())
    );
}
