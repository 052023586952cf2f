//! `getsockopt(SO_PEERCRED)` read into plain integers.
//!
//! # Safety
//! rustix's `socket_peercred` returns a `UCred` whose pid is a non-zero `Pid`, but the kernel
//! reports pid 0 for a peer whose process is not visible in the caller's pid namespace (a
//! peer in a parent or sibling namespace): that value would be undefined behaviour there. So
//! this module makes the one `getsockopt` call itself, into a `libc::ucred` (three plain
//! integers, any bit pattern valid), with the buffer length the kernel needs and checks.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &ucred, &len)`: pid (0 when not visible to
/// us), uid and gid of `socket`'s peer.
pub(super) fn peer_ucred(socket: BorrowedFd<'_>) -> io::Result<libc::ucred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let size = std::mem::size_of::<libc::ucred>();
    // 12 bytes: fits a `socklen_t`.
    let mut len = size as libc::socklen_t;
    // SAFETY: `cred` is a live, writable `ucred` of `len` bytes, exactly what `SO_PEERCRED`
    // writes (the kernel writes at most `len` bytes and stores the length it wrote in `len`);
    // every bit pattern is a valid `ucred`; `socket` is open for the whole call (borrowed).
    let ret = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    if len as usize != size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("SO_PEERCRED gave {len} bytes, expected {size}"),
        ));
    }
    Ok(cred)
}
