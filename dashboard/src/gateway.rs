//! The dashboard's only data source: a typed client of the gateway API over plain HTTP with the
//! gateway bearer. Every read has a deadline; a failure becomes a [`GatewayError`] a view shows
//! in place of its data (the page still renders).

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long one gateway call may take.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// Why a gateway read failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the gateway is unreachable: {0}")]
    Unreachable(String),
    #[error("the gateway did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the gateway answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("the gateway's answer is not JSON: {0}")]
    Json(String),
}

/// The gateway client.
#[derive(Clone)]
pub struct Gateway {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    bearer: String,
}

impl Gateway {
    pub fn new(base: &str, bearer: &str) -> Gateway {
        Gateway {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: base.trim_end_matches('/').to_string(),
            bearer: bearer.to_string(),
        }
    }

    /// `GET path` (with its query string) → the JSON body of a 2xx answer.
    pub async fn get(&self, path: &str) -> Result<Value, GatewayError> {
        ok(self.call(Method::GET, path, None).await?)
    }

    /// `GET path` → the status and JSON body, whatever the status (`/health` answers 503 with a
    /// body when degraded).
    pub async fn get_any(&self, path: &str) -> Result<(StatusCode, Value), GatewayError> {
        let (status, body) = self.call(Method::GET, path, None).await?;
        let value = serde_json::from_slice(&body).map_err(|e| GatewayError::Json(e.to_string()))?;
        Ok((status, value))
    }

    /// `POST path` with a JSON body → the JSON body of a 2xx answer.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, GatewayError> {
        ok(self
            .call(Method::POST, path, Some(body.to_string()))
            .await?)
    }

    /// A bodyless `POST path` (no content type), as the client sends pause and resume.
    pub async fn post_empty(&self, path: &str) -> Result<Value, GatewayError> {
        ok(self.call(Method::POST, path, None).await?)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(StatusCode, Bytes), GatewayError> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.bearer));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| GatewayError::Unreachable(e.to_string()))?;
        let resp = tokio::time::timeout(DEADLINE, self.client.request(req))
            .await
            .map_err(|_| GatewayError::Timeout(DEADLINE))?
            .map_err(|e| GatewayError::Unreachable(e.to_string()))?;
        let status = resp.status();
        let bytes = tokio::time::timeout(DEADLINE, resp.into_body().collect())
            .await
            .map_err(|_| GatewayError::Timeout(DEADLINE))?
            .map_err(|e| GatewayError::Unreachable(e.to_string()))?
            .to_bytes();
        Ok((status, bytes))
    }
}

/// A 2xx answer's JSON body, or the error the answer carries.
fn ok((status, bytes): (StatusCode, Bytes)) -> Result<Value, GatewayError> {
    let value: Result<Value, _> = serde_json::from_slice(&bytes);
    if !status.is_success() {
        let message = value
            .as_ref()
            .ok()
            .and_then(|v| v.get("message").or_else(|| v.get("error")).cloned())
            .and_then(|m| m.as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(200).collect());
        return Err(GatewayError::Status {
            status: status.as_u16(),
            message,
        });
    }
    value.map_err(|e| GatewayError::Json(e.to_string()))
}

/// Everything but RFC 3986's unreserved characters is escaped.
const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a query-string value or a path segment.
pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, ESCAPED).to_string()
}

/// Decodes a percent-encoded path segment (invalid escapes are kept as they are).
pub fn decode_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Decodes a query-string value (`+` is a space).
pub fn decode_query(s: &str) -> String {
    decode_segment(&s.replace('+', " "))
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_promql() {
        assert_eq!(
            super::encode("sum(rate(x{a=\"b\"}[5m]))"),
            "sum%28rate%28x%7Ba%3D%22b%22%7D%5B5m%5D%29%29"
        );
        assert_eq!(super::decode_query("query%20path+x"), "query path x");
        assert_eq!(super::decode_query("bad%zz"), "bad%zz");
        assert_eq!(super::decode_query("end%4"), "end%4");
        assert_eq!(super::decode_segment("a%2Fb+c"), "a/b+c");
    }
}
