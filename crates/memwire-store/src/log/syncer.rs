//! The background thread of [`FsyncPolicy::EverySecond`](super::FsyncPolicy::EverySecond):
//! once a second, if anything was appended since its last `fdatasync`, it syncs the current
//! log file; on shutdown it syncs once more. An `fdatasync` failure is kept for the log to
//! report on its next call (it cannot be retried: the kernel may have dropped the dirty pages).

use std::fs::File;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the thread looks for something to sync.
const PERIOD: Duration = Duration::from_secs(1);

/// What the log and its sync thread share.
#[derive(Debug)]
struct State {
    /// The file appends go to; replaced when a snapshot starts a new one.
    file: Arc<File>,
    /// Something was written to `file` since the thread last took it for syncing.
    dirty: bool,
    /// The log is closing: sync once more and exit.
    stop: bool,
    /// The first `fdatasync` failure, not yet reported.
    error: Option<io::Error>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Signalled on `stop`.
    stopping: Condvar,
}

impl Shared {
    /// The lock is never held across anything that panics, so a poisoned lock's state is
    /// still consistent.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sync thread; stopped (after a last sync) when dropped.
#[derive(Debug)]
pub(super) struct Syncer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the thread, syncing `file`.
    pub(super) fn start(file: Arc<File>) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                file,
                dirty: false,
                stop: false,
                error: None,
            }),
            stopping: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name("memwire-log-sync".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || run(&shared)
            })?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// The `fdatasync` failure the thread met since the last call, if any.
    pub(super) fn take_error(&self) -> Option<io::Error> {
        self.shared.lock().error.take()
    }

    /// Something was written: sync it within a second.
    pub(super) fn mark_dirty(&self) {
        self.shared.lock().dirty = true;
    }

    /// The log synced by itself: nothing is pending.
    pub(super) fn mark_clean(&self) {
        self.shared.lock().dirty = false;
    }

    /// Appends go to `file` from now on; what was written to the old file needs no sync (a
    /// durable snapshot covers it).
    pub(super) fn switch(&self, file: Arc<File>) {
        let mut state = self.shared.lock();
        state.file = file;
        state.dirty = false;
    }

    /// Stops the thread after a last sync and reports a failure not yet reported.
    pub(super) fn stop(mut self) -> Option<io::Error> {
        self.join();
        self.take_error()
    }

    fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.shared.lock().stop = true;
            self.shared.stopping.notify_one();
            // The thread's body does not panic; if it did, there is nothing left to sync.
            let _ = thread.join();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.join();
    }
}

fn run(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        // Sleeps a period unless stopped; a spurious wake-up only brings a sync forward.
        state = shared
            .stopping
            .wait_timeout_while(state, PERIOD, |state| !state.stop)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        let stop = state.stop;
        if state.dirty {
            state.dirty = false;
            let file = Arc::clone(&state.file);
            drop(state);
            let result = file.sync_data();
            state = shared.lock();
            if let Err(error) = result {
                state.error.get_or_insert(error);
            }
        }
        if stop {
            return;
        }
    }
}
