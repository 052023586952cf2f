//! A real `memwire serve` for the CLI tests: started on a free port with its own data
//! directory, its banner read up to `ready`; `memwire` commands run against it, each expected
//! to succeed or to fail with one `error: ` line and exit status 1; and the lines a long-running
//! command (`watch`) prints.
//!
//! A test binary that uses it declares `mod support` (memwire-shm's test plumbing) beside it.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;

use anyhow::{Context, Result, ensure};

use crate::support::{DEADLINE, Guard};

/// A running `memwire serve` and what it printed.
pub struct Served {
    pub guard: Guard,
    pub url: String,
    pub admin_key: Option<String>,
    pub banner: Vec<String>,
    /// The lines it prints after `ready` (it closes when the server exits).
    pub after: mpsc::Receiver<String>,
}

/// `memwire serve` on a free port of 127.0.0.1 with its data in `data`.
pub fn serve(data: &Path) -> Result<Served> {
    serve_with(data, &[])
}

/// As [`serve`], with more flags (`--name`, `--tls-self-signed`).
pub fn serve_with(data: &Path, extra: &[&str]) -> Result<Served> {
    serve_from(server_command(data, extra))
}

/// `memwire serve` on `data` at a free loopback port, with `extra` arguments, its stdout piped.
pub fn server_command(data: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_memwire"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    command
}

/// Starts `command` (a [`server_command`]) and reads its banner up to `ready`.
pub fn serve_from(mut command: Command) -> Result<Served> {
    let mut child = command.spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let guard = Guard::from_child(child);
    let mut lines = BufReader::new(stdout).lines();
    let mut banner = Vec::new();
    let mut url = None;
    let mut admin_key = None;
    // The banner ends with `ready`.
    while let Some(line) = lines.next().transpose()? {
        if line == "ready" {
            break;
        }
        if let Some(u) = line.trim().strip_prefix("remote  ") {
            url = Some(u.to_owned());
        }
        if line.starts_with("mw_") {
            admin_key = Some(line.clone());
        }
        banner.push(line);
    }
    // Keep reading the rest so the server never blocks on a full pipe.
    let (tx, after) = mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            // Nobody listens any more: drop the line, keep draining.
            let _ = tx.send(line);
        }
    });
    Ok(Served {
        guard,
        url: url.with_context(|| format!("no remote address in {banner:?}"))?,
        admin_key,
        banner,
        after,
    })
}

/// The arguments of a command: `&str`s or `String`s.
pub trait Arg: AsRef<std::ffi::OsStr> + std::fmt::Debug {}
impl<T: AsRef<std::ffi::OsStr> + std::fmt::Debug> Arg for T {}

/// `memwire ARGS` with the key found in `data`'s `admin.key` unless ARGS give one.
pub fn memwire(data: &Path, args: &[impl Arg]) -> Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_memwire"))
        .args(args)
        .env("MEMWIRE_DATA_DIR", data)
        .env_remove("MEMWIRE_KEY")
        .stdin(Stdio::null())
        .output()?)
}

/// Runs a command that must succeed; its stdout.
pub fn ok(data: &Path, args: &[impl Arg]) -> Result<String> {
    let out = memwire(data, args)?;
    ensure!(
        out.status.success(),
        "memwire {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// Runs a command that must fail with status 1 and one `error: ` line on stderr.
pub fn fails(data: &Path, args: &[impl Arg]) -> Result<String> {
    let out = memwire(data, args)?;
    ensure!(
        out.status.code() == Some(1),
        "memwire {args:?}: {:?}, stdout {:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8(out.stderr)?;
    ensure!(
        err.lines().count() == 1 && err.starts_with("error: "),
        "memwire {args:?}: not one error line: {err:?}"
    );
    Ok(err)
}

/// Lines a child writes to stdout, read on a thread so a missing line fails after
/// [`DEADLINE`] instead of hanging the test.
pub struct Lines(mpsc::Receiver<String>);

impl Lines {
    /// Takes the child's stdout (it must be piped).
    pub fn of(guard: &mut Guard) -> Result<Self> {
        let stdout = guard.child().stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Ok(Self(rx))
    }

    /// The next line.
    pub fn next(&self) -> Result<String> {
        self.0
            .recv_timeout(DEADLINE)
            .context("no line from the child")
    }
}
