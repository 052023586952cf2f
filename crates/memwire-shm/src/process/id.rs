//! Process identity that survives pid reuse: `(pid, start time)`.
//!
//! A pid alone is not an identity: once a process dies its pid is handed to the next process
//! that asks. The start time (field 22 of `/proc/PID/stat`, in clock ticks since boot) tells two
//! holders of one pid apart, so a dead holder never looks alive because a stranger got its pid.

use std::fmt;

use crate::error::{Error, Result};

/// A process, named by its pid and its start time.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ProcessId {
    /// The process id.
    pub pid: u32,
    /// Start time in clock ticks after boot (`/proc/PID/stat` field 22).
    pub start_time: u64,
}

/// What `/proc/PID/stat` says of a process.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Stat {
    /// Field 3: `R`, `S`, `D`, `Z`, `X`, ...
    pub(crate) state: u8,
    /// Field 4: the parent's pid (0 for init and kernel threads).
    pub(crate) ppid: u32,
    /// Field 22.
    pub(crate) start_time: u64,
}

impl Stat {
    /// Whether the process still runs (a zombie or a dead task does not).
    pub(crate) fn running(self) -> bool {
        !matches!(self.state, b'Z' | b'X' | b'x')
    }
}

/// Parses the contents of `/proc/PID/stat`. The command name (field 2) is in parentheses and
/// may itself hold spaces and parentheses, so fields are counted after the *last* `)`.
pub(crate) fn parse_stat(text: &[u8]) -> Option<Stat> {
    let close = text.iter().rposition(|&b| b == b')')?;
    let mut fields = text[close + 1..]
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    // After `)`, the first field is field 3 (state), then field 4 (ppid); field 22 is 18
    // further on.
    let state = *fields.next()?.first()?;
    let ppid = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
    let start = fields.nth(17)?;
    let start_time = std::str::from_utf8(start).ok()?.parse().ok()?;
    Some(Stat {
        state,
        ppid,
        start_time,
    })
}

/// Reads `/proc/PID/stat`; `None` when the process does not exist (any more).
pub(crate) fn read_stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

impl ProcessId {
    /// The calling process.
    pub fn current() -> Result<Self> {
        Self::of(std::process::id())
    }

    /// The process running now under `pid`.
    pub fn of(pid: u32) -> Result<Self> {
        match read_stat(pid) {
            Some(stat) if stat.running() => Ok(Self {
                pid,
                start_time: stat.start_time,
            }),
            _ => Err(Error::NoSuchProcess { pid }),
        }
    }

    /// Whether this very process still runs: the pid exists, is not a zombie, and has the
    /// same start time (a reused pid does not count).
    #[must_use]
    pub fn is_alive(&self) -> bool {
        read_stat(self.pid).is_some_and(|s| s.running() && s.start_time == self.start_time)
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.pid, self.start_time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_awkward_command_names() {
        let line =
            b"4242 (a) b) (c) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1 1";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.state, b'S');
        assert_eq!(stat.ppid, 1);
        assert_eq!(stat.start_time, 987_654);
    }

    #[test]
    fn current_process_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessId::current().unwrap();
        assert!(me.is_alive());
        let impostor = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!impostor.is_alive());
    }

    proptest! {
        #[test]
        fn parse_stat_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_stat(&bytes);
        }
    }
}
