//! One warm, page by page: the passes that survive namespace clears (the sentinel), the pages
//! that survive racing writes (epoch checks, re-reads), and the bound on tier operations in
//! flight. The module docs of the warm feature describe the protocol.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use layer_cache::{Set, Tier};
use scatter::Validated;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::Job;
use super::{CLEAR_RESTARTS, RACE_RETRIES, SETTLE_WAIT, TIER_IN_FLIGHT, Warm};
use crate::core::error::GatewayError;
use crate::core::http::now_ms;
use crate::core::upstream::Upstream;
use crate::sources::cache_rows::{WARM_MARKER_ID, WARM_SENTINEL_ID};
use crate::sources::documents::{put_row, row_text, wire_id};
use crate::sources::origin::{self, MAX_PAGE, OriginScan};

/// Runs warm passes until one completes without a namespace clear wiping what it wrote (see the
/// module docs); returns the cut the cache is warmed through.
pub(super) async fn passes(
    warm: &Warm,
    upstream: &Upstream,
    ns: &str,
    page_size: usize,
    job: &Job,
) -> Result<u64, GatewayError> {
    let tier = &warm.core.cache.tier;
    // Every page of every pass asks which of its ids racing writes touched.
    let _touches = warm.core.cache.touches.watch(ns);
    for pass in 0..=CLEAR_RESTARTS {
        if pass > 0 {
            crate::core::metrics::feature_event(
                "layer_warm_events_total",
                "event",
                "job_restarted",
                1,
            );
            job.restart_counters();
            job.update(|o| o.restarts = Some(pass));
        }
        let watch = Watch {
            epoch: warm
                .core
                .cache
                .invalidations
                .namespace_epoch(Set::Documents, ns),
            token: format!("{}#{pass}", job.id),
        };
        tier_put(tier, ns, WARM_SENTINEL_ID, Bytes::from(watch.token.clone())).await?;
        let Pass::Done(cut) = run(warm, upstream, ns, page_size, job, &watch).await? else {
            continue;
        };
        if job.is_cancelled() {
            return Ok(cut);
        }
        let marker = Bytes::from(json!({"cache_warmed_through": cut}).to_string());
        tier_put(tier, ns, WARM_MARKER_ID, marker).await?;
        if cleared_since(warm, ns, &watch).await? {
            // Pages written before the clear are gone: the marker must not claim a full copy.
            tier_delete(tier, ns, WARM_MARKER_ID).await?;
            continue;
        }
        // Best effort: a leftover sentinel is invisible to scans and overwritten by the next warm.
        let _ = tier.delete(Set::Documents, ns, WARM_SENTINEL_ID).await;
        return Ok(cut);
    }
    Err(GatewayError::PreconditionFailed(format!(
        "the cache of {ns:?} was cleared (delete_by_filter, patch_by_filter) during each of {} \
         warm passes; warm again once those writes stop",
        CLEAR_RESTARTS + 1
    )))
}

/// What a pass watches for namespace clears: the namespace epoch when it started, and the value
/// of the sentinel it put.
struct Watch {
    epoch: u64,
    token: String,
}

/// How a pass ended.
enum Pass {
    /// Every page was read and written (or the job was cancelled): the cut.
    Done(u64),
    /// A namespace clear removed the sentinel: pages already written may be gone.
    Cleared,
}

/// Whether a namespace clear landed since `watch` was taken (the sentinel is gone). Cheap when no
/// write touched the namespace; otherwise waits for in-flight invalidations first.
async fn cleared_since(warm: &Warm, ns: &str, watch: &Watch) -> Result<bool, GatewayError> {
    let inv = &warm.core.cache.invalidations;
    if inv.namespace_epoch(Set::Documents, ns) == watch.epoch
        && inv.pending(Set::Documents, ns) == 0
    {
        return Ok(false);
    }
    settle(warm, ns).await;
    sentinel_gone(warm, ns, watch).await
}

async fn sentinel_gone(warm: &Warm, ns: &str, watch: &Watch) -> Result<bool, GatewayError> {
    match warm
        .core
        .cache
        .tier
        .get(Set::Documents, ns, WARM_SENTINEL_ID)
        .await
    {
        Ok(v) => Ok(v.as_deref() != Some(watch.token.as_bytes())),
        Err(e) => Err(GatewayError::CacheCold(format!("cache read failed: {e}"))),
    }
}

async fn tier_put(
    tier: &Arc<dyn Tier>,
    ns: &str,
    id: &str,
    value: Bytes,
) -> Result<(), GatewayError> {
    tier.put(Set::Documents, ns, id, value)
        .await
        .map_err(|e| GatewayError::CacheCold(format!("cache write failed: {e}")))
}

async fn tier_delete(tier: &Arc<dyn Tier>, ns: &str, id: &str) -> Result<(), GatewayError> {
    tier.delete(Set::Documents, ns, id)
        .await
        .map_err(|e| GatewayError::CacheCold(format!("cache delete failed: {e}")))
}

/// One warm pass; returns the cut it warmed through, or that a namespace clear cut it short.
async fn run(
    warm: &Warm,
    upstream: &Upstream,
    ns: &str,
    page_size: usize,
    job: &Job,
    watch: &Watch,
) -> Result<Pass, GatewayError> {
    let started = now_ms();
    let watermark = warm.core.watcher.snapshot(ns).1;
    let cut = watermark.unwrap_or(started);
    let total = origin::approx_rows(upstream, ns).await;
    let shards = warm.core.shards_of(ns);
    let threads = origin::threads_for(&warm.core, ns, None).max(1) as usize;
    let spec = OriginScan {
        namespace: ns.to_string(),
        filters: watermark.map(|w| json!([scatter::UPSERTED_AT, "Lte", w])),
        include_attributes: json!(true),
        page_size: page_size.clamp(1, MAX_PAGE),
        threads,
        shards,
        // Strong reads; the cut is in `filters` (see the module docs on racing writes).
        watermark: None,
    };
    // One bound on tier operations for every page of this pass.
    let gate = Semaphore::new(TIER_IN_FLIGHT);
    let mut checked_epoch = watch.epoch;
    let mut queue: Vec<(u32, Option<Value>)> = (0..shards).rev().map(|s| (s, None)).collect();
    let mut in_flight = FuturesUnordered::new();
    loop {
        while in_flight.len() < threads {
            let Some((shard, after)) = queue.pop() else {
                break;
            };
            let (spec, gate) = (&spec, &gate);
            in_flight.push(async move {
                let r = warm_page(warm, upstream, gate, spec, shards, shard, after.as_ref()).await;
                (shard, r)
            });
        }
        let Some((shard, result)) = in_flight.next().await else {
            break;
        };
        let (read, last) = result?;
        job.add_scanned(read as u64);
        if let Some(t) = total.filter(|t| *t > 0) {
            job.set_progress((job.documents_scanned() as f64 / t as f64).min(0.99));
        }
        if job.is_cancelled() {
            return Ok(Pass::Done(cut));
        }
        // A write touched the namespace since the last look: was it a clear?
        let epoch = warm
            .core
            .cache
            .invalidations
            .namespace_epoch(Set::Documents, ns);
        if epoch != checked_epoch {
            checked_epoch = epoch;
            if sentinel_gone(warm, ns, watch).await? {
                return Ok(Pass::Cleared);
            }
        }
        if read >= spec.page_size
            && let Some(last) = last
        {
            queue.push((shard, Some(last)));
        }
    }
    Ok(Pass::Done(cut))
}

/// Reads one page and writes it to the tier; returns (rows read, last id).
///
/// The write path records the ids whose tier entries it changed once those changes landed
/// ([`crate::core::touches`], watched for the whole warm by [`passes`]). Ids of this page touched
/// after the page's read began may now hold an older row than origin's (the write's removal
/// landed before this page's put) or nothing (it landed after): once the namespace's in-flight
/// invalidations settle, those ids (only those) are read again as they are now and re-put, or
/// removed when the write deleted them, up to [`RACE_RETRIES`] times; ids still racing after
/// that are removed, so fetch falls through to origin for them. The rest of the page stays.
async fn warm_page(
    warm: &Warm,
    upstream: &Upstream,
    gate: &Semaphore,
    spec: &OriginScan,
    shards: u32,
    shard: u32,
    after: Option<&Value>,
) -> Result<(usize, Option<Value>), GatewayError> {
    let ns = spec.namespace.as_str();
    let touches = &warm.core.cache.touches;
    // Invalidations still in flight land after this and are recorded after it too.
    let mut since = touches.seq(ns);
    let body = origin::page_body(spec, shards, shard, after, spec.page_size);
    let rows = rows_of(origin::query(upstream, "warm_page", ns, &body).await?);
    let read = rows.len();
    let last = rows.last().and_then(|r| r.get("id")).cloned();
    let mut racing: Vec<(String, Value)> = rows
        .iter()
        .filter_map(|r| {
            let id = r.get("id")?;
            Some((wire_id(id)?, id.clone()))
        })
        .collect();
    let tier = &warm.core.cache.tier;
    // Until the page is written and its raced ids repaired, fetches do not serve this
    // namespace's tier values (a row of this page may predate a write already answered).
    let _copy = warm.core.cache.invalidations.tier_write(Set::Documents, ns);
    put_rows(tier, gate, ns, rows).await?;
    for attempt in 0..=RACE_RETRIES {
        racing = still_racing(touches, ns, since, racing);
        if racing.is_empty() {
            return Ok((read, last));
        }
        if attempt == RACE_RETRIES {
            break;
        }
        // A write raced these ids: once its tier invalidations have landed, read them again (as
        // they are now, past the cut) and write what the write left; ids it deleted are removed.
        settle(warm, ns).await;
        since = touches.seq(ns);
        let values: Vec<Value> = racing.iter().map(|(_, v)| v.clone()).collect();
        let again = reread(upstream, spec, &values).await?;
        let present: std::collections::HashSet<String> = again
            .iter()
            .filter_map(|r| r.get("id").and_then(wire_id))
            .collect();
        let gone: Vec<String> = racing
            .iter()
            .filter(|(id, _)| !present.contains(id))
            .map(|(id, _)| id.clone())
            .collect();
        put_rows(tier, gate, ns, again).await?;
        remove(tier, gate, ns, &gone).await?;
    }
    let all: Vec<String> = racing.into_iter().map(|(id, _)| id).collect();
    remove(tier, gate, ns, &all).await?;
    Ok((read, last))
}

/// The ids of `ids` a write touched after `since`.
fn still_racing(
    touches: &crate::core::touches::Touches,
    ns: &str,
    since: u64,
    ids: Vec<(String, Value)>,
) -> Vec<(String, Value)> {
    let keys: Vec<String> = ids.iter().map(|(id, _)| id.clone()).collect();
    let touched: std::collections::HashSet<&String> = touches
        .touched_since(ns, since, &keys)
        .into_iter()
        .collect();
    ids.into_iter()
        .filter(|(id, _)| touched.contains(id))
        .collect()
}

/// Waits (bounded by [`SETTLE_WAIT`]) until no shared-tier invalidation of `ns` is in flight.
async fn settle(warm: &Warm, ns: &str) {
    let deadline = tokio::time::Instant::now() + SETTLE_WAIT;
    while warm.core.cache.invalidations.pending(Set::Documents, ns) > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

fn rows_of(mut answer: Value) -> Vec<Value> {
    match answer.get_mut("rows").map(Value::take) {
        Some(Value::Array(rows)) => rows,
        _ => Vec::new(),
    }
}

/// Strong re-read of `ids` as they are now, without the warm's cut: the rows a racing write
/// left (newer than the cut), so the cache holds them rather than the ones the write replaced
/// (cache-sourced scans still filter at `cache_warmed_through`, so they do not see them).
async fn reread(
    upstream: &Upstream,
    spec: &OriginScan,
    ids: &[Value],
) -> Result<Vec<Value>, GatewayError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let body = json!({
        "filters": ["id", "In", ids],
        "rank_by": ["id", "asc"],
        "top_k": ids.len().clamp(1, MAX_PAGE),
        "include_attributes": true,
        "consistency": {"level": "strong"},
    });
    Ok(rows_of(
        origin::query(upstream, "warm_reread", &spec.namespace, &body).await?,
    ))
}

/// Writes rows to the tier, at most [`TIER_IN_FLIGHT`] at once per page and, through `gate`,
/// per warm: the tier's request queue fails fast when full, and shards share it.
async fn put_rows(
    tier: &Arc<dyn Tier>,
    gate: &Semaphore,
    ns: &str,
    rows: Vec<Value>,
) -> Result<(), GatewayError> {
    let entries: Vec<(String, Validated<Bytes>)> = rows
        .into_iter()
        .filter_map(|mut row| {
            let obj = row.as_object_mut()?;
            obj.remove("$dist");
            let id = wire_id(obj.get("id")?)?;
            Some((id, row_text(&row)?))
        })
        .collect();
    let mut entries = entries.into_iter();
    let mut puts = FuturesUnordered::new();
    loop {
        while puts.len() < TIER_IN_FLIGHT {
            let Some((id, text)) = entries.next() else {
                break;
            };
            puts.push(gated(gate, move || put_row(&**tier, ns, &id, text)));
        }
        let Some(r) = puts.next().await else {
            return Ok(());
        };
        match r? {
            Ok(()) => {}
            // A row the tier cannot hold stays uncached (fetch serves it from origin).
            Err(e) if !e.is_tier_failure() => {
                crate::core::metrics::feature_event(
                    "layer_warm_events_total",
                    "event",
                    "row_skipped",
                    1,
                );
            }
            Err(e) => {
                return Err(GatewayError::CacheCold(format!("cache write failed: {e}")));
            }
        }
    }
}

/// Removes ids from the tier under the same bound as [`put_rows`].
async fn remove(
    tier: &Arc<dyn Tier>,
    gate: &Semaphore,
    ns: &str,
    ids: &[String],
) -> Result<(), GatewayError> {
    let mut ids = ids.iter();
    let mut deletes = FuturesUnordered::new();
    loop {
        while deletes.len() < TIER_IN_FLIGHT {
            let Some(id) = ids.next() else {
                break;
            };
            deletes.push(gated(gate, move || tier.delete(Set::Documents, ns, id)));
        }
        let Some(r) = deletes.next().await else {
            return Ok(());
        };
        r?.map_err(|e| GatewayError::CacheCold(format!("cache delete failed: {e}")))?;
    }
}

/// Runs one tier operation once `gate` has room. `op` is called only then: tiers queue a
/// request when it is made, not when its future is first polled.
async fn gated<T>(
    gate: &Semaphore,
    op: impl FnOnce() -> layer_cache::TierFuture<T>,
) -> Result<Result<T, layer_cache::CacheError>, GatewayError> {
    let _permit = gate
        .acquire()
        .await
        .map_err(|_| GatewayError::Internal("the warm's tier gate closed".into()))?;
    Ok(op().await)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use layer_cache::{CacheError, Health, ScanCursor, ScanPage, TierFuture};

    use layer_cache::CacheState;

    use super::*;

    /// A tier that counts the operations it holds (from the call, as the NVMe tier queues them)
    /// and, like the NVMe tier, refuses past a queue depth.
    #[derive(Default)]
    struct Counting {
        in_flight: Arc<AtomicUsize>,
        max: Arc<AtomicUsize>,
        done: Arc<AtomicUsize>,
    }

    const QUEUE_DEPTH: usize = 4096;

    impl Counting {
        fn op(&self) -> TierFuture<()> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max.fetch_max(now, Ordering::SeqCst);
            let (in_flight, done) = (self.in_flight.clone(), self.done.clone());
            Box::pin(async move {
                let r = if now > QUEUE_DEPTH {
                    Err(CacheError::Unavailable("queue full".into()))
                } else {
                    for _ in 0..3 {
                        tokio::task::yield_now().await;
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                };
                in_flight.fetch_sub(1, Ordering::SeqCst);
                r
            })
        }
    }

    impl Tier for Counting {
        fn get(&self, _: Set, _: &str, _: &str) -> TierFuture<Option<Bytes>> {
            Box::pin(async { Ok(None) })
        }
        fn put(&self, _: Set, _: &str, _: &str, _: Bytes) -> TierFuture<()> {
            self.op()
        }
        fn delete(&self, _: Set, _: &str, _: &str) -> TierFuture<()> {
            self.op()
        }
        fn clear_namespace(&self, _: Set, _: &str) -> TierFuture<()> {
            self.op()
        }
        fn scan(&self, _: Set, _: &str, _: Option<ScanCursor>, _: usize) -> TierFuture<ScanPage> {
            Box::pin(async { Ok(ScanPage::default()) })
        }
        fn health(&self) -> Health {
            Health {
                state: CacheState::Warm,
                reconnect_generation: 0,
            }
        }
        fn name(&self) -> &'static str {
            "counting"
        }
    }

    #[test]
    fn tier_operations_in_flight_are_bounded_across_all_pages_of_a_warm() {
        let counting = Counting::default();
        let (max, done) = (counting.max.clone(), counting.done.clone());
        let tier: Arc<dyn Tier> = Arc::new(counting);
        let gate = Semaphore::new(TIER_IN_FLIGHT);
        // 32 pages at once (a 32-shard namespace at the 32-thread cap), 1,000 rows each.
        let pages = 32;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let puts = (0..pages).map(|p| {
                let rows = (0..1000)
                    .map(|i| json!({"id": format!("p{p}-{i}"), "n": i}))
                    .collect();
                put_rows(&tier, &gate, "ns", rows)
            });
            for r in futures_util::future::join_all(puts).await {
                r.expect("no page hit a full queue");
            }
            let ids: Vec<String> = (0..5000).map(|i| format!("gone-{i}")).collect();
            let removes = (0..4).map(|_| remove(&tier, &gate, "ns", &ids));
            for r in futures_util::future::join_all(removes).await {
                r.expect("no delete hit a full queue");
            }
        });
        assert_eq!(done.load(Ordering::SeqCst), pages * 1000 + 4 * 5000);
        let max = max.load(Ordering::SeqCst);
        assert!(
            max <= TIER_IN_FLIGHT,
            "{max} tier operations in flight at once"
        );
        assert!(max > 1, "operations overlap ({max})");
    }
}
