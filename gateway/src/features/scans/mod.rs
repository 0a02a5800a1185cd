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

pub mod count;
pub mod ranked;
pub mod request;
pub mod resolve;
pub mod results;
pub mod run;
pub mod snapshot;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use http::StatusCode;
use http_body_util::Full;
use scatter::values::{FacetValue, ValuesListing};
use serde_json::json;

use http::Method;
use serde::Serialize;

use crate::core::config::Scope;
use crate::core::error::GatewayError;
use crate::core::http::{Resp, json_response};
use crate::core::jobs::{JobKind, JobStatus, Jobs};
use crate::core::router::{Req, Route, handler};
use crate::core::{Core, ShardCtx, stable};
use crate::sources::snapshot_store::{SnapshotBody, SnapshotStore};
use crate::sources::warmth::Warmth;
use request::{Mode, ScanRequest};
use resolve::Plan;
pub use results::{RESULTS_BUDGET_BYTES, Reservation, ResultStore, ScanResults};

const SCAN_TOTAL: &str = "hevlayer_scan_total";
const SCAN_DURATION: &str = "hevlayer_scan_duration_seconds";

/// A scan finished (a count answered, an ids or values job completed or failed): the catalog's
/// `hevlayer_scan_total` and `hevlayer_scan_duration_seconds` with `namespace` (bounded),
/// `store_kind`, `mode`, `selector` (`filters` or `all`), `served_by` (the plan's source) and
/// `status` (`ok`, `failed`).
pub(crate) fn scan_finished(
    ns: &str,
    mode: &str,
    filtered: bool,
    served_by: &str,
    status: &str,
    elapsed: std::time::Duration,
) {
    use crate::core::labeled::{self, bounded_namespace, labels};
    let l = labels(&[
        ("namespace", &bounded_namespace(ns)),
        ("store_kind", "turbopuffer"),
        ("mode", mode),
        ("selector", if filtered { "filters" } else { "all" }),
        ("served_by", served_by),
        ("status", status),
    ]);
    labeled::count(SCAN_TOTAL, l.clone(), 1);
    labeled::observe(SCAN_DURATION, l, elapsed);
}

/// A scan job (ids and values modes).
#[derive(Debug)]
pub struct ScanJob;

/// What a scan job was asked, fixed at creation.
#[derive(Debug, Serialize)]
pub struct ScanSpec {
    pub mode: &'static str,
    pub source: &'static str,
    pub effective_source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Origin fan-out, clamped (origin plans only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
}

/// What a scan job found.
#[derive(Debug, Default, Serialize)]
pub struct ScanOutcome {
    pub total: Option<usize>,
    pub stable_as_of: Option<u64>,
    /// Values mode: distinct values seen, and whether the listing was cut at the cap.
    pub unique_values: Option<usize>,
    pub truncated: Option<bool>,
    /// Served from the latest snapshot: its sha and cut.
    pub snapshot_sha: Option<String>,
    pub watermark_ms: Option<u64>,
    /// Ranked selectors (`fts`, `ann`).
    pub bounded: Option<bool>,
    pub timed_out: Option<bool>,
    pub shards_saturated: Option<u32>,
    pub approximate: Option<bool>,
    /// The results were evicted under the results budget.
    pub results_evicted: Option<bool>,
}

impl JobKind for ScanJob {
    const PREFIX: &'static str = "scan";
    type Spec = ScanSpec;
    type Outcome = ScanOutcome;
    fn stable_as_of(o: &ScanOutcome) -> Option<u64> {
        o.stable_as_of
    }
}

/// A scan job's record.
pub type Job = crate::core::jobs::Job<ScanJob>;

/// Ids and values jobs one namespace may have running at once.
pub const MAX_RUNNING_PER_NAMESPACE: usize = 8;

/// The scan feature: the job registry and completed results (in memory), and the sources scans
/// read.
pub struct Scans {
    pub core: Arc<Core>,
    pub snapshots: Arc<SnapshotStore>,
    pub warmth: Arc<Warmth>,
    pub jobs: Jobs<ScanJob>,
    /// `(namespace, job id)` → results of a completed job, under the byte budget.
    results: ResultStore,
    values_cap: usize,
}

impl Scans {
    pub fn new(core: Arc<Core>, snapshots: Arc<SnapshotStore>, warmth: Arc<Warmth>) -> Arc<Self> {
        crate::core::metrics::declare_event("layer_scan_events_total");
        use crate::core::labeled::{Kind, describe};
        describe(SCAN_TOTAL, Kind::Counter, "Scans finished.");
        describe(SCAN_DURATION, Kind::Histogram, "Scan duration.");
        Arc::new(Self::with_budget(
            core,
            snapshots,
            warmth,
            RESULTS_BUDGET_BYTES,
        ))
    }

    /// Like [`Scans::new`] with another results budget (tests).
    pub fn with_budget(
        core: Arc<Core>,
        snapshots: Arc<SnapshotStore>,
        warmth: Arc<Warmth>,
        budget_bytes: usize,
    ) -> Self {
        let values_cap = core.config.gateway.scan.values_cap;
        Scans {
            core,
            snapshots,
            warmth,
            jobs: Jobs::new(),
            results: ResultStore::new(budget_bytes),
            values_cap,
        }
    }

    /// The scan routes.
    pub fn routes(self: &Arc<Self>) -> Vec<Route> {
        use Method as M;
        use Scope::Read;
        let s = self;
        vec![
            Route::new(
                M::POST,
                "/v2/namespaces/{ns}/scans",
                "create_scan",
                Read,
                handler(s.clone(), Scans::create_route),
            ),
            Route::new(
                M::GET,
                "/v2/namespaces/{ns}/scans",
                "list_scans",
                Read,
                handler(s.clone(), Scans::list),
            ),
            Route::new(
                M::GET,
                "/v2/namespaces/{ns}/scans/{id}",
                "get_scan",
                Read,
                handler(s.clone(), Scans::get),
            ),
            Route::new(
                M::DELETE,
                "/v2/namespaces/{ns}/scans/{id}",
                "delete_scan",
                Read,
                handler(s.clone(), Scans::delete),
            ),
            Route::new(
                M::GET,
                "/v2/namespaces/{ns}/scans/{id}/results",
                "scan_results",
                Read,
                handler(s.clone(), Scans::results_route),
            ),
        ]
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
        spec: ScanSpec,
        bounded: bool,
    ) -> Result<Arc<Job>, GatewayError> {
        let cap = bounded.then_some(MAX_RUNNING_PER_NAMESPACE);
        match self.jobs.create_bounded(ns, spec, cap) {
            Ok(created) => {
                for dropped in &created.dropped {
                    self.results.forget(ns, &dropped.id);
                }
                Ok(created.job)
            }
            Err(running) => {
                crate::core::metrics::feature_event(
                    "layer_scan_events_total",
                    "event",
                    "job_refused",
                    1,
                );
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
                job.update(|o| o.results_evicted = Some(true));
            }
            crate::core::metrics::feature_event(
                "layer_scan_events_total",
                "event",
                "results_evicted",
                1,
            );
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

impl Scans {
    async fn create_route(
        self: Arc<Self>,
        ctx: Arc<ShardCtx>,
        req: Req,
    ) -> Result<Resp, GatewayError> {
        create(&self, &ctx, req.ns(), &req.body).await
    }

    async fn list(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let scans = self.jobs.list_json(req.ns());
        Ok(json_response(StatusCode::OK, &json!({"scans": scans})))
    }

    async fn get(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let job = self.jobs.find(req.ns(), &req.decoded("id"))?;
        Ok(job.response(StatusCode::OK))
    }

    async fn delete(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let (ns, id) = (req.ns(), req.decoded("id"));
        self.jobs
            .remove(ns, &id)
            .ok_or_else(|| GatewayError::Missing(format!("scan {id:?} not found")))?;
        self.forget(ns, &id);
        Ok(json_response(
            StatusCode::OK,
            &json!({"status": "deleted", "id": id}),
        ))
    }

    async fn results_route(
        self: Arc<Self>,
        _: Arc<ShardCtx>,
        req: Req,
    ) -> Result<Resp, GatewayError> {
        let ns = req.ns();
        let job = self.jobs.find(ns, &req.decoded("id"))?;
        results(&self, ns, &job, &req.query_params())
    }
}

async fn create(
    scans: &Arc<Scans>,
    ctx: &ShardCtx,
    ns: &str,
    body: &[u8],
) -> Result<Resp, GatewayError> {
    let started = Instant::now();
    let req = request::parse(body, &scans.core.limits)?;
    let control = scans.core.control()?.clone();
    if req.mode == Mode::Count {
        let task = count::run(
            scans.clone(),
            control.upstream(ns).clone(),
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
    let resolve::Resolved { plan, warm } =
        resolve::plan(scans, &ctx.upstream(ns), ns, &req).await?;
    let spec = ScanSpec {
        mode: req.mode.as_str(),
        source: req.source.as_str(),
        effective_source: plan.source_name(),
        field: req.field.clone(),
        threads: match &plan {
            Plan::Origin { threads, .. } => Some(*threads),
            _ => None,
        },
    };
    // A snapshot listing completes during this call: it never runs, so it is not capped.
    let runs = !matches!(plan, Plan::SnapshotValues(_));
    let job = scans.create_job(ns, spec, runs)?;
    crate::core::metrics::feature_event("layer_scan_events_total", "event", "job_created", 1);
    if let Plan::SnapshotValues(snapshot) = plan {
        let started = std::time::Instant::now();
        complete_from_snapshot(scans, ns, &req, &snapshot, &job);
        scan_finished(
            ns,
            req.mode.as_str(),
            req.filters.is_some(),
            "snapshot",
            "ok",
            started.elapsed(),
        );
        return Ok(job.response(StatusCode::ACCEPTED));
    }
    let (scans_task, job_task, ns_task) = (scans.clone(), job.clone(), ns.to_string());
    let upstream = control.upstream(ns).clone();
    control.handle.spawn(async move {
        run::run(
            scans_task.clone(),
            upstream,
            ns_task.clone(),
            req,
            plan,
            job_task,
        )
        .await;
        if warm {
            scans_task.warmth.request_background(&ns_task);
        }
    });
    Ok(job.response(StatusCode::ACCEPTED))
}

/// A values scan the latest snapshot answers: the job completes during the create call.
fn complete_from_snapshot(
    scans: &Scans,
    ns: &str,
    req: &ScanRequest,
    snapshot: &SnapshotBody,
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
    let cap = scans.values_cap();
    let truncated = distinct > cap;
    values.truncate(cap);
    let total = values.len();
    job.add_scanned(snapshot.row_count);
    let kept = scans.store_results(
        ns,
        &job.id,
        ScanResults::Values(ValuesListing {
            values,
            distinct,
            truncated,
        }),
        scans.reservation(),
    );
    match kept {
        Ok(()) => job.complete(|o| {
            o.snapshot_sha = Some(snapshot.sha.clone());
            o.watermark_ms = Some(snapshot.watermark_ms);
            o.stable_as_of = Some(snapshot.watermark_ms);
            o.unique_values = Some(distinct);
            o.truncated = Some(truncated);
            o.total = Some(total);
        }),
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
                job.error().as_deref().unwrap_or("unknown error")
            )));
        }
    }
    let results = scans.results(ns, &job.id).ok_or_else(|| {
        let evicted = job.outcome(|o| o.results_evicted == Some(true));
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
    let wm = job.outcome(|o| o.stable_as_of);
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

    fn spec() -> ScanSpec {
        ScanSpec {
            mode: "ids",
            source: "origin",
            effective_source: "origin",
            field: None,
            threads: None,
        }
    }

    fn scans_with_budget(budget: usize) -> Scans {
        let core = crate::core::test_core();
        let snapshots = SnapshotStore::new(core.clone());
        let warmth = Warmth::new(core.watcher.clone());
        Scans::with_budget(core, snapshots, warmth, budget)
    }

    fn complete(scans: &Scans, ns: &str, n: usize) -> Arc<Job> {
        let job = scans.create_job(ns, spec(), true).unwrap();
        let ids = (0..n).map(|i| format!("{ns}-{i:03}")).collect();
        scans
            .store_results(ns, &job.id, ScanResults::Ids(ids), scans.reservation())
            .unwrap();
        job.complete(|_| {});
        job
    }

    fn body(r: Resp) -> serde_json::Value {
        let bytes = futures_util::FutureExt::now_or_never(r.into_body().collect())
            .expect("a full body is ready")
            .expect("infallible")
            .to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn evicted_results_answer_404_naming_the_eviction_and_the_job_stays_listed() {
        let one = ScanResults::Ids((0..50).map(|i| format!("ns-{i:03}")).collect()).bytes();
        let scans = scans_with_budget(one * 2);
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
            assert!(kept.outcome(|o| o.results_evicted.is_none()));
        }
        // Results larger than the whole budget fail the job instead of evicting everything.
        let big = scans.create_job("ns", spec(), true).unwrap();
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
        let scans = scans_with_budget(RESULTS_BUDGET_BYTES);
        let running: Vec<Arc<Job>> = (0..MAX_RUNNING_PER_NAMESPACE)
            .map(|_| scans.create_job("ns", spec(), true).unwrap())
            .collect();
        let err = scans.create_job("ns", spec(), true).unwrap_err();
        assert_eq!(err.status(), StatusCode::PRECONDITION_FAILED);
        assert!(err.to_string().contains("at most 8"), "{err}");
        assert!(scans.create_job("other", spec(), true).is_ok());
        let snapshot_served = scans.create_job("ns", spec(), false);
        assert!(
            snapshot_served.is_ok(),
            "jobs that complete at creation are not capped"
        );
        snapshot_served.unwrap().complete(|_| {});
        running[0].complete(|_| {});
        assert!(scans.create_job("ns", spec(), true).is_ok());
    }
}
