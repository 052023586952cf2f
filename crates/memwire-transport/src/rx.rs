//! The receiving half: descriptors in, validated, turned into [`Message`]s.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use memwire_shm::ProcessId;

use crate::bell::{AsyncBell, Half};
use crate::config::{LinkConfig, WaitStrategy};
use crate::descriptor::{DESCRIPTOR_SIZE, Descriptor, Image};
use crate::error::{Error, Result};
use crate::layout::{DataRing, Direction};
use crate::limits::Limits;
use crate::link::{Counters, Shared, Stats, stats};
use crate::message::{Message, Returns};
use crate::return_entry::ReturnEntry;
use crate::ring::{Consumer, Producer, WaitKind};
use crate::wait::Waiter;

/// The receiving half of a [`crate::Link`]. Owning it is the right to receive: one per link.
#[derive(Debug)]
pub struct Rx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) data: Consumer<DataRing, DESCRIPTOR_SIZE>,
    returns: Arc<Returns>,
    /// The sender's pool as we may trust it: what a descriptor may name.
    limits: Limits,
    /// `(offset of slot 0, slot size)` of each of the sender's classes.
    pools: Vec<(usize, usize)>,
    pub(crate) wait: WaitStrategy,
    /// Our receive doorbell, once registered with tokio by a `recv_async`.
    #[cfg_attr(
        not(feature = "tokio"),
        expect(dead_code, reason = "awaited only under tokio")
    )]
    pub(crate) bell: AsyncBell,
    next_seq: u64,
    /// The descriptor being received, copied out of the ring: a small message's payload goes
    /// from here into its [`Message`] (`Consumer::try_pop_into` says why it is kept here).
    image: Image,
    data_consumer_word: usize,
    data_producer_word: usize,
}

impl Rx {
    pub(crate) fn new(
        shared: Arc<Shared>,
        config: &LinkConfig,
        dir: &Direction,
        wait: WaitStrategy,
    ) -> Result<Self> {
        let (data_ring, return_ring) = dir.rings(&shared.map, config.ring_depth)?;
        let returns_consumer_word = return_ring.consumer_state_offset();
        Ok(Self {
            data_consumer_word: data_ring.consumer_state_offset(),
            data_producer_word: data_ring.producer_state_offset(),
            data: Consumer::new(data_ring),
            returns: Arc::new(Returns {
                shared: Arc::clone(&shared),
                ring: Mutex::new(Producer::new(return_ring)),
                consumer_word: returns_consumer_word,
            }),
            limits: crate::link::limits(config)?,
            pools: config
                .classes
                .iter()
                .zip(&dir.pools)
                .map(|(c, &base)| (base, c.size as usize))
                .collect(),
            wait,
            bell: AsyncBell::default(),
            next_seq: 0,
            image: Image([0; DESCRIPTOR_SIZE]),
            shared,
        })
    }

    /// A handle that tells whether the link is gone, from anywhere.
    #[must_use]
    pub fn peer_watch(&self) -> crate::PeerWatch {
        crate::PeerWatch::new(Arc::clone(&self.shared))
    }

    /// The next message, waiting for it per the link's strategy. Messages already sent are
    /// delivered before a dead peer's [`crate::Error::PeerGone`].
    #[inline]
    pub fn recv(&mut self) -> Result<Message> {
        self.recv_within(None)
    }

    /// The next message if one is there, else [`crate::Error::WouldBlock`].
    #[inline]
    pub fn try_recv(&mut self) -> Result<Message> {
        self.recv_within(Some(Duration::ZERO))
    }

    /// The next message, or [`crate::Error::Timeout`] after `timeout`.
    #[inline]
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Message> {
        self.recv_within(Some(timeout))
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

    /// The message is built once, in the caller's result: the paths that take it from the
    /// ring are inlined here, and the wait, out of line, returns through the same result.
    /// "Empty" travels as `Err(WouldBlock)` in that same `Result<Message>`: a
    /// `Result<Option<Message>>` has another layout, and converting one into the other made
    /// the compiler move the message field by field, a 16-byte load then straddling smaller
    /// stores, which the store buffer cannot forward (`ring` module doc).
    #[inline(always)]
    fn recv_within(&mut self, timeout: Option<Duration>) -> Result<Message> {
        match self.pop() {
            Err(Error::WouldBlock) => self.wait_for_message(timeout),
            taken => taken,
        }
    }

    /// [`Rx::recv_within`] when the ring was empty: spin, then sleep, per the strategy.
    #[inline(never)]
    fn wait_for_message(&mut self, timeout: Option<Duration>) -> Result<Message> {
        let mut waiter = Waiter::new(self.wait, timeout);
        loop {
            // Spins on one load; pops (and makes its `WouldBlock`) only when there is something.
            if self.has_news() {
                match self.try_take() {
                    Err(Error::WouldBlock) => {}
                    taken => return taken,
                }
            }
            waiter.check_deadline()?;
            if waiter.spin() {
                continue;
            }
            let declared = self
                .data
                .prepare_sleep(WaitKind::Futex)
                .map_err(|e| self.shared.violate(e))?;
            if declared && !self.shared.is_gone() {
                waiter.sleep(&self.shared, self.data_consumer_word)?;
            }
            self.data.cancel_sleep();
        }
    }

    /// Whether [`Rx::try_take`] may have something to say: a message in the ring (or a
    /// broken one), or the link gone.
    #[inline]
    pub(crate) fn has_news(&self) -> bool {
        self.data.looks_ready() || self.shared.is_gone()
    }

    /// The next message if one is there, else [`Error::WouldBlock`]; [`Error::PeerGone`] (or
    /// the violation) once the link is gone and every message sent before was taken.
    #[inline]
    pub(crate) fn try_take(&mut self) -> Result<Message> {
        match self.pop() {
            Err(Error::WouldBlock) if self.shared.is_gone() => {
                // The peer may have pushed its last message and gone between the pop above and
                // the check: whoever marked the link gone saw the peer's exit (or hang-up),
                // which came after that push, so one more pop finds it.
                match self.pop() {
                    Err(Error::WouldBlock) => Err(self.shared.gone_error()),
                    taken => taken,
                }
            }
            taken => taken,
        }
    }

    /// The next message in the ring, or [`Error::WouldBlock`] when it is empty.
    #[inline(always)]
    fn pop(&mut self) -> Result<Message> {
        match self.data.try_pop_into(&mut self.image.0) {
            Ok(Some(taken)) => {
                self.shared
                    .wake(taken.wake, self.data_producer_word, Half::Tx);
                let accepted = self.accept();
                // `WouldBlock` must mean "empty" to the callers: a taken descriptor fails only
                // as a violation (a large message's memfd not there is one), or `Shm` /
                // `TooLarge` while mapping it.
                debug_assert!(!matches!(accepted, Err(Error::WouldBlock)));
                accepted
            }
            Ok(None) => Err(Error::WouldBlock),
            Err(e) => Err(self.shared.violate(e)),
        }
    }

    /// Validates the descriptor copied out of the ring into [`Rx::image`] and makes it a
    /// message. The counters are bumped first, so that the message is built last, in place in
    /// the caller's result, rather than built, kept across the counting, and moved.
    #[inline(always)]
    fn accept(&mut self) -> Result<Message> {
        let descriptor =
            Descriptor::decode(&self.image.0, &self.limits).map_err(|e| self.shared.violate(e))?;
        let len = match descriptor {
            Descriptor::Inline { len } => u64::from(len),
            Descriptor::Slot { len, .. } => u64::from(len),
            Descriptor::Memfd { len, .. } => len,
        };
        Counters::bump(&self.shared.counters.messages_received, 1);
        Counters::bump(&self.shared.counters.bytes_received, len);
        match descriptor {
            Descriptor::Inline { len } => Ok(Message::inline(len, self.image)),
            Descriptor::Slot {
                class,
                index,
                generation,
                len,
            } => {
                // `decode` checked class < classes, index < count and len <= slot size.
                let (base, size) = self.pools[usize::from(class)];
                Ok(Message::slot(
                    self.image,
                    Arc::clone(&self.returns),
                    ReturnEntry {
                        class,
                        index,
                        generation,
                    },
                    base + index as usize * size,
                    len as usize,
                ))
            }
            Descriptor::Memfd { seq, len } => self.accept_large(seq, len),
        }
    }

    /// A large message: its memfd comes from the control socket. Out of line: it costs
    /// syscalls, and kept apart it leaves the small messages' path short.
    #[cold]
    #[inline(never)]
    fn accept_large(&mut self, seq: u64, len: u64) -> Result<Message> {
        if seq != self.next_seq {
            return Err(self.shared.violate(format!(
                "large message {seq} out of order, expected {}",
                self.next_seq
            )));
        }
        self.next_seq += 1;
        Ok(Message::large(crate::control::recv_large(
            &self.shared,
            seq,
            len,
        )?))
    }
}

impl Drop for Rx {
    fn drop(&mut self) {
        self.shared.half_dropped();
    }
}
