//! A shared cache tier reached over a link the test can cut and restore: what an outage of the
//! Aerospike tier looks like to the gateway, over a local tier (no Aerospike server in the tests).
//!
//! While [`RemoteTier::cut`], every operation fails as a lost connection would
//! (`CacheError::Unavailable`). The health is not a switch: like `AerospikeTier`, every
//! operation's outcome feeds a [`HealthCell`] (cold after [`ERROR_THRESHOLD`] consecutive
//! failures, the backends' default; warm again, with the reconnect generation bumped, at the
//! next success). So `/health` turns `cold` only once the gateway's own traffic has failed, and
//! `warm` again only once an operation of its own has gone through after [`RemoteTier::restore`].
//!
//! Puts and deletes can also be held ([`RemoteTier::hold`]): they wait, as on a slow link, until
//! [`RemoteTier::release`], so a test can order the tier's operations against the gateway's
//! answers without timing.

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
    held: Arc<Held>,
}

/// Which writes to the tier wait for [`RemoteTier::release`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    Puts,
    Deletes,
}

#[derive(Default)]
struct Held {
    puts: tokio::sync::watch::Sender<bool>,
    deletes: tokio::sync::watch::Sender<bool>,
    /// Operations waiting on a hold right now.
    waiting: AtomicU64,
}

impl RemoteTier {
    pub fn new(inner: Arc<dyn Tier>) -> Self {
        RemoteTier {
            inner,
            cut: Arc::default(),
            health: Arc::new(HealthCell::new(CacheState::Warm, ERROR_THRESHOLD)),
            failed: Arc::default(),
            held: Arc::default(),
        }
    }

    /// From now on, operations of the kind wait (without failing) until [`Self::release`].
    pub fn hold(&self, what: Hold) {
        self.sender(what).send_replace(true);
    }

    /// Held operations of the kind proceed; new ones no longer wait.
    pub fn release(&self, what: Hold) {
        self.sender(what).send_replace(false);
    }

    /// Operations waiting on a hold now.
    pub fn waiting(&self) -> u64 {
        self.held.waiting.load(Ordering::SeqCst)
    }

    fn sender(&self, what: Hold) -> &tokio::sync::watch::Sender<bool> {
        match what {
            Hold::Puts => &self.held.puts,
            Hold::Deletes => &self.held.deletes,
        }
    }

    /// `op` once a hold of `what` (if any) is released.
    fn held_call<T: Send + 'static>(
        &self,
        what: Hold,
        op: impl FnOnce() -> TierFuture<T> + Send + 'static,
    ) -> TierFuture<T> {
        let mut gate = self.sender(what).subscribe();
        if !*gate.borrow() {
            return self.call(op);
        }
        let (this, held) = (self.clone(), self.held.clone());
        held.waiting.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let _ = gate.wait_for(|h| !*h).await;
            held.waiting.fetch_sub(1, Ordering::SeqCst);
            this.call(op).await
        })
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
        let (inner, ns, id) = (self.inner.clone(), ns.to_string(), id.to_string());
        self.held_call(Hold::Puts, move || inner.put(set, &ns, &id, value))
    }
    fn delete(&self, set: Set, ns: &str, id: &str) -> TierFuture<()> {
        let (inner, ns, id) = (self.inner.clone(), ns.to_string(), id.to_string());
        self.held_call(Hold::Deletes, move || inner.delete(set, &ns, &id))
    }
    fn clear_namespace(&self, set: Set, ns: &str) -> TierFuture<()> {
        let (inner, ns) = (self.inner.clone(), ns.to_string());
        self.held_call(Hold::Deletes, move || inner.clear_namespace(set, &ns))
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
