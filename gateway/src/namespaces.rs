//! Namespace metadata with Layer's `layer` block, and the enriched `GET /v2/namespaces` listing.
//!
//! Metadata (`GET /v{1,2}/namespaces/{ns}/metadata`, and the PATCH response) is the upstream body
//! verbatim with two keys spliced in front: `id` (the client model requires it; upstream omits
//! it) and `layer: {stable_as_of, is_stable, indexed, index_lag_rows}` from the watcher.
//! `indexed` / `index_lag_rows` stay null until snapshots exist.
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

use crate::auth::Principal;
use crate::error::GatewayError;
use crate::handler::{ShardCtx, now_ms};
use crate::upstream::UpstreamResponse;
use crate::watcher::Status;

/// Per-row metadata fetches in flight for one listing page.
const LIST_CONCURRENCY: usize = 8;
/// Largest upstream list page.
const MAX_PAGE: u32 = 1000;

/// Removes the gateway's own `_hevlayer_*` attributes from a schema map (the top level of a
/// schema response, or the `schema` member of a metadata body when `nested`). The body is only
/// re-serialised when something was removed.
pub fn strip_reserved_schema(up: &mut UpstreamResponse, nested: bool) {
    if !up.status.is_success() || up.headers.contains_key(http::header::CONTENT_ENCODING) {
        return;
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(&up.body) else {
        return;
    };
    let map = if nested {
        v.get_mut("schema").and_then(Value::as_object_mut)
    } else {
        v.as_object_mut()
    };
    let Some(map) = map else { return };
    let before = map.len();
    map.retain(|k, _| !k.starts_with(scatter::RESERVED_PREFIX));
    if map.len() != before
        && let Ok(b) = serde_json::to_vec(&v)
    {
        up.body = Bytes::from(b);
    }
}

/// Splices `id` (when absent) and the `layer` block into a successful metadata body (after
/// hiding the gateway's own attributes from its schema).
pub fn enrich_metadata(
    up: &mut UpstreamResponse,
    ns: &str,
    watch: (Status, Option<u64>),
    snapshot_rows: Option<u64>,
) {
    if !up.status.is_success() || up.headers.contains_key(http::header::CONTENT_ENCODING) {
        return;
    }
    strip_reserved_schema(up, true);
    let body = &up.body;
    let Some(open) = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .filter(|&i| body[i] == b'{')
    else {
        return;
    };
    if scatter::validate(body, &scatter::Limits::default()).is_err() {
        return;
    }
    let has_id = sonic_rs::get_from_slice(body, &["id"]).is_ok();
    let (status, wm) = watch;
    let (indexed, lag) = match index_lag(body, snapshot_rows) {
        Some(lag) => (json!(lag == 0), json!(lag)),
        None => (Value::Null, Value::Null),
    };
    let layer = json!({
        "stable_as_of": wm,
        "is_stable": status == Status::Stable,
        "indexed": indexed,
        "index_lag_rows": lag,
    });
    let mut out = Vec::with_capacity(body.len() + 160);
    out.extend_from_slice(&body[..=open]);
    if !has_id {
        out.extend_from_slice(b"\"id\":");
        out.extend_from_slice(&serde_json::to_vec(ns).unwrap_or_default());
        out.push(b',');
    }
    out.extend_from_slice(b"\"layer\":");
    out.extend_from_slice(&serde_json::to_vec(&layer).unwrap_or_default());
    let rest = &body[open + 1..];
    if rest.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'}') {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    up.body = Bytes::from(out);
}

/// Rows of a vector namespace not yet in its latest snapshot: `approx_row_count` minus the
/// snapshot's `row_count` (the rows a stable origin pass saw). `None` — reported as null — for
/// namespaces without a vector attribute (FTS-only) or without a snapshot yet.
fn index_lag(body: &[u8], snapshot_rows: Option<u64>) -> Option<u64> {
    let rows = snapshot_rows?;
    let v: Value = serde_json::from_slice(body).ok()?;
    let has_vector = v.get("schema")?.as_object()?.values().any(|t| {
        let ty = t.get("type").unwrap_or(t);
        ty.as_str().and_then(vector_dim).is_some()
    });
    if !has_vector {
        return None;
    }
    let total = v.get("approx_row_count")?.as_u64()?;
    Some(total.saturating_sub(rows))
}

thread_local! {
    /// Listing pages by query string: (expiry, body). Per shard, so no locks.
    static LIST_CACHE: RefCell<HashMap<String, (Instant, Value)>> = RefCell::new(HashMap::new());
}

/// `GET /v2/namespaces`.
pub async fn list(
    ctx: &ShardCtx,
    query: &str,
    principal: &Principal,
) -> Result<Value, GatewayError> {
    let params = parse_query(query);
    let ttl = Duration::from_millis(ctx.shared.config.gateway.namespace_list_cache_ttl_ms);
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
    if principal.is_namespace_limited() {
        retain_granted(&mut page, "name", principal);
    }
    page
}

/// Keeps only the rows of a listing's `namespaces` array whose `key` (`name` in Layer's listing,
/// `id` in Turbopuffer's) names a namespace the principal may access.
pub fn retain_granted(page: &mut Value, key: &str, principal: &Principal) {
    if let Some(rows) = page.get_mut("namespaces").and_then(Value::as_array_mut) {
        rows.retain(|r| {
            r.get(key)
                .and_then(Value::as_str)
                .is_some_and(|n| principal.may_access(n))
        });
    }
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
    let up = ctx
        .upstream
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
        let (up, id, permits) = (ctx.upstream.clone(), id.clone(), permits.clone());
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
        .shared
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

fn vector_dim(t: &str) -> Option<u64> {
    let inner = t.strip_prefix('[')?;
    let (n, rest) = inner.split_once(']')?;
    (rest == "f32" || rest == "f16")
        .then(|| n.parse().ok())
        .flatten()
}

/// Parses an RFC 3339 timestamp (upstream uses `YYYY-MM-DDTHH:MM:SS[.fff]Z`) to epoch ms.
fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let t = chrono::DateTime::parse_from_rfc3339(s.trim()).ok()?;
    u64::try_from(t.timestamp_millis()).ok()
}

/// Query-string parameters, percent-decoded.
pub fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let v = decode(v);
            (!v.is_empty()).then(|| (decode(k), v))
        })
        .collect()
}

/// Percent-decodes a path segment or query value (`+` as space).
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn up(body: &str) -> UpstreamResponse {
        UpstreamResponse {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn metadata_gets_id_and_layer_and_keeps_the_rest() {
        let mut r = up(r#"{"schema":{},"approx_row_count":3,"index":{"status":"up-to-date"}}"#);
        enrich_metadata(&mut r, "ns1", (Status::Stable, Some(7)), None);
        let s = std::str::from_utf8(&r.body).unwrap();
        assert!(
            s.ends_with(r#""schema":{},"approx_row_count":3,"index":{"status":"up-to-date"}}"#),
            "{s}"
        );
        let v: Value = serde_json::from_str(s).unwrap();
        assert_eq!(v["id"], "ns1");
        assert_eq!(
            v["layer"],
            json!({"stable_as_of": 7, "is_stable": true, "indexed": null, "index_lag_rows": null})
        );
        let mut r = up("{}");
        enrich_metadata(&mut r, "x", (Status::Unknown, None), None);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (
                v["layer"]["stable_as_of"].clone(),
                v["layer"]["is_stable"].clone()
            ),
            (Value::Null, json!(false))
        );
        let mut r = up(r#"{"id":"keep"}"#);
        enrich_metadata(&mut r, "x", (Status::Unknown, None), None);
        assert_eq!(
            serde_json::from_slice::<Value>(&r.body).unwrap()["id"],
            "keep"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(parse_rfc3339_ms("1970-01-02T00:00:01Z"), Some(86_401_000));
        assert_eq!(
            parse_rfc3339_ms("2026-11-23T11:38:35.5Z"),
            Some(1_795_433_915_500)
        );
        assert_eq!(vector_dim("[768]f16"), Some(768));
        assert_eq!(vector_dim("[]string"), None);
        let q = parse_query("prefix=a%2Fb&cursor=&page_size=5");
        assert_eq!(q.get("prefix").map(String::as_str), Some("a/b"));
        assert!(!q.contains_key("cursor"));
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn index_lag_reconciles_vector_namespaces_only() {
        let vec_ns = br#"{"approx_row_count": 10, "schema": {"vector": {"type": "[3]f32"}, "t": {"type": "string"}}}"#;
        assert_eq!(index_lag(vec_ns, Some(7)), Some(3));
        assert_eq!(index_lag(vec_ns, Some(12)), Some(0));
        assert_eq!(index_lag(vec_ns, None), None);
        let fts = br#"{"approx_row_count": 10, "schema": {"t": {"type": "string", "full_text_search": true}, "tags": {"type": "[]string"}}}"#;
        assert_eq!(index_lag(fts, Some(7)), None);
    }
}
