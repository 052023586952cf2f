//! Liveness and wake-ups across real processes.
//!
//! The children are this test binary, re-executed with a role in `MEMWIRE_TEST_ROLE`: `main`
//! runs the role and exits instead of running the trials. A futex word lives in a memfd the
//! child inherits; pidfds watch children that are SIGKILLed.
//!
//! Every wait is bounded by a generous deadline so a broken primitive fails the test instead of
//! hanging it, every child is killed and reaped when its test ends (pass or fail), and nothing
//! asserts on timing: how long a detection took is only logged.

mod support;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use memwire_shm::futex::{self, WaitOutcome};
use memwire_shm::{Access, Error, Mapping, ProcessHandle, ProcessId};
use rustix::fs::{MemfdFlags, ftruncate, memfd_create};
use support::{DEADLINE, command, inherited_fd, spawn, trial, wait_until};

/// The parent thread the `futex-waker` child waits to see asleep.
const TID_ENV: &str = "MEMWIRE_TEST_TID";

/// Size of the shared memfd: one page holds the futex word.
const PAGE: usize = 4096;

/// Futex word values: the waiter announces it is about to sleep, then the waker releases it.
const SLEEPING: u32 = 1;
const RELEASED: u32 = 2;

fn main() {
    #[allow(unused_mut)] // without the tokio feature nothing is pushed below
    let mut trials = vec![
        trial(
            "futex_wake_crosses_processes_parent_wakes_child",
            futex_parent_wakes_child,
        ),
        trial(
            "futex_wake_crosses_processes_child_wakes_parent",
            futex_child_wakes_parent,
        ),
        trial(
            "pidfd_reports_sigkilled_child",
            pidfd_reports_sigkilled_child,
        ),
        trial(
            "reaped_child_is_no_such_process",
            reaped_child_is_no_such_process,
        ),
        trial(
            "wrong_start_time_is_not_alive",
            wrong_start_time_is_not_alive,
        ),
    ];
    #[cfg(feature = "tokio")]
    trials.push(trial(
        "pidfd_exited_resolves_for_sigkilled_tokio_child",
        pidfd_exited_resolves_for_sigkilled_tokio_child,
    ));
    support::main(run_role, trials)
}

// ---------------------------------------------------------------------------------------------
// Child roles
// ---------------------------------------------------------------------------------------------

fn run_role(role: &str) -> Result<()> {
    match role {
        "sleep" => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        "futex-waiter" => futex_waiter(),
        "futex-waker" => futex_waker(),
        other => bail!("unknown role {other:?}"),
    }
}

/// Announces `SLEEPING`, sleeps on the word until it is `RELEASED`; fails unless a wait
/// actually slept and was woken.
fn futex_waiter() -> Result<()> {
    let page = SharedPage::map(inherited_memfd()?.as_fd())?;
    sleep_until_released(page.word(), "")
}

/// Announces `SLEEPING` on `word` and sleeps on it until the other process stores `RELEASED`;
/// fails unless a wait actually slept and was woken. `by` names the waker in the timeout error.
fn sleep_until_released(word: &AtomicU32, by: &str) -> Result<()> {
    word.store(SLEEPING, Ordering::Release);
    let start = Instant::now();
    let mut woken = 0;
    // Pairs with the other process's Release store of RELEASED.
    while word.load(Ordering::Acquire) != RELEASED {
        let left = DEADLINE.saturating_sub(start.elapsed());
        match futex::wait(word, SLEEPING, Some(left))? {
            WaitOutcome::Woken => woken += 1,
            WaitOutcome::TimedOut => bail!("not woken{by} within {DEADLINE:?}"),
            WaitOutcome::ValueChanged | WaitOutcome::Interrupted => {}
        }
    }
    ensure!(woken > 0, "released without ever sleeping in futex_wait");
    Ok(())
}

/// Waits for the parent to announce `SLEEPING` and to be asleep, then releases and wakes it.
fn futex_waker() -> Result<()> {
    let page = SharedPage::map(inherited_memfd()?.as_fd())?;
    let word = page.word();
    let tid: u32 = std::env::var(TID_ENV)?.parse()?;
    let parent = std::os::unix::process::parent_id();
    wait_until("the parent to announce its sleep", || {
        Ok(word.load(Ordering::Acquire) == SLEEPING)
    })?;
    wait_until("the parent thread to sleep", || {
        Ok(thread_state(parent, tid)? == b'S')
    })?;
    // Pairs with the parent's Acquire load after it wakes.
    word.store(RELEASED, Ordering::Release);
    let woken = futex::wake_all(word)?;
    eprintln!("futex-waker: woke {woken} waiter(s) in the parent");
    Ok(())
}

/// The memfd the parent left open across `exec`.
fn inherited_memfd() -> Result<OwnedFd> {
    inherited_fd("/memfd:")
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

fn futex_parent_wakes_child() -> Result<()> {
    let fd = shared_memfd()?;
    let page = SharedPage::map(fd.as_fd())?;
    let mut child = spawn(command("futex-waiter")?, Some(&fd))?;
    let pid = child.id();
    wait_until("the child to announce its sleep", || {
        Ok(page.word().load(Ordering::Acquire) == SLEEPING)
    })?;
    // Only the futex wait follows the announcement: a sleeping child is in it.
    wait_until("the child to sleep", || Ok(thread_state(pid, pid)? == b'S'))?;
    // Pairs with the child's Acquire load after it wakes.
    page.word().store(RELEASED, Ordering::Release);
    let woken = futex::wake_all(page.word())?;
    eprintln!("woke {woken} waiter(s) in the child");
    let status = child.wait_exit()?;
    ensure!(status.success(), "child: {status}");
    Ok(())
}

fn futex_child_wakes_parent() -> Result<()> {
    let fd = shared_memfd()?;
    let page = SharedPage::map(fd.as_fd())?;
    let tid = rustix::thread::gettid().as_raw_nonzero().get();
    let mut cmd = command("futex-waker")?;
    cmd.env(TID_ENV, tid.to_string());
    let mut child = spawn(cmd, Some(&fd))?;
    sleep_until_released(page.word(), " by the child")?;
    let status = child.wait_exit()?;
    ensure!(status.success(), "child: {status}");
    Ok(())
}

fn pidfd_reports_sigkilled_child() -> Result<()> {
    let mut child = spawn(command("sleep")?, None)?;
    let handle = ProcessHandle::from_child(child.child())?;
    ensure!(handle.pid() == child.id());
    ensure!(handle.is_alive(), "a sleeping child reported dead");
    ensure!(
        !handle.wait_timeout(Duration::from_millis(50))?,
        "a sleeping child reported exited"
    );

    let start = Instant::now();
    handle.kill()?;
    ensure!(
        handle.wait_timeout(DEADLINE)?,
        "SIGKILLed child not seen exiting within {DEADLINE:?}"
    );
    eprintln!("pidfd saw the SIGKILL after {:?}", start.elapsed());
    ensure!(!handle.is_alive(), "a killed child (zombie) reported alive");
    handle.wait()?;

    let status = child.wait_exit()?;
    ensure!(status.signal() == Some(9), "child: {status}");
    ensure!(!handle.is_alive(), "a reaped child reported alive");
    Ok(())
}

#[cfg(feature = "tokio")]
fn pidfd_exited_resolves_for_sigkilled_tokio_child() -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .env(support::ROLE_ENV, "sleep")
            .stdin(Stdio::null())
            // Killed if this test bails out early.
            .kill_on_drop(true)
            .spawn()?;
        let handle = ProcessHandle::from_tokio_child(&child)?;
        ensure!(handle.is_alive(), "a sleeping child reported dead");

        let start = Instant::now();
        child.start_kill()?;
        tokio::time::timeout(DEADLINE, handle.exited())
            .await
            .context("exited() did not resolve for a SIGKILLed child")??;
        eprintln!("exited() saw the SIGKILL after {:?}", start.elapsed());
        ensure!(!handle.is_alive(), "a killed child reported alive");

        let status = tokio::time::timeout(DEADLINE, child.wait()).await??;
        ensure!(status.signal() == Some(9), "child: {status}");
        ensure!(
            matches!(
                ProcessHandle::from_tokio_child(&child),
                Err(Error::NoSuchProcess { .. })
            ),
            "a reaped tokio child opened"
        );
        Ok(())
    })
}

fn reaped_child_is_no_such_process() -> Result<()> {
    let mut child = spawn(command("sleep")?, None)?;
    let handle = ProcessHandle::from_child(child.child())?;
    let id = handle.id();
    ensure!(id.is_alive());
    handle.kill()?;
    child.wait_exit()?;

    ensure!(!id.is_alive(), "a reaped child's ProcessId reported alive");
    ensure!(!handle.is_alive(), "a reaped child's handle reported alive");
    ensure!(
        matches!(ProcessHandle::open_id(id), Err(Error::NoSuchProcess { pid }) if pid == id.pid),
        "open_id found a reaped child"
    );
    ensure!(
        matches!(
            ProcessHandle::from_child(child.child()),
            Err(Error::NoSuchProcess { .. })
        ),
        "from_child found a reaped child"
    );
    match ProcessHandle::open(id.pid) {
        Err(Error::NoSuchProcess { .. }) => {}
        // The pid was reused already: the newcomer must not pass for the child.
        Ok(stranger) => ensure!(stranger.id() != id, "a reaped child opened as itself"),
        Err(e) => return Err(e.into()),
    }
    ensure!(
        matches!(handle.kill(), Err(Error::NoSuchProcess { .. })),
        "kill through the pidfd of a reaped child did not report it gone"
    );
    Ok(())
}

fn wrong_start_time_is_not_alive() -> Result<()> {
    let mut child = spawn(command("sleep")?, None)?;
    let id = ProcessHandle::from_child(child.child())?.id();
    ensure!(id == ProcessId::of(child.id())?);
    let impostor = ProcessId {
        start_time: id.start_time + 1,
        ..id
    };
    ensure!(id.is_alive(), "the child reported dead");
    ensure!(!impostor.is_alive(), "a wrong start time reported alive");
    ensure!(
        matches!(
            ProcessHandle::open_id(impostor),
            Err(Error::NoSuchProcess { .. })
        ),
        "open_id accepted a wrong start time"
    );
    ensure!(ProcessHandle::open_id(id)?.is_alive());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The scheduler state (`R`, `S`, `D`, ...) of thread `tid` of process `pid`.
fn thread_state(pid: u32, tid: u32) -> Result<u8> {
    let path = format!("/proc/{pid}/task/{tid}/stat");
    let stat = std::fs::read(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) may hold anything; the state follows its last `)`.
    let close = stat
        .iter()
        .rposition(|&b| b == b')')
        .with_context(|| format!("no `)` in {path}"))?;
    stat.get(close + 2)
        .copied()
        .with_context(|| format!("{path} ends after the command name"))
}

/// A one-page memfd for a child to inherit (through [`support::spawn`]).
fn shared_memfd() -> Result<OwnedFd> {
    let fd = memfd_create("memwire-test-futex", MemfdFlags::CLOEXEC)?;
    ftruncate(&fd, PAGE as u64)?;
    Ok(fd)
}

/// A shared, writable mapping of the first page of a memfd, through the crate's safe view.
struct SharedPage(Mapping);

impl SharedPage {
    fn map(fd: BorrowedFd<'_>) -> Result<Self> {
        Ok(Self(Mapping::map(fd, 0, PAGE, Access::ReadWrite)?))
    }

    /// The futex word at offset 0.
    fn word(&self) -> &AtomicU32 {
        self.0
            .atomic_u32(0)
            .expect("offset 0 of a writable page is an aligned word")
    }
}
