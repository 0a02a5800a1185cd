//! The shared-tier abstraction ([`Tier`]) and two small implementations: [`DisabledTier`] (no
//! shared tier configured) and [`FaultyTier`] (wraps a tier and fails on demand, for tests).
//!
//! The trait is object safe so the gateway can hold `Arc<dyn Tier>` and pick the backend (NVMe or
//! Aerospike) from config. Futures are boxed, `Send` and `'static` (they own their inputs), so a
//! shard can `.await` them inline or spawn them (e.g. a best-effort backfill `put`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;

use crate::{CacheError, CacheState, Health, Set};

/// The future every [`Tier`] method returns.
pub type TierFuture<T> = Pin<Box<dyn Future<Output = Result<T, CacheError>> + Send + 'static>>;

/// A cache tier shared by all shards of a node. Every error is soft: the caller serves from origin.
pub trait Tier: Send + Sync {
    /// The value stored under `(set, ns, id)`; `Ok(None)` on a miss.
    fn get(&self, set: Set, ns: &str, id: &str) -> TierFuture<Option<Bytes>>;

    /// Stores (or replaces) a value. Resolves once the tier accepted it (for the NVMe tier: in
    /// its write buffer, readable by later `get`s; not necessarily on disk yet).
    fn put(&self, set: Set, ns: &str, id: &str, value: Bytes) -> TierFuture<()>;

    /// Removes one key (no error if absent).
    fn delete(&self, set: Set, ns: &str, id: &str) -> TierFuture<()>;

    /// Makes every entry of `(set, ns)` unreachable. Conservative by design: the gateway calls it
    /// on delete_by_filter / patch_by_filter instead of working out which ids changed.
    fn clear_namespace(&self, set: Set, ns: &str) -> TierFuture<()>;

    /// Current health (cheap; no I/O).
    fn health(&self) -> Health;

    /// Short backend name for logs and metrics (`nvme`, `aerospike`, ...).
    fn name(&self) -> &'static str;
}

fn ready<T: Send + 'static>(r: Result<T, CacheError>) -> TierFuture<T> {
    Box::pin(std::future::ready(r))
}

/// The tier used when no shared tier is configured: misses everywhere, drops writes, reports
/// `disabled` (so warm jobs answer `cache_cold`).
#[derive(Debug, Default, Clone, Copy)]
pub struct DisabledTier;

impl Tier for DisabledTier {
    fn get(&self, _: Set, _: &str, _: &str) -> TierFuture<Option<Bytes>> {
        ready(Err(CacheError::Disabled))
    }
    fn put(&self, _: Set, _: &str, _: &str, _: Bytes) -> TierFuture<()> {
        ready(Err(CacheError::Disabled))
    }
    fn delete(&self, _: Set, _: &str, _: &str) -> TierFuture<()> {
        ready(Ok(()))
    }
    fn clear_namespace(&self, _: Set, _: &str) -> TierFuture<()> {
        ready(Ok(()))
    }
    fn health(&self) -> Health {
        Health {
            state: CacheState::Disabled,
            reconnect_generation: 0,
        }
    }
    fn name(&self) -> &'static str {
        "disabled"
    }
}

/// Wraps a tier and injects [`CacheError::Injected`] failures: the next `n` operations
/// ([`FaultyTier::fail_next`]) or all of them until switched off ([`FaultyTier::set_down`],
/// which also reports `cold`). Cloning shares the knobs, so a test can keep a handle while the
/// gateway holds the tier as `Arc<dyn Tier>`.
#[derive(Clone)]
pub struct FaultyTier {
    inner: Arc<dyn Tier>,
    knobs: Arc<Knobs>,
}

#[derive(Default)]
struct Knobs {
    fail_next: AtomicU64,
    down: AtomicBool,
    injected: AtomicU64,
    reconnects: AtomicU64,
}

impl FaultyTier {
    /// Wraps `inner`; no faults until a knob is set.
    pub fn new(inner: Arc<dyn Tier>) -> Self {
        FaultyTier {
            inner,
            knobs: Arc::default(),
        }
    }

    /// The next `n` operations fail (counted across all methods).
    pub fn fail_next(&self, n: u64) {
        self.knobs.fail_next.store(n, Ordering::SeqCst);
    }

    /// `true`: every operation fails and health is `cold`. `false`: back to normal, and the
    /// reconnect generation increases (as a real reconnect would).
    pub fn set_down(&self, down: bool) {
        let was = self.knobs.down.swap(down, Ordering::SeqCst);
        if was && !down {
            self.knobs.reconnects.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Failures injected so far.
    pub fn injected(&self) -> u64 {
        self.knobs.injected.load(Ordering::SeqCst)
    }

    fn should_fail(&self) -> bool {
        let k = &self.knobs;
        let fail = k.down.load(Ordering::SeqCst)
            || k.fail_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if fail {
            k.injected.fetch_add(1, Ordering::SeqCst);
        }
        fail
    }
}

impl Tier for FaultyTier {
    fn get(&self, set: Set, ns: &str, id: &str) -> TierFuture<Option<Bytes>> {
        if self.should_fail() {
            return ready(Err(CacheError::Injected));
        }
        self.inner.get(set, ns, id)
    }
    fn put(&self, set: Set, ns: &str, id: &str, value: Bytes) -> TierFuture<()> {
        if self.should_fail() {
            return ready(Err(CacheError::Injected));
        }
        self.inner.put(set, ns, id, value)
    }
    fn delete(&self, set: Set, ns: &str, id: &str) -> TierFuture<()> {
        if self.should_fail() {
            return ready(Err(CacheError::Injected));
        }
        self.inner.delete(set, ns, id)
    }
    fn clear_namespace(&self, set: Set, ns: &str) -> TierFuture<()> {
        if self.should_fail() {
            return ready(Err(CacheError::Injected));
        }
        self.inner.clear_namespace(set, ns)
    }
    fn health(&self) -> Health {
        let inner = self.inner.health();
        Health {
            state: if self.knobs.down.load(Ordering::SeqCst) {
                CacheState::Cold
            } else {
                inner.state
            },
            reconnect_generation: inner.reconnect_generation
                + self.knobs.reconnects.load(Ordering::SeqCst),
        }
    }
    fn name(&self) -> &'static str {
        self.inner.name()
    }
}

#[cfg(test)]
mod tests {
    use futures_executor::block_on;

    use super::*;

    /// A tiny in-memory tier so the wrapper can be tested without disk.
    #[derive(Default)]
    struct MapTier(parking_lot::Mutex<std::collections::HashMap<String, Bytes>>);

    impl Tier for MapTier {
        fn get(&self, _: Set, _: &str, id: &str) -> TierFuture<Option<Bytes>> {
            ready(Ok(self.0.lock().get(id).cloned()))
        }
        fn put(&self, _: Set, _: &str, id: &str, value: Bytes) -> TierFuture<()> {
            self.0.lock().insert(id.into(), value);
            ready(Ok(()))
        }
        fn delete(&self, _: Set, _: &str, id: &str) -> TierFuture<()> {
            self.0.lock().remove(id);
            ready(Ok(()))
        }
        fn clear_namespace(&self, _: Set, _: &str) -> TierFuture<()> {
            ready(Ok(()))
        }
        fn health(&self) -> Health {
            Health {
                state: CacheState::Warm,
                reconnect_generation: 0,
            }
        }
        fn name(&self) -> &'static str {
            "map"
        }
    }

    #[test]
    fn faulty_tier_fails_next_n_then_recovers() {
        let faulty = FaultyTier::new(Arc::new(MapTier::default()));
        let tier: Arc<dyn Tier> = Arc::new(faulty.clone());
        block_on(tier.put(Set::Documents, "ns", "a", Bytes::from_static(b"v"))).expect("put");
        faulty.fail_next(2);
        assert_eq!(
            block_on(tier.get(Set::Documents, "ns", "a")),
            Err(CacheError::Injected)
        );
        assert!(block_on(tier.delete(Set::Documents, "ns", "zz")).is_err());
        assert_eq!(
            block_on(tier.get(Set::Documents, "ns", "a")),
            Ok(Some(Bytes::from_static(b"v")))
        );
        assert_eq!(faulty.injected(), 2);
    }

    #[test]
    fn faulty_tier_down_reports_cold_and_reconnect_generation() {
        let faulty = FaultyTier::new(Arc::new(MapTier::default()));
        faulty.set_down(true);
        assert_eq!(faulty.health().state, CacheState::Cold);
        assert!(block_on(faulty.get(Set::Chunks, "n", "i")).is_err());
        faulty.set_down(false);
        assert_eq!(
            faulty.health(),
            Health {
                state: CacheState::Warm,
                reconnect_generation: 1
            }
        );
    }

    #[test]
    fn disabled_tier_reports_disabled() {
        let t = DisabledTier;
        assert_eq!(t.health().state, CacheState::Disabled);
        assert_eq!(
            block_on(t.get(Set::Documents, "a", "b")),
            Err(CacheError::Disabled)
        );
    }
}
