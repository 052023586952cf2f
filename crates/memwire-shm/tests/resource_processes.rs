//! Named resources between real processes: crashes, races and gc.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use memwire_shm::resource::{Scope, gc, list};
use memwire_shm::{Error, Namespace, Resource, ResourceOptions};
use support::{Guard, command, spawn, trial, unique_namespace, wait_until};

const NAME_ENV: &str = "MEMWIRE_TEST_NAME";
const NAMESPACE_ENV: &str = "MEMWIRE_NAMESPACE";

fn main() {
    support::main(
        roles,
        vec![
            trial("killed_holder_drops_out_and_gc_reclaims", killed_holder),
            trial("racing_creators_one_wins_each_round", racing_creators),
            trial(
                "killed_openers_never_let_gc_remove_a_held_resource",
                killed_openers,
            ),
            trial("dead_creator_leftover_is_taken_over", dead_creator_leftover),
            trial("gc_never_touches_foreign_files", foreign_files),
            trial(
                "an_exclusive_lock_is_not_a_holder",
                exclusive_lock_is_not_a_holder,
            ),
            trial("a_file_of_another_user_is_never_used", file_of_another_user),
        ],
    )
}

fn roles(role: &str) -> Result<()> {
    let name = std::env::var(NAME_ENV).context("no name")?;
    match role {
        // Open the resource, say so, and hold it until killed.
        "hold" => {
            let _held = Resource::open(&name)?;
            println!("ready");
            std::io::stdout().flush()?;
            loop {
                std::thread::park();
            }
        }
        // Wait for "go", race to open or create, report, hold until stdin closes.
        "race" => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let me = std::process::id().to_string();
            let res = Resource::options()
                .remove_when_unused(true)
                .initial_contents(me.as_bytes())
                .open_or_create(&name, 4096)?;
            let contents = String::from_utf8(res.get()?)?;
            println!(
                "{} {contents}",
                if res.created() { "created" } else { "opened" }
            );
            std::io::stdout().flush()?;
            let mut rest = Vec::new();
            std::io::stdin().read_to_end(&mut rest)?;
            Ok(())
        }
        // Open and release as fast as possible until killed.
        "churn" => loop {
            let res = Resource::open(&name)?;
            res.put(b"churn")?;
            drop(res);
        },
        // Create the file the way a creator does, lock it, write part of the header, and die.
        "die_creating" => {
            let ns = Namespace::from_env()?;
            let path = ns.shm_path(&memwire_shm::Name::new(&name)?);
            let fd = rustix::fs::open(
                &path,
                rustix::fs::OFlags::CREATE | rustix::fs::OFlags::EXCL | rustix::fs::OFlags::RDWR,
                rustix::fs::Mode::from_raw_mode(0o600),
            )?;
            rustix::fs::flock(&fd, rustix::fs::FlockOperation::LockExclusive)?;
            rustix::fs::ftruncate(&fd, 8192)?;
            rustix::io::pwrite(&fd, b"MWRESRC1", 0)?;
            rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            )?;
            bail!("survived SIGKILL")
        }
        other => bail!("unknown role {other:?}"),
    }
}

fn child(role: &str, ns: &Namespace, name: &str) -> Result<std::process::Command> {
    let mut cmd = command(role)?;
    cmd.env(NAME_ENV, name).env(NAMESPACE_ENV, ns.as_str());
    Ok(cmd)
}

/// Spawns a child that holds `name` and waits until it says so.
fn holder(ns: &Namespace, name: &str) -> Result<Guard> {
    let mut cmd = child("hold", ns, name)?;
    cmd.stdout(Stdio::piped());
    let mut guard = spawn(cmd, None)?;
    let mut line = String::new();
    BufReader::new(guard.child().stdout.take().context("stdout")?).read_line(&mut line)?;
    ensure!(line.trim() == "ready", "holder said {line:?}");
    Ok(guard)
}

fn opts(ns: &Namespace) -> ResourceOptions {
    Resource::options().namespace(ns.clone())
}

fn killed_holder() -> Result<()> {
    let ns = unique_namespace("killed-holder");
    let scope = Scope::Namespace(ns.clone());
    let mine = opts(&ns).create("shared", 4096)?;
    let guard = holder(&ns, "shared")?;
    let pid = guard.id();
    ensure!(
        mine.holders()?.contains(&pid),
        "child {pid} not in {:?}",
        mine.holders()?
    );
    let before = mine.holders()?.len();

    let status = guard.kill()?;
    ensure!(!status.success());
    let after = mine.holders()?;
    ensure!(
        !after.contains(&pid),
        "dead child {pid} still listed: {after:?}"
    );
    ensure!(
        after.len() == before - 1,
        "{before} holders before, {after:?} after"
    );

    // We still hold it: gc must keep it.
    let report = gc(&scope, Duration::ZERO, false)?;
    ensure!(
        report.removed.is_empty(),
        "gc removed a held resource: {report:?}"
    );
    ensure!(mine.path().exists());
    let rows = list(&scope)?;
    ensure!(
        rows.len() == 1 && rows[0].state.as_str() == "live",
        "{rows:?}"
    );

    let path = mine.path().to_owned();
    drop(mine);
    // A child another trial is forking at this instant shares our open file (and its lock)
    // until it execs, so the orphan state may take a moment to show.
    wait_until("the resource to be an orphan", || {
        let rows = list(&scope)?;
        ensure!(rows.len() == 1, "{rows:?}");
        Ok(rows[0].state.as_str() == "orphan" && rows[0].holders.is_empty())
    })?;
    let report = gc(&scope, Duration::ZERO, false)?;
    ensure!(report.removed.len() == 1, "{report:?}");
    ensure!(!path.exists(), "{} left behind", path.display());
    ensure!(list(&scope)?.is_empty());
    Ok(())
}

fn racing_creators() -> Result<()> {
    const PROCESSES: usize = 8;
    const ROUNDS: usize = 50;
    let ns = unique_namespace("race");
    for round in 0..ROUNDS {
        let name = format!("round-{round}");
        let mut children = (0..PROCESSES)
            .map(|_| {
                let mut cmd = child("race", &ns, &name)?;
                cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
                spawn(cmd, None)
            })
            .collect::<Result<Vec<Guard>>>()?;
        for c in &mut children {
            c.child()
                .stdin
                .as_mut()
                .context("stdin")?
                .write_all(b"go\n")?;
        }
        let mut outcomes = Vec::new();
        let mut readers = Vec::new();
        for c in &mut children {
            readers.push(BufReader::new(c.child().stdout.take().context("stdout")?));
        }
        for r in &mut readers {
            let mut line = String::new();
            r.read_line(&mut line)?;
            outcomes.push(line.trim().to_owned());
        }
        let creators: Vec<_> = outcomes
            .iter()
            .filter(|o| o.starts_with("created "))
            .collect();
        ensure!(creators.len() == 1, "round {round}: {outcomes:?}");
        let winner = creators[0].trim_start_matches("created ");
        for o in &outcomes {
            ensure!(
                o.ends_with(&format!(" {winner}")),
                "round {round}: {outcomes:?}"
            );
        }
        // Release everybody; the last one out removes the name.
        for c in &mut children {
            drop(c.child().stdin.take());
        }
        for c in children {
            c.wait_success()?;
        }
        let path = ns.shm_path(&memwire_shm::Name::new(&name)?);
        ensure!(
            !path.exists(),
            "round {round}: {} left behind",
            path.display()
        );
    }
    ensure!(list(&Scope::Namespace(ns))?.is_empty());
    Ok(())
}

fn killed_openers() -> Result<()> {
    let runs: usize = if std::env::var_os("MEMWIRE_STRESS").is_some() {
        2000
    } else {
        200
    };
    let ns = unique_namespace("killed-openers");
    let scope = Scope::Namespace(ns.clone());
    let mine = opts(&ns).create("held", 4096)?;
    let mut seed = u64::from(std::process::id());
    for run in 0..runs {
        let guard = spawn(child("churn", &ns, "held")?, None)?;
        // A pseudo-random moment: somewhere in open, hold or release.
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        std::thread::sleep(Duration::from_micros(200 + (seed >> 33) % 3000));
        guard.kill()?;
        let report = gc(&scope, Duration::ZERO, false)?;
        ensure!(
            report.removed.is_empty(),
            "run {run}: gc removed a held resource: {report:?}"
        );
        ensure!(report.skipped.is_empty(), "run {run}: {report:?}");
        let again = opts(&ns)
            .open("held")
            .with_context(|| format!("run {run}"))?;
        ensure!(again.path() == mine.path());
    }
    // Stale holder slots of the killed children were reclaimed, not leaked.
    ensure!(
        mine.holders()? == vec![std::process::id()],
        "{:?}",
        mine.holders()?
    );
    drop(mine);
    wait_until("gc to remove the released resource", || {
        Ok(gc(&scope, Duration::ZERO, false)?.removed.len() == 1)
    })?;
    Ok(())
}

fn dead_creator_leftover() -> Result<()> {
    let ns = unique_namespace("dead-creator");
    let scope = Scope::Namespace(ns.clone());
    for (i, how) in ["create", "open", "gc"].iter().enumerate() {
        let name = format!("leftover-{i}");
        let mut dier = spawn(child("die_creating", &ns, &name)?, None)?;
        let status = dier.wait()?;
        ensure!(!status.success(), "the creator should have died: {status}");
        let path = ns.shm_path(&memwire_shm::Name::new(&name)?);
        ensure!(path.exists(), "the dead creator left nothing to take over");
        match *how {
            "create" => {
                let res = opts(&ns).remove_when_unused(true).create(&name, 100)?;
                ensure!(res.created() && res.len() == 100);
                res.put(b"fresh")?;
                ensure!(opts(&ns).open(&name)?.get()? == b"fresh");
            }
            "open" => match opts(&ns).open(&name) {
                Err(Error::NotFound { .. }) => ensure!(!path.exists()),
                other => bail!("open of a dead creator's leftover gave {other:?}"),
            },
            _ => {
                wait_until("the grace period", || {
                    Ok(gc(&scope, Duration::ZERO, false)?.removed.len() == 1)
                })?;
                ensure!(!path.exists());
            }
        }
    }
    Ok(())
}

fn foreign_files() -> Result<()> {
    let ns = unique_namespace("foreign");
    let scope = Scope::Namespace(ns.clone());
    let name = memwire_shm::Name::new("not-ours")?;
    let path = ns.shm_path(&name);
    std::fs::write(&path, b"some other program's data, not memwire's")?;
    let report = gc(&scope, Duration::ZERO, false)?;
    let still = std::fs::read(&path);
    std::fs::remove_file(&path)?;
    ensure!(report.removed.is_empty(), "{report:?}");
    ensure!(
        matches!(report.skipped.as_slice(), [s] if matches!(s.error, Error::NotMemwire { .. })),
        "{report:?}"
    );
    ensure!(still? == b"some other program's data, not memwire's");
    ensure!(matches!(opts(&ns).open("not-ours"), Err(Error::NotMemwire { .. })) || !path.exists());
    Ok(())
}

fn exclusive_lock_is_not_a_holder() -> Result<()> {
    let ns = unique_namespace("exclusive");
    let scope = Scope::Namespace(ns.clone());
    let path = opts(&ns).create("probe", 4096)?.path().to_owned();
    // What gc (or a last holder deciding to remove) holds for a moment.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
    let rows = list(&scope)?;
    ensure!(
        rows.len() == 1 && rows[0].state.as_str() == "orphan",
        "{rows:?}"
    );
    drop(file);
    wait_until("gc to remove the orphan", || {
        Ok(gc(&scope, Duration::ZERO, false)?.removed.len() == 1)
    })?;
    Ok(())
}

/// Another user can plant a file under our name in `/dev/shm` (world-writable, sticky) and
/// leave it readable and writable by all: using it would share our data with that user.
/// Making a file of another user takes root; without it there is nothing to check.
fn file_of_another_user() -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: only root can make a file of another user");
        return Ok(());
    }
    let ns = unique_namespace("other-user");
    let path = {
        let planted = opts(&ns).create("planted", 4096)?;
        planted.path().to_owned()
    };
    // 65534 is `nobody`: not us, since we run as root.
    let nobody = (
        rustix::process::Uid::from_raw(65534),
        rustix::process::Gid::from_raw(65534),
    );
    rustix::fs::chown(&path, Some(nobody.0), Some(nobody.1))?;
    rustix::fs::chmod(&path, rustix::fs::Mode::from_raw_mode(0o666))?;
    let opened = opts(&ns).open("planted");
    let created = opts(&ns).open_or_create("planted", 4096);
    std::fs::remove_file(&path)?;
    ensure!(
        matches!(opened, Err(Error::ForeignOwner { uid: 65534, .. })),
        "open: {opened:?}"
    );
    ensure!(
        matches!(created, Err(Error::ForeignOwner { uid: 65534, .. })),
        "open_or_create: {created:?}"
    );
    Ok(())
}
