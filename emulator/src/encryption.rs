//! The `encryption` write parameter (and `copy_from_namespace.dest_encryption`): default
//! encryption, or customer-managed encryption (CMEK) with a KMS key.
//!
//! Contract §3.1: `{"mode":"default"}` | `{"mode":"customer-managed","key_name":str,
//! "encryption_context"?:{str:str}}` (older docs: `{"cmek":{"key_name":..}}`); context keys may not
//! start with `tpuf:`/`aws:`; CMEK needs an entitlement and without it the write is an error.
//! The contract gives no status or text for that error; §1.4 lists 403 for "feature not enabled
//! for key/org", so the emulator answers 403 with a `🙅` text. Started with
//! `--cmek-key-name NAME` ([`crate::Config::cmek_key_names`]) the emulator has a fake KMS holding
//! those keys: CMEK writes naming one of them succeed, any other key name is refused (403).

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};

/// The `{"mode":"default"}` shape every namespace starts with.
pub fn default_mode() -> Value {
    json!({"mode": "default"})
}

/// Validates an `encryption` value against the fake KMS (`keys`; empty = CMEK not enabled) and
/// returns it in the v2 wire shape that metadata reports. `field` names it in 422 texts.
pub fn resolve(v: &Value, keys: &[String], field: &str) -> ApiResult<Value> {
    // 422 texts in the serde_path_to_error style the other body errors use (`a.b: message`).
    let shape = |sub: &str, msg: String| {
        let path = if sub.is_empty() {
            field.to_string()
        } else {
            format!("{field}.{sub}")
        };
        ApiError::deserialize(format!("{path}: {msg}"))
    };
    let obj = v.as_object().ok_or_else(|| {
        shape(
            "",
            format!("invalid type: {}, expected struct Encryption", kind(v)),
        )
    })?;
    // Legacy shapes: `{"sse": true}` (default) and `{"cmek": {"key_name": ..}}`.
    if obj.len() == 1
        && let Some(sse) = obj.get("sse")
    {
        return match sse {
            Value::Bool(true) => Ok(default_mode()),
            _ => Err(shape("sse", "expected `true`".into())),
        };
    }
    if let Some(cmek) = obj.get("cmek") {
        let key = cmek
            .get("key_name")
            .and_then(Value::as_str)
            .ok_or_else(|| shape("cmek", "missing field `key_name`".into()))?;
        return customer_managed(key, None, keys);
    }
    let mode = obj
        .get("mode")
        .ok_or_else(|| shape("", "missing field `mode`".into()))?;
    match mode.as_str() {
        Some("default") => Ok(default_mode()),
        Some("customer-managed") => {
            let key = match obj.get("key_name") {
                Some(Value::String(k)) => k,
                Some(other) => {
                    return Err(shape(
                        "key_name",
                        format!("invalid type: {}, expected a string", kind(other)),
                    ));
                }
                None => return Err(shape("", "missing field `key_name`".into())),
            };
            let context = match obj.get("encryption_context") {
                None | Some(Value::Null) => None,
                Some(Value::Object(c)) => {
                    if let Some((k, _)) = c.iter().find(|(_, v)| !v.is_string()) {
                        return Err(shape(
                            &format!("encryption_context.{k}"),
                            "expected a string".into(),
                        ));
                    }
                    if let Some(k) = c
                        .keys()
                        .find(|k| k.starts_with("tpuf:") || k.starts_with("aws:"))
                    {
                        return Err(ApiError::invalid(format!(
                            "encryption_context key '{k}' is reserved: keys may not start with 'tpuf:' or 'aws:'"
                        )));
                    }
                    Some(Value::Object(c.clone()))
                }
                Some(other) => {
                    return Err(shape(
                        "encryption_context",
                        format!("invalid type: {}, expected a map", kind(other)),
                    ));
                }
            };
            customer_managed(key, context, keys)
        }
        Some(other) => Err(shape(
            "mode",
            format!("unknown variant `{other}`, expected `default` or `customer-managed`"),
        )),
        None => Err(shape(
            "mode",
            format!("invalid type: {}, expected a string", kind(mode)),
        )),
    }
}

fn customer_managed(key: &str, context: Option<Value>, keys: &[String]) -> ApiResult<Value> {
    if keys.is_empty() {
        return Err(ApiError::Forbidden(
            "🙅 customer-managed encryption (CMEK) is not enabled for this organization; it requires setup of a KMS key (emulator: start it with --cmek-key-name NAME)".into(),
        ));
    }
    if !keys.iter().any(|k| k == key) {
        return Err(ApiError::Forbidden(format!(
            "🙅 KMS key '{key}' is not accessible for customer-managed encryption"
        )));
    }
    let mut v = json!({"mode": "customer-managed", "key_name": key});
    if let Some(c) = context {
        v["encryption_context"] = c;
    }
    Ok(v)
}

/// The legacy (`GET /v1/.../metadata`) rendering: `{"sse":true}` or `{"cmek":{"key_name":..}}`
/// (contract §2, route history, an inference there).
pub fn legacy(v: &Value) -> Value {
    match (
        v.get("mode").and_then(Value::as_str),
        v.get("key_name").and_then(Value::as_str),
    ) {
        (Some("customer-managed"), Some(key)) => json!({"cmek": {"key_name": key}}),
        (Some("default"), _) => json!({"sse": true}),
        _ => v.clone(),
    }
}

fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) => format!("number `{n}`"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "sequence".into(),
        Value::Object(_) => "map".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn cmek_needs_a_key_the_emulator_was_started_with() {
        let cmek = json!({"mode": "customer-managed", "key_name": "k1"});
        let err = resolve(&cmek, &[], "encryption").unwrap_err();
        assert_eq!(err.status(), StatusCode::FORBIDDEN);
        assert!(
            err.to_string()
                .starts_with("🙅 customer-managed encryption")
        );
        let keys = vec!["k1".to_string()];
        assert_eq!(resolve(&cmek, &keys, "encryption").unwrap(), cmek);
        let other = json!({"mode": "customer-managed", "key_name": "k2"});
        assert_eq!(
            resolve(&other, &keys, "encryption").unwrap_err().status(),
            StatusCode::FORBIDDEN
        );
        // The older `{"cmek": {...}}` request shape means the same.
        assert_eq!(
            resolve(&json!({"cmek": {"key_name": "k1"}}), &keys, "encryption").unwrap(),
            cmek
        );
        assert!(resolve(&json!({"cmek": {"key_name": "k1"}}), &[], "encryption").is_err());
    }

    #[test]
    fn default_mode_needs_nothing_and_shapes_are_checked() {
        assert_eq!(
            resolve(&json!({"mode": "default"}), &[], "encryption").unwrap(),
            default_mode()
        );
        assert_eq!(
            resolve(&json!({"sse": true}), &[], "encryption").unwrap(),
            default_mode()
        );
        let err = resolve(&json!({"mode": "bad"}), &[], "encryption").unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            err.to_string().ends_with(
                "encryption.mode: unknown variant `bad`, expected `default` or `customer-managed`"
            ),
            "{err}"
        );
        let err = resolve(
            &json!({"mode": "customer-managed", "key_name": "k", "encryption_context": {"aws:x": "1"}}),
            &["k".into()],
            "encryption",
        )
        .unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(
            err.to_string()
                .contains("may not start with 'tpuf:' or 'aws:'")
        );
    }

    #[test]
    fn legacy_rendering() {
        assert_eq!(legacy(&default_mode()), json!({"sse": true}));
        assert_eq!(
            legacy(&json!({"mode": "customer-managed", "key_name": "k"})),
            json!({"cmek": {"key_name": "k"}})
        );
    }
}
