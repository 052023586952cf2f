//! Process liveness: identity by `(pid, start time)`.

mod id;

pub use id::ProcessId;
pub(crate) use id::read_stat;
