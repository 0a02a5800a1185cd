//! The `InfraRules/default` reconcile checks its `documentCache` policy against the chart's
//! Aerospike StatefulSet and ConfigMap on the scripted API server: the `DocumentCache` condition
//! for a scaled-to-zero cache, a missing one and one outside the node bounds; the operator never
//! applies the cache itself (the chart owns it); a second reconcile writes nothing; an API error
//! is an error (requeued with backoff).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crds::k8s::InfraRules;
use serde_json::{Value, json};
use support::*;

const INFRA: &str = "/apis/hevlayer.com/v1alpha1/infrarules/default";
// `Config::for_tests`: the operator's namespace is `default`, the cache is named as the chart's
// default release names it.
const STS: &str = "/apis/apps/v1/namespaces/default/statefulsets/layer-document-cache";
const CM: &str = "/api/v1/namespaces/default/configmaps/layer-document-cache";

/// The chart's StatefulSet as the API server returns it (`documentCache.replicas` → `replicas`).
fn statefulset(replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "layer-document-cache", "namespace": "default"},
        "spec": {
            "replicas": replicas, "serviceName": "layer-document-cache",
            "selector": {"matchLabels": {"app": "c"}},
            "template": {"metadata": {"labels": {"app": "c"}},
                         "spec": {"containers": [{"name": "aerospike", "image": "a"}]}}
        },
        "status": {"replicas": replicas, "readyReplicas": replicas}
    })
}

/// The chart's ConfigMap (the default values' namespace block).
fn configmap(filesize: &str) -> Value {
    let conf = format!(
        "namespace hevlayer {{\n  replication-factor 1\n  default-ttl 0\n  storage-engine device {{\n    file /opt/aerospike/data/hevlayer.dat\n    filesize {filesize}\n  }}\n}}\n"
    );
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "layer-document-cache", "namespace": "default"},
           "data": {"aerospike.conf": conf}})
}

/// An API server holding the spec's InfraRules and, when given, the cache's objects.
fn cluster(infra: Value, sts: Option<Value>, cm: Option<Value>) -> impl Fn(&Seen) -> Reply {
    move |s: &Seen| match (s.method.as_str(), s.path.as_str()) {
        ("GET", STS) => sts.clone().map_or_else(not_found, |v| (200, v)),
        ("GET", CM) => cm.clone().map_or_else(not_found, |v| (200, v)),
        ("PATCH", p) if p == format!("{INFRA}/status") => {
            let mut o = infra.clone();
            o["status"] = s.body["status"].clone();
            (200, o)
        }
        _ => not_found(),
    }
}

fn cond<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} in {status}"))
}

async fn reconcile(infra: InfraRules, sts: Option<Value>, cm: Option<Value>) -> Log {
    let obj = serde_json::to_value(&infra).unwrap();
    let (client, api) = api_server(cluster(obj, sts, cm));
    layer_operator::infra::reconcile_infra(Arc::new(infra), context(client, "http://unused"))
        .await
        .unwrap();
    api
}

#[tokio::test]
async fn a_scaled_to_zero_cache_matches_the_spec_policy_and_nothing_is_applied() {
    let api = reconcile(
        stored("infrarules.yaml"),
        Some(statefulset(0)),
        Some(configmap("64G")),
    )
    .await;
    let st = one(&api, "PATCH", &format!("{INFRA}/status"));
    let c = cond(&st.body["status"], "DocumentCache");
    assert_eq!(c["status"], "True");
    assert_eq!(c["reason"], "MatchesPolicy");
    assert_eq!(c["message"], "default/layer-document-cache scaled to zero");
    assert_eq!(c["observedGeneration"], 1);
    assert_eq!(cond(&st.body["status"], "Ready")["status"], "True");
    // Read, never written: the chart owns the StatefulSet.
    assert_eq!(
        requests(&api).iter().map(Seen::line).collect::<Vec<_>>(),
        vec![
            format!("GET {STS}"),
            format!("GET {CM}"),
            format!("PATCH {INFRA}/status")
        ]
    );
}

#[tokio::test]
async fn a_missing_or_oversized_cache_is_a_false_condition_with_its_reason() {
    let api = reconcile(stored("infrarules.yaml"), None, None).await;
    let st = one(&api, "PATCH", &format!("{INFRA}/status"));
    let c = cond(&st.body["status"], "DocumentCache");
    assert_eq!(
        (&c["status"], &c["reason"]),
        (&json!("False"), &json!("NotInstalled"))
    );
    assert_eq!(
        count(&api, "GET", CM),
        0,
        "no StatefulSet, no ConfigMap read"
    );
    // The spec's policy allows at most one node.
    let api = reconcile(
        stored("infrarules.yaml"),
        Some(statefulset(3)),
        Some(configmap("64G")),
    )
    .await;
    let st = one(&api, "PATCH", &format!("{INFRA}/status"));
    let c = cond(&st.body["status"], "DocumentCache");
    assert_eq!(c["reason"], "ReplicasOutOfBounds");
    assert!(
        c["message"].as_str().unwrap().contains("runs 3 replicas"),
        "{c}"
    );
    // capGiB 256 in the spec's example: a 300G file per node is above it.
    let api = reconcile(
        stored("infrarules.yaml"),
        Some(statefulset(1)),
        Some(configmap("300G")),
    )
    .await;
    let st = one(&api, "PATCH", &format!("{INFRA}/status"));
    assert_eq!(
        cond(&st.body["status"], "DocumentCache")["reason"],
        "CapacityExceeded"
    );
}

#[tokio::test]
async fn without_a_policy_the_cache_is_not_read_and_a_second_reconcile_writes_nothing() {
    let mut infra: InfraRules = stored("infrarules.yaml");
    infra.spec.document_cache = None;
    let api = reconcile(infra, Some(statefulset(0)), Some(configmap("64G"))).await;
    assert_eq!(count(&api, "GET", STS), 0);
    let st = one(&api, "PATCH", &format!("{INFRA}/status"));
    assert!(
        st.body["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["type"] != "DocumentCache")
    );

    // Reconcile once, then again with the status the server stored: no second PATCH.
    let first = reconcile(
        stored("infrarules.yaml"),
        Some(statefulset(0)),
        Some(configmap("64G")),
    )
    .await;
    let written = one(&first, "PATCH", &format!("{INFRA}/status")).body["status"].clone();
    let mut again: InfraRules = stored("infrarules.yaml");
    again.status = Some(serde_json::from_value(written).unwrap());
    let api = reconcile(again, Some(statefulset(0)), Some(configmap("64G"))).await;
    assert_eq!(count(&api, "PATCH", &format!("{INFRA}/status")), 0);
}

#[tokio::test]
async fn an_api_error_reading_the_cache_fails_the_reconcile() {
    let infra: InfraRules = stored("infrarules.yaml");
    let failed = Arc::new(AtomicBool::new(false));
    let f = failed.clone();
    let (client, _) = api_server(move |s: &Seen| {
        if s.path == STS {
            f.store(true, Ordering::SeqCst);
            return (
                403,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": "forbidden", "reason": "Forbidden", "code": 403}),
            );
        }
        not_found()
    });
    let r =
        layer_operator::infra::reconcile_infra(Arc::new(infra), context(client, "http://unused"))
            .await;
    assert!(failed.load(Ordering::SeqCst));
    assert!(
        r.is_err(),
        "the controller's error policy requeues it with backoff"
    );
}
