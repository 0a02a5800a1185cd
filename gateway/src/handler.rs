//! The request pipeline on a shard: classify → admit → read body → per-route work → upstream →
//! respond → record. Start at [`handle`].

use std::io::Read;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};

use std::collections::HashMap;

use crate::auth::{Auth, Principal};
use crate::config::{Config, IndexConfig};
use crate::error::GatewayError;
use crate::metrics;
use crate::route::{self, Action, Route};
use crate::upstream::{Upstream, UpstreamResponse};
use crate::watcher::Watcher;
use crate::{fetch, namespaces, query, stable};

/// State shared by every shard, read lock-free.
pub struct Shared {
    pub config: Config,
    pub auth: ArcSwap<Auth>,
    pub limits: scatter::Limits,
    pub shards: usize,
    pub started: Instant,
    pub watcher: Arc<Watcher>,
    pub cache: crate::fetch::CacheTier,
    /// Configured indexes by upstream namespace.
    pub indexes: HashMap<String, IndexConfig>,
    /// The durable object store (history, clickstream, snapshot bodies).
    pub store: crate::store::ObjectStore,
    pub history: crate::history::History,
    pub snapshots: crate::snapshots::Snapshots,
    pub scans: crate::scans::Scans,
    pub warm: crate::warm::Warm,
    /// The control runtime (background loops and jobs); set once at start.
    pub control: std::sync::OnceLock<Control>,
}

/// The control runtime: where background loops and jobs run, with its own upstream pool, so
/// long scans never occupy a shard.
#[derive(Clone)]
pub struct Control {
    pub handle: tokio::runtime::Handle,
    pub upstream: Upstream,
}

impl Shared {
    /// The control runtime (present once the gateway started).
    pub fn control(&self) -> Result<&Control, GatewayError> {
        self.control
            .get()
            .ok_or_else(|| GatewayError::Internal("the control runtime is not running".into()))
    }
}

/// One shard's context: the shared state and the shard's own upstream pool.
pub struct ShardCtx {
    pub shared: Arc<Shared>,
    pub upstream: Upstream,
}

pub type Resp = Response<Full<Bytes>>;

/// Serves one request. Never fails: every error becomes a response here.
pub async fn handle(ctx: Arc<ShardCtx>, req: Request<Incoming>) -> Resp {
    let started = Instant::now();
    metrics::request_started();
    let (parts, body) = req.into_parts();
    // A `Uri` clone shares its bytes: the route borrows from it while `parts` moves on.
    let uri = parts.uri.clone();
    let route = route::classify(&parts.method, uri.path());
    let (resp, name, query_ns) = match route {
        None => {
            let e = GatewayError::NotFound {
                method: parts.method.to_string(),
                path: uri.path().to_string(),
            };
            (e.into_response(), "unknown", None)
        }
        Some(r) => {
            let query_ns = matches!(r.action, Action::Query | Action::QueryV1)
                .then(|| r.namespace.unwrap_or_default());
            let resp = match serve(&ctx, r, parts, body).await {
                Ok(resp) => resp,
                Err(e) => e.into_response(),
            };
            (resp, r.name, query_ns)
        }
    };
    metrics::request_finished(name, resp.status().as_u16(), started.elapsed(), query_ns);
    resp
}

async fn serve(
    ctx: &Arc<ShardCtx>,
    route: Route<'_>,
    parts: http::request::Parts,
    body: Incoming,
) -> Result<Resp, GatewayError> {
    let shared = &ctx.shared;
    let principal = shared.auth.load().admit(&parts.headers, &route)?;
    match route.action {
        Action::Health => {
            let (status, body) = health(shared);
            return Ok(json_response(status, &body));
        }
        Action::Metrics => {
            let mut r = Response::new(Full::new(Bytes::from(metrics::render(shared.shards))));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            return Ok(r);
        }
        Action::ListNamespaces => {
            let page = namespaces::list(ctx, parts.uri.query().unwrap_or(""), &principal).await?;
            return Ok(json_response(StatusCode::OK, &page));
        }
        Action::Fetch => {
            let ns = route.namespace.unwrap_or_default();
            let raw_id = parts.uri.path().rsplit('/').next().unwrap_or_default();
            let id = namespaces::decode(raw_id);
            let include = namespaces::parse_query(parts.uri.query().unwrap_or(""))
                .get("include_attributes")
                .map(|s| {
                    s.split(',')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(str::to_string)
                        .collect()
                });
            let (doc, served) = fetch::fetch_one(ctx, ns, &id, include).await?;
            crate::history::record_fetch(
                ctx,
                ns,
                &parts.headers,
                std::slice::from_ref(&id),
                served,
            );
            let mut r = json_response(StatusCode::OK, &doc);
            r.headers_mut()
                .insert("x-layer-cache", HeaderValue::from_static(served.header()));
            return Ok(r);
        }
        _ => {}
    }
    let limit = shared.config.gateway.max_body_bytes;
    let raw = read_body(body, limit).await?;
    match route.action {
        Action::History => return crate::history::serve(ctx, route, &principal, parts, raw).await,
        Action::Snapshots => {
            return crate::snapshots::serve(ctx, route, &principal, parts, raw).await;
        }
        Action::Scans => return crate::scans::serve(ctx, route, &principal, parts, raw).await,
        Action::Warm => return crate::warm::serve(ctx, route, &principal, parts, raw).await,
        _ => {}
    }
    if route.action == Action::BatchFetch {
        let raw = decode_gzip(&parts.headers, raw, limit)?;
        let ns = route.namespace.unwrap_or_default();
        let (page, served) = fetch::fetch_many(ctx, ns, &raw).await?;
        if parts.headers.contains_key("traceparent") {
            let ids: Vec<String> = page
                .get("documents")
                .and_then(Value::as_array)
                .map(|docs| {
                    docs.iter()
                        .filter_map(|d| d.get("id").and_then(Value::as_str).map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            crate::history::record_fetch(ctx, ns, &parts.headers, &ids, served);
        }
        let mut r = json_response(StatusCode::OK, &page);
        r.headers_mut()
            .insert("x-layer-cache", HeaderValue::from_static(served.header()));
        return Ok(r);
    }
    let mut headers = parts.headers;
    ensure_traceparent(&mut headers);
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let body = match route.action {
        Action::Write => {
            let decoded = decode_gzip(&headers, raw.clone(), limit)?;
            // Sharded namespaces also get `_hevlayer_shard = xxh64(id) % shards` on every row.
            let shards = crate::origin::shards_of(shared, ns_of(&route));
            let shard_fn = move |id: &scatter::IdRef<'_>| scatter::shard_of_ref(id, shards);
            let mut opts = scatter::StampOptions::new(now_ms());
            if shards > 1 {
                opts.shard = Some(&shard_fn);
            }
            match scatter::stamp_write_bytes(&decoded, &opts, &shared.limits) {
                Ok(stamped) => {
                    // The (possibly stamped) body is sent uncompressed; when nothing needed a
                    // stamp it is the decoded body itself, not a copy.
                    headers.remove(header::CONTENT_ENCODING);
                    stamped
                }
                // Bad JSON or a wrongly shaped field: upstream rejects it itself, and its own
                // error is what Turbopuffer clients expect. Nothing is written either way.
                Err(e) if e.upstream_would_reject() => raw,
                Err(e) => {
                    metrics::write_rejected(e.error_code());
                    return Err(e.into());
                }
            }
        }
        Action::SchemaUpdate => {
            let decoded = decode_gzip(&headers, raw.clone(), limit)?;
            match check_schema(&decoded, &shared.limits) {
                Ok(()) => {}
                Err(e) if e.upstream_would_reject() => {}
                Err(e) => {
                    metrics::write_rejected("reserved_attribute");
                    return Err(e.into());
                }
            }
            raw
        }
        _ => raw,
    };
    let trace = headers.get("traceparent").cloned();
    let ns = route.namespace.unwrap_or_default();
    match route.action {
        Action::Query => {
            let search = search_context(&headers)?;
            let gzip_ok = accepts_gzip(&headers);
            let request = body.clone();
            let a = query::serve(ctx, ns, &path_and_query, &mut headers, body).await?;
            crate::history::record_query(
                ctx,
                ns,
                &search,
                trace.as_ref(),
                &request,
                a.status,
                &a.body,
                a.watermark,
            );
            let mut up = UpstreamResponse {
                status: a.status,
                headers: a.headers,
                body: a.body,
            };
            if gzip_ok {
                gzip_response(&mut up);
            }
            let mut resp = relay(up, trace);
            stable::stamp_header(resp.headers_mut(), a.watermark);
            return Ok(resp);
        }
        Action::Write => shared.watcher.note_write(ns),
        _ => {}
    }
    // The document cache never serves what a write changed: invalidate before forwarding and
    // again once upstream acknowledged (a fetch racing the write may have backfilled the old row).
    let touched = match route.action {
        Action::Write => Some(fetch::touched(&body)),
        Action::ReplaceNamespace => Some(fetch::Touched {
            whole_namespace: true,
            ..Default::default()
        }),
        _ => None,
    };
    if let Some(t) = &touched {
        fetch::invalidate(ctx, ns, t);
    }
    // Responses the gateway rewrites must come back uncompressed; everything else keeps the
    // caller's accept-encoding and is relayed as is.
    let limited_listing =
        route.action == Action::UpstreamListing && principal.is_namespace_limited();
    let rewrites = matches!(
        route.action,
        Action::Metadata | Action::Schema | Action::SchemaUpdate
    ) || limited_listing;
    // The legacy v1 query is relayed as upstream answers it, and recorded in search history like
    // the v2 route: its answer is fetched uncompressed (to read the result ids) and compressed
    // here when the caller accepts gzip.
    let v1_query = route.action == Action::QueryV1;
    let v1_gzip_ok = v1_query && accepts_gzip(&headers);
    let v1_search = if v1_query {
        Some(search_context(&headers)?)
    } else {
        None
    };
    // A cheap `Bytes` clone; a gzip body is inflated by the history writer, off the shard.
    let v1_request = v1_query.then(|| body.clone());
    if rewrites || v1_query {
        headers.remove(header::ACCEPT_ENCODING);
    }
    let mut up = ctx
        .upstream
        .send(route.name, parts.method, &path_and_query, &headers, body)
        .await?;
    if let (Some(search), Some(request)) = (&v1_search, &v1_request)
        && up.status.is_success()
        && !up.headers.contains_key(header::CONTENT_ENCODING)
    {
        crate::history::record_query(
            ctx,
            ns,
            search,
            trace.as_ref(),
            request,
            up.status,
            &up.body,
            None,
        );
    }
    if v1_gzip_ok {
        gzip_response(&mut up);
    }
    if let Some(t) = &touched
        && up.status.is_success()
    {
        fetch::invalidate(ctx, ns, t);
        let max_ids = shared.config.gateway.cache.populate_max_ids;
        if !t.populate.is_empty() && max_ids > 0 {
            let (ctx, ns, ids) = (ctx.clone(), ns.to_string(), t.populate.clone());
            tokio::spawn(async move { fetch::populate(&ctx, &ns, &ids, max_ids).await });
        }
    }
    match route.action {
        Action::Metadata => {
            // `indexed` / `index_lag_rows` are reconciled from the latest snapshot; without one
            // (or with the object store down) they stay null.
            // Bounded: metadata never waits long on the object store.
            let rows = if up.status.is_success() {
                tokio::time::timeout(
                    std::time::Duration::from_millis(250),
                    crate::snapshots::latest(shared, ns),
                )
                .await
                .ok()
                .and_then(Result::ok)
                .flatten()
                .map(|b| b.row_count)
            } else {
                None
            };
            namespaces::enrich_metadata(&mut up, ns, shared.watcher.snapshot(ns), rows)
        }
        Action::Schema | Action::SchemaUpdate => namespaces::strip_reserved_schema(&mut up, false),
        Action::UpstreamListing if limited_listing => up = filter_listing(up, &principal),
        _ => {}
    }
    Ok(relay(up, trace))
}

/// Reads a request body, refusing (413) anything larger than `limit`.
async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, GatewayError> {
    Ok(Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            GatewayError::PayloadTooLarge(format!(
                "request body rejected (limit {limit} bytes): {e}"
            ))
        })?
        .to_bytes())
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains("gzip")))
}

/// Compresses a response the gateway built (query answers are fetched uncompressed so they can
/// be merged) when the caller accepts gzip. Small bodies are not worth it.
fn gzip_response(up: &mut UpstreamResponse) {
    use std::io::Write;
    if up.body.len() < 1024 || up.headers.contains_key(header::CONTENT_ENCODING) {
        return;
    }
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(up.body.len() / 3),
        flate2::Compression::fast(),
    );
    if enc.write_all(&up.body).is_ok()
        && let Ok(gz) = enc.finish()
    {
        up.body = Bytes::from(gz);
        up.headers
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
}

fn ns_of<'a>(route: &Route<'a>) -> &'a str {
    route.namespace.unwrap_or_default()
}

/// Search metadata headers (`x-hevlayer-search-query`, `x-hevlayer-tags`), validated per the tag
/// contract: tags are trimmed, empties dropped, at most 128 bytes of `[A-Za-z0-9:_\-./=+]`,
/// deduplicated and sorted, at most 32. Search history (a later feature) consumes them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SearchContext {
    pub raw_query: Option<String>,
    pub tags: Vec<String>,
}

/// Reads and validates the search metadata headers (422 on an invalid tag).
pub fn search_context(headers: &HeaderMap) -> Result<SearchContext, GatewayError> {
    let raw_query = headers
        .get("x-hevlayer-search-query")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
        .filter(|q| !q.is_empty());
    let mut tags: Vec<String> = Vec::new();
    for value in headers.get_all("x-hevlayer-tags") {
        for tag in String::from_utf8_lossy(value.as_bytes()).split(',') {
            let tag = tag.trim();
            if tag.is_empty() {
                continue;
            }
            if tag.len() > 128 {
                return Err(GatewayError::Validation(format!(
                    "tag {tag:?} is longer than 128 bytes"
                )));
            }
            if !tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":_-./=+".contains(&b))
            {
                return Err(GatewayError::Validation(format!(
                    "tag {tag:?} has a character outside ASCII letters, digits and : _ - . / = +"
                )));
            }
            tags.push(tag.to_string());
        }
    }
    tags.sort();
    tags.dedup();
    if tags.len() > 32 {
        return Err(GatewayError::Validation(format!(
            "at most 32 tags are allowed, got {}",
            tags.len()
        )));
    }
    Ok(SearchContext { raw_query, tags })
}

/// A bare schema map (`POST /v1/namespaces/{ns}/schema`) gets the same reserved-attribute and
/// validation rules as a write's `schema`, by checking it as `{"schema": <body>}`.
fn check_schema(body: &[u8], limits: &scatter::Limits) -> Result<(), scatter::RewriteError> {
    let mut wrapped = Vec::with_capacity(body.len() + 12);
    wrapped.extend_from_slice(b"{\"schema\":");
    wrapped.extend_from_slice(body);
    wrapped.push(b'}');
    scatter::stamp_write(&wrapped, 0, limits)?;
    Ok(())
}

pub fn decode_gzip(headers: &HeaderMap, raw: Bytes, limit: usize) -> Result<Bytes, GatewayError> {
    let gz = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    if !gz {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
    let read = flate2::read::GzDecoder::new(raw.as_ref())
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| GatewayError::Validation(format!("request body is not valid gzip: {e}")))?;
    if read > limit {
        return Err(GatewayError::PayloadTooLarge(format!(
            "decompressed request body exceeds {limit} bytes"
        )));
    }
    Ok(Bytes::from(out))
}

/// Keeps only granted namespaces in a `GET /v1/namespaces` page for a namespace-limited key.
fn filter_listing(mut up: UpstreamResponse, principal: &Principal) -> UpstreamResponse {
    if !up.status.is_success() || up.headers.contains_key(header::CONTENT_ENCODING) {
        return up;
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(&up.body) else {
        return up;
    };
    namespaces::retain_granted(&mut v, "id", principal);
    if let Ok(b) = serde_json::to_vec(&v) {
        up.body = Bytes::from(b);
    }
    up
}

pub fn relay(up: UpstreamResponse, trace: Option<HeaderValue>) -> Resp {
    let mut resp = Response::new(Full::new(up.body));
    *resp.status_mut() = up.status;
    *resp.headers_mut() = up.headers;
    if let Some(t) = trace {
        resp.headers_mut().entry("traceparent").or_insert(t);
    }
    resp
}

pub fn json_response(status: StatusCode, v: &Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(
        serde_json::to_vec(v).unwrap_or_default(),
    )));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn health(shared: &Shared) -> (StatusCode, Value) {
    let h = shared.cache.tier.health();
    // 503 means up but degraded: the cache tier went cold (fetches still fall through to origin).
    let status = if h.state == layer_cache::CacheState::Cold {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = json!({
        "status": if status == StatusCode::OK { "ok" } else { "degraded" },
        "uptime_seconds": shared.started.elapsed().as_secs(),
        "shards": shared.shards,
        "cache": {"state": h.state.as_str(), "reconnect_generation": h.reconnect_generation, "backend": shared.cache.tier.name()},
        "namespaces": [],
    });
    (status, body)
}

/// Adds a W3C `traceparent` when the caller sent none, so upstream logs and ours correlate.
fn ensure_traceparent(headers: &mut HeaderMap) {
    if headers.contains_key("traceparent") {
        return;
    }
    let trace: u128 = rand::random::<u128>() | 1;
    let span: u64 = rand::random::<u64>() | 1;
    if let Ok(v) = HeaderValue::from_str(&format!("00-{trace:032x}-{span:016x}-01")) {
        headers.insert("traceparent", v);
    }
}

/// Server time in epoch milliseconds (the write stamp).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_generated_once() {
        let mut h = HeaderMap::new();
        ensure_traceparent(&mut h);
        let t = h["traceparent"].to_str().unwrap().to_string();
        assert_eq!(t.len(), 55);
        ensure_traceparent(&mut h);
        assert_eq!(h["traceparent"], t.as_str());
    }

    #[test]
    fn schema_maps_with_reserved_attributes_are_rejected() {
        let limits = scatter::Limits::default();
        assert!(check_schema(br#"{"title": {"type": "string"}}"#, &limits).is_ok());
        assert!(check_schema(br#"{"_hevlayer_upserted_at": "int"}"#, &limits).is_err());
        assert!(check_schema(br#"{"a": 1, "a": 2}"#, &limits).is_err());
    }
}
