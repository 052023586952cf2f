//! [`Wakers`]: the eventfds local watchers registered, by tenant, rung after every write.
//!
//! A local client maps its tenant read-only, so it cannot announce in shared memory that it is
//! going to sleep; instead it hands the server an eventfd once (the local endpoint's `wake`
//! request) and sleeps on it. The writer rings every registered eventfd of a tenant after each
//! write of that tenant (and after the tenant moves to a fresh segment, so its watchers see the
//! retired mapping and remap). Only registered sleepers cost the writer anything.
//!
//! A ring is one non-blocking `write(2)` of an eventfd ([`Doorbell::ring`]), made under the
//! store's write lock; an fd from a client was checked to be an eventfd in counter mode and set
//! `O_NONBLOCK` ([`Doorbell::from_fd`]), so a hostile client cannot make the writer block.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use memwire_shm::Doorbell;

/// Names one registration, to remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WakeId(u64);

/// The eventfds local watchers registered, by tenant: the writer rings every one of a tenant
/// after each write to it (and when the tenant moves to a fresh segment).
#[derive(Debug, Default)]
pub struct Wakers {
    /// Tenant → its registered doorbells. Changed by registrations, read by the writer.
    by_tenant: Mutex<HashMap<String, Vec<(WakeId, Doorbell)>>>,
    next: AtomicU64,
}

/// Each change is one push or one retain: the map stays whole under a panic elsewhere.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Wakers {
    /// Rings `bell` after every write of `tenant` until [`Wakers::unregister`].
    pub fn register(&self, tenant: &str, bell: Doorbell) -> WakeId {
        // Relaxed: the counter only has to hand out distinct numbers.
        let id = WakeId(self.next.fetch_add(1, Ordering::Relaxed));
        lock(&self.by_tenant)
            .entry(tenant.to_owned())
            .or_default()
            .push((id, bell));
        id
    }

    /// Stops ringing the registration `id` and closes its eventfd.
    pub fn unregister(&self, id: WakeId) {
        let mut map = lock(&self.by_tenant);
        map.retain(|_, bells| {
            bells.retain(|(i, _)| *i != id);
            !bells.is_empty()
        });
    }

    /// How many eventfds are registered for `tenant`.
    #[must_use]
    pub fn registered(&self, tenant: &str) -> usize {
        lock(&self.by_tenant).get(tenant).map_or(0, Vec::len)
    }

    /// Rings every eventfd registered for `tenant`. A ring that fails (it cannot, for a
    /// non-blocking eventfd) is logged and skipped: the other watchers still wake.
    pub(crate) fn ring(&self, tenant: &str) {
        let map = lock(&self.by_tenant);
        if let Some(bells) = map.get(tenant) {
            for (id, bell) in bells {
                if let Err(err) = bell.ring() {
                    tracing::warn!(tenant, ?id, %err, "ringing a watcher's eventfd failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_only_the_registered_bells_of_the_tenant() {
        let wakers = Wakers::default();
        let a = Doorbell::new().unwrap();
        let b = Doorbell::new().unwrap();
        let a_fd = a.into_fd();
        let a_peer = Doorbell::from_fd(a_fd.try_clone().unwrap()).unwrap();
        let b_fd = b.into_fd();
        let b_peer = Doorbell::from_fd(b_fd.try_clone().unwrap()).unwrap();
        let id = wakers.register("acme", Doorbell::from_fd(a_fd).unwrap());
        wakers.register("other", Doorbell::from_fd(b_fd).unwrap());
        wakers.ring("acme");
        assert_eq!(a_peer.try_take().unwrap(), 1);
        assert_eq!(b_peer.try_take().unwrap(), 0);
        wakers.unregister(id);
        assert_eq!(wakers.registered("acme"), 0);
        wakers.ring("acme");
        assert_eq!(a_peer.try_take().unwrap(), 0);
    }
}
