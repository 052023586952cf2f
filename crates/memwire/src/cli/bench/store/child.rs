//! The servers `bench store` measures, each a child process pinned to the peer CPU: `memwire
//! serve` (temporary data dir, private runtime dir, `--listen 127.0.0.1:0`) and, for the
//! baseline, a `redis-server` from PATH.
//!
//! Both are started through the hidden `memwire __bench-pinned --cpu CPU -- PROGRAM ARGS...`,
//! which pins itself and `exec`s the program, so every thread the server makes starts pinned.

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::resp;
use crate::cli::bench::pin;

/// `memwire __bench-pinned`: pin, then become PROGRAM.
#[derive(Debug, clap::Args)]
pub(crate) struct PinnedArgs {
    /// The CPU to pin to.
    #[arg(long)]
    cpu: Option<usize>,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    program: Vec<String>,
}

/// Runs `__bench-pinned`; returns only on failure.
pub(crate) fn run_pinned(args: &PinnedArgs) -> Result<()> {
    if let Some(cpu) = args.cpu {
        pin::pin_to(cpu)?;
    }
    let (program, rest) = args.program.split_first().context("no program")?;
    let err = Command::new(program).args(rest).exec();
    Err(err).with_context(|| format!("running {program}"))
}

/// A command that runs `program args` pinned to `cpu`.
fn pinned(cpu: Option<usize>, program: &Path) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| "memwire".into());
    let mut cmd = Command::new(exe);
    cmd.arg("__bench-pinned");
    if let Some(cpu) = cpu {
        cmd.args(["--cpu", &cpu.to_string()]);
    }
    cmd.arg("--").arg(program);
    cmd
}

/// A private temporary directory, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(what: &str) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "memwire-bench-{what}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child stopped with SIGTERM (then reaped) on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let pid = i32::try_from(self.0.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `memwire serve`.
pub(crate) struct StoreServer {
    _child: Running,
    /// Its local socket.
    pub(crate) socket: PathBuf,
    /// `ws://127.0.0.1:PORT`.
    pub(crate) url: String,
    /// The admin key it printed on its first start.
    pub(crate) key: String,
    // Dropped after the child has stopped.
    _dir: TempDir,
}

impl StoreServer {
    /// Starts `memwire serve` in a new temporary data dir, pinned to `cpu`, and reads its
    /// banner up to `ready`.
    pub(crate) fn start(cpu: Option<usize>) -> Result<Self> {
        let dir = TempDir::new("store")?;
        let exe = std::env::current_exe().context("finding the memwire binary")?;
        let mut child = pinned(cpu, &exe)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .env("MEMWIRE_RUNTIME_DIR", dir.path().join("run"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting memwire serve")?;
        let stdout = child.stdout.take().context("memwire serve's stdout")?;
        let child = Running(child);
        let mut lines = BufReader::new(stdout).lines();
        let (mut socket, mut url, mut key) = (None, None, None);
        let mut banner = Vec::new();
        loop {
            let Some(line) = lines.next().transpose()? else {
                bail!("memwire serve exited before `ready`: {banner:?}");
            };
            if line == "ready" {
                break;
            }
            let trimmed = line.trim();
            if let Some(s) = trimmed.strip_prefix("local ") {
                socket = Some(PathBuf::from(s.trim()));
            } else if let Some(u) = trimmed.strip_prefix("remote ") {
                url = Some(u.trim().to_owned());
            } else if trimmed.starts_with("mw_") {
                key = Some(trimmed.to_owned());
            }
            banner.push(line);
        }
        // Keep draining its stdout, so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Self {
            _child: child,
            socket: socket.with_context(|| format!("no local socket in {banner:?}"))?,
            url: url.with_context(|| format!("no remote address in {banner:?}"))?,
            key: key.with_context(|| format!("no admin key in {banner:?}"))?,
            _dir: dir,
        })
    }
}

/// `redis-server` on PATH, if any.
pub(crate) fn find_redis() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
}

/// A running `redis-server`.
pub(crate) struct RedisServer {
    _child: Running,
    pub(crate) port: u16,
    _dir: TempDir,
}

impl RedisServer {
    /// Starts `program` on a free loopback port with an append-only log fsynced every second,
    /// no RDB snapshots, and keyspace notifications for string and generic commands (the
    /// pub/sub case); pinned to `cpu`. Waits until it answers PING.
    pub(crate) fn start(program: &Path, cpu: Option<usize>) -> Result<Self> {
        let dir = TempDir::new("redis")?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = pinned(cpu, program)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--appendonly", "yes", "--appendfsync", "everysec"])
            .args(["--save", "", "--notify-keyspace-events", "Kg$"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let mut child = Running(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pong = resp::Conn::connect(port).and_then(|mut c| c.call(&[b"PING"]));
            if matches!(&pong, Ok(resp::Reply::Simple(s)) if s == "PONG") {
                break;
            }
            if let Ok(Some(status)) = child.0.try_wait() {
                bail!("redis-server exited with {status}");
            }
            if Instant::now() > deadline {
                bail!("redis-server did not answer PING within 10 s: {pong:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self {
            _child: child,
            port,
            _dir: dir,
        })
    }
}
