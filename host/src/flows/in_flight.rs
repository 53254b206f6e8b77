//! Claims held in this process while a request runs: one create of an
//! order number at a time, one request of an `Idempotency-Key` at a time.
//!
//! They only turn a concurrent duplicate away early and with the right
//! answer; the store still decides between replicas.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{LazyLock, Mutex};

/// A set of claims by key, each with a value the next claimant may read
/// (e.g. the request hash a key is held for).
pub(crate) struct InFlight<K, V> {
    held: LazyLock<Mutex<HashMap<K, V>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> InFlight<K, V> {
    pub(crate) const fn new() -> Self {
        InFlight {
            held: LazyLock::new(Default::default),
        }
    }

    /// Takes `key` with `value`, or answers the value it is already held
    /// with. The claim is released when the guard is dropped (also when the
    /// request is cancelled).
    pub(crate) fn claim(&self, key: K, value: V) -> Result<Claim<'_, K, V>, V> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = held.get(&key) {
            return Err(v.clone());
        }
        held.insert(key.clone(), value);
        drop(held);
        // Built only once the lock is released: a dropped claim locks it.
        Ok(Claim { set: self, key })
    }
}

/// A held claim; dropping it releases it.
pub(crate) struct Claim<'a, K: Eq + Hash, V> {
    set: &'a InFlight<K, V>,
    key: K,
}

impl<K: Eq + Hash, V> Drop for Claim<'_, K, V> {
    fn drop(&mut self) {
        self.set
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_exclusive_until_dropped() {
        static SET: InFlight<&str, u8> = InFlight::new();
        let first = SET.claim("k", 1).unwrap();
        assert_eq!(SET.claim("k", 2).err(), Some(1));
        assert!(SET.claim("other", 3).is_ok());
        drop(first);
        assert!(SET.claim("k", 2).is_ok());
    }
}
