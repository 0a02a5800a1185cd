//! Origin rows: the gateway's own reads from Turbopuffer, shared by every feature that pages
//! through a namespace or asks it something on its own behalf ([`upstream_json`], [`query`],
//! [`approx_rows`]).
//!
//! Paginated origin scans: read every row of a namespace (or every row a filter selects) from
//! Turbopuffer, page by page, across the namespace's scatter/gather shards, with at most
//! `threads` upstream requests in flight. Snapshot jobs, the automatic snapshot writer, scans
//! and warm jobs all use this one path.
//!
//! Paging is keyset pagination on the primary key: `rank_by: ["id", "asc"]`, `top_k: page_size`,
//! and from the second page on `["id", "Gt", <last id>]` ANDed to the filter. A page shorter than
//! `page_size` ends a shard. On a sharded namespace each shard is its own pager with
//! `["_hevlayer_shard", "Eq", k]` in its filter; shards run concurrently, bounded by `threads`.
//!
//! Consistency: with a watermark the scan is a stable cut — an eventual read with
//! `_hevlayer_upserted_at <= watermark` ANDed in, so it sees exactly what stable reads see.
//! Without one (the watcher has not observed the namespace yet) it is a strong read.

use std::ops::ControlFlow;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use http::{HeaderMap, Method};
use serde_json::{Value, json};

use crate::core::Core;
use crate::core::config::IndexConfig;
use crate::core::error::GatewayError;
use crate::core::upstream::Upstream;

/// Turbopuffer's `top_k` ceiling: the largest page.
pub const MAX_PAGE: usize = 10_000;

/// What to scan.
#[derive(Clone, Debug)]
pub struct OriginScan {
    pub namespace: String,
    /// The caller's Turbopuffer filter, if any (ANDed with the paging and shard conditions).
    pub filters: Option<Value>,
    /// `include_attributes` for the pages: `true`, a list of names, or `false` for ids only.
    pub include_attributes: Value,
    /// Rows per upstream page (clamped to 1..=[`MAX_PAGE`]).
    pub page_size: usize,
    /// Maximum upstream requests in flight (at least 1).
    pub threads: usize,
    /// Scatter/gather buckets of the namespace (1 = unsharded).
    pub shards: u32,
    /// Stable cut; `None` reads strongly.
    pub watermark: Option<u64>,
}

/// What a finished (or stopped) scan saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    pub rows: u64,
    pub pages: u64,
    /// The callback asked to stop before every shard was exhausted.
    pub stopped: bool,
}

/// One page as handed to the callback.
#[derive(Debug)]
pub struct Page {
    /// The shard bucket this page came from (0 on unsharded namespaces).
    pub shard: u32,
    pub rows: Vec<Value>,
    /// Shards that have not finished yet (including this one if it has more pages).
    pub shards_remaining: u32,
}

/// Runs the scan, calling `on_page` once per page in arrival order. `on_page` returning
/// `ControlFlow::Break` stops the scan (no further pages are requested). Upstream 4xx answers are
/// relayed ([`GatewayError::Relay`]); 5xx and transport failures are [`GatewayError::Upstream`].
pub async fn scan<F>(
    upstream: &Upstream,
    spec: &OriginScan,
    mut on_page: F,
) -> Result<ScanStats, GatewayError>
where
    F: FnMut(Page) -> ControlFlow<()>,
{
    let shards = spec.shards.max(1);
    let threads = spec.threads.max(1);
    let page_size = spec.page_size.clamp(1, MAX_PAGE);
    let mut queue: Vec<(u32, Option<Value>)> = (0..shards).rev().map(|s| (s, None)).collect();
    let mut in_flight = FuturesUnordered::new();
    let mut stats = ScanStats::default();
    let mut remaining = shards;
    loop {
        while in_flight.len() < threads {
            let Some((shard, after)) = queue.pop() else {
                break;
            };
            let body = page_body(spec, shards, shard, after.as_ref(), page_size);
            in_flight
                .push(async move { (shard, fetch_page(upstream, &spec.namespace, body).await) });
        }
        let Some((shard, result)) = in_flight.next().await else {
            break;
        };
        let rows = result?;
        stats.pages += 1;
        stats.rows += rows.len() as u64;
        let last = rows.last().and_then(|r| r.get("id")).cloned();
        let more = rows.len() >= page_size && last.is_some();
        if more {
            queue.push((shard, last));
        } else {
            remaining -= 1;
        }
        let flow = on_page(Page {
            shard,
            rows,
            shards_remaining: remaining,
        });
        if flow.is_break() {
            stats.stopped = remaining > 0;
            return Ok(stats);
        }
    }
    Ok(stats)
}

/// Configured fan-out width: the request's `threads`, else the Index's `scan.threads`, else the
/// gateway default (`gateway.scan.defaultThreads`, 8), clamped to 1..=[`MAX_THREADS`].
pub fn configured_threads(core: &Core, ns: &str, requested: Option<u32>) -> u32 {
    clamp_threads(
        core,
        requested.or_else(|| core.indexes.with(ns, |i| i.and_then(|i| i.scan.threads))),
    )
}

/// [`configured_threads`] without a requested width, for a caller that holds the namespace's
/// index (or its absence) already.
pub fn index_threads(core: &Core, index: Option<&IndexConfig>) -> u32 {
    clamp_threads(core, index.and_then(|i| i.scan.threads))
}

fn clamp_threads(core: &Core, threads: Option<u32>) -> u32 {
    threads
        .unwrap_or(core.config.gateway.scan.default_threads)
        .clamp(1, MAX_THREADS)
}

/// Effective fan-out width of a scan: [`configured_threads`] clamped to the shard count too.
pub fn threads_for(core: &Core, ns: &str, requested: Option<u32>) -> u32 {
    configured_threads(core, ns, requested).min(core.shards_of(ns))
}

/// The server cap on `threads`.
pub const MAX_THREADS: u32 = 32;

/// The upstream query for one page.
pub fn page_body(
    spec: &OriginScan,
    shards: u32,
    shard: u32,
    after: Option<&Value>,
    page_size: usize,
) -> Value {
    let mut conds: Vec<Value> = Vec::new();
    if let Some(f) = &spec.filters {
        conds.push(f.clone());
    }
    if let Some(wm) = spec.watermark {
        conds.push(json!([scatter::UPSERTED_AT, "Lte", wm]));
    }
    if shards > 1 {
        conds.push(json!([scatter::SHARD, "Eq", shard]));
    }
    if let Some(a) = after {
        conds.push(json!(["id", "Gt", a]));
    }
    let mut body = json!({
        "rank_by": ["id", "asc"],
        "top_k": page_size,
        "include_attributes": spec.include_attributes,
        "consistency": {"level": if spec.watermark.is_some() { "eventual" } else { "strong" }},
    });
    let filters = match conds.len() {
        0 => None,
        1 => conds.pop(),
        _ => Some(json!(["And", conds])),
    };
    if let Some(f) = filters {
        body["filters"] = f;
    }
    body
}

/// Sends one request the gateway makes on its own behalf (scans, snapshots, warm) and parses the
/// JSON answer. Upstream's 4xx verdicts are relayed ([`GatewayError::Relay`]); other non-2xx
/// answers, transport failures and non-JSON bodies are [`GatewayError::Upstream`] (502), named by
/// `what`.
pub async fn upstream_json(
    upstream: &Upstream,
    route: &'static str,
    method: Method,
    path: &str,
    body: Bytes,
    what: &str,
) -> Result<Value, GatewayError> {
    let up = upstream
        .send(route, method, path, &HeaderMap::new(), body)
        .await?;
    if up.status.is_client_error() {
        return Err(GatewayError::Relay {
            status: up.status,
            content_type: up.headers.get(http::header::CONTENT_TYPE).cloned(),
            body: up.body,
        });
    }
    if !up.status.is_success() {
        return Err(GatewayError::Upstream(format!(
            "{what} answered {}: {}",
            up.status,
            String::from_utf8_lossy(&up.body)
        )));
    }
    serde_json::from_slice(&up.body)
        .map_err(|e| GatewayError::Upstream(format!("{what} is not JSON: {e}")))
}

/// Sends one query to upstream on the gateway's behalf and returns the parsed body (4xx answers
/// relayed, other failures 502, see [`upstream_json`]); `route` labels the upstream metrics.
pub async fn query(
    upstream: &Upstream,
    route: &'static str,
    ns: &str,
    body: &Value,
) -> Result<Value, GatewayError> {
    upstream_json(
        upstream,
        route,
        Method::POST,
        &format!("/v2/namespaces/{ns}/query"),
        Bytes::from(body.to_string()),
        "origin query",
    )
    .await
}

/// The namespace's approximate row count (for job progress); `None` when unknown.
pub async fn approx_rows(upstream: &Upstream, ns: &str) -> Option<u64> {
    let up = upstream
        .send(
            "origin_metadata",
            Method::GET,
            &format!("/v2/namespaces/{ns}/metadata"),
            &HeaderMap::new(),
            Bytes::new(),
        )
        .await
        .ok()?;
    if !up.status.is_success() {
        return None;
    }
    serde_json::from_slice::<Value>(&up.body)
        .ok()?
        .get("approx_row_count")?
        .as_u64()
}

/// The rows of a query answer (empty when it has none).
pub fn rows_of(mut answer: Value) -> Vec<Value> {
    match answer.get_mut("rows").map(Value::take) {
        Some(Value::Array(rows)) => rows,
        _ => Vec::new(),
    }
}

async fn fetch_page(
    upstream: &Upstream,
    ns: &str,
    body: Value,
) -> Result<Vec<Value>, GatewayError> {
    let mut v = upstream_json(
        upstream,
        "origin_scan",
        Method::POST,
        &format!("/v2/namespaces/{ns}/query"),
        Bytes::from(body.to_string()),
        "origin scan page",
    )
    .await?;
    Ok(match v.get_mut("rows").map(Value::take) {
        Some(Value::Array(rows)) => rows,
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> OriginScan {
        OriginScan {
            namespace: "ns".into(),
            filters: Some(json!(["color", "Eq", "red"])),
            include_attributes: json!(["color"]),
            page_size: 100,
            threads: 2,
            shards: 4,
            watermark: Some(42),
        }
    }

    #[test]
    fn page_bodies_carry_every_condition() {
        let b = page_body(&spec(), 4, 3, Some(&json!(17)), 100);
        assert_eq!(
            b["filters"],
            json!([
                "And",
                [
                    ["color", "Eq", "red"],
                    ["_hevlayer_upserted_at", "Lte", 42],
                    ["_hevlayer_shard", "Eq", 3],
                    ["id", "Gt", 17]
                ]
            ])
        );
        assert_eq!(b["rank_by"], json!(["id", "asc"]));
        assert_eq!(b["top_k"], 100);
        assert_eq!(b["consistency"]["level"], "eventual");
    }

    #[test]
    fn unfiltered_unsharded_first_page_is_plain() {
        let mut s = spec();
        s.filters = None;
        s.watermark = None;
        let b = page_body(&s, 1, 0, None, 10);
        assert!(b.get("filters").is_none());
        assert_eq!(b["consistency"]["level"], "strong");
    }
}
