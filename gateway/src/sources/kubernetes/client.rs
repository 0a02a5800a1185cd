//! A minimal Kubernetes API client for the watch: the in-cluster configuration (API server from
//! `KUBERNETES_SERVICE_HOST`/`_PORT`, the service account's bearer token and CA bundle), `GET`
//! of a list (paged with `continue`) and a streaming `GET ?watch=1`. hyper + rustls, the
//! gateway's own HTTP stack: no kube crate.
//!
//! The token file is read before every request, so a rotated projected token is picked up by
//! the next list or watch (each watch request lives at most `watchTimeoutSeconds`).

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::Value;

use crate::core::config::{KubernetesConfig, SERVICE_ACCOUNT_DIR};

/// Why a call to the API server failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The resource version asked for is too old (`410 Gone`): list again.
    #[error("resource version too old (410 Gone)")]
    Gone,
    #[error("the API server answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("reaching the API server: {0}")]
    Transport(String),
    #[error("the API server's answer does not parse: {0}")]
    Decode(String),
}

impl ApiError {
    /// The metrics label of the error.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::Gone => "gone",
            ApiError::Status { .. } => "status",
            ApiError::Transport(_) => "connect",
            ApiError::Decode(_) => "decode",
        }
    }
}

/// The API server, its credentials and the HTTP client.
pub struct ApiClient {
    base: String,
    token_file: Option<PathBuf>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// The namespace a pod runs in (its service account's `namespace` file), else `default`.
pub fn pod_namespace() -> String {
    std::fs::read_to_string(format!("{SERVICE_ACCOUNT_DIR}/namespace"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into())
}

impl ApiClient {
    /// The client `cfg` describes; `env` resolves `KUBERNETES_SERVICE_HOST`/`_PORT`.
    pub fn new(
        cfg: &KubernetesConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ApiClient, String> {
        let base = match &cfg.api_server {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => {
                let host = env("KUBERNETES_SERVICE_HOST").ok_or(
                    "gateway.kubernetes.enabled needs KUBERNETES_SERVICE_HOST (in a pod) or \
                     gateway.kubernetes.apiServer",
                )?;
                let port = env("KUBERNETES_SERVICE_PORT").unwrap_or_else(|| "443".into());
                // An IPv6 service address needs brackets in a URL.
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host
                };
                format!("https://{host}:{port}")
            }
        };
        let uri: Uri = base
            .parse()
            .map_err(|e| format!("gateway.kubernetes.apiServer {base:?}: {e}"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(format!(
                "gateway.kubernetes.apiServer {base:?} must be an http(s) URL"
            ));
        }
        let sa = PathBuf::from(SERVICE_ACCOUNT_DIR);
        let token_file = cfg
            .token_file
            .clone()
            .or_else(|| Some(sa.join("token")).filter(|p| p.exists()));
        let ca_file = cfg
            .ca_file
            .clone()
            .or_else(|| Some(sa.join("ca.crt")).filter(|p| p.exists()));
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        http.set_nodelay(true);
        http.enforce_http(false);
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let https = match ca_file {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                let pem = std::fs::read(&path)
                    .map_err(|e| format!("reading the CA bundle {}: {e}", path.display()))?;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert =
                        cert.map_err(|e| format!("the CA bundle {}: {e}", path.display()))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("the CA bundle {}: {e}", path.display()))?;
                }
                let tls = rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                builder
                    .with_tls_config(tls)
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(http)
            }
            None => builder
                .with_webpki_roots()
                .https_or_http()
                .enable_http1()
                .wrap_connector(http),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(https);
        Ok(ApiClient {
            base,
            token_file,
            client,
        })
    }

    /// The API server's base URL (for logs).
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn get(&self, path_and_query: &str) -> Result<http::Response<Incoming>, ApiError> {
        let mut req = Request::get(format!("{}{path_and_query}", self.base))
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, "layer-gateway");
        if let Some(file) = &self.token_file {
            // Read every time: projected tokens rotate under the pod.
            let token = tokio::fs::read_to_string(file).await.map_err(|e| {
                ApiError::Transport(format!("reading the token {}: {e}", file.display()))
            })?;
            let mut v = http::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                .map_err(|_| ApiError::Transport("the token is not a header value".into()))?;
            v.set_sensitive(true);
            req = req.header(header::AUTHORIZATION, v);
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| ApiError::Transport(e.to_string()))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| ApiError::Transport(e.to_string()))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if status == StatusCode::GONE {
            return Err(ApiError::Gone);
        }
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
        Err(ApiError::Status {
            status: status.as_u16(),
            message,
        })
    }

    /// The JSON at `path` (`GET`): one object (a Secret, for a store credential) or a list page.
    pub async fn object(&self, path: &str) -> Result<Value, ApiError> {
        let body = self
            .get(path)
            .await?
            .into_body()
            .collect()
            .await
            .map_err(|e| ApiError::Transport(e.to_string()))?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| ApiError::Decode(e.to_string()))
    }

    /// Every object at `path` (a collection URL) and the list's resource version, following
    /// `continue` pages.
    pub async fn list(&self, path: &str) -> Result<(String, Vec<Value>), ApiError> {
        let mut items = Vec::new();
        let mut cont: Option<String> = None;
        loop {
            let mut q = format!("{path}?limit=500");
            if let Some(c) = &cont {
                q.push_str("&continue=");
                q.push_str(&crate::core::params::encode_query_component(c));
            }
            let mut v = self.object(&q).await?;
            let meta = v.get("metadata").cloned().unwrap_or(Value::Null);
            match v.get_mut("items").map(Value::take) {
                Some(Value::Array(page)) => items.extend(page),
                Some(Value::Null) | None => {}
                Some(_) => return Err(ApiError::Decode("items is not a list".into())),
            }
            cont = meta
                .get("continue")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
                .map(String::from);
            if cont.is_none() {
                let rv = meta
                    .get("resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                return Ok((rv, items));
            }
        }
    }

    /// Opens a watch of `path` from `resource_version` (bookmarks on); the body is a stream of
    /// JSON lines ([`super::watch::WatchEvent`]).
    pub async fn watch(
        &self,
        path: &str,
        resource_version: &str,
        timeout_seconds: u64,
    ) -> Result<Incoming, ApiError> {
        let q = format!(
            "{path}?watch=1&allowWatchBookmarks=true&timeoutSeconds={timeout_seconds}&resourceVersion={}",
            crate::core::params::encode_query_component(resource_version)
        );
        Ok(self.get(&q).await?.into_body())
    }
}
