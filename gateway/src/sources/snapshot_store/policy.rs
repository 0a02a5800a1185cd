//! The snapshot policy of a namespace: from its `Index` (`spec.snapshot`) unless one was set
//! through `PUT /v2/namespaces/{ns}/snapshot-policy`, which is persisted in the object store
//! (`snapshot-policy/{ns}.json`) and wins over the Index until changed again.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::config::{IndexConfig, parse_duration_ms};
use crate::core::error::GatewayError;

/// The wire and stored shape (camelCase, like the Index CRD).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub facet_fields: Vec<String>,
    pub interval: String,
    pub retention: String,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            facet_fields: Vec::new(),
            interval: "5m".into(),
            retention: "never".into(),
        }
    }
}

impl Policy {
    pub fn from_index(i: &IndexConfig) -> Policy {
        Policy {
            facet_fields: i.snapshot.facet_fields.clone(),
            interval: i.snapshot.interval.clone(),
            retention: i.snapshot.retention.clone(),
        }
    }

    /// Minimum spacing between automatic writes (`interval`, else the gateway fallback).
    pub fn interval_ms(&self, fallback_ms: u64) -> u64 {
        parse_duration_ms(&self.interval)
            .ok()
            .flatten()
            .unwrap_or(fallback_ms)
    }

    /// The retention window; `None` keeps everything.
    pub fn retention_ms(&self) -> Option<u64> {
        parse_duration_ms(&self.retention).ok().flatten()
    }

    /// Parses and validates a PUT body. Missing fields take the client's defaults.
    pub fn parse(body: &[u8]) -> Result<Policy, GatewayError> {
        let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Object(Default::default())
        } else {
            serde_json::from_slice(body).map_err(|e| {
                GatewayError::Validation(format!("snapshot policy is not valid JSON: {e}"))
            })?
        };
        let obj = v.as_object().ok_or_else(|| {
            GatewayError::Validation("snapshot policy must be a JSON object".into())
        })?;
        let mut p = Policy::default();
        for (k, val) in obj {
            match k.as_str() {
                "facetFields" => {
                    let arr = val.as_array().ok_or_else(|| {
                        GatewayError::Validation("facetFields must be an array of strings".into())
                    })?;
                    p.facet_fields.clear();
                    for f in arr {
                        let name = f.as_str().filter(|s| !s.is_empty()).ok_or_else(|| {
                            GatewayError::Validation(
                                "facetFields must be an array of non-empty strings".into(),
                            )
                        })?;
                        if name.starts_with(scatter::RESERVED_PREFIX) {
                            return Err(GatewayError::Validation(format!(
                                "{name:?} is a reserved attribute"
                            )));
                        }
                        if !p.facet_fields.iter().any(|x| x == name) {
                            p.facet_fields.push(name.to_string());
                        }
                    }
                }
                "interval" | "retention" => {
                    let s = val.as_str().ok_or_else(|| {
                        GatewayError::Validation(format!("{k} must be a duration string"))
                    })?;
                    parse_duration_ms(s)
                        .map_err(|e| GatewayError::Validation(format!("{k}: {e}")))?;
                    if k == "interval" && s.trim().eq_ignore_ascii_case("never") {
                        return Err(GatewayError::Validation(
                            "interval must be a duration (never is for retention)".into(),
                        ));
                    }
                    if k == "interval" {
                        p.interval = s.trim().to_string();
                    } else {
                        p.retention = s.trim().to_string();
                    }
                }
                other => {
                    return Err(GatewayError::Validation(format!(
                        "unknown snapshot policy field {other:?} (expected facetFields, interval, retention)"
                    )));
                }
            }
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_defaults_and_rejects() {
        assert_eq!(Policy::parse(b"").unwrap(), Policy::default());
        let p =
            Policy::parse(br#"{"facetFields":["a","b","a"],"interval":"1m","retention":"30d"}"#)
                .unwrap();
        assert_eq!(p.facet_fields, ["a", "b"]);
        assert_eq!(p.interval_ms(0), 60_000);
        assert_eq!(p.retention_ms(), Some(30 * 86_400_000));
        assert_eq!(Policy::default().retention_ms(), None);
        for bad in [
            &br#"{"facetFields":"a"}"#[..],
            br#"{"facetFields":["_hevlayer_upserted_at"]}"#,
            br#"{"interval":"soon"}"#,
            br#"{"interval":"never"}"#,
            br#"{"colour":1}"#,
            b"[1]",
        ] {
            assert!(
                Policy::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
