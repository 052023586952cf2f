//! The store survives `kill -9`: a child process opens it and writes from several threads,
//! printing each write once `set` has returned; the parent SIGKILLs it at a random moment,
//! reopens the store and checks that every acknowledged write is there (with that version or
//! a later one), 20 times (200 with `MEMWIRE_STRESS=1`).

#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;

use std::collections::HashMap;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use memwire_store::FsyncPolicy;
use memwire_store::store::{Store, StoreConfig};

const DIR_ENV: &str = "MEMWIRE_TEST_STORE_DIR";
/// Writer threads in the child.
const THREADS: u32 = 3;
/// Records between snapshots in the child: small, so kills land around snapshots too.
const SNAPSHOT_EVERY: u64 = 250;

fn main() {
    support::main(
        roles,
        vec![support::trial("acknowledged_writes_survive_kill_9", crash)],
    );
}

fn roles(role: &str) -> Result<()> {
    match role {
        "store" => writer(),
        other => bail!("unknown role {other}"),
    }
}

fn config(dir: &Path) -> StoreConfig {
    let mut config = StoreConfig::new(dir);
    config.fsync = FsyncPolicy::Never;
    config.snapshot_every = SNAPSHOT_EVERY;
    config
}

/// The child: opens the store and writes from `THREADS` threads until killed, printing
/// `path version value` after each `set` returns, one `write(2)` per line (atomic in a pipe).
fn writer() -> Result<()> {
    let dir = PathBuf::from(std::env::var(DIR_ENV)?);
    let (store, _) = Store::open(config(&dir))?;
    let store = Arc::new(store);
    let admin = store.authenticate(&memwire_store::read_admin_key(&dir)?)?;
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, admin) = (Arc::clone(&store), admin.clone());
            std::thread::spawn(move || -> Result<()> {
                let stamp = std::process::id();
                for i in 0_u64.. {
                    let path = format!("crash/w{t}/v{}", i % 40);
                    let value = format!("{stamp}-{i}");
                    let written = store.set(&admin, &path.parse()?, value.as_bytes(), None)?;
                    let line = format!("{path} {} {value}\n", written.version);
                    rustix::io::write(std::io::stdout(), line.as_bytes())?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a writer panicked"))??;
    }
    Ok(())
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

fn crash() -> Result<()> {
    let rounds = if std::env::var_os("MEMWIRE_STRESS").is_some() {
        200
    } else {
        20
    };
    let seed = std::env::var("MEMWIRE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("seed {seed} (MEMWIRE_TEST_SEED replays it)");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    // The first start makes the admin key the children read.
    drop(Store::open(config(&dir))?);
    let mut acked_total = 0;
    for round in 0..rounds {
        let wait_for = 1 + rng.below(1500);
        let acks = kill_after(&dir, wait_for).with_context(|| format!("round {round}"))?;
        ensure!(acks.len() as u64 >= wait_for, "round {round}: too few acks");
        acked_total += acks.len();
        // The newest acknowledgement of each path.
        let mut newest: HashMap<String, (u64, String)> = HashMap::new();
        for (path, version, value) in acks {
            let e = newest.entry(path).or_insert((0, String::new()));
            if version > e.0 {
                *e = (version, value);
            }
        }
        let (store, _) = Store::open(config(&dir)).with_context(|| format!("round {round}"))?;
        let admin = store.authenticate(&memwire_store::read_admin_key(&dir)?)?;
        for (path, (version, value)) in &newest {
            let stored = store
                .get(&admin, &path.parse()?)?
                .with_context(|| format!("round {round}: acknowledged {path} is gone"))?;
            ensure!(
                stored.version >= *version,
                "round {round}: {path} acknowledged at version {version}, found {}",
                stored.version
            );
            if stored.version == *version {
                ensure!(
                    stored.value == value.as_bytes(),
                    "round {round}: {path} at version {version} holds another value"
                );
            }
        }
    }
    eprintln!("{rounds} kills, {acked_total} acknowledged writes checked");
    Ok(())
}

/// Runs a writer child on `dir`, SIGKILLs it once it has acknowledged `wait_for` writes, and
/// returns every write it acknowledged, including those still in the pipe when it died.
fn kill_after(dir: &Path, wait_for: u64) -> Result<Vec<(String, u64, String)>> {
    let mut command = support::command("store")?;
    command.env(DIR_ENV, dir);
    support::kill_after_acks(command, "writer", wait_for, parse)
}

fn parse(line: &str) -> Result<(String, u64, String)> {
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(path), Some(version), Some(value), None) => {
            Ok((path.to_owned(), version.parse()?, value.to_owned()))
        }
        _ => bail!("bad acknowledgement {line:?}"),
    }
}
