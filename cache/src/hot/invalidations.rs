//! [`Invalidations`]: one `clear_namespace` fanned out to every shard's [`super::HotCache`].
//!
//! Shards own their hot caches (`&mut self`), so another thread cannot clear them directly.
//! Instead the clearing thread records `(set, namespace) → epoch` here and bumps a global epoch;
//! each hot cache compares the epoch it last saw on every operation (one atomic load) and
//! only when it moved takes the lock to apply the new clears as generation bumps. Clears are rare
//! (delete_by_filter / patch_by_filter), so the lock is off the hit path in practice.

use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::HashMap;
use parking_lot::Mutex;

use crate::Set;

/// Shared record of namespace clears; hand one `Arc<Invalidations>` to every shard's hot cache.
#[derive(Debug, Default)]
pub struct Invalidations {
    epoch: AtomicU64,
    /// `(set, namespace)` → epoch of its latest clear. Bounded by the number of distinct
    /// namespaces ever cleared (Aerospike limits the product to ~4k namespaces anyway).
    cleared: Mutex<HashMap<(Set, Box<str>), u64>>,
}

impl Invalidations {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every entry of `(set, ns)` currently in any attached hot cache unreachable.
    pub fn clear_namespace(&self, set: Set, ns: &str) {
        let mut map = self.cleared.lock();
        // Bump under the lock so a reader that sees epoch E also sees every clear up to E.
        let e = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        map.insert((set, Box::from(ns)), e);
    }

    /// Current epoch (number of clears so far).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The epoch of the latest clear of `(set, ns)` (0 if it was never cleared). A task that
    /// reads from origin and then writes the shared tier (a warm job) compares it before and
    /// after, to learn whether a write to the namespace raced its read.
    pub fn namespace_epoch(&self, set: Set, ns: &str) -> u64 {
        self.cleared
            .lock()
            .get(&(set, Box::<str>::from(ns)))
            .copied()
            .unwrap_or(0)
    }

    /// Calls `apply` for every clear newer than `seen`, returns the epoch now applied.
    pub(crate) fn apply_since(&self, seen: u64, mut apply: impl FnMut(Set, &str)) -> u64 {
        let map = self.cleared.lock();
        for ((set, ns), e) in map.iter() {
            if *e > seen {
                apply(*set, ns);
            }
        }
        self.epoch.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_epoch_moves_only_for_that_namespace() {
        let inv = Invalidations::new();
        assert_eq!(inv.namespace_epoch(Set::Documents, "a"), 0);
        inv.clear_namespace(Set::Documents, "a");
        let a1 = inv.namespace_epoch(Set::Documents, "a");
        assert!(a1 > 0);
        inv.clear_namespace(Set::Documents, "b");
        inv.clear_namespace(Set::Chunks, "a");
        assert_eq!(inv.namespace_epoch(Set::Documents, "a"), a1);
        inv.clear_namespace(Set::Documents, "a");
        assert!(inv.namespace_epoch(Set::Documents, "a") > a1);
        assert_eq!(inv.epoch(), 4);
    }
}
