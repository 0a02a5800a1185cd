//! A namespace's capability report: the store kind's table ([`super::capabilities::report`])
//! narrowed by the namespace's real state — its schema as upstream reports it (vector
//! attributes, full-text fields) and its sharding. Start at [`narrow`].
//!
//! - `vector_search`, `hybrid_text` (and its hybrid route) need a vector attribute; a namespace
//!   whose schema has none answers `unsupported` with that reason;
//! - `full_text_search` and `hybrid_text` need an attribute with `full_text_search`;
//! - `sharding` says the shard count the gateway scatters the namespace over;
//! - a namespace upstream does not know yet (no write) keeps the store's table with `undeclared`
//!   on the schema-dependent rows: nothing is known until the first write fixes a schema.
//!
//! The schema facts are also reported as they are: `schema_limits.vector_fields` and
//! `schema_limits.full_text_search_fields` (extra keys the client's model keeps).

use serde_json::{Value, json};

use crate::sources::schema::vector_dim;

/// What the namespace's schema says, from upstream's `GET /v1/namespaces/{ns}/schema` answer.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SchemaFacts {
    /// `(attribute, type)` of every vector attribute.
    pub vectors: Vec<(String, String)>,
    /// Attributes with full-text search on.
    pub full_text: Vec<String>,
}

impl SchemaFacts {
    /// Reads a schema object (`{attr: {type, full_text_search, ...}}`).
    pub fn of(schema: &Value) -> SchemaFacts {
        let mut facts = SchemaFacts::default();
        let Some(attrs) = schema.as_object() else {
            return facts;
        };
        for (name, spec) in attrs {
            let ty = spec.get("type").and_then(Value::as_str).unwrap_or_default();
            if vector_dim(ty).is_some() {
                facts.vectors.push((name.clone(), ty.to_string()));
            }
            let fts = spec.get("full_text_search");
            if fts.is_some_and(|f| f.is_object() || f == true) {
                facts.full_text.push(name.clone());
            }
        }
        facts
    }
}

fn set(report: &mut Value, list: &str, key: &str, id: &str, support: &str, note: String) {
    if let Some(rows) = report.get_mut(list).and_then(Value::as_array_mut) {
        for row in rows.iter_mut().filter(|r| r[key] == id) {
            row["support"] = json!(support);
            row["note"] = json!(note);
        }
    }
}

/// Narrows the store's `report` to the namespace: `schema` is `None` when upstream does not know
/// the namespace yet; `shards` is the gateway's shard count for it.
pub fn narrow(mut report: Value, schema: Option<&SchemaFacts>, shards: u32) -> Value {
    if report["declared"] != true {
        return report;
    }
    let sharding = if shards > 1 {
        format!("Scattered over {shards} shards and gathered by the gateway.")
    } else {
        "Unsharded (`shards: 1`): every query is one upstream request.".to_string()
    };
    set(
        &mut report,
        "features",
        "id",
        "sharding",
        "supported",
        sharding,
    );
    let Some(facts) = schema else {
        let why = "The namespace has no schema yet: its first write decides.".to_string();
        for id in ["vector_search", "full_text_search", "hybrid_text"] {
            set(&mut report, "features", "id", id, "undeclared", why.clone());
        }
        set(
            &mut report,
            "hybrid_routes",
            "feature",
            "hybrid_text",
            "undeclared",
            why,
        );
        return report;
    };
    let vectors = facts
        .vectors
        .iter()
        .map(|(a, t)| format!("`{a}` ({t})"))
        .collect::<Vec<_>>()
        .join(", ");
    let fts = facts
        .full_text
        .iter()
        .map(|a| format!("`{a}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let (vector_ok, fts_ok) = (!facts.vectors.is_empty(), !facts.full_text.is_empty());
    let (support, note) = if vector_ok {
        ("supported", format!("ANN on {vectors}."))
    } else {
        (
            "unsupported",
            "No vector attribute in this namespace's schema.".into(),
        )
    };
    set(
        &mut report,
        "features",
        "id",
        "vector_search",
        support,
        note,
    );
    let (support, note) = if fts_ok {
        ("supported", format!("BM25 on {fts}."))
    } else {
        (
            "unsupported",
            "No attribute of this namespace has `full_text_search`.".into(),
        )
    };
    set(
        &mut report,
        "features",
        "id",
        "full_text_search",
        support,
        note,
    );
    let (support, note) = match (vector_ok, fts_ok) {
        (true, true) => (
            "supported",
            format!("A vector leg on {vectors} and a BM25 leg on {fts}, fused with RRF."),
        ),
        (false, _) => (
            "unsupported",
            "HybridText needs a vector attribute; this namespace has none.".into(),
        ),
        (true, false) => (
            "unsupported",
            "HybridText needs a full-text field; this namespace has none.".into(),
        ),
    };
    set(
        &mut report,
        "features",
        "id",
        "hybrid_text",
        support,
        note.clone(),
    );
    set(
        &mut report,
        "hybrid_routes",
        "feature",
        "hybrid_text",
        support,
        note,
    );
    if let Some(limits) = report.get_mut("schema_limits") {
        limits["vector_fields"] = json!(facts.vectors.iter().map(|(a, _)| a).collect::<Vec<_>>());
        limits["full_text_search_fields"] = json!(facts.full_text);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::super::capabilities::report;
    use super::*;

    fn support(r: &Value, id: &str) -> String {
        r["features"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .unwrap()["support"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn the_schema_decides_vector_text_and_hybrid() {
        let schema = json!({
            "id": {"type": "uint"},
            "vector": {"type": "[3]f32", "ann": true},
            "title": {"type": "string", "full_text_search": {"tokenizer": "word_v3"}},
            "tag": {"type": "string", "full_text_search": false},
        });
        let facts = SchemaFacts::of(&schema);
        assert_eq!(facts.full_text, vec!["title".to_string()]);
        let r = narrow(report("default", "turbopuffer"), Some(&facts), 4);
        assert_eq!(support(&r, "hybrid_text"), "supported");
        assert_eq!(r["schema_limits"]["vector_fields"], json!(["vector"]));
        assert!(
            r["features"].to_string().contains("4 shards"),
            "sharding note"
        );

        let text_only =
            SchemaFacts::of(&json!({"title": {"type": "string", "full_text_search": true}}));
        let r = narrow(report("default", "turbopuffer"), Some(&text_only), 1);
        assert_eq!(support(&r, "vector_search"), "unsupported");
        assert_eq!(support(&r, "full_text_search"), "supported");
        assert_eq!(support(&r, "hybrid_text"), "unsupported");
        assert_eq!(r["hybrid_routes"][0]["support"], "unsupported");

        let r = narrow(report("default", "turbopuffer"), None, 1);
        assert_eq!(support(&r, "vector_search"), "undeclared");
        assert_eq!(support(&r, "filters"), "supported");
    }
}
