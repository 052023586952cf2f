//! One conformance suite, run against every segment kind.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;

use memwire_shm::{
    Access, Error, FileSegment, MemfdSegment, Name, NamedSegment, Namespace, Segment,
};

const LEN: u64 = 64 * 1024;

/// What every segment kind must do: map twice, see writes through the other mapping, refuse
/// writes through a read-only mapping and accesses out of bounds.
fn conformance(segment: &dyn Segment) {
    assert_eq!(segment.len() as u64, LEN);
    let rw = segment.map(Access::ReadWrite).unwrap();
    let ro = segment.map(Access::ReadOnly).unwrap();
    assert_eq!(rw.len(), LEN as usize);

    let pattern: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    rw.write(0, &pattern).unwrap();
    assert_eq!(ro.read_vec(0, LEN as usize).unwrap(), pattern);

    rw.store_u64(LEN as usize - 8, 42, Ordering::Release)
        .unwrap();
    assert_eq!(
        ro.load_u64(LEN as usize - 8, Ordering::Acquire).unwrap(),
        42
    );

    assert!(matches!(ro.write(0, b"no"), Err(Error::ReadOnly { .. })));
    assert!(matches!(
        rw.load_u32(LEN as usize, Ordering::Relaxed),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        rw.write(LEN as usize - 1, b"ab"),
        Err(Error::OutOfBounds { .. })
    ));
}

fn namespace() -> Namespace {
    Namespace::new(format!("conformance-{}", std::process::id())).unwrap()
}

#[test]
fn memfd_segment_conforms() {
    let seg = MemfdSegment::create("conformance", LEN).unwrap();
    conformance(&seg);
    assert!(seg.seals().unwrap().contains(MemfdSegment::REQUIRED_SEALS));
}

#[test]
fn named_segment_conforms() {
    let ns = namespace();
    let name = Name::new("named").unwrap();
    let seg = NamedSegment::create(&ns, &name, LEN).unwrap();
    conformance(&seg);
    let again = NamedSegment::open(&ns, &name, Access::ReadOnly).unwrap();
    assert_eq!(again.len(), seg.len());
    assert!(matches!(
        NamedSegment::create(&ns, &name, LEN),
        Err(Error::AlreadyExists { .. })
    ));
    let meta = std::fs::metadata(seg.path()).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    NamedSegment::unlink(&ns, &name).unwrap();
    assert!(matches!(
        NamedSegment::open(&ns, &name, Access::ReadOnly),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn file_segment_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("segment");
    let seg = FileSegment::create(&path, LEN).unwrap();
    conformance(&seg);
    let again = FileSegment::open(&path, Access::ReadWrite).unwrap();
    conformance(&again);
}

#[test]
fn memfd_cannot_shrink_or_grow() {
    let seg = MemfdSegment::create("sealed", LEN).unwrap();
    for size in [LEN / 2, LEN * 2] {
        let err = rustix::fs::ftruncate(&seg, size).unwrap_err();
        assert_eq!(err, rustix::io::Errno::PERM, "ftruncate to {size}");
    }
}

#[test]
fn from_fd_checks_seals_and_size() {
    // A memfd without seals: a peer could shrink it under us.
    let bare = rustix::fs::memfd_create("bare", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&bare, LEN).unwrap();
    assert!(matches!(
        MemfdSegment::from_fd(bare, LEN),
        Err(Error::MissingSeals { .. })
    ));
    // Sealed but smaller than claimed.
    let seg = MemfdSegment::create("small", 4096).unwrap();
    assert!(matches!(
        MemfdSegment::from_fd(seg.into_fd(), LEN),
        Err(Error::SizeMismatch {
            expected: LEN,
            actual: 4096
        })
    ));
    // Sealed and large enough.
    let seg = MemfdSegment::create("ok", LEN).unwrap();
    let adopted = MemfdSegment::from_fd(seg.try_clone_fd().unwrap(), LEN).unwrap();
    assert_eq!(adopted.len() as u64, LEN);
}

#[test]
fn from_read_only_fd_requires_the_future_write_seal() {
    let seg = MemfdSegment::create("writable", LEN).unwrap();
    assert!(matches!(
        MemfdSegment::from_read_only_fd(seg.try_clone_fd().unwrap(), LEN),
        Err(Error::MissingSeals { .. })
    ));
    seg.seal_future_write().unwrap();
    seg.seal_seals().unwrap();
    assert!(seg.seals().unwrap().contains(MemfdSegment::READ_ONLY_SEALS));
    let adopted = MemfdSegment::from_read_only_fd(seg.try_clone_fd().unwrap(), LEN).unwrap();
    assert_eq!(adopted.len() as u64, LEN);
    // F_SEAL_SEAL: no further seal, by anybody.
    assert!(seg.seal_future_write().is_err());
}

#[test]
fn zero_and_huge_sizes_are_refused() {
    assert!(matches!(
        MemfdSegment::create("zero", 0),
        Err(Error::InvalidSize { size: 0, .. })
    ));
    assert!(matches!(
        MemfdSegment::create("huge", u64::MAX),
        Err(Error::InvalidSize { .. })
    ));
}
