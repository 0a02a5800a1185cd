//! [`Invalidations`]: one `clear_namespace` fanned out to every shard's [`super::HotCache`].
//!
//! Shards own their hot caches (`&mut self`), so another thread cannot clear them directly.
//! Instead the clearing thread records `(set, namespace) → epoch` here and bumps a global epoch;
//! each hot cache compares the epoch it last saw on every operation (one atomic load) and
//! only when it moved takes the lock to apply the new clears as generation bumps. Clears are rare
//! (delete_by_filter / patch_by_filter), so the lock is off the hit path in practice.
//!
//! It also records what is changing in the shared tier: invalidations being applied
//! ([`TierUpdate`]) and copies of origin rows being written ([`TierWrite`]). A tier read brackets
//! itself with [`Invalidations::read_mark`] and [`Invalidations::settled_since`]: a value read
//! while either was in flight for its namespace may be older than a write already acknowledged,
//! and is not served. While nothing is in flight anywhere both are two atomic loads.

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
    /// `(set, namespace)` → shared-tier changes in flight and finished.
    tier: Mutex<HashMap<NsKey, TierChanges>>,
    /// [`TierUpdate`]s and [`TierWrite`]s in flight, all namespaces: zero on the fast path.
    busy: AtomicU64,
    /// Moves when a tier change starts or ends and on every clear: a read that sees it unchanged
    /// (and nothing busy) overlapped no change.
    seq: AtomicU64,
}

/// One namespace's shared-tier changes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct TierChanges {
    updates_pending: u64,
    updates_done: u64,
    writes_pending: u64,
    writes_done: u64,
}

/// Where a shared-tier read started, for [`Invalidations::settled_since`]. Taken before the read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMark {
    /// Nothing was changing in the tier anywhere: the global sequence then.
    Quiet(u64),
    /// Something was changing elsewhere; this namespace's clear epoch and finished changes.
    Namespace { cleared: u64, changes: (u64, u64) },
    /// A change of this namespace was in flight: whatever the read returns may be stale.
    Unsettled,
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
        self.inv.finish(&self.key, |c| {
            c.updates_pending = c.updates_pending.saturating_sub(1);
            c.updates_done += 1;
        });
    }
}

/// A copy of origin rows being written to the shared tier (a fetch's backfill, the write-path
/// mirror, a warm page), held until the copy is written and checked against racing writes (and
/// withdrawn if one raced it). While any exists for a namespace, tier reads of it are not served
/// (the copy may predate a write whose invalidation already landed). Unlike a [`TierUpdate`] it
/// does not move [`Invalidations::namespace_epoch`]: a warm's own writes do not look like a race.
#[derive(Debug)]
pub struct TierWrite {
    inv: Arc<Invalidations>,
    key: (Set, Box<str>),
}

impl Drop for TierWrite {
    fn drop(&mut self) {
        self.inv.finish(&self.key, |c| {
            c.writes_pending = c.writes_pending.saturating_sub(1);
            c.writes_done += 1;
        });
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
        self.seq.fetch_add(1, Ordering::SeqCst);
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
        let done = self.tier.lock().get(&key).map_or(0, |t| t.updates_done);
        cleared + done
    }

    /// Registers a shared-tier invalidation of `(set, ns)` about to run asynchronously; hold the
    /// guard until the tier operations complete.
    pub fn tier_update(self: &Arc<Self>, set: Set, ns: &str) -> TierUpdate {
        let key = self.start(set, ns, |c| c.updates_pending += 1);
        TierUpdate {
            inv: Arc::clone(self),
            key,
        }
    }

    /// Registers a copy of origin rows about to be written to the shared tier for `(set, ns)`;
    /// hold the guard until the rows are written and, if a write raced the read they came from,
    /// withdrawn.
    pub fn tier_write(self: &Arc<Self>, set: Set, ns: &str) -> TierWrite {
        let key = self.start(set, ns, |c| c.writes_pending += 1);
        TierWrite {
            inv: Arc::clone(self),
            key,
        }
    }

    /// Shared-tier invalidations of `(set, ns)` still in flight.
    pub fn pending(&self, set: Set, ns: &str) -> u64 {
        self.tier
            .lock()
            .get(&(set, Box::<str>::from(ns)))
            .map_or(0, |t| t.updates_pending)
    }

    /// Taken before a shared-tier read of `(set, ns)`; pass it to [`Self::settled_since`] after.
    /// Two atomic loads while no tier change is in flight anywhere; a lock otherwise.
    pub fn read_mark(&self, set: Set, ns: &str) -> ReadMark {
        let seq = self.seq.load(Ordering::SeqCst);
        if self.busy.load(Ordering::SeqCst) == 0 {
            return ReadMark::Quiet(seq);
        }
        self.namespace_mark(set, ns)
    }

    /// Whether a value read from the shared tier since `mark` can be served: no change of
    /// `(set, ns)` was in flight when the read started, none started or finished since, and
    /// the namespace was not cleared meanwhile. Conservative on the fast path: a change of any
    /// namespace during the read counts.
    pub fn settled_since(&self, mark: ReadMark, set: Set, ns: &str) -> bool {
        match mark {
            ReadMark::Quiet(seq) => {
                self.busy.load(Ordering::SeqCst) == 0 && self.seq.load(Ordering::SeqCst) == seq
            }
            ReadMark::Unsettled => false,
            before @ ReadMark::Namespace { .. } => self.namespace_mark(set, ns) == before,
        }
    }

    fn namespace_mark(&self, set: Set, ns: &str) -> ReadMark {
        let key = (set, Box::<str>::from(ns));
        let changes = self.tier.lock().get(&key).copied().unwrap_or_default();
        if changes.updates_pending > 0 || changes.writes_pending > 0 {
            return ReadMark::Unsettled;
        }
        let cleared = self.cleared.lock().get(&key).copied().unwrap_or(0);
        ReadMark::Namespace {
            cleared,
            changes: (changes.updates_done, changes.writes_done),
        }
    }

    /// Counts a tier change in: busy first, then the sequence (a reader that saw the old
    /// sequence and nothing busy sees the new sequence afterwards).
    fn start(&self, set: Set, ns: &str, count: impl FnOnce(&mut TierChanges)) -> NsKey {
        let key = (set, Box::<str>::from(ns));
        count(self.tier.lock().entry(key.clone()).or_default());
        self.busy.fetch_add(1, Ordering::SeqCst);
        self.seq.fetch_add(1, Ordering::SeqCst);
        key
    }

    /// Counts a tier change out: the sequence first, then busy.
    fn finish(&self, key: &NsKey, count: impl FnOnce(&mut TierChanges)) {
        if let Some(c) = self.tier.lock().get_mut(key) {
            count(c);
        }
        self.seq.fetch_add(1, Ordering::SeqCst);
        self.busy.fetch_sub(1, Ordering::SeqCst);
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

    #[test]
    fn a_tier_read_is_settled_only_when_nothing_of_its_namespace_changed_during_it() {
        let inv = Arc::new(Invalidations::new());
        let (d, ns) = (Set::Documents, "ns");
        // Quiet everywhere: the fast path.
        let mark = inv.read_mark(d, ns);
        assert!(matches!(mark, ReadMark::Quiet(_)));
        assert!(inv.settled_since(mark, d, ns));
        // An invalidation that starts during the read, or starts and finishes during it.
        let g = inv.tier_update(d, ns);
        assert!(!inv.settled_since(mark, d, ns));
        drop(g);
        assert!(!inv.settled_since(mark, d, ns));
        // A copy being written when the read starts: unsettled until it is done, and a read
        // that overlapped its end is not settled either.
        let w = inv.tier_write(d, ns);
        assert_eq!(inv.read_mark(d, ns), ReadMark::Unsettled);
        let other = inv.read_mark(d, "other");
        assert!(matches!(other, ReadMark::Namespace { .. }));
        drop(w);
        assert!(
            inv.settled_since(other, d, "other"),
            "another namespace's change"
        );
        // Busy elsewhere: this namespace is judged by its own changes.
        let elsewhere = inv.tier_update(d, "other");
        let mark = inv.read_mark(d, ns);
        assert!(matches!(mark, ReadMark::Namespace { .. }));
        assert!(inv.settled_since(mark, d, ns));
        let w = inv.tier_write(d, ns);
        drop(w);
        assert!(
            !inv.settled_since(mark, d, ns),
            "a copy written during the read"
        );
        let mark = inv.read_mark(d, ns);
        inv.clear_namespace(d, ns);
        assert!(!inv.settled_since(mark, d, ns), "a clear during the read");
        drop(elsewhere);
        // Copies do not move the namespace epoch (a warm's own writes are not a race).
        let before = inv.namespace_epoch(d, ns);
        drop(inv.tier_write(d, ns));
        assert_eq!(inv.namespace_epoch(d, ns), before);
        assert_eq!(inv.pending(d, ns), 0);
        assert!(inv.settled_since(inv.read_mark(d, ns), d, ns));
    }
}
