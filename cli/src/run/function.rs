//! The `Function` manifest `layer run -f` takes: parsed into the operator's CRD types
//! (`crds::k8s::FunctionSpec`, camelCase, unknown fields rejected), checked for what the gateway
//! needs before anything is applied, and turned into the gateway's UDF spec (snake_case, contract
//! §2.7). Every error is one line naming the field (`spec.worker: missing field `image``).

use std::collections::BTreeMap;

use crds::k8s::FunctionSpec;
use crds::k8s::workload::{ComputeClass, Dispatch, Trigger};
use serde_json::{Map, Value, json};

/// A parsed manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// `metadata.name`: the CR's name and the gateway UDF id.
    pub name: String,
    /// `metadata.namespace`, if given.
    pub namespace: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub spec: FunctionSpec,
}

/// Parses and checks a manifest; `index` (`--index`) replaces `spec.targetNamespaces` with one
/// target (and drops `spec.indexSelector`).
pub fn parse(text: &str, index: Option<&str>) -> Result<Manifest, String> {
    let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    let Value::Object(doc) = doc else {
        return Err("the manifest is not a mapping".into());
    };
    if let Some(v) = doc.get("apiVersion")
        && v.as_str() != Some("hevlayer.com/v1alpha1")
    {
        return Err(format!(
            "apiVersion: expected hevlayer.com/v1alpha1, got {v}"
        ));
    }
    if let Some(v) = doc.get("kind")
        && v.as_str() != Some("Function")
    {
        return Err(format!("kind: expected Function, got {v}"));
    }
    let meta = match doc.get("metadata") {
        Some(Value::Object(m)) => m,
        Some(v) => return Err(format!("metadata: expected a mapping, got {v}")),
        None => return Err("metadata.name: required".into()),
    };
    let name = match meta.get("name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(v) => {
            return Err(format!(
                "metadata.name: expected a non-empty string, got {v}"
            ));
        }
        None => return Err("metadata.name: required".into()),
    };
    if !dns_label(&name) {
        return Err(format!(
            "metadata.name: {name:?} must be lowercase letters, digits and '-' (at most 63), \
starting and ending with a letter or digit"
        ));
    }
    let namespace = match meta.get("namespace") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if dns_label(s) => Some(s.clone()),
        Some(v) => return Err(format!("metadata.namespace: not a namespace name: {v}")),
    };
    let string_map = |key: &str| -> Result<Option<BTreeMap<String, String>>, String> {
        match meta.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|_| format!("metadata.{key}: expected a mapping of strings")),
        }
    };
    let labels = string_map("labels")?;
    let annotations = string_map("annotations")?;
    let spec_value = match doc.get("spec") {
        Some(v @ Value::Object(_)) => v.clone(),
        Some(v) => return Err(format!("spec: expected a mapping, got {v}")),
        None => return Err("spec: required".into()),
    };
    let mut spec: FunctionSpec = serde_path_to_error::deserialize(spec_value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." || path.is_empty() {
            "spec".to_string()
        } else {
            format!("spec.{path}")
        };
        format!("{field}: {}", e.inner())
    })?;
    if let Some(ns) = index {
        spec.target_namespaces = vec![ns.to_string()];
        spec.index_selector = None;
    }
    check(&spec)?;
    Ok(Manifest {
        name,
        namespace,
        labels,
        annotations,
        spec,
    })
}

/// What the gateway would refuse, found before anything is applied.
fn check(spec: &FunctionSpec) -> Result<(), String> {
    if spec.inputs.is_empty() {
        return Err("spec.inputs: name at least one attribute (\"id\" for the row id)".into());
    }
    if spec.target_namespaces.is_empty() && spec.index_selector.is_none() {
        return Err(
            "spec.targetNamespaces: name at least one namespace (or spec.indexSelector, or --index)"
                .into(),
        );
    }
    if let Some(f) = &spec.filter
        && !f.is_array()
    {
        return Err(
            "spec.filter: the gateway takes array-form filters, e.g. [category, Eq, outdoor]"
                .into(),
        );
    }
    if spec.version.is_empty() {
        return Err("spec.version: must not be empty".into());
    }
    for (i, t) in spec.triggers.iter().enumerate() {
        if *t == Trigger::Schedule {
            return Err(format!(
                "spec.triggers[{i}]: schedule triggers are not served by the gateway (discovery, write)"
            ));
        }
    }
    if spec.worker.dispatch == Dispatch::Push && spec.worker.port.is_none() {
        return Err("spec.worker.port: push dispatch needs the worker's service port".into());
    }
    Ok(())
}

/// A Kubernetes object name usable as a namespace too (RFC 1123 label).
fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The gateway's UDF spec (`PUT /v2/udfs/{name}` body's `spec`). A push worker is reached at the
/// Service the operator names after the Function: `http://NAME.KUBE_NS.svc:PORT`.
pub fn udf_spec(m: &Manifest, kube_namespace: &str) -> Value {
    let s = &m.spec;
    let w = &s.worker;
    let mut worker = Map::new();
    worker.insert("image".into(), json!(w.image));
    worker.insert(
        "dispatch".into(),
        json!(match w.dispatch {
            Dispatch::Pull => "pull",
            Dispatch::Push => "push",
        }),
    );
    worker.insert(
        "compute_class".into(),
        json!(match w.compute_class {
            ComputeClass::Cpu => "cpu",
            ComputeClass::Gpu => "gpu",
        }),
    );
    worker.insert("batch_size".into(), json!(w.batch_size));
    worker.insert("timeout_seconds".into(), json!(w.timeout_seconds));
    if let Some(p) = w.port {
        worker.insert("port".into(), json!(p));
        if w.dispatch == Dispatch::Push {
            worker.insert(
                "url".into(),
                json!(format!("http://{}.{kube_namespace}.svc:{p}", m.name)),
            );
        }
    }
    if let Some(p) = &w.pod_spec {
        worker.insert("pod_spec".into(), p.clone());
    }
    let triggers: Vec<&str> = s
        .triggers
        .iter()
        .map(|t| match t {
            Trigger::Discovery => "discovery",
            Trigger::Write => "write",
            Trigger::Schedule => "schedule",
        })
        .collect();
    let mut spec = json!({
        "target_namespaces": s.target_namespaces,
        "inputs": s.inputs,
        "invalidates": s.invalidates,
        "version": s.version,
        "worker": worker,
        "schedule": {
            "discovery_interval_seconds": s.schedule.discovery_interval_seconds,
            "lease_seconds": s.schedule.lease_seconds,
            "max_in_flight_batches": s.schedule.max_in_flight_batches,
            "max_concurrent_scans": s.schedule.max_concurrent_scans,
        },
        "retry": {
            "max_attempts": s.retry.max_attempts,
            "initial_backoff_seconds": s.retry.initial_backoff_seconds,
            "max_backoff_seconds": s.retry.max_backoff_seconds,
        },
        "triggers": triggers,
        "paused": s.paused,
    });
    if let Some(sel) = &s.index_selector {
        spec["index_selector"] = serde_json::to_value(sel).unwrap_or(Value::Null);
    }
    if let Some(f) = &s.filter {
        spec["filter"] = f.clone();
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLE: &str = r#"
apiVersion: hevlayer.com/v1alpha1
kind: Function
metadata:
  name: tag-products
  namespace: layer
spec:
  targetNamespaces:
    - products
  inputs:
    - id
    - title
  version: v1
  filter:
    - category
    - Eq
    - outdoor
  worker:
    image: ghcr.io/hev/tag-products:latest
    dispatch: pull
    computeClass: cpu
    batchSize: 32
    timeoutSeconds: 30
  schedule:
    discoveryIntervalSeconds: 300
    leaseSeconds: 120
    maxInFlightBatches: 8
    maxConcurrentScans: 1
  retry:
    maxAttempts: 8
    initialBackoffSeconds: 5
    maxBackoffSeconds: 300
  triggers:
    - discovery
  scaling:
    pool: cpu
    mode: autoscale
    replicas:
      min: 0
      max: 6
"#;

    #[test]
    fn the_spec_example_becomes_a_udf_spec() {
        let m = parse(SPEC_EXAMPLE, None).unwrap();
        assert_eq!(m.name, "tag-products");
        assert_eq!(m.namespace.as_deref(), Some("layer"));
        let s = udf_spec(&m, "layer");
        assert_eq!(s["target_namespaces"], json!(["products"]));
        assert_eq!(s["inputs"], json!(["id", "title"]));
        assert_eq!(s["filter"], json!(["category", "Eq", "outdoor"]));
        assert_eq!(s["worker"]["batch_size"], 32);
        assert_eq!(s["worker"]["dispatch"], "pull");
        assert_eq!(s["schedule"]["discovery_interval_seconds"], 300);
        assert_eq!(s["schedule"]["max_concurrent_scans"], 1);
        assert_eq!(s["retry"]["max_attempts"], 8);
        assert_eq!(s["triggers"], json!(["discovery"]));
        assert!(s["worker"].get("url").is_none());
        let m = parse(SPEC_EXAMPLE, Some("staging")).unwrap();
        assert_eq!(udf_spec(&m, "x")["target_namespaces"], json!(["staging"]));
    }

    #[test]
    fn push_workers_get_the_service_url() {
        let text = SPEC_EXAMPLE.replace("dispatch: pull", "dispatch: push\n    port: 8000");
        let m = parse(&text, None).unwrap();
        assert_eq!(
            udf_spec(&m, "prod")["worker"]["url"],
            "http://tag-products.prod.svc:8000"
        );
        let e = parse(
            &SPEC_EXAMPLE.replace("dispatch: pull", "dispatch: push"),
            None,
        );
        assert!(e.unwrap_err().starts_with("spec.worker.port:"));
    }

    #[test]
    fn errors_name_the_field() {
        let base = "apiVersion: hevlayer.com/v1alpha1\nkind: Function\nmetadata: {name: f}\n";
        let cases = [
            ("kind: ApiKey\nmetadata: {name: f}\nspec: {}\n", "kind:"),
            ("kind: Function\nspec: {}\n", "metadata.name:"),
            (
                "kind: Function\nmetadata: {name: Bad_Name}\nspec: {}\n",
                "metadata.name:",
            ),
            ("metadata: {name: f}\n", "spec:"),
            (
                "spec: {targetNamespaces: [a], inputs: [id], worker: {}}\n",
                "spec.worker: missing field `image`",
            ),
            (
                "spec: {targetNamespaces: [a], inputs: [id], worker: {image: x, batchSize: nope}}\n",
                "spec.worker.batchSize:",
            ),
            (
                "spec: {targetNamespaces: [a], inputs: [id], worker: {image: x}, bogus: 1}\n",
                "spec.bogus: unknown field `bogus`",
            ),
            (
                "spec: {targetNamespaces: [a], worker: {image: x}}\n",
                "spec.inputs:",
            ),
            (
                "spec: {inputs: [id], worker: {image: x}}\n",
                "spec.targetNamespaces:",
            ),
            (
                "spec: {targetNamespaces: [a], inputs: [id], worker: {image: x}, filter: {a: 1}}\n",
                "spec.filter:",
            ),
            (
                "spec: {targetNamespaces: [a], inputs: [id], worker: {image: x}, triggers: [schedule]}\n",
                "spec.triggers[0]:",
            ),
            ("spec: {targetNamespaces: [a\n", "line"),
        ];
        for (text, want) in cases {
            let text = if text.starts_with("spec") {
                format!("{base}{text}")
            } else {
                text.to_string()
            };
            let e = parse(&text, None).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
