//! The shared-tier abstraction ([`Tier`]) and two small implementations: [`DisabledTier`] (no
//! shared tier configured) and [`FaultyTier`] (wraps a tier and fails on demand, for tests).
//!
//! The trait is object safe so the gateway can hold `Arc<dyn Tier>` and pick the backend (NVMe or
//! Aerospike) from config. Futures are boxed, `Send` and `'static` (they own their inputs), so a
//! shard can `.await` them inline or spawn them (e.g. a best-effort backfill `put`).
//!
//! Enumeration ([`Tier::scan`]) is paged: each call returns at most `limit` live entries of one
//! `(set, namespace)` and a [`ScanCursor`] to resume from, so a scan over a large namespace never
//! holds more than one page in memory. [`scan_all`] loops the pages for callers that want every
//! entry at once (tests, small namespaces).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;

use crate::{CacheError, CacheState, Health, Set};

/// The future every [`Tier`] method returns.
pub type TierFuture<T> = Pin<Box<dyn Future<Output = Result<T, CacheError>> + Send + 'static>>;

/// Where a paged [`Tier::scan`] resumes. Opaque: only the tier that returned it understands it
/// (handing one tier's cursor to another tier restarts the scan from the beginning).
#[derive(Debug)]
pub struct ScanCursor(pub(crate) CursorPos);

#[derive(Debug)]
pub(crate) enum CursorPos {
    /// Ids strictly greater than this one (tiers that enumerate in id order).
    AfterId(Box<str>),
    /// The Aerospike client's partition cursor.
    #[cfg(feature = "aerospike")]
    Partitions(aerospike::PartitionFilter),
}

impl ScanCursor {
    /// A cursor resuming after `id` in id order (used by ordered tiers).
    pub(crate) fn after(id: &str) -> Self {
        ScanCursor(CursorPos::AfterId(id.into()))
    }

    /// The id this cursor resumes after, for tiers that enumerate in id order.
    pub(crate) fn after_id(cursor: Option<&ScanCursor>) -> Option<&str> {
        match cursor {
            Some(ScanCursor(CursorPos::AfterId(id))) => Some(id),
            _ => None,
        }
    }
}

/// One page of a [`Tier::scan`].
#[derive(Debug, Default)]
pub struct ScanPage {
    /// Live `(id, value)` entries. The NVMe tier returns them in ascending id order; other tiers
    /// in their own order. A page may hold fewer than `limit` entries (even none) while more
    /// follow: only `next` says whether the scan is finished.
    pub entries: Vec<(String, Bytes)>,
    /// Where the next page starts; `None` when this was the last page.
    pub next: Option<ScanCursor>,
}

/// A value read back from a tier, with whether its writer vouched for it
/// ([`Tier::put_vouched`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub value: Bytes,
    /// Stored by [`Tier::put_vouched`] into a tier that keeps the mark.
    pub vouched: bool,
}

impl Stored {
    /// A value no writer vouched for.
    pub fn plain(value: Bytes) -> Stored {
        Stored {
            value,
            vouched: false,
        }
    }
}

/// A cache tier shared by all shards of a node. Every error is soft: the caller serves from origin.
pub trait Tier: Send + Sync {
    /// The value stored under `(set, ns, id)`; `Ok(None)` on a miss.
    fn get(&self, set: Set, ns: &str, id: &str) -> TierFuture<Option<Bytes>>;

    /// Stores (or replaces) a value. Resolves once the tier accepted it (for the NVMe tier: in
    /// its write buffer, readable by later `get`s; not necessarily on disk yet).
    fn put(&self, set: Set, ns: &str, id: &str, value: Bytes) -> TierFuture<()>;

    /// Stores a value its writer vouches for: one that passed the writer's own whole-value check
    /// (or that the writer produced itself) before this call. [`Tier::get_stored`] hands the mark
    /// back with the value, so a reader that trusts that writer can skip checking it again. A
    /// tier that cannot keep the mark stores the value plainly (the default): reading it back says
    /// `vouched: false` and the reader checks it, as it would any value.
    fn put_vouched(&self, set: Set, ns: &str, id: &str, value: Bytes) -> TierFuture<()> {
        self.put(set, ns, id, value)
    }

    /// [`Tier::get`] with the writer's mark: `vouched` is true only for a value stored by
    /// [`Tier::put_vouched`] into a tier that keeps the mark (the NVMe tier, under its record's
    /// checksum). The default reports every value unvouched.
    fn get_stored(&self, set: Set, ns: &str, id: &str) -> TierFuture<Option<Stored>> {
        let got = self.get(set, ns, id);
        Box::pin(async move { got.await.map(|v| v.map(Stored::plain)) })
    }

    /// Removes one key (no error if absent).
    fn delete(&self, set: Set, ns: &str, id: &str) -> TierFuture<()>;

    /// Removes several keys of one namespace as one operation, when this tier has such an
    /// operation (`None`: it has not; [`delete_ids`] then removes them one by one). Fails if any
    /// removal failed; every key is attempted either way. Tiers reached through a channel or a
    /// network override it so a write's invalidation is one round trip, not one per id.
    fn delete_batch(&self, _set: Set, _ns: &str, _ids: &[String]) -> Option<TierFuture<()>> {
        None
    }

    /// Makes every entry of `(set, ns)` unreachable. Conservative by design: the gateway calls it
    /// on delete_by_filter / patch_by_filter instead of working out which ids changed.
    fn clear_namespace(&self, set: Set, ns: &str) -> TierFuture<()>;

    /// One page of the live `(id, value)` entries of `(set, ns)`, starting at `cursor` (`None`:
    /// the beginning), at most `limit` entries (`0` is read as 1). Deleted entries and entries
    /// written before the namespace's last [`Tier::clear_namespace`] are never returned. An
    /// entry written or deleted while a scan is in progress may or may not be seen by later
    /// pages; an entry that is live for the whole scan is returned exactly once.
    fn scan(
        &self,
        set: Set,
        ns: &str,
        cursor: Option<ScanCursor>,
        limit: usize,
    ) -> TierFuture<ScanPage>;

    /// Current health (cheap; no I/O).
    fn health(&self) -> Health;

    /// Short backend name for logs and metrics (`nvme`, `aerospike`, ...).
    fn name(&self) -> &'static str;
}

fn ready<T: Send + 'static>(r: Result<T, CacheError>) -> TierFuture<T> {
    Box::pin(std::future::ready(r))
}

/// Removes `ids` of `(set, ns)`: one [`Tier::delete_batch`] where the tier has it, else one
/// [`Tier::delete`] after another. Every id is attempted; the last failure is returned.
pub async fn delete_ids(
    tier: &dyn Tier,
    set: Set,
    ns: &str,
    ids: &[String],
) -> Result<(), CacheError> {
    if ids.is_empty() {
        return Ok(());
    }
    if let Some(batch) = tier.delete_batch(set, ns, ids) {
        return batch.await;
    }
    let mut result = Ok(());
    for id in ids {
        if let Err(e) = tier.delete(set, ns, id).await {
            result = Err(e);
        }
    }
    result
}

/// Every live `(id, value)` of `(set, ns)`, by looping [`Tier::scan`] pages of `page` entries.
/// Holds the whole namespace in memory: for tests and small namespaces; large scans should
/// consume page by page.
pub async fn scan_all(
    tier: &dyn Tier,
    set: Set,
    ns: &str,
    page: usize,
) -> Result<Vec<(String, Bytes)>, CacheError> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let p = tier.scan(set, ns, cursor, page).await?;
        out.extend(p.entries);
        match p.next {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
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
    fn delete_batch(&self, _: Set, _: &str, _: &[String]) -> Option<TierFuture<()>> {
        Some(ready(Ok(())))
    }
    fn clear_namespace(&self, _: Set, _: &str) -> TierFuture<()> {
        ready(Ok(()))
    }
    fn scan(&self, _: Set, _: &str, _: Option<ScanCursor>, _: usize) -> TierFuture<ScanPage> {
        ready(Err(CacheError::Disabled))
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
    fn put_vouched(&self, set: Set, ns: &str, id: &str, value: Bytes) -> TierFuture<()> {
        if self.should_fail() {
            return ready(Err(CacheError::Injected));
        }
        self.inner.put_vouched(set, ns, id, value)
    }
    fn get_stored(&self, set: Set, ns: &str, id: &str) -> TierFuture<Option<Stored>> {
        if self.should_fail() {
            return ready(Err(CacheError::Injected));
        }
        self.inner.get_stored(set, ns, id)
    }
    fn delete(&self, set: Set, ns: &str, id: &str) -> TierFuture<()> {
        if self.should_fail() {
            return ready(Err(CacheError::Injected));
        }
        self.inner.delete(set, ns, id)
    }
    /// The inner tier's batch while no fault is armed; otherwise one delete after another, so
    /// armed faults count (and fail) per id as before.
    fn delete_batch(&self, set: Set, ns: &str, ids: &[String]) -> Option<TierFuture<()>> {
        let k = &self.knobs;
        if k.down.load(Ordering::SeqCst) || k.fail_next.load(Ordering::SeqCst) > 0 {
            return None;
        }
        self.inner.delete_batch(set, ns, ids)
    }
    fn clear_namespace(&self, set: Set, ns: &str) -> TierFuture<()> {
        if self.should_fail() {
            return ready(Err(CacheError::Injected));
        }
        self.inner.clear_namespace(set, ns)
    }
    fn scan(
        &self,
        set: Set,
        ns: &str,
        cursor: Option<ScanCursor>,
        limit: usize,
    ) -> TierFuture<ScanPage> {
        if self.should_fail() {
            return ready(Err(CacheError::Injected));
        }
        self.inner.scan(set, ns, cursor, limit)
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

    type MapKey = (Set, String, String);

    /// A tiny in-memory tier so the wrapper (and the paging helper) can be tested without disk.
    #[derive(Default)]
    struct MapTier(parking_lot::Mutex<std::collections::BTreeMap<MapKey, Bytes>>);

    fn key(set: Set, ns: &str, id: &str) -> MapKey {
        (set, ns.to_string(), id.to_string())
    }

    impl Tier for MapTier {
        fn get(&self, set: Set, ns: &str, id: &str) -> TierFuture<Option<Bytes>> {
            ready(Ok(self.0.lock().get(&key(set, ns, id)).cloned()))
        }
        fn put(&self, set: Set, ns: &str, id: &str, value: Bytes) -> TierFuture<()> {
            self.0.lock().insert(key(set, ns, id), value);
            ready(Ok(()))
        }
        fn delete(&self, set: Set, ns: &str, id: &str) -> TierFuture<()> {
            self.0.lock().remove(&key(set, ns, id));
            ready(Ok(()))
        }
        fn clear_namespace(&self, set: Set, ns: &str) -> TierFuture<()> {
            self.0.lock().retain(|(s, n, _), _| !(*s == set && n == ns));
            ready(Ok(()))
        }
        fn scan(
            &self,
            set: Set,
            ns: &str,
            cursor: Option<ScanCursor>,
            limit: usize,
        ) -> TierFuture<ScanPage> {
            let map = self.0.lock();
            let from = ScanCursor::after_id(cursor.as_ref()).unwrap_or_default();
            let mut entries: Vec<(String, Bytes)> = map
                .range(key(set, ns, from)..)
                .take_while(|((s, n, _), _)| *s == set && n == ns)
                .filter(|((_, _, id), _)| cursor.is_none() || id.as_str() > from)
                .take(limit.max(1) + 1)
                .map(|((_, _, id), v)| (id.clone(), v.clone()))
                .collect();
            let more = entries.len() > limit.max(1);
            entries.truncate(limit.max(1));
            let next = more
                .then(|| entries.last().map(|(id, _)| ScanCursor::after(id)))
                .flatten();
            ready(Ok(ScanPage { entries, next }))
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
    fn scan_all_pages_through_one_namespace_only() {
        let tier = MapTier::default();
        for i in 0..25 {
            block_on(tier.put(Set::Documents, "ns", &format!("{i:03}"), Bytes::from("v")))
                .expect("put");
        }
        block_on(tier.put(Set::Documents, "other", "x", Bytes::from("o"))).expect("put");
        block_on(tier.put(Set::Chunks, "ns", "c", Bytes::from("c"))).expect("put");
        block_on(tier.delete(Set::Documents, "ns", "007")).expect("delete");
        for page in [1, 4, 24, 100] {
            let all = block_on(scan_all(&tier, Set::Documents, "ns", page)).expect("scan");
            let ids: Vec<String> = all.into_iter().map(|(id, _)| id).collect();
            let want: Vec<String> = (0..25)
                .filter(|i| *i != 7)
                .map(|i| format!("{i:03}"))
                .collect();
            assert_eq!(ids, want, "page {page}");
        }
        block_on(tier.clear_namespace(Set::Documents, "ns")).expect("clear");
        assert!(
            block_on(scan_all(&tier, Set::Documents, "ns", 10))
                .expect("scan")
                .is_empty()
        );
    }

    #[test]
    fn faulty_and_disabled_tiers_fail_scans() {
        let faulty = FaultyTier::new(Arc::new(MapTier::default()));
        faulty.fail_next(1);
        assert_eq!(
            block_on(scan_all(&faulty, Set::Documents, "ns", 10)).map(|v| v.len()),
            Err(CacheError::Injected)
        );
        assert_eq!(
            block_on(scan_all(&faulty, Set::Documents, "ns", 10)).map(|v| v.len()),
            Ok(0)
        );
        assert_eq!(
            block_on(scan_all(&DisabledTier, Set::Documents, "ns", 10)).map(|v| v.len()),
            Err(CacheError::Disabled)
        );
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
