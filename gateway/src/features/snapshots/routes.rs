//! The snapshot routes. Shapes follow the hevlayer client's models: jobs always carry `id`,
//! `namespace`, `status`, `progress`, `documents_scanned`, `created_at`, `field` and `source`;
//! history is a bare array; bodies carry `fields_skipped` (possibly empty); activity is
//! `{events, next_cursor?, truncated?}`.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use super::Job;
use super::{Snapshots, compute};
use crate::core::ShardCtx;
use crate::core::auth::Principal;
use crate::core::error::GatewayError;
use crate::core::http::{Resp, json_response, now_ms};
use crate::core::router::Req;
use crate::core::stable;
use crate::core::store::StoreError;
use crate::sources::auto::{AutoInput, CacheState, Live};
use crate::sources::snapshot_store::{Policy, SnapshotBody, durable};

/// Default and cap of `limit` on history and activity.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

impl Snapshots {
    pub(super) async fn create_route(
        self: Arc<Self>,
        _: Arc<ShardCtx>,
        req: Req,
    ) -> Result<Resp, GatewayError> {
        create(&self, req.ns(), &req.body).await
    }

    pub(super) async fn list_jobs(
        self: Arc<Self>,
        _: Arc<ShardCtx>,
        req: Req,
    ) -> Result<Resp, GatewayError> {
        let jobs = self.jobs.list_json(req.ns());
        Ok(json_response(
            StatusCode::OK,
            &json!({"snapshot_jobs": jobs}),
        ))
    }

    pub(super) async fn get_job(
        self: Arc<Self>,
        _: Arc<ShardCtx>,
        req: Req,
    ) -> Result<Resp, GatewayError> {
        let job = self.jobs.find(req.ns(), &req.decoded("id"))?;
        Ok(job.response(StatusCode::OK))
    }

    pub(super) async fn history_route(
        self: Arc<Self>,
        _: Arc<ShardCtx>,
        req: Req,
    ) -> Result<Resp, GatewayError> {
        history(&self, req.ns(), &req.query_params()).await
    }

    pub(super) async fn get_snapshot(
        self: Arc<Self>,
        _: Arc<ShardCtx>,
        req: Req,
    ) -> Result<Resp, GatewayError> {
        let body = by_sha(&self, req.ns(), &req.decoded("sha")).await?;
        let mut r = json_response(
            StatusCode::OK,
            &serde_json::to_value(&body).unwrap_or_default(),
        );
        stable::stamp_header(r.headers_mut(), Some(body.watermark_ms));
        Ok(r)
    }

    pub(super) async fn get_policy(
        self: Arc<Self>,
        _: Arc<ShardCtx>,
        req: Req,
    ) -> Result<Resp, GatewayError> {
        let p = self.store.policy(req.ns());
        Ok(json_response(
            StatusCode::OK,
            &serde_json::to_value(p).unwrap_or_default(),
        ))
    }

    pub(super) async fn put_policy(
        self: Arc<Self>,
        _: Arc<ShardCtx>,
        req: Req,
    ) -> Result<Resp, GatewayError> {
        let ns = req.ns();
        crate::core::http::json_body(&req.body, &self.core.limits)?;
        let p = Policy::parse(&req.body)?;
        let bytes = serde_json::to_vec(&p).unwrap_or_default();
        self.store
            .objects()
            .put(&durable::policy_key(ns), Bytes::from(bytes))
            .await?;
        if !p.facet_fields.is_empty() {
            self.core.watcher.register(ns);
        }
        self.store.set_policy(ns, p.clone());
        Ok(json_response(
            StatusCode::OK,
            &serde_json::to_value(p).unwrap_or_default(),
        ))
    }

    pub(super) async fn activity_route(
        self: Arc<Self>,
        _: Arc<ShardCtx>,
        req: Req,
    ) -> Result<Resp, GatewayError> {
        activity(&self, &req.principal, &req.query_params()).await
    }
}

fn parse_limit(params: &HashMap<String, String>) -> Result<usize, GatewayError> {
    match params.get("limit").map(String::as_str) {
        None | Some("") => Ok(DEFAULT_LIMIT),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .map(|n| n.min(MAX_LIMIT))
            .ok_or_else(|| {
                GatewayError::Validation(format!("limit must be a positive integer, got {s:?}"))
            }),
    }
}

/// The sources a manual job may read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Auto,
    Stored,
    Cache,
    Origin,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Auto => "auto",
            Source::Stored => "stored",
            Source::Cache => "cache",
            Source::Origin => "origin",
        }
    }
}

struct CreateRequest {
    field: String,
    source: Source,
    filters: Option<Value>,
    page_size: usize,
}

fn parse_create(body: &[u8], limits: &scatter::Limits) -> Result<CreateRequest, GatewayError> {
    let v: Value = crate::core::http::json_body(body, limits)?;
    let obj = v
        .as_object()
        .ok_or_else(|| GatewayError::Validation("request body must be a JSON object".into()))?;
    let field = obj
        .get("field")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| GatewayError::Validation("field is required (a non-empty string)".into()))?
        .to_string();
    if field.starts_with(scatter::RESERVED_PREFIX) {
        return Err(GatewayError::Validation(format!(
            "{field:?} is a reserved attribute"
        )));
    }
    let source = match obj.get("source") {
        None | Some(Value::Null) => Source::Auto,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Source::Auto,
            "stored" => Source::Stored,
            "cache" => Source::Cache,
            "origin" => Source::Origin,
            other => {
                return Err(GatewayError::Validation(format!(
                    "source must be auto, stored, cache or origin, got {other:?}"
                )));
            }
        },
        Some(_) => return Err(GatewayError::Validation("source must be a string".into())),
    };
    let filters = match obj.get("filters") {
        None | Some(Value::Null) => None,
        Some(f @ Value::Array(_)) => Some(f.clone()),
        Some(_) => {
            return Err(GatewayError::Validation(
                "filters must be a Turbopuffer filter array".into(),
            ));
        }
    };
    let page_size = match obj.get("page_size") {
        None | Some(Value::Null) => 1000,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=crate::sources::origin::MAX_PAGE as u64).contains(n))
            .ok_or_else(|| {
                GatewayError::Validation("page_size must be an integer from 1 to 10000".into())
            })? as usize,
    };
    Ok(CreateRequest {
        field,
        source,
        filters,
        page_size,
    })
}

async fn create(snaps: &Arc<Snapshots>, ns: &str, body: &[u8]) -> Result<Resp, GatewayError> {
    let req = parse_create(body, &snaps.core.limits)?;
    // Stored snapshots serve unfiltered fields they materialized completely.
    let stored = match req.source {
        Source::Auto | Source::Stored if req.filters.is_none() => {
            match snaps.store.latest(ns).await {
                Ok(l) => l.filter(|l| l.field(&req.field).is_some()),
                Err(e) if req.source == Source::Stored => return Err(e),
                Err(_) => None,
            }
        }
        _ => None,
    };
    if req.source == Source::Stored && stored.is_none() {
        return Err(GatewayError::PreconditionFailed(if req.filters.is_some() {
            "source stored serves unfiltered fields only; use origin or cache for a filtered snapshot".into()
        } else {
            format!(
                "the latest stored snapshot of {ns:?} does not have field {:?} (configure it in facetFields or use source origin)",
                req.field
            )
        }));
    }
    // Not stored: `cache` reads the document cache (503 when it is down, 422 for a filter the
    // cache evaluator cannot run); `auto` follows the scans' Auto-mode table (cache when it is
    // populated and the filter compiles there, else origin; a stale cache starts a warm).
    // (filter, cut): the cut is fixed here, so the body's watermark is the cut its filter used.
    let mut cache_filter = None;
    let mut start_warm = false;
    let effective = match (req.source, &stored) {
        (_, Some(_)) => Source::Stored,
        (Source::Origin, _) => Source::Origin,
        (Source::Stored, None) => unreachable_source()?,
        (source, None) => {
            let tier = &snaps.core.cache.tier;
            let state = crate::sources::cache_rows::state_of(&snaps.core.cache, ns).await;
            let warmed = snaps.warmth.warmed_through(ns);
            let filter = crate::sources::cache_rows::row_filter(req.filters.as_ref(), warmed);
            if source == Source::Cache {
                if state == CacheState::Unavailable {
                    return Err(GatewayError::CacheCold(format!(
                        "the document cache is {}; snapshot jobs with source cache need it",
                        tier.health().state.as_str()
                    )));
                }
                let f = filter.map_err(|e| GatewayError::Validation(e.to_string()))?;
                cache_filter = Some((f, warmed.unwrap_or_else(now_ms)));
                Source::Cache
            } else {
                let decision = crate::sources::auto::auto(AutoInput {
                    cache: state,
                    warmed_through: warmed,
                    last_write_ms: snaps.core.watcher.last_write_ms(ns),
                    cache_can_filter: filter.is_ok(),
                });
                start_warm = decision.warm;
                match (decision.source, filter) {
                    (Live::Cache, Ok(f)) => {
                        cache_filter = Some((f, warmed.unwrap_or_else(now_ms)));
                        Source::Cache
                    }
                    _ => Source::Origin,
                }
            }
        }
    };
    let spec = super::SnapshotSpec {
        field: req.field.clone(),
        source: req.source.as_str(),
        effective_source: effective.as_str(),
    };
    let job = snaps.jobs.create(ns, spec);
    if let Some(l) = stored {
        job.add_scanned(l.row_count);
        let (sha, cut) = (l.sha.clone(), l.watermark_ms);
        job.complete(|o| {
            o.sha = Some(sha);
            o.stable_as_of = Some(cut);
        });
        return Ok(job.response(StatusCode::ACCEPTED));
    }
    let control = snaps.core.control()?.clone();
    let (snaps_task, ns_owned, job_task) = (snaps.clone(), ns.to_string(), job.clone());
    match cache_filter {
        Some((filter, cut)) => control.handle.spawn(async move {
            run_cache_job(&snaps_task, &ns_owned, &req.field, &filter, cut, &job_task).await;
        }),
        None => {
            let upstream = control.upstream(&ns_owned).clone();
            control.handle.spawn(async move {
                run_origin_job(&snaps_task, &upstream, &ns_owned, req, &job_task).await;
            })
        }
    };
    // Like scans: a background warm starts once the job has its cut.
    if start_warm {
        snaps.warmth.request_background(ns);
    }
    Ok(job.response(StatusCode::ACCEPTED))
}

fn unreachable_source() -> Result<Source, GatewayError> {
    Err(GatewayError::Internal(
        "source stored without a stored snapshot reached job creation".into(),
    ))
}

/// A histogram over the documents the cache holds, at the warmed cut (`cache_warmed_through`,
/// else the job's start). Stored by sha only (not part of the history): the cache may be partial.
async fn run_cache_job(
    snaps: &Arc<Snapshots>,
    ns: &str,
    field: &str,
    filter: &scatter::filter_eval::RowFilter,
    watermark_ms: u64,
    job: &Job,
) {
    const METRIC: &str = "layer_snapshot_events_total";
    let mut facets = super::facets::Facets::new(&[field.to_string()], snaps.field_cap);
    let pass = crate::sources::cache_rows::scan_rows(
        &snaps.core.cache.tier,
        ns,
        filter,
        None,
        |page, _| {
            job.add_scanned(page.len() as u64);
            for m in page {
                if let Ok(row) = serde_json::from_slice::<Value>(&m.raw) {
                    facets.add_row(&row);
                }
            }
            if job.is_cancelled() {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        },
    )
    .await;
    if let Err(e) = pass {
        crate::core::metrics::feature_event(METRIC, "event", "job_failed", 1);
        job.fail(format!("cache scan failed: {e}"));
        return;
    }
    let (rows, hist, skipped) = facets.finish();
    let body = SnapshotBody::new(ns, watermark_ms, rows, hist, skipped);
    let written = durable::put_body(snaps.store.objects(), &body).await;
    finish(job, written.as_ref().map(|()| &body));
}

/// Completes a job with the body it wrote, or fails it with why the body was not written.
fn finish(job: &Job, written: Result<&SnapshotBody, &StoreError>) {
    const METRIC: &str = "layer_snapshot_events_total";
    match written {
        Ok(body) => {
            crate::core::metrics::feature_event(METRIC, "event", "job_completed", 1);
            let (sha, cut) = (body.sha.clone(), body.watermark_ms);
            job.complete(|o| {
                o.sha = Some(sha);
                o.stable_as_of = Some(cut);
            });
        }
        Err(e) => {
            crate::core::metrics::feature_event(METRIC, "event", "job_failed", 1);
            job.fail(format!("persisting the snapshot failed: {e}"));
        }
    }
}

async fn run_origin_job(
    snaps: &Arc<Snapshots>,
    upstream: &crate::core::upstream::Upstream,
    ns: &str,
    req: CreateRequest,
    job: &Job,
) {
    const METRIC: &str = "layer_snapshot_events_total";
    let filtered = req.filters.is_some();
    let fields = [req.field.clone()];
    let result = compute::from_origin(
        snaps,
        upstream,
        ns,
        &fields,
        req.filters,
        req.page_size,
        Some(job),
    )
    .await;
    let body = match result {
        Ok(b) => b,
        Err(e) => {
            crate::core::metrics::feature_event(METRIC, "event", "job_failed", 1);
            job.fail(format!("origin scan failed: {e}"));
            return;
        }
    };
    let store = snaps.store.objects();
    // A manual body joins the namespace's history only when the namespace has a snapshot policy
    // (no policy: history and activity stay empty) and it is unfiltered, merged with the latest
    // body or covering every configured field ([`compute::history_body`]). Otherwise it is
    // stored by sha only.
    let configured = snaps.store.policy(ns).facet_fields;
    let (body, joins) = if filtered || configured.is_empty() {
        (body, false)
    } else {
        let current = snaps.store.latest(ns).await.ok().flatten();
        let last_write_ms = snaps.core.watcher.last_write_ms(ns);
        compute::history_body(&configured, current.as_deref(), body, last_write_ms)
    };
    let written = if joins {
        snaps.store.record(body, now_ms()).await
    } else {
        durable::put_body(store, &body)
            .await
            .map(|()| Arc::new(body))
    };
    if let Ok(body) = &written {
        super::count_skipped(body);
    }
    finish(job, written.as_deref());
}

async fn history(
    snaps: &Snapshots,
    ns: &str,
    params: &HashMap<String, String>,
) -> Result<Resp, GatewayError> {
    let limit = parse_limit(params)?;
    let entries = durable::history(snaps.store.objects(), ns).await?;
    let start = match params.get("before").map(String::as_str) {
        None | Some("") => 0,
        Some(b) => {
            let pos = entries
                .iter()
                .position(|e| e.sha.starts_with(b))
                .ok_or_else(|| {
                    GatewayError::Missing(format!("no snapshot {b:?} in the history of {ns:?}"))
                })?;
            pos + 1
        }
    };
    let out: Vec<Value> = entries
        .iter()
        .skip(start)
        .take(limit)
        .map(|e| json!({"watermark_ms": e.watermark_ms, "sha": e.sha}))
        .collect();
    Ok(json_response(StatusCode::OK, &Value::Array(out)))
}

async fn by_sha(snaps: &Snapshots, ns: &str, sha: &str) -> Result<SnapshotBody, GatewayError> {
    if sha.len() < 7 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(GatewayError::Validation(format!(
            "a snapshot sha is at least 7 hex characters, got {sha:?}"
        )));
    }
    let sha = sha.to_ascii_lowercase();
    let store = snaps.store.objects();
    let full = if sha.len() == 64 {
        sha
    } else {
        let mut found = durable::resolve_sha(store, ns, &sha).await?;
        match found.len() {
            0 => {
                return Err(GatewayError::Missing(format!(
                    "snapshot {sha:?} not found in {ns:?}"
                )));
            }
            1 => found.remove(0),
            n => {
                return Err(GatewayError::Validation(format!(
                    "snapshot prefix {sha:?} is ambiguous ({n} matches); use more characters"
                )));
            }
        }
    };
    durable::get_body(store, ns, &full)
        .await?
        .ok_or_else(|| GatewayError::Missing(format!("snapshot {full:?} not found in {ns:?}")))
}

async fn activity(
    snaps: &Snapshots,
    principal: &Principal,
    params: &HashMap<String, String>,
) -> Result<Resp, GatewayError> {
    let since = match params.get("since").map(String::as_str) {
        None | Some("") => {
            return Err(GatewayError::Validation(
                "since is required (epoch milliseconds)".into(),
            ));
        }
        Some(s) => s.parse::<u64>().map_err(|_| {
            GatewayError::Validation(format!("since must be epoch milliseconds, got {s:?}"))
        })?,
    };
    let limit = parse_limit(params)?;
    let ns_filter = params.get("namespace").filter(|s| !s.is_empty());
    let cursor = params.get("cursor").filter(|s| !s.is_empty());
    let events =
        durable::activity(snaps.store.objects(), since, cursor.map(String::as_str)).await?;
    let mut selected = events
        .iter()
        .filter(|e| ns_filter.is_none_or(|n| *n == e.namespace))
        .filter(|e| principal.may_access(&e.namespace));
    let page: Vec<_> = selected.by_ref().take(limit).collect();
    let more = selected.next().is_some();
    let mut body = json!({
        "events": page.iter().map(|e| json!({"ts_ms": e.ts_ms, "namespace": e.namespace, "sha": e.sha})).collect::<Vec<_>>(),
        "truncated": more,
    });
    let next = more
        .then(|| page.last().map(|e| e.cursor.clone()))
        .flatten();
    if let Some(c) = &next {
        body["next_cursor"] = Value::String(c.clone());
    }
    let mut r = json_response(StatusCode::OK, &body);
    if let Some(c) = next
        && let Ok(v) = http::HeaderValue::from_str(&c)
    {
        r.headers_mut().insert("x-layer-next-cursor", v);
    }
    Ok(r)
}
