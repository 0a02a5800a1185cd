//! The node's document cache as the core holds it: the shared tier (NVMe or Aerospike), the
//! invalidation record, the miss coalescer, and each shard's hot cache (thread-local, no locks).
//! What goes in and out, and when, is decided by the document source (`sources::documents`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use layer_cache::{
    CacheError, HotCache, HotCacheConfig, Invalidations, ReadMark, SharedCoalescer, Stored, Tier,
};

/// A coalesced tier read of one document: where it started, and what it returned.
pub type TierRead = (ReadMark, Result<Option<Stored>, CacheError>);

/// The node's cache tier: shared tier, invalidation record, miss coalescer.
pub struct CacheTier {
    pub tier: Arc<dyn Tier>,
    pub invalidations: Arc<Invalidations>,
    pub hot_bytes: usize,
    /// Concurrent tier reads of one document share one read; each gets its result and where the
    /// read started ([`Invalidations::read_mark`]), to judge whether it may be served.
    pub coalescer: SharedCoalescer<(String, String), TierRead>,
    /// Ids the write path changed in the tier, for namespaces a warm is copying.
    pub touches: Arc<super::touches::Touches>,
    untrusted: Untrusted,
}

/// Namespaces whose shared-tier entries may be stale: an invalidation of theirs failed (the tier
/// was down or refused the delete), so a row a write replaced may still be there. Their tier
/// hits are not served until a namespace clear that started after the last failure succeeded.
/// The hit path reads one flag shared by all shards (never written while nothing is untrusted).
#[derive(Default)]
struct Untrusted {
    any: AtomicBool,
    /// Namespace → failures recorded (a clear must start after the last one to repair).
    by_ns: Mutex<HashMap<String, u64>>,
}

impl CacheTier {
    pub fn new(tier: Arc<dyn Tier>, hot_bytes: usize) -> Self {
        CacheTier {
            tier,
            invalidations: Arc::new(Invalidations::new()),
            hot_bytes,
            coalescer: SharedCoalescer::new(),
            touches: Arc::default(),
            untrusted: Untrusted::default(),
        }
    }

    /// Whether tier entries of `ns` may be served (no failed invalidation awaits repair).
    pub fn is_trusted(&self, ns: &str) -> bool {
        !self.untrusted.any.load(Ordering::Acquire) || !self.untrusted.by_ns.lock().contains_key(ns)
    }

    /// Records a failed invalidation of `ns`. Returns `true` when no repair was running for it
    /// (the caller starts one), and the failure count a repair must see unchanged.
    pub fn distrust(&self, ns: &str) -> (bool, u64) {
        let mut m = self.untrusted.by_ns.lock();
        let first = !m.contains_key(ns);
        let n = m.entry(ns.to_string()).or_insert(0);
        *n += 1;
        self.untrusted.any.store(true, Ordering::Release);
        (first, *n)
    }

    /// The failures recorded for `ns` so far (0 when trusted).
    pub fn failures(&self, ns: &str) -> u64 {
        self.untrusted.by_ns.lock().get(ns).copied().unwrap_or(0)
    }

    /// A namespace clear that started when `failures` were recorded succeeded: trust `ns` again,
    /// unless another invalidation failed meanwhile (then `false`: clear again).
    pub fn trust_again(&self, ns: &str, failures: u64) -> bool {
        let mut m = self.untrusted.by_ns.lock();
        if m.get(ns).is_some_and(|n| *n != failures) {
            return false;
        }
        m.remove(ns);
        if m.is_empty() {
            self.untrusted.any.store(false, Ordering::Release);
        }
        true
    }

    /// Runs `f` on this shard's hot cache (created on first use).
    pub fn with_hot<R>(&self, f: impl FnOnce(&mut HotCache) -> R) -> R {
        HOT.with(|h| {
            let mut h = h.borrow_mut();
            let hot = h.get_or_insert_with(|| {
                HotCache::new(HotCacheConfig::new(self.hot_bytes))
                    .with_invalidations(self.invalidations.clone())
            });
            f(hot)
        })
    }
}

thread_local! {
    /// This shard's hot cache, created on first use.
    static HOT: RefCell<Option<HotCache>> = const { RefCell::new(None) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repair_counts_only_if_no_failure_happened_since_it_started() {
        let c = CacheTier::new(Arc::new(layer_cache::DisabledTier), 1 << 20);
        assert!(c.is_trusted("a"));
        assert_eq!(c.distrust("a"), (true, 1));
        assert!(!c.is_trusted("a") && c.is_trusted("b"));
        let started = c.failures("a");
        assert_eq!(c.distrust("a"), (false, 2), "one repair loop per namespace");
        assert!(
            !c.trust_again("a", started),
            "a failure after the clear started"
        );
        assert!(c.trust_again("a", c.failures("a")));
        assert!(c.is_trusted("a"));
    }
}
