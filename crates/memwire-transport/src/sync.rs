//! The one door to atomics (and to the `Arc` that shares them between loom threads): `std`
//! normally, loom's under `cfg(memwire_loom)`, so the loom models check the code that ships
//! (`RUSTFLAGS="--cfg memwire_loom" cargo test -p memwire-transport --release --lib loom`).
//! Every atomic of the ring and pool algorithms is imported from here, never from
//! `std::sync::atomic` directly.

// Not every algorithm uses every item; the facade offers the full set.
#![allow(unused_imports)]

#[cfg(not(memwire_loom))]
pub(crate) use std::sync::Arc;
#[cfg(not(memwire_loom))]
pub(crate) use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering, fence};

#[cfg(memwire_loom)]
pub(crate) use loom::sync::Arc;
#[cfg(memwire_loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering, fence};
