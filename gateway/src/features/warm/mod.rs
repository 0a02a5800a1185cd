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
//! could undo a page just written. So the write path records which ids its tier changes touched
//! once they landed ([`crate::core::touches`], recorded for a namespace only while a warm of it
//! runs), and each page asks which of its own ids were touched after its read began; only those
//! are read again once the namespace's in-flight invalidations have landed (strongly, as they are
//! now: without the cut, so the rows a racing write left) and re-put (ids deleted meanwhile are
//! removed), up to [`RACE_RETRIES`] times, after which they are removed so fetch falls through to
//! origin. So the cache holds the rows the write left, never the ones it replaced, and agrees with
//! the write-path mirror; rows newer than the cut are not seen by cache-sourced scans (they filter
//! at `cache_warmed_through`). The rest of the page stays: a warm that overlaps a steady stream of
//! writes still copies every row those writes did not touch. This relies on the write path
//! holding a [`layer_cache::TierUpdate`] guard while its tier invalidations run (the settle waits
//! on it).
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
use http::{Method, StatusCode};
use layer_cache::{CacheState, Tier};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Value, json};

use crate::core::config::Scope;
use crate::core::error::GatewayError;
use crate::core::http::{Resp, json_response};
use crate::core::jobs::{JobKind, JobStatus, Jobs};
use crate::core::proxy::{self, Plain};
use crate::core::router::{Req, Route, handler};
use crate::core::{Core, ShardCtx};
use crate::sources::origin::MAX_PAGE;
use crate::sources::snapshot_store::SnapshotStore;
use crate::sources::warmth::Warmth;

mod blobs;
mod pass;

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

/// A warm job.
#[derive(Debug)]
pub struct WarmJob;

/// A warm job's request.
#[derive(Debug, Serialize)]
pub struct WarmSpec {
    pub page_size: usize,
}

/// What a warm job did.
#[derive(Debug, Default, Serialize)]
pub struct WarmOutcome {
    /// New passes started after namespace clears wiped earlier pages.
    pub restarts: Option<usize>,
    pub cache_warmed_through: Option<u64>,
    pub stable_as_of: Option<u64>,
}

impl JobKind for WarmJob {
    const PREFIX: &'static str = "warm";
    type Spec = WarmSpec;
    type Outcome = WarmOutcome;
    fn stable_as_of(o: &WarmOutcome) -> Option<u64> {
        o.stable_as_of
    }
}

/// A warm job's record.
pub type Job = crate::core::jobs::Job<WarmJob>;

/// The warm feature: its jobs, the running warm per namespace, and the sources it fills.
pub struct Warm {
    pub core: Arc<Core>,
    pub store: Arc<SnapshotStore>,
    pub warmth: Arc<Warmth>,
    pub jobs: Jobs<WarmJob>,
    /// The running warm job per namespace.
    running: Mutex<HashMap<String, Arc<Job>>>,
}

impl Warm {
    pub fn new(core: Arc<Core>, store: Arc<SnapshotStore>, warmth: Arc<Warmth>) -> Arc<Self> {
        crate::core::metrics::declare_event("layer_warm_events_total");
        Arc::new(Warm {
            core,
            store,
            warmth,
            jobs: Jobs::new(),
            running: Mutex::new(HashMap::new()),
        })
    }

    /// The warm routes.
    pub fn routes(self: &Arc<Self>) -> Vec<Route> {
        use Method as M;
        use Scope::Read;
        let s = self;
        vec![
            Route::new(
                M::POST,
                "/v2/namespaces/{ns}/warm",
                "warm",
                Read,
                handler(s.clone(), Warm::warm_route),
            ),
            Route::new(
                M::GET,
                "/v2/namespaces/{ns}/warm-jobs",
                "list_warm_jobs",
                Read,
                handler(s.clone(), Warm::list_jobs),
            ),
            Route::new(
                M::GET,
                "/v2/namespaces/{ns}/warm-jobs/{id}",
                "get_warm_job",
                Read,
                handler(s.clone(), Warm::get_job),
            ),
            Route::new(
                M::GET,
                "/v1/namespaces/{ns}/hint_cache_warm",
                "hint_cache_warm",
                Read,
                handler(s.clone(), Warm::hint),
            ),
        ]
    }

    /// The Auto policy's background warm: starts one unless the tier is down or one is running.
    pub fn ensure_background(self: &Arc<Self>, ns: &str) {
        if tier_ready(&self.core.cache.tier) {
            let _ = start(self, ns, DEFAULT_PAGE);
        }
    }

    async fn warm_route(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        if !tier_ready(&self.core.cache.tier) {
            return Err(cache_cold());
        }
        let job = start(&self, req.ns(), page_size(&req.query_params())?)?;
        Ok(job.response(StatusCode::ACCEPTED))
    }

    async fn list_jobs(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let jobs = self.jobs.list_json(req.ns());
        Ok(json_response(StatusCode::OK, &json!({"warm_jobs": jobs})))
    }

    async fn get_job(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let job = self.jobs.find(req.ns(), &req.decoded("id"))?;
        Ok(job.response(StatusCode::OK))
    }

    /// `hint_cache_warm`: the bare hint is forwarded verbatim; any option orchestrates.
    async fn hint(self: Arc<Self>, ctx: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        const OPTIONS: [&str; 4] = ["turbopuffer", "documents", "snapshots", "page_size"];
        let params = req.query_params();
        if !OPTIONS.iter().any(|k| params.contains_key(*k)) {
            return proxy::serve(Arc::new(Plain), ctx, req).await;
        }
        orchestrate(&self, &ctx, req.ns(), &params).await
    }
}

fn tier_ready(tier: &Arc<dyn Tier>) -> bool {
    tier.health().state == CacheState::Warm
}

fn cache_cold() -> GatewayError {
    GatewayError::CacheCold(
        "the document cache is unavailable (cold or disabled); warming needs it".into(),
    )
}

/// Starts a warm of `ns` on the control runtime, or returns the one already running.
pub fn start(warm: &Arc<Warm>, ns: &str, page_size: usize) -> Result<Arc<Job>, GatewayError> {
    let control = warm.core.control()?.clone();
    let mut running = warm.running.lock();
    if let Some(j) = running.get(ns)
        && j.status() == JobStatus::Running
    {
        return Ok(j.clone());
    }
    let job = warm.jobs.create(ns, WarmSpec { page_size });
    running.insert(ns.to_string(), job.clone());
    drop(running);
    crate::core::metrics::feature_event("layer_warm_events_total", "event", "job_started", 1);
    let (warm, ns, task_job) = (warm.clone(), ns.to_string(), job.clone());
    let upstream = control.upstream(&ns).clone();
    control.handle.spawn(async move {
        let result = pass::passes(&warm, &upstream, &ns, page_size, &task_job).await;
        match result {
            Ok(cut) if !task_job.is_cancelled() => {
                warm.warmth.stamp(&ns, cut);
                crate::core::metrics::feature_event(
                    "layer_warm_events_total",
                    "event",
                    "job_completed",
                    1,
                );
                task_job.complete(|o| {
                    o.cache_warmed_through = Some(cut);
                    o.stable_as_of = Some(cut);
                });
            }
            Ok(_) => task_job.fail("cancelled"),
            Err(e) => {
                crate::core::metrics::feature_event(
                    "layer_warm_events_total",
                    "event",
                    "job_failed",
                    1,
                );
                task_job.fail(e.to_string());
            }
        }
        let mut running = warm.running.lock();
        if running.get(&ns).is_some_and(|j| Arc::ptr_eq(j, &task_job)) {
            running.remove(&ns);
        }
    });
    Ok(job)
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

/// `hint_cache_warm` with options: the per-step orchestration.
async fn orchestrate(
    warm: &Arc<Warm>,
    ctx: &ShardCtx,
    ns: &str,
    params: &HashMap<String, String>,
) -> Result<Resp, GatewayError> {
    let (hint, documents, snapshots, blob_step) = (
        step(params, "turbopuffer")?,
        step(params, "documents")?,
        step(params, "snapshots")?,
        step(params, "blobs")?,
    );
    let budget = match params.get("blob_budget_bytes").map(String::as_str) {
        None | Some("") => blobs::DEFAULT_BUDGET,
        Some(s) => s.parse::<u64>().map_err(|_| {
            GatewayError::Validation(format!(
                "blob_budget_bytes must be a non-negative integer, got {s:?}"
            ))
        })?,
    };
    let page = page_size(params)?;
    if (documents || snapshots) && !tier_ready(&warm.core.cache.tier) {
        return Err(cache_cold());
    }
    let skipped = json!({"enabled": false, "status": "skipped"});
    let turbopuffer = if hint {
        let up = ctx
            .upstream(ns)
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
        let job = start(warm, ns, page)?;
        json!({"enabled": true, "status": "started", "job": job.to_json()})
    } else {
        skipped.clone()
    };
    let snapshots = if snapshots {
        mirror_snapshot(warm, ns).await?
    } else {
        skipped.clone()
    };
    let blobs = if blob_step {
        blobs::run(ctx, ns, budget, page).await?
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
            "blobs": blobs,
        }),
    ))
}

/// The `snapshots` step: the latest snapshot body mirrored into the tier
/// ([`crate::snapshots::mirror_latest`]).
async fn mirror_snapshot(warm: &Warm, ns: &str) -> Result<Value, GatewayError> {
    Ok(match warm.store.mirror_latest(ns).await? {
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
