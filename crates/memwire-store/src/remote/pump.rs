//! A watch's pump: reads a [`Watcher`] and queues its events on the connection's bounded send
//! queue without ever waiting for room for a change. When the queue is full, the watch is
//! lagged: the rest of what it read is dropped, and once the queue has room again it sends
//! `lagged` (from the first change it dropped), the current values and `synced`, waiting for
//! room for those, then carries on live. Nothing is dropped silently and the store's writer
//! never waits for a client. When the watcher fails for good (its tenant was deleted, its key
//! revoked), the pump queues `watch_ended` with the error and stops; the connection goes on.

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_tungstenite::tungstenite::Message;

use super::wire;
use crate::protocol::{Format, Response, encode_response};
use crate::store::{WatchEvent, Watcher};

/// Runs until the connection's queue closes or the watcher fails (its key was revoked, its
/// tenant was deleted): then `watch_ended` says why.
pub(super) async fn pump(
    mut watcher: Watcher,
    watch_id: u64,
    format: Format,
    queue: mpsc::Sender<Message>,
) {
    let encode = |event| {
        wire::message(encode_response(
            &wire::event_response(watch_id, event),
            format,
        ))
    };
    loop {
        let events = match watcher.next_batch().await {
            Ok(events) => events,
            Err(e) => {
                tracing::debug!(watch_id, error = %e, "watch ended");
                let ended = Response::watch_ended(watch_id, &e);
                let _ = queue
                    .send(wire::message(encode_response(&ended, format)))
                    .await;
                return;
            }
        };
        let mut missed_from = None;
        for event in events {
            let change = match &event {
                WatchEvent::Changed { version, .. } => Some(*version),
                _ => None,
            };
            match change {
                // A change never waits for room.
                Some(version) => match queue.try_send(encode(event)) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        missed_from = Some(version);
                        break;
                    }
                    Err(TrySendError::Closed(_)) => return,
                },
                // The watcher's own `lagged` sequence (it fell out of the feed): the current
                // values are a snapshot of bounded size, and waiting for room costs the
                // writer nothing.
                None => {
                    if queue.send(encode(event)).await.is_err() {
                        return;
                    }
                }
            }
        }
        let Some(missed_from) = missed_from else {
            continue;
        };
        // Wait for room first, so the current values are taken as late as possible.
        match queue.reserve().await {
            Ok(permit) => drop(permit),
            Err(_) => return,
        }
        tracing::debug!(watch_id, missed_from, "send queue full; the watch lagged");
        let events = match watcher.resync(missed_from) {
            Ok(events) => events,
            // The next `next_batch` reports the same failure and closes.
            Err(_) => continue,
        };
        for event in events {
            if queue.send(encode(event)).await.is_err() {
                return;
            }
        }
    }
}
