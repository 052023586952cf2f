//! The peer process: how the harness spawns it, and what it does once running.
//!
//! The parent re-executes its own binary as `memwire __bench-peer CASE --size .. --payload ..
//! --role ..`. The shared segment is inherited: the parent clears `FD_CLOEXEC` on a duplicate
//! of the memfd right before the spawn and names its number in [`SEGMENT_FD_ENV`]; the peer
//! reopens it through `/proc/self/fd/N` (which needs no `unsafe`) and checks its seals and
//! size like any fd it is handed. The peer pins itself to its CPU first thing, and dies with
//! the parent (`PR_SET_PDEATHSIG`), so an interrupted benchmark leaves no spinner behind.
//!
//! [`Launcher::spawn`] builds that command and hands it to whoever starts it: the harness
//! (`Command::spawn`), or a transport case (`Host::spawn`, which adds the link's ticket).

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, Result, ensure};
use memwire::shm::{Access, MemfdSegment, Segment};
use rustix::io::FdFlags;

use super::case::{self, Payload, Role, Run, Wiring};
use super::pin;

/// The environment variable that carries the inherited segment's fd number.
const SEGMENT_FD_ENV: &str = "MEMWIRE_BENCH_SEGMENT_FD";

/// `memwire __bench-peer`: the echo or sink side of one run (internal; the harness spawns it).
#[derive(Debug, clap::Args)]
pub(crate) struct PeerArgs {
    /// The case to serve.
    case: String,
    #[arg(long)]
    size: usize,
    #[arg(long, value_enum)]
    payload: Payload,
    #[arg(long, value_enum)]
    role: Role,
    /// Pin to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
    /// The spawning process: the peer exits if it is gone.
    #[arg(long)]
    parent_pid: u32,
}

/// What it takes to start the peer of one run: the case, the run, the segment it inherits
/// and the CPU it pins itself to.
pub(crate) struct Launcher<'a> {
    pub(crate) case: &'static str,
    pub(crate) run: Run,
    pub(crate) segment: &'a MemfdSegment,
    pub(crate) cpu: Option<usize>,
}

impl Launcher<'_> {
    /// Builds the peer's command, wired as `wiring` says and with the segment inherited, and
    /// starts it with `start`: `Command::spawn`, or a transport host's `spawn`.
    pub(crate) fn spawn<T>(
        &self,
        wiring: Wiring,
        start: impl FnOnce(&mut Command) -> Result<T>,
    ) -> Result<T> {
        let exe = std::env::current_exe().context("finding the memwire binary")?;
        let mut cmd = Command::new(exe);
        cmd.args([
            "__bench-peer",
            self.case,
            "--size",
            &self.run.size.to_string(),
        ])
        .args(["--payload", self.run.payload.as_str()])
        .args(["--role", self.run.role.as_str()])
        .args(["--parent-pid", &std::process::id().to_string()])
        .stdin(wiring.stdin.map_or_else(Stdio::null, Stdio::from))
        .stdout(wiring.stdout.map_or_else(Stdio::null, Stdio::from))
        .envs(wiring.env);
        if let Some(cpu) = self.cpu {
            cmd.args(["--cpu", &cpu.to_string()]);
        }
        let segment_fd = self
            .segment
            .try_clone_fd()
            .context("duplicating the segment fd")?;
        cmd.env(SEGMENT_FD_ENV, segment_fd.as_raw_fd().to_string());
        let mut inherited = wiring.inherit;
        inherited.push(segment_fd);
        // Cleared only now, and closed right after the spawn: this process spawns nothing else
        // meanwhile, so no other child inherits them.
        for fd in &inherited {
            rustix::io::fcntl_setfd(fd, FdFlags::empty()).context("clearing FD_CLOEXEC")?;
        }
        let started = start(&mut cmd);
        // `cmd` holds the peer's stdio ends: dropping it closes ours, so end-of-file can reach us.
        drop(cmd);
        drop(inherited);
        started
    }

    /// Spawns the peer the usual way, wired as `wiring` says.
    pub(crate) fn spawn_wired(&self, wiring: Wiring) -> Result<Child> {
        self.spawn(wiring, |cmd| {
            cmd.spawn().context("spawning the benchmark peer")
        })
    }
}

/// Runs the peer side in this (spawned) process.
pub(crate) fn run(args: &PeerArgs) -> Result<()> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .context("prctl(PR_SET_PDEATHSIG)")?;
    // The parent may have died before the prctl: then we were reparented already.
    let ppid = rustix::process::getppid().map(|p| p.as_raw_nonzero().get());
    ensure!(
        ppid == i32::try_from(args.parent_pid).ok(),
        "the benchmark process {} is gone",
        args.parent_pid
    );
    if let Some(cpu) = args.cpu {
        pin::pin_to(cpu)?;
    }
    let case = case::by_name(&args.case)?;
    ensure!(args.size >= 1, "--size must be at least 1");
    let run = Run {
        size: args.size,
        payload: args.payload,
        role: args.role,
    };
    let raw: i32 = std::env::var(SEGMENT_FD_ENV)
        .with_context(|| format!("reading {SEGMENT_FD_ENV}"))?
        .parse()
        .with_context(|| format!("parsing {SEGMENT_FD_ENV}"))?;
    let path = format!("/proc/self/fd/{raw}");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("reopening the inherited segment {path}"))?;
    let segment = MemfdSegment::from_fd(OwnedFd::from(file), case.segment_len(run.size))
        .context("adopting the benchmark segment")?;
    let shm = segment.map(Access::ReadWrite)?;
    case.peer(&shm, &run)
        .with_context(|| format!("benchmark peer of `{}`", args.case))
}
