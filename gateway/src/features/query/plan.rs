//! Serving one v2 query: planning with `scatter`, stable reads, shard scatter/gather, hybrid
//! text, Auto routing and `nearest_to_id`. Start at [`serve`].
//!
//! Pipeline, per request:
//! 1. decode, then hide reserved attributes from wildcard projections (`scatter::hide_and_plan`:
//!    `hide_reserved`, then step 2 from the top-level members its validation read);
//! 2. plan (`scatter::plan_query`): Layer single-query shape → upstream body, HybridText and Auto
//!    → one fused multi-query (or a deferral answered here), multi-query validation, and
//!    `nearest_to_id` → centroids resolved from origin by strong reads, then planned again;
//! 3. stable read (`scatter::plan_stable_read`): one read of the watermark, the predicate ANDed
//!    into every leg (skipped under `strong` mode or a caller's strong consistency);
//! 4. on sharded namespaces, one `_hevlayer_shard`-filtered body per shard (`scatter::plan_shards`),
//!    sent at most `threads` at a time; one failing leg fails the request (its upstream error is
//!    relayed);
//! 5. gather (`scatter::merge_*`), then `scatter::finish_response` (`rows` always present, the
//!    `hybrid` / `routing` echo blocks).
//!
//! A body upstream would reject by itself (bad JSON, wrong shapes) is forwarded untouched so the
//! caller gets upstream's own error.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use scatter::layer_query::{Merge, QueryContext, QueryPlan, UpstreamQuery};
use scatter::respond::UpstreamShape;
use scatter::{QueryError, RewriteError, StableBody};
use serde_json::Value;
use tokio::sync::Semaphore;

use super::cursor;
use crate::core::config::IndexConsistency;
use crate::core::error::GatewayError;
use crate::core::http::decode_gzip;
use crate::core::metrics;
use crate::core::stable::predicate;
use crate::core::upstream::{AnswerFields, UpstreamResponse};
use crate::core::watcher::Status;
use crate::core::{Core, ShardCtx};
use crate::sources::origin::{MAX_THREADS, index_threads};

/// What the query route answers: an upstream-shaped response and the watermark to report.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub watermark: Option<u64>,
    /// The request was validated whole before it was served (set by [`serve`]; `false` for a
    /// body relayed for upstream to judge).
    pub request_checked: bool,
}

impl Answer {
    fn relayed(up: UpstreamResponse, watermark: Option<u64>) -> Self {
        Answer {
            status: up.status,
            headers: up.headers,
            body: up.body,
            watermark,
            request_checked: false,
        }
    }

    /// A `200` with a JSON body the gateway built or finished, and only its own fields.
    pub(super) fn json(body: impl Into<Bytes>, watermark: Option<u64>) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Answer {
            status: StatusCode::OK,
            headers,
            body: body.into(),
            watermark,
            request_checked: false,
        }
    }

    /// The answer to a request the planner validated whole (every path of [`serve`] past the
    /// plan).
    fn checked(self) -> Self {
        Answer {
            request_checked: true,
            ..self
        }
    }
}

/// Serves one query request.
pub async fn serve(
    ctx: &ShardCtx,
    ns: &str,
    path_and_query: &str,
    headers: &mut HeaderMap,
    body: Bytes,
) -> Result<Answer, GatewayError> {
    let shared = &ctx.core;
    let cut = Cut::read(shared, ns);
    let Cut {
        watermark,
        shards,
        threads,
        ..
    } = cut;

    let body = decode_gzip(headers, body, shared.config.gateway.max_body_bytes)?;
    headers.remove(header::CONTENT_ENCODING);
    // Responses are merged or finished here, so they must come back uncompressed.
    headers.remove(header::ACCEPT_ENCODING);
    // A body without `_attributes` (and no escapes that could spell it) has no projection to
    // rewrite: skip that parse.
    let may_project = memfind(&body, b"_attributes") || memchr::memchr(b'\\', &body).is_some();
    let qctx = QueryContext {
        limits: shared.limits,
        shards,
        threads,
        ..QueryContext::default()
    };
    // The paths below that a plain query does not take (upstream judging a body the planner
    // refuses, nearest-to-id centroids, a rewritten body that may page) are awaited boxed: one
    // allocation when taken; inline, their futures would make this one, and so every query's,
    // kilobytes larger, copied whole on each move (`bench/results/2026-12-06-future-sizes.md`).
    // The body is validated whole once per request: by `hide_reserved` when it runs, else by
    // `plan_query`. Every later pass (stable read, pages, shard legs) gets the plan's
    // `Validated` body, or one spliced from it, and only walks its top level.
    let (body, planned) = if may_project {
        // One read of the top level for both: the planner starts from the members the
        // validation read when no projection needed a rewrite.
        match scatter::layer_query::hide_and_plan(body.clone(), &qctx) {
            Ok(hidden_and_planned) => hidden_and_planned,
            // Judged by upstream below, as a body the planner refuses.
            Err(e) => (body, Err(QueryError::Rewrite(e))),
        }
    } else {
        let planned = scatter::layer_query::plan_query(&body, &qctx);
        (body, planned)
    };
    let mut plan = match planned {
        Ok(p) => p,
        Err(QueryError::Rewrite(e)) => {
            return Box::pin(upstream_judges(
                ctx,
                ns,
                path_and_query,
                headers,
                body,
                watermark,
                e,
            ))
            .await;
        }
        // Layer's own rules (2–16 legs, ...) bind Layer-shaped requests; a native Turbopuffer
        // body keeps upstream's semantics, so upstream judges it.
        Err(e) if e.status_code() == 422 && !layer_features(&body) => {
            return Box::pin(relayed_as_sent(
                ctx,
                ns,
                path_and_query,
                headers,
                &body,
                watermark,
            ))
            .await;
        }
        Err(e) => return Err(e.into()),
    };
    if let QueryPlan::NeedsCentroids(pending) = plan {
        let mut centroids = Vec::with_capacity(pending.requests().len());
        for req in pending.requests() {
            centroids.push(Box::pin(resolve_centroid(ctx, ns, &req.ids)).await?);
        }
        plan = pending.resolve(&centroids)?;
    }
    // A native Turbopuffer body (no Layer key) keeps upstream's semantics and bytes: it does not
    // page (a Layer key, even `"cursor": null`, asks for pages). One compare of the bodies.
    let native = matches!(&plan, QueryPlan::Upstream(q) if q.body.as_bytes() == body.as_ref());
    let q = match plan {
        // The planner returns a native body byte for byte: keep upstream's response shape then
        // (no `rows` added to aggregation answers, which Turbopuffer clients expect).
        QueryPlan::Upstream(q) if native && q.echo.hybrid.is_none() && q.echo.routing.is_none() => {
            let shape = match q.shape {
                UpstreamShape::Single => UpstreamShape::MultiQuery,
                other => other,
            };
            UpstreamQuery { shape, ..q }
        }
        QueryPlan::Deferred { body, .. } => return Ok(Answer::json(body, watermark).checked()),
        QueryPlan::NeedsCentroids(_) => {
            return Err(GatewayError::Internal(
                "nearest_to_id resolved twice".into(),
            ));
        }
        QueryPlan::Upstream(q) => q,
    };
    if (q.cursor.is_some() || (!native && cursor::may_page(&q.body)))
        && let Some(a) = Box::pin(cursor::serve(ctx, ns, path_and_query, headers, &q, cut)).await?
    {
        return Ok(a.checked());
    }
    execute(ctx, ns, path_and_query, headers, &q, cut, None)
        .await
        .map(Answer::checked)
}

/// What one request reads once, so its plan, its pages and every leg agree: the namespace's
/// consistency mode, the watcher's status and watermark, its shard count and its fan-out width.
#[derive(Clone, Copy)]
pub(super) struct Cut {
    pub mode: IndexConsistency,
    pub status: Status,
    pub watermark: Option<u64>,
    pub shards: u32,
    pub threads: u32,
}

impl Cut {
    /// One read of the namespace's index (or of its absence) and one of the watcher.
    pub(super) fn read(shared: &Core, ns: &str) -> Cut {
        let (mode, shards, threads) = shared.indexes.with(ns, |i| {
            (
                i.map_or(shared.config.gateway.consistency.default_mode, |i| {
                    i.consistency
                }),
                shared.shards_given(ns, i),
                index_threads(shared, i),
            )
        });
        let (status, watermark) = shared.watcher.snapshot(ns);
        Cut {
            mode,
            status,
            watermark,
            shards,
            threads,
        }
    }
}

/// Runs a planned query: the stable read (or `forced`, a pagination cut that replaces the
/// watermark predicate in the stable and eventual modes), one upstream request or the shard
/// scatter/gather, and the response's finishing.
pub(super) async fn execute(
    ctx: &ShardCtx,
    ns: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    q: &UpstreamQuery,
    cut: Cut,
    forced: Option<u64>,
) -> Result<Answer, GatewayError> {
    let Cut {
        mode,
        status,
        watermark,
        shards,
        threads,
    } = cut;
    let pred = match (mode, status, watermark, forced) {
        (IndexConsistency::Strong, ..) => None,
        (_, _, _, Some(cut)) => Some(predicate(cut)),
        (IndexConsistency::Stable, Status::Updating, Some(wm), None) => Some(predicate(wm)),
        _ => None,
    };
    // A spliced body stays as runs over the caller's buffer: one shard sends them by a
    // vectored write; a scatter's legs are cut from it whole.
    let (legs_body, caller_strong, injected) = if mode == IndexConsistency::Strong {
        (StableBody::Whole(q.body.clone()), true, false)
    } else {
        let p = q.plan_stable_parts(pred.as_deref())?;
        (p.body, p.caller_strong, p.injected)
    };

    if shards <= 1 {
        // A successful answer is answered with the gateway's own fields (`Answer::json`):
        // upstream's are read only when it failed, to relay them.
        let fields = AnswerFields::OnFailure;
        let mut up = send(
            ctx,
            ns,
            path_and_query,
            headers,
            &legs_body.slices(),
            fields,
        )
        .await?;
        if up.status == StatusCode::TOO_MANY_REQUESTS
            && mode == IndexConsistency::Stable
            && !injected
            && !caller_strong
            && let Some(wm) = watermark
        {
            // Write-storm backpressure: the predicate bounds what upstream must scan.
            metrics::watcher_event("retry_429");
            let forced = q.plan_stable_parts(Some(&*predicate(wm)))?;
            up = send(
                ctx,
                ns,
                path_and_query,
                headers,
                &forced.body.slices(),
                fields,
            )
            .await?;
        }
        if !up.status.is_success() {
            return Ok(Answer::relayed(up, watermark));
        }
        // An answer the gateway leaves as it is relays upstream's buffer (no copy).
        let body = match scatter::respond::finish_response(&up.body, q.shape, &q.echo)? {
            Cow::Borrowed(_) => up.body.clone(),
            Cow::Owned(b) => Bytes::from(b),
        };
        return Ok(Answer::json(body, watermark));
    }
    gather(
        ctx,
        ns,
        path_and_query,
        headers,
        q,
        legs_body.into_validated(),
        shards,
        q.threads.unwrap_or(threads),
        watermark,
    )
    .await
}

/// Sends one shard leg per shard (at most `threads` at once) and merges the answers.
#[allow(clippy::too_many_arguments)]
async fn gather(
    ctx: &ShardCtx,
    ns: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    q: &UpstreamQuery,
    body: scatter::Validated<Bytes>,
    shards: u32,
    threads: u32,
    watermark: Option<u64>,
) -> Result<Answer, GatewayError> {
    // The watermark is already in `body` (one cut for every leg).
    let plan = scatter::plan_shards(&body, shards, None)?;
    let permits = Arc::new(Semaphore::new(threads.clamp(1, MAX_THREADS) as usize));
    let mut set = tokio::task::JoinSet::new();
    for (i, leg) in plan.legs.into_iter().enumerate() {
        let (up, headers, path, permits) = (
            ctx.upstream(ns).clone(),
            headers.clone(),
            path_and_query.to_string(),
            permits.clone(),
        );
        set.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (
                i,
                // A leg's fields are read only when it failed (its answer is then relayed).
                up.send_parts(
                    "query_leg",
                    Method::POST,
                    &path,
                    &headers,
                    &[&leg],
                    AnswerFields::OnFailure,
                )
                .await,
            )
        });
    }
    let mut answers: Vec<Option<Bytes>> = vec![None; shards as usize];
    while let Some(done) = set.join_next().await {
        let (i, result) =
            done.map_err(|e| GatewayError::Internal(format!("shard leg task: {e}")))?;
        let up = result?;
        if !up.status.is_success() {
            // One failing leg fails the request, with that leg's upstream error.
            set.abort_all();
            return Ok(Answer::relayed(up, watermark));
        }
        answers[i] = Some(up.body);
    }
    let bodies: Vec<&[u8]> = answers
        .iter()
        .map(|b| b.as_deref().unwrap_or_default())
        .collect();
    let merged = match &q.merge {
        Merge::Single(spec) => {
            let mut spec = spec.clone();
            spec.strip.extend(plan.strip.iter().cloned());
            scatter::merge_query_responses(&bodies, &spec)?
        }
        Merge::PerLeg(specs) => {
            let specs: Vec<_> = specs
                .iter()
                .map(|s| {
                    let mut s = s.clone();
                    s.strip.extend(plan.strip.iter().cloned());
                    s
                })
                .collect();
            scatter::merge_multi_query_responses(&bodies, &specs)?
        }
    };
    let changed = match scatter::respond::finish_response(&merged, q.shape, &q.echo)? {
        Cow::Owned(b) => Some(b),
        Cow::Borrowed(_) => None,
    };
    Ok(Answer::json(changed.unwrap_or(merged), watermark))
}

async fn send(
    ctx: &ShardCtx,
    ns: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    parts: &[&[u8]],
    fields: AnswerFields,
) -> Result<UpstreamResponse, GatewayError> {
    ctx.upstream(ns)
        .send_parts(
            "query",
            Method::POST,
            path_and_query,
            headers,
            parts,
            fields,
        )
        .await
}

/// A body the gateway cannot use: when upstream would reject it anyway, forward it untouched
/// and relay upstream's own error; otherwise answer with Layer's.
async fn upstream_judges(
    ctx: &ShardCtx,
    ns: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    body: Bytes,
    watermark: Option<u64>,
    e: RewriteError,
) -> Result<Answer, GatewayError> {
    if !e.upstream_would_reject() {
        return Err(e.into());
    }
    relayed_as_sent(ctx, ns, path_and_query, headers, &body, watermark).await
}

/// Sends `body` as the caller sent it and relays upstream's answer as it came, fields and all.
async fn relayed_as_sent(
    ctx: &ShardCtx,
    ns: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &Bytes,
    watermark: Option<u64>,
) -> Result<Answer, GatewayError> {
    let up = send(ctx, ns, path_and_query, headers, &[body], AnswerFields::All).await?;
    Ok(Answer::relayed(up, watermark))
}

/// Resolves the unweighted centroid of the stored vectors of `ids` (raw JSON ids): document
/// cache first, origin on a miss (a strong read without the stable-read predicate, so a document
/// that exists is never missed) with a backfill. 404 names every id without a stored vector.
pub async fn resolve_centroid(
    ctx: &ShardCtx,
    ns: &str,
    ids: &[String],
) -> Result<Vec<f32>, GatewayError> {
    // Raw JSON ids (`"a"`, `5`) → wire ids (`a`, `5`).
    let wire: Vec<String> = ids
        .iter()
        .map(|raw| match serde_json::from_str::<Value>(raw) {
            Ok(Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(_) => raw.clone(),
        })
        .collect();
    let (rows, _served) = crate::sources::documents::rows(ctx, ns, &wire).await?;
    let mut vectors = Vec::with_capacity(rows.len());
    let mut missing = Vec::new();
    for (raw, row) in ids.iter().zip(rows) {
        match row
            .as_ref()
            .and_then(|r| r.get("vector"))
            .and_then(vector_of)
        {
            Some(v) => vectors.push(v),
            None => missing.push(raw.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(GatewayError::NotFoundDocs {
            message: format!("nearest_to_id: no stored vector for {}", missing.join(", ")),
            missing,
        });
    }
    centroid(vectors)
}

/// Whether `needle` occurs in `hay`, by SIMD search: the body pre-checks run on every query, and
/// comparing every window cost as much as validating a 1536-dimension query
/// (`bench/results/2026-12-06-simd-scans.md`).
pub(super) fn memfind(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// Whether a query body uses a Layer-only feature (the Layer single-query shape, HybridText,
/// Auto, pagination), at the top level or in any leg. Only called on rejected bodies.
fn layer_features(body: &[u8]) -> bool {
    const KEYS: [&str; 6] = [
        "vector",
        "nearest_to_id",
        "cursor",
        "include_leg_breakdown",
        "as_of",
        "between",
    ];
    fn query_uses(q: &Value) -> bool {
        let Some(o) = q.as_object() else { return false };
        KEYS.iter().any(|k| o.contains_key(*k))
            || o.get("rank_by")
                .and_then(|r| r.get(1))
                .and_then(Value::as_str)
                .is_some_and(|op| op == "HybridText" || op == "Auto")
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    query_uses(&v)
        || v.get("queries")
            .and_then(Value::as_array)
            .is_some_and(|legs| legs.iter().any(query_uses))
}

fn vector_of(v: &Value) -> Option<Vec<f32>> {
    match v {
        Value::Array(a) => a.iter().map(|x| x.as_f64().map(|f| f as f32)).collect(),
        _ => None,
    }
}

/// The component-wise mean of vectors that share one dimensionality.
pub fn centroid(vectors: Vec<Vec<f32>>) -> Result<Vec<f32>, GatewayError> {
    let Some(dims) = vectors.first().map(Vec::len) else {
        return Err(GatewayError::Validation(
            "nearest_to_id must name at least one document".into(),
        ));
    };
    if vectors.iter().any(|v| v.len() != dims) {
        return Err(GatewayError::Validation(
            "nearest_to_id documents have vectors of different dimensions".into(),
        ));
    }
    let mut sum = vec![0f64; dims];
    for v in &vectors {
        for (s, x) in sum.iter_mut().zip(v) {
            *s += f64::from(*x);
        }
    }
    let n = vectors.len() as f64;
    Ok(sum.into_iter().map(|s| (s / n) as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The SIMD search finds a needle exactly where comparing every window does: at the
        /// start, the end, across anything, in bodies long enough for its vector loop.
        #[test]
        fn memfind_finds_what_every_window_finds(
            parts in proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just(b"_attributes".to_vec()),
                proptest::strategy::Just(b"_attribute".to_vec()),
                proptest::strategy::Just(b"s".to_vec()),
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
            ], 0..8),
        ) {
            let hay = parts.concat();
            let every_window = hay.windows(11).any(|w| w == b"_attributes");
            proptest::prop_assert_eq!(memfind(&hay, b"_attributes"), every_window);
        }
    }

    #[test]
    fn a_cut_reads_the_index_else_the_layout_else_the_defaults() {
        use crate::core::config::IndexConfig;
        use crate::core::layout::Layout;
        let core = crate::core::test_core();
        let defaults = (core.config.gateway.consistency.default_mode, 1, 8);
        let c = Cut::read(&core, "plain");
        assert_eq!((c.mode, c.shards, c.threads), defaults);
        assert_eq!((c.status, c.watermark), (Status::Unknown, None));
        // A layout set by init gives the shard count when no index names one.
        let layout = Layout {
            schema_version: 1,
            shard_count: 4,
            initialized_at_ms: 0,
        };
        core.layouts.insert("laid", layout);
        assert_eq!(Cut::read(&core, "laid").shards, 4);
        // An index decides all three, over the layout; its scan width is clamped.
        let mut index = IndexConfig {
            name: "laid".into(),
            shards: 3,
            consistency: IndexConsistency::Strong,
            ..IndexConfig::default()
        };
        index.scan.threads = Some(MAX_THREADS + 1);
        core.indexes.set_file(vec![index]);
        let c = Cut::read(&core, "laid");
        assert_eq!(
            (c.mode, c.shards, c.threads),
            (IndexConsistency::Strong, 3, MAX_THREADS)
        );
        // The same reads as the functions the other routes use.
        assert_eq!(c.shards, core.shards_of("laid"));
        assert_eq!(
            c.threads,
            crate::sources::origin::configured_threads(&core, "laid", None)
        );
    }

    #[test]
    fn centroid_is_the_unweighted_mean() {
        assert_eq!(
            centroid(vec![vec![1.0, 0.0], vec![0.0, 1.0]]).unwrap(),
            vec![0.5, 0.5]
        );
        assert!(centroid(vec![vec![1.0], vec![1.0, 2.0]]).is_err());
        assert!(centroid(vec![]).is_err());
    }
}
