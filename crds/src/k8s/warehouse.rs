//! `Warehouse` (`hevlayer.com/v1alpha1`): an upstream source system pipelines extract rows
//! from, with the Secret of its verified credential. Status is written by the operator's probe.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, SecretRef, open_object};

/// The spec of a `Warehouse`.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "hevlayer.com",
    version = "v1alpha1",
    kind = "Warehouse",
    doc = "An upstream source system pipelines extract from, with the Secret of its verified credential.",
    namespaced,
    status = "WarehouseStatus",
    category = "hevlayer",
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.kind"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Verified", type_ = "string", json_path = ".status.verifiedAt"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WarehouseSpec {
    /// `snowflake`; the other kinds are reserved by the schema and rejected by the operator
    /// until implemented.
    pub kind: WarehouseKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snowflake: Option<Snowflake>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub huggingface: Option<HuggingFace>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rest: Option<Rest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss: Option<Rss>,
    /// Settings of the reserved `youtube` kind, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub youtube: Option<serde_json::Value>,
    /// Probe cadence.
    #[serde(default = "an_hour")]
    pub verify_interval: String,
}

fn an_hour() -> String {
    "1h".into()
}

/// The source kind: `snowflake` (the others are reserved).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum WarehouseKind {
    Snowflake,
    Huggingface,
    Rss,
    Youtube,
    Rest,
    Databricks,
    Iceberg,
}

/// `spec.snowflake`: account, credential and compute (not a catalog).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Snowflake {
    pub account: String,
    /// The service user the key pair authenticates.
    pub user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The compute warehouse extraction queries run on.
    pub warehouse: String,
    /// Holds `private-key.pem` and an optional `passphrase`.
    pub key_pair_secret_ref: SecretRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<SnowflakePool>,
}

/// Connection pool tuning: `size` and `timeout`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SnowflakePool {
    #[serde(default = "five")]
    #[schemars(range(min = 1))]
    pub size: u32,
    #[serde(default = "thirty_seconds")]
    pub timeout: String,
}

fn five() -> u32 {
    5
}

fn thirty_seconds() -> String {
    "30s".into()
}

/// `spec.huggingface` (reserved kind): the known key, anything else kept verbatim.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
pub struct HuggingFace {
    #[serde(default = "huggingface_endpoint")]
    pub endpoint: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn huggingface_endpoint() -> String {
    "https://huggingface.co".into()
}

/// `spec.rest` (reserved kind): the known keys, anything else kept verbatim.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Rest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<RestAuth>,
    #[serde(default = "rest_user_agent")]
    pub user_agent: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn rest_user_agent() -> String {
    "hevlayer/rest-source (+https://hevlayer.com/contact)".into()
}

/// How the REST source authenticates; `in` says where the credential goes.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
pub struct RestAuth {
    /// Where the credential goes: `query` or `header`.
    #[serde(rename = "in", skip_serializing_if = "Option::is_none")]
    pub in_: Option<RestAuthIn>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// `query` or `header`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum RestAuthIn {
    Query,
    Header,
}

/// `spec.rss` (reserved kind): the known key, anything else kept verbatim.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Rss {
    #[serde(default = "rss_user_agent")]
    pub user_agent: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn rss_user_agent() -> String {
    "hevlayer/rss-source (+https://hevlayer.com)".into()
}

/// `Pending` (not yet probed), `Verified` or `Failed`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum WarehousePhase {
    /// Not yet probed.
    #[default]
    Pending,
    Verified,
    Failed,
}

/// What the operator's probe writes.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WarehouseStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<WarehousePhase>,
    /// The last successful probe's time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
    /// Why the last probe failed (`null` when it did not).
    #[serde(default)]
    pub failure_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumers: Option<Consumers>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// `status.consumers`: observed references, which hold the deletion finalizer.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Consumers {
    #[serde(default)]
    pub pipelines: u32,
    #[serde(default)]
    pub api_keys: u32,
}
