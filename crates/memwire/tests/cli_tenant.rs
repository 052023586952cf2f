//! `memwire tenant create / delete` against a real `memwire serve`, locally and with
//! `--remote`: quotas that hold, deletes that leave nothing behind (not for the CLI, not for a
//! `Local` client or a `Reader` of this process that had the tenant mapped, not for watchers,
//! which end), that survive a SIGKILL of the server, and that only admin keys may make.

#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;

mod serve_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use anyhow::{Context, Result, bail, ensure};
use memwire::store::store::WatchEvent;
use memwire::store::{Error, Local};
use serve_support::{Lines, fails, ok, serve_with};
use support::{DEADLINE, Guard, trial};

fn main() {
    support::private_runtime_dir("memwire-cli-tenant");
    support::main(
        |role| bail!("no roles: {role}"),
        vec![
            trial(
                "create_with_quotas_delete_and_create_again",
                create_delete_and_again,
            ),
            trial("a_delete_survives_kill_9", delete_survives_kill_9),
            trial(
                "local_reads_and_watches_see_the_delete",
                local_reads_and_watches,
            ),
        ],
    )
}

/// `args` followed by `with`.
fn and(args: &[&str], with: &[&str]) -> Vec<String> {
    args.iter().chain(with).map(|s| (*s).to_owned()).collect()
}

/// Runs `args` (owned), which must succeed.
fn run(data: &Path, args: &[String]) -> Result<String> {
    ok(data, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Runs `args` (owned), which must fail with one error line; the line.
fn refused(data: &Path, args: &[String]) -> Result<String> {
    fails(data, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The same commands through the local socket and through WebSocket: a quota of variables and
/// one of bytes, each refusing the write past it; a delete after which the tenant is not
/// found and an admin's `set` creates it again, empty, its versions after the delete's; and
/// keys that are not admins refused both commands.
fn create_delete_and_again() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let served = serve_with(&data, &["--name", "tenants"])?;
    let local = ["--name", "tenants"];
    let remote = ["--remote", served.url.as_str()];
    for (t, via) in [("loc", &local), ("rem", &remote)] {
        let cmd = |args: &[&str]| and(args, via.as_slice());
        let quota = format!("{t}-quota");
        ensure!(
            run(
                &data,
                &cmd(&["tenant", "create", &quota, "--max-variables", "2"])
            )? == format!("created tenant {quota}\n")
        );
        run(&data, &cmd(&["set", &format!("{quota}/s/1"), "one"]))?;
        run(&data, &cmd(&["set", &format!("{quota}/s/2"), "two"]))?;
        let e = refused(&data, &cmd(&["set", &format!("{quota}/s/3"), "three"]))?;
        ensure!(e.starts_with("error: quota exceeded: "), "{t}: {e}");

        // 1000 value bytes, 8 of names and 64 a variable: three fit in 4 KiB, not four.
        let bytes = format!("{t}-bytes");
        run(
            &data,
            &cmd(&["tenant", "create", &bytes, "--quota-bytes", "4KiB"]),
        )?;
        let value = "x".repeat(1000);
        for i in 0..3 {
            run(&data, &cmd(&["set", &format!("{bytes}/s/v{i}"), &value]))?;
        }
        let e = refused(&data, &cmd(&["set", &format!("{bytes}/s/v3"), &value]))?;
        ensure!(e.starts_with("error: quota exceeded: "), "{t}: {e}");

        let e = refused(&data, &cmd(&["tenant", "create", &quota]))?;
        ensure!(
            e.starts_with("error: bad request: ") && e.contains("already exists"),
            "{t}: {e}"
        );
        let e = refused(&data, &cmd(&["tenant", "create", "not/a-name"]))?;
        ensure!(e.starts_with("error: bad request: "), "{t}: {e}");

        // Deleted: the delete took version 3, after the two sets.
        let json: serde_json::Value =
            serde_json::from_str(&run(&data, &cmd(&["tenant", "delete", &quota, "--json"]))?)?;
        ensure!(
            json["tenant"] == quota.as_str() && json["version"] == 3,
            "{json}"
        );
        let e = refused(&data, &cmd(&["get", &format!("{quota}/s/1")]))?;
        ensure!(e.starts_with("error: not found: "), "{t}: {e}");
        let e = refused(&data, &cmd(&["tenant", "delete", &quota]))?;
        ensure!(
            e == format!("error: not found: tenant {quota:?}\n"),
            "{t}: {e}"
        );
        // An admin's set creates it again: empty, default quota, counting on from 3.
        ensure!(
            run(&data, &cmd(&["set", &format!("{quota}/s/3"), "three"]))?
                == format!("{quota}/s/3 = version 4\n")
        );
        let e = refused(&data, &cmd(&["get", &format!("{quota}/s/1")]))?;
        ensure!(e.starts_with("error: not found: "), "{t}: {e}");
        run(&data, &cmd(&["set", &format!("{quota}/s/4"), "four"]))?;
        ensure!(
            run(&data, &cmd(&["tenant", "delete", &quota]))?
                == format!("deleted tenant {quota} (version 6)\n")
        );

        // Keys of the tenant that are not admins, and an admin of another tenant.
        for role in ["read", "write"] {
            let made = run(
                &data,
                &and(
                    &["key", "create", "--tenant", &bytes, "--role", role],
                    &local,
                ),
            )?;
            let key = made.lines().last().context("no key printed")?;
            for args in [
                &["tenant", "delete", &bytes][..],
                &["tenant", "create", &bytes],
                &["tenant", "create", "fresh"],
            ] {
                let mut args = cmd(args);
                args.extend(["--key".to_owned(), key.to_owned()]);
                let e = refused(&data, &args)?;
                ensure!(e.starts_with("error: permission denied: "), "{args:?}: {e}");
            }
        }
    }
    served.guard.kill()?;
    Ok(())
}

/// A delete is logged before it is answered: a server killed right after it restarts without
/// the tenant, and the name, created again, counts its versions on from the delete's.
fn delete_survives_kill_9() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let served = serve_with(&data, &["--name", "kill-9"])?;
    let local = ["--name", "kill-9"];
    let cmd = |args: &[&str]| and(args, &local);
    run(&data, &cmd(&["set", "gone/s/a", "1"]))?;
    run(&data, &cmd(&["set", "gone/s/b", "2"]))?;
    run(
        &data,
        &cmd(&["tenant", "create", "kept", "--max-variables", "1"]),
    )?;
    run(&data, &cmd(&["set", "kept/s/a", "1"]))?;
    ensure!(
        run(&data, &cmd(&["tenant", "delete", "gone"]))? == "deleted tenant gone (version 3)\n"
    );
    served.guard.kill()?;

    let again = serve_with(&data, &["--name", "kill-9"])?;
    for path in ["gone/s/a", "gone/s/b"] {
        let e = refused(&data, &cmd(&["get", path]))?;
        ensure!(e.starts_with("error: not found: "), "{path}: {e}");
    }
    let e = refused(&data, &cmd(&["tenant", "delete", "gone"]))?;
    ensure!(e.starts_with("error: not found: "), "{e}");
    // The other tenant kept its quota.
    let e = refused(&data, &cmd(&["set", "kept/s/b", "2"]))?;
    ensure!(e.starts_with("error: quota exceeded: "), "{e}");
    ensure!(run(&data, &cmd(&["set", "gone/s/a", "new"]))? == "gone/s/a = version 4\n");
    again.guard.kill()?;
    Ok(())
}

/// A `memwire watch` of the tenant, started and seen to print before the delete.
fn watcher(data: &Path, extra: &[&str]) -> Result<(Guard, Lines)> {
    let mut guard = Guard::from_child(
        Command::new(env!("CARGO_BIN_EXE_memwire"))
            .args(["watch", "t", "--from-version", "2"])
            .args(extra)
            .env("MEMWIRE_DATA_DIR", data)
            .env_remove("MEMWIRE_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?,
    );
    let lines = Lines::of(&mut guard)?;
    Ok((guard, lines))
}

/// This process as a `Local` client of the server, with the tenant mapped by `Local::get`, a
/// `Reader` and two `LocalWatcher`s (one asleep in `next`), and `memwire watch` children, local
/// and remote: after `memwire tenant delete`, reads give `NotFound`, never the old value;
/// watchers get the change they had not read, then end; once the name is set again, the same
/// client and reader read the new tenant.
fn local_reads_and_watches() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let served = serve_with(&data, &["--name", "readers"])?;
    let key = served.admin_key.clone().context("no admin key printed")?;
    let local = ["--name", "readers"];
    let cmd = |args: &[&str]| and(args, &local);
    run(&data, &cmd(&["set", "t/s/v", "old"]))?; // version 1

    let client = Local::connect("readers", &key)?;
    let path = "t/s/v".parse()?;
    ensure!(client.get(&path)?.map(|s| s.value) == Some(b"old".to_vec()));
    let mut reader = client.reader("t")?;
    ensure!(reader.get("s", "v")?.map(|s| s.value) == Some(b"old".to_vec()));
    let mut unread = client.watch(&"t".parse()?, None)?;
    // Asleep in `next` (between events): its versions until the end, and the end.
    let mut asleep = client.watch(&"t/s".parse()?, None)?;
    let (tx, woken) = mpsc::channel();
    std::thread::spawn(move || {
        let mut versions = Vec::new();
        let end = loop {
            match asleep.next() {
                Ok(WatchEvent::Changed { version, .. }) => versions.push(version),
                Ok(other) => break Ok(other),
                Err(e) => break Err(e),
            }
        };
        let _ = tx.send((versions, end));
    });

    let (mut cli_local, local_lines) = watcher(&data, &local)?;
    let (mut cli_remote, remote_lines) = watcher(&data, &["--remote", &served.url])?;
    run(&data, &cmd(&["set", "t/s/v", "newer"]))?; // version 2
    for lines in [&local_lines, &remote_lines] {
        let line = lines.next()?;
        ensure!(line == "set t/s/v = newer (version 2)", "{line}");
    }

    ensure!(run(&data, &cmd(&["tenant", "delete", "t"]))? == "deleted tenant t (version 3)\n");
    let read = client.get(&path);
    ensure!(
        matches!(read, Err(Error::NotFound(_))),
        "Local::get: {read:?}"
    );
    let read = reader.get("s", "v");
    ensure!(
        matches!(read, Err(Error::NotFound(_))),
        "Reader::get: {read:?}"
    );

    // The change it had not read, from the retired mapping; then the end, for good.
    let event = unread.try_next()?;
    ensure!(
        matches!(event, Some(WatchEvent::Changed { version: 2, .. })),
        "{event:?}"
    );
    for _ in 0..2 {
        let end = unread.try_next();
        ensure!(
            matches!(&end, Err(Error::NotFound(m)) if m.contains("deleted")),
            "{end:?}"
        );
    }
    let (versions, end) = woken
        .recv_timeout(DEADLINE)
        .context("the sleeping watcher was not woken")?;
    ensure!(
        versions == [2] && matches!(end, Err(Error::NotFound(_))),
        "{versions:?}, then {end:?}"
    );
    for (name, watch) in [("local", &mut cli_local), ("remote", &mut cli_remote)] {
        let status = watch.wait_exit()?;
        ensure!(
            status.code() == Some(1),
            "{name} watch ended with {status:?}"
        );
        let mut err = String::new();
        let mut stderr = watch.child().stderr.take().context("no stderr")?;
        std::io::Read::read_to_string(&mut stderr, &mut err)?;
        ensure!(
            err.lines().count() == 1
                && err.starts_with("error: not found: tenant \"t\" was deleted"),
            "{name} watch: {err:?}"
        );
    }

    // The name again: the same client and reader read the new tenant.
    ensure!(run(&data, &cmd(&["set", "t/s/v", "again"]))? == "t/s/v = version 4\n");
    let got = client.get(&path)?.map(|s| (s.value, s.version));
    ensure!(got == Some((b"again".to_vec(), 4)), "{got:?}");
    let got = reader.get("s", "v")?.map(|s| (s.value, s.version));
    ensure!(got == Some((b"again".to_vec(), 4)), "{got:?}");
    drop(unread);
    served.guard.kill()?;
    Ok(())
}
