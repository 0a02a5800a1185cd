//! The write body of `POST /v2/namespaces/{ns}` as it is deserialised: [`WriteRequest`] and the
//! row, column, patch-by-filter, copy-source and sharding shapes inside it. Pure data — no
//! validation; [`super::apply`] interprets it against a namespace.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::model::{Id, IdVec};
use crate::namespace::Metric;

/// A row of `upsert_rows` / `patch_rows`.
#[derive(Debug, Deserialize)]
pub struct Row {
    pub id: Id,
    #[serde(flatten)]
    pub attrs: Map<String, Value>,
}

/// `upsert_columns` / `patch_columns`.
#[derive(Debug, Deserialize)]
pub struct Columns {
    pub id: IdVec,
    #[serde(flatten)]
    pub cols: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub struct PatchByFilter {
    pub filters: Value,
    pub patch: Map<String, Value>,
}

/// `copy_from_namespace` / `branch_from_namespace`: a name or an object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SourceRef {
    Name(String),
    Full {
        source_namespace: String,
        #[serde(default)]
        source_api_key: Option<String>,
        #[serde(default)]
        source_region: Option<String>,
        #[serde(default)]
        dest_encryption: Option<Value>,
    },
}

impl SourceRef {
    /// `dest_encryption` of the object form.
    pub fn dest_encryption(&self) -> Option<&Value> {
        match self {
            SourceRef::Name(_) => None,
            SourceRef::Full {
                dest_encryption, ..
            } => dest_encryption.as_ref().filter(|v| !v.is_null()),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            SourceRef::Name(n) => n,
            SourceRef::Full {
                source_namespace, ..
            } => source_namespace,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Sharding {
    pub num_shards: u64,
}

/// The write body.
#[derive(Debug, Default, Deserialize)]
pub struct WriteRequest {
    pub upsert_rows: Option<Vec<Row>>,
    pub upsert_columns: Option<Columns>,
    pub patch_rows: Option<Vec<Row>>,
    pub patch_columns: Option<Columns>,
    pub deletes: Option<IdVec>,
    pub upsert_condition: Option<Value>,
    pub patch_condition: Option<Value>,
    pub delete_condition: Option<Value>,
    pub delete_by_filter: Option<Value>,
    pub delete_by_filter_allow_partial: Option<bool>,
    pub patch_by_filter: Option<PatchByFilter>,
    pub patch_by_filter_allow_partial: Option<bool>,
    pub distance_metric: Option<Metric>,
    pub schema: Option<Map<String, Value>>,
    pub copy_from_namespace: Option<SourceRef>,
    pub branch_from_namespace: Option<SourceRef>,
    pub encryption: Option<Value>,
    pub sharding: Option<Sharding>,
    pub create_namespace: Option<bool>,
    pub disable_backpressure: Option<bool>,
    pub return_affected_ids: Option<bool>,
}

impl WriteRequest {
    /// Whether the request writes or deletes documents (as opposed to schema-only or copy).
    pub fn has_document_ops(&self) -> bool {
        self.upsert_rows.is_some()
            || self.upsert_columns.is_some()
            || self.patch_rows.is_some()
            || self.patch_columns.is_some()
            || self.deletes.is_some()
            || self.delete_by_filter.is_some()
            || self.patch_by_filter.is_some()
    }

    /// Whether the request has no patches, no by-filter writes and no upsert/delete conditions
    /// (only such a write may skip backpressure with `disable_backpressure`).
    pub(super) fn upserts_only(&self) -> bool {
        self.patch_rows.is_none()
            && self.patch_columns.is_none()
            && self.delete_by_filter.is_none()
            && self.patch_by_filter.is_none()
            && self.upsert_condition.is_none()
            && self.delete_condition.is_none()
    }
}
