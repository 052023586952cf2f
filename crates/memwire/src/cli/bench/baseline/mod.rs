//! The baselines the transport is measured against (suite `baseline`).
//!
//! | case | what a round trip is | payload modes |
//! | --- | --- | --- |
//! | [`Floor::Spin`] `floor-spin` | two processes ping-pong one cache line: the physical floor | untouched (nothing moves) |
//! | [`TouchFloor`] `touch-floor` | one process writes then checksums the payload, twice | touched |
//! | [`Floor::Futex`] `floor-futex` | ping-pong on a shared word, futex wait and wake each way | untouched (nothing moves) |
//! | [`Stream::UnixSocket`] `unix-socket` | the payload through a `UnixStream` pair, echoed back | both |
//! | [`Stream::Pipe`] `pipe` | the same through two pipes | both |

mod floor;
mod floor_futex;
mod floor_spin;
mod stream;
mod touch_floor;

use std::time::Duration;

pub(crate) use floor::Floor;
pub(crate) use stream::Stream;
pub(crate) use touch_floor::TouchFloor;

/// How long the parent waits for one answer before it calls the peer dead. Generous: a loaded
/// machine can keep the peer off a CPU for a long while; only a dead or stuck peer gets here.
pub(crate) const PEER_TIMEOUT: Duration = Duration::from_secs(10);
