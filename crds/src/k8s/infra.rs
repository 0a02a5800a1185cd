//! `InfraRules` (`hevlayer.com/v1alpha1`, cluster-scoped, exactly one object named `default`):
//! the compute pools Pipelines and Functions choose with `spec.scaling.pool`, and the document
//! cache policy.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Condition;

/// The only name the operator accepts for an `InfraRules` object.
pub const INFRA_RULES_NAME: &str = "default";

/// The spec of `InfraRules/default`.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "hevlayer.com",
    version = "v1alpha1",
    kind = "InfraRules",
    doc = "Cluster-wide compute pools and document cache rules; exactly one object, named default.",
    plural = "infrarules",
    status = "InfraRulesStatus",
    category = "hevlayer",
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
pub struct InfraRulesSpec {
    #[serde(default)]
    pub compute_pools: Vec<ComputePool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_cache: Option<DocumentCache>,
}

/// One entry of `spec.computePools`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComputePool {
    /// What `spec.scaling.pool` names.
    pub name: String,
    /// The pool's class label, e.g. `cpu` or `gpu`.
    pub kind: String,
    /// A descriptive GPU type for GPU pools.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Container resources of the workers that choose the pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The hard ceiling of replicas for one Pipeline or Function.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_replicas_per_workload: Option<i32>,
}

/// `spec.documentCache`: capacity, replication factor and node count of the document cache.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DocumentCache {
    #[serde(rename = "capGiB", skip_serializing_if = "Option::is_none")]
    pub cap_gib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub replication_factor: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling: Option<DocumentCacheScaling>,
}

/// How the document cache scales: `mode` and node bounds.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DocumentCacheScaling {
    #[serde(default)]
    pub mode: DocumentCacheMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<NodeBounds>,
}

/// `autoscale` (demand-driven, down to `nodes.min`) or `fixed`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum DocumentCacheMode {
    #[default]
    Autoscale,
    Fixed,
}

/// Node bounds of the document cache.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeBounds {
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub min: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max: Option<i32>,
}

/// What the operator reports: validation of the object (its name, its pools).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InfraRulesStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The pools' names, as validated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
