//! The tenant segment across real processes: this process writes, reader processes (this
//! binary re-executed with a role) map the segment read-only and read it continuously.

#![allow(clippy::unwrap_used)]

#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, AsRawFd};
use std::process::Stdio;

use anyhow::{Context, Result, bail, ensure};
use memwire_shm::{Access, Mapping};
use memwire_store::segment::{ChangeKind, Changes};
use memwire_store::{TenantView, TenantWriter};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use support::{command, inherited_fd, spawn, trial};

const SETS: u64 = 100_000;
/// Plain variables, each set with a value that carries its own checksum.
const VARS: [&str; 8] = ["v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7"];
/// Variables always written together by `set_many`, each carrying the batch number.
const BATCH: [&str; 4] = ["b0", "b1", "b2", "b3"];
/// One write in this many is a batch.
const BATCH_EVERY: u64 = 10;
const READERS: usize = 4;

fn main() {
    support::main(
        roles,
        vec![
            trial(
                "readers_never_see_torn_values_or_partial_batches",
                readers_see_whole_writes,
            ),
            trial(
                "a_reader_cannot_write_the_segment_by_any_route",
                reader_cannot_write,
            ),
        ],
    )
}

fn roles(role: &str) -> Result<()> {
    match role {
        "reader" => reader(false),
        "watcher" => reader(true),
        "try_writes" => try_writes(),
        _ => bail!("unknown role {role:?}"),
    }
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `[n: u64][n % 61 filler bytes][checksum of the rest: u64]`.
fn encode(n: u64) -> Vec<u8> {
    let mut v = n.to_le_bytes().to_vec();
    v.extend((0..n % 61).map(|i| (n + i) as u8));
    let sum = checksum(&v);
    v.extend(sum.to_le_bytes());
    v
}

/// The number a value carries, after checking its checksum and length.
fn decode(bytes: &[u8]) -> Result<u64> {
    ensure!(bytes.len() >= 16, "torn value: {} bytes", bytes.len());
    let (body, sum) = bytes.split_at(bytes.len() - 16 + 8);
    ensure!(
        checksum(body).to_le_bytes() == sum,
        "torn value: bad checksum"
    );
    let n = u64::from_le_bytes(body[..8].try_into()?);
    ensure!(body.len() as u64 == 8 + n % 61, "torn value: wrong length");
    Ok(n)
}

fn reader(watch: bool) -> Result<()> {
    let view = TenantView::open(inherited_fd("/memfd:")?)?;
    println!("ready");
    let mut last_version = [0u64; VARS.len() + BATCH.len()];
    let mut buf = Vec::with_capacity(128);
    let (mut reads, mut batches_checked, mut lags, mut events) = (0u64, 0u64, 0u64, 0u64);
    let mut watched = 0;
    let mut round = 0u64;
    loop {
        // Read after checking the flag, so the last round sees the final state.
        let retired = view.is_retired()?;
        for (i, var) in VARS.iter().enumerate() {
            if let Some(stamp) = view.get_into("s", var, &mut buf)? {
                decode(&buf)?;
                ensure!(
                    stamp.version >= last_version[i],
                    "{var}: version went back from {} to {}",
                    last_version[i],
                    stamp.version
                );
                last_version[i] = stamp.version;
                reads += 1;
            }
        }
        // The batch members, in either order: a later read never shows an older batch.
        let order: Vec<usize> = if round.is_multiple_of(2) {
            (0..BATCH.len()).collect()
        } else {
            (0..BATCH.len()).rev().collect()
        };
        let mut seen_batch = 0;
        for i in order {
            let Some(stamp) = view.get_into("s", BATCH[i], &mut buf)? else {
                ensure!(
                    seen_batch == 0,
                    "{} missing after batch {seen_batch}",
                    BATCH[i]
                );
                continue;
            };
            let batch = decode(&buf)?;
            ensure!(
                batch >= seen_batch,
                "partial batch: {} holds batch {batch} after another member showed {seen_batch}",
                BATCH[i]
            );
            let slot = VARS.len() + i;
            ensure!(
                stamp.version >= last_version[slot],
                "{}: version went back",
                BATCH[i]
            );
            last_version[slot] = stamp.version;
            seen_batch = batch;
            reads += 1;
        }
        if seen_batch > 0 {
            batches_checked += 1;
        }
        if watch {
            match view.changes_since(watched)? {
                Changes::Lagged {
                    missed_from,
                    resumed_at,
                } => {
                    ensure!(missed_from == watched + 1 && resumed_at > watched);
                    watched = resumed_at;
                    lags += 1;
                }
                Changes::Events(list) => {
                    let mut expect = watched + 1;
                    let mut k = 0;
                    while k < list.len() {
                        let e = &list[k];
                        ensure!(
                            e.revision == expect,
                            "event {} where {expect} was due",
                            e.revision
                        );
                        ensure!(e.kind == ChangeKind::Set && e.service == "s");
                        if e.variable == BATCH[0] {
                            // A batch arrives whole, its members in order.
                            for (j, var) in BATCH.iter().enumerate() {
                                let m = list.get(k + j).context("partial batch in the ring")?;
                                ensure!(&m.variable == var && m.revision == e.revision + j as u64);
                            }
                            k += BATCH.len();
                            expect += BATCH.len() as u64;
                        } else {
                            ensure!(VARS.contains(&e.variable.as_str()), "stray {}", e.variable);
                            k += 1;
                            expect += 1;
                        }
                        events += 1;
                    }
                    watched = expect - 1;
                }
            }
        }
        round += 1;
        if retired {
            break;
        }
    }
    println!(
        "done: {reads} reads, {batches_checked} batch rounds, {events} events, {lags} lags, {round} rounds"
    );
    Ok(())
}

fn readers_see_whole_writes() -> Result<()> {
    let mut w = TenantWriter::create("procs", 1 << 20, 64)?;
    let fd = w.try_clone_fd()?;
    let mut children = Vec::new();
    for i in 0..READERS {
        let mut cmd = command(if i == 0 { "watcher" } else { "reader" })?;
        cmd.stdout(Stdio::piped());
        let mut child = spawn(cmd, Some(&fd))?;
        let mut out = BufReader::new(child.child().stdout.take().context("stdout")?);
        let mut line = String::new();
        out.read_line(&mut line)?;
        ensure!(line.trim() == "ready", "reader {i} said {line:?}");
        children.push((child, out));
    }
    let mut batch = 0;
    for n in 1..=SETS {
        if n % BATCH_EVERY == 0 {
            batch += 1;
            let value = encode(batch);
            let vars: Vec<(&str, &[u8])> = BATCH.iter().map(|v| (*v, value.as_slice())).collect();
            w.set_many("s", &vars, n)?;
        } else {
            let var = VARS[(n % VARS.len() as u64) as usize];
            w.set("s", var, &encode(n), n)?;
        }
    }
    w.retire()?;
    for (i, (mut child, mut out)) in children.into_iter().enumerate() {
        let status = child.wait_exit()?;
        let mut line = String::new();
        out.read_line(&mut line)?;
        eprintln!("reader {i}: {}", line.trim());
        ensure!(status.success(), "reader {i} failed: {status}");
    }
    Ok(())
}

fn expect_eperm<T: std::fmt::Debug>(what: &str, got: Result<T, Errno>) -> Result<()> {
    match got {
        Err(e) if e == Errno::PERM => {
            println!("{what}: refused with EPERM");
            Ok(())
        }
        other => bail!("{what}: expected EPERM, got {other:?}"),
    }
}

fn mmap_errno(fd: std::os::fd::BorrowedFd<'_>, len: usize) -> Result<Mapping, Errno> {
    Mapping::map(fd, 0, len, Access::ReadWrite)
        .map_err(|e| Errno::from_raw_os_error(e.errno().unwrap_or(0)))
}

fn try_writes() -> Result<()> {
    let fd = inherited_fd("/memfd:")?;
    let len = rustix::fs::fstat(&fd)?.st_size as usize;
    let reopened = rustix::fs::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()),
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("reopen through /proc")?;
    expect_eperm("mmap read-write", mmap_errno(fd.as_fd(), len))?;
    expect_eperm("pwrite", rustix::io::pwrite(&fd, b"x", 0))?;
    expect_eperm(
        "mmap read-write of the /proc reopen",
        mmap_errno(reopened.as_fd(), len),
    )?;
    expect_eperm(
        "pwrite of the /proc reopen",
        rustix::io::pwrite(&reopened, b"x", 0),
    )?;
    // Reading works, and shows the server's write.
    let view = TenantView::open(fd)?;
    let value = view
        .get("s", "v")?
        .context("the server's value is missing")?;
    ensure!(value.bytes == b"server", "read {:?}", value.bytes);
    Ok(())
}

fn reader_cannot_write() -> Result<()> {
    let mut w = TenantWriter::create("locked", 1 << 16, 8)?;
    w.set("s", "v", b"server", 1)?;
    let fd = w.try_clone_fd()?;
    let mut cmd = command("try_writes")?;
    cmd.stdout(Stdio::piped());
    let mut child = spawn(cmd, Some(&fd))?;
    let mut out = String::new();
    std::io::Read::read_to_string(
        &mut child.child().stdout.take().context("stdout")?,
        &mut out,
    )?;
    eprintln!("child: {}", out.trim_end());
    ensure!(out.lines().count() == 4, "child stopped early: {out}");
    child.wait_success()
}
