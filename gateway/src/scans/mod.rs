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
//! - Kept results share one gateway-wide byte budget ([`RESULTS_BUDGET_BYTES`], see
//!   [`results`]): the oldest completed jobs' results are evicted first; an evicted job stays
//!   listed with `results_evicted: true` and its results route answers 404 `not_found` saying so.
//! - At most [`MAX_RUNNING_PER_NAMESPACE`] ids/values jobs run per namespace; another create
//!   answers 412 `precondition_failed` (the gateway's error set has no 429) naming the cap, until
//!   one finishes or is deleted.
//! - Count scans run on the control runtime (never on a request shard), with their deadline.

pub mod cache;
pub mod count;
pub mod policy;
pub mod ranked;
pub mod request;
pub mod resolve;
pub mod results;
pub mod run;
pub mod snapshot;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
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
pub use results::{RESULTS_BUDGET_BYTES, Reservation, ResultStore, ScanResults};

/// Ids and values jobs one namespace may have running at once.
pub const MAX_RUNNING_PER_NAMESPACE: usize = 8;

/// The scan feature's shared state: the job registry and completed results, in memory.
#[derive(Debug)]
pub struct Scans {
    pub jobs: Jobs,
    /// `(namespace, job id)` → results of a completed job, under the byte budget.
    results: ResultStore,
    values_cap: usize,
}

impl Scans {
    pub fn new(config: &Config) -> Self {
        Self::with_budget(config, RESULTS_BUDGET_BYTES)
    }

    /// Like [`Scans::new`] with another results budget (tests).
    pub fn with_budget(config: &Config, budget_bytes: usize) -> Self {
        Scans {
            jobs: Jobs::new("scan"),
            results: ResultStore::new(budget_bytes),
            values_cap: config.gateway.scan.values_cap,
        }
    }

    /// Distinct values a values listing keeps (`gateway.scan.valuesCap`).
    pub fn values_cap(&self) -> usize {
        self.values_cap
    }

    /// The results budget in bytes.
    pub fn budget(&self) -> usize {
        self.results.limit()
    }

    /// Registers a job; `bounded` jobs (ones that will run) count against
    /// [`MAX_RUNNING_PER_NAMESPACE`]. Results of finished jobs the registry dropped go too.
    fn create_job(
        &self,
        ns: &str,
        base: Map<String, Value>,
        bounded: bool,
    ) -> Result<Arc<Job>, GatewayError> {
        let cap = bounded.then_some(MAX_RUNNING_PER_NAMESPACE);
        match self.jobs.create_bounded(ns, base, cap) {
            Ok(created) => {
                for dropped in &created.dropped {
                    self.results.forget(ns, &dropped.id);
                }
                Ok(created.job)
            }
            Err(running) => {
                crate::metrics::feature_event("layer_scan_events_total", "event", "job_refused", 1);
                Err(GatewayError::PreconditionFailed(format!(
                    "namespace {ns:?} already has {running} scan jobs running (at most \
                     {MAX_RUNNING_PER_NAMESPACE} per namespace); retry once one completes, or \
                     delete one"
                )))
            }
        }
    }

    /// An empty reservation for a running job's gathered ids.
    pub fn reservation(&self) -> Reservation<'_> {
        self.results.reservation()
    }

    /// Marks the jobs whose results were evicted.
    pub fn mark_evicted(&self, evicted: &[(String, String)]) {
        for (ns, id) in evicted {
            if let Some(job) = self.jobs.get(ns, id) {
                job.set("results_evicted", Value::Bool(true));
            }
            crate::metrics::feature_event("layer_scan_events_total", "event", "results_evicted", 1);
        }
    }

    /// Keeps a completed job's results (releasing its reservation), evicting the oldest kept
    /// results to stay within the budget. `Err` with the reason when they alone exceed it.
    pub fn store_results(
        &self,
        ns: &str,
        id: &str,
        results: ScanResults,
        reservation: Reservation<'_>,
    ) -> Result<(), String> {
        if self.jobs.get(ns, id).is_none() {
            return Ok(());
        }
        let evicted = self
            .results
            .insert(ns, id, results, reservation)
            .map_err(|bytes| self.over_budget(bytes))?;
        self.mark_evicted(&evicted);
        // Deleted while its results were stored: do not keep them.
        if self.jobs.get(ns, id).is_none() {
            self.results.forget(ns, id);
        }
        Ok(())
    }

    /// The failure of a job whose results do not fit the budget.
    pub fn over_budget(&self, bytes: usize) -> String {
        format!(
            "the scan's results (about {} MiB so far) exceed the gateway's scan results budget \
             of {} MiB; narrow the filter",
            bytes.div_ceil(1 << 20),
            self.budget() >> 20
        )
    }

    fn results(&self, ns: &str, id: &str) -> Option<Arc<ScanResults>> {
        self.results.get(ns, id)
    }

    fn forget(&self, ns: &str, id: &str) {
        self.results.forget(ns, id);
    }
}

/// The scan id of `…/scans/{id}` or `…/scans/{id}/results`: the path is
/// `/v2/namespaces/{ns}/scans/{id}[/results]`, so the id is the fifth segment whatever the
/// namespace is called (even `scans`).
fn path_id(path: &str) -> String {
    decode(
        path.trim_start_matches('/')
            .split('/')
            .nth(4)
            .unwrap_or_default(),
    )
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
    let id = || path_id(parts.uri.path());
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
            results(&shared.scans, ns, &job, &params)
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
    // A snapshot listing completes during this call: it never runs, so it is not capped.
    let runs = !matches!(plan, Plan::SnapshotValues(_));
    let job = shared.scans.create_job(ns, base, runs)?;
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
    let kept = shared.scans.store_results(
        ns,
        &job.id,
        ScanResults::Values(ValuesListing {
            values,
            distinct,
            truncated,
        }),
        shared.scans.reservation(),
    );
    match kept {
        Ok(()) => job.complete(extra),
        Err(why) => job.fail(why),
    }
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
    scans: &Scans,
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
    let results = scans.results(ns, &job.id).ok_or_else(|| {
        let evicted = job.get("results_evicted") == Some(Value::Bool(true));
        GatewayError::Missing(if evicted {
            format!(
                "the results of scan {:?} were evicted: the gateway keeps at most {} MiB of \
                 completed scan results and drops the oldest first; run the scan again",
                job.id,
                scans.budget() >> 20
            )
        } else {
            format!("the results of scan {:?} are gone", job.id)
        })
    })?;
    let offset = page_param(params, "offset")?.unwrap_or(0);
    let limit = page_param(params, "limit")?;
    let window = |len: usize| {
        let start = offset.min(len);
        let end = limit.map_or(len, |l| start.saturating_add(l).min(len));
        start..end
    };
    let body = match &*results {
        ScanResults::Ids(ids) => results::ids_body(&ids[window(ids.len())], ids.len()),
        ScanResults::Values(listing) => results::values_body(
            &listing.values[window(listing.values.len())],
            listing.values.len(),
            listing.truncated,
        ),
    };
    let wm = job.get("stable_as_of").and_then(|v| v.as_u64());
    let mut r = http::Response::new(Full::new(body));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    stable::stamp_header(r.headers_mut(), wm);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[test]
    fn the_scan_id_is_the_fifth_path_segment_even_in_a_namespace_named_scans() {
        assert_eq!(path_id("/v2/namespaces/scans/scans/scan-1"), "scan-1");
        assert_eq!(
            path_id("/v2/namespaces/scans/scans/scan-1/results"),
            "scan-1"
        );
        assert_eq!(path_id("/v2/namespaces/p/scans/scan%2D2/results"), "scan-2");
    }

    fn complete(scans: &Scans, ns: &str, n: usize) -> Arc<Job> {
        let job = scans.create_job(ns, Map::new(), true).unwrap();
        let ids = (0..n).map(|i| format!("{ns}-{i:03}")).collect();
        scans
            .store_results(ns, &job.id, ScanResults::Ids(ids), scans.reservation())
            .unwrap();
        job.complete(Map::new());
        job
    }

    fn body(r: Resp) -> Value {
        let bytes = futures_util::FutureExt::now_or_never(r.into_body().collect())
            .expect("a full body is ready")
            .expect("infallible")
            .to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn evicted_results_answer_404_naming_the_eviction_and_the_job_stays_listed() {
        let one = ScanResults::Ids((0..50).map(|i| format!("ns-{i:03}")).collect()).bytes();
        let scans = Scans::with_budget(&Config::default(), one * 2);
        let first = complete(&scans, "ns", 50);
        let second = complete(&scans, "ns", 50);
        let page = HashMap::from([("limit".to_string(), "2".to_string())]);
        let r = results(&scans, "ns", &first, &page).unwrap();
        assert_eq!(body(r), json!({"ids": ["ns-000", "ns-001"], "total": 50}));
        let third = complete(&scans, "ns", 50);
        let err = results(&scans, "ns", &first, &HashMap::new()).unwrap_err();
        assert_eq!(err.status(), StatusCode::NOT_FOUND);
        assert_eq!(err.body()["error"], "not_found");
        assert!(err.to_string().contains("evicted"), "{err}");
        assert_eq!(first.to_json()["results_evicted"], true);
        assert_eq!(scans.jobs.list("ns").len(), 3, "evicted jobs stay listed");
        for kept in [&second, &third] {
            let all = body(results(&scans, "ns", kept, &HashMap::new()).unwrap());
            assert_eq!(all["ids"].as_array().unwrap().len(), 50);
            assert!(kept.get("results_evicted").is_none());
        }
        // Results larger than the whole budget fail the job instead of evicting everything.
        let big = scans.create_job("ns", Map::new(), true).unwrap();
        let ids = (0..200).map(|i| format!("ns-{i:03}")).collect();
        let why = scans
            .store_results("ns", &big.id, ScanResults::Ids(ids), scans.reservation())
            .unwrap_err();
        assert!(why.contains("budget"), "{why}");
        assert!(results(&scans, "ns", &second, &HashMap::new()).is_ok());
        // A deleted job's results free their room.
        scans.jobs.remove("ns", &second.id);
        scans.forget("ns", &second.id);
        complete(&scans, "ns", 50);
        assert!(results(&scans, "ns", &third, &HashMap::new()).is_ok());
    }

    #[test]
    fn running_jobs_are_capped_per_namespace() {
        let scans = Scans::new(&Config::default());
        let running: Vec<Arc<Job>> = (0..MAX_RUNNING_PER_NAMESPACE)
            .map(|_| scans.create_job("ns", Map::new(), true).unwrap())
            .collect();
        let err = scans.create_job("ns", Map::new(), true).unwrap_err();
        assert_eq!(err.status(), StatusCode::PRECONDITION_FAILED);
        assert!(err.to_string().contains("at most 8"), "{err}");
        assert!(scans.create_job("other", Map::new(), true).is_ok());
        let snapshot_served = scans.create_job("ns", Map::new(), false);
        assert!(
            snapshot_served.is_ok(),
            "jobs that complete at creation are not capped"
        );
        snapshot_served.unwrap().complete(Map::new());
        running[0].complete(Map::new());
        assert!(scans.create_job("ns", Map::new(), true).is_ok());
    }
}
