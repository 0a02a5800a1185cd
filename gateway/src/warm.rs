//! Cache warming: warm jobs (`POST /v2/namespaces/{ns}/warm`, `GET …/warm-jobs[/{id}]`),
//! `GET /v1/namespaces/{ns}/hint_cache_warm`, and each namespace's `cache_warmed_through`.
//!
//! A warm job pages through origin (keyset pages of `page_size` rows per scatter/gather shard,
//! the namespace's scan fan-out `threads` in flight) and writes every full row into the shared
//! cache tier under `Set::Documents` by wire id — the same value fetch caches. It reads at a cut:
//! with a watcher watermark `W`, strong reads with `_hevlayer_upserted_at <= W`; before the
//! watermark is observed, strong reads of everything, cut at the job's start time. On success
//! `cache_warmed_through` becomes that cut (never moving backwards); cache-sourced scans then
//! filter `_hevlayer_upserted_at <= cache_warmed_through`.
//!
//! Racing writes: a write through the gateway removes the ids it touches from the tier, and
//! those tier operations run asynchronously after the write returned. A warm page read before
//! such a write could put an older row back after the removal, and a removal still in flight
//! could undo a page just written. So each page compares the namespace's invalidation epoch
//! ([`layer_cache::Invalidations::namespace_epoch`], which also moves when an in-flight tier
//! invalidation finishes) before the read and after its puts, and checks that no tier
//! invalidation is pending; otherwise it waits for them to land, reads the page's ids again
//! (strongly, at the cut) and re-puts them (rows gone or past the cut are removed), up to
//! [`RACE_RETRIES`] times, after which they are removed so fetch falls through to origin. This
//! relies on the write path holding a [`layer_cache::TierUpdate`] guard while its tier
//! invalidations run.
//!
//! `hint_cache_warm` with no query parameters is a raw passthrough (forwarded verbatim, upstream
//! answer relayed verbatim; it never touches the cache, so it works while the cache is cold). Any
//! of `turbopuffer`, `documents`, `snapshots`, `page_size` switches to Layer orchestration with
//! every step defaulting on: `turbopuffer` forwards the hint, `documents` starts (or joins) a warm
//! job, `snapshots` mirrors the latest snapshot body into the tier
//! ([`crate::snapshots::mirror_latest`]). Warm jobs and an orchestrated call with `documents` or `snapshots` answer 503
//! `cache_cold` when the tier is cold or disabled.
//!
//! A completed warm also leaves a marker in the tier next to the documents (what the Auto table
//! calls a populated cache, see [`crate::scans::cache`]).
//!
//! Namespace clears: a `delete_by_filter` / `patch_by_filter` (or an unparseable write) clears the
//! namespace in the tier, wiping pages a running warm already wrote; the per-page checks above
//! cannot see that. So a pass first puts a sentinel ([`crate::scans::cache::WARM_SENTINEL_ID`],
//! valued with the pass) among the documents and reads the namespace epoch. Whenever the epoch
//! has moved since it last looked (after a page, and once more after writing the marker, once
//! in-flight tier invalidations have landed) it reads the sentinel back: if a clear removed it,
//! the pass stops, the marker it may have written is removed, and the warm starts a new pass
//! (`restarts` on the job, counters from zero), up to [`CLEAR_RESTARTS`] times before failing.
//! A clear that lands after the marker removes the marker too, so the cache then reads as empty
//! rather than as a complete copy.
//!
//! Tier operations in flight are bounded per warm, across all its concurrent pages
//! ([`TIER_IN_FLIGHT`]), well under the NVMe tier's queue depth (4,096) whatever the namespace's
//! shard count and scan `threads`.
//!
//! `cache_warmed_through` is promoted to the current watermark when no write went through this
//! gateway after it ([`warmed_through`]).
//!
//! State (jobs, `cache_warmed_through`) is in gateway memory only: after a restart a populated
//! cache counts as "never warmed" and the first `auto` scan starts a background warm. At most one
//! warm runs per namespace; a second request joins the running job.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use http::{Method, StatusCode};
use layer_cache::{CacheState, Set, Tier};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;

use crate::auth::Principal;
use crate::config::Config;
use crate::error::GatewayError;
use crate::handler::{Resp, ShardCtx, Shared, json_response, now_ms, relay};
use crate::jobs::{Job, JobStatus, Jobs};
use crate::namespaces::{decode, parse_query};
use crate::origin::{self, MAX_PAGE, OriginScan};
use crate::route::Route;
use crate::scans::cache::{WARM_MARKER_ID, WARM_SENTINEL_ID};
use crate::scans::ranked;
use crate::scans::run::wire_id;
use crate::upstream::Upstream;

/// Rows per warm page when the request does not say.
pub const DEFAULT_PAGE: usize = 1000;
/// Tier operations one warm has in flight at once, over all its pages (well under the NVMe
/// queue depth of 4,096, which shards share).
pub const TIER_IN_FLIGHT: usize = 256;
/// New passes a warm starts after namespace clears wiped its pages, before it fails.
pub const CLEAR_RESTARTS: usize = 3;
/// Longest wait for a namespace's in-flight tier invalidations before re-reading a raced page.
const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Re-reads of a page whose ids a concurrent write touched, before giving up on them.
pub const RACE_RETRIES: usize = 3;

/// The warm feature's shared state.
#[derive(Debug)]
pub struct Warm {
    pub jobs: Jobs,
    /// `cache_warmed_through` per namespace (epoch ms).
    warmed: Mutex<HashMap<String, u64>>,
    /// The running warm job per namespace.
    running: Mutex<HashMap<String, Arc<Job>>>,
}

impl Warm {
    pub fn new(_config: &Config) -> Self {
        Warm {
            jobs: Jobs::new("warm"),
            warmed: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
        }
    }

    fn stamp(&self, ns: &str, cut: u64) {
        let mut m = self.warmed.lock();
        let e = m.entry(ns.to_string()).or_insert(cut);
        *e = (*e).max(cut);
    }
}

/// `cache_warmed_through` of `ns`: the cut of its last successful warm, if any.
///
/// When no write went through this gateway to `ns` after that cut, nothing with a later
/// `_hevlayer_upserted_at` exists, so the cached view is also the view at the current watermark:
/// the value is promoted to the watermark (a quiet namespace does not look stale just because its
/// watermark keeps advancing). Writes made outside this gateway are not seen (documented; warm
/// explicitly after bulk loads that bypass it).
pub fn warmed_through(shared: &Shared, ns: &str) -> Option<u64> {
    let warmed = shared.warm.warmed.lock().get(ns).copied()?;
    match shared.watcher.snapshot(ns).1 {
        Some(wm) if wm > warmed && shared.watcher.last_write_ms(ns) <= warmed => {
            shared.warm.stamp(ns, wm);
            Some(wm)
        }
        _ => Some(warmed),
    }
}

fn tier_ready(tier: &Arc<dyn Tier>) -> bool {
    tier.health().state == CacheState::Warm
}

fn cache_cold(route: &'static str) -> GatewayError {
    GatewayError::cache_cold(
        route,
        "the document cache is unavailable (cold or disabled); warming needs it",
    )
}

/// Starts a warm of `ns` on the control runtime, or returns the one already running.
pub fn start(shared: &Arc<Shared>, ns: &str, page_size: usize) -> Result<Arc<Job>, GatewayError> {
    let control = shared.control()?.clone();
    let mut running = shared.warm.running.lock();
    if let Some(j) = running.get(ns)
        && j.status() == JobStatus::Running
    {
        return Ok(j.clone());
    }
    let mut base = Map::new();
    base.insert("page_size".into(), json!(page_size));
    let job = shared.warm.jobs.create(ns, base);
    running.insert(ns.to_string(), job.clone());
    drop(running);
    crate::metrics::feature_event("layer_warm_events_total", "event", "job_started", 1);
    let (shared, ns, task_job) = (shared.clone(), ns.to_string(), job.clone());
    control.handle.spawn(async move {
        let result = passes(&shared, &control.upstream, &ns, page_size, &task_job).await;
        match result {
            Ok(cut) if !task_job.is_cancelled() => {
                shared.warm.stamp(&ns, cut);
                let mut extra = Map::new();
                extra.insert("cache_warmed_through".into(), json!(cut));
                extra.insert("stable_as_of".into(), json!(cut));
                crate::metrics::feature_event(
                    "layer_warm_events_total",
                    "event",
                    "job_completed",
                    1,
                );
                task_job.complete(extra);
            }
            Ok(_) => task_job.fail("cancelled"),
            Err(e) => {
                crate::metrics::feature_event("layer_warm_events_total", "event", "job_failed", 1);
                task_job.fail(e.to_string());
            }
        }
        let mut running = shared.warm.running.lock();
        if running.get(&ns).is_some_and(|j| Arc::ptr_eq(j, &task_job)) {
            running.remove(&ns);
        }
    });
    Ok(job)
}

/// Runs warm passes until one completes without a namespace clear wiping what it wrote (see the
/// module docs); returns the cut the cache is warmed through.
async fn passes(
    shared: &Shared,
    upstream: &Upstream,
    ns: &str,
    page_size: usize,
    job: &Job,
) -> Result<u64, GatewayError> {
    let tier = &shared.cache.tier;
    for pass in 0..=CLEAR_RESTARTS {
        if pass > 0 {
            crate::metrics::feature_event("layer_warm_events_total", "event", "job_restarted", 1);
            job.restart_counters();
            job.set("restarts", json!(pass));
        }
        let watch = Watch {
            epoch: shared
                .cache
                .invalidations
                .namespace_epoch(Set::Documents, ns),
            token: format!("{}#{pass}", job.id),
        };
        tier_put(tier, ns, WARM_SENTINEL_ID, Bytes::from(watch.token.clone())).await?;
        let Pass::Done(cut) = run(shared, upstream, ns, page_size, job, &watch).await? else {
            continue;
        };
        if job.is_cancelled() {
            return Ok(cut);
        }
        let marker = Bytes::from(json!({"cache_warmed_through": cut}).to_string());
        tier_put(tier, ns, WARM_MARKER_ID, marker).await?;
        if cleared_since(shared, ns, &watch).await? {
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
async fn cleared_since(shared: &Shared, ns: &str, watch: &Watch) -> Result<bool, GatewayError> {
    let inv = &shared.cache.invalidations;
    if inv.namespace_epoch(Set::Documents, ns) == watch.epoch
        && inv.pending(Set::Documents, ns) == 0
    {
        return Ok(false);
    }
    settle(shared, ns).await;
    sentinel_gone(shared, ns, watch).await
}

async fn sentinel_gone(shared: &Shared, ns: &str, watch: &Watch) -> Result<bool, GatewayError> {
    match shared
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

/// The Auto policy's background warm: starts one unless the tier is down or one is running.
pub fn ensure_background(shared: &Arc<Shared>, ns: &str) {
    if tier_ready(&shared.cache.tier) {
        let _ = start(shared, ns, DEFAULT_PAGE);
    }
}

/// One warm pass; returns the cut it warmed through, or that a namespace clear cut it short.
async fn run(
    shared: &Shared,
    upstream: &Upstream,
    ns: &str,
    page_size: usize,
    job: &Job,
    watch: &Watch,
) -> Result<Pass, GatewayError> {
    let started = now_ms();
    let watermark = shared.watcher.snapshot(ns).1;
    let cut = watermark.unwrap_or(started);
    let total = crate::snapshots::compute::approx_rows(upstream, ns).await;
    let shards = origin::shards_of(shared, ns);
    let threads = origin::threads_for(shared, ns, None).max(1) as usize;
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
                let r =
                    warm_page(shared, upstream, gate, spec, shards, shard, after.as_ref()).await;
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
        let epoch = shared
            .cache
            .invalidations
            .namespace_epoch(Set::Documents, ns);
        if epoch != checked_epoch {
            checked_epoch = epoch;
            if sentinel_gone(shared, ns, watch).await? {
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
async fn warm_page(
    shared: &Shared,
    upstream: &Upstream,
    gate: &Semaphore,
    spec: &OriginScan,
    shards: u32,
    shard: u32,
    after: Option<&Value>,
) -> Result<(usize, Option<Value>), GatewayError> {
    let ns = spec.namespace.as_str();
    let inv = &shared.cache.invalidations;
    let before = inv.namespace_epoch(Set::Documents, ns);
    // Tier invalidations of earlier writes may still be landing: they could undo this page.
    let mut unsettled = inv.pending(Set::Documents, ns) > 0;
    let body = origin::page_body(spec, shards, shard, after, spec.page_size);
    let rows = rows_of(ranked::query(upstream, "warm_page", ns, &body).await?);
    let read = rows.len();
    let last = rows.last().and_then(|r| r.get("id")).cloned();
    let ids: Vec<Value> = rows.iter().filter_map(|r| r.get("id").cloned()).collect();
    let tier = &shared.cache.tier;
    put_rows(tier, gate, ns, rows).await?;
    let mut seen = before;
    for _ in 0..RACE_RETRIES {
        let now = inv.namespace_epoch(Set::Documents, ns);
        if now == seen && !unsettled && inv.pending(Set::Documents, ns) == 0 {
            return Ok((read, last));
        }
        // A write to the namespace raced this page: once its tier invalidations have landed,
        // read the page's ids again and write what is live.
        settle(shared, ns).await;
        seen = inv.namespace_epoch(Set::Documents, ns);
        unsettled = false;
        let again = reread(upstream, spec, &ids).await?;
        let present: Vec<String> = again
            .iter()
            .filter_map(|r| r.get("id").and_then(wire_id))
            .collect();
        let gone: Vec<String> = ids
            .iter()
            .filter_map(wire_id)
            .filter(|id| !present.contains(id))
            .collect();
        put_rows(tier, gate, ns, again).await?;
        remove(tier, gate, ns, &gone).await?;
    }
    if inv.namespace_epoch(Set::Documents, ns) != seen || inv.pending(Set::Documents, ns) > 0 {
        let all: Vec<String> = ids.iter().filter_map(wire_id).collect();
        remove(tier, gate, ns, &all).await?;
    }
    Ok((read, last))
}

/// Waits (bounded by [`SETTLE_WAIT`]) until no shared-tier invalidation of `ns` is in flight.
async fn settle(shared: &Shared, ns: &str) {
    let deadline = tokio::time::Instant::now() + SETTLE_WAIT;
    while shared.cache.invalidations.pending(Set::Documents, ns) > 0
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

/// Strong re-read of `ids` at the warm's cut.
async fn reread(
    upstream: &Upstream,
    spec: &OriginScan,
    ids: &[Value],
) -> Result<Vec<Value>, GatewayError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut conds = vec![json!(["id", "In", ids])];
    conds.extend(spec.filters.clone());
    let body = json!({
        "filters": ["And", conds],
        "rank_by": ["id", "asc"],
        "top_k": ids.len().clamp(1, MAX_PAGE),
        "include_attributes": true,
        "consistency": {"level": "strong"},
    });
    Ok(rows_of(
        ranked::query(upstream, "warm_reread", &spec.namespace, &body).await?,
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
    let entries: Vec<(String, Bytes)> = rows
        .into_iter()
        .filter_map(|mut row| {
            let obj = row.as_object_mut()?;
            obj.remove("$dist");
            let id = wire_id(obj.get("id")?)?;
            Some((id, Bytes::from(serde_json::to_vec(&row).ok()?)))
        })
        .collect();
    let mut entries = entries.into_iter();
    let mut puts = FuturesUnordered::new();
    loop {
        while puts.len() < TIER_IN_FLIGHT {
            let Some((id, bytes)) = entries.next() else {
                break;
            };
            puts.push(gated(gate, move || {
                tier.put(Set::Documents, ns, &id, bytes)
            }));
        }
        let Some(r) = puts.next().await else {
            return Ok(());
        };
        match r? {
            Ok(()) => {}
            // A row the tier cannot hold stays uncached (fetch serves it from origin).
            Err(e) if !e.is_tier_failure() => {
                crate::metrics::feature_event("layer_warm_events_total", "event", "row_skipped", 1);
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

fn page_size(params: &HashMap<String, String>) -> Result<usize, GatewayError> {
    match params.get("page_size").map(String::as_str) {
        None | Some("") => Ok(DEFAULT_PAGE),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                GatewayError::Validation(format!(
                    "page_size must be an integer from 1 to {MAX_PAGE}, got {s:?}"
                ))
            }),
    }
}

/// A boolean step switch: absent or empty means on.
fn step(params: &HashMap<String, String>, key: &str) -> Result<bool, GatewayError> {
    match params.get(key).map(String::as_str) {
        None | Some("") => Ok(true),
        Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(other) => Err(GatewayError::Validation(format!(
            "{key} must be true or false, got {other:?}"
        ))),
    }
}

/// Serves `warm`, `list_warm_jobs`, `get_warm_job` and `hint_cache_warm`.
pub async fn serve(
    ctx: &ShardCtx,
    route: Route<'_>,
    _principal: &Principal,
    parts: http::request::Parts,
    body: Bytes,
) -> Result<Resp, GatewayError> {
    let shared = &ctx.shared;
    let ns = route.namespace.unwrap_or_default();
    let params = parse_query(parts.uri.query().unwrap_or(""));
    match route.name {
        "warm" => {
            if !tier_ready(&shared.cache.tier) {
                return Err(cache_cold("warm"));
            }
            let job = start(shared, ns, page_size(&params)?)?;
            Ok(job.response(StatusCode::ACCEPTED))
        }
        "list_warm_jobs" => {
            let jobs = shared.warm.jobs.list_json(ns);
            Ok(json_response(StatusCode::OK, &json!({"warm_jobs": jobs})))
        }
        "get_warm_job" => {
            let id = decode(parts.uri.path().rsplit('/').next().unwrap_or_default());
            let job = shared.warm.jobs.find(ns, &id)?;
            Ok(job.response(StatusCode::OK))
        }
        "hint_cache_warm" => {
            const OPTIONS: [&str; 4] = ["turbopuffer", "documents", "snapshots", "page_size"];
            if !OPTIONS.iter().any(|k| params.contains_key(*k)) {
                return passthrough(ctx, parts, body).await;
            }
            orchestrate(ctx, ns, &params).await
        }
        other => Err(GatewayError::Internal(format!(
            "warm route {other} has no handler"
        ))),
    }
}

/// The bare hint: forwarded verbatim, relayed verbatim.
async fn passthrough(
    ctx: &ShardCtx,
    parts: http::request::Parts,
    body: Bytes,
) -> Result<Resp, GatewayError> {
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let trace = parts.headers.get("traceparent").cloned();
    let up = ctx
        .upstream
        .send(
            "hint_cache_warm",
            parts.method,
            &path_and_query,
            &parts.headers,
            body,
        )
        .await?;
    Ok(relay(up, trace))
}

/// `hint_cache_warm` with options: the per-step orchestration.
async fn orchestrate(
    ctx: &ShardCtx,
    ns: &str,
    params: &HashMap<String, String>,
) -> Result<Resp, GatewayError> {
    let shared = &ctx.shared;
    let (hint, documents, snapshots) = (
        step(params, "turbopuffer")?,
        step(params, "documents")?,
        step(params, "snapshots")?,
    );
    let page = page_size(params)?;
    if (documents || snapshots) && !tier_ready(&shared.cache.tier) {
        return Err(cache_cold("hint_cache_warm"));
    }
    let skipped = json!({"enabled": false, "status": "skipped"});
    let turbopuffer = if hint {
        let up = ctx
            .upstream
            .send(
                "hint_cache_warm",
                Method::GET,
                &format!("/v1/namespaces/{ns}/hint_cache_warm"),
                &http::HeaderMap::new(),
                Bytes::new(),
            )
            .await?;
        if !up.status.is_success() {
            return Err(GatewayError::Relay {
                status: up.status,
                content_type: up.headers.get(http::header::CONTENT_TYPE).cloned(),
                body: up.body,
            });
        }
        json!({"enabled": true, "status": "completed"})
    } else {
        skipped.clone()
    };
    let documents = if documents {
        let job = start(shared, ns, page)?;
        json!({"enabled": true, "status": "started", "job": job.to_json()})
    } else {
        skipped.clone()
    };
    let snapshots = if snapshots {
        mirror_snapshot(shared, ns).await?
    } else {
        skipped
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "namespace": ns,
            "turbopuffer": turbopuffer,
            "documents": documents,
            "snapshots": snapshots,
        }),
    ))
}

/// The `snapshots` step: the latest snapshot body mirrored into the tier
/// ([`crate::snapshots::mirror_latest`]).
async fn mirror_snapshot(shared: &Shared, ns: &str) -> Result<Value, GatewayError> {
    Ok(match crate::snapshots::mirror_latest(shared, ns).await? {
        None => json!({"enabled": true, "status": "no_snapshot"}),
        Some((key, watermark_ms, sha)) => json!({
            "enabled": true,
            "status": "completed",
            "key": key,
            "watermark_ms": watermark_ms,
            "sha": sha,
        }),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use layer_cache::{CacheError, Health, ScanCursor, ScanPage, TierFuture};

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
