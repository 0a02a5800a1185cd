//! Stable reads on the query route (`POST /v2/namespaces/{ns}/query`, single and multi-query).
//!
//! Per request, one read of the namespace's watcher state decides everything:
//!
//! The mode is the namespace's index `consistency`, else `gateway.consistency.defaultMode`.
//!
//! | mode | watcher status | what goes upstream |
//! |---|---|---|
//! | `stable` (default) | updating, with a watermark | eventual read + `["_hevlayer_upserted_at","Lte",wm]` ANDed into every leg |
//! | `stable` | stable or unknown | eventual read, no predicate |
//! | `eventual` | any | eventual read, no predicate |
//! | `strong` | any | the body unchanged (but for the projection rule below) |
//!
//! A caller that sends `consistency: {"level": "strong"}` gets its body forwarded unchanged
//! (read-your-writes). A 429 to a query sent without a predicate is retried once with the
//! predicate forced, when a watermark exists. `x-layer-stable-as-of` carries the watermark
//! whenever one exists; every leg of a request shares it. In every mode, wildcard projections
//! (`include_attributes: true`, `exclude_attributes`) are rewritten so the gateway's own
//! `_hevlayer_*` attributes stay hidden (`scatter::hide_reserved`).

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, StatusCode};

use crate::config::IndexConsistency;
use crate::error::GatewayError;
use crate::handler::ShardCtx;
use crate::metrics;
use crate::upstream::UpstreamResponse;
use crate::watcher::Status;

/// The watermark predicate for a cut.
pub fn predicate(watermark: u64) -> Vec<u8> {
    format!("[\"{}\",\"Lte\",{watermark}]", scatter::UPSERTED_AT).into_bytes()
}

/// Runs a query with stable-read semantics and returns the upstream response plus the
/// watermark to report.
pub async fn query(
    ctx: &ShardCtx,
    ns: &str,
    path_and_query: &str,
    headers: &mut HeaderMap,
    body: Bytes,
) -> Result<(UpstreamResponse, Option<u64>), GatewayError> {
    let shared = &ctx.shared;
    let mode = shared
        .indexes
        .get(ns)
        .map_or(shared.config.gateway.consistency.default_mode, |i| {
            i.consistency
        });
    let (status, watermark) = shared.watcher.snapshot(ns);
    // Every mode parses the body; a compressed body is decoded and forwarded uncompressed.
    let body = crate::handler::decode_gzip(headers, body, shared.config.gateway.max_body_bytes)?;
    headers.remove(header::CONTENT_ENCODING);
    // The gateway's own attributes stay out of wildcard projections.
    let body = match scatter::hide_reserved(&body, &shared.limits) {
        Ok(Some(b)) => Bytes::from(b),
        Ok(None) => body,
        // Upstream rejects such a body itself: relay its own error.
        Err(e) if e.upstream_would_reject() => {
            let up = ctx
                .upstream
                .send("query", Method::POST, path_and_query, headers, body)
                .await?;
            return Ok((up, watermark));
        }
        Err(e) => return Err(e.into()),
    };
    if mode == IndexConsistency::Strong {
        let up = ctx
            .upstream
            .send("query", Method::POST, path_and_query, headers, body)
            .await?;
        return Ok((up, watermark));
    }
    let pred = match (mode, status, watermark) {
        (IndexConsistency::Stable, Status::Updating, Some(wm)) => Some(predicate(wm)),
        _ => None,
    };
    let plan = scatter::plan_stable_read(&body, pred.as_deref(), &shared.limits)?;
    let (caller_strong, injected) = (plan.caller_strong, plan.injected);
    let mut up = ctx
        .upstream
        .send(
            "query",
            Method::POST,
            path_and_query,
            headers,
            Bytes::from(plan.body),
        )
        .await?;
    if up.status == StatusCode::TOO_MANY_REQUESTS
        && mode == IndexConsistency::Stable
        && !injected
        && !caller_strong
        && let Some(wm) = watermark
    {
        // A write storm's backpressure: the predicate bounds what upstream must scan.
        metrics::watcher_event("retry_429");
        let forced = scatter::plan_stable_read(&body, Some(&predicate(wm)), &shared.limits)?;
        up = ctx
            .upstream
            .send(
                "query",
                Method::POST,
                path_and_query,
                headers,
                Bytes::from(forced.body),
            )
            .await?;
    }
    Ok((up, watermark))
}

/// Adds `x-layer-stable-as-of` to a response.
pub fn stamp_header(headers: &mut HeaderMap, watermark: Option<u64>) {
    if let Some(wm) = watermark
        && let Ok(v) = HeaderValue::from_str(&wm.to_string())
    {
        headers.insert("x-layer-stable-as-of", v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicate_bytes() {
        assert_eq!(
            predicate(42),
            br#"["_hevlayer_upserted_at","Lte",42]"#.to_vec()
        );
    }
}
