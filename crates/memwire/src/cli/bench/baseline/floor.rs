//! The two floors as one [`Case`]: two processes pass a turn back and forth on one word of the
//! shared segment and move no payload. They differ only in how a side waits for the other's
//! turn, so each keeps its protocol in its own module ([`floor_spin`], [`floor_futex`]) and
//! shares the rest here.

use anyhow::Result;
use memwire::shm::Mapping;

use super::{floor_futex, floor_spin};
use crate::cli::bench::case::{Case, Launcher, Payload, Peer, Run, Setup, Suite, Wiring};

/// A floor: the fastest two processes can ping-pong, waiting the way its variant says.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Floor {
    /// `floor-spin`: both sides spin on the word; the physical floor.
    Spin,
    /// `floor-futex`: both sides wait on the word with a futex and wake the other; the floor
    /// of any blocking wait strategy.
    Futex,
}

impl Case for Floor {
    fn name(&self) -> &'static str {
        match self {
            Self::Spin => "floor-spin",
            Self::Futex => "floor-futex",
        }
    }

    fn suite(&self) -> Suite {
        Suite::Baseline
    }

    fn payloads(&self) -> &'static [Payload] {
        &[Payload::Untouched]
    }

    fn moves_payload(&self) -> bool {
        false
    }

    fn parent<'m>(
        &self,
        shm: &'m Mapping,
        _run: &Run,
        _launcher: &Launcher<'_>,
    ) -> Result<Setup<'m>> {
        let endpoint = match self {
            Self::Spin => floor_spin::parent(shm)?,
            Self::Futex => floor_futex::parent(shm)?,
        };
        Ok(Setup {
            endpoint,
            peer: Peer::Wired(Wiring::default()),
        })
    }

    fn peer(&self, shm: &Mapping, _run: &Run) -> Result<()> {
        match self {
            Self::Spin => floor_spin::peer(shm),
            Self::Futex => floor_futex::peer(shm),
        }
    }
}
