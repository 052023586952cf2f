//! 8 writer and 8 reader processes on one service of a real store server (this binary in the
//! `server` role: a `Store` behind a `LocalServer`), each a `Local` client: 100 000 writes in
//! all (1 000 000 with `MEMWIRE_STRESS=1`). Every value carries its writer, its sequence number
//! and a hash of both and of its payload, so a reader that copied a torn value finds it; each
//! reader checks that each variable's version never goes back and that a new value comes with
//! a higher version; at the end, each variable holds the write acknowledged last (the highest
//! version any writer was given for it). No timing thresholds.

#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail, ensure};
use memwire_store::local::socket_path;
use memwire_store::protocol::VarPath;
use memwire_store::{FsyncPolicy, Local, LocalServer, Store, StoreConfig};
use support::{Guard, command, spawn, trial};

const DIR_ENV: &str = "MEMWIRE_TEST_STORE_DIR";
const ID_ENV: &str = "MEMWIRE_TEST_WRITER";
const COUNT_ENV: &str = "MEMWIRE_TEST_WRITES";
const NAME: &str = "concurrency";
const WRITERS: u64 = 8;
const READERS: u64 = 8;
/// The variables of the service, shared by all writers.
const VARS: u64 = 16;

fn main() {
    support::private_runtime_dir("memwire-store-concurrency");
    support::main(
        roles,
        vec![trial(
            "writers_and_readers_never_see_torn_or_older_values",
            concurrency,
        )],
    )
}

fn roles(role: &str) -> Result<()> {
    match role {
        "server" => server(),
        "writer" => writer(),
        "reader" => reader(),
        other => bail!("unknown role {other:?}"),
    }
}

fn data_dir() -> Result<PathBuf> {
    Ok(PathBuf::from(std::env::var(DIR_ENV)?))
}

fn connect() -> Result<Local> {
    let key = memwire_store::read_admin_key(&data_dir()?)?;
    Ok(Local::connect(NAME, &key)?)
}

fn var(j: u64) -> Result<VarPath> {
    Ok(format!("conc/svc/v{j}").parse()?)
}

/// FNV-1a, 64 bits.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `writer:seq:payload:hash`, the payload a run of one letter whose length varies with `seq`.
fn value(writer: u64, seq: u64) -> Vec<u8> {
    let letter = char::from(b'a' + u8::try_from((writer + seq) % 26).unwrap_or(0));
    let len = usize::try_from(seq * 7 % 97).unwrap_or(0);
    let body = format!("{writer}:{seq}:{}", letter.to_string().repeat(len));
    format!("{body}:{:016x}", fnv(body.as_bytes())).into_bytes()
}

/// Checks a value read back: its hash, and that it is exactly what `value` makes.
fn check(bytes: &[u8]) -> Result<(u64, u64)> {
    let text = std::str::from_utf8(bytes).context("a value that is not UTF-8")?;
    let (body, hash) = text.rsplit_once(':').context("no hash")?;
    ensure!(
        u64::from_str_radix(hash, 16).ok() == Some(fnv(body.as_bytes())),
        "torn value {text:?}"
    );
    let mut parts = body.splitn(3, ':');
    let writer: u64 = parts.next().context("no writer")?.parse()?;
    let seq: u64 = parts.next().context("no seq")?.parse()?;
    ensure!(
        value(writer, seq) == bytes,
        "value {text:?} is not as written"
    );
    Ok((writer, seq))
}

/// The server: serves until killed; prints `ready` once it listens.
fn server() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut config = StoreConfig::new(data_dir()?);
        config.fsync = FsyncPolicy::Never;
        let (store, _) = Store::open(config)?;
        let server = LocalServer::bind(Arc::new(store), &socket_path(NAME)?)?;
        println!("ready");
        std::io::stdout().flush()?;
        server.run(std::future::pending()).await?;
        Ok(())
    })
}

/// A writer: its share of the writes, round the variables; prints `j version seq` for the
/// last write acknowledged on each variable it wrote.
fn writer() -> Result<()> {
    let id: u64 = std::env::var(ID_ENV)?.parse()?;
    let count: u64 = std::env::var(COUNT_ENV)?.parse()?;
    let local = connect()?;
    let paths = (0..VARS).map(var).collect::<Result<Vec<_>>>()?;
    let mut last = HashMap::new();
    for seq in 0..count {
        let j = (seq * 5 + id) % VARS;
        let written = local.set(&paths[usize::try_from(j)?], &value(id, seq))?;
        if let Some(&(version, _)) = last.get(&j) {
            ensure!(written.version > version, "acknowledged versions went back");
        }
        last.insert(j, (written.version, seq));
    }
    let mut out = std::io::stdout().lock();
    for (j, (version, seq)) in last {
        writeln!(out, "{j} {version} {seq}")?;
    }
    Ok(out.flush()?)
}

/// A reader: reads every variable over and over until its stdin closes; checks every value
/// and that versions only move forward. Prints how many values it read.
fn reader() -> Result<()> {
    let local = connect()?;
    let paths = (0..VARS).map(var).collect::<Result<Vec<_>>>()?;
    let done = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&done);
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        stop.store(true, Ordering::Release);
    });
    let mut seen: Vec<Option<(u64, Vec<u8>)>> = vec![None; paths.len()];
    let mut reads = 0_u64;
    // One more full pass after the stop, so the last values are read too.
    let mut last_pass = false;
    loop {
        for (path, seen) in paths.iter().zip(&mut seen) {
            // Before the first write the tenant itself does not exist yet.
            let got = match local.get(path) {
                Err(memwire_store::Error::NotFound(_)) => None,
                other => other?,
            };
            let Some(stored) = got else {
                ensure!(seen.is_none(), "{path} disappeared");
                continue;
            };
            check(&stored.value).with_context(|| format!("{path}"))?;
            reads += 1;
            if let Some((version, value)) = seen.as_ref() {
                ensure!(
                    stored.version >= *version,
                    "{path}: version {} after {version}",
                    stored.version
                );
                ensure!(
                    stored.version > *version || stored.value == *value,
                    "{path}: another value under version {version}"
                );
            }
            *seen = Some((stored.version, stored.value));
        }
        if last_pass {
            break;
        }
        last_pass = done.load(Ordering::Acquire);
    }
    println!("{reads}");
    Ok(())
}

fn concurrency() -> Result<()> {
    let total: u64 = if std::env::var_os("MEMWIRE_STRESS").is_some() {
        1_000_000
    } else {
        100_000
    };
    let dir = tempfile::tempdir()?;
    let mut cmd = command("server")?;
    cmd.env(DIR_ENV, dir.path()).stdout(Stdio::piped());
    let mut server = spawn(cmd, None)?;
    let mut line = String::new();
    BufReader::new(server.child().stdout.take().context("no stdout")?).read_line(&mut line)?;
    ensure!(line == "ready\n", "the server said {line:?}");

    let mut readers = (0..READERS)
        .map(|_| {
            let mut cmd = command("reader")?;
            cmd.env(DIR_ENV, dir.path())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped());
            spawn(cmd, None)
        })
        .collect::<Result<Vec<Guard>>>()?;
    let writers = (0..WRITERS)
        .map(|id| {
            let mut cmd = command("writer")?;
            cmd.env(DIR_ENV, dir.path())
                .env(ID_ENV, id.to_string())
                .env(COUNT_ENV, (total / WRITERS).to_string())
                .stdout(Stdio::piped());
            spawn(cmd, None)
        })
        .collect::<Result<Vec<Guard>>>()?;

    // The last acknowledged write of each variable: the highest version any writer got.
    let mut last: HashMap<u64, (u64, u64, u64)> = HashMap::new();
    for (id, mut writer) in (0..WRITERS).zip(writers) {
        let mut out = String::new();
        writer
            .child()
            .stdout
            .take()
            .context("no stdout")?
            .read_to_string(&mut out)?;
        ensure!(writer.wait_exit()?.success(), "writer {id} failed");
        for line in out.lines() {
            let mut fields = line.split(' ').map(str::parse::<u64>);
            let (Some(Ok(j)), Some(Ok(version)), Some(Ok(seq))) =
                (fields.next(), fields.next(), fields.next())
            else {
                bail!("writer {id} printed {line:?}");
            };
            let entry = last.entry(j).or_insert((version, id, seq));
            if version > entry.0 {
                *entry = (version, id, seq);
            }
        }
    }
    ensure!(
        last.len() == usize::try_from(VARS)?,
        "variables written: {}",
        last.len()
    );

    for (i, reader) in readers.iter_mut().enumerate() {
        drop(reader.child().stdin.take());
        let mut out = String::new();
        reader
            .child()
            .stdout
            .take()
            .context("no stdout")?
            .read_to_string(&mut out)?;
        ensure!(reader.wait_exit()?.success(), "reader {i} failed");
        let reads: u64 = out.trim().parse()?;
        ensure!(reads > 0, "reader {i} read nothing");
    }

    let local = {
        let key = memwire_store::read_admin_key(dir.path())?;
        Local::connect(NAME, &key)?
    };
    for (j, (version, writer, seq)) in last {
        let stored = local.get(&var(j)?)?.context("a variable is gone")?;
        ensure!(
            stored.version == version && stored.value == value(writer, seq),
            "v{j}: version {} holds {:?}, not writer {writer}'s write {seq} (version {version})",
            stored.version,
            String::from_utf8_lossy(&stored.value)
        );
    }
    drop(local);
    server.kill()?;
    Ok(())
}
