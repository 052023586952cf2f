//! [`PeerWatch`]: whether a link's peer is still there, without receiving from it.

use std::sync::Arc;

use crate::error::Error;
use crate::link::Shared;

/// Tells whether a link is gone (the peer died, closed its end, or was cut off), from
/// anywhere: it neither sends nor receives, and it does not keep the link open. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PeerWatch {
    shared: Arc<Shared>,
}

impl PeerWatch {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Whether the link is gone.
    #[must_use]
    pub fn is_gone(&self) -> bool {
        self.shared.is_gone()
    }

    /// The error calls on the link return once it is gone (`PeerGone`, or the
    /// `ProtocolViolation` that cut the peer off); `None` while it is up.
    #[must_use]
    pub fn error(&self) -> Option<Error> {
        self.is_gone().then(|| self.shared.gone_error())
    }

    /// Completes when the link is gone.
    #[cfg(feature = "tokio")]
    pub async fn gone(&self) {
        loop {
            // Made before the check: `notify_waiters` wakes every `Notified` made before it.
            let notified = self.shared.gone_waiters.notified();
            if self.is_gone() {
                return;
            }
            notified.await;
        }
    }
}
