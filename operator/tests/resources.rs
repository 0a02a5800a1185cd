//! The ApiKey, VectorStore, Index and Warehouse reconcilers and the Lease election against the
//! scripted API server and a fake gateway/store: minting into a Secret, adopting an existing
//! token, `EntitlementTargetMissing`, the store probe's three outcomes, Index validation,
//! Warehouse checks and consumers, and acquire/renew/take-over/follow of the Lease.

mod support;

use std::sync::Arc;

use crds::k8s::{ApiKey, Index, VectorStore, Warehouse};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use support::*;

const NS_PATH: &str = "/apis/hevlayer.com/v1alpha1/namespaces/layer";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/layer/events";
const SECRETS: &str = "/api/v1/namespaces/layer/secrets";

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// An API server for `obj` at `obj_path`, with `stores`, `warehouses` and `secrets`
/// (name → data) and ApiKeys `keys` in namespace `layer`.
fn cluster(
    obj: Value,
    obj_path: String,
    stores: Vec<Value>,
    warehouses: Vec<Value>,
    secrets: Vec<(&'static str, Value)>,
    keys: Vec<Value>,
) -> impl Fn(&Seen) -> Reply {
    move |s: &Seen| {
        let p = s.path.as_str();
        match s.method.as_str() {
            "GET" if p == format!("{NS_PATH}/vectorstores") => list("VectorStore", stores.clone()),
            "GET" if p == format!("{NS_PATH}/warehouses") => list("Warehouse", warehouses.clone()),
            "GET" if p == format!("{NS_PATH}/pipelines") => list("Pipeline", vec![]),
            "GET" if p == format!("{NS_PATH}/apikeys") => list("ApiKey", keys.clone()),
            "GET" if p.ends_with("/namespaces/layer/indexes") => list("Index", vec![obj.clone()]),
            "GET" if p.starts_with(SECRETS) => {
                let name = p.rsplit('/').next().unwrap();
                match secrets.iter().find(|(n, _)| *n == name) {
                    Some((n, data)) => (
                        200,
                        json!({"apiVersion": "v1", "kind": "Secret",
                               "metadata": {"name": n, "namespace": "layer"}, "data": data}),
                    ),
                    None => not_found(),
                }
            }
            "PATCH" if p == format!("{obj_path}/status") => {
                let mut o = obj.clone();
                o["status"] = s.body["status"].clone();
                (200, o)
            }
            "PATCH" if p == obj_path => (200, obj.clone()),
            "PATCH" => (200, s.body.clone()),
            "POST" if p == EVENTS => (201, s.body.clone()),
            _ => not_found(),
        }
    }
}

fn apikey() -> ApiKey {
    let mut k: ApiKey = stored("apikey.yaml");
    k.status = None;
    k.metadata.finalizers = Some(vec!["hevlayer.com/apikey-cleanup".into()]);
    k
}

fn key_record() -> Value {
    json!({"keyId": "0a1b2c3d", "name": "cohort-reader", "phase": "Active",
           "lookupHash": "sha256:abcd", "createdAt": "2026-06-10T00:00:00Z",
           "expiresAt": "2027-06-10T00:00:00Z", "expiresAfter": "365d", "entitlements": {}})
}

#[tokio::test]
async fn an_apikey_is_minted_into_a_secret_and_its_status_mirrors_the_record() {
    let k = apikey();
    let path = format!("{NS_PATH}/apikeys/cohort-reader");
    let store: VectorStore = fixture("vectorstore.yaml");
    let mut store = serde_json::to_value(store).unwrap();
    store["metadata"]["name"] = json!("prod-turbopuffer");
    let (client, api) = api_server(cluster(
        serde_json::to_value(&k).unwrap(),
        path.clone(),
        vec![store],
        vec![],
        vec![],
        vec![],
    ));
    let (url, gw) = fake_http(|s| match (s.method.as_str(), s.path.as_str()) {
        ("POST", "/v2/keys") => {
            let mut r = key_record();
            r["token"] = json!("hvl_secret_token");
            (201, r)
        }
        _ => (404, json!({})),
    })
    .await;
    layer_operator::apikey::reconcile_apikey(Arc::new(k), context(client, &url))
        .await
        .unwrap();
    let mint = one(&gw, "POST", "/v2/keys");
    assert_eq!(mint.authorization, "Bearer admin-token");
    assert_eq!(mint.body["name"], "cohort-reader");
    assert_eq!(mint.body["owner"], "acme");
    assert_eq!(mint.body["expiresAfter"], "365d");
    assert_eq!(
        mint.body["entitlements"]["warehouse.prod-snowflake"]["claims"],
        json!(["notes:cohort:*:read"])
    );
    // The token goes to the Secret (SSA, owned by the ApiKey), never to status.
    let secret = one(&api, "PATCH", &format!("{SECRETS}/apikey-cohort-reader"));
    assert_eq!(
        secret.query.get("fieldManager").map(String::as_str),
        Some("layer-operator")
    );
    assert_eq!(secret.body["data"]["token"], b64("hvl_secret_token"));
    assert_eq!(
        secret.body["metadata"]["ownerReferences"][0]["kind"],
        "ApiKey"
    );
    let st = one(&api, "PATCH", &format!("{path}/status"));
    let status = &st.body["status"];
    assert!(!st.body.to_string().contains("hvl_secret_token"));
    assert_eq!(status["keyId"], "0a1b2c3d");
    assert_eq!(status["lookupHash"], "sha256:abcd");
    assert_eq!(status["phase"], "Active");
    assert_eq!(status["expiresAt"], "2027-06-10T00:00:00Z");
    assert_eq!(status["secretRef"]["name"], "apikey-cohort-reader");
    assert_eq!(status["observedGeneration"], 1);
    let conds = status["conditions"].as_array().unwrap();
    let missing = conds
        .iter()
        .find(|c| c["type"] == "EntitlementTargetMissing")
        .unwrap();
    assert_eq!(missing["status"], "True");
    assert!(
        missing["message"]
            .as_str()
            .unwrap()
            .contains("warehouse.prod-snowflake")
    );
    assert_eq!(one(&api, "POST", EVENTS).body["reason"], "Active");
}

#[tokio::test]
async fn an_apikey_adopts_the_token_its_secret_already_holds() {
    let k = apikey();
    let path = format!("{NS_PATH}/apikeys/cohort-reader");
    let (client, api) = api_server(cluster(
        serde_json::to_value(&k).unwrap(),
        path.clone(),
        vec![],
        vec![],
        vec![(
            "apikey-cohort-reader",
            json!({"token": b64("hvl_existing")}),
        )],
        vec![],
    ));
    let (url, gw) = fake_http(|s| match (s.method.as_str(), s.path.as_str()) {
        ("POST", "/v2/keys/authenticate") if s.body["token"] == "hvl_existing" => (
            200,
            json!({"keyId": "0a1b2c3d", "name": "cohort-reader", "entitlements": {}}),
        ),
        ("GET", "/v2/keys/0a1b2c3d") => (200, key_record()),
        _ => (500, json!({"error": "unexpected"})),
    })
    .await;
    layer_operator::apikey::reconcile_apikey(Arc::new(k), context(client, &url))
        .await
        .unwrap();
    assert_eq!(count(&gw, "POST", "/v2/keys"), 0, "no second key is minted");
    assert_eq!(
        one(&gw, "POST", "/v2/keys/authenticate").authorization,
        "",
        "unauthenticated"
    );
    assert_eq!(
        count(&api, "PATCH", &format!("{SECRETS}/apikey-cohort-reader")),
        0
    );
    let st = one(&api, "PATCH", &format!("{path}/status"));
    assert_eq!(st.body["status"]["keyId"], "0a1b2c3d");
    let missing = st.body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "EntitlementTargetMissing")
        .unwrap()
        .clone();
    assert_eq!(missing["status"], "True", "neither target exists here");
}

#[tokio::test]
async fn deleting_an_apikey_deletes_the_gateway_key() {
    let mut k = apikey();
    k.status = Some(crds::k8s::ApiKeyStatus {
        key_id: Some("0a1b2c3d".into()),
        ..Default::default()
    });
    k.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Timestamp::now(),
    ));
    let path = format!("{NS_PATH}/apikeys/cohort-reader");
    let (client, api) = api_server(cluster(
        serde_json::to_value(&k).unwrap(),
        path.clone(),
        vec![],
        vec![],
        vec![],
        vec![],
    ));
    let (url, gw) = fake_http(|_| (200, json!({"status": "deleted"}))).await;
    layer_operator::apikey::reconcile_apikey(Arc::new(k), context(client, &url))
        .await
        .unwrap();
    assert_eq!(
        requests(&gw).iter().map(Seen::line).collect::<Vec<_>>(),
        ["DELETE /v2/keys/0a1b2c3d"]
    );
    assert!(
        one(&api, "PATCH", &path)
            .body
            .as_array()
            .unwrap()
            .iter()
            .any(|op| op["op"] == "remove")
    );
}

async fn probe_store(secret_value: &str, endpoint: Option<String>) -> Value {
    let (store_url, _) = fake_http(|s| {
        if s.path == "/v1/namespaces" && s.authorization == "Bearer tpuf-key" {
            (200, json!({"namespaces": []}))
        } else {
            (401, json!({"error": "unauthorized"}))
        }
    })
    .await;
    let mut vs: VectorStore = stored("vectorstore.yaml");
    vs.spec.endpoint.as_mut().unwrap().url = endpoint.unwrap_or(store_url);
    let path = format!("{NS_PATH}/vectorstores/turbopuffer-default");
    let (client, api) = api_server(cluster(
        serde_json::to_value(&vs).unwrap(),
        path.clone(),
        vec![],
        vec![],
        vec![("layer", json!({"turbopuffer-api-key": b64(secret_value)}))],
        vec![],
    ));
    layer_operator::stores::reconcile_store(Arc::new(vs), context(client, "http://unused"))
        .await
        .unwrap();
    one(&api, "PATCH", &format!("{path}/status")).body["status"].clone()
}

fn cond<'a>(status: &'a Value, t: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == t)
        .unwrap()
}

#[tokio::test]
async fn a_vectorstore_probe_reports_ready_credential_invalid_or_unreachable() {
    let ok = probe_store("tpuf-key", None).await;
    assert_eq!(ok["reachable"], true);
    assert_eq!(cond(&ok, "Ready")["status"], "True");
    let bad = probe_store("wrong", None).await;
    assert_eq!(cond(&bad, "Ready")["status"], "False");
    assert_eq!(cond(&bad, "CredentialInvalid")["status"], "True");
    // A port nothing listens on (bound, then released).
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let down = probe_store("tpuf-key", Some(dead)).await;
    assert_eq!(down["reachable"], false);
    assert_eq!(cond(&down, "Unreachable")["status"], "True");
    assert_eq!(cond(&down, "Ready")["reason"], "Unreachable");
}

#[tokio::test]
async fn an_index_naming_an_unknown_store_gets_a_condition_and_a_good_one_resolves() {
    let idx: Index = stored("index.yaml");
    let path = "/apis/hevlayer.com/v1/namespaces/layer/indexes/products".to_string();
    let mut store: VectorStore = fixture("vectorstore.yaml");
    store.status = Some(crds::k8s::VectorStoreStatus {
        conditions: vec![layer_operator::conditions::condition(
            "Ready", true, "Probed", "",
        )],
        ..Default::default()
    });
    let store = serde_json::to_value(store).unwrap();
    for (stores, want) in [(vec![], "StoreNotFound"), (vec![store], "Resolved")] {
        let (client, api) = api_server(cluster(
            serde_json::to_value(&idx).unwrap(),
            path.clone(),
            stores,
            vec![],
            vec![],
            vec![],
        ));
        layer_operator::stores::reconcile_index(
            Arc::new(idx.clone()),
            context(client, "http://unused"),
        )
        .await
        .unwrap();
        let st = one(&api, "PATCH", &format!("{path}/status")).body["status"].clone();
        assert_eq!(cond(&st, "Ready")["reason"], want);
        if want == "Resolved" {
            assert_eq!(st["store"], "turbopuffer-default");
            assert_eq!(st["namespace"], "products");
        }
    }
}

/// A probe that answers `outcome` and counts its calls.
struct FakeProbe(
    layer_operator::probe::ProbeOutcome,
    Arc<std::sync::atomic::AtomicUsize>,
);

impl layer_operator::probe::WarehouseProbe for FakeProbe {
    fn probe<'a>(
        &'a self,
        _: &'a Warehouse,
        secret: &'a k8s_openapi::api::core::v1::Secret,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = layer_operator::probe::ProbeOutcome> + Send + 'a>,
    > {
        assert!(
            secret
                .data
                .as_ref()
                .unwrap()
                .contains_key("private-key.pem")
        );
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move { self.0.clone() })
    }
}

fn warehouse() -> Warehouse {
    let mut w: Warehouse = stored("warehouse.yaml");
    w.metadata.finalizers = Some(vec!["hevlayer.com/warehouse-consumers".into()]);
    w
}

/// Reconciles `w` with a Secret `snowflake-rsa` at resourceVersion `secret_version` (none when
/// `None`), one ApiKey entitled to it, and a probe answering `outcome`: (API log, probe calls).
async fn reconcile_warehouse(
    w: Warehouse,
    secret_version: Option<&'static str>,
    outcome: layer_operator::probe::ProbeOutcome,
) -> (
    Log,
    usize,
    Result<kube::runtime::controller::Action, layer_operator::Error>,
) {
    let path = format!("{NS_PATH}/warehouses/prod-snowflake");
    let mut k: ApiKey = fixture("apikey.yaml");
    k.status = None;
    let keys = vec![serde_json::to_value(&k).unwrap()];
    let wv = serde_json::to_value(&w).unwrap();
    let inner = cluster(wv, path, vec![], vec![], vec![], keys);
    let (client, api) = api_server(move |s: &Seen| {
        if s.method == "GET" && s.path == format!("{SECRETS}/snowflake-rsa") {
            return match secret_version {
                Some(v) => (
                    200,
                    json!({"apiVersion": "v1", "kind": "Secret",
                           "metadata": {"name": "snowflake-rsa", "namespace": "layer", "resourceVersion": v},
                           "data": {"private-key.pem": b64("-----BEGIN PRIVATE KEY-----")}}),
                ),
                None => not_found(),
            };
        }
        inner(s)
    });
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut ctx = bare_context(client, "http://unused");
    ctx.warehouse_probe = Arc::new(FakeProbe(outcome, calls.clone()));
    let r = layer_operator::warehouse::reconcile_warehouse(Arc::new(w), Arc::new(ctx)).await;
    (api, calls.load(std::sync::atomic::Ordering::SeqCst), r)
}

#[tokio::test]
async fn a_warehouse_without_its_secret_fails_with_an_event_and_counts_consumers() {
    use layer_operator::probe::ProbeOutcome;
    let (api, calls, r) = reconcile_warehouse(warehouse(), None, ProbeOutcome::Verified).await;
    r.unwrap();
    assert_eq!(calls, 0, "no probe without a credential");
    let path = format!("{NS_PATH}/warehouses/prod-snowflake");
    let st = one(&api, "PATCH", &format!("{path}/status")).body["status"].clone();
    assert_eq!(st["phase"], "Failed");
    assert!(
        st["failureReason"]
            .as_str()
            .unwrap()
            .contains("snowflake-rsa")
    );
    assert_eq!(st["consumers"]["apiKeys"], 1);
    assert_eq!(st["consumers"]["pipelines"], 0);
    let ev = one(&api, "POST", EVENTS);
    assert_eq!(
        (ev.body["type"].as_str(), ev.body["reason"].as_str()),
        (Some("Warning"), Some("Failed"))
    );
}

#[tokio::test]
async fn a_warehouse_is_verified_by_the_probe_and_reverified_when_its_secret_changes() {
    use layer_operator::probe::ProbeOutcome;
    let path = format!("{NS_PATH}/warehouses/prod-snowflake");
    let (api, calls, r) =
        reconcile_warehouse(warehouse(), Some("10"), ProbeOutcome::Verified).await;
    r.unwrap();
    assert_eq!(calls, 1);
    let st = one(&api, "PATCH", &format!("{path}/status")).body["status"].clone();
    assert_eq!(st["phase"], "Verified");
    assert!(st["verifiedAt"].is_string());
    assert_eq!(one(&api, "POST", EVENTS).body["reason"], "Verified");
    let note = one(&api, "PATCH", &path);
    assert_eq!(note.content_type, "application/merge-patch+json");
    assert_eq!(
        note.body["metadata"]["annotations"]["hevlayer.com/verified-secret-version"],
        "10"
    );

    // Verified just now with this Secret version: nothing is probed or written.
    let mut w = warehouse();
    w.status = Some(serde_json::from_value(st.clone()).unwrap());
    w.metadata.annotations = Some(
        [(
            "hevlayer.com/verified-secret-version".to_string(),
            "10".to_string(),
        )]
        .into(),
    );
    let (api2, calls, r) = reconcile_warehouse(w.clone(), Some("10"), ProbeOutcome::Verified).await;
    r.unwrap();
    assert_eq!(calls, 0);
    assert_eq!(count(&api2, "PATCH", &format!("{path}/status")), 0);
    // The Secret's content changed: probed again; a failure is loud.
    let (api3, calls, r) = reconcile_warehouse(
        w,
        Some("11"),
        ProbeOutcome::Failed("JWT token is invalid".into()),
    )
    .await;
    r.unwrap();
    assert_eq!(calls, 1);
    let st = one(&api3, "PATCH", &format!("{path}/status")).body["status"].clone();
    assert_eq!(st["phase"], "Failed");
    assert_eq!(st["failureReason"], "JWT token is invalid");
    assert_eq!(one(&api3, "POST", EVENTS).body["type"], "Warning");
}

#[tokio::test]
async fn without_a_driver_a_warehouse_stays_pending() {
    let (api, _, r) = reconcile_warehouse(
        warehouse(),
        Some("10"),
        layer_operator::probe::ProbeOutcome::Unavailable("no driver".into()),
    )
    .await;
    r.unwrap();
    let st = one(
        &api,
        "PATCH",
        &format!("{NS_PATH}/warehouses/prod-snowflake/status"),
    )
    .body["status"]
        .clone();
    assert_eq!(st["phase"], "Pending");
    assert_eq!(cond(&st, "Ready")["reason"], "ProbeUnavailable");
}

#[tokio::test]
async fn deleting_a_warehouse_with_consumers_is_blocked_unless_forced() {
    use layer_operator::probe::ProbeOutcome;
    let mut w = warehouse();
    w.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Timestamp::now(),
    ));
    let (api, _, r) = reconcile_warehouse(w.clone(), Some("10"), ProbeOutcome::Verified).await;
    assert!(r.unwrap_err().to_string().contains("1 API keys"));
    assert_eq!(one(&api, "POST", EVENTS).body["reason"], "DeletionBlocked");
    assert_eq!(
        count(
            &api,
            "PATCH",
            &format!("{NS_PATH}/warehouses/prod-snowflake")
        ),
        0
    );
    w.metadata.annotations =
        Some([("hevlayer.com/force-delete".to_string(), "true".to_string())].into());
    let (api, _, r) = reconcile_warehouse(w, Some("10"), ProbeOutcome::Verified).await;
    r.unwrap();
    let fin = one(
        &api,
        "PATCH",
        &format!("{NS_PATH}/warehouses/prod-snowflake"),
    );
    assert!(
        fin.body
            .as_array()
            .unwrap()
            .iter()
            .any(|op| op["op"] == "remove")
    );
}

fn lease(holder: &str, renewed_ago: i64) -> Value {
    serde_json::to_value(Lease {
        metadata: kube::api::ObjectMeta {
            name: Some("layer-operator".into()),
            namespace: Some("layer".into()),
            resource_version: Some("7".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(
                Timestamp::now() - SignedDuration::from_secs(renewed_ago),
            )),
            lease_transitions: Some(2),
            ..Default::default()
        }),
    })
    .unwrap()
}

async fn elect(current: Option<Value>, write_status: u16) -> (bool, Log) {
    const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/layer/leases";
    let (client, log) = api_server(move |s| match (s.method.as_str(), s.path.as_str()) {
        ("GET", p) if p == format!("{LEASE}/layer-operator") => match &current {
            Some(l) => (200, l.clone()),
            None => not_found(),
        },
        ("POST", LEASE) | ("PUT", _) if write_status == 200 => (200, s.body.clone()),
        _ => (
            409,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "reason": "Conflict", "code": 409, "message": "conflict"}),
        ),
    });
    let e = layer_operator::leader::Elector::new(client, "layer", "layer-operator", "me", 15);
    (e.step().await.unwrap(), log)
}

#[tokio::test]
async fn the_lease_is_acquired_renewed_taken_over_and_followed() {
    let (leads, log) = elect(None, 200).await;
    assert!(leads);
    let created = one(
        &log,
        "POST",
        "/apis/coordination.k8s.io/v1/namespaces/layer/leases",
    );
    assert_eq!(created.body["spec"]["holderIdentity"], "me");
    assert_eq!(created.body["spec"]["leaseDurationSeconds"], 15);

    let (leads, log) = elect(Some(lease("other", 3)), 200).await;
    assert!(!leads);
    assert_eq!(requests(&log).len(), 1, "a follower only reads");

    let (leads, log) = elect(Some(lease("other", 60)), 200).await;
    assert!(leads);
    let put = one(
        &log,
        "PUT",
        "/apis/coordination.k8s.io/v1/namespaces/layer/leases/layer-operator",
    );
    assert_eq!(put.body["spec"]["holderIdentity"], "me");
    assert_eq!(put.body["spec"]["leaseTransitions"], 3);
    assert_eq!(
        put.body["metadata"]["resourceVersion"], "7",
        "optimistic concurrency"
    );

    let (leads, _) = elect(Some(lease("me", 3)), 200).await;
    assert!(leads, "renewed");
    // Lost the race for an expired Lease.
    let (leads, _) = elect(Some(lease("other", 60)), 409).await;
    assert!(!leads);
}

#[tokio::test]
async fn infrarules_status_is_applied_on_the_cluster_scoped_subresource() {
    let infra: crds::k8s::InfraRules = stored("infrarules.yaml");
    let path = "/apis/hevlayer.com/v1alpha1/infrarules/default".to_string();
    let obj = serde_json::to_value(&infra).unwrap();
    let (client, api) = api_server(cluster(obj, path.clone(), vec![], vec![], vec![], vec![]));
    layer_operator::infra::reconcile_infra(Arc::new(infra), context(client, "http://unused"))
        .await
        .unwrap();
    let st = one(&api, "PATCH", &format!("{path}/status"));
    assert_eq!(
        st.query.get("fieldManager").map(String::as_str),
        Some("layer-operator")
    );
    assert_eq!(
        st.body["status"]["pools"],
        json!(["cpu", "cpu-large", "gpu"])
    );
    assert_eq!(st.body["status"]["observedGeneration"], 1);
    assert_eq!(cond(&st.body["status"], "Ready")["status"], "True");
}

#[tokio::test]
async fn a_discovery_sweep_pages_through_the_gateway_creates_and_collects_indexes() {
    let (url, gw) = fake_http(|s| match s.query.get("cursor").map(String::as_str) {
        None => (
            200,
            json!({"namespaces": [{"id": "products"}, {"id": "orders"}], "next_cursor": "p2"}),
        ),
        Some("p2") => (
            200,
            json!({"namespaces": [{"id": "shop-reviews"}], "next_cursor": null}),
        ),
        _ => (400, json!({"error": "bad cursor"})),
    })
    .await;
    let products: Index = fixture("index.yaml");
    let gone = layer_operator::discovery::discovered_index("dropped", "layer").unwrap();
    let listed = vec![
        serde_json::to_value(&products).unwrap(),
        serde_json::to_value(&gone).unwrap(),
    ];
    const INDEXES: &str = "/apis/hevlayer.com/v1/namespaces/layer/indexes";
    let (client, api) = api_server(move |s| match (s.method.as_str(), s.path.as_str()) {
        ("GET", INDEXES) => list("Index", listed.clone()),
        ("POST", INDEXES) => (201, s.body.clone()),
        ("DELETE", _) => (
            200,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
        ),
        _ => not_found(),
    });
    let mut ctx = bare_context(client, &url);
    ctx.config.pod_namespace = "layer".into();
    let plan = layer_operator::discovery::sweep(&ctx).await.unwrap();
    assert_eq!(plan.create, ["orders", "shop-reviews"]);
    assert_eq!(plan.delete, ["dropped"]);
    let pages: Vec<Seen> = requests(&gw);
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0].path, "/v1/namespaces");
    assert_eq!(
        pages[0].query.get("page_size").map(String::as_str),
        Some("1000")
    );
    assert_eq!(pages[0].authorization, "Bearer admin-token");
    let created: Vec<Value> = requests(&api)
        .into_iter()
        .filter(|s| s.method == "POST")
        .map(|s| s.body)
        .collect();
    assert_eq!(created.len(), 2);
    assert_eq!(created[0]["metadata"]["namespace"], "layer");
    assert_eq!(created[1]["spec"]["backend"]["namespace"], "shop-reviews");
    one(&api, "DELETE", &format!("{INDEXES}/dropped"));
}

#[tokio::test]
async fn a_minted_apikey_is_refreshed_not_reminted_and_a_vanished_key_is_a_condition() {
    let path = format!("{NS_PATH}/apikeys/cohort-reader");
    let mut k = apikey();
    let mut record = key_record();
    record["lastSeenAt"] = json!("2026-07-01T00:00:00Z");
    let status =
        layer_operator::apikey::status_from_record(&record, "apikey-cohort-reader", vec![]);
    k.status = Some(status);
    for (answer, want_reason) in [(Some(record.clone()), "Active"), (None, "KeyNotFound")] {
        let (client, api) = api_server(cluster(
            serde_json::to_value(&k).unwrap(),
            path.clone(),
            vec![],
            vec![],
            vec![],
            vec![],
        ));
        let (url, gw) = fake_http(
            move |s| match (s.method.as_str(), s.path.as_str(), &answer) {
                ("GET", "/v2/keys/0a1b2c3d", Some(r)) => (200, r.clone()),
                _ => (404, json!({"error": "not found"})),
            },
        )
        .await;
        layer_operator::apikey::reconcile_apikey(Arc::new(k.clone()), context(client, &url))
            .await
            .unwrap();
        assert_eq!(count(&gw, "POST", "/v2/keys"), 0, "never minted twice");
        assert_eq!(
            count(&api, "PATCH", &format!("{SECRETS}/apikey-cohort-reader")),
            0
        );
        let st = one(&api, "PATCH", &format!("{path}/status")).body["status"].clone();
        assert_eq!(cond(&st, "Ready")["reason"], want_reason);
        assert_eq!(st["keyId"], "0a1b2c3d", "the key id is kept");
        if want_reason == "Active" {
            assert_eq!(st["lastSeenAt"], "2026-07-01T00:00:00Z");
        }
    }
}
