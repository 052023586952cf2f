//! The sender's slot pools, kept in the sender's private memory.
//!
//! Each direction of a link has its own pools in the segment, and only that direction's
//! sender allocates from them, so allocation needs no shared-memory synchronisation at all: a
//! pop from a private free list. What the sender must trust — which slots are free, lent to
//! the application, or in flight at the receiver, and each slot's generation — never leaves
//! its own memory, where the peer cannot touch it.
//!
//! A slot goes `Free → Loaned` (`alloc`) `→ InFlight` (`mark_sent`) `→ Free` (`give_back`,
//! when the receiver returns it with the generation it was sent with). A return naming a slot
//! that is not in flight, or with another generation, is a protocol violation: a stale or forged
//! handle is detected, never reused. When the receiver dies, every in-flight slot comes back at
//! once (`reclaim_in_flight`).

use crate::config::LinkConfig;

/// A slot the sender holds: where it is and which use of it this is.
///
/// `repr(C, align(8))`: in a `Result<Loan>` the compiler otherwise packed these fields at odd
/// offsets around the enum tags, and moved them in overlapping 8- and 4-byte pieces whose loads
/// the store buffer cannot forward (`ring` module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(8))]
pub(crate) struct SlotRef {
    pub(crate) class: u8,
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    Loaned,
    InFlight,
}

/// Generations start at 1 and skip 0 when they wrap: a zeroed return entry (a receiver that
/// published without writing) then never matches a slot in flight.
fn next_generation(g: u32) -> u32 {
    g.checked_add(1).unwrap_or(1)
}

#[derive(Debug)]
struct Class {
    size: u32,
    /// Segment offset of slot 0; slot `i` is at `base + i * size`.
    base: usize,
    /// Free slot indices; a stack, so a just-freed (cache-warm) slot is reused first.
    free: Vec<u32>,
    state: Vec<State>,
    generation: Vec<u32>,
}

/// Why a returned slot was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReturnError {
    /// No such class or index.
    #[error("returned slot {index} of class {class} does not exist")]
    NoSuchSlot { class: u8, index: u32 },
    /// The slot is not in flight (freed twice, or never sent).
    #[error("returned slot {index} of class {class} was not in flight")]
    NotInFlight { class: u8, index: u32 },
    /// The generation does not match: a stale or forged handle.
    #[error("returned slot {index} of class {class} has generation {got}, expected {expected}")]
    StaleGeneration {
        class: u8,
        index: u32,
        got: u32,
        expected: u32,
    },
}

/// Free and total slots of one class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassUsage {
    /// Slot size in bytes.
    pub size: u32,
    /// Slots free now.
    pub free: u32,
    /// Slots in all.
    pub total: u32,
}

/// The private state of one direction's pools.
#[derive(Debug)]
pub(crate) struct Pool {
    classes: Vec<Class>,
    /// Slots not free (loaned or in flight): `sum(total - free)`, kept as it changes.
    out: u32,
}

impl Pool {
    /// Pools shaped by `config`, with class `i`'s slots starting at segment offset `bases[i]`.
    pub(crate) fn new(config: &LinkConfig, bases: &[usize]) -> Self {
        let classes = config
            .classes
            .iter()
            .zip(bases)
            .map(|(c, &base)| Class {
                size: c.size,
                base,
                // Reversed so slot 0 is handed out first.
                free: (0..c.count).rev().collect(),
                state: vec![State::Free; c.count as usize],
                generation: vec![1; c.count as usize],
            })
            .collect();
        Self { classes, out: 0 }
    }

    /// Slots loaned or in flight.
    #[inline]
    pub(crate) fn out(&self) -> u32 {
        self.out
    }

    /// Lends a slot of the smallest class that fits `len` and has one free (a larger class
    /// when the best fit is exhausted); `None` when every fitting class is exhausted.
    #[inline]
    pub(crate) fn alloc(&mut self, len: usize) -> Option<SlotRef> {
        let (class, c) = self
            .classes
            .iter_mut()
            .enumerate()
            .find(|(_, c)| c.size as usize >= len && !c.free.is_empty())?;
        let index = c.free.pop()?;
        c.state[index as usize] = State::Loaned;
        self.out += 1;
        Some(SlotRef {
            class: class as u8,
            index,
            generation: c.generation[index as usize],
        })
    }

    /// Whether some class is large enough for `len` (else the message needs its own memfd).
    pub(crate) fn fits(&self, len: usize) -> bool {
        self.classes.last().is_some_and(|c| c.size as usize >= len)
    }

    /// Segment offset and size of a slot this sender holds.
    #[inline]
    pub(crate) fn place(&self, slot: SlotRef) -> (usize, usize) {
        let c = &self.classes[usize::from(slot.class)];
        (
            c.base + slot.index as usize * c.size as usize,
            c.size as usize,
        )
    }

    /// A loan dropped without being sent: the slot is free again, same generation (nobody
    /// else ever saw it).
    pub(crate) fn cancel(&mut self, slot: SlotRef) {
        let c = &mut self.classes[usize::from(slot.class)];
        debug_assert_eq!(c.state[slot.index as usize], State::Loaned);
        c.state[slot.index as usize] = State::Free;
        c.free.push(slot.index);
        self.out -= 1;
    }

    /// The slot's descriptor is published: it belongs to the receiver until returned.
    #[inline]
    pub(crate) fn mark_sent(&mut self, slot: SlotRef) {
        let c = &mut self.classes[usize::from(slot.class)];
        debug_assert_eq!(c.state[slot.index as usize], State::Loaned);
        c.state[slot.index as usize] = State::InFlight;
    }

    /// The receiver returns a slot. Checked against our private record: it must be in flight,
    /// with the generation we sent. The generation then moves on, so a second return of the
    /// same handle is refused.
    pub(crate) fn give_back(
        &mut self,
        class: u8,
        index: u32,
        generation: u32,
    ) -> Result<(), ReturnError> {
        let c = self
            .classes
            .get_mut(usize::from(class))
            .filter(|c| (index as usize) < c.state.len())
            .ok_or(ReturnError::NoSuchSlot { class, index })?;
        let i = index as usize;
        if c.state[i] != State::InFlight {
            return Err(ReturnError::NotInFlight { class, index });
        }
        if c.generation[i] != generation {
            return Err(ReturnError::StaleGeneration {
                class,
                index,
                got: generation,
                expected: c.generation[i],
            });
        }
        c.generation[i] = next_generation(c.generation[i]);
        c.state[i] = State::Free;
        c.free.push(index);
        self.out -= 1;
        Ok(())
    }

    /// The receiver is gone: every slot in flight at it is free again (with a new generation,
    /// so a late return from a ghost is refused). Returns how many came back.
    pub(crate) fn reclaim_in_flight(&mut self) -> usize {
        let mut n = 0;
        for c in &mut self.classes {
            for i in 0..c.state.len() {
                if c.state[i] == State::InFlight {
                    c.state[i] = State::Free;
                    c.generation[i] = next_generation(c.generation[i]);
                    c.free.push(i as u32);
                    n += 1;
                }
            }
        }
        self.out -= n as u32;
        n
    }

    /// Free and total slots per class.
    pub(crate) fn usage(&self) -> Vec<ClassUsage> {
        self.classes
            .iter()
            .map(|c| ClassUsage {
                size: c.size,
                free: c.free.len() as u32,
                total: c.state.len() as u32,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SizeClass;

    fn pool() -> Pool {
        let config = LinkConfig {
            classes: vec![SizeClass::new(64, 2), SizeClass::new(256, 1)],
            ..LinkConfig::default()
        };
        Pool::new(&config, &[4096, 8192])
    }

    #[test]
    fn smallest_fitting_class_first_then_larger() {
        let mut p = pool();
        let a = p.alloc(10).unwrap();
        assert_eq!((a.class, a.index), (0, 0));
        assert_eq!(p.place(a), (4096, 64));
        let b = p.alloc(64).unwrap();
        assert_eq!((b.class, b.index), (0, 1));
        assert_eq!(p.place(b), (4096 + 64, 64));
        // Class 0 is exhausted: the next small loan takes the larger class.
        let c = p.alloc(1).unwrap();
        assert_eq!((c.class, c.index), (1, 0));
        assert_eq!(p.alloc(1), None);
        assert_eq!(p.out(), 3);
        assert!(p.fits(256) && !p.fits(257));
        p.cancel(c);
        assert_eq!(p.alloc(200).unwrap(), c);
    }

    #[test]
    fn returns_are_checked_against_the_private_record() {
        let mut p = pool();
        let a = p.alloc(10).unwrap();
        // Not yet sent: a return is forged.
        assert_eq!(
            p.give_back(0, 0, a.generation),
            Err(ReturnError::NotInFlight { class: 0, index: 0 })
        );
        p.mark_sent(a);
        assert!(matches!(
            p.give_back(0, 0, a.generation + 1),
            Err(ReturnError::StaleGeneration { .. })
        ));
        assert_eq!(p.give_back(0, 0, a.generation), Ok(()));
        // Twice: refused, the slot is not in flight any more.
        assert!(p.give_back(0, 0, a.generation).is_err());
        assert_eq!(
            p.give_back(7, 0, 0),
            Err(ReturnError::NoSuchSlot { class: 7, index: 0 })
        );
        assert_eq!(
            p.give_back(0, 99, 0),
            Err(ReturnError::NoSuchSlot {
                class: 0,
                index: 99
            })
        );
        // Reused with a new generation.
        let again = p.alloc(10).unwrap();
        assert_eq!(again.index, 0);
        assert_eq!(again.generation, a.generation + 1);
    }

    #[test]
    fn a_dead_receiver_gives_every_slot_back() {
        let mut p = pool();
        let sent: Vec<_> = (0..3).map(|_| p.alloc(1).unwrap()).collect();
        for s in &sent {
            p.mark_sent(*s);
        }
        assert!(p.usage().iter().all(|u| u.free == 0));
        assert_eq!(p.reclaim_in_flight(), 3);
        assert_eq!(p.out(), 0);
        assert!(p.usage().iter().all(|u| u.free == u.total));
        // A ghost's late return is refused.
        assert!(p.give_back(0, sent[0].index, sent[0].generation).is_err());
    }
}
