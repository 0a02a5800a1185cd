//! The typed async client of the gateway API: one place for the base URL, the bearer, retries on
//! 429/5xx with backoff, and error bodies turned into one-line messages. Every read returns the
//! raw JSON body (what `-o json` prints) next to the typed view the tables use.

use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER, USER_AGENT};
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{CliError, Result};

/// Attempts per call (the first plus retries).
const ATTEMPTS: u32 = 4;
/// The first backoff; it doubles per retry. A `Retry-After` in seconds (capped) wins.
const BACKOFF: Duration = Duration::from_millis(250);
const RETRY_AFTER_CAP: Duration = Duration::from_secs(10);
/// Per-request deadline, like the Python client's 30 s.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A gateway API client.
#[derive(Clone)]
pub struct Api {
    base: String,
    bearer: Option<HeaderValue>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// A decoded body: the raw JSON and its typed view.
pub struct Typed<T> {
    pub raw: Value,
    pub value: T,
}

/// One successful reply.
struct Reply {
    headers: HeaderMap,
    body: Value,
}

/// Everything but RFC 3986's unreserved characters is escaped.
const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters).
pub fn seg(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, ESCAPED).to_string()
}

/// One line from an error body: `error: message` from the documented `{error, message}` shape,
/// else the first line of the text.
pub fn error_line(status: u16, body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let code = v.get("error").and_then(Value::as_str);
        let msg = v.get("message").and_then(Value::as_str);
        match (code, msg) {
            (Some(c), Some(m)) => return format!("HTTP {status} {c}: {}", first_line(m)),
            (Some(c), None) => return format!("HTTP {status} {c}"),
            (None, Some(m)) => return format!("HTTP {status}: {}", first_line(m)),
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(body);
    let line = first_line(text.trim());
    if line.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {line}")
    }
}

fn first_line(s: &str) -> String {
    let l = s.lines().next().unwrap_or("").trim();
    if l.chars().count() > 300 {
        let cut: String = l.chars().take(300).collect();
        format!("{cut}…")
    } else {
        l.to_string()
    }
}

/// The error and its causes on one line (hyper's errors hide the useful part in `source`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !parts.contains(&s) {
            parts.push(s);
        }
        cur = c.source();
    }
    parts.join(": ")
}

impl Api {
    /// A client of `base_url` (a path prefix is kept) with an optional bearer.
    pub fn new(base_url: &str, api_key: Option<&str>) -> Result<Self> {
        let base = base_url.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::usage(format!(
                "base URL {base_url:?} must start with http:// or https://"
            )));
        }
        let bearer = match api_key.map(str::trim).filter(|k| !k.is_empty()) {
            Some(k) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {k}"))
                    .map_err(|_| CliError::usage("the API key contains invalid characters"))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        // The provider is named: feature unification may enable a second one in the build.
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .map_err(|e| CliError::failure(format!("TLS setup: {e}")))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(https);
        Ok(Api {
            base,
            bearer,
            client,
        })
    }

    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Reply> {
        let url = format!("{}{path}", self.base);
        let bytes = match body {
            Some(v) => Bytes::from(v.to_string()),
            None => Bytes::new(),
        };
        // A POST may have been applied when a 5xx comes back: only 429 (refused before any work)
        // and connection failures are retried for non-idempotent methods.
        let idempotent = matches!(method, Method::GET | Method::DELETE | Method::PUT);
        let mut delay = BACKOFF;
        let mut attempt = 1;
        loop {
            let mut b = Request::builder()
                .method(method.clone())
                .uri(&url)
                .header(USER_AGENT, concat!("layer-cli/", env!("CARGO_PKG_VERSION")));
            if let Some(a) = &self.bearer {
                b = b.header(AUTHORIZATION, a.clone());
            }
            if body.is_some() {
                b = b.header(CONTENT_TYPE, "application/json");
            }
            let req = b
                .body(Full::new(bytes.clone()))
                .map_err(|e| CliError::usage(format!("invalid request URL {url:?}: {e}")))?;
            let sent = tokio::time::timeout(TIMEOUT, self.client.request(req)).await;
            let resp = match sent {
                Err(_) => {
                    return Err(CliError::failure(format!(
                        "{method} {url}: no answer within {}s",
                        TIMEOUT.as_secs()
                    )));
                }
                Ok(Err(e)) if e.is_connect() && attempt < ATTEMPTS => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                    continue;
                }
                Ok(Err(e)) => {
                    return Err(CliError::failure(format!(
                        "cannot reach {}: {}",
                        self.base,
                        chain(&e)
                    )));
                }
                Ok(Ok(r)) => r,
            };
            let status = resp.status();
            let retry = status.as_u16() == 429 || (status.is_server_error() && idempotent);
            if retry && attempt < ATTEMPTS {
                let wait = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(RETRY_AFTER_CAP))
                    .unwrap_or(delay);
                tokio::time::sleep(wait).await;
                delay *= 2;
                attempt += 1;
                continue;
            }
            let (parts, body) = resp.into_parts();
            let data = body
                .collect()
                .await
                .map_err(|e| CliError::failure(format!("{method} {url}: {}", chain(&e))))?
                .to_bytes();
            if !status.is_success() {
                return Err(CliError::failure(format!(
                    "{method} {path}: {}",
                    error_line(status.as_u16(), &data)
                )));
            }
            let body = if data.iter().all(u8::is_ascii_whitespace) {
                Value::Null
            } else {
                serde_json::from_slice(&data).map_err(|e| {
                    CliError::failure(format!("{method} {path}: the answer is not JSON: {e}"))
                })?
            };
            return Ok(Reply {
                headers: parts.headers,
                body,
            });
        }
    }

    async fn typed<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Typed<T>> {
        let reply = self.send(method.clone(), path, body).await?;
        decode(&format!("{method} {path}"), reply.body)
    }

    /// Any JSON call; the answer's body (for routes without a typed method: `layer run`'s
    /// register, discover and delete).
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        Ok(self.send(method, path, body).await?.body)
    }

    /// `GET /v2/namespaces`, every page (following `x-layer-next-cursor` / `next_cursor`).
    /// The raw value is `{"namespaces": [...every page's rows]}`.
    pub async fn list_namespaces(
        &self,
        prefix: Option<&str>,
    ) -> Result<Typed<Vec<NamespaceEntry>>> {
        let mut rows: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = vec![];
            if let Some(p) = prefix {
                q.push(format!("prefix={}", seg(p)));
            }
            if let Some(c) = &cursor {
                q.push(format!("cursor={}", seg(c)));
            }
            let path = if q.is_empty() {
                "/v2/namespaces".to_string()
            } else {
                format!("/v2/namespaces?{}", q.join("&"))
            };
            let reply = self.send(Method::GET, &path, None).await?;
            let next = reply
                .headers
                .get("x-layer-next-cursor")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .or_else(|| {
                    reply
                        .body
                        .get("next_cursor")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .filter(|c| !c.is_empty());
            match reply.body.get("namespaces").and_then(Value::as_array) {
                Some(a) => rows.extend(a.iter().cloned()),
                None => {
                    return Err(CliError::failure(format!(
                        "GET {path}: the answer has no `namespaces` list"
                    )));
                }
            }
            if next.is_none() || next == cursor {
                break;
            }
            cursor = next;
        }
        let raw = Value::Array(rows);
        let t: Typed<Vec<NamespaceEntry>> = decode("GET /v2/namespaces", raw)?;
        Ok(Typed {
            raw: serde_json::json!({ "namespaces": t.raw }),
            value: t.value,
        })
    }

    /// `GET /v2/namespaces/{ns}/metadata`.
    pub async fn namespace_metadata(&self, ns: &str) -> Result<Typed<NamespaceMetadata>> {
        let path = format!("/v2/namespaces/{}/metadata", seg(ns));
        self.typed(Method::GET, &path, None).await
    }

    /// `DELETE /v2/namespaces/{ns}`.
    pub async fn delete_namespace(&self, ns: &str) -> Result<Value> {
        let path = format!("/v2/namespaces/{}", seg(ns));
        Ok(self.send(Method::DELETE, &path, None).await?.body)
    }

    /// `GET /v2/pipelines`.
    pub async fn list_pipelines(&self) -> Result<Typed<PipelineList>> {
        self.typed(Method::GET, "/v2/pipelines", None).await
    }

    /// `GET /v2/pipelines/{id}/status`.
    pub async fn pipeline_status(&self, id: &str) -> Result<Typed<QueueStatus>> {
        let path = format!("/v2/pipelines/{}/status", seg(id));
        self.typed(Method::GET, &path, None).await
    }

    /// `GET /v2/udfs`.
    pub async fn list_udfs(&self) -> Result<Typed<UdfList>> {
        self.typed(Method::GET, "/v2/udfs", None).await
    }

    /// `GET /v2/udfs/{id}/status`.
    pub async fn udf_status(&self, id: &str) -> Result<Typed<QueueStatus>> {
        let path = format!("/v2/udfs/{}/status", seg(id));
        self.typed(Method::GET, &path, None).await
    }

    /// `GET /v2/udfs/{id}` (`{udf, status}`).
    pub async fn get_udf(&self, id: &str) -> Result<Typed<GetUdf>> {
        let path = format!("/v2/udfs/{}", seg(id));
        self.typed(Method::GET, &path, None).await
    }

    /// `POST /v2/keys` (201; the only answer carrying the token).
    pub async fn mint_key(&self, body: &Value) -> Result<Typed<ApiKey>> {
        self.typed(Method::POST, "/v2/keys", Some(body)).await
    }

    /// `GET /v2/keys[?includeRevoked=true]`.
    pub async fn list_keys(&self, include_revoked: bool) -> Result<Typed<ApiKeyList>> {
        let path = if include_revoked {
            "/v2/keys?includeRevoked=true"
        } else {
            "/v2/keys"
        };
        self.typed(Method::GET, path, None).await
    }

    /// `GET /v2/keys/{keyId}`; `None` on 404.
    pub async fn get_key(&self, id: &str) -> Result<Option<Typed<ApiKey>>> {
        let path = format!("/v2/keys/{}", seg(id));
        match self.typed(Method::GET, &path, None).await {
            Ok(k) => Ok(Some(k)),
            Err(e) if e.message.contains("HTTP 404") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /v2/keys/{keyId}/revoke` (idempotent; the record is kept).
    pub async fn revoke_key(&self, id: &str) -> Result<Typed<ApiKey>> {
        let path = format!("/v2/keys/{}/revoke", seg(id));
        self.typed(Method::POST, &path, None).await
    }

    /// `DELETE /v2/keys/{keyId}` (hard delete).
    pub async fn delete_key(&self, id: &str) -> Result<Value> {
        let path = format!("/v2/keys/{}", seg(id));
        Ok(self.send(Method::DELETE, &path, None).await?.body)
    }
}

fn decode<T: DeserializeOwned>(what: &str, raw: Value) -> Result<Typed<T>> {
    let value = T::deserialize(&raw)
        .map_err(|e| CliError::failure(format!("{what}: unexpected answer: {e}")))?;
    Ok(Typed { raw, value })
}

/// A row of `GET /v2/namespaces` (`NamespaceListEntry`).
#[derive(Deserialize, Debug, Clone, Default)]
pub struct NamespaceEntry {
    pub name: String,
    pub row_count: Option<u64>,
    pub size_bytes: Option<u64>,
    pub stable_as_of_ms: Option<u64>,
    pub is_stable: Option<bool>,
    pub schema_summary: Option<SchemaSummary>,
    pub index: Option<IndexState>,
    pub cache_state: Option<CacheState>,
    pub last_write_ms: Option<u64>,
    pub metadata_error: Option<String>,
}

/// `{vector_dim?, fields?}`.
#[derive(Deserialize, Debug, Clone, Default)]
pub struct SchemaSummary {
    pub vector_dim: Option<u64>,
    pub fields: Option<Vec<String>>,
}

/// `IndexState`.
#[derive(Deserialize, Debug, Clone, Default)]
pub struct IndexState {
    pub status: Option<String>,
    pub unindexed_bytes: Option<u64>,
}

/// `NamespaceCacheState`.
#[derive(Deserialize, Debug, Clone, Default)]
pub struct CacheState {
    pub state: String,
    pub warm_inflight: bool,
    pub warmed_through_ms: Option<u64>,
}

/// `NamespaceMetadata` (the fields the CLI shows).
#[derive(Deserialize, Debug, Clone, Default)]
pub struct NamespaceMetadata {
    pub id: String,
    #[serde(default)]
    pub schema: serde_json::Map<String, Value>,
    pub approx_logical_bytes: u64,
    pub approx_row_count: u64,
    pub updated_at: Option<String>,
    pub last_write_at: Option<String>,
    pub index: Option<IndexState>,
    pub layer: Option<MetadataLayer>,
}

/// `NamespaceMetadataLayer`.
#[derive(Deserialize, Debug, Clone, Default)]
pub struct MetadataLayer {
    pub stable_as_of: Option<u64>,
    pub is_stable: Option<bool>,
    pub indexed: Option<bool>,
    pub index_lag_rows: Option<u64>,
}

/// `Pipeline`.
#[derive(Deserialize, Debug, Clone)]
pub struct Pipeline {
    pub id: String,
    pub target_namespace: String,
    pub distance_metric: String,
    pub created_at: String,
}

/// `PipelineList`.
#[derive(Deserialize, Debug, Clone)]
pub struct PipelineList {
    pub pipelines: Vec<Pipeline>,
}

/// The queue fields `PipelineStatus` and `UdfStatus` share (plus the UDF's discovery block).
#[derive(Deserialize, Debug, Clone)]
pub struct QueueStatus {
    pub status: Option<String>,
    pub pending_count: u64,
    pub processing_count: u64,
    pub failed_count: u64,
    pub indexed_rate_per_min: f64,
    pub rate_window_seconds: u64,
    pub discovery: Option<Discovery>,
    #[serde(default)]
    pub active_namespaces: Vec<String>,
}

/// `UdfDiscoveryStatus`.
#[derive(Deserialize, Debug, Clone)]
pub struct Discovery {
    pub sweeps_completed: u64,
    pub last_completed_at: Option<String>,
}

/// `Udf`.
#[derive(Deserialize, Debug, Clone)]
pub struct Udf {
    pub id: String,
    pub spec: Value,
    pub paused: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// `UdfList`.
#[derive(Deserialize, Debug, Clone)]
pub struct UdfList {
    pub udfs: Vec<Udf>,
}

/// `GetUdfResponse`.
#[derive(Deserialize, Debug, Clone)]
pub struct GetUdf {
    pub udf: Udf,
    pub status: QueueStatus,
}

/// `ApiKey` / `MintKeyResponse` (camelCase on the wire; `token` only on mint).
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub key_id: String,
    pub name: String,
    #[serde(default)]
    pub entitlements: serde_json::Map<String, Value>,
    pub phase: String,
    pub created_at: String,
    pub owner: Option<String>,
    pub description: Option<String>,
    pub expires_after: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_seen_at: Option<String>,
    pub token: Option<String>,
}

/// `ApiKeyList`.
#[derive(Deserialize, Debug, Clone)]
pub struct ApiKeyList {
    pub keys: Vec<ApiKey>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_become_one_line() {
        let b = br#"{"error":"not_found","message":"namespace x\nnot found"}"#;
        assert_eq!(error_line(404, b), "HTTP 404 not_found: namespace x");
        assert_eq!(
            error_line(502, b"bad gateway\nmore"),
            "HTTP 502: bad gateway"
        );
        assert_eq!(error_line(500, b""), "HTTP 500");
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(seg("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(seg("cohort-7_x.y~"), "cohort-7_x.y~");
    }
}
