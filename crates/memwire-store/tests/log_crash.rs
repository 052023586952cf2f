//! The log survives `kill -9`: a child process appends records as fast as it can (taking a
//! snapshot every so often) and prints each lsn once `append` has returned, its
//! acknowledgement; the parent SIGKILLs it at a random moment, reopens the log, checks that
//! every acknowledged record is there and intact, and starts the next child, which goes on
//! appending after what it recovers. 20 kills per fsync policy (200 with `MEMWIRE_STRESS=1`),
//! `Never` included: `write(2)` alone survives a process kill.

#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use memwire_store::{FsyncPolicy, Log, Recovery};

/// The log directory of a child.
const DIR_ENV: &str = "MEMWIRE_TEST_LOG_DIR";
/// The fsync policy of a child, by name.
const POLICY_ENV: &str = "MEMWIRE_TEST_LOG_POLICY";
/// A snapshot after every this many records: often enough that kills land in snapshots too.
const SNAPSHOT_EVERY: u64 = 300;
/// Bytes of filler in each snapshot, so writing one takes long enough to be interrupted.
const SNAPSHOT_FILLER: usize = 256 << 10;

fn main() {
    support::main(
        roles,
        vec![
            support::trial("log_survives_kill_policy_never", || {
                crash(FsyncPolicy::Never)
            }),
            support::trial("log_survives_kill_policy_every_second", || {
                crash(FsyncPolicy::EverySecond)
            }),
            support::trial("log_survives_kill_policy_always", || {
                crash(FsyncPolicy::Always)
            }),
        ],
    )
}

fn roles(role: &str) -> Result<()> {
    match role {
        "appender" => appender(),
        other => bail!("unknown role {other}"),
    }
}

fn policy_name(policy: FsyncPolicy) -> &'static str {
    match policy {
        FsyncPolicy::Always => "always",
        FsyncPolicy::EverySecond => "every-second",
        FsyncPolicy::Never => "never",
    }
}

/// The payload of record `lsn`: its lsn, then 0 to 499 bytes derived from it.
fn payload(lsn: u64) -> Vec<u8> {
    let mut payload = lsn.to_le_bytes().to_vec();
    payload.extend((0..lsn * 7919 % 500).map(|i| (lsn ^ i).wrapping_mul(0x9e37) as u8));
    payload
}

/// The state after records 1..=lsn: the lsn and a running checksum of their payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    lsn: u64,
    sum: u32,
}

impl State {
    fn apply(&mut self, lsn: u64, payload: &[u8]) -> Result<()> {
        ensure!(
            lsn == self.lsn + 1,
            "record {lsn} follows state at {}",
            self.lsn
        );
        self.lsn = lsn;
        self.sum = crc32c::crc32c_append(self.sum, payload);
        Ok(())
    }

    fn encode(self) -> Vec<u8> {
        let mut bytes = self.lsn.to_le_bytes().to_vec();
        bytes.extend_from_slice(&self.sum.to_le_bytes());
        bytes.resize(12 + SNAPSHOT_FILLER, self.lsn as u8);
        bytes
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        ensure!(
            bytes.len() == 12 + SNAPSHOT_FILLER,
            "snapshot of {} bytes",
            bytes.len()
        );
        Ok(Self {
            lsn: u64::from_le_bytes(bytes[0..8].try_into()?),
            sum: u32::from_le_bytes(bytes[8..12].try_into()?),
        })
    }

    /// The state recovery leads to, checking every record against [`payload`].
    fn recover(recovery: &Recovery) -> Result<Self> {
        let mut state = match &recovery.snapshot {
            Some((lsn, bytes)) => {
                let state = Self::decode(bytes)?;
                ensure!(
                    state.lsn == *lsn,
                    "snapshot {lsn} holds the state at {}",
                    state.lsn
                );
                state
            }
            None => Self { lsn: 0, sum: 0 },
        };
        for (lsn, bytes) in &recovery.records {
            ensure!(
                *bytes == payload(*lsn),
                "record {lsn} is not what was appended"
            );
            state.apply(*lsn, bytes)?;
        }
        Ok(state)
    }
}

/// The child: recovers, then appends (and snapshots) until killed, printing each lsn once
/// `append` has returned.
fn appender() -> Result<()> {
    let dir = PathBuf::from(std::env::var(DIR_ENV)?);
    let policy = match std::env::var(POLICY_ENV)?.as_str() {
        "always" => FsyncPolicy::Always,
        "every-second" => FsyncPolicy::EverySecond,
        _ => FsyncPolicy::Never,
    };
    let (mut log, recovery) = Log::open(&dir, policy)?;
    let mut state = State::recover(&recovery)?;
    ensure!(
        state.lsn == log.last_lsn(),
        "recovered {} of {}",
        state.lsn,
        log.last_lsn()
    );
    let mut out = std::io::stdout().lock();
    loop {
        let lsn = log.last_lsn() + 1;
        let bytes = payload(lsn);
        ensure!(
            log.append(&bytes)? == lsn,
            "append did not return lsn {lsn}"
        );
        state.apply(lsn, &bytes)?;
        // One write(2) per line: a line in the pipe is an acknowledgement, whole.
        out.write_all(format!("{lsn}\n").as_bytes())?;
        out.flush()?;
        if lsn % SNAPSHOT_EVERY == 0 {
            log.snapshot(&state.encode())?;
        }
    }
}

/// A small xorshift generator; the seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn crash(policy: FsyncPolicy) -> Result<()> {
    let rounds = if std::env::var_os("MEMWIRE_STRESS").is_some() {
        200
    } else {
        20
    };
    let seed = std::env::var("MEMWIRE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64);
            nanos | 1
        });
    eprintln!(
        "policy {}: seed {seed} (MEMWIRE_TEST_SEED replays it)",
        policy_name(policy)
    );
    let mut rng = Rng(seed);
    // `Always` pays an fdatasync per record: kill it sooner.
    let most_acks = if policy == FsyncPolicy::Always {
        200
    } else {
        2000
    };
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("log");
    let mut acked = 0u64;
    for round in 0..rounds {
        let wait_for = 1 + rng.below(most_acks);
        let acks = kill_after(&dir, policy, wait_for).with_context(|| format!("round {round}"))?;
        ensure!(
            acks.first() == Some(&(acked + 1)),
            "round {round}: the child started at lsn {:?} after {acked} recovered",
            acks.first()
        );
        ensure!(
            acks.windows(2).all(|w| w[1] == w[0] + 1),
            "round {round}: acknowledgements out of order"
        );
        let last_ack = *acks.last().context("no acknowledgement")?;

        let (log, recovery) = Log::open(&dir, FsyncPolicy::Never)?;
        let state = State::recover(&recovery).with_context(|| format!("round {round}"))?;
        ensure!(
            state.lsn == log.last_lsn(),
            "round {round}: state at {}, log at {}",
            state.lsn,
            log.last_lsn()
        );
        // Every acknowledged record is there; at most the one in flight beyond them.
        ensure!(
            state.lsn == last_ack || state.lsn == last_ack + 1,
            "round {round}: acknowledged up to {last_ack}, recovered up to {}",
            state.lsn
        );
        log.close()?;
        acked = state.lsn;
    }
    ensure!(acked > 0, "nothing was appended");
    eprintln!(
        "policy {}: {rounds} kills, {acked} records",
        policy_name(policy)
    );
    Ok(())
}

/// Runs an appender on `dir` and SIGKILLs it once it has acknowledged `wait_for` records;
/// returns every lsn it acknowledged, including those still in the pipe when it died.
fn kill_after(dir: &Path, policy: FsyncPolicy, wait_for: u64) -> Result<Vec<u64>> {
    let mut command = support::command("appender")?;
    command
        .env(DIR_ENV, dir)
        .env(POLICY_ENV, policy_name(policy));
    support::kill_after_acks(command, "appender", wait_for, |line| {
        line.trim_end()
            .parse::<u64>()
            .with_context(|| format!("ack {line:?}"))
    })
}
