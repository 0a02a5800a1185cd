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
use futures_util::future::join_all;
use futures_util::stream::FuturesUnordered;
use http::{Method, StatusCode};
use layer_cache::{CacheState, Set, Tier};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};

use crate::auth::Principal;
use crate::config::Config;
use crate::error::GatewayError;
use crate::handler::{Resp, ShardCtx, Shared, json_response, now_ms, relay};
use crate::jobs::{Job, JobStatus, Jobs};
use crate::namespaces::{decode, parse_query};
use crate::origin::{self, MAX_PAGE, OriginScan};
use crate::route::Route;
use crate::scans::ranked;
use crate::scans::run::wire_id;
use crate::upstream::Upstream;

/// Rows per warm page when the request does not say.
pub const DEFAULT_PAGE: usize = 1000;
/// Tier operations a warm page has in flight at once (well under the NVMe queue depth).
const TIER_BATCH: usize = 256;
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
    crate::metrics::feature_event("layer_cache_cold_responses_total", "route", route, 1);
    GatewayError::CacheCold(
        "the document cache is unavailable (cold or disabled); warming needs it".into(),
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
        let result = match run(&shared, &control.upstream, &ns, page_size, &task_job).await {
            Ok(cut) if !task_job.is_cancelled() => mark(&shared, &ns, cut).await.map(|()| cut),
            other => other,
        };
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

/// Leaves the completed-warm marker among the namespace's cached documents
/// ([`crate::scans::cache::WARM_MARKER_ID`]).
async fn mark(shared: &Shared, ns: &str, cut: u64) -> Result<(), GatewayError> {
    let value = Bytes::from(json!({"cache_warmed_through": cut}).to_string());
    shared
        .cache
        .tier
        .put(
            Set::Documents,
            ns,
            crate::scans::cache::WARM_MARKER_ID,
            value,
        )
        .await
        .map_err(|e| GatewayError::CacheCold(format!("cache write failed: {e}")))
}

/// The Auto policy's background warm: starts one unless the tier is down or one is running.
pub fn ensure_background(shared: &Arc<Shared>, ns: &str) {
    if tier_ready(&shared.cache.tier) {
        let _ = start(shared, ns, DEFAULT_PAGE);
    }
}

/// One warm pass; returns the cut it warmed through.
async fn run(
    shared: &Shared,
    upstream: &Upstream,
    ns: &str,
    page_size: usize,
    job: &Job,
) -> Result<u64, GatewayError> {
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
    let mut queue: Vec<(u32, Option<Value>)> = (0..shards).rev().map(|s| (s, None)).collect();
    let mut in_flight = FuturesUnordered::new();
    loop {
        while in_flight.len() < threads {
            let Some((shard, after)) = queue.pop() else {
                break;
            };
            let spec = &spec;
            in_flight.push(async move {
                let r = warm_page(shared, upstream, spec, shards, shard, after.as_ref()).await;
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
            return Ok(cut);
        }
        if read >= spec.page_size
            && let Some(last) = last
        {
            queue.push((shard, Some(last)));
        }
    }
    Ok(cut)
}

/// Reads one page and writes it to the tier; returns (rows read, last id).
async fn warm_page(
    shared: &Shared,
    upstream: &Upstream,
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
    put_rows(shared, ns, rows).await?;
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
        put_rows(shared, ns, again).await?;
        remove(shared, ns, &gone).await?;
    }
    if inv.namespace_epoch(Set::Documents, ns) != seen || inv.pending(Set::Documents, ns) > 0 {
        let all: Vec<String> = ids.iter().filter_map(wire_id).collect();
        remove(shared, ns, &all).await?;
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

async fn put_rows(shared: &Shared, ns: &str, rows: Vec<Value>) -> Result<(), GatewayError> {
    let tier = &shared.cache.tier;
    let entries: Vec<(String, Bytes)> = rows
        .into_iter()
        .filter_map(|mut row| {
            let obj = row.as_object_mut()?;
            obj.remove("$dist");
            let id = wire_id(obj.get("id")?)?;
            Some((id, Bytes::from(serde_json::to_vec(&row).ok()?)))
        })
        .collect();
    // Bounded batches: the tier's request queue fails fast when full, and shards share it.
    for batch in entries.chunks(TIER_BATCH) {
        let puts = batch
            .iter()
            .map(|(id, bytes)| tier.put(Set::Documents, ns, id, bytes.clone()));
        for r in join_all(puts).await {
            match r {
                Ok(()) => {}
                // A row the tier cannot hold stays uncached (fetch serves it from origin).
                Err(e) if !e.is_tier_failure() => {
                    crate::metrics::feature_event(
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
    Ok(())
}

async fn remove(shared: &Shared, ns: &str, ids: &[String]) -> Result<(), GatewayError> {
    let tier = &shared.cache.tier;
    for batch in ids.chunks(TIER_BATCH) {
        for r in join_all(batch.iter().map(|id| tier.delete(Set::Documents, ns, id))).await {
            r.map_err(|e| GatewayError::CacheCold(format!("cache delete failed: {e}")))?;
        }
    }
    Ok(())
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
