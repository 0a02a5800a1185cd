//! Fields of JSON request bodies, read from an already validated tree with pydantic's leniency
//! (the `hevlayer` client's models are the contract): wrong types and missing required fields
//! are 422 `validation_error` naming the field.

use serde_json::{Map, Value};

use crate::core::error::GatewayError;

/// A 422 `validation_error` naming the field (`field` in the body, and first in the message).
pub fn invalid_field(field: &str, message: impl std::fmt::Display) -> GatewayError {
    let mut detail = Map::new();
    detail.insert("field".into(), Value::String(field.to_string()));
    GatewayError::Detailed {
        status: http::StatusCode::UNPROCESSABLE_ENTITY,
        code: "validation_error",
        message: format!("{field}: {message}"),
        detail,
    }
}

/// A 422 `validation_error`.
pub fn invalid(msg: impl Into<String>) -> GatewayError {
    GatewayError::Validation(msg.into())
}

pub fn object(v: &Value) -> Result<&Map<String, Value>, GatewayError> {
    v.as_object()
        .ok_or_else(|| invalid("request body must be a JSON object"))
}

/// A required string field.
pub fn string(o: &Map<String, Value>, key: &str) -> Result<String, GatewayError> {
    match o.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(invalid(format!("{key} is required"))),
        Some(_) => Err(invalid(format!("{key} must be a string"))),
    }
}

/// An optional string field (`null` is absent).
pub fn opt_string(o: &Map<String, Value>, key: &str) -> Result<Option<String>, GatewayError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("{key} must be a string"))),
    }
}

/// An optional non-negative integer field; integral floats (`3.0`) and numeric strings are
/// accepted as pydantic does for `int` fields.
pub fn opt_uint(o: &Map<String, Value>, key: &str) -> Result<Option<u64>, GatewayError> {
    let bad = || invalid(format!("{key} must be a non-negative integer"));
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => Ok(Some(u)),
            (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 && f < 1e15 => Ok(Some(f as u64)),
            _ => Err(bad()),
        },
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

/// An optional boolean field.
pub fn opt_bool(o: &Map<String, Value>, key: &str) -> Result<Option<bool>, GatewayError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(invalid(format!("{key} must be true or false"))),
    }
}

/// A required, non-empty list of strings.
pub fn string_list(o: &Map<String, Value>, key: &str) -> Result<Vec<String>, GatewayError> {
    let Some(Value::Array(items)) = o.get(key) else {
        return Err(invalid(format!("{key} must be a list of strings")));
    };
    if items.is_empty() {
        return Err(invalid(format!("{key} must not be empty")));
    }
    items
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| invalid(format!("{key} must be a list of strings")))
        })
        .collect()
}
