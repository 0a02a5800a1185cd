//! The emulator's error type and the one place that turns an error into an HTTP response.
//!
//! Turbopuffer answers errors with `{"status":"error","error":"<text>"}`; URL-level namespace
//! validation answers in plain text. Every handler returns [`ApiError`] and
//! [`ApiError::into_parts`] renders it, so status codes and envelopes stay consistent.

use http::StatusCode;

/// An error as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 with the JSON envelope (`💔 ...` validation texts, duplicate ids, ...).
    #[error("{0}")]
    BadRequest(String),
    /// 400 with a JSON envelope that carries an extra `attribute` field (schema type changes).
    #[error("{message}")]
    SchemaChange { message: String, attribute: String },
    /// 400 in plain text (URL validation, as the live service does).
    #[error("{0}")]
    PlainText(String),
    /// 401 (missing or unknown bearer).
    #[error("{0}")]
    Unauthorized(String),
    /// 403 (forbidden change, read-only namespace).
    #[error("{0}")]
    Forbidden(String),
    /// 404 (namespace or route missing).
    #[error("{0}")]
    NotFound(String),
    /// 422 (body does not deserialize into the target type).
    #[error("{0}")]
    Unprocessable(String),
    /// 429 (concurrency permits or write backpressure).
    #[error("{0}")]
    TooManyRequests(String),
    /// Anything else: a status and envelope text chosen by the caller (fault injection, 5xx).
    #[error("{message}")]
    Status { status: StatusCode, message: String },
}

/// Shorthand used throughout the engine.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// `💔`-prefixed validation error.
    pub fn invalid(msg: impl std::fmt::Display) -> Self {
        ApiError::BadRequest(format!("💔 {msg}"))
    }

    /// The live service's namespace-not-found text.
    pub fn namespace_not_found(ns: &str) -> Self {
        ApiError::NotFound(format!("🤷 namespace '{ns}' was not found"))
    }

    /// A 422 in the wording of the live service's body deserializer.
    pub fn deserialize(detail: impl std::fmt::Display) -> Self {
        ApiError::Unprocessable(format!(
            "Failed to deserialize the JSON body into the target type: {detail}"
        ))
    }

    /// HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::SchemaChange { .. } | ApiError::PlainText(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Status { status, .. } => *status,
        }
    }

    /// Status, content type and body bytes.
    pub fn into_parts(self) -> (StatusCode, &'static str, Vec<u8>) {
        let status = self.status();
        match self {
            ApiError::PlainText(text) => (status, "text/plain; charset=utf-8", text.into_bytes()),
            ApiError::SchemaChange { message, attribute } => {
                let body = serde_json::json!({"status": "error", "error": message, "attribute": attribute});
                (status, "application/json", body.to_string().into_bytes())
            }
            other => {
                let body = serde_json::json!({"status": "error", "error": other.to_string()});
                (status, "application/json", body.to_string().into_bytes())
            }
        }
    }

    /// The JSON envelope body as a value (used by async operation results).
    pub fn envelope(&self) -> serde_json::Value {
        serde_json::json!({"status": "error", "error": self.to_string()})
    }
}

/// Maps a body-deserialization failure to the live service's 400 (syntax) or 422 (shape) text.
pub fn from_json_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    use serde_json::error::Category;
    let path = err.path().to_string();
    let inner = err.inner();
    let detail = if path.is_empty() || path == "." {
        inner.to_string()
    } else {
        format!("{path}: {inner}")
    };
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::BadRequest(format!(
            "Failed to parse the request body as JSON: {detail}"
        )),
        Category::Data => ApiError::deserialize(detail),
    }
}

/// Deserializes a request body with the live service's error texts.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(from_json_error)?;
    de.end().map_err(|e| {
        ApiError::BadRequest(format!("Failed to parse the request body as JSON: {e}"))
    })?;
    Ok(value)
}
