//! The one door to atomics: `std` normally, loom's under `cfg(memwire_loom)`, so the loom
//! models check the code that ships (`RUSTFLAGS="--cfg memwire_loom" cargo test -p
//! memwire-transport --lib loom`). Every atomic of the ring and pool algorithms is imported
//! from here, never from `std::sync::atomic` directly.

// Not every algorithm uses every item; the facade offers the full set.
#![allow(unused_imports)]

#[cfg(not(memwire_loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

#[cfg(memwire_loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
