//! The gateway's error type and the one table that maps an error to an HTTP response.
//!
//! Layer's own errors are `{"error": "<code>", "message": "<text>", ...context}`; upstream
//! non-2xx responses never become a [`GatewayError`] — they are relayed verbatim. Errors of the
//! other crates say their own status and code (`scatter::RewriteError::status_code` /
//! `error_code`, `scatter::QueryError`, the object store's [`super::store::StoreError`]); they
//! arrive here through `From` and keep them ([`GatewayError::Rejected`]). [`GatewayError::status`],
//! [`GatewayError::code`] and [`GatewayError::body`] are the table; [`GatewayError::into_response`]
//! is the only place an error becomes HTTP.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};

use super::config::Scope;

/// Everything that can go wrong in the gateway itself.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("missing bearer token")]
    MissingToken,
    #[error("invalid bearer token")]
    InvalidToken,
    #[error("insufficient API key scope")]
    InsufficientScope { required: Scope },
    #[error("namespace not in key grant")]
    NamespaceNotGranted { namespace: String },
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A URL the gateway refuses before routing further, with upstream's plain-text 400 (an
    /// invalid namespace name in the path).
    #[error("{0}")]
    InvalidUrl(String),
    #[error("no route for {method} {path}")]
    NotFound { method: String, path: String },
    /// Documents a request names do not exist (`nearest_to_id`, fetch).
    #[error("{message}")]
    NotFoundDocs {
        message: String,
        missing: Vec<String>,
    },
    #[error("upstream unreachable: {0}")]
    Upstream(String),
    #[error("upstream did not answer within {0} ms")]
    UpstreamTimeout(u64),
    #[error("{0}")]
    Internal(String),
    /// The cache tier is unavailable and the route needs it (warm jobs, cache scans, cache
    /// snapshot jobs): 503 `cache_cold`.
    #[error("{0}")]
    CacheCold(String),
    /// The shard is at its bound of requests in flight, or of connections: 503 `overloaded`
    /// with `retry-after`, instead of queueing without limit.
    #[error("{0}")]
    Overloaded(String),
    /// The client did not send the request body in time: 408 `request_timeout`.
    #[error("{0}")]
    RequestTimeout(String),
    /// A precondition of an explicitly requested source does not hold (412 `precondition_failed`).
    #[error("{0}")]
    PreconditionFailed(String),
    /// A Layer resource (job, snapshot, ...) the path names does not exist: 404 `not_found`.
    #[error("{0}")]
    Missing(String),
    /// The object store failed while serving a Layer read route (502 `object_store_error`).
    #[error("{0}")]
    ObjectStore(String),
    /// A request another crate's rules refused, with the status and code that crate gives it
    /// (e.g. scatter's 400 for JSON nested too deep, 422 for a duplicate key, 413 for a body
    /// past the size cap).
    #[error("{message}")]
    Rejected {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// Like [`GatewayError::Rejected`], with context fields added to the body (e.g. the
    /// `document_ids` a queue call refused).
    #[error("{message}")]
    Detailed {
        status: StatusCode,
        code: &'static str,
        message: String,
        detail: serde_json::Map<String, Value>,
    },
    /// An upstream answer relayed verbatim from inside a Layer route (fetch's origin read).
    #[error("upstream answered {status}")]
    Relay {
        status: StatusCode,
        content_type: Option<HeaderValue>,
        body: Bytes,
    },
}

impl GatewayError {
    /// Status code for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::MissingToken | GatewayError::InvalidToken => StatusCode::UNAUTHORIZED,
            GatewayError::InsufficientScope { .. } | GatewayError::NamespaceNotGranted { .. } => {
                StatusCode::FORBIDDEN
            }
            GatewayError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            GatewayError::InvalidUrl(_) => StatusCode::BAD_REQUEST,
            GatewayError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::NotFound { .. } | GatewayError::NotFoundDocs { .. } => {
                StatusCode::NOT_FOUND
            }
            GatewayError::Upstream(_) => StatusCode::BAD_GATEWAY,
            GatewayError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            GatewayError::CacheCold(_) | GatewayError::Overloaded(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            GatewayError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            GatewayError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            GatewayError::Missing(_) => StatusCode::NOT_FOUND,
            GatewayError::ObjectStore(_) => StatusCode::BAD_GATEWAY,
            GatewayError::Relay { status, .. }
            | GatewayError::Rejected { status, .. }
            | GatewayError::Detailed { status, .. } => *status,
        }
    }

    /// The JSON body: a stable `error` code, a human `message`, and the context the spec names.
    pub fn body(&self) -> Value {
        let message = self.to_string();
        match self {
            GatewayError::MissingToken | GatewayError::InvalidToken => {
                json!({"error": "unauthorized", "message": message})
            }
            GatewayError::InsufficientScope { required } => json!({
                "error": "insufficient API key scope", "required_scope": required.as_str(),
                "message": format!("this route needs the {} scope", required.as_str()),
            }),
            GatewayError::NamespaceNotGranted { namespace } => json!({
                "error": "namespace not in key grant", "namespace": namespace,
                "message": format!("the key's namespace grant does not include {namespace:?}"),
            }),
            GatewayError::Validation(_) => json!({"error": "validation_error", "message": message}),
            GatewayError::InvalidUrl(_) => json!({"error": "invalid_url", "message": message}),
            GatewayError::PayloadTooLarge(_) => {
                json!({"error": "payload_too_large", "message": message})
            }
            GatewayError::NotFound { .. } => json!({"error": "not_found", "message": message}),
            GatewayError::NotFoundDocs { missing, .. } => {
                let ids: Vec<Value> = missing
                    .iter()
                    .map(|raw| {
                        serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.clone()))
                    })
                    .collect();
                json!({"error": "not_found", "message": message, "missing": ids})
            }
            GatewayError::Upstream(_) | GatewayError::UpstreamTimeout(_) => {
                json!({"error": "upstream_error", "message": message})
            }
            GatewayError::Internal(_) => json!({"error": "internal_error", "message": message}),
            GatewayError::CacheCold(_) => json!({"error": "cache_cold", "message": message}),
            GatewayError::Overloaded(_) => json!({"error": "overloaded", "message": message}),
            GatewayError::RequestTimeout(_) => {
                json!({"error": "request_timeout", "message": message})
            }
            GatewayError::PreconditionFailed(_) => {
                json!({"error": "precondition_failed", "message": message})
            }
            GatewayError::ObjectStore(_) => {
                json!({"error": "object_store_error", "message": message})
            }
            GatewayError::Missing(_) => json!({"error": "not_found", "message": message}),
            GatewayError::Rejected { code, .. } => json!({"error": code, "message": message}),
            GatewayError::Detailed { code, detail, .. } => {
                let mut body = detail.clone();
                body.insert("error".into(), json!(code));
                body.insert("message".into(), json!(message));
                Value::Object(body)
            }
            GatewayError::Relay { body, .. } => serde_json::from_slice(body).unwrap_or(Value::Null),
        }
    }

    /// The stable code used as a metrics label.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::MissingToken | GatewayError::InvalidToken => "unauthorized",
            GatewayError::InsufficientScope { .. } | GatewayError::NamespaceNotGranted { .. } => {
                "forbidden"
            }
            GatewayError::Validation(_) => "validation_error",
            GatewayError::InvalidUrl(_) => "invalid_url",
            GatewayError::PayloadTooLarge(_) => "payload_too_large",
            GatewayError::NotFound { .. } | GatewayError::NotFoundDocs { .. } => "not_found",
            GatewayError::Upstream(_) | GatewayError::UpstreamTimeout(_) => "upstream_error",
            GatewayError::Internal(_) => "internal_error",
            GatewayError::CacheCold(_) => "cache_cold",
            GatewayError::Overloaded(_) => "overloaded",
            GatewayError::RequestTimeout(_) => "request_timeout",
            GatewayError::PreconditionFailed(_) => "precondition_failed",
            GatewayError::Missing(_) => "not_found",
            GatewayError::ObjectStore(_) => "object_store_error",
            GatewayError::Rejected { code, .. } | GatewayError::Detailed { code, .. } => code,
            GatewayError::Relay { .. } => "upstream_relayed",
        }
    }

    /// The response for this error. This is the only place errors become HTTP.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        if let GatewayError::Relay {
            status,
            content_type,
            body,
        } = self
        {
            let mut resp = Response::new(Full::new(body));
            *resp.status_mut() = status;
            if let Some(ct) = content_type {
                resp.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            return resp;
        }
        if let GatewayError::InvalidUrl(text) = self {
            // Turbopuffer answers URL-level namespace errors in plain text; so does the gateway.
            let mut resp = Response::new(Full::new(Bytes::from(text)));
            *resp.status_mut() = StatusCode::BAD_REQUEST;
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            return resp;
        }
        let status = self.status();
        let code = self.code();
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if code == "overloaded" {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// An error and its sources as one line, `: `-separated (what an upstream or SDK failure says
/// in a 502's message or a log line).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl From<scatter::RewriteError> for GatewayError {
    fn from(e: scatter::RewriteError) -> Self {
        GatewayError::Rejected {
            status: StatusCode::from_u16(e.status_code())
                .unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
            code: e.error_code(),
            message: e.to_string(),
        }
    }
}

impl From<scatter::QueryError> for GatewayError {
    fn from(e: scatter::QueryError) -> Self {
        GatewayError::Rejected {
            status: StatusCode::from_u16(e.status_code())
                .unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
            code: e.error_code(),
            message: e.to_string(),
        }
    }
}

impl From<super::store::StoreError> for GatewayError {
    fn from(e: super::store::StoreError) -> Self {
        GatewayError::ObjectStore(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_name_the_reason() {
        let e = GatewayError::InsufficientScope {
            required: Scope::Admin,
        };
        assert_eq!(e.status(), 403);
        assert_eq!(e.body()["error"], "insufficient API key scope");
        assert_eq!(e.body()["required_scope"], "admin");
        let e = GatewayError::NamespaceNotGranted {
            namespace: "orders".into(),
        };
        assert_eq!(e.body()["namespace"], "orders");
        assert_eq!(GatewayError::Upstream("refused".into()).status(), 502);
        assert_eq!(
            GatewayError::Validation("x".into()).body()["error"],
            "validation_error"
        );
    }

    #[test]
    fn other_crates_errors_keep_their_status_and_code() {
        let deep: GatewayError = scatter::RewriteError::TooDeep { max: 64 }.into();
        assert_eq!(
            (deep.status(), deep.code()),
            (StatusCode::BAD_REQUEST, "validation_error")
        );
        let big: GatewayError = scatter::RewriteError::Oversize { len: 2, max: 1 }.into();
        assert_eq!(
            (big.status(), big.body()["error"].as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
        );
        let q: GatewayError = scatter::QueryError::BadCentroid.into();
        assert_eq!(
            (q.status(), q.code()),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
        );
        let store: GatewayError = super::super::store::StoreError::Config("x".into()).into();
        assert_eq!(store.status(), StatusCode::BAD_GATEWAY);
    }
}
