//! Fd passing and peer credentials between real processes.
//!
//! The test binary re-executes itself as the child: with `MEMWIRE_TEST_ROLE` set, `main` runs
//! that role and exits instead of running the trials. A child that shares a socket pair with
//! the parent inherits its end (close-on-exec cleared while the parent spawns, under a lock so
//! no other trial's child inherits it too) and finds its number in `MEMWIRE_TEST_FD`
//! (`tests/support` holds this plumbing).
//! Every child is killed and reaped when its trial ends, pass or fail.

mod support;

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::{UnixListener, UnixStream};

use anyhow::{Context, Result, bail, ensure};
use memwire_shm::Error;
use memwire_shm::fdpass::{
    self, MAX_FDS_PER_MESSAGE, PeerCredentials, peer_credentials, recv_with_fds, send_with_fds,
};
use rustix::fs::MemfdFlags;
use rustix::io::Errno;
use support::{Guard, command, inherited_fd, spawn, trial, wait_until};

const SOCKET_PATH_ENV: &str = "MEMWIRE_TEST_SOCKET_PATH";

/// What the child writes through the memfd it receives: 3 pages of a non-repeating-looking
/// sequence, so a short or misplaced write shows.
fn pattern() -> Vec<u8> {
    (0..3 * 4096u32)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect()
}

fn main() {
    support::main(
        roles,
        vec![
            trial("memfd_round_trip_through_a_child", memfd_round_trip),
            trial(
                "tokio_memfd_round_trip_through_a_child",
                tokio_memfd_round_trip,
            ),
            trial(
                "peer_credentials_name_the_connecting_child",
                peer_credentials_of_connecting_child,
            ),
            trial(
                "killed_child_gives_eof_and_epipe",
                killed_child_gives_eof_and_epipe,
            ),
            trial(
                "truncated_control_leaks_no_fd_in_a_child",
                truncated_control_leaks_no_fd,
            ),
        ],
    )
}

fn roles(role: &str) -> Result<()> {
    match role {
        "write_pattern" => child_write_pattern(),
        "write_pattern_async" => child_write_pattern_async(),
        "connect" => child_connect(),
        "hold" => child_hold(),
        "count_fds" => child_count_fds(),
        other => bail!("unknown role {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Parent side

/// A socket pair whose second end goes to a child in `role`: returns our end and the child.
fn spawn_with_pair(role: &str) -> Result<(UnixStream, Guard)> {
    let (ours, theirs) = UnixStream::pair()?;
    let theirs = OwnedFd::from(theirs);
    let child = spawn(command(role)?, Some(&theirs))?;
    // Closing our copy of the child's end lets us see EOF when the child exits.
    drop(theirs);
    Ok((ours, child))
}

fn new_memfd() -> Result<File> {
    Ok(File::from(rustix::fs::memfd_create(
        "memwire-fdpass-test",
        MemfdFlags::CLOEXEC,
    )?))
}

fn memfd_round_trip() -> Result<()> {
    let (socket, child) = spawn_with_pair("write_pattern")?;
    // Both ends of a pair name its creator, even after one end moved to a child.
    ensure!(peer_credentials(&socket)?.pid == std::process::id());

    let memfd = new_memfd()?;
    ensure!(send_with_fds(&socket, b"memfd", &[memfd.as_fd()])? == 5);
    let mut ack = [0; 8];
    let received = recv_with_fds(&socket, &mut ack, 0)?;
    ensure!(
        &ack[..received.len] == b"done",
        "child answered {:?} instead of done",
        &ack[..received.len]
    );
    child.wait_success()?;
    check_pattern(&memfd)
}

fn tokio_memfd_round_trip() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let (socket, child) = spawn_with_pair("write_pattern_async")?;
    socket.set_nonblocking(true)?;
    let memfd = new_memfd()?;
    runtime.block_on(async {
        let socket = tokio::net::UnixStream::from_std(socket)?;
        let sent = fdpass::send_with_fds_async(&socket, b"memfd", &[memfd.as_fd()]).await?;
        ensure!(sent == 5);
        let mut ack = [0; 8];
        let received = fdpass::recv_with_fds_async(&socket, &mut ack, 0).await?;
        ensure!(&ack[..received.len] == b"done");
        Ok(())
    })?;
    child.wait_success()?;
    check_pattern(&memfd)
}

fn check_pattern(memfd: &File) -> Result<()> {
    let expected = pattern();
    ensure!(memfd.metadata()?.len() == expected.len() as u64);
    let mut got = vec![0; expected.len()];
    memfd.read_exact_at(&mut got, 0)?;
    ensure!(got == expected, "memfd does not hold the child's pattern");
    Ok(())
}

fn peer_credentials_of_connecting_child() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bootstrap.sock");
    let listener = UnixListener::bind(&path)?;
    let mut cmd = command("connect")?;
    cmd.env(SOCKET_PATH_ENV, &path);
    let mut child = spawn(cmd, None)?;
    let socket = accept_from(&listener, &mut child)?;

    let cred = peer_credentials(&socket)?;
    ensure!(
        cred == PeerCredentials {
            pid: child.id(),
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
        },
        "SO_PEERCRED says {cred:?}, child is {}",
        child.id()
    );
    // The child tells its own pid too: the kernel's answer and the child's must agree.
    let mut buf = [0; 4];
    let received = recv_with_fds(&socket, &mut buf, 0)?;
    ensure!(received.len == 4, "short pid message");
    ensure!(u32::from_le_bytes(buf) == cred.pid);
    child.wait_success()
}

/// Accepts one connection, failing instead of hanging if the child exits without connecting.
fn accept_from(listener: &UnixListener, child: &mut Guard) -> Result<UnixStream> {
    listener.set_nonblocking(true)?;
    let mut accepted = None;
    wait_until("the child to connect", || match listener.accept() {
        Ok((socket, _)) => {
            accepted = Some(socket);
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            if let Some(status) = child.child().try_wait()? {
                bail!("child exited before connecting: {status}");
            }
            Ok(false)
        }
        Err(e) => Err(e.into()),
    })?;
    let socket = accepted.context("accepted no connection")?;
    socket.set_nonblocking(false)?;
    Ok(socket)
}

fn killed_child_gives_eof_and_epipe() -> Result<()> {
    let (socket, mut child) = spawn_with_pair("hold")?;
    let memfd = new_memfd()?;
    send_with_fds(&socket, b"memfd", &[memfd.as_fd()])?;
    let mut ack = [0; 8];
    let received = recv_with_fds(&socket, &mut ack, 0)?;
    ensure!(&ack[..received.len] == b"held", "child did not take the fd");

    child.child().kill()?;
    let status = child.wait()?;
    ensure!(
        !status.success(),
        "child should have died of SIGKILL: {status}"
    );

    ensure!(recv_with_fds(&socket, &mut ack, 1)?.is_eof());
    let err = send_with_fds(&socket, b"x", &[memfd.as_fd()])
        .err()
        .context("send to a dead peer succeeded")?;
    ensure!(
        err.errno() == Some(Errno::PIPE.raw_os_error()),
        "expected EPIPE, got {err:?}"
    );
    // Our memfd is untouched by the child's death.
    memfd.write_all_at(b"still mine", 0)?;
    Ok(())
}

fn truncated_control_leaks_no_fd() -> Result<()> {
    spawn(command("count_fds")?, None)?.wait_success()
}

// ---------------------------------------------------------------------------------------------
// Child roles

/// The socket end our parent left open for us.
fn inherited_socket() -> Result<OwnedFd> {
    inherited_fd("socket:")
}

fn child_write_pattern() -> Result<()> {
    let socket = inherited_socket()?;
    // The pair was created by our parent, so both its ends name the parent.
    ensure!(peer_credentials(&socket)?.pid == parent_pid());
    let mut buf = [0; 16];
    let mut received = recv_with_fds(&socket, &mut buf, 1)?;
    ensure!(&buf[..received.len] == b"memfd");
    let memfd = File::from(received.fds.pop().context("no fd received")?);
    memfd.write_all_at(&pattern(), 0)?;
    send_with_fds(&socket, b"done", &[])?;
    Ok(())
}

fn child_write_pattern_async() -> Result<()> {
    let socket = UnixStream::from(inherited_socket()?);
    socket.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async {
        let socket = tokio::net::UnixStream::from_std(socket)?;
        let mut buf = [0; 16];
        let mut received = fdpass::recv_with_fds_async(&socket, &mut buf, 1).await?;
        ensure!(&buf[..received.len] == b"memfd");
        let memfd = File::from(received.fds.pop().context("no fd received")?);
        memfd.write_all_at(&pattern(), 0)?;
        fdpass::send_with_fds_async(&socket, b"done", &[]).await?;
        Ok(())
    })
}

fn child_connect() -> Result<()> {
    let socket = UnixStream::connect(std::env::var(SOCKET_PATH_ENV)?)?;
    // The listener's credentials are those of the process that called listen(): our parent.
    ensure!(peer_credentials(&socket)?.pid == parent_pid());
    send_with_fds(&socket, &std::process::id().to_le_bytes(), &[])?;
    Ok(())
}

fn child_hold() -> Result<()> {
    let socket = inherited_socket()?;
    let mut buf = [0; 16];
    let received = recv_with_fds(&socket, &mut buf, 1)?;
    ensure!(received.fds.len() == 1);
    send_with_fds(&socket, b"held", &[])?;
    // Wait to be killed; a second message (or EOF) would end the role early and fail the
    // parent's check that the child died of its signal.
    recv_with_fds(&socket, &mut buf, 1)?;
    bail!("parent sent a second message instead of killing us")
}

fn parent_pid() -> u32 {
    rustix::process::getppid().map_or(0, |pid| pid.as_raw_nonzero().get().unsigned_abs())
}

/// Entries of `/proc/self/fd` (the directory's own fd counts once in every reading).
fn open_fds() -> Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count())
}

/// Runs single-threaded, so nothing else opens or closes fds between two counts.
fn child_count_fds() -> Result<()> {
    let (a, b) = UnixStream::pair()?;
    let memfd = new_memfd()?;
    let mut buf = [0; 8];
    let baseline = open_fds()?;

    // Control: fds that are accepted and held do show in the count.
    send_with_fds(&a, b"keep", &[memfd.as_fd(); 4])?;
    let kept = recv_with_fds(&b, &mut buf, 4)?;
    ensure!(kept.fds.len() == 4);
    ensure!(
        open_fds()? == baseline + 4,
        "the count does not see held fds"
    );
    drop(kept);
    ensure!(open_fds()? == baseline);

    // 2 and 4 fds may fit the rounded-up control buffer for 1 and be refused by count; 32 do
    // not fit, so the kernel truncates (MSG_CTRUNC). Either way none may stay open.
    for count in [2, 4, MAX_FDS_PER_MESSAGE] {
        let fds = vec![memfd.as_fd(); count];
        send_with_fds(&a, b"many", &fds)?;
        match recv_with_fds(&b, &mut buf, 1) {
            Err(Error::TruncatedControl { capacity: 1 }) => {}
            other => bail!("{count} fds with room for 1: {other:?}"),
        }
        let now = open_fds()?;
        ensure!(
            now == baseline,
            "{count} fds sent, room for 1: {now} fds open, {baseline} before"
        );
    }
    Ok(())
}
