//! Waiting under tokio: [`Rx::recv_async`], [`Tx::loan_async`] and [`Tx::send_async`].
//!
//! The same spin phase as the blocking calls (letting the runtime's other ready tasks run every
//! [`TASK_YIELD_EVERY`] turns, and its I/O driver every few thousand), then the ring's sleep
//! handshake declaring [`WaitKind::Doorbell`]: the peer rings this half's eventfd (`bell.rs`)
//! instead of making a `FUTEX_WAKE`, and the task awaits the eventfd through tokio's
//! `AsyncFd`. No thread blocks, none is started per link, and a busy link still makes no
//! syscall at all: the peer rings only a declared sleeper.
//!
//! **Cancel safety.** Dropping a future mid-wait withdraws its sleep declaration (a drop guard
//! calls `cancel_sleep`), so the ring is left as if it never slept. A message leaves the ring
//! only in the poll that returns it, and a loan is made only in the poll that returns it, so a
//! dropped future loses neither. A ring that lands after the drop leaves a count in the
//! eventfd: the next wait wakes once for nothing and re-checks.
//!
//! **Disconnect.** The watcher rings our doorbells when the peer dies (`Shared::mark_gone`),
//! and wakes our waiters through a process-local `Notify` too (a peer we cut off is alive and
//! holds our doorbells: it could read the ring away): a pending `recv_async` or `loan_async`
//! returns [`crate::Error::PeerGone`] (or the violation) at once.
//!
//! **Runtime.** A half's first wait registers its doorbell with the current runtime; the half
//! then belongs to that runtime, as a tokio socket does. Outside a runtime the call fails
//! (`Error::Io`) instead of panicking.
//!
//! **Large messages.** A message beyond every size class passes its memfd on the link's
//! control socket. [`Loan::commit_async`] (which [`Tx::send_async`] uses) awaits room there
//! through the reactor when the socket is full (a receiver slow to drain), so no runtime
//! thread ever blocks; the plain [`Loan::commit`] would block its thread until there is room.

use memwire_shm::AsyncDoorbell;

use crate::bell::Half;
use crate::error::{Error, Result};
use crate::link::{Counters, Shared};
use crate::loan::Loan;
use crate::message::Message;
use crate::ring::WaitKind;
use crate::rx::Rx;
use crate::tx::Tx;
use crate::wait::{Turn, Waiter};

impl Rx {
    /// The next message, awaited without blocking the thread: spins per the link's
    /// [`crate::WaitStrategy`], then sleeps on the link's eventfd. Messages already sent are
    /// delivered before a dead peer's [`crate::Error::PeerGone`]. Cancel safe: dropping the
    /// future loses no message. Time out with `tokio::time::timeout`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> memwire_transport::Result<()> {
    /// use memwire_transport::{Guest, Host, HostConfig};
    ///
    /// # let name = format!("doc-recv-async-{}", std::process::id());
    /// let host = Host::bind(&name, HostConfig::default())?;
    /// let guest = std::thread::spawn(move || Guest::connect(&name));
    /// let mut link = host.accept()?;
    /// # let mut guest = guest.join().expect("the guest thread")?;
    /// guest.tx().send_async(b"hello").await?;
    /// assert_eq!(&*link.rx().recv_async().await?, b"hello");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv_async(&mut self) -> Result<Message> {
        let mut waiter = Waiter::new(self.wait, None);
        loop {
            if self.has_news() {
                match self.try_take() {
                    Err(Error::WouldBlock) => {}
                    taken => return taken,
                }
            }
            if spin(&mut waiter).await {
                continue;
            }
            let declared = self
                .data
                .prepare_sleep(WaitKind::Doorbell)
                .map_err(|e| self.shared.violate(e))?;
            let data = &self.data;
            let _cancel = OnDrop(move || data.cancel_sleep());
            if declared && !self.shared.is_gone() {
                let bell = self.bell.get(&self.shared.bells, Half::Rx)?;
                sleep(&self.shared, bell).await?;
            }
        }
    }
}

impl Tx {
    /// [`Tx::loan`], awaited without blocking the thread: spins per the link's
    /// [`crate::WaitStrategy`], then sleeps on the link's eventfd until the receiver makes
    /// room or returns a slot. Cancel safe: dropping the future holds no slot.
    pub async fn loan_async(&mut self, len: usize) -> Result<Loan<'_>> {
        self.check_len(len)?;
        let mut waiter = Waiter::new(self.wait, None);
        let body = loop {
            let lack = match self.try_body(len)? {
                Ok(body) => break body,
                Err(lack) => lack,
            };
            if spin(&mut waiter).await {
                continue;
            }
            let declared = self.prepare_sleep(lack, WaitKind::Doorbell)?;
            let (data, returns) = (&self.data, &self.returns);
            let _cancel = OnDrop(move || {
                data.cancel_sleep();
                returns.cancel_sleep();
            });
            if declared && !self.shared.is_gone() {
                let bell = self.bell.get(&self.shared.bells, Half::Tx)?;
                sleep(&self.shared, bell).await?;
            }
        };
        Ok(Loan::new(self, body, len))
    }

    /// Copies `data` into a loan awaited with [`Tx::loan_async`] and commits it with
    /// [`Loan::commit_async`].
    pub async fn send_async(&mut self, data: &[u8]) -> Result<()> {
        let mut loan = self.loan_async(data.len()).await?;
        loan.as_mut_slice().copy_from_slice(data);
        loan.commit_async().await
    }
}

impl Loan<'_> {
    /// [`Loan::commit`] for async code: a large message (beyond every size class) whose memfd
    /// finds the control socket full awaits room there instead of blocking the thread.
    /// Anything smaller commits at once, as with `commit`. Cancel safe: a future dropped
    /// before it completes has published nothing (the loan is dropped, its slot freed).
    pub async fn commit_async(mut self) -> Result<()> {
        let sent = match self.large() {
            (tx, Some(segment)) => {
                let seq = tx.next_seq;
                crate::control::send_large_async(&tx.shared, seq, segment).await?;
                tx.next_seq += 1;
                Some(seq)
            }
            (_, None) => None,
        };
        self.publish(sent)
    }
}

/// Spins between two chances for the runtime's other ready tasks to run.
const TASK_YIELD_EVERY: u32 = 64;

/// Lets the runtime's other ready tasks run before this one goes on. Unlike
/// `tokio::task::yield_now`, which resumes the task only after the runtime has polled its I/O
/// driver (an `epoll_wait` each time), this wakes itself at once: the runtime still polls its
/// driver every few dozen tasks. For a task that polls shared memory, which needs no driver:
/// one spinning on a link would otherwise keep the tasks that would feed it from running.
pub async fn yield_to_tasks() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

/// One turn of the spin phase: `false` means sleep now.
async fn spin(waiter: &mut Waiter) -> bool {
    match waiter.turn() {
        Turn::Spin if waiter.spins().is_multiple_of(TASK_YIELD_EVERY) => yield_to_tasks().await,
        Turn::Spin => std::hint::spin_loop(),
        // Lets the runtime's other tasks run (and, with the `Spin` strategy, keeps a task that
        // never sleeps from holding its worker thread for good).
        Turn::Yield => tokio::task::yield_now().await,
        Turn::Sleep => return false,
    }
    true
}

/// Sleeps until the peer (or the watcher) rings `bell`, or the link goes; the caller declared
/// it first.
async fn sleep(shared: &Shared, bell: &AsyncDoorbell) -> Result<()> {
    Counters::add(&shared.counters.sleeps, 1);
    // Made before the check: `notify_waiters` wakes every `Notified` made before it, so the
    // link going after the check still wakes us, though the peer read our doorbell's ring away.
    let gone = std::pin::pin!(shared.gone_waiters.notified());
    if shared.is_gone() {
        return Ok(());
    }
    let mut gone = gone;
    let mut rung = std::pin::pin!(bell.wait());
    std::future::poll_fn(|cx| {
        if gone.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(Ok(0));
        }
        rung.as_mut().poll(cx)
    })
    .await?;
    Ok(())
}

/// Runs its closure when dropped: withdraws a sleep declaration however the wait ends (woken,
/// failed, or the future dropped).
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::{Error, Guest, Host, HostConfig, WaitStrategy};

    /// The link is cut off (our `Tx` found the peer broke the protocol) while our `Rx` awaits;
    /// the hostile peer, which holds our doorbells too, takes the ring meant to wake it. The
    /// receive still ends, with the violation.
    #[tokio::test(flavor = "current_thread")]
    async fn a_cut_off_link_ends_recv_async_though_the_peer_takes_the_ring() {
        let name = format!("awaiting-unit-stolen-ring-{}", std::process::id());
        let config = HostConfig {
            wait: WaitStrategy::Block,
            ..HostConfig::default()
        };
        let host = Host::bind(&name, config).unwrap();
        let guest = std::thread::spawn(move || Guest::connect(&name));
        let link = host.accept_timeout(Duration::from_secs(30)).unwrap();
        let _guest = guest.join().unwrap().unwrap();
        let (_tx, mut rx) = link.split();
        let shared = Arc::clone(&rx.shared);
        let mut recv = std::pin::pin!(rx.recv_async());
        let polled = recv
            .as_mut()
            .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
        assert!(polled.is_pending(), "nothing was sent, yet: {polled:?}");
        drop(shared.violate("a forged return entry"));
        // What the peer can do with the eventfd it was given: read the ring away.
        shared.bells.own(Half::Rx).try_take().unwrap();
        match tokio::time::timeout(Duration::from_secs(30), recv).await {
            Ok(Err(Error::ProtocolViolation { .. })) => {}
            other => panic!("recv_async on a cut-off link gave {other:?}"),
        }
    }

    fn send<T: Send>(_: &T) {}

    /// The futures can be `tokio::spawn`ed.
    #[allow(dead_code)]
    fn futures_are_send(rx: &mut Rx, tx: &mut Tx) {
        send(&rx.recv_async());
        send(&tx.loan_async(1));
        send(&tx.send_async(b""));
    }
}
