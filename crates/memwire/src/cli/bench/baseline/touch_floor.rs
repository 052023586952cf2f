//! `touch-floor`: one process, no peer. A round trip's worth of touching: write every byte,
//! checksum every byte, write them again, checksum again (a touched round trip does each
//! twice: once each way). Half its round trip is what touching a payload once costs; a
//! transport's touched round trip can approach it, not beat it.

use anyhow::Result;
use memwire::shm::Mapping;

use crate::cli::bench::case::{Case, Launcher, Parent, Payload, Peer, Run, Setup, Suite};
use crate::cli::bench::touch;

pub(crate) struct TouchFloor;

impl Case for TouchFloor {
    fn name(&self) -> &'static str {
        "touch-floor"
    }

    fn suite(&self) -> Suite {
        Suite::Baseline
    }

    fn payloads(&self) -> &'static [Payload] {
        &[Payload::Touched]
    }

    fn parent<'m>(
        &self,
        _shm: &'m Mapping,
        run: &Run,
        _launcher: &Launcher<'_>,
    ) -> Result<Setup<'m>> {
        Ok(Setup {
            endpoint: Box::new(TouchParent {
                buf: vec![0; run.size],
                k: 0,
            }),
            peer: Peer::None,
        })
    }

    fn peer(&self, _shm: &Mapping, _run: &Run) -> Result<()> {
        anyhow::bail!("touch-floor runs in one process")
    }
}

struct TouchParent {
    buf: Vec<u8>,
    /// Messages so far.
    k: u64,
}

impl Parent for TouchParent {
    fn round_trip(&mut self) -> Result<()> {
        let there = touch::pattern(self.k);
        touch::fill(&mut self.buf, there);
        touch::verify(&self.buf, there)?;
        touch::fill(&mut self.buf, !there);
        touch::verify(&self.buf, !there)?;
        self.k += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<Option<u64>> {
        Ok(None)
    }
}
