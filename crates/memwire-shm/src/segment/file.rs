//! Segments that have a path: files anywhere, and named objects under `/dev/shm`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use super::{Segment, check_len};
use crate::error::{Error, Result};
use crate::mapping::Access;
use crate::name::{Name, Namespace};

/// A segment backed by a file at a path (on tmpfs for RAM speed, or on disk to persist).
#[derive(Debug)]
pub struct FileSegment {
    fd: OwnedFd,
    len: usize,
    path: PathBuf,
}

impl FileSegment {
    /// `open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600)` then
    /// `ftruncate(len)`: of two processes creating one path, exactly one wins and the other
    /// gets `EEXIST` ([`Error::Path`] with that errno).
    pub fn create(path: impl AsRef<Path>, len: u64) -> Result<Self> {
        let path = path.as_ref();
        let len_usize = check_len(&path.display().to_string(), len)?;
        let flags =
            OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let fd = rustix::fs::open(path, flags, Mode::from_raw_mode(0o600))
            .map_err(|e| Error::path("create", path, e))?;
        if let Err(e) = rustix::fs::ftruncate(&fd, len) {
            let _ = rustix::fs::unlink(path);
            return Err(Error::path("ftruncate", path, e));
        }
        Ok(Self {
            fd,
            len: len_usize,
            path: path.to_owned(),
        })
    }

    /// `open(path, O_RDONLY or O_RDWR | O_CLOEXEC | O_NOFOLLOW)`; the segment's length is the
    /// file's size now.
    pub fn open(path: impl AsRef<Path>, access: Access) -> Result<Self> {
        let path = path.as_ref();
        let mode = match access {
            Access::ReadOnly => OFlags::RDONLY,
            Access::ReadWrite => OFlags::RDWR,
        };
        let fd = rustix::fs::open(
            path,
            mode | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| Error::path("open", path, e))?;
        let size = rustix::fs::fstat(&fd)
            .map_err(|e| Error::path("fstat", path, e))?
            .st_size;
        let len = check_len(
            &path.display().to_string(),
            u64::try_from(size).unwrap_or(0),
        )?;
        Ok(Self {
            fd,
            len,
            path: path.to_owned(),
        })
    }

    /// The path the segment was created or opened at.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives up the segment, returning its fd.
    #[must_use]
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

impl AsFd for FileSegment {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Segment for FileSegment {
    fn len(&self) -> usize {
        self.len
    }
}

/// A segment other processes of this user open by name:
/// `/dev/shm/memwire.<uid>.<namespace>.<name>`, mode 0600.
///
/// It stays until [`NamedSegment::unlink`]; for named memory that cleans up after crashed
/// holders, use [`crate::Resource`].
#[derive(Debug)]
pub struct NamedSegment {
    file: FileSegment,
    name: Name,
}

impl NamedSegment {
    /// Creates the object exclusively (`O_EXCL`): [`Error::AlreadyExists`] if it exists.
    pub fn create(namespace: &Namespace, name: &Name, len: u64) -> Result<Self> {
        let path = namespace.shm_path(name);
        let file = FileSegment::create(&path, len).map_err(|e| named_error(e, name, &path))?;
        Ok(Self {
            file,
            name: name.clone(),
        })
    }

    /// Opens an existing object: [`Error::NotFound`] if there is none.
    pub fn open(namespace: &Namespace, name: &Name, access: Access) -> Result<Self> {
        let path = namespace.shm_path(name);
        let file = FileSegment::open(&path, access).map_err(|e| named_error(e, name, &path))?;
        Ok(Self {
            file,
            name: name.clone(),
        })
    }

    /// Removes the name (`unlink`); processes that have it open or mapped keep their memory.
    pub fn unlink(namespace: &Namespace, name: &Name) -> Result<()> {
        let path = namespace.shm_path(name);
        rustix::fs::unlink(&path)
            .map_err(|e| named_error(Error::path("unlink", &path, e), name, &path))
    }

    /// The segment's name.
    #[must_use]
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The segment's path under `/dev/shm`.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// Turns `EEXIST`/`ENOENT` on a named object into the errors that name it.
fn named_error(err: Error, name: &Name, path: &Path) -> Error {
    match err.errno() {
        Some(e) if e == Errno::EXIST.raw_os_error() => Error::AlreadyExists {
            name: name.to_string(),
            path: path.to_owned(),
        },
        Some(e) if e == Errno::NOENT.raw_os_error() => Error::NotFound {
            name: name.to_string(),
            path: path.to_owned(),
        },
        _ => err,
    }
}

impl AsFd for NamedSegment {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl Segment for NamedSegment {
    fn len(&self) -> usize {
        self.file.len()
    }
}
