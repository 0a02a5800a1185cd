//! The gateway's admin routes the operator drives (contract §1.8 UDFs, §1.9 keys), and the
//! upstream store probe (`GET /v1/namespaces`), over one pooled HTTP(S) client.
//!
//! Every call has a deadline; a 404 on a delete is success (already gone). Responses are JSON;
//! a non-2xx answer becomes [`GatewayError::Status`] with the body's text, which the
//! reconcilers turn into a condition or a retry.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// How long one call may take.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{method} {url}: HTTP {status}: {body}")]
    Status {
        method: Method,
        url: String,
        status: StatusCode,
        body: String,
    },
    #[error("{0}")]
    Transport(String),
}

impl GatewayError {
    /// The HTTP status of a refused call.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            GatewayError::Status { status, .. } => Some(*status),
            GatewayError::Transport(_) => None,
        }
    }
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// The client: the gateway's base URL and the operator's bearer.
#[derive(Clone)]
pub struct Gateway {
    base: Arc<str>,
    bearer: Option<HeaderValue>,
    client: Client<Https, Full<Bytes>>,
}

/// What a store probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The endpoint answered 2xx with the credential.
    Reachable,
    /// The endpoint answered 401/403: the credential is refused.
    CredentialInvalid(String),
    /// No answer, or another error status.
    Unreachable(String),
}

impl Gateway {
    /// A client for `base` (`http://…` or `https://…`, no trailing slash needed).
    pub fn new(base: &str, bearer: Option<&str>) -> Result<Gateway, GatewayError> {
        let bearer = match bearer.map(str::trim).filter(|b| !b.is_empty()) {
            Some(b) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {b}"))
                    .map_err(|_| GatewayError::Transport("invalid bearer token".into()))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        // The provider is named: feature unification may enable a second one in the build.
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(Arc::new(rustls::crypto::ring::default_provider()))
            .map_err(|e| GatewayError::Transport(format!("TLS setup: {e}")))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Gateway {
            base: base.trim_end_matches('/').into(),
            bearer,
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    /// The base URL (what workers get as `HEVLAYER_BASE_URL`).
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn call(
        &self,
        method: Method,
        url: String,
        bearer: Option<&HeaderValue>,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), GatewayError> {
        let mut b = Request::builder().method(method.clone()).uri(&url);
        if let Some(a) = bearer {
            b = b.header(AUTHORIZATION, a.clone());
        }
        let bytes = match body {
            Some(v) => {
                b = b.header(CONTENT_TYPE, "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        let req = b
            .body(Full::new(bytes))
            .map_err(|e| GatewayError::Transport(format!("invalid URL {url:?}: {e}")))?;
        let resp = match tokio::time::timeout(TIMEOUT, self.client.request(req)).await {
            Err(_) => {
                return Err(GatewayError::Transport(format!(
                    "{method} {url}: timed out"
                )));
            }
            Ok(Err(e)) => return Err(GatewayError::Transport(format!("{method} {url}: {e}"))),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        let body = match tokio::time::timeout(TIMEOUT, resp.into_body().collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) => return Err(GatewayError::Transport(format!("{method} {url}: {e}"))),
            Err(_) => {
                return Err(GatewayError::Transport(format!(
                    "{method} {url}: timed out"
                )));
            }
        };
        if !status.is_success() {
            return Err(GatewayError::Status {
                method,
                url,
                status,
                body: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
            });
        }
        let value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).map_err(|e| {
                GatewayError::Transport(format!("{method} {url}: invalid JSON answer: {e}"))
            })?
        };
        Ok((status, value))
    }

    async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, GatewayError> {
        let url = format!("{}{path}", self.base);
        Ok(self.call(method, url, self.bearer.as_ref(), body).await?.1)
    }

    /// `PUT /v2/udfs/{id}` with `{"spec": spec}` (create or replace; `spec.paused` included).
    pub async fn upsert_udf(&self, id: &str, spec: &Value) -> Result<Value, GatewayError> {
        self.admin(
            Method::PUT,
            &format!("/v2/udfs/{id}"),
            Some(&json!({ "spec": spec })),
        )
        .await
    }

    /// `POST /v2/udfs/{id}/discover` (every target namespace): the number of items enqueued.
    pub async fn discover_udf(&self, id: &str) -> Result<Value, GatewayError> {
        self.admin(
            Method::POST,
            &format!("/v2/udfs/{id}/discover"),
            Some(&json!({})),
        )
        .await
    }

    /// `DELETE /v2/udfs/{id}`; a UDF already gone is success.
    pub async fn delete_udf(&self, id: &str) -> Result<(), GatewayError> {
        gone_ok(
            self.admin(Method::DELETE, &format!("/v2/udfs/{id}"), Some(&json!({})))
                .await,
        )
    }

    /// `GET /v1/namespaces` (one page): `{"namespaces": [{"id"}], "next_cursor"}`.
    pub async fn list_namespaces(
        &self,
        prefix: &str,
        page_size: u32,
        cursor: Option<&str>,
    ) -> Result<Value, GatewayError> {
        let enc = |s: &str| {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        };
        let mut path = format!("/v1/namespaces?page_size={page_size}");
        if !prefix.is_empty() {
            path.push_str(&format!("&prefix={}", enc(prefix)));
        }
        if let Some(c) = cursor {
            path.push_str(&format!("&cursor={}", enc(c)));
        }
        self.admin(Method::GET, &path, None).await
    }

    /// `POST /v2/keys`: the minted key, with its `token` (the only answer that carries it).
    pub async fn mint_key(&self, body: &Value) -> Result<Value, GatewayError> {
        self.admin(Method::POST, "/v2/keys", Some(body)).await
    }

    /// `GET /v2/keys/{keyId}`; `None` when the gateway does not know it.
    pub async fn get_key(&self, key_id: &str) -> Result<Option<Value>, GatewayError> {
        match self
            .admin(Method::GET, &format!("/v2/keys/{key_id}"), None)
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /v2/keys/authenticate` (unauthenticated): the key a token belongs to, `None` when
    /// the gateway refuses the token (401).
    pub async fn authenticate(&self, token: &str) -> Result<Option<Value>, GatewayError> {
        let url = format!("{}/v2/keys/authenticate", self.base);
        match self
            .call(Method::POST, url, None, Some(&json!({ "token": token })))
            .await
        {
            Ok((_, v)) => Ok(Some(v)),
            Err(e) if e.status() == Some(StatusCode::UNAUTHORIZED) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `DELETE /v2/keys/{keyId}` (hard delete); a key already gone is success.
    pub async fn delete_key(&self, key_id: &str) -> Result<(), GatewayError> {
        gone_ok(
            self.admin(
                Method::DELETE,
                &format!("/v2/keys/{key_id}"),
                Some(&json!({})),
            )
            .await,
        )
    }

    /// Probes a store: `GET {endpoint}/v1/namespaces?page_size=1` with its credential.
    pub async fn probe_store(&self, endpoint: &str, credential: &str) -> Probe {
        let bearer = match HeaderValue::from_str(&format!("Bearer {}", credential.trim())) {
            Ok(mut v) => {
                v.set_sensitive(true);
                v
            }
            Err(_) => {
                return Probe::CredentialInvalid("the credential is not a valid header".into());
            }
        };
        let url = format!(
            "{}/v1/namespaces?page_size=1",
            endpoint.trim_end_matches('/')
        );
        match self.call(Method::GET, url, Some(&bearer), None).await {
            Ok(_) => Probe::Reachable,
            Err(e) => match e.status() {
                Some(s) if s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN => {
                    Probe::CredentialInvalid(format!("the store answered {s}"))
                }
                _ => Probe::Unreachable(e.to_string()),
            },
        }
    }
}

fn gone_ok(r: Result<Value, GatewayError>) -> Result<(), GatewayError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(()),
        Err(e) => Err(e),
    }
}
