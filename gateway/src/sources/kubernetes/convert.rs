//! Resources to the gateway's own types: an `Index`'s spec is `layer.yaml`'s `indexes[]` entry
//! (the CRD-only sections `blobs`, `embedding`, `search` and `metadata.annotations` are not the
//! gateway's and are left out); an `ApiKey`'s spec and status are a stored key; a
//! `VectorStore`'s spec is a store's connection ([`ClusterStore`], its credential still a
//! Secret reference).

use layer_queue::keys::StoredKey;
use serde_json::{Map, Value};

use super::watch::name_of;
use crate::core::config::IndexConfig;

/// Spec sections of an `Index` the gateway reads.
const INDEX_SECTIONS: [&str; 7] = [
    "backend",
    "metadata",
    "snapshot",
    "scan",
    "cache",
    "consistency",
    "shards",
];

/// An `Index` resource as `layer.yaml` would write it (named by the resource).
pub fn index(o: &Value) -> Result<IndexConfig, String> {
    let name = name_of(o);
    if name.is_empty() {
        return Err("no metadata.name".into());
    }
    let mut spec = match o.get("spec") {
        Some(Value::Object(m)) => m.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err("spec is not an object".into()),
    };
    spec.retain(|k, v| INDEX_SECTIONS.contains(&k.as_str()) && !v.is_null());
    if let Some(Value::Object(m)) = spec.get_mut("metadata") {
        m.remove("annotations");
    }
    spec.insert("name".into(), Value::String(name.into()));
    serde_json::from_value(Value::Object(spec)).map_err(|e| e.to_string())
}

/// A `VectorStore` resource: its connection, the credential still a Secret reference.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterStore {
    pub name: String,
    pub url: String,
    pub region: Option<String>,
    /// `credential.secretRef`: the Secret's name and key (same namespace as the resource).
    pub secret: Option<(String, String)>,
    /// `spec.default` (informational: the file's `vectorStore` stays the default store).
    pub default: bool,
}

/// A `VectorStore` resource as a store connection: `kind` must be `turbopuffer` (the other
/// kinds are reserved), `endpoint.url` an `http(s)` URL.
pub fn vector_store(o: &Value) -> Result<ClusterStore, String> {
    let name = name_of(o);
    if name.is_empty() {
        return Err("no metadata.name".into());
    }
    let spec = o.get("spec").cloned().unwrap_or(Value::Null);
    let text = |p: &str| spec.pointer(p).and_then(Value::as_str).map(String::from);
    match text("/kind").as_deref() {
        Some("turbopuffer") => {}
        Some(other) => return Err(format!("store kind {other:?} is not implemented")),
        None => return Err("no spec.kind".into()),
    }
    let url = text("/endpoint/url").ok_or("no spec.endpoint.url")?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err("spec.endpoint.url must be an http(s) URL".into());
    }
    let secret = match spec.pointer("/credential/secretRef") {
        None | Some(Value::Null) => None,
        Some(r) => {
            let field = |k: &str| {
                r.get(k)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .ok_or(format!("spec.credential.secretRef.{k} is missing"))
            };
            Some((field("name")?, field("key")?))
        }
    };
    Ok(ClusterStore {
        name: name.to_string(),
        url,
        region: text("/endpoint/region"),
        secret,
        default: spec
            .get("default")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// The value under `key` of a `Secret` object (`data` is base64, `stringData` plain text).
pub fn secret_value(secret: &Value, key: &str) -> Result<String, String> {
    use base64::Engine;
    if let Some(v) = secret
        .pointer("/stringData")
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
    {
        return Ok(v.trim().to_string());
    }
    let encoded = secret
        .pointer("/data")
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the Secret has no key {key:?}"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|e| format!("key {key:?} is not base64: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("key {key:?} is not UTF-8"))?;
    Ok(text.trim().to_string())
}

/// An RFC 3339 time as epoch milliseconds.
fn millis(v: Option<&Value>) -> Result<Option<i64>, String> {
    match v.and_then(Value::as_str).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.timestamp_millis()))
            .map_err(|e| format!("{s:?}: {e}")),
    }
}

/// An `ApiKey` resource as a stored key; `None` while it has no `status.keyId` and
/// `status.lookupHash` (a `Pending` key the operator has not minted). The phase decides:
/// `Revoked` keys carry a revocation time, `Expired` ones an expiry in the past, so neither
/// authenticates.
pub fn api_key(o: &Value) -> Result<Option<StoredKey>, String> {
    let status = o.get("status").cloned().unwrap_or(Value::Null);
    let spec = o.get("spec").cloned().unwrap_or(Value::Null);
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(String::from);
    let (Some(key_id), Some(lookup_hash)) = (text(&status, "keyId"), text(&status, "lookupHash"))
    else {
        return Ok(None);
    };
    let phase = text(&status, "phase").unwrap_or_else(|| "Pending".into());
    let now = crate::core::http::now_ms() as i64;
    let created = millis(status.get("createdAt"))?
        .or(millis(o.pointer("/metadata/creationTimestamp"))?)
        .unwrap_or(now);
    let mut expires_at = millis(status.get("expiresAt")).map_err(|e| format!("expiresAt {e}"))?;
    let mut revoked_at = millis(status.get("revokedAt")).map_err(|e| format!("revokedAt {e}"))?;
    match phase.as_str() {
        "Active" => {}
        "Revoked" => revoked_at = revoked_at.or(Some(now)),
        "Expired" => expires_at = Some(expires_at.map_or(now, |e| e.min(now))),
        // Pending (or a phase this gateway does not know): not verifiable.
        _ => return Ok(None),
    }
    let entitlements = match spec.get("entitlements") {
        Some(Value::Object(m)) => Value::Object(m.clone()),
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(_) => return Err("spec.entitlements is not a map".into()),
    };
    Ok(Some(StoredKey {
        key_id,
        name: name_of(o).to_string(),
        owner: text(&spec, "owner"),
        description: text(&spec, "description"),
        entitlements,
        expires_after: text(&spec, "expiresAfter").unwrap_or_else(|| "365d".into()),
        expires_at_ms: expires_at,
        lookup_hash,
        created_at_ms: created,
        revoked_at_ms: revoked_at,
        last_seen_at_ms: millis(status.get("lastSeenAt")).unwrap_or(None),
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::core::config::IndexConsistency;

    #[test]
    fn the_spec_pages_index_example_reads_as_its_file_entry() {
        let o = json!({"apiVersion": "hevlayer.com/v1", "kind": "Index",
            "metadata": {"name": "products", "namespace": "layer", "resourceVersion": "3"},
            "spec": {"backend": {"storeRef": "turbopuffer-default", "namespace": "products",
                "distanceMetric": "cosine_distance"},
              "metadata": {"labels": {"app": "shop"}, "tags": ["catalog"], "annotations": {"a": "b"}},
              "snapshot": {"interval": "5m", "retention": "never", "facetFields": ["category", "brand"]},
              "scan": {"threads": 8}, "cache": {"ttl": "24h", "capGiB": 64, "mode": "standard"},
              "consistency": "strong", "embedding": {"model": "x"}, "blobs": {"referenceAttributes": []}}});
        let i = index(&o).unwrap();
        assert_eq!(i.name, "products");
        assert_eq!(i.namespace(), "products");
        assert_eq!(i.backend.store_ref.as_deref(), Some("turbopuffer-default"));
        assert_eq!(i.consistency, IndexConsistency::Strong);
        assert_eq!(i.scan.threads, Some(8));
        assert_eq!(i.snapshot.facet_fields, vec!["category", "brand"]);
        assert_eq!(i.metadata.labels["app"], "shop");
        // No spec: every default, named by the resource.
        let bare = index(&json!({"metadata": {"name": "n"}})).unwrap();
        assert_eq!(bare.namespace(), "n");
        assert_eq!(bare.consistency, IndexConsistency::Stable);
        assert!(
            index(&json!({"metadata": {"name": "n"}, "spec": {"consistency": "sometimes"}}))
                .is_err()
        );
    }

    #[test]
    fn the_spec_pages_vector_store_example_reads_as_a_connection() {
        let o = json!({"apiVersion": "hevlayer.com/v1alpha1", "kind": "VectorStore",
            "metadata": {"name": "turbopuffer-default", "namespace": "layer"},
            "spec": {"kind": "turbopuffer", "default": true,
              "endpoint": {"url": "https://aws-us-east-1.turbopuffer.com", "region": "aws-us-east-1"},
              "credential": {"secretRef": {"name": "layer", "key": "turbopuffer-api-key"}},
              "inboundAuth": {"mode": "deriveFromStore"}}});
        let s = vector_store(&o).unwrap();
        assert_eq!(s.name, "turbopuffer-default");
        assert_eq!(s.url, "https://aws-us-east-1.turbopuffer.com");
        assert_eq!(s.region.as_deref(), Some("aws-us-east-1"));
        assert_eq!(
            s.secret,
            Some(("layer".to_string(), "turbopuffer-api-key".to_string()))
        );
        assert!(s.default);
        // No credential: an open store (an emulator).
        let open = json!({"metadata": {"name": "e"},
            "spec": {"kind": "turbopuffer", "endpoint": {"url": "http://127.0.0.1:9"}}});
        assert_eq!(vector_store(&open).unwrap().secret, None);
        for (spec, why) in [
            (
                json!({"kind": "pinecone", "endpoint": {"url": "http://x"}}),
                "kind",
            ),
            (json!({"kind": "turbopuffer"}), "endpoint"),
            (
                json!({"kind": "turbopuffer", "endpoint": {"url": "ftp://x"}}),
                "http",
            ),
            (
                json!({"kind": "turbopuffer", "endpoint": {"url": "http://x"},
                    "credential": {"secretRef": {"name": "layer"}}}),
                "key",
            ),
        ] {
            let err = vector_store(&json!({"metadata": {"name": "s"}, "spec": spec})).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn secret_values_decode() {
        let s = json!({"data": {"k": "dHB1Zl9zZWNyZXQK"}, "stringData": {"p": "plain"}});
        assert_eq!(secret_value(&s, "k").unwrap(), "tpuf_secret");
        assert_eq!(secret_value(&s, "p").unwrap(), "plain");
        assert!(secret_value(&s, "missing").is_err());
        assert!(secret_value(&json!({"data": {"k": "***"}}), "k").is_err());
    }

    #[test]
    fn api_keys_by_phase() {
        let key = |phase: &str| {
            json!({"metadata": {"name": "cohort-reader", "creationTimestamp": "2026-06-10T00:00:00Z"},
              "spec": {"owner": "acme", "entitlements": {"vectorstore.prod": {"scopes": ["read"], "namespaces": ["cohort-*"]}}},
              "status": {"keyId": "0a1b", "phase": phase, "lookupHash": "sha256:00",
                "expiresAt": "2999-01-01T00:00:00Z"}})
        };
        let active = api_key(&key("Active")).unwrap().unwrap();
        assert_eq!(active.key_id, "0a1b");
        assert_eq!(active.owner.as_deref(), Some("acme"));
        assert!(active.revoked_at_ms.is_none());
        assert!(active.expires_at_ms.unwrap() > crate::core::http::now_ms() as i64);
        assert_eq!(active.created_at_ms, 1_781_049_600_000);
        let revoked = api_key(&key("Revoked")).unwrap().unwrap();
        assert!(revoked.revoked_at_ms.is_some());
        let expired = api_key(&key("Expired")).unwrap().unwrap();
        assert!(expired.expires_at_ms.unwrap() <= crate::core::http::now_ms() as i64);
        assert!(api_key(&key("Pending")).unwrap().is_none());
        let unminted = json!({"metadata": {"name": "k"}, "spec": {}});
        assert!(api_key(&unminted).unwrap().is_none());
        let mut bad = key("Active");
        bad["status"]["expiresAt"] = json!("next tuesday");
        assert!(api_key(&bad).is_err());
    }
}
