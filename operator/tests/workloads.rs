//! The Pipeline and Function reconcilers against the scripted API server and a fake gateway:
//! finalizer add/remove, server-side apply of the Deployment and KEDA objects under the field
//! manager, status patches with conditions and observedGeneration, idempotence, the replica
//! ceiling and missing InfraRules as conditions, pause, and deletion.

mod support;

use std::sync::Arc;

use crds::k8s::{Function, InfraRules, Pipeline, VectorStore};
use serde_json::{Value, json};
use support::*;

const NS_PATH: &str = "/apis/hevlayer.com/v1alpha1/namespaces/layer";
const DEPLOY: &str = "/apis/apps/v1/namespaces/layer/deployments/function-tag-products";
const SO: &str = "/apis/keda.sh/v1alpha1/namespaces/layer/scaledobjects/function-tag-products";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/layer/events";

/// An API server holding `obj` (a Function or Pipeline at `obj_path`), `InfraRules/default`
/// (when given) and the spec's default VectorStore; applies echo their body.
fn cluster(obj: Value, obj_path: String, infra: Option<InfraRules>) -> impl Fn(&Seen) -> Reply {
    let store: VectorStore = fixture("vectorstore.yaml");
    let store = serde_json::to_value(store).unwrap();
    move |s: &Seen| {
        let p = s.path.as_str();
        match (s.method.as_str(), p) {
            ("GET", "/apis/hevlayer.com/v1alpha1/infrarules/default") => match &infra {
                Some(i) => (200, serde_json::to_value(i).unwrap()),
                None => not_found(),
            },
            ("GET", p) if p == format!("{NS_PATH}/vectorstores") => {
                list("VectorStore", vec![store.clone()])
            }
            ("PATCH", p) if p == format!("{obj_path}/status") => {
                let mut o = obj.clone();
                o["status"] = s.body["status"].clone();
                (200, o)
            }
            ("PATCH", p) if p == obj_path => (200, obj.clone()),
            ("PATCH", _) => (200, s.body.clone()),
            ("POST", EVENTS) => (201, s.body.clone()),
            ("DELETE", _) => (
                200,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
            ),
            _ => not_found(),
        }
    }
}

/// A gateway that accepts every UDF call.
async fn gateway() -> (String, Log) {
    fake_http(|s| match (s.method.as_str(), s.path.as_str()) {
        ("PUT", "/v2/udfs/tag-products") => (
            200,
            json!({"id": "tag-products", "spec": s.body["spec"], "paused": false,
                   "created_at": "t", "updated_at": "t"}),
        ),
        ("POST", "/v2/udfs/tag-products/discover") => (
            200,
            json!({"udf_id": "tag-products", "enqueued": 3, "namespaces": ["products"]}),
        ),
        ("DELETE", "/v2/udfs/tag-products") => (200, json!({"status": "deleted"})),
        _ => (404, json!({"error": "no route"})),
    })
    .await
}

fn function(finalized: bool) -> Function {
    let mut f: Function = stored("function-tag-products.yaml");
    if finalized {
        f.metadata.finalizers = Some(vec!["hevlayer.com/function-cleanup".into()]);
    }
    f
}

async fn reconcile_fn(f: Function, infra: Option<InfraRules>) -> (Log, Log) {
    let path = format!("{NS_PATH}/functions/tag-products");
    let (client, api_log) = api_server(cluster(serde_json::to_value(&f).unwrap(), path, infra));
    let (url, gw_log) = gateway().await;
    let ctx = context(client, &url);
    layer_operator::workload::reconcile_function(Arc::new(f), ctx)
        .await
        .unwrap();
    (api_log, gw_log)
}

#[tokio::test]
async fn a_new_function_first_gets_the_finalizer_and_nothing_else() {
    let (api, gw) = reconcile_fn(function(false), Some(fixture("infrarules.yaml"))).await;
    let all = requests(&api);
    assert_eq!(
        all.len(),
        1,
        "{:?}",
        all.iter().map(Seen::line).collect::<Vec<_>>()
    );
    let patch = &all[0];
    assert_eq!(
        patch.line(),
        format!("PATCH {NS_PATH}/functions/tag-products")
    );
    assert_eq!(patch.content_type, "application/json-patch+json");
    let ops = patch.body.as_array().unwrap();
    assert!(ops.iter().any(|op| op["op"] == "add"
        && op["path"] == "/metadata/finalizers"
        && op["value"] == json!(["hevlayer.com/function-cleanup"])));
    assert!(requests(&gw).is_empty());
}

#[tokio::test]
async fn a_function_is_applied_registered_discovered_and_its_status_written() {
    let (api, gw) = reconcile_fn(function(true), Some(fixture("infrarules.yaml"))).await;
    // The Deployment: server-side apply under the field manager, forced.
    let d = one(&api, "PATCH", DEPLOY);
    assert_eq!(d.content_type, "application/apply-patch+yaml");
    assert_eq!(
        d.query.get("fieldManager").map(String::as_str),
        Some("layer-operator")
    );
    assert_eq!(d.query.get("force").map(String::as_str), Some("true"));
    assert_eq!(d.body["kind"], "Deployment");
    assert_eq!(d.body["metadata"]["ownerReferences"][0]["kind"], "Function");
    assert_eq!(d.body["metadata"]["ownerReferences"][0]["uid"], "0000-uid");
    let env = &d.body["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "HEVLAYER_UDF_ID" && e["value"] == "tag-products")
    );
    assert_eq!(
        d.body["spec"]["template"]["spec"]["nodeSelector"]["layer.hev.dev/node-role"],
        "worker-cpu"
    );
    // The ScaledObject (autoscale).
    let so = one(&api, "PATCH", SO);
    assert_eq!(
        so.query.get("fieldManager").map(String::as_str),
        Some("layer-operator")
    );
    assert_eq!(
        so.body["spec"]["triggers"][0]["metadata"]["query"],
        "sum(layer_udf_queue_depth{udf=\"tag-products\"})"
    );
    // The gateway: registered with the admin bearer, then discovered.
    let lines: Vec<String> = requests(&gw).iter().map(Seen::line).collect();
    assert_eq!(
        lines,
        [
            "PUT /v2/udfs/tag-products",
            "POST /v2/udfs/tag-products/discover"
        ]
    );
    let put = one(&gw, "PUT", "/v2/udfs/tag-products");
    assert_eq!(put.authorization, "Bearer admin-token");
    assert_eq!(put.body["spec"]["inputs"], json!(["id", "title"]));
    assert_eq!(put.body["spec"]["paused"], false);
    // Status: SSA on the subresource with conditions and observedGeneration.
    let st = one(
        &api,
        "PATCH",
        &format!("{NS_PATH}/functions/tag-products/status"),
    );
    assert_eq!(
        st.query.get("fieldManager").map(String::as_str),
        Some("layer-operator")
    );
    let status = &st.body["status"];
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["pool"], "cpu");
    assert_eq!(status["deployment"], "function-tag-products");
    assert_eq!(status["scaledObject"], "function-tag-products");
    let conds = status["conditions"].as_array().unwrap();
    assert_eq!(conds[0]["type"], "Ready");
    assert_eq!(conds[0]["status"], "True");
    assert_eq!(conds[0]["observedGeneration"], 1);
    assert!(conds[0]["lastTransitionTime"].is_string());
    assert_eq!(conds[1]["type"], "Registered");
    assert_eq!(conds[1]["status"], "True");
    // An Event for the first Ready.
    let ev = one(&api, "POST", EVENTS);
    assert_eq!(ev.body["reason"], "Applied");
    assert_eq!(ev.body["regarding"]["name"], "tag-products");

    // Idempotence: reconciling again with the status just written writes no status, sends
    // no Event and starts no second discovery.
    let mut f = function(true);
    f.status = Some(serde_json::from_value(status.clone()).unwrap());
    let (api2, gw2) = reconcile_fn(f, Some(fixture("infrarules.yaml"))).await;
    assert_eq!(
        count(
            &api2,
            "PATCH",
            &format!("{NS_PATH}/functions/tag-products/status")
        ),
        0
    );
    assert_eq!(count(&api2, "POST", EVENTS), 0);
    assert_eq!(count(&gw2, "POST", "/v2/udfs/tag-products/discover"), 0);
    // The same Deployment is applied (each run has its own fake gateway URL).
    let without_url = |mut v: Value| {
        let env = v["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array_mut()
            .unwrap();
        env.retain(|e| e["name"] != "HEVLAYER_BASE_URL");
        v
    };
    assert_eq!(
        without_url(one(&api2, "PATCH", DEPLOY).body),
        without_url(d.body)
    );
}

#[tokio::test]
async fn replicas_above_the_pool_ceiling_are_rejected_in_status_and_not_applied() {
    let mut f = function(true);
    f.spec
        .scaling
        .as_mut()
        .unwrap()
        .replicas
        .as_mut()
        .unwrap()
        .max = Some(33);
    let (api, gw) = reconcile_fn(f, Some(fixture("infrarules.yaml"))).await;
    assert_eq!(count(&api, "PATCH", DEPLOY), 0);
    assert_eq!(count(&api, "PATCH", SO), 0);
    assert!(requests(&gw).is_empty(), "nothing is registered");
    let st = one(
        &api,
        "PATCH",
        &format!("{NS_PATH}/functions/tag-products/status"),
    );
    let c = &st.body["status"]["conditions"][0];
    assert_eq!(
        (c["type"].as_str(), c["status"].as_str()),
        (Some("Ready"), Some("False"))
    );
    assert_eq!(c["reason"], "ReplicasAboveCeiling");
    assert!(c["message"].as_str().unwrap().contains("33"));
    let ev = one(&api, "POST", EVENTS);
    assert_eq!(ev.body["type"], "Warning");
    assert_eq!(ev.body["reason"], "ReplicasAboveCeiling");
}

#[tokio::test]
async fn missing_infrarules_is_a_condition_not_an_error() {
    let (api, _) = reconcile_fn(function(true), None).await;
    assert_eq!(count(&api, "PATCH", DEPLOY), 0);
    let st = one(
        &api,
        "PATCH",
        &format!("{NS_PATH}/functions/tag-products/status"),
    );
    assert_eq!(
        st.body["status"]["conditions"][0]["reason"],
        "InfraRulesMissing"
    );
}

#[tokio::test]
async fn pausing_propagates_and_removes_the_scaled_object() {
    let mut f = function(true);
    f.spec.paused = true;
    f.status = Some(crds::k8s::WorkloadStatus {
        observed_generation: Some(1),
        scaled_object: Some("function-tag-products".into()),
        ..Default::default()
    });
    let (api, gw) = reconcile_fn(f, Some(fixture("infrarules.yaml"))).await;
    let d = one(&api, "PATCH", DEPLOY);
    assert_eq!(d.body["spec"]["replicas"], 0);
    one(&api, "DELETE", SO);
    assert_eq!(count(&api, "PATCH", SO), 0);
    assert_eq!(
        one(&gw, "PUT", "/v2/udfs/tag-products").body["spec"]["paused"],
        true
    );
    assert_eq!(count(&gw, "POST", "/v2/udfs/tag-products/discover"), 0);
    let st = one(
        &api,
        "PATCH",
        &format!("{NS_PATH}/functions/tag-products/status"),
    );
    assert!(st.body["status"].get("scaledObject").is_none());
}

#[tokio::test]
async fn deleting_a_function_deletes_its_gateway_udf_then_the_finalizer() {
    let mut f = function(true);
    f.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    let (api, gw) = reconcile_fn(f, Some(fixture("infrarules.yaml"))).await;
    assert_eq!(
        requests(&gw).iter().map(Seen::line).collect::<Vec<_>>(),
        ["DELETE /v2/udfs/tag-products"]
    );
    let fin = one(&api, "PATCH", &format!("{NS_PATH}/functions/tag-products"));
    assert!(
        fin.body
            .as_array()
            .unwrap()
            .iter()
            .any(|op| op["op"] == "remove")
    );
    assert_eq!(
        count(&api, "PATCH", DEPLOY),
        0,
        "nothing is applied while deleting"
    );
}

#[tokio::test]
async fn a_pipeline_gets_its_deployment_trigger_authentication_and_scaled_object() {
    let p: Pipeline = stored("pipeline.yaml");
    let path = format!("{NS_PATH}/pipelines/product-images");
    let (client, api) = api_server(cluster(
        serde_json::to_value(&p).unwrap(),
        path.clone(),
        Some(fixture("infrarules.yaml")),
    ));
    let (url, gw) = gateway().await;
    layer_operator::workload::reconcile_pipeline(Arc::new(p), context(client, &url))
        .await
        .unwrap();
    let d = one(
        &api,
        "PATCH",
        "/apis/apps/v1/namespaces/layer/deployments/pipeline-product-images",
    );
    let env = d.body["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    let key = env
        .iter()
        .find(|e| e["name"] == "LAYER_GATEWAY_API_KEY")
        .unwrap();
    assert_eq!(
        key["valueFrom"]["secretKeyRef"]["key"],
        "turbopuffer-api-key"
    );
    let ta = one(
        &api,
        "PATCH",
        "/apis/keda.sh/v1alpha1/namespaces/layer/triggerauthentications/pipeline-product-images",
    );
    assert_eq!(
        ta.query.get("fieldManager").map(String::as_str),
        Some("layer-operator")
    );
    let so = one(
        &api,
        "PATCH",
        "/apis/keda.sh/v1alpha1/namespaces/layer/scaledobjects/pipeline-product-images",
    );
    assert_eq!(
        so.body["spec"]["triggers"][0]["metadata"]["valueLocation"],
        "pending_count"
    );
    let st = one(&api, "PATCH", &format!("{path}/status"));
    assert_eq!(st.body["status"]["conditions"][0]["status"], "True");
    assert!(
        requests(&gw).is_empty(),
        "a Pipeline registers nothing with the gateway"
    );
    // No finalizer on Pipelines: deletion is owner-reference garbage collection.
    assert_eq!(count(&api, "PATCH", &path), 0);
}

#[tokio::test]
async fn a_gateway_refusal_is_a_condition_and_an_outage_is_a_retry() {
    let f = function(true);
    let path = format!("{NS_PATH}/functions/tag-products");
    let (client, api) = api_server(cluster(
        serde_json::to_value(&f).unwrap(),
        path.clone(),
        Some(fixture("infrarules.yaml")),
    ));
    let (url, _) = fake_http(|_| (422, json!({"error": "spec.inputs: must not be empty"}))).await;
    let ctx = context(client, &url);
    layer_operator::workload::reconcile_function(Arc::new(f.clone()), ctx)
        .await
        .unwrap();
    let st = one(&api, "PATCH", &format!("{path}/status"));
    let c = &st.body["status"]["conditions"][1];
    assert_eq!(
        (c["type"].as_str(), c["status"].as_str()),
        (Some("Registered"), Some("False"))
    );
    assert_eq!(c["reason"], "GatewayRejected");

    let (client, _) = api_server(cluster(
        serde_json::to_value(&f).unwrap(),
        path,
        Some(fixture("infrarules.yaml")),
    ));
    let (url, _) = fake_http(|_| (503, json!({"error": "down"}))).await;
    let ctx = context(client, &url);
    let err = layer_operator::workload::reconcile_function(Arc::new(f), ctx.clone())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    assert!(
        ctx.metrics
            .render()
            .contains("layer_operator_reconcile_errors_total{kind=\"Function\"} 1")
    );
}

/// The measurement (run by hand: `cargo test -p layer-operator --release --test
/// workloads -- --ignored --nocapture measure`): 1,000 Functions reconciled one after another
/// against the scripted API server and the fake gateway; prints the mean and worst reconcile
/// (create → Deployment applied → status written), the process CPU time and peak RSS. It asserts
/// only that every reconcile applied its Deployment, never a duration. Its peak RSS includes the
/// test double's log of every request body; the committed RSS figure comes from
/// `operator/examples/measure_functions.rs`, whose doubles keep nothing.
#[tokio::test]
#[ignore]
async fn measure_a_thousand_functions() {
    let infra: InfraRules = fixture("infrarules.yaml");
    let base = function(true);
    let (url, _) = gateway().await;
    let objects = serde_json::to_value(&base).unwrap();
    let (client, api) = api_server(cluster(
        objects,
        format!("{NS_PATH}/functions/tag-products"),
        Some(infra),
    ));
    let ctx = context(client, &url);
    let cpu = || {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let f: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) as f64 / 100.0
    };
    let cpu0 = cpu();
    let start = std::time::Instant::now();
    let mut worst = std::time::Duration::ZERO;
    for i in 0..1000 {
        let mut f = base.clone();
        f.metadata.uid = Some(format!("uid-{i}"));
        let t = std::time::Instant::now();
        layer_operator::workload::reconcile_function(Arc::new(f), ctx.clone())
            .await
            .unwrap();
        worst = worst.max(t.elapsed());
    }
    let total = start.elapsed();
    assert_eq!(count(&api, "PATCH", DEPLOY), 1000);
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("VmHWM: ?");
    println!(
        "1000 Function reconciles: total {:?}, mean {:?}, worst {worst:?}, CPU {:.2} s, {hwm}",
        total,
        total / 1000,
        cpu() - cpu0
    );
}

/// The controller wiring of `run::controllers`: with the scripted server listing one Function
/// (and nothing else), the Function controller's watch delivers it and the reconcile applies its
/// Deployment. (Watches end at once here, so the watcher re-lists; the wait is bounded, not
/// measured.)
#[tokio::test]
async fn the_controllers_reconcile_what_the_watch_lists() {
    let mut f = function(true);
    f.metadata.resource_version = Some("5".into());
    let obj = serde_json::to_value(&f).unwrap();
    let inner = cluster(
        obj.clone(),
        format!("{NS_PATH}/functions/tag-products"),
        Some(fixture("infrarules.yaml")),
    );
    let (client, api) = api_server(move |s: &Seen| {
        if s.method == "GET" && s.query.get("watch").map(String::as_str) == Some("true") {
            return (200, Value::Null);
        }
        // The controllers watch every namespace: their lists are cluster-wide.
        if s.method == "GET" && s.path == "/apis/hevlayer.com/v1alpha1/functions" {
            return list("Function", vec![obj.clone()]);
        }
        let (status, body) = inner(s);
        if s.method == "GET" && status == 404 && !s.path.contains("/namespaces/") {
            // Every other kind's list (and the owned Deployments) is empty.
            return list("Object", vec![]);
        }
        (status, body)
    });
    let (url, gw) = gateway().await;
    let ctx = context(client, &url);
    let task = tokio::spawn(layer_operator::run::controllers(ctx));
    // The reconcile registers the Function with the gateway after it applies the Deployment
    // (and the other objects): wait for both before stopping the controllers.
    let mut waited = 0;
    while count(&api, "PATCH", DEPLOY) == 0 || count(&gw, "PUT", "/v2/udfs/tag-products") == 0 {
        assert!(
            waited < 300,
            "no Deployment applied or no registration: {:?} {:?}",
            requests(&api).iter().map(Seen::line).collect::<Vec<_>>(),
            requests(&gw).iter().map(Seen::line).collect::<Vec<_>>()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    task.abort();
}
