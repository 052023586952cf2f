//! [`BusyPoll`]: a wait that spins a moment before it sleeps, as memwire's links do.
//!
//! A round trip over a socket costs two thread wake-ups when both ends sleep between
//! messages (8–20 µs each on this kind of machine). A server that keeps polling for a while
//! after it answered, and a client that keeps polling after it asked, catch a busy peer's
//! next message without sleeping: the wait costs a few `epoll_wait(0)` calls instead of a
//! wake-up. The poll yields to the runtime between tries, so other tasks run meanwhile, and
//! it only happens while it pays: after a spin that ran out, the next wait sleeps at once,
//! until a wait ends within twice the budget again (a wait that slept includes the wake-up
//! that spinning saves).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

/// How one end waits for its peer's next message. See the [module docs](self).
#[derive(Debug)]
pub(super) struct BusyPoll {
    budget: Duration,
    /// Whether the last wait ended within the budget (so spinning is worth trying).
    quick: AtomicBool,
}

impl BusyPoll {
    /// Spins up to `budget` (zero: never).
    pub(super) fn new(budget: Duration) -> Self {
        Self {
            budget,
            quick: AtomicBool::new(true),
        }
    }

    /// `next`'s output: polled between yields to the runtime for up to the budget when the
    /// last wait was quick, then awaited.
    pub(super) async fn wait<F: Future + Unpin>(&self, mut next: F) -> F::Output {
        let start = Instant::now();
        // Relaxed: a hint; a stale value costs one wait its spin or its sleep, nothing else.
        let spin = !self.budget.is_zero() && self.quick.load(Ordering::Relaxed);
        if spin {
            loop {
                let polled = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut next).poll(cx)));
                if let Poll::Ready(out) = polled.await {
                    return out;
                }
                if start.elapsed() >= self.budget {
                    break;
                }
                // The runtime polls its sockets (`epoll_wait` with no timeout) before it
                // resumes this task: a message that arrived meanwhile is ready next time.
                tokio::task::yield_now().await;
            }
        }
        let out = next.await;
        // A wait that slept includes its own wake-up, which spinning would have saved: it
        // counts as quick up to twice the budget.
        let quick = if spin { self.budget } else { 2 * self.budget };
        self.quick
            .store(start.elapsed() <= quick, Ordering::Relaxed);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_late_answer_turns_spinning_off_and_a_quick_one_back_on() {
        let poll = BusyPoll::new(Duration::from_millis(1));
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send(1)
        });
        assert_eq!(poll.wait(rx).await, Ok(1));
        late.await.unwrap().unwrap();
        assert!(!poll.quick.load(Ordering::Relaxed));
        // Not quick: no spin, but a wait that ends in time turns it back on.
        assert_eq!(poll.wait(std::future::ready(2)).await, 2);
        assert!(poll.quick.load(Ordering::Relaxed));
        // Spinning: an answer that comes while it spins is taken.
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let soon = tokio::spawn(async move { tx.send(3) });
        assert_eq!(poll.wait(rx).await, Ok(3));
        soon.await.unwrap().unwrap();
    }
}
