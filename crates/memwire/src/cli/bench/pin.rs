//! Pinning the two processes to different CPUs, so they run at once and the measured cost is
//! the transport's, not the scheduler's.

use anyhow::{Context as _, Result};
use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};
use serde::Serialize;

/// Where the parent and the peer run.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Placement {
    /// The parent's CPU, if pinned.
    pub(crate) parent_cpu: Option<usize>,
    /// The peer's CPU, if pinned.
    pub(crate) peer_cpu: Option<usize>,
}

impl Placement {
    pub(crate) fn pinned(&self) -> bool {
        self.parent_cpu.is_some()
    }
}

/// Pins this process to the first CPU it may use and picks the second for the peer; leaves
/// both unpinned when it may use only one CPU or the kernel refuses.
pub(crate) fn place() -> Placement {
    let unpinned = Placement {
        parent_cpu: None,
        peer_cpu: None,
    };
    let Ok(allowed) = sched_getaffinity(None) else {
        return unpinned;
    };
    let mut cpus = (0..CpuSet::MAX_CPU).filter(|&c| allowed.is_set(c));
    let (Some(parent), Some(peer)) = (cpus.next(), cpus.next()) else {
        return unpinned;
    };
    match pin_to(parent) {
        Ok(()) => Placement {
            parent_cpu: Some(parent),
            peer_cpu: Some(peer),
        },
        Err(err) => {
            tracing::warn!("not pinning the benchmark: {err:#}");
            unpinned
        }
    }
}

/// `sched_setaffinity(0, {cpu})`: this thread runs only on `cpu` from now on.
pub(crate) fn pin_to(cpu: usize) -> Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set).with_context(|| format!("pinning to CPU {cpu}"))
}
