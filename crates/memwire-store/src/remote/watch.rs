//! [`RemoteWatch`]: a watch over a [`Remote`]'s connection that survives reconnects.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::client::Remote;
use super::conn::Conn;
use super::wire;
use crate::error::{Error, Result};
use crate::protocol::{ErrorCode, Response, Scope};
use crate::store::WatchEvent;

/// The first pause between reconnection attempts; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
/// The longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A remote watch: the same events as a local [`Watcher`](crate::Watcher) (changes in version
/// order, each once; `Lagged`, the current values and `Synced` after falling behind).
///
/// When the connection drops, [`RemoteWatch::next`] connects again by itself (for up to
/// [`RemoteOptions::reconnect_for`](super::RemoteOptions)) and watches again from the version
/// after the last one it yielded, so no change is missed; if those versions have left the
/// server's window, the resumed watch starts with `Lagged`. Dropping it ends the watch on the
/// server.
///
/// When the server ends the watch (`watch_ended`: its tenant was deleted, [`Error::NotFound`];
/// its key was revoked, [`Error::Unauthenticated`]), `next` returns that error, and so does
/// every later call.
#[derive(Debug)]
pub struct RemoteWatch {
    remote: Remote,
    scope: Scope,
    /// The last version yielded (a change's, or a `Synced`'s); the watch resumes after it.
    seen: u64,
    watch_id: u64,
    events: mpsc::Receiver<Response>,
    conn: Arc<Conn>,
    /// Why the server ended the watch, once it did.
    ended: Option<(ErrorCode, String)>,
}

impl RemoteWatch {
    pub(super) fn new(
        remote: Remote,
        scope: Scope,
        seen: u64,
        watch_id: u64,
        events: mpsc::Receiver<Response>,
        conn: Arc<Conn>,
    ) -> Self {
        Self {
            remote,
            scope,
            seen,
            watch_id,
            events,
            conn,
            ended: None,
        }
    }

    /// The scope watched.
    #[must_use]
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The last version yielded (before the first event: the version the watch started
    /// after).
    #[must_use]
    pub fn version(&self) -> u64 {
        self.seen
    }

    /// The next event, waiting for it. [`Error::ServerGone`] when the server could not be
    /// reached again in time; an error the server gives the new watch (a revoked key:
    /// [`Error::Unauthenticated`]) as it is.
    pub async fn next(&mut self) -> Result<WatchEvent> {
        loop {
            if let Some((code, message)) = &self.ended {
                return Err(wire::error_from(*code, message.clone(), None));
            }
            match self.events.recv().await {
                Some(Response::WatchEnded { code, message, .. }) => {
                    self.ended = Some((code, message));
                }
                Some(response) => {
                    if let Some(event) = wire::watch_event(response) {
                        match &event {
                            WatchEvent::Changed { version, .. }
                            | WatchEvent::Synced { version } => self.seen = *version,
                            WatchEvent::Lagged { .. } | WatchEvent::Current { .. } => {}
                        }
                        return Ok(event);
                    }
                }
                None => self.resume().await?,
            }
        }
    }

    /// Watches again, from the version after the last one yielded.
    async fn resume(&mut self) -> Result<()> {
        let deadline = Instant::now() + self.remote.options().reconnect_for;
        let mut backoff = FIRST_BACKOFF;
        // The server named `seen`: it may be `u64::MAX`.
        let from = self.seen.saturating_add(1);
        loop {
            match self.remote.start_watch(&self.scope, Some(from)).await {
                Ok((watch_id, _, events, conn)) => {
                    tracing::debug!(from, "remote watch resumed");
                    self.watch_id = watch_id;
                    self.events = events;
                    self.conn = conn;
                    return Ok(());
                }
                Err(Error::ServerGone) if Instant::now() + backoff < deadline => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for RemoteWatch {
    fn drop(&mut self) {
        if self.conn.is_closed() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (conn, watch_id) = (Arc::clone(&self.conn), self.watch_id);
            runtime.spawn(async move { conn.unwatch(watch_id).await });
        }
    }
}
