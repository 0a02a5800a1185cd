//! Scans: on-demand row selection over a namespace — ids (async job), count (synchronous) and
//! distinct values of one field (async job) — over a filter, `fts` or `ann` selector, read from
//! the latest snapshot, the document cache or origin.
//!
//! Routes: `POST /v2/namespaces/{ns}/scans` (200 count body, or 202 job), `GET …/scans` (list),
//! `GET …/scans/{id}`, `GET …/scans/{id}/results?limit=&offset=` (every result when no `limit`),
//! `DELETE …/scans/{id}` (`{"status": "deleted"}`, cancelling a running job).
//!
//! Where to start: [`request`] (parsing and the 422 rules), [`resolve`] (the Sources table;
//! `auto` tries the snapshot first, then [`policy`], the Auto-mode table keyed on
//! `cache_warmed_through` vs the watermark), then the executors: [`count`], [`run`] (ids and
//! values jobs) over [`snapshot`], [`cache`] and origin ([`crate::origin`] for filter pages,
//! [`ranked`] for `fts`/`ann`).
//!
//! Behaviour worth knowing:
//! - Ranked ids (`mode: ids` with `fts`/`ann`) are the documented fast-follow: refused with 422.
//! - Jobs always carry `id`, `namespace`, `status`, `progress`, `documents_scanned`,
//!   `created_at`, `mode`, `source`, `effective_source` (and `field` for values, `threads` on
//!   origin). Completed jobs add `completed_at`, `total`, `stable_as_of` (the cut, also sent as
//!   `x-layer-stable-as-of`), and for values `unique_values` and `truncated`; ranked jobs add
//!   `bounded`, `timed_out`, `shards_saturated` and (`ann`) `approximate`.
//! - Job state and results live in gateway memory only and are lost on restart; finished jobs
//!   are bounded per namespace by [`crate::jobs`], and their results go with them.
//! - Count scans run on the control runtime (never on a request shard), with their deadline.

pub mod cache;
pub mod count;
pub mod policy;
pub mod ranked;
pub mod request;
pub mod resolve;
pub mod run;
pub mod snapshot;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use parking_lot::Mutex;
use scatter::values::{FacetValue, ValuesListing};
use serde_json::{Map, Value, json};

use crate::auth::Principal;
use crate::config::Config;
use crate::error::GatewayError;
use crate::handler::{Resp, ShardCtx, json_response};
use crate::jobs::{Job, JobStatus, Jobs};
use crate::namespaces::{decode, parse_query};
use crate::route::Route;
use crate::stable;
use request::{Mode, ScanRequest};
use resolve::Plan;

/// A completed job's results.
#[derive(Debug)]
pub enum ScanResults {
    Ids(Vec<String>),
    Values(ValuesListing),
}

/// The scan feature's shared state: the job registry and completed results, in memory.
#[derive(Debug)]
pub struct Scans {
    pub jobs: Jobs,
    /// `(namespace, job id)` → results of a completed job.
    results: Mutex<HashMap<(String, String), Arc<ScanResults>>>,
    values_cap: usize,
}

impl Scans {
    pub fn new(config: &Config) -> Self {
        Scans {
            jobs: Jobs::new("scan"),
            results: Mutex::new(HashMap::new()),
            values_cap: config.gateway.scan.values_cap,
        }
    }

    /// Distinct values a values listing keeps (`gateway.scan.valuesCap`).
    pub fn values_cap(&self) -> usize {
        self.values_cap
    }

    /// Keeps a completed job's results, dropping those of jobs the registry no longer holds.
    pub fn store_results(&self, ns: &str, id: &str, results: ScanResults) {
        let live: Vec<String> = self.jobs.list(ns).iter().map(|j| j.id.clone()).collect();
        let mut map = self.results.lock();
        map.retain(|(n, j), _| n != ns || live.contains(j));
        if live.iter().any(|j| j == id) {
            map.insert((ns.to_string(), id.to_string()), Arc::new(results));
        }
    }

    fn results(&self, ns: &str, id: &str) -> Option<Arc<ScanResults>> {
        self.results
            .lock()
            .get(&(ns.to_string(), id.to_string()))
            .cloned()
    }

    fn forget(&self, ns: &str, id: &str) {
        self.results
            .lock()
            .remove(&(ns.to_string(), id.to_string()));
    }
}

/// Serves the scan routes (`create_scan`, `list_scans`, `get_scan`, `scan_results`, `delete_scan`).
pub async fn serve(
    ctx: &ShardCtx,
    route: Route<'_>,
    _principal: &Principal,
    parts: http::request::Parts,
    body: Bytes,
) -> Result<Resp, GatewayError> {
    let shared = &ctx.shared;
    let ns = route.namespace.unwrap_or_default();
    let path = parts.uri.path();
    // `…/scans/{id}` or `…/scans/{id}/results`.
    let id = || {
        let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let at = segs.iter().position(|s| *s == "scans").map_or(0, |p| p + 1);
        decode(segs.get(at).copied().unwrap_or_default())
    };
    match route.name {
        "create_scan" => create(ctx, ns, &body).await,
        "list_scans" => {
            let scans = shared.scans.jobs.list_json(ns);
            Ok(json_response(StatusCode::OK, &json!({"scans": scans})))
        }
        "get_scan" => {
            let job = shared.scans.jobs.find(ns, &id())?;
            Ok(job.response(StatusCode::OK))
        }
        "delete_scan" => {
            let id = id();
            shared
                .scans
                .jobs
                .remove(ns, &id)
                .ok_or_else(|| GatewayError::Missing(format!("scan {id:?} not found")))?;
            shared.scans.forget(ns, &id);
            Ok(json_response(
                StatusCode::OK,
                &json!({"status": "deleted", "id": id}),
            ))
        }
        "scan_results" => {
            let job = shared.scans.jobs.find(ns, &id())?;
            let params = parse_query(parts.uri.query().unwrap_or(""));
            results(shared, ns, &job, &params)
        }
        other => Err(GatewayError::Internal(format!(
            "scan route {other} has no handler"
        ))),
    }
}

async fn create(ctx: &ShardCtx, ns: &str, body: &[u8]) -> Result<Resp, GatewayError> {
    let started = Instant::now();
    let shared = &ctx.shared;
    let req = request::parse(body)?;
    let control = shared.control()?.clone();
    if req.mode == Mode::Count {
        let task = count::run(
            shared.clone(),
            control.upstream.clone(),
            ns.to_string(),
            req,
            started,
        );
        let answer = control
            .handle
            .spawn(task)
            .await
            .map_err(|e| GatewayError::Internal(format!("count scan task failed: {e}")))??;
        let mut r = json_response(StatusCode::OK, &answer.body);
        stable::stamp_header(r.headers_mut(), answer.watermark);
        return Ok(r);
    }
    let resolve::Resolved { plan, warm } = resolve::plan(shared, &ctx.upstream, ns, &req).await?;
    let mut base = Map::new();
    base.insert("mode".into(), json!(req.mode.as_str()));
    base.insert("source".into(), json!(req.source.as_str()));
    base.insert("effective_source".into(), json!(plan.source_name()));
    if let Some(f) = &req.field {
        base.insert("field".into(), json!(f));
    }
    if let Plan::Origin { threads, .. } = &plan {
        base.insert("threads".into(), json!(threads));
    }
    let job = shared.scans.jobs.create(ns, base);
    crate::metrics::feature_event("layer_scan_events_total", "event", "job_created", 1);
    if let Plan::SnapshotValues(snapshot) = plan {
        complete_from_snapshot(shared, ns, &req, &snapshot, &job);
        return Ok(job.response(StatusCode::ACCEPTED));
    }
    let (shared_task, job_task, ns_task) = (shared.clone(), job.clone(), ns.to_string());
    let upstream = control.upstream.clone();
    control.handle.spawn(async move {
        run::run(
            shared_task.clone(),
            upstream,
            ns_task.clone(),
            req,
            plan,
            job_task,
        )
        .await;
        if warm {
            crate::warm::ensure_background(&shared_task, &ns_task);
        }
    });
    Ok(job.response(StatusCode::ACCEPTED))
}

/// A values scan the latest snapshot answers: the job completes during the create call.
fn complete_from_snapshot(
    shared: &crate::handler::Shared,
    ns: &str,
    req: &ScanRequest,
    snapshot: &crate::snapshots::SnapshotBody,
    job: &Job,
) {
    let field = req.field.as_deref().unwrap_or_default();
    let mut values: Vec<FacetValue> = snapshot
        .field(field)
        .map(|h| {
            h.values
                .iter()
                .map(|fv| FacetValue {
                    v: fv.v.clone(),
                    n: fv.n,
                })
                .collect()
        })
        .unwrap_or_default();
    values.sort_by(|a, b| b.n.cmp(&a.n).then_with(|| a.v.cmp(&b.v)));
    let distinct = values.len();
    let cap = shared.scans.values_cap();
    let truncated = distinct > cap;
    values.truncate(cap);
    let mut extra = Map::new();
    extra.insert("snapshot_sha".into(), json!(snapshot.sha));
    extra.insert("watermark_ms".into(), json!(snapshot.watermark_ms));
    extra.insert("stable_as_of".into(), json!(snapshot.watermark_ms));
    extra.insert("unique_values".into(), json!(distinct));
    extra.insert("truncated".into(), json!(truncated));
    extra.insert("total".into(), json!(values.len()));
    job.add_scanned(snapshot.row_count);
    shared.scans.store_results(
        ns,
        &job.id,
        ScanResults::Values(ValuesListing {
            values,
            distinct,
            truncated,
        }),
    );
    job.complete(extra);
}

fn page_param(params: &HashMap<String, String>, key: &str) -> Result<Option<usize>, GatewayError> {
    match params.get(key).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(s) => s.parse::<usize>().map(Some).map_err(|_| {
            GatewayError::Validation(format!("{key} must be a non-negative integer, got {s:?}"))
        }),
    }
}

/// `GET …/scans/{id}/results`: `{ids, total}` or `{values, total, truncated}`; no `limit` means
/// every result from `offset` on.
fn results(
    shared: &crate::handler::Shared,
    ns: &str,
    job: &Job,
    params: &HashMap<String, String>,
) -> Result<Resp, GatewayError> {
    match job.status() {
        JobStatus::Completed => {}
        JobStatus::Running => {
            return Err(GatewayError::PreconditionFailed(format!(
                "scan {} is still running; read results once its status is completed",
                job.id
            )));
        }
        JobStatus::Failed => {
            return Err(GatewayError::PreconditionFailed(format!(
                "scan {} failed: {}",
                job.id,
                job.to_json()
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error")
            )));
        }
    }
    let results = shared
        .scans
        .results(ns, &job.id)
        .ok_or_else(|| GatewayError::Missing(format!("results of scan {:?} are gone", job.id)))?;
    let offset = page_param(params, "offset")?.unwrap_or(0);
    let limit = page_param(params, "limit")?;
    let window = |len: usize| {
        let start = offset.min(len);
        let end = limit.map_or(len, |l| start.saturating_add(l).min(len));
        start..end
    };
    let body = match &*results {
        ScanResults::Ids(ids) => json!({"ids": ids[window(ids.len())], "total": ids.len()}),
        ScanResults::Values(listing) => {
            let values: Vec<Value> = listing.values[window(listing.values.len())]
                .iter()
                .map(|fv| json!({"v": fv.v, "n": fv.n}))
                .collect();
            json!({
                "values": values,
                "total": listing.values.len(),
                "truncated": listing.truncated,
            })
        }
    };
    let wm = job.get("stable_as_of").and_then(|v| v.as_u64());
    let mut r = json_response(StatusCode::OK, &body);
    stable::stamp_header(r.headers_mut(), wm);
    Ok(r)
}
