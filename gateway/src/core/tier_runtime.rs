//! A cache tier bundled with the runtime its client lives on (the Aerospike client tends its
//! cluster from tasks spawned where it connected). Every call is delegated; dropping the tier
//! shuts that runtime down in the background, which is safe from inside another runtime.

use std::sync::Arc;

use bytes::Bytes;
use layer_cache::{Health, ScanCursor, ScanPage, Set, Stored, Tier, TierFuture};

/// `inner`, kept alive together with `runtime`.
pub struct RuntimeTier {
    inner: Arc<dyn Tier>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl RuntimeTier {
    pub fn new(inner: Arc<dyn Tier>, runtime: tokio::runtime::Runtime) -> Self {
        RuntimeTier {
            inner,
            runtime: Some(runtime),
        }
    }
}

impl Drop for RuntimeTier {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Tier for RuntimeTier {
    fn get(&self, set: Set, ns: &str, id: &str) -> TierFuture<Option<Bytes>> {
        self.inner.get(set, ns, id)
    }
    fn put(&self, set: Set, ns: &str, id: &str, value: Bytes) -> TierFuture<()> {
        self.inner.put(set, ns, id, value)
    }
    fn put_vouched(&self, set: Set, ns: &str, id: &str, value: Bytes) -> TierFuture<()> {
        self.inner.put_vouched(set, ns, id, value)
    }
    fn get_stored(&self, set: Set, ns: &str, id: &str) -> TierFuture<Option<Stored>> {
        self.inner.get_stored(set, ns, id)
    }
    fn delete(&self, set: Set, ns: &str, id: &str) -> TierFuture<()> {
        self.inner.delete(set, ns, id)
    }
    fn delete_batch(&self, set: Set, ns: &str, ids: &[String]) -> Option<TierFuture<()>> {
        self.inner.delete_batch(set, ns, ids)
    }
    fn clear_namespace(&self, set: Set, ns: &str) -> TierFuture<()> {
        self.inner.clear_namespace(set, ns)
    }
    fn scan(
        &self,
        set: Set,
        ns: &str,
        cursor: Option<ScanCursor>,
        limit: usize,
    ) -> TierFuture<ScanPage> {
        self.inner.scan(set, ns, cursor, limit)
    }
    fn health(&self) -> Health {
        self.inner.health()
    }
    fn name(&self) -> &'static str {
        self.inner.name()
    }
}
