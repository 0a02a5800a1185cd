//! The node's document cache as the core holds it: the shared tier (NVMe or Aerospike), the
//! invalidation record, the miss coalescer, and each shard's hot cache (thread-local, no locks).
//! What goes in and out, and when, is decided by the document source (`sources::documents`).

use std::cell::RefCell;
use std::sync::Arc;

use bytes::Bytes;
use layer_cache::{CacheError, HotCache, HotCacheConfig, Invalidations, SharedCoalescer, Tier};

/// The node's cache tier: shared tier, invalidation record, miss coalescer.
pub struct CacheTier {
    pub tier: Arc<dyn Tier>,
    pub invalidations: Arc<Invalidations>,
    pub hot_bytes: usize,
    pub coalescer: SharedCoalescer<(String, String), Result<Option<Bytes>, CacheError>>,
}

impl CacheTier {
    pub fn new(tier: Arc<dyn Tier>, hot_bytes: usize) -> Self {
        CacheTier {
            tier,
            invalidations: Arc::new(Invalidations::new()),
            hot_bytes,
            coalescer: SharedCoalescer::new(),
        }
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
