//! A shared cache tier reached over a link the test can cut and restore: what an outage of the
//! Aerospike tier looks like to the gateway, over a local tier (no Aerospike server in the tests).
//!
//! While [`RemoteTier::cut`], every operation fails as a lost connection would
//! (`CacheError::Unavailable`). The health is not a switch: like `AerospikeTier`, every
//! operation's outcome feeds a [`HealthCell`] (cold after [`ERROR_THRESHOLD`] consecutive
//! failures, the backends' default; warm again, with the reconnect generation bumped, at the
//! next success). So `/health` turns `cold` only once the gateway's own traffic has failed, and
//! `warm` again only once an operation of its own has gone through after [`RemoteTier::restore`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use layer_cache::{
    CacheError, CacheState, Health, HealthCell, ScanCursor, ScanPage, Set, Tier, TierFuture,
};

/// Consecutive failures before the tier reports `cold` (`AerospikeConfig` / `NvmeConfig`
/// default).
pub const ERROR_THRESHOLD: u32 = 8;

/// `inner` behind a link that can be cut. Cloning shares the link.
#[derive(Clone)]
pub struct RemoteTier {
    inner: Arc<dyn Tier>,
    cut: Arc<AtomicBool>,
    health: Arc<HealthCell>,
    failed: Arc<AtomicU64>,
}

impl RemoteTier {
    pub fn new(inner: Arc<dyn Tier>) -> Self {
        RemoteTier {
            inner,
            cut: Arc::default(),
            health: Arc::new(HealthCell::new(CacheState::Warm, ERROR_THRESHOLD)),
            failed: Arc::default(),
        }
    }

    /// Every operation from now on fails.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    /// Operations reach the tier again (its health recovers at the next success).
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    /// Operations that failed on the cut link so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    fn call<T: Send + 'static>(&self, op: impl FnOnce() -> TierFuture<T>) -> TierFuture<T> {
        let health = self.health.clone();
        if self.cut.load(Ordering::SeqCst) {
            self.failed.fetch_add(1, Ordering::SeqCst);
            health.record_err();
            return Box::pin(std::future::ready(Err(CacheError::Unavailable(
                "connection refused (the test cut the link)".into(),
            ))));
        }
        let fut = op();
        Box::pin(async move {
            let r = fut.await;
            match &r {
                Ok(_) => health.record_ok(),
                Err(e) if e.is_tier_failure() => health.record_err(),
                Err(_) => {}
            }
            r
        })
    }
}

impl Tier for RemoteTier {
    fn get(&self, set: Set, ns: &str, id: &str) -> TierFuture<Option<Bytes>> {
        self.call(|| self.inner.get(set, ns, id))
    }
    fn put(&self, set: Set, ns: &str, id: &str, value: Bytes) -> TierFuture<()> {
        self.call(|| self.inner.put(set, ns, id, value))
    }
    fn delete(&self, set: Set, ns: &str, id: &str) -> TierFuture<()> {
        self.call(|| self.inner.delete(set, ns, id))
    }
    fn clear_namespace(&self, set: Set, ns: &str) -> TierFuture<()> {
        self.call(|| self.inner.clear_namespace(set, ns))
    }
    fn scan(
        &self,
        set: Set,
        ns: &str,
        cursor: Option<ScanCursor>,
        limit: usize,
    ) -> TierFuture<ScanPage> {
        self.call(|| self.inner.scan(set, ns, cursor, limit))
    }
    fn health(&self) -> Health {
        let own = self.health.snapshot();
        let inner = self.inner.health();
        Health {
            state: if own.state == CacheState::Warm {
                inner.state
            } else {
                own.state
            },
            reconnect_generation: own.reconnect_generation + inner.reconnect_generation,
        }
    }
    fn name(&self) -> &'static str {
        "remote"
    }
}
