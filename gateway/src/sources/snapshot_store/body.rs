//! The snapshot body (a materialized facet histogram) and its content address.
//!
//! The sha is SHA-256 over the body's canonical JSON *without* the `sha` key: keys in the order
//! below, fields sorted by name, values ordered `n` descending then `v` ascending. Identical
//! histograms at the same watermark therefore share one address.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One `{v, n}` facet entry: a value (always a string on the wire) and its document count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacetValue {
    pub v: String,
    pub n: u64,
}

/// A complete facet histogram for one field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldHistogram {
    pub name: String,
    pub values: Vec<FacetValue>,
}

/// A field left out because it has more distinct values than the cap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedField {
    pub name: String,
    pub reason: String,
    pub distinct_observed: u64,
    pub cap: u64,
}

/// `GET /v2/namespaces/{ns}/snapshots/{sha}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotBody {
    pub namespace: String,
    pub watermark_ms: u64,
    pub sha: String,
    pub row_count: u64,
    pub fields: Vec<FieldHistogram>,
    pub fields_skipped: Vec<SkippedField>,
}

impl SnapshotBody {
    /// Builds a body, orders it canonically and computes its sha.
    pub fn new(
        namespace: &str,
        watermark_ms: u64,
        row_count: u64,
        mut fields: Vec<FieldHistogram>,
        mut fields_skipped: Vec<SkippedField>,
    ) -> SnapshotBody {
        fields.sort_by(|a, b| a.name.cmp(&b.name));
        for f in &mut fields {
            f.values
                .sort_by(|a, b| b.n.cmp(&a.n).then_with(|| a.v.cmp(&b.v)));
        }
        fields_skipped.sort_by(|a, b| a.name.cmp(&b.name));
        let mut body = SnapshotBody {
            namespace: namespace.to_string(),
            watermark_ms,
            sha: String::new(),
            row_count,
            fields,
            fields_skipped,
        };
        body.sha = body.content_sha();
        body
    }

    /// SHA-256 (hex) of the canonical JSON without `sha`.
    pub fn content_sha(&self) -> String {
        let canonical = serde_json::json!({
            "namespace": self.namespace,
            "watermark_ms": self.watermark_ms,
            "row_count": self.row_count,
            "fields": self.fields,
            "fields_skipped": self.fields_skipped,
        });
        let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
        let digest = Sha256::digest(&bytes);
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The histogram of `field`, when the snapshot materialized it completely.
    pub fn field(&self, name: &str) -> Option<&FieldHistogram> {
        self.fields.iter().find(|f| f.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fv(v: &str, n: u64) -> FacetValue {
        FacetValue { v: v.into(), n }
    }

    #[test]
    fn sha_is_content_addressed_and_order_independent() {
        let a = SnapshotBody::new(
            "ns",
            7,
            3,
            vec![FieldHistogram {
                name: "c".into(),
                values: vec![fv("x", 1), fv("y", 2)],
            }],
            vec![],
        );
        let b = SnapshotBody::new(
            "ns",
            7,
            3,
            vec![FieldHistogram {
                name: "c".into(),
                values: vec![fv("y", 2), fv("x", 1)],
            }],
            vec![],
        );
        assert_eq!(a.sha, b.sha);
        assert_eq!(a.sha.len(), 64);
        assert_eq!(a.fields[0].values[0], fv("y", 2));
        let c = SnapshotBody::new("ns", 8, 3, a.fields.clone(), vec![]);
        assert_ne!(a.sha, c.sha);
        assert_eq!(a.sha, a.content_sha());
    }
}
