//! The CRDs generated from `crds::k8s` (needs `--features crd-tests`: the types and the validator):
//! - drift: the manifests committed under `deploy/helm/layer/crds/` are exactly what `crdgen`
//!   writes;
//! - the docs' YAML examples (`tests/fixtures/`) validate against the generated
//!   `openAPIV3Schema` of the version their `apiVersion` names, with the `jsonschema` crate, after
//!   a translation of the OpenAPI dialect (`nullable`) and with unknown fields refused (the API
//!   server would prune them silently); and deserialize into the Rust types, whose spec structs
//!   deny unknown fields, losing nothing;
//! - the schemas are structural (what the API server requires) and carry the documented
//!   defaults, enumerations, versions, scopes, status subresources and printer columns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crds::k8s::{
    self, Agent, ApiKey, Function, Index, InfraRules, Pipeline, VectorStore, Warehouse,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn crd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/helm/layer/crds")
}

fn crds_by_kind() -> BTreeMap<String, CustomResourceDefinition> {
    k8s::all()
        .into_iter()
        .map(|c| (c.spec.names.kind.clone(), c))
        .collect()
}

/// The raw `openAPIV3Schema` of `kind` at `version`, as JSON.
fn schema(kind: &str, version: &str) -> Option<Value> {
    let crd = crds_by_kind().remove(kind)?;
    let v = crd.spec.versions.into_iter().find(|v| v.name == version)?;
    let s = v.schema?.open_api_v3_schema?;
    Some(serde_json::to_value(s).unwrap())
}

#[test]
fn committed_crds_match_the_generated_ones() {
    let dir = crd_dir();
    let mut expected = Vec::new();
    for crd in k8s::all() {
        let name = k8s::file_name(&crd);
        let want = k8s::to_yaml(&crd).unwrap();
        let have = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(
            have == want,
            "deploy/helm/layer/crds/{name} differs from the types in crds/src/k8s/: run \
             `cargo run -p layer-crds --features kube --bin crdgen`"
        );
        expected.push(name);
    }
    // No stale manifest of a kind that no longer exists.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".hevlayer.com.yaml") {
            assert!(expected.contains(&name), "stale CRD file {name}");
        }
    }
    assert_eq!(expected.len(), 8, "eight kinds");
}

/// The OpenAPI v3 schema as a JSON Schema (2020-12) a validator understands: `nullable: true`
/// becomes a `null` type, and an object with `properties` refuses other keys unless it preserves
/// unknown fields (where the API server would prune a field, the test fails instead).
fn to_json_schema(node: &mut Value) {
    let Some(obj) = node.as_object_mut() else {
        return;
    };
    if obj.remove("nullable") == Some(Value::Bool(true)) {
        if let Some(Value::String(t)) = obj.get("type").cloned() {
            obj.insert("type".into(), json!([t, "null"]));
        }
        if let Some(Value::Array(e)) = obj.get_mut("enum") {
            e.push(Value::Null);
        }
    }
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if obj.contains_key("properties") && !preserve && !obj.contains_key("additionalProperties") {
        obj.insert("additionalProperties".into(), Value::Bool(false));
    }
    for key in ["properties"] {
        if let Some(Value::Object(props)) = obj.get_mut(key) {
            props.values_mut().for_each(to_json_schema);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(v) = obj.get_mut(key) {
            to_json_schema(v);
        }
    }
}

/// Validates one resource (YAML already parsed) against its CRD; the errors, if any.
fn validate(doc: &Value) -> Result<(), String> {
    let api_version = doc["apiVersion"].as_str().ok_or("no apiVersion")?;
    let kind = doc["kind"].as_str().ok_or("no kind")?;
    let (group, version) = api_version
        .split_once('/')
        .ok_or("apiVersion without a group")?;
    if group != k8s::GROUP {
        return Err(format!("group {group}"));
    }
    if doc["metadata"]["name"].as_str().is_none_or(str::is_empty) {
        return Err("metadata.name is required".into());
    }
    let mut s = schema(kind, version).ok_or(format!("{kind} is not served at {version}"))?;
    to_json_schema(&mut s);
    let validator = jsonschema::validator_for(&s).map_err(|e| e.to_string())?;
    let mut body = doc.clone();
    let obj = body.as_object_mut().unwrap();
    for k in ["apiVersion", "kind", "metadata"] {
        obj.remove(k);
    }
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Deserializes into `T` and serializes back; what comes back.
fn round_trip<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    Ok(serde_json::to_value(&typed).unwrap())
}

fn typed(doc: &Value) -> Result<Value, String> {
    match doc["kind"].as_str().unwrap_or_default() {
        "VectorStore" => round_trip::<VectorStore>(doc),
        "Index" => round_trip::<Index>(doc),
        "InfraRules" => round_trip::<InfraRules>(doc),
        "Pipeline" => round_trip::<Pipeline>(doc),
        "Function" => round_trip::<Function>(doc),
        "ApiKey" => round_trip::<ApiKey>(doc),
        "Warehouse" => round_trip::<Warehouse>(doc),
        "Agent" => round_trip::<Agent>(doc),
        other => Err(format!("unknown kind {other}")),
    }
}

/// Every value of `small` is in `big` at the same place (`big` may add defaults).
fn contained(small: &Value, big: &Value, at: &str) -> Result<(), String> {
    match (small, big) {
        (Value::Object(s), Value::Object(b)) => s.iter().try_for_each(|(k, v)| {
            let there = b.get(k).ok_or(format!("{at}.{k} was dropped"))?;
            contained(v, there, &format!("{at}.{k}"))
        }),
        (Value::Array(s), Value::Array(b)) if s.len() == b.len() => s
            .iter()
            .zip(b)
            .enumerate()
            .try_for_each(|(i, (s, b))| contained(s, b, &format!("{at}[{i}]"))),
        (Value::Number(s), Value::Number(b)) if s.as_f64() == b.as_f64() => Ok(()),
        _ if small == big => Ok(()),
        _ => Err(format!("{at}: {small} came back as {big}")),
    }
}

fn fixtures() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let doc: Value = serde_yaml_ng::from_str(&text).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), doc)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn the_docs_examples_validate_and_deserialize() {
    let fixtures = fixtures();
    let mut kinds = std::collections::BTreeSet::new();
    for (name, doc) in &fixtures {
        validate(doc).unwrap_or_else(|e| panic!("{name} does not validate: {e}"));
        let back = typed(doc).unwrap_or_else(|e| panic!("{name} does not deserialize: {e}"));
        contained(doc, &back, "").unwrap_or_else(|e| panic!("{name}: {e}"));
        kinds.insert(doc["kind"].as_str().unwrap().to_string());
    }
    assert_eq!(kinds.len(), 8, "an example of every kind: {kinds:?}");
}

/// The docs' `apiVersion`s: `Index` at `v1`, everything else at `v1alpha1`.
#[test]
fn the_examples_use_the_versions_the_docs_use() {
    for (name, doc) in fixtures() {
        let want = if doc["kind"] == "Index" {
            "hevlayer.com/v1"
        } else {
            "hevlayer.com/v1alpha1"
        };
        assert_eq!(doc["apiVersion"], want, "{name}");
    }
}

/// A changed example: `path` (JSON pointer) set to `value` (or removed when `None`).
fn with(fixture: &str, path: &str, value: Option<Value>) -> Value {
    let (_, mut doc) = fixtures().into_iter().find(|(n, _)| n == fixture).unwrap();
    let (parent, key) = path.rsplit_once('/').unwrap();
    let obj = doc.pointer_mut(parent).unwrap().as_object_mut().unwrap();
    match value {
        Some(v) => obj.insert(key.into(), v),
        None => obj.remove(key),
    };
    doc
}

#[test]
fn invalid_resources_are_refused_by_the_schema_and_the_types() {
    let cases = [
        // layer.yaml's spelling of stable reads is not an Index consistency.
        ("index.yaml", "/spec/consistency", Some(json!("stable"))),
        ("index.yaml", "/spec/backend/shardz", Some(json!(2))),
        ("index.yaml", "/spec/scan/threads", Some(json!(0))),
        ("index.yaml", "/apiVersion", Some(json!("hevlayer.com/v2"))),
        ("vectorstore.yaml", "/spec/kind", None),
        (
            "vectorstore.yaml",
            "/spec/inboundAuth/mode",
            Some(json!("anonymous")),
        ),
        (
            "function-tag-products.yaml",
            "/spec/triggers",
            Some(json!(["cron"])),
        ),
        (
            "function-tag-products.yaml",
            "/spec/worker/batchSize",
            Some(json!(0)),
        ),
        ("pipeline.yaml", "/spec/scaling/mode", Some(json!("manual"))),
        (
            "pipeline.yaml",
            "/spec/worker/computeClass",
            Some(json!("tpu")),
        ),
        (
            "apikey.yaml",
            "/spec/entitlements/layer",
            Some(json!({"scopes": ["root"]})),
        ),
        ("warehouse.yaml", "/spec/kind", Some(json!("oracle"))),
        (
            "warehouse.yaml",
            "/spec/snowflake/password",
            Some(json!("hunter2")),
        ),
        (
            "infrarules.yaml",
            "/apiVersion",
            Some(json!("hevlayer.com/v1")),
        ),
        (
            "agent.yaml",
            "/spec/retrieval/rankBy",
            Some(json!("random")),
        ),
        (
            "agent.yaml",
            "/spec/retrieval/relevanceWeight",
            Some(json!(1.5)),
        ),
    ];
    for (fixture, path, value) in cases {
        let doc = with(fixture, path, value.clone());
        assert!(
            validate(&doc).is_err(),
            "{fixture} with {path} = {value:?} validates"
        );
        // The types check names and enumerations (ranges are the schema's).
        let range_only = path.ends_with("threads")
            || path.ends_with("batchSize")
            || path.ends_with("relevanceWeight")
            || path == "/apiVersion";
        if !range_only {
            assert!(
                typed(&doc).is_err(),
                "{fixture} with {path} = {value:?} deserializes"
            );
        }
    }
}

/// The `default` of the schema node at `path` (dots between property names).
fn default_at(kind: &str, version: &str, path: &str) -> Option<Value> {
    let mut node = schema(kind, version)?;
    for seg in path.split('.') {
        node = node["properties"][seg].clone();
    }
    node.get("default").cloned()
}

fn enum_at(kind: &str, version: &str, path: &str) -> Vec<String> {
    let mut node = schema(kind, version).unwrap();
    for seg in path.split('.') {
        node = match seg {
            "[]" => node["items"].clone(),
            "*" => node["additionalProperties"].clone(),
            _ => node["properties"][seg].clone(),
        };
    }
    node["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("{kind} {path}: no enum"))
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Every default of the reference's table (`shared/reference/helm-and-crds.md`, "Enumerations
/// and defaults"), read from the generated schema.
#[test]
fn the_schemas_carry_the_documented_defaults() {
    let table: &[(&str, &str, Value)] = &[
        ("InfraRules", "spec.computePools", json!([])),
        (
            "InfraRules",
            "spec.documentCache.scaling.mode",
            json!("autoscale"),
        ),
        ("VectorStore", "spec.default", json!(false)),
        (
            "VectorStore",
            "spec.inboundAuth.mode",
            json!("deriveFromStore"),
        ),
        ("ApiKey", "spec.expiresAfter", json!("365d")),
        (
            "Warehouse",
            "spec.huggingface.endpoint",
            json!("https://huggingface.co"),
        ),
        (
            "Warehouse",
            "spec.rest.userAgent",
            json!("hevlayer/rest-source (+https://hevlayer.com/contact)"),
        ),
        (
            "Warehouse",
            "spec.rss.userAgent",
            json!("hevlayer/rss-source (+https://hevlayer.com)"),
        ),
        ("Warehouse", "spec.snowflake.pool.size", json!(5)),
        ("Warehouse", "spec.snowflake.pool.timeout", json!("30s")),
        ("Warehouse", "spec.verifyInterval", json!("1h")),
        (
            "Agent",
            "spec.budget",
            json!({"deadlineMs": 60000, "onDeadline": "bestEffort"}),
        ),
        ("Agent", "spec.budget.deadlineMs", json!(60000)),
        ("Agent", "spec.budget.onDeadline", json!("bestEffort")),
        ("Agent", "spec.indices", json!([])),
        (
            "Agent",
            "spec.output",
            json!({"provenance": false, "trace": false}),
        ),
        ("Agent", "spec.output.provenance", json!(false)),
        ("Agent", "spec.output.trace", json!(false)),
        (
            "Agent",
            "spec.retrieval",
            json!({"fanout": 8, "rankBy": "auto", "recallDepth": 50, "relevanceWeight": 0.6}),
        ),
        ("Agent", "spec.retrieval.fanout", json!(8)),
        ("Agent", "spec.retrieval.rankBy", json!("auto")),
        ("Agent", "spec.retrieval.recallDepth", json!(50)),
        ("Agent", "spec.retrieval.relevanceWeight", json!(0.6)),
        (
            "Index",
            "spec.backend.distanceMetric",
            json!("cosine_distance"),
        ),
        ("Index", "spec.blobs.referenceAttributes", json!([])),
        ("Index", "spec.cache.mode", json!("standard")),
        ("Index", "spec.consistency", json!("eventual")),
        (
            "Index",
            "spec.metadata",
            json!({"annotations": {}, "labels": {}}),
        ),
        ("Index", "spec.metadata.annotations", json!({})),
        ("Index", "spec.metadata.labels", json!({})),
        ("Index", "spec.scan.threads", json!(8)),
        ("Index", "spec.search.fullText", json!(false)),
        ("Index", "spec.snapshot.facetFields", json!([])),
        ("Index", "spec.snapshot.interval", json!("5m")),
        ("Index", "spec.snapshot.retention", json!("never")),
        ("Function", "spec.inputs", json!([])),
        ("Function", "spec.invalidates", json!([])),
        ("Function", "spec.paused", json!(false)),
        (
            "Function",
            "spec.retry",
            json!({"initialBackoffSeconds": 5, "maxAttempts": 8, "maxBackoffSeconds": 300}),
        ),
        ("Function", "spec.retry.initialBackoffSeconds", json!(5)),
        ("Function", "spec.retry.maxAttempts", json!(8)),
        ("Function", "spec.retry.maxBackoffSeconds", json!(300)),
        (
            "Function",
            "spec.schedule",
            json!({"discoveryIntervalSeconds": 60, "leaseSeconds": 120,
                   "maxConcurrentScans": 4, "maxInFlightBatches": 8}),
        ),
        ("Function", "spec.targetNamespaces", json!([])),
        ("Function", "spec.triggers", json!(["discovery"])),
        ("Function", "spec.version", json!("v1")),
    ];
    let mut checked = 0;
    for (kind, path, want) in table {
        let version = if *kind == "Index" { "v1" } else { "v1alpha1" };
        assert_eq!(
            default_at(kind, version, path).as_ref(),
            Some(want),
            "{kind} {path}"
        );
        checked += 1;
    }
    // Pipeline and Function share their worker, scaling and schedule fields.
    for kind in ["Pipeline", "Function"] {
        for (path, want) in [
            ("spec.paused", json!(false)),
            ("spec.scaling.mode", json!("autoscale")),
            ("spec.scaling.replicas.min", json!(0)),
            ("spec.schedule.discoveryIntervalSeconds", json!(60)),
            ("spec.schedule.leaseSeconds", json!(120)),
            ("spec.schedule.maxConcurrentScans", json!(4)),
            ("spec.schedule.maxInFlightBatches", json!(8)),
            ("spec.worker.batchSize", json!(32)),
            ("spec.worker.computeClass", json!("cpu")),
            ("spec.worker.dispatch", json!("pull")),
            ("spec.worker.timeoutSeconds", json!(30)),
        ] {
            assert_eq!(
                default_at(kind, "v1alpha1", path),
                Some(want),
                "{kind} {path}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 68);
}

#[test]
fn the_schemas_carry_the_documented_enumerations() {
    let table: &[(&str, &str, &[&str])] = &[
        (
            "InfraRules",
            "spec.documentCache.scaling.mode",
            &["autoscale", "fixed"],
        ),
        (
            "VectorStore",
            "spec.inboundAuth.keys.[].scopes.[]",
            &["read", "write", "admin"],
        ),
        (
            "VectorStore",
            "spec.inboundAuth.mode",
            &["deriveFromStore", "keys", "open"],
        ),
        (
            "VectorStore",
            "spec.kind",
            &["turbopuffer", "pinecone", "search"],
        ),
        (
            "ApiKey",
            "spec.entitlements.*.scopes.[]",
            &["read", "write", "admin"],
        ),
        (
            "Warehouse",
            "spec.kind",
            &[
                "snowflake",
                "huggingface",
                "rss",
                "youtube",
                "rest",
                "databricks",
                "iceberg",
            ],
        ),
        ("Warehouse", "spec.rest.auth.in", &["query", "header"]),
        ("Agent", "spec.budget.onDeadline", &["bestEffort", "error"]),
        // The reference's `openrouter`, plus Layer's `openai` and `builtin` (docs/src/crds.md).
        (
            "Agent",
            "spec.model.provider",
            &["openrouter", "openai", "builtin"],
        ),
        (
            "Agent",
            "spec.retrieval.rankBy",
            &["auto", "hybridText", "semantic"],
        ),
        ("Index", "spec.cache.mode", &["standard", "staging"]),
        ("Index", "spec.consistency", &["eventual", "strong"]),
        (
            "Pipeline",
            "spec.scaling.mode",
            &["autoscale", "fixed", "disabled"],
        ),
        ("Pipeline", "spec.worker.computeClass", &["cpu", "gpu"]),
        ("Pipeline", "spec.worker.dispatch", &["pull", "push"]),
        (
            "Function",
            "spec.scaling.mode",
            &["autoscale", "fixed", "disabled"],
        ),
        (
            "Function",
            "spec.triggers.[]",
            &["discovery", "write", "schedule"],
        ),
        ("Function", "spec.worker.computeClass", &["cpu", "gpu"]),
        ("Function", "spec.worker.dispatch", &["pull", "push"]),
        (
            "ApiKey",
            "status.phase",
            &["Pending", "Active", "Revoked", "Expired"],
        ),
        (
            "Warehouse",
            "status.phase",
            &["Pending", "Verified", "Failed"],
        ),
    ];
    for (kind, path, want) in table {
        let version = if *kind == "Index" { "v1" } else { "v1alpha1" };
        let mut have = enum_at(kind, version, path);
        let mut want = want.to_vec();
        have.sort();
        want.sort();
        assert_eq!(have, want, "{kind} {path}");
    }
}

/// Kubernetes' structural-schema rules the API server enforces at CRD creation: a `type` on
/// every node (unless it preserves unknown fields or is int-or-string), never `properties`
/// together with `additionalProperties`, no `$ref` or `anyOf`/`oneOf`/`allOf`; and every
/// `default` valid against its own node.
fn check_structural(node: &Value, at: &str, problems: &mut Vec<String>) {
    let obj = node.as_object().unwrap();
    let open = obj.contains_key("x-kubernetes-preserve-unknown-fields")
        || obj.contains_key("x-kubernetes-int-or-string");
    if !open && !obj.contains_key("type") {
        problems.push(format!("{at}: no type"));
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        problems.push(format!("{at}: properties and additionalProperties"));
    }
    for k in ["$ref", "anyOf", "oneOf", "allOf", "definitions", "$defs"] {
        if obj.contains_key(k) {
            problems.push(format!("{at}: {k}"));
        }
    }
    if let Some(d) = obj.get("default") {
        let mut s = node.clone();
        to_json_schema(&mut s);
        if !jsonschema::is_valid(&s, d) {
            problems.push(format!("{at}: default {d} does not validate"));
        }
    }
    if let Some(Value::Object(props)) = obj.get("properties") {
        for (k, v) in props {
            check_structural(v, &format!("{at}.{k}"), problems);
        }
    }
    if let Some(items) = obj.get("items") {
        check_structural(items, &format!("{at}[]"), problems);
    }
    if let Some(ap @ Value::Object(_)) = obj.get("additionalProperties") {
        check_structural(ap, &format!("{at}.*"), problems);
    }
}

#[test]
fn the_schemas_are_structural_with_valid_defaults() {
    let mut problems = Vec::new();
    for crd in k8s::all() {
        for v in &crd.spec.versions {
            let s = serde_json::to_value(v.schema.as_ref().unwrap().open_api_v3_schema.as_ref())
                .unwrap();
            check_structural(
                &s,
                &format!("{}/{}", crd.spec.names.kind, v.name),
                &mut problems,
            );
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Whether the schema has the field a printer column's `jsonPath` reads.
fn path_exists(schema: &Value, json_path: &str) -> bool {
    let mut node = schema.clone();
    for seg in json_path.trim_start_matches('.').split('.') {
        if seg.starts_with("type==") {
            continue; // inside the filter `[?(@.type=="Ready")]`
        }
        let (name, filtered) = match seg.split_once('[') {
            Some((n, _)) => (n, true),
            None => (seg.trim_end_matches(")]"), false),
        };
        let next = &node["properties"][name];
        if next.is_null() {
            return false;
        }
        node = if filtered {
            next["items"].clone()
        } else {
            next.clone()
        };
    }
    true
}

#[test]
fn versions_scopes_status_and_printer_columns() {
    for crd in k8s::all() {
        let kind = crd.spec.names.kind.clone();
        assert_eq!(crd.spec.group, "hevlayer.com");
        let scope = if kind == "InfraRules" {
            "Cluster"
        } else {
            "Namespaced"
        };
        assert_eq!(crd.spec.scope, scope, "{kind}");
        let served: Vec<(&str, bool)> = crd
            .spec
            .versions
            .iter()
            .filter(|v| v.served)
            .map(|v| (v.name.as_str(), v.storage))
            .collect();
        if kind == "Index" {
            assert_eq!(served, [("v1", true), ("v1alpha1", false)]);
        } else {
            assert_eq!(served, [("v1alpha1", true)], "{kind}");
        }
        for v in &crd.spec.versions {
            let sub = v.subresources.as_ref().expect("subresources");
            assert!(sub.status.is_some(), "{kind}: status subresource");
            let s = serde_json::to_value(v.schema.as_ref().unwrap().open_api_v3_schema.as_ref())
                .unwrap();
            let cond = &s["properties"]["status"]["properties"]["conditions"]["items"];
            for field in ["type", "status", "reason", "message", "observedGeneration"] {
                assert!(
                    cond["properties"][field].is_object(),
                    "{kind}: conditions[].{field}"
                );
            }
            let cols = v
                .additional_printer_columns
                .as_ref()
                .expect("printer columns");
            assert!(cols.len() >= 2, "{kind}");
            assert_eq!(cols.last().unwrap().name, "Age", "{kind}");
            for c in cols {
                if c.json_path.starts_with(".metadata.") {
                    continue;
                }
                assert!(
                    path_exists(&s, &c.json_path),
                    "{kind}: column {} reads {}",
                    c.name,
                    c.json_path
                );
            }
        }
    }
}

/// `Index.spec.consistency` defaults to `eventual` (Layer's stable reads) when omitted, in the
/// types as in the schema.
#[test]
fn index_consistency_defaults_to_eventual() {
    let doc = with("index.yaml", "/spec/consistency", None);
    let back = typed(&doc).unwrap();
    assert_eq!(back["spec"]["consistency"], "eventual");
    let strong = typed(&with(
        "index.yaml",
        "/spec/consistency",
        Some(json!("strong")),
    ))
    .unwrap();
    assert_eq!(strong["spec"]["consistency"], "strong");
}
