//! The bootstrap messages: what a host tells a guest over the Unix socket, with the segment's
//! fd attached. Fixed 64-byte frames, little-endian; a guest decodes a copy and validates it.
//!
//! ```text
//! Join / Status request (guest → host, first frame of every connection)
//!  0  magic "MWJOIN01" (a guest that wants a link) or "MWSTAT01" (`memwire ls` asking)
//!
//! Welcome (host → guest, with 5 fds: the link's sealed memfd segment, then the doorbells
//! host rx, host tx, guest rx, guest tx: eventfds, see `bell.rs`)
//!  0  magic "MWHELLO1"    16  host pid u32         32  segment length u64
//!  8  version u32         24  host start time u64  40  epoch u64
//! 12  peer index u32
//!
//! Refusal (host → guest, no fd)
//!  0  magic "MWREFUSE"     8  reason u32 (1 = peer table full)
//! ```

use crate::wire::{u32_at, u64_at};
use memwire_shm::ProcessId;

/// Size of every bootstrap frame.
pub(crate) const FRAME: usize = 64;
const WELCOME: u64 = u64::from_le_bytes(*b"MWHELLO1");
const REFUSE: u64 = u64::from_le_bytes(*b"MWREFUSE");
/// 2: the welcome carries the doorbells after the segment.
const VERSION: u32 = 2;
/// Fds a welcome carries: the segment and the doorbells.
pub(crate) const WELCOME_FDS: usize = 1 + crate::bell::WELCOME_BELLS;
const JOIN: u64 = u64::from_le_bytes(*b"MWJOIN01");
const STATUS: u64 = u64::from_le_bytes(*b"MWSTAT01");

/// The first frame a client sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// A guest asks for a link.
    Join,
    /// `memwire ls` asks for the host's status.
    Status,
}

impl Request {
    pub(crate) fn encode(self) -> [u8; FRAME] {
        let mut b = [0u8; FRAME];
        let magic = match self {
            Self::Join => JOIN,
            Self::Status => STATUS,
        };
        b[..8].copy_from_slice(&magic.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self, HelloError> {
        if b.len() != FRAME {
            return Err(HelloError::Length(b.len()));
        }
        match u64_at(b, 0) {
            JOIN => Ok(Self::Join),
            STATUS => Ok(Self::Status),
            other => Err(HelloError::Magic(other)),
        }
    }
}

/// Why a host turned a guest away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefuseReason {
    /// Every peer entry is taken.
    PeerTableFull,
}

/// A decoded bootstrap frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hello {
    Welcome {
        peer: u32,
        host: ProcessId,
        segment_len: u64,
        epoch: u64,
    },
    Refuse(RefuseReason),
}

/// Why a frame was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HelloError {
    #[error("bootstrap frame of {0} bytes, expected 64")]
    Length(usize),
    #[error("bad bootstrap magic {0:#018x}")]
    Magic(u64),
    #[error("bootstrap version {0}, expected {VERSION}")]
    Version(u32),
    #[error("unknown refusal reason {0}")]
    Reason(u32),
}

impl Hello {
    pub(crate) fn encode(&self) -> [u8; FRAME] {
        let mut b = [0u8; FRAME];
        match *self {
            Self::Welcome {
                peer,
                host,
                segment_len,
                epoch,
            } => {
                b[0..8].copy_from_slice(&WELCOME.to_le_bytes());
                b[8..12].copy_from_slice(&VERSION.to_le_bytes());
                b[12..16].copy_from_slice(&peer.to_le_bytes());
                b[16..20].copy_from_slice(&host.pid.to_le_bytes());
                b[24..32].copy_from_slice(&host.start_time.to_le_bytes());
                b[32..40].copy_from_slice(&segment_len.to_le_bytes());
                b[40..48].copy_from_slice(&epoch.to_le_bytes());
            }
            Self::Refuse(reason) => {
                b[0..8].copy_from_slice(&REFUSE.to_le_bytes());
                b[8..12].copy_from_slice(
                    &match reason {
                        RefuseReason::PeerTableFull => 1u32,
                    }
                    .to_le_bytes(),
                );
            }
        }
        b
    }

    /// Decodes a frame a peer sent; any bytes give a frame or an error, never a panic.
    pub(crate) fn decode(b: &[u8]) -> Result<Self, HelloError> {
        if b.len() != FRAME {
            return Err(HelloError::Length(b.len()));
        }
        match u64_at(b, 0) {
            WELCOME => {
                let version = u32_at(b, 8);
                if version != VERSION {
                    return Err(HelloError::Version(version));
                }
                Ok(Self::Welcome {
                    peer: u32_at(b, 12),
                    host: ProcessId {
                        pid: u32_at(b, 16),
                        start_time: u64_at(b, 24),
                    },
                    segment_len: u64_at(b, 32),
                    epoch: u64_at(b, 40),
                })
            }
            REFUSE => match u32_at(b, 8) {
                1 => Ok(Self::Refuse(RefuseReason::PeerTableFull)),
                other => Err(HelloError::Reason(other)),
            },
            other => Err(HelloError::Magic(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_round_trip() {
        let w = Hello::Welcome {
            peer: 3,
            host: ProcessId {
                pid: 42,
                start_time: 99,
            },
            segment_len: 1 << 20,
            epoch: 5,
        };
        assert_eq!(Hello::decode(&w.encode()), Ok(w));
        let r = Hello::Refuse(RefuseReason::PeerTableFull);
        assert_eq!(Hello::decode(&r.encode()), Ok(r));
        assert_eq!(Hello::decode(&[0; 10]), Err(HelloError::Length(10)));
        assert_eq!(Hello::decode(&[0; 64]), Err(HelloError::Magic(0)));
        for r in [Request::Join, Request::Status] {
            assert_eq!(Request::decode(&r.encode()), Ok(r));
        }
        assert!(Request::decode(&Hello::decode(&w.encode()).unwrap().encode()).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(hello) = Hello::decode(&bytes) {
                prop_assert_eq!(Hello::decode(&hello.encode()), Ok(hello));
            }
            if let Ok(request) = Request::decode(&bytes) {
                prop_assert_eq!(Request::decode(&request.encode()), Ok(request));
            }
        }
    }
}
