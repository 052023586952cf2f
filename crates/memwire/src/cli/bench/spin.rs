//! Waiting on shared memory without a syscall: spin a bounded number of times, then yield.
//!
//! This machine has 2 vCPUs. Two spinners sharing one CPU (unpinned, or pinning refused) would
//! pass one message per scheduler slice if neither gave the CPU up, so after [`SPIN_LIMIT`]
//! tries each further try yields first.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// Tries before yielding. A `pause` costs 10 to 140 cycles depending on the CPU, so this is
/// some 5 to 100 µs: far above a cache-line round trip (~0.3 µs), far below a scheduler slice.
const SPIN_LIMIT: u32 = 1 << 10;

/// Calls `poll` until it gives `Some`; gives up after `timeout` (checked only once yielding,
/// so the fast path reads no clock).
pub(crate) fn wait_for<T>(
    mut poll: impl FnMut() -> Option<T>,
    timeout: Option<Duration>,
) -> Result<T> {
    for _ in 0..SPIN_LIMIT {
        if let Some(v) = poll() {
            return Ok(v);
        }
        std::hint::spin_loop();
    }
    let start = Instant::now();
    loop {
        if let Some(v) = poll() {
            return Ok(v);
        }
        if timeout.is_some_and(|t| start.elapsed() > t) {
            bail!("the peer did not answer within {timeout:?}");
        }
        std::thread::yield_now();
    }
}
