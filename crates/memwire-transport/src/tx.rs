//! The sending half: loans, commits, backpressure, and the slots the receiver gives back.

use std::sync::Arc;
use std::time::Duration;

use memwire_shm::{Access, Mapping, MemfdSegment, ProcessId, Segment};

use crate::bell::{AsyncBell, Half};
use crate::config::{LinkConfig, WaitStrategy};
use crate::descriptor::{DESCRIPTOR_SIZE, Descriptor, INLINE_MAX};
use crate::error::{Error, Result};
use crate::layout::{DataRing, Direction, ReturnRing};
use crate::limits::Limits;
use crate::link::{Counters, Shared, Stats, stats};
use crate::loan::{Body, Large, Loan};
use crate::pool::{ClassUsage, Pool};
use crate::return_entry::{RETURN_ENTRY_SIZE, ReturnEntry};
use crate::ring::{Consumer, Producer, PushError, WaitKind};
use crate::wait::Waiter;

/// What a loan waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lack {
    /// Room in the data ring: the receiver pops.
    Room,
    /// A free slot of a fitting class: the receiver returns one.
    Slot,
}

/// The sending half of a [`crate::Link`]. Owning it is the right to send: one per link.
#[derive(Debug)]
pub struct Tx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) data: Producer<DataRing, DESCRIPTOR_SIZE>,
    pub(crate) returns: Consumer<ReturnRing, RETURN_ENTRY_SIZE>,
    pub(crate) pool: Pool,
    /// Our own pool as the receiver sees it: what a return entry may name.
    limits: Limits,
    inline_max: usize,
    max_large: u64,
    pub(crate) wait: WaitStrategy,
    /// Our send doorbell, once registered with tokio by a `loan_async`.
    #[cfg_attr(
        not(feature = "tokio"),
        expect(dead_code, reason = "awaited only under tokio")
    )]
    pub(crate) bell: AsyncBell,
    /// Sequence number of the next large message (its memfd travels on the control socket).
    pub(crate) next_seq: u64,
    data_consumer_word: usize,
    data_producer_word: usize,
    returns_consumer_word: usize,
}

impl Tx {
    pub(crate) fn new(
        shared: Arc<Shared>,
        config: &LinkConfig,
        dir: &Direction,
        wait: WaitStrategy,
    ) -> Result<Self> {
        let (data_ring, return_ring) = dir.rings(&shared.map, config.ring_depth)?;
        let data_consumer_word = data_ring.consumer_state_offset();
        let data_producer_word = data_ring.producer_state_offset();
        let returns_consumer_word = return_ring.consumer_state_offset();
        Ok(Self {
            data: Producer::new(data_ring),
            returns: Consumer::new(return_ring),
            pool: Pool::new(config, &dir.pools),
            limits: crate::link::limits(config)?,
            inline_max: usize::from(config.inline_max).min(INLINE_MAX),
            max_large: config.max_large,
            wait,
            bell: AsyncBell::default(),
            next_seq: 0,
            data_consumer_word,
            data_producer_word,
            returns_consumer_word,
            shared,
        })
    }

    /// Writable memory for a message of `len` bytes: inline in the descriptor when small, a
    /// slot of the smallest fitting class otherwise, its own sealed memfd when larger than
    /// every class. Waits (per the link's strategy) for a free slot and for room in the ring,
    /// so that [`Loan::commit`] never waits.
    #[inline]
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.loan_within(len, None)
    }

    /// [`Tx::loan`], or [`Error::WouldBlock`] at once when it would wait.
    #[inline]
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.loan_within(len, Some(Duration::ZERO))
    }

    /// [`Tx::loan`], or [`Error::Timeout`] after `timeout`.
    #[inline]
    pub fn loan_timeout(&mut self, len: usize, timeout: Duration) -> Result<Loan<'_>> {
        self.loan_within(len, Some(timeout))
    }

    /// Copies `data` into a loan and commits it.
    #[inline]
    pub fn send(&mut self, data: &[u8]) -> Result<()> {
        let mut loan = self.loan(data.len())?;
        loan.as_mut_slice().copy_from_slice(data);
        loan.commit()
    }

    /// Free and total slots of each class of this end's pool (slots at a dead peer count as
    /// free: they come back the moment its death is seen).
    pub fn usage(&mut self) -> Result<Vec<ClassUsage>> {
        self.collect_returns()?;
        Ok(self.pool.usage())
    }

    /// Whether a message of `len` bytes travels in its own memfd (larger than every size
    /// class): its commit then passes the memfd on the control socket, which
    /// [`Loan::commit`] may wait for (`Loan::commit_async` awaits it instead).
    #[must_use]
    pub fn is_large(&self, len: usize) -> bool {
        len > self.inline_max && !self.pool.fits(len)
    }

    /// A snapshot of the link's counters.
    #[must_use]
    pub fn stats(&self) -> Stats {
        stats(&self.shared.counters)
    }

    /// The process at the other end.
    #[must_use]
    pub fn peer(&self) -> ProcessId {
        self.shared.peer.id()
    }

    /// The common case, memory at hand, is inlined into each public loan and builds the loan in
    /// the caller's result; the wait is out of line.
    #[inline(always)]
    fn loan_within(&mut self, len: usize, timeout: Option<Duration>) -> Result<Loan<'_>> {
        self.check_len(len)?;
        let body = match self.try_body(len)? {
            Ok(body) => body,
            Err(lack) => self.wait_for_body(len, lack, timeout)?,
        };
        Ok(Loan::new(self, body, len))
    }

    /// [`Tx::loan_within`] when `lack` is lacking: spin, then sleep, per the strategy, until
    /// [`Tx::try_body`] gives memory.
    #[inline(never)]
    fn wait_for_body(&mut self, len: usize, lack: Lack, timeout: Option<Duration>) -> Result<Body> {
        let mut waiter = Waiter::new(self.wait, timeout);
        let mut lack = lack;
        loop {
            waiter.check_deadline()?;
            if !waiter.spin() {
                let declared = self.prepare_sleep(lack, WaitKind::Futex)?;
                if declared && !self.shared.is_gone() {
                    waiter.sleep(&self.shared, self.sleep_word(lack))?;
                }
                self.returns.cancel_sleep();
                self.data.cancel_sleep();
            }
            lack = match self.try_body(len)? {
                Ok(body) => return Ok(body),
                Err(lack) => lack,
            };
        }
    }

    /// [`Error::TooLarge`] for a message longer than the link allows.
    pub(crate) fn check_len(&self, len: usize) -> Result<()> {
        if len as u64 > self.max_large {
            return Err(Error::TooLarge {
                len: len as u64,
                max: self.max_large,
            });
        }
        Ok(())
    }

    /// Memory for a message of `len` bytes if it can be had without waiting, else what is
    /// lacking; the link's error once it is gone. With room in the ring as last seen, a small
    /// message or a free slot is inlined; everything else goes out of line.
    #[inline(always)]
    pub(crate) fn try_body(&mut self, len: usize) -> Result<Result<Body, Lack>> {
        if !self.shared.is_gone()
            && let Some(next) = self.data.next_slot_cached()
            && let Some(body) = self.body_in(next, len)
        {
            return Ok(Ok(body));
        }
        self.try_body_outside(len)
    }

    /// Memory for `len` bytes with ring slot `next` free: in place in that slot when small
    /// (ours until published), else a pool slot while one is free; `None` when none is, or
    /// no class fits.
    #[inline(always)]
    fn body_in(&mut self, next: u32, len: usize) -> Option<Body> {
        if len <= self.inline_max {
            return Some(Body::Inline {
                at: self.data.memory().slot_offset(next),
            });
        }
        let slot = self.pool.alloc(len)?;
        self.publish_usage();
        Some(Body::Slot(slot))
    }

    /// [`Tx::try_body`] for a large message, a ring that looks full, a pool run short, or a
    /// link gone.
    #[inline(never)]
    fn try_body_outside(&mut self, len: usize) -> Result<Result<Body, Lack>> {
        if self.shared.is_gone() {
            self.collect_returns()?;
            return Err(self.shared.gone_error());
        }
        let next = self.data.next_slot().map_err(|e| self.shared.violate(e))?;
        let Some(next) = next else {
            return Ok(Err(Lack::Room));
        };
        if let Some(body) = self.body_in(next, len) {
            return Ok(Ok(body));
        }
        if !self.pool.fits(len) {
            return Self::large(len).map(Ok);
        }
        // Returned slots are collected only when the pool runs short: the common case reads
        // no index the receiver writes.
        self.collect_returns()?;
        if let Some(body) = self.body_in(next, len) {
            return Ok(Ok(body));
        }
        Ok(Err(Lack::Slot))
    }

    /// A large message's own memfd, mapped. Out of line: syscalls, and rare.
    #[cold]
    #[inline(never)]
    fn large(len: usize) -> Result<Body> {
        let segment = MemfdSegment::create("memwire-large", len as u64)?;
        let map = segment.map(Access::ReadWrite)?;
        Ok(Body::Large(Box::new(Large { segment, map })))
    }

    /// Declares that we sleep until the receiver gives us what we lack (`Ok(true)`: sleep on
    /// [`Tx::sleep_word`] as `kind` says, then cancel both rings' declarations; `Ok(false)`:
    /// it came meanwhile, try again).
    pub(crate) fn prepare_sleep(&mut self, lack: Lack, kind: WaitKind) -> Result<bool> {
        let declared = match lack {
            Lack::Slot => self.returns.prepare_sleep(kind),
            Lack::Room => self.data.prepare_sleep(kind),
        };
        declared.map_err(|e| self.shared.violate(e))
    }

    /// The state word a sleep for `lack` declares itself in.
    fn sleep_word(&self, lack: Lack) -> usize {
        match lack {
            Lack::Slot => self.returns_consumer_word,
            Lack::Room => self.data_producer_word,
        }
    }

    /// Records the pool's usage where the host's status report reads it. Relaxed: a
    /// statistic, ordered by nothing.
    pub(crate) fn publish_usage(&self) {
        self.shared
            .slots_out
            .store(self.pool.out(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Takes back every slot the receiver returned; with the peer gone, every slot in flight.
    fn collect_returns(&mut self) -> Result<()> {
        if self.shared.is_gone() {
            self.pool.reclaim_in_flight();
            self.publish_usage();
            return Ok(());
        }
        let mut any = false;
        loop {
            let popped = match self.returns.try_pop() {
                Ok(Some(p)) => p,
                Ok(None) => {
                    if any {
                        self.publish_usage();
                    }
                    return Ok(());
                }
                Err(e) => return Err(self.shared.violate(e)),
            };
            let entry = ReturnEntry::decode(popped.entry, &self.limits)
                .map_err(|e| self.shared.violate(e))?;
            self.pool
                .give_back(entry.class, entry.index, entry.generation)
                .map_err(|e| self.shared.violate(e))?;
            any = true;
        }
    }

    /// Publishes a small message whose payload a loan wrote in place in the next ring slot, at
    /// `at` in the mapping: writes the descriptor's head before it. The loan checked there is
    /// room, and only we push, so this never waits.
    #[inline]
    pub(crate) fn publish_inline(&mut self, at: usize, len: usize) -> Result<()> {
        // `len <= inline_max` (the loan chose inline), so it fits a `u8`.
        let head = Descriptor::inline_head(len as u8);
        // Cannot fail: `at` is a slot of the data ring, which `SegmentRing::new` checked lies in
        // the writable mapping.
        self.shared
            .map
            .write(at, &head)
            .expect("ring slot checked in SegmentRing::new");
        let pushed = self.data.publish_next().map_err(PushError::Corrupt);
        self.pushed(pushed, len)
    }

    /// Publishes a descriptor of a message in a slot or a memfd. The loan checked there is
    /// room, and only we push, so this never waits.
    #[inline]
    pub(crate) fn publish(&mut self, descriptor: &Descriptor, len: usize) -> Result<()> {
        let pushed = self.data.try_push(&descriptor.encode());
        self.pushed(pushed, len)
    }

    /// Wakes the receiver if it sleeps and counts the message, or turns a failed push into
    /// the link's violation.
    #[inline]
    fn pushed(
        &mut self,
        pushed: std::result::Result<crate::ring::Pushed, PushError>,
        len: usize,
    ) -> Result<()> {
        match pushed {
            Ok(pushed) => {
                self.shared
                    .wake(pushed.wake, self.data_consumer_word, Half::Rx);
                Counters::bump(&self.shared.counters.messages_sent, 1);
                Counters::bump(&self.shared.counters.bytes_sent, len as u64);
                Ok(())
            }
            Err(PushError::Full) => Err(self.shared.violate("ring full although a loan saw room")),
            Err(PushError::Corrupt(e)) => Err(self.shared.violate(e)),
        }
    }

    /// Sends a large message's memfd on the control socket; returns its sequence number.
    pub(crate) fn send_large(&mut self, segment: &MemfdSegment) -> Result<u64> {
        let seq = self.next_seq;
        crate::control::send_large(&self.shared, seq, segment)?;
        self.next_seq += 1;
        Ok(seq)
    }

    /// The mapping every slot lives in.
    pub(crate) fn map(&self) -> &Mapping {
        &self.shared.map
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        self.shared.half_dropped();
    }
}
