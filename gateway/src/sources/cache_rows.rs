//! The cache source: scans over the documents the shared cache tier holds for a namespace.
//!
//! Cached values are full upstream rows (`{id, ...attributes}` including
//! `_hevlayer_upserted_at`), stored under `Set::Documents` by wire id (see the fetch feature and
//! the warm jobs of the warm feature). A cache scan pages through them with [`Tier::scan`], parses
//! each row with sonic-rs and keeps the rows its [`RowFilter`] matches: the stable-view predicate
//! `_hevlayer_upserted_at <= cache_warmed_through` (when the namespace was ever warmed) ANDed
//! before the caller's filter, so the scan is a warmed view at one cut. The evaluator supports
//! `Eq`, `NotEq`, `Gt`, `Gte`, `Lt`, `Lte`, `In`, `NotIn`, `And`, `Or`, `Not`; anything else is
//! reported so `auto` can use origin and an explicit `source: cache` can refuse.
//!
//! Staleness (documented): a write through the gateway removes the written ids from the tier, so
//! until the next warm a document changed after `cache_warmed_through` is missing from the cached
//! view rather than shown at its older version.
//!
//! A completed warm leaves a marker entry ([`WARM_MARKER_ID`]) among the namespace's cached
//! documents; it lives and dies with them (a namespace clear in the tier removes both). The Auto
//! table's "populated" means that marker is present: rows cached one at a time by fetch or by the
//! write-path mirror do not make a complete copy of the namespace, so without a completed warm the
//! cache counts as empty. After a gateway restart over a recovered tier the marker is there while
//! the in-memory `cache_warmed_through` is not: the table's "populated, no
//! `cache_warmed_through` yet" row.
//!
//! [`scan_rows`] is also the entry point for other cache-sourced passes (snapshot jobs); it never
//! yields the marker, nor the sentinel a running warm keeps next to it ([`WARM_SENTINEL_ID`]).

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use layer_cache::{CacheError, CacheState as TierState, Set, Tier};
use scatter::filter_eval::{CmpOp, FilterEvalError, RowFilter};
use sonic_rs::JsonValueTrait;

use super::auto::CacheState;

/// Rows read from the tier per page.
pub const CACHE_PAGE: usize = 1000;

/// The cache id of the completed-warm marker: it starts with a NUL byte and is longer than any
/// Turbopuffer document id (64 bytes), so no document can collide with it.
pub const WARM_MARKER_ID: &str =
    "\u{0}layer:completed-warm-marker:not-a-document-id:longer-than-any-turbopuffer-id";

/// The cache id of the sentinel a running warm keeps among the namespace's documents
/// (the warm feature): a namespace clear removes it with the documents, which is how the warm
/// learns that a clear wiped pages it already wrote. Like the marker, no document can collide.
pub const WARM_SENTINEL_ID: &str =
    "\u{0}layer:warm-in-progress-sentinel:not-a-document-id:longer-than-any-turbopuffer-id";

/// [`state`] for the node's document cache: a namespace whose tier entries await repair after a
/// failed invalidation (`CacheTier::is_trusted`) is `Unavailable`, so no cached view of it is
/// served until it is repaired and warmed again.
pub async fn state_of(cache: &crate::core::cache::CacheTier, ns: &str) -> CacheState {
    if !cache.is_trusted(ns) {
        return CacheState::Unavailable;
    }
    state(&cache.tier, ns).await
}

/// Whether the tier can serve, and whether it holds a completed warm of `ns`.
pub async fn state(tier: &Arc<dyn Tier>, ns: &str) -> CacheState {
    if tier.health().state != TierState::Warm {
        return CacheState::Unavailable;
    }
    match tier.get(Set::Documents, ns, WARM_MARKER_ID).await {
        Ok(Some(_)) => CacheState::Populated,
        Ok(None) => CacheState::Empty,
        Err(_) => CacheState::Unavailable,
    }
}

/// The evaluator of a cache scan: `_hevlayer_upserted_at <= warmed_through` (when warmed), then
/// the caller's filter.
pub fn row_filter(
    filters: Option<&serde_json::Value>,
    warmed_through: Option<u64>,
) -> Result<RowFilter, FilterEvalError> {
    let mut parts = Vec::new();
    if let Some(w) = warmed_through {
        parts.push(RowFilter::Cond {
            attr: scatter::UPSERTED_AT.to_string(),
            op: CmpOp::Lte,
            operand: sonic_rs::Value::from(w),
        });
    }
    if let Some(f) = filters {
        let v =
            sonic_rs::to_value(f).map_err(|e| FilterEvalError::Invalid(format!("filters: {e}")))?;
        parts.push(RowFilter::parse(&v)?);
    }
    Ok(RowFilter::And(parts))
}

/// A cached row the filter kept.
#[derive(Debug)]
pub struct Matched {
    /// The wire id (the cache key).
    pub id: String,
    /// The stored row bytes.
    pub raw: Bytes,
    /// The parsed row.
    pub row: sonic_rs::Value,
}

/// What a cache pass saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheScanStats {
    /// Cached documents read (before filtering).
    pub scanned: u64,
    /// Documents the filter kept.
    pub matched: u64,
    /// Cached values that were not JSON objects (skipped).
    pub unreadable: u64,
    /// The deadline passed before the last page.
    pub timed_out: bool,
    /// The callback stopped the pass.
    pub stopped: bool,
}

/// Pages through the cached documents of `ns`, handing each page's matches to `on_page` (with the
/// running stats). Stops at `deadline`, or when `on_page` breaks.
pub async fn scan_rows(
    tier: &Arc<dyn Tier>,
    ns: &str,
    filter: &RowFilter,
    deadline: Option<Instant>,
    mut on_page: impl FnMut(Vec<Matched>, &CacheScanStats) -> ControlFlow<()>,
) -> Result<CacheScanStats, CacheError> {
    let mut stats = CacheScanStats::default();
    let mut cursor = None;
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            stats.timed_out = true;
            return Ok(stats);
        }
        let page = tier.scan(Set::Documents, ns, cursor, CACHE_PAGE).await?;
        let mut matched = Vec::new();
        for (id, raw) in page.entries {
            if id == WARM_MARKER_ID || id == WARM_SENTINEL_ID {
                continue;
            }
            stats.scanned += 1;
            let Ok(row) = sonic_rs::from_slice::<sonic_rs::Value>(&raw) else {
                stats.unreadable += 1;
                continue;
            };
            if !row.is_object() {
                stats.unreadable += 1;
                continue;
            }
            if filter.matches(&row) {
                matched.push(Matched { id, raw, row });
            }
        }
        stats.matched += matched.len() as u64;
        if on_page(matched, &stats).is_break() {
            stats.stopped = page.next.is_some();
            return Ok(stats);
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => return Ok(stats),
        }
    }
}

#[cfg(test)]
mod tests {
    use layer_cache::{DisabledTier, NvmeConfig, NvmeTier};
    use serde_json::json;

    use super::*;

    fn tier() -> (tempfile_dir::Dir, Arc<dyn Tier>) {
        let dir = tempfile_dir::Dir::new();
        let mut cfg = NvmeConfig::new(dir.path(), 64 << 20);
        cfg.force_plain_io = true;
        cfg.segment_bytes = 1 << 20;
        cfg.write_buffer_bytes = 64 << 10;
        let t = NvmeTier::open(cfg).expect("nvme");
        (dir, Arc::new(t))
    }

    /// A self-cleaning temp dir (the gateway has no tempfile dev-dependency).
    mod tempfile_dir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let p = std::env::temp_dir()
                    .join(format!("layer-scan-cache-{}-{n}", std::process::id()));
                let _ = std::fs::remove_dir_all(&p);
                std::fs::create_dir_all(&p).expect("dir");
                Dir(p)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn put(t: &Arc<dyn Tier>, id: &str, row: serde_json::Value) {
        block_on(t.put(Set::Documents, "ns", id, Bytes::from(row.to_string()))).expect("put");
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt")
            .block_on(f)
    }

    #[test]
    fn state_empty_populated_and_unavailable() {
        let (_d, t) = tier();
        assert_eq!(block_on(state(&t, "ns")), CacheState::Empty);
        put(&t, "a", json!({"id": "a"}));
        assert_eq!(
            block_on(state(&t, "ns")),
            CacheState::Empty,
            "documents alone are not a completed warm"
        );
        put(&t, WARM_SENTINEL_ID, json!("warm-1#0"));
        assert_eq!(
            block_on(state(&t, "ns")),
            CacheState::Empty,
            "a running warm's sentinel is not a completed warm"
        );
        put(&t, WARM_MARKER_ID, json!({"cache_warmed_through": 5}));
        assert_eq!(block_on(state(&t, "ns")), CacheState::Populated);
        let f = row_filter(None, None).expect("filter");
        let stats = block_on(scan_rows(&t, "ns", &f, None, |page, _| {
            assert!(
                page.iter()
                    .all(|m| m.id != WARM_MARKER_ID && m.id != WARM_SENTINEL_ID)
            );
            ControlFlow::Continue(())
        }))
        .expect("scan");
        assert_eq!((stats.scanned, stats.matched), (1, 1));
        block_on(t.clear_namespace(Set::Documents, "ns")).expect("clear");
        assert_eq!(block_on(state(&t, "ns")), CacheState::Empty);
        let off: Arc<dyn Tier> = Arc::new(DisabledTier);
        assert_eq!(block_on(state(&off, "ns")), CacheState::Unavailable);
    }

    #[test]
    fn scan_applies_the_warm_cut_before_the_user_filter() {
        let (_d, t) = tier();
        for i in 0..2500u64 {
            put(
                &t,
                &format!("d{i:04}"),
                json!({"id": format!("d{i:04}"), "c": if i % 2 == 0 { "even" } else { "odd" },
                       "_hevlayer_upserted_at": 100 + i}),
            );
        }
        block_on(t.put(
            Set::Documents,
            "ns",
            "junk",
            Bytes::from_static(b"not json"),
        ))
        .expect("put");
        let f = row_filter(Some(&json!(["c", "Eq", "even"])), Some(1099)).expect("filter");
        let mut ids = Vec::new();
        let stats = block_on(scan_rows(&t, "ns", &f, None, |page, _| {
            ids.extend(page.into_iter().map(|m| m.id));
            ControlFlow::Continue(())
        }))
        .expect("scan");
        // upserted_at <= 1099 keeps i < 1000; even ones: 500.
        assert_eq!(ids.len(), 500);
        assert_eq!(stats.scanned, 2501);
        assert_eq!((stats.matched, stats.unreadable), (500, 1));
        assert!(
            ids.iter()
                .all(|id| id[1..].parse::<u64>().expect("n") % 2 == 0)
        );
        assert!(matches!(
            row_filter(Some(&json!(["c", "Glob", "e*"])), None),
            Err(FilterEvalError::Unsupported(_))
        ));
        let past = Some(Instant::now());
        let s = block_on(scan_rows(&t, "ns", &f, past, |_, _| {
            ControlFlow::Continue(())
        }))
        .expect("scan");
        assert!(s.timed_out && s.scanned == 0);
    }
}
