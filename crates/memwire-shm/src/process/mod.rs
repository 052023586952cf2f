//! Process liveness: identity by `(pid, start time)`, and handles through pidfds.
//!
//! - [`ProcessId`] names a process in a way that survives pid reuse; it can be stored (in a
//!   holder table, in a segment header) and checked later from any process.
//! - [`ProcessHandle`] holds a pidfd on a live process: race-free liveness checks, a blocking or
//!   async wait for its exit, and a kill that cannot hit a stranger.

mod handle;
mod id;

pub use handle::ProcessHandle;
pub use id::ProcessId;
pub(crate) use id::read_stat;
