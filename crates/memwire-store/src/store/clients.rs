//! Connected clients per tenant, for `memwire ls`: every endpoint's connection (local socket,
//! WebSocket) holds a [`Presence`], enters the tenants it uses, and leaves them all when it
//! closes. Counted in memory only; a restart starts from zero, as its clients reconnect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Connected clients, per tenant.
#[derive(Debug, Default)]
pub(crate) struct Clients {
    /// Tenant → connections present in it; a tenant with none has no entry.
    counts: Mutex<HashMap<String, u32>>,
}

/// The counts stay whole under a panic elsewhere: each change is one add or subtract.
fn lock(clients: &Clients) -> MutexGuard<'_, HashMap<String, u32>> {
    clients
        .counts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

impl Clients {
    /// The connections present in `tenant`.
    pub(crate) fn count(&self, tenant: &str) -> u32 {
        lock(self).get(tenant).copied().unwrap_or(0)
    }
}

/// One connection's place in the store's client counts: counted once in each tenant it
/// [entered](Presence::enter), in none once dropped. From
/// [`Store::presence`](super::Store::presence).
#[derive(Debug)]
pub struct Presence {
    clients: Arc<Clients>,
    /// The tenants this connection is counted in, each once.
    tenants: Vec<String>,
}

impl Presence {
    pub(crate) fn new(clients: Arc<Clients>) -> Self {
        Self {
            clients,
            tenants: Vec::new(),
        }
    }

    /// Counts the connection in `tenant`, unless it is already.
    pub fn enter(&mut self, tenant: &str) {
        if self.tenants.iter().any(|t| t == tenant) {
            return;
        }
        *lock(&self.clients).entry(tenant.to_owned()).or_default() += 1;
        self.tenants.push(tenant.to_owned());
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        let mut counts = lock(&self.clients);
        for tenant in self.tenants.drain(..) {
            if let Some(n) = counts.get_mut(&tenant) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.remove(&tenant);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_counts_once_per_tenant_until_dropped() {
        let clients = Arc::new(Clients::default());
        let mut one = Presence::new(Arc::clone(&clients));
        let mut two = Presence::new(Arc::clone(&clients));
        one.enter("a");
        one.enter("a");
        one.enter("b");
        two.enter("a");
        assert_eq!((clients.count("a"), clients.count("b")), (2, 1));
        drop(one);
        assert_eq!((clients.count("a"), clients.count("b")), (1, 0));
        drop(two);
        assert!(lock(&clients).is_empty());
    }
}
