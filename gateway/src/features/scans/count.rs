//! Count mode: synchronous, with a deadline (`timeout_seconds`, default 30, max 300).
//!
//! - snapshot: the facet sum ([`super::snapshot::count`]), exact at the snapshot's
//!   `watermark_ms`;
//! - cache: one pass over the cached documents with the cache evaluator;
//! - origin, filter selector: one upstream `Count` aggregation per shard (at most `threads` in
//!   flight) at the stable cut, summed — exact, and far cheaper than paging every row;
//! - origin, `fts`/`ann`: the ranked scatter/gather of [`super::ranked`] (`bounded`,
//!   `shards_saturated`, `exhaustive` recursion; `approximate: true` for `ann`).
//!
//! A count that runs out of time returns what it has with `timed_out: true` and
//! `bounded: true` (the count is then a lower bound). The response always has `count`,
//! `served_by` and `elapsed_ms`; `watermark_ms` (and the `x-layer-stable-as-of` header) is the
//! cut the count is exact at, when there is one.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::{Map, Value, json};

use super::Scans;
use super::ranked::{self, RankedSpec};
use super::request::{Ranked, ScanRequest};
use super::resolve::{self, Plan};
use crate::core::error::GatewayError;
use crate::core::upstream::Upstream;
use crate::sources::cache_rows::scan_rows;
use crate::sources::origin::MAX_PAGE;

/// A finished count: the response body and the cut for `x-layer-stable-as-of`.
#[derive(Debug)]
pub struct CountAnswer {
    pub body: Value,
    pub watermark: Option<u64>,
}

/// Runs a count scan.
pub async fn run(
    scans: Arc<Scans>,
    upstream: Upstream,
    ns: String,
    req: ScanRequest,
    started: Instant,
) -> Result<CountAnswer, GatewayError> {
    let deadline = started + Duration::from_secs(req.timeout_seconds);
    let resolved = resolve::plan(&scans, &upstream, &ns, &req).await?;
    let plan = resolved.plan;
    let served_by = plan.source_name();
    let mut body = Map::new();
    let watermark = match plan {
        Plan::SnapshotCount(c) => {
            body.insert("count".into(), json!(c.count));
            body.insert("snapshot_sha".into(), json!(c.sha));
            Some(c.watermark_ms)
        }
        Plan::SnapshotValues(_) => {
            return Err(GatewayError::Internal(
                "a count resolved to a values listing".into(),
            ));
        }
        Plan::Cache {
            filter,
            warmed_through,
        } => {
            let stats = scan_rows(
                &scans.core.cache.tier,
                &ns,
                &filter,
                Some(deadline),
                |_, _| ControlFlow::Continue(()),
            )
            .await
            .map_err(|e| GatewayError::CacheCold(format!("the document cache failed: {e}")))?;
            body.insert("count".into(), json!(stats.matched));
            body.insert("bounded".into(), json!(stats.timed_out));
            body.insert("timed_out".into(), json!(stats.timed_out));
            warmed_through
        }
        Plan::Origin {
            threads,
            shards,
            cut,
        } => {
            let (count, bounded, timed_out, saturated) = match &req.ranked {
                Some(ranked) => {
                    let spec = RankedSpec {
                        namespace: &ns,
                        ranked,
                        filters: req.filters.as_ref(),
                        include_attributes: json!(false),
                        shards,
                        threads: threads as usize,
                        exhaustive: req.exhaustive,
                        deadline,
                        cut,
                        page: MAX_PAGE,
                    };
                    let out = ranked::run(&upstream, &spec, |_| {}).await?;
                    if matches!(ranked, Ranked::Ann { .. }) {
                        body.insert("approximate".into(), json!(true));
                    }
                    (
                        out.matched,
                        out.bounded(),
                        out.timed_out,
                        out.shards_saturated,
                    )
                }
                None => {
                    let (count, unanswered) = aggregate_count(
                        &upstream,
                        &ns,
                        req.filters.as_ref(),
                        cut,
                        shards,
                        threads,
                        deadline,
                    )
                    .await?;
                    (count, unanswered > 0, unanswered > 0, 0)
                }
            };
            body.insert("count".into(), json!(count));
            body.insert("bounded".into(), json!(bounded));
            body.insert("timed_out".into(), json!(timed_out));
            body.insert("shards_saturated".into(), json!(saturated));
            body.insert("shards_total".into(), json!(shards));
            body.insert("threads".into(), json!(threads));
            cut
        }
    };
    body.insert("served_by".into(), json!(served_by));
    if let Some(w) = watermark {
        body.insert("watermark_ms".into(), json!(w));
    }
    body.insert(
        "elapsed_ms".into(),
        json!(started.elapsed().as_millis() as u64),
    );
    crate::core::metrics::feature_event("layer_scan_events_total", "event", "count", 1);
    super::scan_finished(
        &ns,
        "count",
        req.filters.is_some(),
        served_by,
        "ok",
        started.elapsed(),
    );
    if resolved.warm {
        scans.warmth.request_background(&ns);
    }
    Ok(CountAnswer {
        body: Value::Object(body),
        watermark,
    })
}

/// Sums one upstream `Count` aggregation per shard, at most `threads` in flight. Returns the
/// count and how many shards did not answer before the deadline.
async fn aggregate_count(
    upstream: &Upstream,
    ns: &str,
    filters: Option<&Value>,
    cut: Option<u64>,
    shards: u32,
    threads: u32,
    deadline: Instant,
) -> Result<(u64, u32), GatewayError> {
    let shards = shards.max(1);
    let mut queue: Vec<u32> = (0..shards).rev().collect();
    let mut in_flight = FuturesUnordered::new();
    let mut total = 0u64;
    let mut unanswered = 0u32;
    let deadline = tokio::time::Instant::from_std(deadline);
    loop {
        while in_flight.len() < threads.max(1) as usize {
            let Some(shard) = queue.pop() else { break };
            let mut body = json!({
                "aggregate_by": {"count": ["Count"]},
                "consistency": ranked::consistency(cut),
            });
            if let Some(f) = ranked::shard_filters(filters, cut, shards, shard) {
                body["filters"] = f;
            }
            in_flight.push(async move {
                tokio::time::timeout_at(
                    deadline,
                    crate::sources::origin::query(upstream, "scan_count", ns, &body),
                )
                .await
            });
        }
        let Some(result) = in_flight.next().await else {
            break;
        };
        match result {
            Ok(answer) => {
                let n = answer?
                    .pointer("/aggregations/count")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| {
                        GatewayError::Upstream("count aggregation answered without a count".into())
                    })?;
                total += n;
            }
            Err(_) => {
                unanswered += 1 + queue.len() as u32;
                queue.clear();
            }
        }
    }
    Ok((total, unanswered))
}
