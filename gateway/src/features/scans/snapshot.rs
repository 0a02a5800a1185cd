//! The snapshot source: counts and values answered from the namespace's latest snapshot body
//! ([`crate::snapshots::latest`]), exact at its `watermark_ms`.
//!
//! - Counts: only a single leaf `Eq` or `In` filter on a field present in the latest snapshot's
//!   `fields[]` (not in `fields_skipped[]`), with string, integer or boolean operands. The field
//!   must be a scalar (a facet counts each element of an array attribute once per document,
//!   which is not what `Eq`/`In` match on arrays) and the operands of its type: both are checked
//!   against the namespace schema. The count is the sum of `n` over the distinct operand values.
//! - Values: an unfiltered, unranked scan of a field in `fields[]` is the facet listing itself.
//!
//! Anything else is [`Eligibility::Ineligible`] with the reason: `auto` falls through to
//! cache/origin, an explicit `source: snapshot` answers 412 `precondition_failed` with it. Reads
//! that fail (the snapshot body, the schema) are errors only under an explicit
//! `source: snapshot`; under `auto` they make the scan ineligible.

use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use scatter::filter_eval::RowFilter;
use serde_json::Value;

use super::Scans;
use crate::core::error::GatewayError;
use crate::core::upstream::Upstream;
use crate::sources::snapshot_store::SnapshotBody;

/// A snapshot answer, or why there is none.
#[derive(Debug)]
pub enum Eligibility<T> {
    Served(T),
    Ineligible(String),
}

/// A count served from a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotCount {
    pub count: u64,
    pub sha: String,
    pub watermark_ms: u64,
}

/// The latest body; an object-store failure is an error only when the snapshot was asked for
/// explicitly (under `auto` it just means "no snapshot").
async fn body(
    scans: &Scans,
    ns: &str,
    explicit: bool,
) -> Result<Option<Arc<SnapshotBody>>, GatewayError> {
    match scans.snapshots.latest(ns).await {
        Ok(b) => Ok(b),
        Err(e) if explicit => Err(e),
        Err(_) => Ok(None),
    }
}

/// The facet text of a filter operand (`v` is a string on the wire), if a facet can hold it.
fn operand_text(v: &sonic_rs::Value) -> Option<(String, &'static str)> {
    use sonic_rs::JsonValueTrait;
    if let Some(s) = v.as_str() {
        return Some((s.to_string(), "string"));
    }
    if let Some(b) = v.as_bool() {
        return Some((b.to_string(), "bool"));
    }
    v.as_i64()
        .map(|n| n.to_string())
        .or_else(|| v.as_u64().map(|n| n.to_string()))
        .map(|t| (t, "int"))
}

/// The schema type of `attr` (`GET /v1/namespaces/{ns}/schema`); `None` when absent.
pub async fn attr_type(
    upstream: &Upstream,
    ns: &str,
    attr: &str,
) -> Result<Option<String>, GatewayError> {
    let v = crate::sources::origin::upstream_json(
        upstream,
        "scan_schema",
        Method::GET,
        &format!("/v1/namespaces/{ns}/schema"),
        Bytes::new(),
        "schema read",
    )
    .await?;
    Ok(v.get(attr)
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        .map(str::to_string))
}

/// Whether a schema type names a vector column (dense, multi-vector or sparse).
pub fn is_vector_type(ty: &str) -> bool {
    let dense = |s: &str| s.starts_with('[') && s[1..].starts_with(|c: char| c.is_ascii_digit());
    dense(ty) || ty.strip_prefix("[]").is_some_and(dense) || ty == "{}f16"
}

/// Whether an operand kind (`string`, `int`, `bool`) fits a scalar schema type.
fn kind_fits(kind: &str, ty: &str) -> bool {
    matches!(
        (kind, ty),
        ("string", "string") | ("int", "int" | "uint") | ("bool", "bool")
    )
}

/// A count from the latest snapshot, when the filter is eligible.
pub async fn count(
    scans: &Scans,
    upstream: &Upstream,
    ns: &str,
    filters: Option<&Value>,
    explicit: bool,
) -> Result<Eligibility<SnapshotCount>, GatewayError> {
    let no = |why: &str| Ok(Eligibility::Ineligible(why.to_string()));
    let Some(f) = filters else {
        return no("snapshot counts need a single Eq or In filter on a snapshot field");
    };
    let leaf = sonic_rs::to_value(f)
        .ok()
        .and_then(|v| RowFilter::parse(&v).ok());
    let Some((attr, operands)) = leaf.as_ref().and_then(RowFilter::single_leaf) else {
        return no(
            "snapshot counts serve only a single leaf Eq or In filter (And, Or, Not and range \
             operators are not eligible)",
        );
    };
    let Some(texts) = operands
        .iter()
        .map(|v| operand_text(v))
        .collect::<Option<Vec<_>>>()
    else {
        return no("snapshot counts need string, integer or boolean operands");
    };
    let Some(body) = body(scans, ns, explicit).await? else {
        return no("the namespace has no snapshot yet");
    };
    let Some(hist) = body.field(attr) else {
        return Ok(Eligibility::Ineligible(format!(
            "field {attr:?} is not in the latest snapshot's fields[] (absent or skipped)"
        )));
    };
    // The schema read says whether the field is a scalar of the operands' type. When it fails,
    // only an explicit `source: snapshot` fails with it; under `auto` the count is simply not
    // eligible and falls through to cache/origin (which need no schema).
    let ty = match attr_type(upstream, ns, attr).await {
        Ok(ty) => ty.unwrap_or_default(),
        Err(e) if explicit => return Err(e),
        Err(e) => {
            return Ok(Eligibility::Ineligible(format!(
                "the schema of {ns:?} could not be read to check field {attr:?}: {e}"
            )));
        }
    };
    if !texts.iter().all(|(_, kind)| kind_fits(kind, &ty)) {
        return Ok(Eligibility::Ineligible(format!(
            "field {attr:?} has type {ty:?}: snapshot counts need a scalar string, integer or \
             boolean field matching the operands"
        )));
    }
    let mut wanted: Vec<&str> = texts.iter().map(|(t, _)| t.as_str()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let count = hist
        .values
        .iter()
        .filter(|fv| wanted.binary_search(&fv.v.as_str()).is_ok())
        .map(|fv| fv.n)
        .sum();
    Ok(Eligibility::Served(SnapshotCount {
        count,
        sha: body.sha.clone(),
        watermark_ms: body.watermark_ms,
    }))
}

/// The facet listing of `field` from the latest snapshot (unfiltered, unranked scans only; the
/// caller checks that).
pub async fn values(
    scans: &Scans,
    ns: &str,
    field: &str,
    explicit: bool,
) -> Result<Eligibility<Arc<SnapshotBody>>, GatewayError> {
    let Some(body) = body(scans, ns, explicit).await? else {
        return Ok(Eligibility::Ineligible(
            "the namespace has no snapshot yet".into(),
        ));
    };
    if body.field(field).is_none() {
        return Ok(Eligibility::Ineligible(format!(
            "field {field:?} is not in the latest snapshot's fields[] (absent or skipped)"
        )));
    }
    Ok(Eligibility::Served(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_types() {
        for t in ["[3]f32", "[768]f16", "[][128]f16", "{}f16"] {
            assert!(is_vector_type(t), "{t}");
        }
        for t in ["string", "[]string", "[]int", "int", "float", ""] {
            assert!(!is_vector_type(t), "{t}");
        }
    }

    #[test]
    fn operand_kinds_match_scalar_types_only() {
        assert!(kind_fits("string", "string"));
        assert!(kind_fits("int", "uint") && kind_fits("int", "int"));
        assert!(kind_fits("bool", "bool"));
        assert!(!kind_fits("string", "[]string"));
        assert!(!kind_fits("int", "string"));
        assert!(!kind_fits("string", ""));
        let v = |s: &str| sonic_rs::from_str::<sonic_rs::Value>(s).expect("json");
        assert_eq!(operand_text(&v("\"a\"")), Some(("a".into(), "string")));
        assert_eq!(operand_text(&v("7")), Some(("7".into(), "int")));
        assert_eq!(operand_text(&v("true")), Some(("true".into(), "bool")));
        assert_eq!(operand_text(&v("1.5")), None);
        assert_eq!(operand_text(&v("null")), None);
    }
}
