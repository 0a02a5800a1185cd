//! `Pipeline` and `Function` (`hevlayer.com/v1alpha1`): worker workloads the operator runs as
//! one Deployment each, scheduled on a pool of `InfraRules/default` and scaled by `spec.scaling`.
//! A Pipeline stages external data into a target namespace; a Function (a UDF) runs over rows
//! already in an index.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, any_json, no, open_object};

/// The spec of a `Pipeline`.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "hevlayer.com",
    version = "v1alpha1",
    kind = "Pipeline",
    doc = "Staged ingestion: a worker Deployment writing a target namespace from an external source, scaled on its pipeline queue.",
    namespaced,
    status = "WorkloadStatus",
    category = "hevlayer",
    printcolumn(
        name = "Target",
        type_ = "string",
        json_path = ".spec.target.namespace"
    ),
    printcolumn(name = "Pool", type_ = "string", json_path = ".status.pool"),
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.scaling.mode"),
    printcolumn(name = "Paused", type_ = "boolean", json_path = ".spec.paused"),
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
pub struct PipelineSpec {
    /// The namespace the pipeline writes.
    pub target: PipelineTarget,
    /// The gateway pipeline (queue) the worker stages into and scales on; unset = the
    /// resource's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<String>,
    /// The external source, open JSON handed to the worker as `HEVLAYER_SOURCE_REF`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub source_ref: Option<serde_json::Value>,
    pub worker: Worker,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Scaling>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Scales the worker to zero.
    #[serde(default = "no")]
    pub paused: bool,
}

/// `spec.target` of a Pipeline.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineTarget {
    pub namespace: String,
}

/// The spec of a `Function` (a UDF).
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "hevlayer.com",
    version = "v1alpha1",
    kind = "Function",
    doc = "A user-defined function (UDF) run by a worker Deployment over rows already in an index, scaled on its queue.",
    namespaced,
    status = "WorkloadStatus",
    shortname = "fn",
    category = "hevlayer",
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
    printcolumn(name = "Pool", type_ = "string", json_path = ".status.pool"),
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.scaling.mode"),
    printcolumn(name = "Paused", type_ = "boolean", json_path = ".spec.paused"),
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
pub struct FunctionSpec {
    /// Explicit namespaces the UDF runs over.
    #[serde(default)]
    pub target_namespaces: Vec<String>,
    /// Labels on `Index` resources choosing the namespaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_selector: Option<LabelSelector>,
    /// Attributes each row is read with.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Attributes whose change makes a row due again.
    #[serde(default)]
    pub invalidates: Vec<String>,
    /// The re-run safety rail: bump it when a model, taxonomy or prompt changes.
    #[serde(default = "v1")]
    pub version: String,
    /// A Turbopuffer filter (object or array form), kept verbatim and AND-ed by the gateway
    /// with the completion-marker predicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_json")]
    pub filter: Option<serde_json::Value>,
    pub worker: Worker,
    #[serde(default)]
    pub schedule: Schedule,
    #[serde(default)]
    pub retry: Retry,
    #[serde(default = "discovery")]
    pub triggers: Vec<Trigger>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Scaling>,
    /// Scales the worker to zero and stops discovery.
    #[serde(default = "no")]
    pub paused: bool,
}

fn v1() -> String {
    "v1".into()
}

fn discovery() -> Vec<Trigger> {
    vec![Trigger::Discovery]
}

/// `spec.triggers[]` of a Function.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Trigger {
    Discovery,
    Write,
    Schedule,
}

/// The worker container: image, dispatch, compute class, batch size, timeout, pod patch.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Worker {
    pub image: String,
    /// `pull` (SDK claim/poll workers) or `push` (HTTP `/run` workers).
    #[serde(default)]
    pub dispatch: Dispatch,
    /// Chooses the stock `cpu` or `gpu` pool when `scaling.pool` is unset.
    #[serde(default)]
    pub compute_class: ComputeClass,
    /// Push-dispatch service port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Items (rows) per batch.
    #[serde(default = "thirty_two")]
    #[schemars(range(min = 1))]
    pub batch_size: u32,
    /// Worker call timeout.
    #[serde(default = "thirty")]
    #[schemars(range(min = 1))]
    pub timeout_seconds: u32,
    /// A pod-level merge patch applied to the worker's pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub pod_spec: Option<serde_json::Value>,
}

fn thirty_two() -> u32 {
    32
}

fn thirty() -> u32 {
    30
}

/// `pull` (SDK claim/poll workers, default) or `push` (HTTP `/run` workers).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Dispatch {
    #[default]
    Pull,
    Push,
}

/// `cpu` (default) or `gpu`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ComputeClass {
    #[default]
    Cpu,
    Gpu,
}

/// `spec.scaling`: a pool of `InfraRules/default`, a mode and replica bounds.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scaling {
    /// A pool of `InfraRules/default.spec.computePools`; unset = the stock pool of
    /// `worker.computeClass`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    #[serde(default)]
    pub mode: ScalingMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<Replicas>,
}

/// `autoscale` (default), `fixed` or `disabled`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ScalingMode {
    /// A KEDA `ScaledObject` scales the Deployment between `min` and `max` on queue depth.
    #[default]
    Autoscale,
    /// `replicas.min` replicas, no KEDA object.
    Fixed,
    /// Zero replicas, no KEDA object.
    Disabled,
}

/// Replica bounds; `max` must not exceed the pool's `maxReplicasPerWorkload`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Replicas {
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub min: i32,
    /// Must not exceed the pool's `maxReplicasPerWorkload` (checked by the operator).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max: Option<i32>,
}

/// `spec.schedule`: discovery cadence, leases and concurrency.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Schedule {
    #[serde(default = "sixty")]
    pub discovery_interval_seconds: u32,
    /// How long a claim is held before it is reissued.
    #[serde(default = "one_twenty")]
    pub lease_seconds: u32,
    #[serde(default = "four")]
    pub max_concurrent_scans: u32,
    #[serde(default = "eight")]
    pub max_in_flight_batches: u32,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            discovery_interval_seconds: sixty(),
            lease_seconds: one_twenty(),
            max_concurrent_scans: four(),
            max_in_flight_batches: eight(),
        }
    }
}

fn sixty() -> u32 {
    60
}

fn one_twenty() -> u32 {
    120
}

fn four() -> u32 {
    4
}

fn eight() -> u32 {
    8
}

/// `spec.retry` of a Function.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retry {
    #[serde(default = "five")]
    pub initial_backoff_seconds: u32,
    /// Tries before a row lands in `failed`.
    #[serde(default = "eight")]
    pub max_attempts: u32,
    #[serde(default = "three_hundred")]
    pub max_backoff_seconds: u32,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            initial_backoff_seconds: five(),
            max_attempts: eight(),
            max_backoff_seconds: three_hundred(),
        }
    }
}

fn five() -> u32 {
    5
}

fn three_hundred() -> u32 {
    300
}

/// The status of a Pipeline or Function: the objects the operator manages and readiness.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The pool the workload resolved to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The worker Deployment's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// The KEDA `ScaledObject`'s name (`mode: autoscale`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaled_object: Option<String>,
    /// `Ready`; `PoolUnknown` or `ReplicasAboveCeiling` leave the workload unready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
