//! The enriched Layer listing, `GET /v2/namespaces`.
//!
//! The listing pages the upstream list (page size capped at 1000), fetches each row's metadata
//! with bounded concurrency, degrades a failed row to `metadata_error`, and caches pages for
//! `namespaceListCacheTtlMs` per shard (no cross-shard locks).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method};
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;

use http::StatusCode;

use crate::core::ShardCtx;
use crate::core::auth::Principal;
use crate::core::config::Scope;
use crate::core::error::GatewayError;
use crate::core::http::{Resp, json_response, now_ms};
use crate::core::params::{encode_query_component as encode, parse_query};
use crate::core::router::{Req, Route};
use crate::core::upstream::UpstreamResponse;
use crate::sources::schema::vector_dim;

/// Per-row metadata fetches in flight for one listing page.
const LIST_CONCURRENCY: usize = 8;
/// Largest upstream list page.
const MAX_PAGE: u32 = 1000;

thread_local! {
    /// Listing pages by query string: (expiry, body). Per shard, so no locks.
    static LIST_CACHE: RefCell<HashMap<String, (Instant, Value)>> = RefCell::new(HashMap::new());
}

/// The listing's route.
pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/v2/namespaces",
            "list_namespaces",
            Scope::Read,
            Arc::new(|ctx, req| Box::pin(serve(ctx, req))),
        )
        .with_latency_metric("layer_list_duration_seconds"),
    ]
}

async fn serve(ctx: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
    let page = list(&ctx, req.query(), &req.principal).await?;
    Ok(json_response(StatusCode::OK, &page))
}

/// `GET /v2/namespaces`.
async fn list(ctx: &ShardCtx, query: &str, principal: &Principal) -> Result<Value, GatewayError> {
    let params = parse_query(query);
    let ttl = Duration::from_millis(ctx.core.config.gateway.namespace_list_cache_ttl_ms);
    let key = format!(
        "{}|{}|{}",
        params.get("prefix").map_or("", String::as_str),
        params.get("cursor").map_or("", String::as_str),
        params.get("page_size").map_or("", String::as_str)
    );
    let cached = LIST_CACHE.with(|c| {
        c.borrow()
            .get(&key)
            .filter(|(exp, _)| *exp > Instant::now())
            .map(|(_, v)| v.clone())
    });
    let page = match cached {
        Some(v) => v,
        None => {
            let v = fetch_page(ctx, &params).await?;
            LIST_CACHE.with(|c| {
                let mut c = c.borrow_mut();
                let now = Instant::now();
                c.retain(|_, (exp, _)| *exp > now);
                c.insert(key, (now + ttl, v.clone()));
            });
            v
        }
    };
    Ok(filter_for(page, principal))
}

fn filter_for(mut page: Value, principal: &Principal) -> Value {
    principal.retain_granted(&mut page, "name");
    page
}

async fn fetch_page(
    ctx: &ShardCtx,
    params: &HashMap<String, String>,
) -> Result<Value, GatewayError> {
    let mut q = Vec::new();
    if let Some(p) = params.get("prefix") {
        q.push(format!("prefix={}", encode(p)));
    }
    if let Some(c) = params.get("cursor") {
        q.push(format!("cursor={}", encode(c)));
    }
    let size = match params.get("page_size") {
        Some(s) => s
            .parse::<u32>()
            .map_err(|_| {
                GatewayError::Validation(format!("page_size must be a positive integer, got {s:?}"))
            })?
            .clamp(1, MAX_PAGE),
        None => MAX_PAGE,
    };
    q.push(format!("page_size={size}"));
    let path = format!("/v1/namespaces?{}", q.join("&"));
    // The default store's namespaces (each store lists its own; see docs/src/stores.md).
    let up = ctx
        .upstreams
        .default_store()
        .send("list", Method::GET, &path, &HeaderMap::new(), Bytes::new())
        .await?;
    if !up.status.is_success() {
        return Err(GatewayError::Upstream(format!(
            "namespace listing answered {}: {}",
            up.status,
            String::from_utf8_lossy(&up.body)
        )));
    }
    let listing: Value = serde_json::from_slice(&up.body)
        .map_err(|e| GatewayError::Upstream(format!("namespace listing is not JSON: {e}")))?;
    let ids: Vec<String> = listing
        .get("namespaces")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|n| n.get("id").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let permits = Arc::new(Semaphore::new(LIST_CONCURRENCY));
    let mut set = tokio::task::JoinSet::new();
    for (i, id) in ids.iter().enumerate() {
        let (up, id, permits) = (ctx.upstream(id).clone(), id.clone(), permits.clone());
        set.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let r = up
                .send(
                    "list_metadata",
                    Method::GET,
                    &format!("/v2/namespaces/{id}/metadata"),
                    &HeaderMap::new(),
                    Bytes::new(),
                )
                .await;
            (i, r)
        });
    }
    let mut rows: Vec<Value> = vec![Value::Null; ids.len()];
    while let Some(done) = set.join_next().await {
        let Ok((i, result)) = done else { continue };
        rows[i] = row(ctx, &ids[i], result);
    }
    let mut out = Map::new();
    out.insert("namespaces".into(), Value::Array(rows));
    out.insert(
        "next_cursor".into(),
        listing.get("next_cursor").cloned().unwrap_or(Value::Null),
    );
    Ok(Value::Object(out))
}

fn row(ctx: &ShardCtx, name: &str, result: Result<UpstreamResponse, GatewayError>) -> Value {
    let labels = ctx
        .core
        .indexes
        .get(name)
        .map(|i| json!(i.metadata.labels))
        .unwrap_or_else(|| json!({}));
    let mut r = Map::new();
    r.insert("name".into(), json!(name));
    r.insert(
        "cache_state".into(),
        json!({"state": "cold", "warm_inflight": false}),
    );
    r.insert("shadow".into(), json!(false));
    r.insert("labels".into(), labels);
    let meta = match result {
        Ok(up) if up.status.is_success() => match serde_json::from_slice::<Value>(&up.body) {
            Ok(v) => v,
            Err(e) => return with_error(r, format!("metadata is not JSON: {e}")),
        },
        Ok(up) => {
            return with_error(
                r,
                format!(
                    "metadata answered {}: {}",
                    up.status.as_u16(),
                    String::from_utf8_lossy(&up.body)
                ),
            );
        }
        Err(e) => return with_error(r, e.to_string()),
    };
    r.insert(
        "row_count".into(),
        meta.get("approx_row_count").cloned().unwrap_or(Value::Null),
    );
    r.insert(
        "size_bytes".into(),
        meta.get("approx_logical_bytes")
            .cloned()
            .unwrap_or(Value::Null),
    );
    if let Some(index) = meta.get("index") {
        let status = index.get("status").and_then(Value::as_str);
        if let Some(s) = status {
            r.insert("is_stable".into(), json!(s == "up-to-date"));
            if s == "up-to-date" {
                r.insert("stable_as_of_ms".into(), json!(now_ms()));
            }
        }
        r.insert("index".into(), index.clone());
    }
    if let Some(ms) = meta
        .get("last_write_at")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339_ms)
    {
        r.insert("last_write_ms".into(), json!(ms));
    }
    if let Some(schema) = meta.get("schema").and_then(Value::as_object) {
        let dim = schema
            .values()
            .filter_map(|s| s.get("type").and_then(Value::as_str))
            .find_map(vector_dim);
        let fields: Vec<&String> = schema.keys().collect();
        r.insert(
            "schema_summary".into(),
            json!({"vector_dim": dim, "fields": fields}),
        );
    }
    Value::Object(r)
}

fn with_error(mut r: Map<String, Value>, e: String) -> Value {
    r.insert("metadata_error".into(), json!(e));
    Value::Object(r)
}

/// Parses an RFC 3339 timestamp (upstream uses `YYYY-MM-DDTHH:MM:SS[.fff]Z`) to epoch ms.
fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let t = chrono::DateTime::parse_from_rfc3339(s.trim()).ok()?;
    u64::try_from(t.timestamp_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_rfc3339_ms("1970-01-02T00:00:01Z"), Some(86_401_000));
        assert_eq!(
            parse_rfc3339_ms("2026-11-23T11:38:35.5Z"),
            Some(1_795_433_915_500)
        );
    }
}
