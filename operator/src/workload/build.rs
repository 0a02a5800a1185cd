//! Pure builders of a Pipeline's or Function's worker objects: the Deployment (environment,
//! pool scheduling, `podSpec` merge patch), the push-dispatch Service, the KEDA objects, and a
//! Function's UDF spec as the gateway's REST API takes it. No I/O: what the reconcile looked up
//! (InfraRules, the worker Secret, a Warehouse) comes in as arguments.

use std::collections::BTreeMap;

use crds::k8s::common::SecretKeyRef;
use crds::k8s::infra::InfraRules;
use crds::k8s::warehouse::{Warehouse, WarehouseKind, WarehousePhase};
use crds::k8s::workload::{Dispatch, Function, Pipeline, Scaling, Worker};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, PodSpec, PodTemplateSpec, SecretKeySelector,
    SecretVolumeSource, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use kube::api::{DynamicObject, ObjectMeta};
use serde_json::{Value, json};

use super::scaling::{
    Bounds, KedaInput, Queue, Rejection, check_replicas, deployment_replicas, keda_objects,
    resolve_pool, wants_scaled_object,
};
use crate::MANAGED_BY;
pub use crate::config::Settings;

/// Where the warehouse Secret is mounted in a worker pod.
pub const WAREHOUSE_MOUNT: &str = "/var/run/hevlayer/warehouse/";
/// The push-dispatch port when `worker.port` is unset.
pub const DEFAULT_PUSH_PORT: u16 = 8080;

/// The bearer workers present to the gateway: a Secret key, or none in `open` mode.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkerAuth {
    Secret(SecretKeyRef),
    Open,
}

impl WorkerAuth {
    fn secret(&self) -> Option<&SecretKeyRef> {
        match self {
            WorkerAuth::Secret(s) => Some(s),
            WorkerAuth::Open => None,
        }
    }
}

/// Everything a reconcile applies for one workload.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The pool it resolved to.
    pub pool: String,
    pub deployment: Deployment,
    /// Push dispatch only: the Service the gateway POSTs batches to.
    pub service: Option<Service>,
    /// `mode: autoscale` (not paused): the ScaledObject and its TriggerAuthentication.
    pub scaled_object: Option<DynamicObject>,
    pub trigger_auth: Option<DynamicObject>,
}

/// The worker Deployment's name: `pipeline-<name>` or `function-<name>`.
pub fn worker_name(kind: &str, name: &str) -> String {
    format!("{kind}-{name}")
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn secret_env(name: &str, s: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: s.name.clone(),
                key: s.key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// RFC 7386 JSON merge patch: objects merge key by key, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// What [`worker_plan`] builds from (kind-independent).
struct Workload<'a> {
    kind: &'static str,
    name: &'a str,
    namespace: &'a str,
    owner: OwnerReference,
    worker: &'a Worker,
    scaling: Option<&'a Scaling>,
    paused: bool,
    env: Vec<EnvVar>,
    labels: BTreeMap<String, String>,
    volumes: Vec<(Volume, VolumeMount)>,
    queue: Queue,
}

fn worker_plan(
    w: Workload,
    infra: Option<&InfraRules>,
    auth: &WorkerAuth,
    s: &Settings,
) -> Result<Plan, Rejection> {
    let pool = resolve_pool(infra, w.scaling, w.worker.compute_class)?;
    let bounds: Bounds = check_replicas(w.scaling, pool, s.ceiling)?;
    let name = worker_name(w.kind, w.name);
    let selector = BTreeMap::from([("hevlayer.com/worker".to_string(), name.clone())]);
    let mut labels = selector.clone();
    labels.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
    labels.insert(s.component_label.clone(), s.component_value.clone());
    labels.extend(w.labels);
    let meta = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(w.namespace.into()),
        labels: Some(labels.clone()),
        owner_references: Some(vec![w.owner.clone()]),
        ..ObjectMeta::default()
    };
    let mut env = w.env;
    env.push(env_base(s));
    if let Some(secret) = auth.secret() {
        env.push(secret_env("LAYER_GATEWAY_API_KEY", secret));
    }
    let push_port =
        (w.worker.dispatch == Dispatch::Push).then(|| w.worker.port.unwrap_or(DEFAULT_PUSH_PORT));
    let (volumes, mounts): (Vec<Volume>, Vec<VolumeMount>) = w.volumes.into_iter().unzip();
    let container = Container {
        name: "worker".into(),
        image: Some(w.worker.image.clone()),
        env: Some(env),
        resources: pool.resources.clone(),
        ports: push_port.map(|p| {
            vec![ContainerPort {
                name: Some("http".into()),
                container_port: i32::from(p),
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            }]
        }),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        ..Container::default()
    };
    let mut pod = PodSpec {
        containers: vec![container],
        node_selector: (!pool.node_selector.is_empty()).then(|| pool.node_selector.clone()),
        tolerations: (!pool.tolerations.is_empty()).then(|| pool.tolerations.clone()),
        volumes: (!volumes.is_empty()).then_some(volumes),
        ..PodSpec::default()
    };
    if let Some(patch) = &w.worker.pod_spec {
        let mut value = serde_json::to_value(&pod)
            .map_err(|e| Rejection::new("InvalidPodSpec", e.to_string()))?;
        merge_patch(&mut value, patch);
        pod = serde_json::from_value(value).map_err(|e| {
            Rejection::new(
                "InvalidPodSpec",
                format!("worker.podSpec does not give a pod spec: {e}"),
            )
        })?;
    }
    let deployment = Deployment {
        metadata: meta.clone(),
        spec: DeploymentSpec {
            replicas: deployment_replicas(w.scaling, w.paused, bounds),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    };
    let service = push_port.map(|p| Service {
        metadata: meta.clone(),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: i32::from(p),
                target_port: Some(IntOrString::String("http".into())),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    });
    let (scaled_object, trigger_auth) = if wants_scaled_object(w.scaling, w.paused) {
        let (so, ta) = keda_objects(&KedaInput {
            name: &name,
            namespace: w.namespace,
            owner: w.owner,
            labels,
            bounds,
            queue: w.queue,
            per_replica: w.worker.batch_size,
            secret: auth.secret(),
            gateway_url: &s.gateway_url,
            metrics_url: &s.metrics_url,
        });
        (Some(so), ta)
    } else {
        (None, None)
    };
    Ok(Plan {
        pool: pool.name.clone(),
        deployment,
        service,
        scaled_object,
        trigger_auth,
    })
}

fn env_base(s: &Settings) -> EnvVar {
    env("HEVLAYER_BASE_URL", s.gateway_url.clone())
}

fn owner<K: Resource<DynamicType = ()>>(obj: &K) -> Result<OwnerReference, Rejection> {
    obj.controller_owner_ref(&())
        .ok_or_else(|| Rejection::new("NotPersisted", "the resource has no name or uid yet"))
}

/// The gateway pipeline id: `spec.pipelineId`, else the resource's name.
pub fn pipeline_id(p: &Pipeline) -> String {
    p.spec
        .pipeline_id
        .clone()
        .unwrap_or_else(|| p.metadata.name.clone().unwrap_or_default())
}

/// The `Warehouse` a Pipeline's `sourceRef` names (`kind: snowflake`, `warehouseRef`).
pub fn warehouse_ref(p: &Pipeline) -> Option<String> {
    let src = p.spec.source_ref.as_ref()?;
    (src.get("kind")?.as_str()? == "snowflake").then(|| {
        src.get("warehouseRef")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    })
}

/// A Pipeline's worker objects. `warehouse` is the Warehouse its source names, if any (looked
/// up by the reconcile); a Snowflake source needs it `Verified`.
pub fn plan_pipeline(
    p: &Pipeline,
    infra: Option<&InfraRules>,
    auth: &WorkerAuth,
    warehouse: Option<&Warehouse>,
    s: &Settings,
) -> Result<Plan, Rejection> {
    let name = p.metadata.name.as_deref().unwrap_or_default();
    let namespace = p.metadata.namespace.as_deref().unwrap_or("default");
    let pid = pipeline_id(p);
    let mut env_vars = vec![
        env("HEVLAYER_PIPELINE_ID", pid.clone()),
        env("HEVLAYER_TARGET_NAMESPACE", p.spec.target.namespace.clone()),
    ];
    if let Some(src) = &p.spec.source_ref {
        env_vars.push(env("HEVLAYER_SOURCE_REF", src.to_string()));
    }
    env_vars.push(env(
        "HEVLAYER_BATCH_SIZE",
        p.spec.worker.batch_size.to_string(),
    ));
    env_vars.push(env(
        "HEVLAYER_TIMEOUT_SECONDS",
        p.spec.worker.timeout_seconds.to_string(),
    ));
    let mut volumes = Vec::new();
    if let Some(wref) = warehouse_ref(p) {
        let (json, secret) = warehouse_connection(&wref, warehouse)?;
        env_vars.push(env("HEVLAYER_WAREHOUSE", json.to_string()));
        volumes.push((
            Volume {
                name: "warehouse".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(secret),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            },
            VolumeMount {
                name: "warehouse".into(),
                mount_path: WAREHOUSE_MOUNT.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ));
    }
    let labels = BTreeMap::from([(s.pipeline_id_label.clone(), pid.clone())]);
    worker_plan(
        Workload {
            kind: "pipeline",
            name,
            namespace,
            owner: owner(p)?,
            worker: &p.spec.worker,
            scaling: p.spec.scaling.as_ref(),
            paused: p.spec.paused,
            env: env_vars,
            labels,
            volumes,
            queue: Queue::Pipeline(pid),
        },
        infra,
        auth,
        s,
    )
}

/// `HEVLAYER_WAREHOUSE` (connection JSON, no credential) and the key-pair Secret's name.
fn warehouse_connection(
    wref: &str,
    warehouse: Option<&Warehouse>,
) -> Result<(Value, String), Rejection> {
    if wref.is_empty() {
        return Err(Rejection::new(
            "WarehouseMissing",
            "sourceRef.kind snowflake needs sourceRef.warehouseRef",
        ));
    }
    let Some(w) = warehouse else {
        return Err(Rejection::new(
            "WarehouseMissing",
            format!("Warehouse {wref:?} does not exist in this namespace"),
        ));
    };
    let phase = w.status.as_ref().and_then(|s| s.phase).unwrap_or_default();
    let sf = match (&w.spec.kind, &w.spec.snowflake) {
        (WarehouseKind::Snowflake, Some(sf)) => sf,
        _ => {
            return Err(Rejection::new(
                "WarehouseMissing",
                format!("Warehouse {wref:?} is not a snowflake warehouse"),
            ));
        }
    };
    if phase != WarehousePhase::Verified {
        return Err(Rejection::new(
            "WarehouseNotVerified",
            format!("Warehouse {wref:?} is {phase:?}; runs start only against a Verified one"),
        ));
    }
    let mut conn = json!({
        "kind": "snowflake", "name": wref, "account": sf.account, "user": sf.user,
        "warehouse": sf.warehouse,
        "privateKeyPath": format!("{WAREHOUSE_MOUNT}private-key.pem"),
    });
    if let Some(r) = &sf.role {
        conn["role"] = json!(r);
    }
    if let Some(p) = &sf.pool {
        conn["pool"] = json!({ "size": p.size, "timeout": p.timeout });
    }
    Ok((conn, sf.key_pair_secret_ref.name.clone()))
}

/// A Function's worker objects.
pub fn plan_function(
    f: &Function,
    infra: Option<&InfraRules>,
    auth: &WorkerAuth,
    s: &Settings,
) -> Result<Plan, Rejection> {
    let name = f.metadata.name.as_deref().unwrap_or_default();
    let namespace = f.metadata.namespace.as_deref().unwrap_or("default");
    let w = &f.spec.worker;
    let env_vars = vec![
        env("HEVLAYER_UDF_ID", name),
        env("HEVLAYER_UDF_BATCH_SIZE", w.batch_size.to_string()),
        env(
            "HEVLAYER_UDF_TIMEOUT_SECONDS",
            w.timeout_seconds.to_string(),
        ),
        env(
            "HEVLAYER_UDF_LEASE_SECONDS",
            f.spec.schedule.lease_seconds.to_string(),
        ),
    ];
    let labels = BTreeMap::from([("hevlayer.com/function".to_string(), name.to_string())]);
    worker_plan(
        Workload {
            kind: "function",
            name,
            namespace,
            owner: owner(f)?,
            worker: w,
            scaling: f.spec.scaling.as_ref(),
            paused: f.spec.paused,
            env: env_vars,
            labels,
            volumes: Vec::new(),
            queue: Queue::Udf(name.into()),
        },
        infra,
        auth,
        s,
    )
}

/// A Function's spec as `PUT /v2/udfs/{id}` takes it (contract §2.7, snake_case), `paused`
/// included; a push worker's `url` is its Service.
pub fn udf_spec(f: &Function) -> Value {
    let sp = &f.spec;
    let w = &sp.worker;
    let name = f.metadata.name.as_deref().unwrap_or_default();
    let namespace = f.metadata.namespace.as_deref().unwrap_or("default");
    let mut worker = json!({
        "image": w.image,
        "dispatch": match w.dispatch { Dispatch::Pull => "pull", Dispatch::Push => "push" },
        "batch_size": w.batch_size,
        "timeout_seconds": w.timeout_seconds,
    });
    if w.dispatch == Dispatch::Push {
        let port = w.port.unwrap_or(DEFAULT_PUSH_PORT);
        let svc = worker_name("function", name);
        worker["url"] = json!(format!("http://{svc}.{namespace}.svc:{port}"));
        worker["port"] = json!(port);
    }
    let mut spec = json!({
        "target_namespaces": sp.target_namespaces,
        "inputs": sp.inputs,
        "version": sp.version,
        "worker": worker,
        "schedule": {
            "discovery_interval_seconds": sp.schedule.discovery_interval_seconds,
            "lease_seconds": sp.schedule.lease_seconds,
            "max_in_flight_batches": sp.schedule.max_in_flight_batches,
            "max_concurrent_scans": sp.schedule.max_concurrent_scans,
        },
        "retry": {
            "max_attempts": sp.retry.max_attempts,
            "initial_backoff_seconds": sp.retry.initial_backoff_seconds,
            "max_backoff_seconds": sp.retry.max_backoff_seconds,
        },
        "triggers": sp.triggers,
        "invalidates": sp.invalidates,
        "paused": sp.paused,
    });
    if let Some(sel) = &sp.index_selector {
        spec["index_selector"] = serde_json::to_value(sel).unwrap_or(Value::Null);
    }
    if let Some(filter) = &sp.filter {
        spec["filter"] = filter.clone();
    }
    spec
}
