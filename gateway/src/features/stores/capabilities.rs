//! The capability report of a store kind (contract §2.15): which of Layer's features a store
//! of that kind supports, which hybrid routes it serves, and its schema limits. Turbopuffer is
//! the one kind served, so the table is this gateway's own feature list on it; a store kind
//! added later answers its own table, and a route a kind cannot serve answers 422
//! `unsupported_by_store` with the feature's `id`.

use serde_json::{Value, json};

/// `(id, label, docs page, support, note)` of every feature on a Turbopuffer store.
const TURBOPUFFER: &[(&str, &str, &str, &str, &str)] = &[
    (
        "vector_search",
        "Vector search (ANN and exact kNN)",
        "/docs/api/query",
        "supported",
        "Turbopuffer's own ANN index.",
    ),
    (
        "full_text_search",
        "Full-text search (BM25)",
        "/docs/api/query",
        "supported",
        "Turbopuffer's BM25 with its tokenizers.",
    ),
    (
        "hybrid_text",
        "HybridText (vector + BM25, fused)",
        "/docs/api/query",
        "supported",
        "Layer plans the legs and fuses them with RRF.",
    ),
    (
        "filters",
        "Attribute filters",
        "/docs/api/query",
        "supported",
        "Every Turbopuffer filter operator.",
    ),
    (
        "aggregations",
        "Aggregations (Count, Sum, group_by)",
        "/docs/api/query",
        "supported",
        "Passed to Turbopuffer.",
    ),
    (
        "multi_query",
        "Multi-query",
        "/docs/api/query",
        "supported",
        "Up to 16 legs with one stable cut.",
    ),
    (
        "stable_reads",
        "Stable reads",
        "/docs/guarantees",
        "supported",
        "A watermark cut on eventual reads.",
    ),
    (
        "fetch_by_id",
        "Documents by id",
        "/docs/api/query",
        "supported",
        "Served from the document cache, origin behind it.",
    ),
    (
        "sharding",
        "Scatter/gather sharding",
        "/docs/concepts",
        "supported",
        "Hash buckets per Index (`shards`).",
    ),
    (
        "scans",
        "Scans and facet counts",
        "/docs/api/scans",
        "supported",
        "Origin pages, the cache or snapshots.",
    ),
    (
        "snapshots",
        "Facet snapshots",
        "/docs/api/snapshots",
        "supported",
        "Durable in the object store.",
    ),
    (
        "search_history",
        "Search history and clickstream",
        "/docs/api/search-history",
        "supported",
        "Recorded by the gateway.",
    ),
    (
        "warm_cache",
        "Cache warming",
        "/docs/api/warm-cache",
        "supported",
        "Warm jobs and hint_cache_warm.",
    ),
    (
        "pipelines",
        "Pipelines",
        "/docs/api/pipelines",
        "supported",
        "Vectors upserted through the gateway's write path.",
    ),
    (
        "udfs",
        "Functions (UDFs)",
        "/docs/kubernetes/function-crd",
        "supported",
        "Completions patched through the write path; vector completions are not supported yet.",
    ),
    (
        "gateway_embedding",
        "Embedding in the gateway",
        "/docs/roadmap",
        "unsupported",
        "Workers embed; the gateway does not.",
    ),
];

/// The hybrid routes: `(route, feature, support, note)`.
const HYBRID: &[(&str, &str, &str, &str)] = &[
    (
        "/v2/namespaces/{ns}/query",
        "hybrid_text",
        "supported",
        "`rank_by: [\"HybridText\", …]` is planned as a vector and a BM25 leg.",
    ),
    (
        "/v2/namespaces/{ns}/query",
        "multi_query",
        "supported",
        "`queries: […]` runs every leg at one cut.",
    ),
];

/// The report for store `name` of `kind` (`declared`: the table comes from this gateway, not
/// from a probe of the store).
pub fn report(name: &str, kind: &str) -> Value {
    let known = kind == "turbopuffer";
    let features: Vec<Value> = TURBOPUFFER
        .iter()
        .map(|(id, label, page, support, note)| {
            json!({
                "id": id, "label": label, "page": page,
                "support": if known { *support } else { "undeclared" },
                "note": note,
            })
        })
        .collect();
    let hybrid: Vec<Value> = HYBRID
        .iter()
        .map(|(route, feature, support, note)| {
            json!({"route": route, "feature": feature,
                   "support": if known { *support } else { "undeclared" }, "note": note})
        })
        .collect();
    json!({
        "store": {"name": name, "kind": kind},
        "declared": known,
        "features": features,
        "hybrid_routes": hybrid,
        "schema_limits": {
            "embed": {"support": "unsupported", "note": "The gateway does not embed text; workers write vectors."},
            "max_gateway_embed_attributes": null,
            "max_full_text_search_fields": null,
            "max_vector_fields": 1,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_required_key_is_present() {
        let r = report("default", "turbopuffer");
        assert_eq!(r["store"]["name"], "default");
        assert_eq!(r["declared"], true);
        for f in r["features"].as_array().unwrap() {
            for k in ["id", "label", "page", "support", "note"] {
                assert!(f[k].is_string(), "{k} of {f}");
            }
        }
        let limits = r["schema_limits"].as_object().unwrap();
        for k in [
            "embed",
            "max_gateway_embed_attributes",
            "max_full_text_search_fields",
            "max_vector_fields",
        ] {
            assert!(limits.contains_key(k), "{k}");
        }
    }
}
