//! Any process of the user can write a resource file, so its bytes are untrusted input to
//! `open`, `list` and `gc`. This target writes arbitrary bytes as a resource file and runs all
//! three on it: none may panic, hang, or remove a file that is not a valid, unheld resource.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use memwire_shm::resource::{Scope, gc, list};
use memwire_shm::{Name, Namespace, Resource};

fuzz_target!(|data: &[u8]| {
    let ns = Namespace::new(format!("fuzz-{}", std::process::id())).expect("valid namespace");
    let name = Name::new("target").expect("valid name");
    let path = ns.shm_path(&name);
    std::fs::write(&path, data).expect("write the input file");
    let scope = Scope::Namespace(ns.clone());
    let _ = list(&scope);
    let opened = Resource::options()
        .namespace(ns.clone())
        .init_timeout(Duration::ZERO)
        .open("target");
    if let Ok(res) = &opened {
        let _ = res.get();
    }
    drop(opened);
    let report = gc(&scope, Duration::ZERO, true).expect("gc scans /dev/shm");
    assert!(report.removed.len() <= 1);
    let _ = std::fs::remove_file(&path);
});
