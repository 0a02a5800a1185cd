//! Pure scaling decisions of a Pipeline or Function: which pool of `InfraRules/default` it runs
//! on, whether its replica bounds fit the pool's ceiling, how many replicas the Deployment gets,
//! and the KEDA objects of `mode: autoscale`.
//!
//! KEDA triggers (why these): a Function scales on `layer_udf_queue_depth{udf=…}` through the
//! Prometheus scaler on the release's metrics server (the gateway exports the gauge; the bundled
//! VictoriaMetrics scrapes it), so KEDA never holds a gateway credential. A Pipeline's queue depth
//! is not a metric, so it scales with KEDA's `metrics-api` scaler on `pending_count` of
//! `GET /v2/pipelines/{id}/status`, with the worker Secret as bearer (a `TriggerAuthentication`);
//! a Function does the same on `/v2/udfs/{id}/status` when no metrics server is configured.

use crds::k8s::common::SecretKeyRef;
use crds::k8s::infra::{ComputePool, InfraRules};
use crds::k8s::workload::{ComputeClass, Scaling, ScalingMode};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ObjectMeta};
use serde_json::json;

/// Why a workload is not applied: a condition reason and a message (Ready False).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub reason: &'static str,
    pub message: String,
}

impl Rejection {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Rejection {
        Rejection {
            reason,
            message: message.into(),
        }
    }
}

/// The pool a workload runs on: `scaling.pool`, else the stock pool named by
/// `worker.computeClass` (`cpu` or `gpu`).
pub fn resolve_pool<'a>(
    infra: Option<&'a InfraRules>,
    scaling: Option<&Scaling>,
    class: ComputeClass,
) -> Result<&'a ComputePool, Rejection> {
    let name = match scaling.and_then(|s| s.pool.as_deref()) {
        Some(p) => p,
        None => match class {
            ComputeClass::Cpu => "cpu",
            ComputeClass::Gpu => "gpu",
        },
    };
    let Some(infra) = infra else {
        return Err(Rejection::new(
            "InfraRulesMissing",
            format!("pool {name:?} cannot be resolved: InfraRules/default does not exist"),
        ));
    };
    infra
        .spec
        .compute_pools
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| {
            let known: Vec<&str> = infra
                .spec
                .compute_pools
                .iter()
                .map(|p| p.name.as_str())
                .collect();
            Rejection::new(
                "PoolUnknown",
                format!(
                    "pool {name:?} is not in InfraRules/default (pools: {})",
                    known.join(", ")
                ),
            )
        })
}

/// Replica bounds after the ceiling check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub min: i32,
    pub max: i32,
}

/// Checks `scaling.replicas` against the pool's `maxReplicasPerWorkload` (else `ceiling`): a
/// maximum above it, or a minimum above the maximum, is rejected. An unset maximum is the
/// ceiling (at least `min`... which must itself fit).
pub fn check_replicas(
    scaling: Option<&Scaling>,
    pool: &ComputePool,
    ceiling: i32,
) -> Result<Bounds, Rejection> {
    let limit = pool.max_replicas_per_workload.unwrap_or(ceiling);
    let replicas = scaling.and_then(|s| s.replicas.as_ref());
    let min = replicas.map(|r| r.min).unwrap_or(0);
    let max = replicas.and_then(|r| r.max);
    if let Some(max) = max
        && max > limit
    {
        return Err(Rejection::new(
            "ReplicasAboveCeiling",
            format!(
                "replicas.max {max} is above pool {:?}'s maxReplicasPerWorkload {limit}",
                pool.name
            ),
        ));
    }
    if min > limit {
        return Err(Rejection::new(
            "ReplicasAboveCeiling",
            format!(
                "replicas.min {min} is above pool {:?}'s maxReplicasPerWorkload {limit}",
                pool.name
            ),
        ));
    }
    let max = max.unwrap_or(limit);
    if min > max {
        return Err(Rejection::new(
            "InvalidReplicas",
            format!("replicas.min {min} is above replicas.max {max}"),
        ));
    }
    Ok(Bounds { min, max })
}

/// The Deployment's `replicas`: 0 when paused or disabled, `min` when fixed, unset (KEDA's
/// to set) when autoscaled.
pub fn deployment_replicas(scaling: Option<&Scaling>, paused: bool, bounds: Bounds) -> Option<i32> {
    let mode = scaling.map(|s| s.mode).unwrap_or_default();
    match mode {
        _ if paused => Some(0),
        ScalingMode::Disabled => Some(0),
        ScalingMode::Fixed => Some(bounds.min),
        ScalingMode::Autoscale => None,
    }
}

/// Whether a KEDA `ScaledObject` is wanted (`mode: autoscale`, not paused).
pub fn wants_scaled_object(scaling: Option<&Scaling>, paused: bool) -> bool {
    !paused && scaling.map(|s| s.mode).unwrap_or_default() == ScalingMode::Autoscale
}

/// The queue a workload scales on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Queue {
    /// A gateway pipeline id (`pending_count` of its status route).
    Pipeline(String),
    /// A UDF id (`layer_udf_queue_depth`, or `pending_count` of its status route).
    Udf(String),
}

/// KEDA's `ScaledObject` API resource.
pub fn scaled_object_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"),
        "scaledobjects",
    )
}

/// KEDA's `TriggerAuthentication` API resource.
pub fn trigger_auth_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("keda.sh", "v1alpha1", "TriggerAuthentication"),
        "triggerauthentications",
    )
}

/// What the KEDA objects are built from.
pub struct KedaInput<'a> {
    /// The Deployment's (and the KEDA objects') name.
    pub name: &'a str,
    pub namespace: &'a str,
    pub owner: OwnerReference,
    pub labels: std::collections::BTreeMap<String, String>,
    pub bounds: Bounds,
    pub queue: Queue,
    /// Items per replica (the worker's batch size).
    pub per_replica: u32,
    /// The worker Secret (`None` in `open` mode).
    pub secret: Option<&'a SecretKeyRef>,
    pub gateway_url: &'a str,
    /// The Prometheus-compatible metrics server; blank = scale on the status route.
    pub metrics_url: &'a str,
}

/// The `ScaledObject` and, when it authenticates to the gateway, its `TriggerAuthentication`.
pub fn keda_objects(k: &KedaInput) -> (DynamicObject, Option<DynamicObject>) {
    let meta = ObjectMeta {
        name: Some(k.name.into()),
        namespace: Some(k.namespace.into()),
        labels: Some(k.labels.clone()),
        owner_references: Some(vec![k.owner.clone()]),
        ..ObjectMeta::default()
    };
    let target = k.per_replica.max(1).to_string();
    let gateway = k.gateway_url.trim_end_matches('/');
    let (trigger, auth) = match &k.queue {
        Queue::Udf(id) if !k.metrics_url.is_empty() => (
            json!({
                "type": "prometheus",
                "metadata": {
                    "serverAddress": k.metrics_url,
                    "query": format!("sum(layer_udf_queue_depth{{udf=\"{id}\"}})"),
                    "threshold": target,
                    "activationThreshold": "0",
                },
            }),
            None,
        ),
        queue => {
            let url = match queue {
                Queue::Pipeline(id) => format!("{gateway}/v2/pipelines/{id}/status"),
                Queue::Udf(id) => format!("{gateway}/v2/udfs/{id}/status"),
            };
            let mut metadata = json!({
                "url": url,
                "format": "json",
                "valueLocation": "pending_count",
                "targetValue": target,
                "activationTargetValue": "0",
            });
            let mut trigger = json!({ "type": "metrics-api" });
            let auth = k.secret.map(|s| {
                metadata["authMode"] = json!("bearer");
                trigger["authenticationRef"] = json!({ "name": k.name });
                let mut ta =
                    DynamicObject::new(k.name, &trigger_auth_resource()).within(k.namespace);
                ta.metadata = meta.clone();
                ta.data = json!({
                    "spec": {
                        "secretTargetRef": [{ "parameter": "token", "name": s.name, "key": s.key }],
                    },
                });
                ta
            });
            trigger["metadata"] = metadata;
            (trigger, auth)
        }
    };
    let mut so = DynamicObject::new(k.name, &scaled_object_resource()).within(k.namespace);
    so.metadata = meta;
    so.data = json!({
        "spec": {
            "scaleTargetRef": { "name": k.name },
            "minReplicaCount": k.bounds.min,
            "maxReplicaCount": k.bounds.max,
            "triggers": [trigger],
        },
    });
    (so, auth)
}
