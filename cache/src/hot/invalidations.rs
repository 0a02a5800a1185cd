//! [`Invalidations`]: one `clear_namespace` fanned out to every shard's [`super::HotCache`].
//!
//! Shards own their hot caches (`&mut self`), so another thread cannot clear them directly.
//! Instead the clearing thread records `(set, namespace) → epoch` here and bumps a global epoch;
//! each hot cache compares the epoch it last saw on every operation (one atomic load) and
//! only when it moved takes the lock to apply the new clears as generation bumps. Clears are rare
//! (delete_by_filter / patch_by_filter), so the lock is off the hit path in practice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::HashMap;
use parking_lot::Mutex;

use crate::Set;

type NsKey = (Set, Box<str>);

/// Shared record of namespace clears; hand one `Arc<Invalidations>` to every shard's hot cache.
#[derive(Debug, Default)]
pub struct Invalidations {
    epoch: AtomicU64,
    /// `(set, namespace)` → epoch of its latest clear. Bounded by the number of distinct
    /// namespaces ever cleared (Aerospike limits the product to ~4k namespaces anyway).
    cleared: Mutex<HashMap<(Set, Box<str>), u64>>,
    /// `(set, namespace)` → shared-tier invalidations (in flight, finished) ([`TierUpdate`]).
    tier: Mutex<HashMap<NsKey, (u64, u64)>>,
}

/// A shared-tier invalidation of one namespace in flight (deletes or a clear being applied to
/// the tier asynchronously). While any exists, [`Invalidations::pending`] is non-zero; dropping it
/// (after the tier operations finished) moves [`Invalidations::namespace_epoch`] once more, so a
/// task that wrote the tier meanwhile (a warm job) sees that its writes may have been undone.
/// Hot caches are not touched by it.
#[derive(Debug)]
pub struct TierUpdate {
    inv: Arc<Invalidations>,
    key: (Set, Box<str>),
}

impl Drop for TierUpdate {
    fn drop(&mut self) {
        if let Some((pending, done)) = self.inv.tier.lock().get_mut(&self.key) {
            *pending = pending.saturating_sub(1);
            *done += 1;
        }
    }
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
        let key = (set, Box::<str>::from(ns));
        let cleared = self.cleared.lock().get(&key).copied().unwrap_or(0);
        let done = self.tier.lock().get(&key).map_or(0, |t| t.1);
        cleared + done
    }

    /// Registers a shared-tier invalidation of `(set, ns)` about to run asynchronously; hold the
    /// guard until the tier operations complete.
    pub fn tier_update(self: &Arc<Self>, set: Set, ns: &str) -> TierUpdate {
        let key = (set, Box::<str>::from(ns));
        self.tier.lock().entry(key.clone()).or_insert((0, 0)).0 += 1;
        TierUpdate {
            inv: Arc::clone(self),
            key,
        }
    }

    /// Shared-tier invalidations of `(set, ns)` still in flight.
    pub fn pending(&self, set: Set, ns: &str) -> u64 {
        self.tier
            .lock()
            .get(&(set, Box::<str>::from(ns)))
            .map_or(0, |t| t.0)
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

    #[test]
    fn tier_updates_are_pending_until_dropped_and_then_bump_the_epoch() {
        let inv = Arc::new(Invalidations::new());
        let a = inv.tier_update(Set::Documents, "ns");
        let b = inv.tier_update(Set::Documents, "ns");
        assert_eq!(inv.pending(Set::Documents, "ns"), 2);
        assert_eq!(inv.pending(Set::Documents, "other"), 0);
        let before = inv.namespace_epoch(Set::Documents, "ns");
        drop(a);
        assert_eq!(inv.pending(Set::Documents, "ns"), 1);
        assert!(inv.namespace_epoch(Set::Documents, "ns") > before);
        drop(b);
        assert_eq!(inv.pending(Set::Documents, "ns"), 0);
        assert_eq!(inv.epoch(), 0, "hot caches are not cleared by tier updates");
    }
}
