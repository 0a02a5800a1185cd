//! The metrics API (contract §1.10, §2.10): the metric catalog and PromQL forwarded to
//! VictoriaMetrics.
//!
//! | route | what |
//! |---|---|
//! | `GET /v2/metrics/catalog` | `{version, entries}` from the `metrics-catalog` crate; `family` filters by one of the client's seven families (or a catalog group: `udf`, `cost`, `license`, `gateway`); an unknown one is 422 |
//! | `GET /v2/metrics/catalog/{name}` | one entry; 404 `not_found` for a name the catalog does not have |
//! | `GET\|POST /v2/metrics/api/v1/query`, `/v2/metrics/query` | forwarded to VictoriaMetrics' `/api/v1/query` |
//! | `GET\|POST /v2/metrics/api/v1/query_range`, `/v2/metrics/query_range` | forwarded to `/api/v1/query_range` |
//!
//! The PromQL routes take the `read` scope and forward the query string (`query`, `time`,
//! `timeout`, `start`, `end`, `step`) and, for POST, the form body unchanged; VictoriaMetrics'
//! answer comes back one-for-one (status, `content-type`, body), its 400 for a PromQL syntax
//! error included. The caller's `authorization` never goes to VictoriaMetrics. Errors of the
//! gateway's own:
//!
//! | status | `code` | when |
//! |---|---|---|
//! | 503 | `metrics_not_configured` | `gateway.metrics.victoriaMetricsUrl` (`LAYER_METRICS_URL`) is unset |
//! | 502 | `metrics_unavailable` | VictoriaMetrics refused or dropped the connection |
//! | 504 | `metrics_timeout` | no answer within `gateway.metrics.timeoutMs` |
//!
//! Counted in `layer_metrics_proxy_requests_total{endpoint,outcome}` and
//! `layer_metrics_proxy_duration_seconds{endpoint}`.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap};
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use crate::core::config::Scope;
use crate::core::error::GatewayError;
use crate::core::http::{Resp, json_response};
use crate::core::labeled::{self, Kind, labels};
use crate::core::router::{Req, Route, handler};
use crate::core::upstream::Upstream;
use crate::core::{Core, ShardCtx};

const REQUESTS: &str = "layer_metrics_proxy_requests_total";
const DURATION: &str = "layer_metrics_proxy_duration_seconds";
/// Connect timeout towards VictoriaMetrics (a local single node).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The metrics API feature.
pub struct Metrics {
    core: Arc<Core>,
}

thread_local! {
    /// This thread's connection pool to VictoriaMetrics, for the URL and timeout it was built for.
    static CLIENT: RefCell<Option<(String, u64, Upstream)>> = const { RefCell::new(None) };
}

impl Metrics {
    pub fn new(core: Arc<Core>) -> Arc<Metrics> {
        labeled::describe(REQUESTS, Kind::Counter, "PromQL calls forwarded.");
        labeled::describe(DURATION, Kind::Histogram, "PromQL call latency.");
        Arc::new(Metrics { core })
    }

    pub fn routes(self: &Arc<Self>) -> Vec<Route> {
        let mut routes = vec![
            Route::new(
                Method::GET,
                "/v2/metrics/catalog",
                "list_metrics_catalog",
                Scope::Read,
                handler(self.clone(), Self::catalog),
            ),
            Route::new(
                Method::GET,
                "/v2/metrics/catalog/{name}",
                "get_metric_catalog_entry",
                Scope::Read,
                handler(self.clone(), Self::entry),
            ),
        ];
        for (path, name, range) in [
            ("/v2/metrics/api/v1/query", "query_metrics", false),
            ("/v2/metrics/query", "query_metrics", false),
            (
                "/v2/metrics/api/v1/query_range",
                "query_metrics_range",
                true,
            ),
            ("/v2/metrics/query_range", "query_metrics_range", true),
        ] {
            for method in [Method::GET, Method::POST] {
                let h = if range {
                    handler(self.clone(), Self::query_range)
                } else {
                    handler(self.clone(), Self::query)
                };
                routes.push(Route::new(method, path, name, Scope::Read, h));
            }
        }
        routes
    }

    async fn catalog(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let params = req.query_params();
        let family = params.get("family").map(String::as_str);
        let v = metrics_catalog::catalog_json(family)
            .map_err(|e| GatewayError::Validation(e.to_string()))?;
        Ok(json_response(StatusCode::OK, &v))
    }

    async fn entry(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let name = req.decoded("name");
        let e = metrics_catalog::get(&name).ok_or_else(|| {
            GatewayError::Missing(format!("metric {name:?} is not in the catalog"))
        })?;
        Ok(json_response(StatusCode::OK, &e.to_json()))
    }

    async fn query(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        self.forward("query", "/api/v1/query", req).await
    }

    async fn query_range(
        self: Arc<Self>,
        _: Arc<ShardCtx>,
        req: Req,
    ) -> Result<Resp, GatewayError> {
        self.forward("query_range", "/api/v1/query_range", req)
            .await
    }

    /// Forwards the request to VictoriaMetrics' `path` with its query string and body as sent.
    async fn forward(
        &self,
        endpoint: &'static str,
        path: &str,
        req: Req,
    ) -> Result<Resp, GatewayError> {
        let cfg = &self.core.config.gateway.metrics;
        let count = |outcome: &str| {
            labeled::count(
                REQUESTS,
                labels(&[("endpoint", endpoint), ("outcome", outcome)]),
                1,
            )
        };
        let Some(url) = cfg.victoria_metrics_url.as_deref() else {
            count("not_configured");
            return Err(GatewayError::Rejected {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "metrics_not_configured",
                message: "no VictoriaMetrics is configured for PromQL (gateway.metrics.victoriaMetricsUrl, LAYER_METRICS_URL)".into(),
            });
        };
        let client = client(url, cfg.timeout_ms)?;
        let target = match req.parts.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        // Only what describes the body and the wanted answer goes on; never the caller's
        // bearer (Upstream drops `authorization` too) nor `accept-encoding` (the answer is relayed
        // as read).
        let mut headers = HeaderMap::new();
        for name in [header::CONTENT_TYPE, header::ACCEPT] {
            if let Some(v) = req.parts.headers.get(&name) {
                headers.insert(name, v.clone());
            }
        }
        let started = Instant::now();
        let sent = client
            .send(
                req.name,
                req.parts.method.clone(),
                &target,
                &headers,
                req.body.clone(),
            )
            .await;
        labeled::observe(
            DURATION,
            labels(&[("endpoint", endpoint)]),
            started.elapsed(),
        );
        let up = match sent {
            Ok(up) => up,
            Err(GatewayError::UpstreamTimeout(ms)) => {
                count("timeout");
                return Err(GatewayError::Rejected {
                    status: StatusCode::GATEWAY_TIMEOUT,
                    code: "metrics_timeout",
                    message: format!("VictoriaMetrics did not answer within {ms} ms"),
                });
            }
            Err(e) => {
                count("unreachable");
                tracing::warn!(error = %e, "VictoriaMetrics unreachable");
                return Err(GatewayError::Rejected {
                    status: StatusCode::BAD_GATEWAY,
                    code: "metrics_unavailable",
                    message: "VictoriaMetrics, the metrics store behind PromQL, is unreachable"
                        .into(),
                });
            }
        };
        count(if up.status.is_success() {
            "ok"
        } else {
            "vm_error"
        });
        let mut resp = Response::new(Full::new(up.body));
        *resp.status_mut() = up.status;
        for name in [header::CONTENT_TYPE, header::CONTENT_ENCODING] {
            if let Some(v) = up.headers.get(&name) {
                resp.headers_mut().insert(name, v.clone());
            }
        }
        Ok(resp)
    }
}

/// This thread's client for `url` (built once per thread, rebuilt if the URL changes).
fn client(url: &str, timeout_ms: u64) -> Result<Upstream, GatewayError> {
    CLIENT.with(|c| {
        let mut c = c.borrow_mut();
        if let Some((u, t, up)) = c.as_ref()
            && u == url
            && *t == timeout_ms
        {
            return Ok(up.clone());
        }
        let up = Upstream::new(
            url,
            None,
            CONNECT_TIMEOUT,
            Duration::from_millis(timeout_ms),
        )?;
        *c = Some((url.to_string(), timeout_ms, up.clone()));
        Ok(up)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_errors_are_typed() {
        let e = metrics_catalog::catalog_json(Some("nope")).unwrap_err();
        let g = GatewayError::Validation(e.to_string());
        assert_eq!(g.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(g.to_string().contains("pipeline"), "{g}");
    }

    #[test]
    fn a_bad_url_is_an_error_not_a_panic() {
        assert!(client("not a url", 1000).is_err());
    }
}
