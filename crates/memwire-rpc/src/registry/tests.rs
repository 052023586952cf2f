use std::process::{Child, Command};
use std::sync::{Arc, Barrier};

use super::*;

fn registry() -> (tempfile::TempDir, Registry) {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::at(tmp.path().join("services")).unwrap();
    (tmp, registry)
}

/// Writes an entry by hand, as another process would have.
fn write_entry(registry: &Registry, name: &str, process: ProcessId) -> PathBuf {
    let entry = ServiceEntry {
        name: name.to_owned(),
        pid: process.pid,
        start_time: process.start_time,
        socket: PathBuf::from(format!("/nowhere/{name}.sock")),
        started_at_unix_ms: 0,
        version: ENTRY_VERSION,
    };
    let path = registry.dir().join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec(&entry).unwrap()).unwrap();
    path
}

/// A process that has exited and been reaped.
fn dead_process() -> ProcessId {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    ProcessId {
        pid,
        start_time: ProcessId::current().unwrap().start_time,
    }
}

/// Another live process, killed when the guard drops.
struct Sleeper(Child);

impl Sleeper {
    fn spawn() -> Self {
        Self(Command::new("sleep").arg("600").spawn().unwrap())
    }

    fn process(&self) -> ProcessId {
        ProcessId::of(self.0.id()).unwrap()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn register_lookup_list_and_drop() {
    let (_tmp, registry) = registry();
    let mode = std::fs::metadata(registry.dir()).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o700
    );

    let math = registry
        .register("math", Path::new("/run/math.sock"))
        .unwrap();
    let echo = registry
        .register("echo", Path::new("/run/echo.sock"))
        .unwrap();
    let me = ProcessId::current().unwrap();

    let found = registry.lookup("math").unwrap();
    assert_eq!(&found, math.entry());
    assert_eq!(found.process(), me);
    assert_eq!(found.socket, Path::new("/run/math.sock"));
    assert_eq!(found.version, ENTRY_VERSION);
    assert!(found.uptime() < Duration::from_secs(24 * 3600));
    assert!(math.path().ends_with("math.json"));

    let names: Vec<_> = registry
        .list()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["echo", "math"]);

    drop(math);
    assert!(matches!(
        registry.lookup("math"),
        Err(Error::NoService { name }) if name == "math"
    ));
    assert!(!registry.dir().join("math.json").exists());
    assert_eq!(registry.list().unwrap().len(), 1);
    drop(echo);
    assert!(registry.list().unwrap().is_empty());
    // No temporary file is left behind.
    let left: Vec<_> = std::fs::read_dir(registry.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|f| f != LOCK_FILE)
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn invalid_names_are_refused() {
    let (_tmp, registry) = registry();
    for bad in ["", "a/b", "..", "../escape"] {
        assert!(registry.register(bad, Path::new("/s")).is_err(), "{bad:?}");
        assert!(registry.lookup(bad).is_err(), "{bad:?}");
    }
    assert!(registry.list().unwrap().is_empty());
}

#[test]
fn a_stale_entry_of_a_dead_process_is_ignored_and_cleaned() {
    let (_tmp, registry) = registry();
    let path = write_entry(&registry, "gone", dead_process());
    assert!(matches!(
        registry.lookup("gone"),
        Err(Error::NoService { .. })
    ));
    assert!(!path.exists());

    let path = write_entry(&registry, "gone", dead_process());
    assert!(registry.list().unwrap().is_empty());
    assert!(!path.exists());
}

#[test]
fn a_reused_pid_with_another_start_time_is_stale() {
    let (_tmp, registry) = registry();
    let me = ProcessId::current().unwrap();
    let impostor = ProcessId {
        start_time: me.start_time + 1,
        ..me
    };
    let path = write_entry(&registry, "old", impostor);
    assert!(registry.list().unwrap().is_empty());
    assert!(!path.exists());
}

#[test]
fn a_stale_entry_is_replaced_on_register() {
    let (_tmp, registry) = registry();
    write_entry(&registry, "math", dead_process());
    let registration = registry
        .register("math", Path::new("/run/math.sock"))
        .unwrap();
    assert_eq!(registry.lookup("math").unwrap(), *registration.entry());
}

#[test]
fn a_live_holder_keeps_its_name() {
    let (_tmp, registry) = registry();
    let other = Sleeper::spawn();
    let path = write_entry(&registry, "math", other.process());
    match registry.register("math", Path::new("/run/math.sock")) {
        Err(Error::ServiceExists { name, pid }) => {
            assert_eq!(name, "math");
            assert_eq!(pid, other.process().pid);
        }
        other => panic!("expected ServiceExists, got {other:?}"),
    }
    assert_eq!(registry.lookup("math").unwrap().process(), other.process());
    assert!(path.exists());

    // This process cannot register one name twice either.
    let first = registry
        .register("echo", Path::new("/run/echo.sock"))
        .unwrap();
    assert!(matches!(
        registry.register("echo", Path::new("/run/echo2.sock")),
        Err(Error::ServiceExists { pid, .. }) if pid == std::process::id()
    ));
    assert_eq!(registry.lookup("echo").unwrap(), *first.entry());
}

#[test]
fn dropping_a_registration_leaves_a_newer_holder_alone() {
    let (_tmp, registry) = registry();
    let registration = registry
        .register("math", Path::new("/run/math.sock"))
        .unwrap();
    // Someone else took the name over (by hand: a registry never lets a live holder be replaced).
    let other = Sleeper::spawn();
    let path = write_entry(&registry, "math", other.process());
    drop(registration);
    assert!(path.exists());
    assert_eq!(registry.lookup("math").unwrap().process(), other.process());
}

#[test]
fn racing_registrations_have_one_winner() {
    let (_tmp, registry) = registry();
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let registry = registry.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                registry.register("math", Path::new("/run/math.sock"))
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "{results:?}");
    assert!(results.iter().all(|r| match r {
        Ok(_) => true,
        Err(e) => matches!(e, Error::ServiceExists { .. }),
    }));
}

#[test]
fn malformed_entries_are_skipped_never_trusted() {
    let (_tmp, registry) = registry();
    let live = registry
        .register("good", Path::new("/run/good.sock"))
        .unwrap();
    let dir = registry.dir();
    let me = ProcessId::current().unwrap();
    let wrong_version = format!(
        r#"{{"name":"v2","pid":{},"start_time":{},"socket":"/s","started_at_unix_ms":0,"version":2}}"#,
        me.pid, me.start_time
    );
    let wrong_name = format!(
        r#"{{"name":"other","pid":{},"start_time":{},"socket":"/s","started_at_unix_ms":0,"version":1}}"#,
        me.pid, me.start_time
    );
    let files: [(&str, Vec<u8>); 7] = [
        ("garbage.json", b"\xff\x00 not json".to_vec()),
        ("empty.json", Vec::new()),
        ("object.json", b"{}".to_vec()),
        ("negative.json", br#"{"name":"negative","pid":-1}"#.to_vec()),
        ("v2.json", wrong_version.into_bytes()),
        ("named.json", wrong_name.into_bytes()),
        ("huge.json", vec![b' '; (MAX_ENTRY_LEN + 1) as usize]),
    ];
    for (file, bytes) in &files {
        std::fs::write(dir.join(file), bytes).unwrap();
    }
    std::fs::create_dir(dir.join("adir.json")).unwrap();
    std::os::unix::fs::symlink(live.path(), dir.join("link.json")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("fifo.json"),
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    std::fs::write(dir.join("not a name.json"), b"{}").unwrap();
    std::fs::write(dir.join("notes.txt"), b"hello").unwrap();

    let names: Vec<_> = registry
        .list()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["good"]);
    for name in [
        "garbage", "empty", "v2", "named", "huge", "adir", "link", "fifo",
    ] {
        assert!(
            matches!(registry.lookup(name), Err(Error::NoService { .. })),
            "{name}"
        );
    }
    // Malformed files are left for their owner...
    for (file, _) in &files {
        assert!(dir.join(file).exists(), "{file}");
    }
    // ...and a register of that name replaces one.
    let replaced = registry
        .register("garbage", Path::new("/run/g.sock"))
        .unwrap();
    assert_eq!(registry.lookup("garbage").unwrap(), *replaced.entry());
}
