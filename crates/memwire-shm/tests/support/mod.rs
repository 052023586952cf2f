//! Shared plumbing of the cross-process tests: the test binary re-executes itself as a child
//! with `MEMWIRE_TEST_ROLE` set, and every child is killed and reaped when its guard drops.

#![allow(dead_code, unreachable_pub)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use libtest_mimic::{Arguments, Trial};
use rustix::io::FdFlags;

/// Selects the child role.
pub const ROLE_ENV: &str = "MEMWIRE_TEST_ROLE";
/// Number of the fd a child inherited.
pub const FD_ENV: &str = "MEMWIRE_TEST_FD";

/// Generous bound on every wait: only a broken primitive (or a machine stalled for this long)
/// reaches it, and then the test fails instead of hanging.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Held while spawning: an fd is inheritable only while this lock is held, so no other
/// trial's child inherits it too.
static SPAWN_LOCK: Mutex<()> = Mutex::new(());

/// A test case of a harness-less test binary.
pub fn trial(name: &'static str, test: fn() -> Result<()>) -> Trial {
    Trial::test(name, move || test().map_err(|e| format!("{e:#}").into()))
}

/// `main` of a cross-process test binary: runs `role` in a child, else the trials, at most two
/// at a time (this machine has 2 vCPUs).
pub fn main(roles: fn(&str) -> Result<()>, trials: Vec<Trial>) -> ! {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        if let Err(err) = roles(&role) {
            eprintln!("child role {role}: {err:#}");
            std::process::exit(1);
        }
        std::process::exit(0);
    }
    let mut args = Arguments::from_args();
    args.test_threads = Some(args.test_threads.map_or(2, |n| n.clamp(1, 2)));
    let conclusion = libtest_mimic::run(&args, trials);
    if let Some(dir) = OWN_RUNTIME_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
    conclusion.exit()
}

/// The runtime directory [`private_runtime_dir`] made, removed when the trials end.
static OWN_RUNTIME_DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Gives this test binary and its children a runtime directory of their own, so hosts find
/// each other by name and never see another test's (unless `MEMWIRE_RUNTIME_DIR` is already
/// set, as it is in the children). Call first thing in `main`, before any thread starts.
pub fn private_runtime_dir(prefix: &str) {
    if std::env::var_os("MEMWIRE_RUNTIME_DIR").is_some() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    // SAFETY: called at the top of `main`, before the test harness or anything else starts a
    // thread, so nothing reads the environment concurrently.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("MEMWIRE_RUNTIME_DIR", &dir)
    };
    let _ = OWN_RUNTIME_DIR.set(dir);
}

/// A child process, killed and reaped when dropped unless already reaped.
pub struct Guard(Option<Child>);

impl Guard {
    /// Guards a child spawned elsewhere.
    pub fn from_child(child: Child) -> Self {
        Self(Some(child))
    }

    /// The child.
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child not yet reaped")
    }

    /// Its pid.
    pub fn id(&self) -> u32 {
        self.0.as_ref().expect("child not yet reaped").id()
    }

    /// Waits for exit.
    pub fn wait(&mut self) -> Result<ExitStatus> {
        let mut child = self.0.take().context("child already reaped")?;
        Ok(child.wait()?)
    }

    /// Reaps the child, which must exit within [`DEADLINE`] (else the test fails and the guard
    /// kills it). Unlike [`Guard::wait`], the reaped child stays available through
    /// [`Guard::child`].
    pub fn wait_exit(&mut self) -> Result<ExitStatus> {
        let child = self.child();
        let mut status = None;
        wait_until("the child to exit", || {
            status = child.try_wait()?;
            Ok(status.is_some())
        })?;
        status.context("child exited without a status")
    }

    /// Waits for exit and fails unless the child succeeded.
    pub fn wait_success(mut self) -> Result<()> {
        let status = self.wait()?;
        ensure!(status.success(), "child failed: {status}");
        Ok(())
    }

    /// SIGKILLs the child and reaps it.
    pub fn kill(mut self) -> Result<ExitStatus> {
        self.child().kill()?;
        self.wait()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A command that re-runs this test binary in `role`.
pub fn command(role: &str) -> Result<Command> {
    let mut command = Command::new(std::env::current_exe()?);
    command.env(ROLE_ENV, role).stdin(Stdio::null());
    Ok(command)
}

/// Spawns `command`, letting the child inherit `fd` (its number in `MEMWIRE_TEST_FD`).
pub fn spawn(mut command: Command, fd: Option<&OwnedFd>) -> Result<Guard> {
    let _lock = SPAWN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(fd) = fd {
        rustix::io::fcntl_setfd(fd, FdFlags::empty())?;
        command.env(FD_ENV, fd.as_raw_fd().to_string());
    }
    let spawned = command.spawn();
    if let Some(fd) = fd {
        rustix::io::fcntl_setfd(fd, FdFlags::CLOEXEC)?;
    }
    Ok(Guard(Some(spawned.context("spawn child")?)))
}

/// Spawns `command` (its stdout piped here), reads the acknowledgements it prints, one a line,
/// with `parse`, SIGKILLs it once it has printed `wait_for`, and returns every one it printed,
/// including whole lines still in the pipe when it died (a line without its newline was never
/// written whole: each is one `write(2)`, so it does not count). `what` names the child in
/// errors.
pub fn kill_after_acks<T>(
    mut command: Command,
    what: &str,
    wait_for: u64,
    parse: impl Fn(&str) -> Result<T>,
) -> Result<Vec<T>> {
    use std::io::{BufRead, BufReader, Read};
    command.stdout(Stdio::piped());
    let mut child = spawn(command, None)?;
    let stdout = child.child().stdout.take().context("child stdout")?;
    let mut reader = BufReader::new(stdout);
    let mut acks = Vec::new();
    let mut line = String::new();
    while (acks.len() as u64) < wait_for {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            let status = child.wait()?;
            bail!(
                "the {what} exited ({status}) after {} acknowledgements",
                acks.len()
            );
        }
        acks.push(parse(&line)?);
    }
    let status = child.kill()?;
    ensure!(!status.success(), "the {what} was not killed: {status}");
    let mut rest = String::new();
    reader.read_to_string(&mut rest)?;
    for line in rest.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        acks.push(parse(line)?);
    }
    Ok(acks)
}

/// Polls `cond` every millisecond until it holds, failing after [`DEADLINE`] so a bug shows as
/// a failure, never a hang. Not a timing assertion: the deadline only bounds a wait.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + DEADLINE;
    while !cond()? {
        if Instant::now() > deadline {
            bail!("gave up waiting for {what} after {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// A namespace no other test uses.
pub fn unique_namespace(test: &str) -> memwire_shm::Namespace {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    memwire_shm::Namespace::new(format!("t-{test}-{}-{n}", std::process::id()))
        .expect("test namespaces are valid")
}

/// In a child: the fd its parent let it inherit (number in [`FD_ENV`]), which must be open and
/// its `/proc/self/fd` link start with `kind` (`"socket:"`, `"/memfd:"`).
#[allow(unsafe_code)]
pub fn inherited_fd(kind: &str) -> Result<OwnedFd> {
    let raw: RawFd = std::env::var(FD_ENV).context("no inherited fd")?.parse()?;
    let link = std::fs::read_link(format!("/proc/self/fd/{raw}"))
        .with_context(|| format!("fd {raw} not inherited"))?;
    ensure!(
        link.to_string_lossy().starts_with(kind),
        "fd {raw} is {link:?}, not {kind}"
    );
    // SAFETY: `raw` is open (checked above) and is the fd our parent cleared close-on-exec on
    // for us; nothing else in this freshly exec'd process knows its number, so this is its
    // only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Raises this process's soft limit of open descriptors to its hard one (for tests that
/// hold many sockets at once); returns the hard limit.
pub fn raise_fd_limit() -> Result<Option<u64>> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )?;
    Ok(limit.maximum)
}
