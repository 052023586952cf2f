//! Messages between real processes, both ways: a host spawns a guest (this test binary, re-run
//! with a role) that echoes every size, hundreds of thousands of messages cross with checksums,
//! and spinning processes make no wake syscall.

#![allow(clippy::unwrap_used)]

#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;
mod transport_support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use memwire_transport::WaitStrategy;
use support::{command, trial};
use transport_support::{check_echo, host};

fn main() {
    transport_support::run(vec![
        trial("spawned_guest_echoes_every_size", spawned_echo),
        trial("spinning_processes_make_no_wake_syscalls", no_wake_syscalls),
        trial("many_messages_both_ways_with_checksums", both_ways),
    ])
}

fn spawned_echo() -> Result<()> {
    let host = host("echo", WaitStrategy::default())?;
    let (mut child, mut link) = host.spawn(&mut command("echo")?)?;
    let sizes = [
        0,
        1,
        55,
        56,
        57,
        100,
        256,
        257,
        4096,
        5000,
        65536,
        70000,
        1 << 20,
        (1 << 20) + 1,
        3 << 20,
    ];
    for (i, &len) in sizes.iter().enumerate() {
        check_echo(&mut link, len, i as u64)?;
    }
    let usage = link.tx().usage()?;
    ensure!(
        usage.iter().all(|u| u.free == u.total),
        "slots not returned: {usage:?}"
    );
    let stats = link.stats();
    ensure!(
        stats.messages_sent == sizes.len() as u64 && stats.messages_received == sizes.len() as u64,
        "{stats:?}"
    );
    drop(link);
    let status = child.wait()?;
    ensure!(status.success(), "echo child: {status}");
    Ok(())
}

fn no_wake_syscalls() -> Result<()> {
    const MESSAGES: u64 = 100_000;
    let host = host("spin", WaitStrategy::Spin)?;
    let mut cmd = command("echo_spin")?;
    cmd.stdout(Stdio::piped());
    let (mut child, mut link) = host.spawn(&mut cmd)?;
    for i in 0..MESSAGES {
        let len = (i % 300) as usize;
        let mut loan = link.tx().loan(len)?;
        loan.as_mut_slice().fill(i as u8);
        loan.commit()?;
        let back = link.rx().recv()?;
        ensure!(
            back.len() == len && back.iter().all(|&b| b == i as u8),
            "message {i}"
        );
    }
    let stats = link.stats();
    drop(link);
    let mut out = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut out)?;
    ensure!(child.wait()?.success());
    eprintln!("host {stats:?}; guest {}", out.trim());
    ensure!(stats.messages_sent == MESSAGES && stats.messages_received == MESSAGES);
    ensure!(stats.wake_syscalls == 0 && stats.sleeps == 0, "{stats:?}");
    ensure!(out.trim() == "wakes 0", "guest: {out:?}");
    Ok(())
}

fn both_ways() -> Result<()> {
    let (small, large) = (200_000u64, 2_000u64);
    let host = host("both-ways", WaitStrategy::default())?;
    let (mut child, link) = host.spawn(&mut command("echo")?)?;
    let (mut tx, mut rx) = link.split();
    let lens: Vec<usize> = (0..small + large)
        .map(|i| {
            if i % ((small + large) / large) == 0 {
                // 4 KiB .. 2 MiB; every tenth above 1 MiB.
                if i % 10 == 0 {
                    (1 << 20) + 1 + (i as usize * 7919) % ((1 << 20) - 1)
                } else {
                    4096 + (i as usize * 104_729) % ((1 << 20) - 4096)
                }
            } else {
                (i as usize * 31) % 4097
            }
        })
        .collect();
    let sender = {
        let lens = lens.clone();
        std::thread::spawn(move || -> Result<()> {
            for (i, &len) in lens.iter().enumerate() {
                let mut loan = tx.loan(len)?;
                let buf = loan.as_mut_slice();
                for (j, b) in buf.iter_mut().enumerate() {
                    *b = (i as u8).wrapping_add(j as u8);
                }
                loan.commit()?;
            }
            Ok(())
        })
    };
    for (i, &len) in lens.iter().enumerate() {
        let m = rx
            .recv_timeout(Duration::from_secs(60))
            .with_context(|| format!("message {i}"))?;
        ensure!(
            m.len() == len,
            "message {i}: {} bytes, expected {len}",
            m.len()
        );
        ensure!(
            m.iter()
                .enumerate()
                .all(|(j, &b)| b == (i as u8).wrapping_add(j as u8)),
            "message {i} of {len} bytes corrupt"
        );
    }
    sender.join().unwrap()?;
    let over_1m = lens.iter().filter(|&&l| l > 1 << 20).count();
    eprintln!("{} messages, {over_1m} above 1 MiB", lens.len());
    drop(rx);
    ensure!(child.wait()?.success());
    Ok(())
}
