//! `Index` (`hevlayer.com/v1`, also served as `v1alpha1`): one namespace exposed through the
//! gateway — upstream namespace and store, snapshot, scan and cache policy, read consistency.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, is_false, no, open_object};

/// The spec of an `Index`.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "hevlayer.com",
    version = "v1",
    kind = "Index",
    doc = "One namespace exposed through the gateway: upstream namespace and store, snapshot, scan and cache policy, read consistency.",
    plural = "indexes",
    namespaced,
    status = "IndexStatus",
    shortname = "idx",
    category = "hevlayer",
    printcolumn(
        name = "Upstream",
        type_ = "string",
        json_path = ".spec.backend.namespace"
    ),
    printcolumn(name = "Store", type_ = "string", json_path = ".spec.backend.storeRef"),
    printcolumn(
        name = "Consistency",
        type_ = "string",
        json_path = ".spec.consistency"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IndexSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<IndexBackend>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blobs: Option<IndexBlobs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<IndexCache>,
    /// `eventual` (the default: Layer's stable reads) or `strong`.
    #[serde(default)]
    pub consistency: Consistency,
    /// Embedding settings, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub embedding: Option<serde_json::Value>,
    #[serde(default)]
    pub metadata: IndexMetadata,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan: Option<IndexScan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<IndexSearch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<IndexSnapshot>,
    /// Hash buckets the namespace is split into (1 = unsharded): a Layer extension, as
    /// `indexes[].shards` in layer.yaml; fixed for the namespace's lifetime.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub shards: Option<u32>,
}

/// `spec.consistency`: the documented product's words with its meanings.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Consistency {
    /// Layer's stable reads: eventual upstream reads, cut at the namespace's watermark while it
    /// is updating (layer.yaml's `stable`).
    #[default]
    Eventual,
    /// Queries forwarded unchanged (upstream's strong consistency).
    Strong,
}

/// Which store and upstream namespace serve the Index, and the vector metric.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IndexBackend {
    /// A `VectorStore` in the same namespace; unset = the default store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_ref: Option<String>,
    /// The upstream namespace; unset = the Index's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default = "cosine_distance")]
    pub distance_metric: String,
}

fn cosine_distance() -> String {
    "cosine_distance".into()
}

/// Blob policy: the attributes that hold blob references.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IndexBlobs {
    /// Attributes holding blob references.
    #[serde(default)]
    pub reference_attributes: Vec<String>,
}

/// Cache posture: entry lifetime (`ttl`), capacity (`capGiB`) and `mode`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IndexCache {
    /// How long cached documents live (`24h`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    #[serde(rename = "capGiB", skip_serializing_if = "Option::is_none")]
    pub cap_gib: Option<u64>,
    #[serde(default)]
    pub mode: CacheMode,
}

/// `standard` or `staging`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum CacheMode {
    #[default]
    Standard,
    Staging,
}

/// `spec.metadata`: labels and annotations of the namespace (and Layer's `tags`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IndexMetadata {
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Free-form tags (the spec page's example; as `metadata.tags` in layer.yaml).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// Scan policy: the default origin scan fan-out.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IndexScan {
    /// Origin scan fan-out (clamped by the gateway's cap and the shard count).
    #[serde(default = "eight")]
    #[schemars(range(min = 1))]
    pub threads: u32,
}

fn eight() -> u32 {
    8
}

/// Search policy: whether full-text search is enabled.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IndexSearch {
    #[serde(default = "no")]
    pub full_text: bool,
}

/// Snapshot policy: facet fields, minimum interval, retention.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IndexSnapshot {
    /// Fields materialized into facet snapshots; empty disables the automatic writer.
    #[serde(default)]
    pub facet_fields: Vec<String>,
    /// Minimum spacing between automatic snapshot writes.
    #[serde(default = "five_minutes")]
    pub interval: String,
    /// `never`, or a duration such as `30d`.
    #[serde(default = "never")]
    pub retention: String,
}

fn five_minutes() -> String {
    "5m".into()
}

fn never() -> String {
    "never".into()
}

/// What the operator reports; `snapshot` is reserved for the gateway history bridge.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IndexStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The store the Index resolved to (its `storeRef`, else the default store).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The upstream namespace it resolved to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Whether `spec.metadata` has been synced to the gateway.
    #[serde(default = "no", skip_serializing_if = "is_false")]
    pub metadata_synced: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The gateway history bridge's last snapshot run and success (reserved).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success: Option<String>,
}

/// The `Index` CRD: `v1` (stored) and `v1alpha1` (served, the same schema, so no conversion),
/// since the docs' examples use `v1` and the rest of the group is `v1alpha1`.
pub fn crd() -> CustomResourceDefinition {
    let mut crd = Index::crd();
    let mut alpha = crd.spec.versions[0].clone();
    alpha.name = "v1alpha1".into();
    alpha.storage = false;
    crd.spec.versions.push(alpha);
    crd
}
