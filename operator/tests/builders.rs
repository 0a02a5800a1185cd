//! The pure builders against the spec pages' examples (the fixtures of `crds/tests/fixtures`):
//! the worker Deployment's environment and scheduling, the KEDA objects, replica ceilings,
//! pool resolution, `podSpec` patches, worker auth per mode, UDF specs, ApiKey helpers, Index
//! resolution and the leader decision. No server.

use crds::k8s::{ApiKey, Function, Index, InfraRules, Pipeline, VectorStore, Warehouse};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use layer_operator::config::{Config, Settings};
use layer_operator::leader::{Decision, decide};
use layer_operator::workload::build::{
    Plan, WorkerAuth, merge_patch, plan_function, plan_pipeline, udf_spec,
};
use layer_operator::workload::worker_auth;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn fixture<T: DeserializeOwned>(name: &str) -> T {
    let path = format!(
        "{}/../crds/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

/// A fixture as if the API server had stored it (a uid, a generation).
fn stored<T: DeserializeOwned + kube::Resource>(name: &str) -> T {
    let mut obj: T = fixture(name);
    obj.meta_mut().uid = Some("0000-uid".into());
    obj.meta_mut().generation = Some(1);
    obj
}

fn settings() -> Settings {
    let mut c = Config::for_tests("http://layer-gateway.layer.svc:8080");
    c.metrics_url = "http://layer-metrics.layer.svc:8428".into();
    Settings::from_config(&c)
}

fn secret() -> WorkerAuth {
    WorkerAuth::Secret(crds::k8s::SecretKeyRef {
        name: "layer".into(),
        key: "turbopuffer-api-key".into(),
    })
}

fn env_of(d: &Deployment) -> Value {
    let c = &d.spec.template.spec.as_ref().unwrap().containers[0];
    serde_json::to_value(c.env.as_ref().unwrap()).unwrap()
}

fn env_value(d: &Deployment, name: &str) -> Option<Value> {
    env_of(d)
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
}

fn pod(plan: &Plan) -> Value {
    serde_json::to_value(plan.deployment.spec.template.spec.as_ref().unwrap()).unwrap()
}

#[test]
fn pipeline_example_gets_the_spec_env_the_cpu_pool_and_a_pending_count_scaler() {
    let p: Pipeline = stored("pipeline.yaml");
    let infra: InfraRules = fixture("infrarules.yaml");
    let plan = plan_pipeline(&p, Some(&infra), &secret(), None, &settings()).unwrap();
    let d = &plan.deployment;
    assert_eq!(d.metadata.name.as_deref(), Some("pipeline-product-images"));
    assert_eq!(d.metadata.namespace.as_deref(), Some("layer"));
    let owner = &d.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Pipeline", "product-images")
    );
    assert_eq!(owner.controller, Some(true));
    assert_eq!(
        env_value(d, "HEVLAYER_PIPELINE_ID").unwrap()["value"],
        "product-images"
    );
    assert_eq!(
        env_value(d, "HEVLAYER_TARGET_NAMESPACE").unwrap()["value"],
        "products"
    );
    assert_eq!(
        env_value(d, "HEVLAYER_BASE_URL").unwrap()["value"],
        "http://layer-gateway.layer.svc:8080"
    );
    let src: Value = serde_json::from_str(
        env_value(d, "HEVLAYER_SOURCE_REF").unwrap()["value"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(src["kind"], "sqs");
    assert_eq!(
        src["queueUrl"],
        "https://sqs.us-east-1.amazonaws.com/123456789/product-images"
    );
    assert_eq!(
        env_value(d, "LAYER_GATEWAY_API_KEY").unwrap()["valueFrom"]["secretKeyRef"],
        json!({"name": "layer", "key": "turbopuffer-api-key", "optional": false})
    );
    let pod = pod(&plan);
    assert_eq!(pod["nodeSelector"]["layer.hev.dev/node-role"], "worker-cpu");
    assert_eq!(pod["tolerations"][0]["value"], "worker-cpu");
    assert_eq!(pod["containers"][0]["resources"]["limits"]["memory"], "4Gi");
    assert_eq!(
        pod["containers"][0]["image"],
        "ghcr.io/hev/product-image-worker:latest"
    );
    // Autoscaled: KEDA owns replicas, the Deployment does not set them.
    assert_eq!(d.spec.replicas, None);
    let labels = d.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["layer.hev.dev/pipeline-id"], "product-images");
    assert_eq!(labels["layer.hev.dev/component"], "worker");
    let so = serde_json::to_value(plan.scaled_object.as_ref().unwrap()).unwrap();
    assert_eq!(so["apiVersion"], "keda.sh/v1alpha1");
    assert_eq!(so["kind"], "ScaledObject");
    assert_eq!(
        so["spec"]["scaleTargetRef"]["name"],
        "pipeline-product-images"
    );
    assert_eq!(
        (
            so["spec"]["minReplicaCount"].clone(),
            so["spec"]["maxReplicaCount"].clone()
        ),
        (json!(0), json!(8))
    );
    let t = &so["spec"]["triggers"][0];
    assert_eq!(t["type"], "metrics-api");
    assert_eq!(
        t["metadata"]["url"],
        "http://layer-gateway.layer.svc:8080/v2/pipelines/product-images/status"
    );
    assert_eq!(t["metadata"]["valueLocation"], "pending_count");
    assert_eq!(t["metadata"]["targetValue"], "64");
    assert_eq!(t["metadata"]["authMode"], "bearer");
    assert_eq!(t["authenticationRef"]["name"], "pipeline-product-images");
    let ta = serde_json::to_value(plan.trigger_auth.as_ref().unwrap()).unwrap();
    assert_eq!(ta["kind"], "TriggerAuthentication");
    assert_eq!(
        ta["spec"]["secretTargetRef"][0],
        json!({"parameter": "token", "name": "layer", "key": "turbopuffer-api-key"})
    );
    assert_eq!(plan.pool, "cpu");
}

#[test]
fn function_examples_get_udf_env_and_scale_on_layer_udf_queue_depth() {
    let f: Function = stored("function-tag-products.yaml");
    let infra: InfraRules = fixture("infrarules.yaml");
    let plan = plan_function(&f, Some(&infra), &secret(), &settings()).unwrap();
    let d = &plan.deployment;
    assert_eq!(d.metadata.name.as_deref(), Some("function-tag-products"));
    for (k, v) in [
        ("HEVLAYER_UDF_ID", "tag-products"),
        ("HEVLAYER_UDF_BATCH_SIZE", "32"),
        ("HEVLAYER_UDF_TIMEOUT_SECONDS", "30"),
        ("HEVLAYER_UDF_LEASE_SECONDS", "120"),
        ("HEVLAYER_BASE_URL", "http://layer-gateway.layer.svc:8080"),
    ] {
        assert_eq!(env_value(d, k).unwrap()["value"], v, "{k}");
    }
    assert!(env_value(d, "LAYER_GATEWAY_API_KEY").is_some());
    let so = serde_json::to_value(plan.scaled_object.as_ref().unwrap()).unwrap();
    let t = &so["spec"]["triggers"][0];
    assert_eq!(t["type"], "prometheus");
    assert_eq!(
        t["metadata"]["query"],
        "sum(layer_udf_queue_depth{udf=\"tag-products\"})"
    );
    assert_eq!(
        t["metadata"]["serverAddress"],
        "http://layer-metrics.layer.svc:8428"
    );
    assert_eq!(so["spec"]["maxReplicaCount"], 6);
    assert!(
        plan.trigger_auth.is_none(),
        "the Prometheus scaler needs no gateway credential"
    );
    assert!(plan.service.is_none(), "pull dispatch has no Service");

    // The GPU classifier: the gpu pool's selector, NVIDIA toleration and GPU request.
    let f: Function = stored("function-product-color.yaml");
    let plan = plan_function(&f, Some(&infra), &secret(), &settings()).unwrap();
    assert_eq!(plan.pool, "gpu");
    let pod = pod(&plan);
    assert_eq!(pod["nodeSelector"]["layer.hev.dev/node-role"], "worker-gpu");
    assert!(
        pod["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "nvidia.com/gpu")
    );
    assert_eq!(
        pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"],
        "1"
    );
    assert_eq!(
        env_value(&plan.deployment, "HEVLAYER_UDF_LEASE_SECONDS").unwrap()["value"],
        "300"
    );
}

#[test]
fn compute_class_picks_the_stock_pool_when_no_pool_is_named() {
    let mut f: Function = stored("function-product-color.yaml");
    f.spec.scaling.as_mut().unwrap().pool = None;
    let infra: InfraRules = fixture("infrarules.yaml");
    let plan = plan_function(&f, Some(&infra), &secret(), &settings()).unwrap();
    assert_eq!(plan.pool, "gpu");
    f.spec.worker.compute_class = crds::k8s::workload::ComputeClass::Cpu;
    let plan = plan_function(&f, Some(&infra), &secret(), &settings()).unwrap();
    assert_eq!(plan.pool, "cpu");
}

#[test]
fn replicas_above_the_pool_ceiling_unknown_pools_and_missing_infrarules_are_rejected() {
    let infra: InfraRules = fixture("infrarules.yaml");
    let mut f: Function = stored("function-product-color.yaml");
    f.spec
        .scaling
        .as_mut()
        .unwrap()
        .replicas
        .as_mut()
        .unwrap()
        .max = Some(5);
    let r = plan_function(&f, Some(&infra), &secret(), &settings()).unwrap_err();
    assert_eq!(r.reason, "ReplicasAboveCeiling");
    assert!(
        r.message.contains("maxReplicasPerWorkload 4"),
        "{}",
        r.message
    );
    f.spec
        .scaling
        .as_mut()
        .unwrap()
        .replicas
        .as_mut()
        .unwrap()
        .max = Some(4);
    assert!(plan_function(&f, Some(&infra), &secret(), &settings()).is_ok());

    f.spec.scaling.as_mut().unwrap().pool = Some("tpu".into());
    let r = plan_function(&f, Some(&infra), &secret(), &settings()).unwrap_err();
    assert_eq!(r.reason, "PoolUnknown");
    assert!(r.message.contains("cpu, cpu-large, gpu"), "{}", r.message);

    let r = plan_function(&f, None, &secret(), &settings()).unwrap_err();
    assert_eq!(r.reason, "InfraRulesMissing");
}

#[test]
fn fixed_disabled_and_paused_set_replicas_and_emit_no_scaled_object() {
    use crds::k8s::workload::ScalingMode;
    let infra: InfraRules = fixture("infrarules.yaml");
    let mut f: Function = stored("function-tag-products.yaml");
    let replicas = |f: &Function| {
        let plan = plan_function(f, Some(&infra), &secret(), &settings()).unwrap();
        (plan.deployment.spec.replicas, plan.scaled_object.is_some())
    };
    f.spec
        .scaling
        .as_mut()
        .unwrap()
        .replicas
        .as_mut()
        .unwrap()
        .min = 2;
    f.spec.scaling.as_mut().unwrap().mode = ScalingMode::Fixed;
    assert_eq!(replicas(&f), (Some(2), false));
    f.spec.scaling.as_mut().unwrap().mode = ScalingMode::Disabled;
    assert_eq!(replicas(&f), (Some(0), false));
    f.spec.scaling.as_mut().unwrap().mode = ScalingMode::Autoscale;
    assert_eq!(replicas(&f), (None, true));
    f.spec.paused = true;
    assert_eq!(replicas(&f), (Some(0), false));
}

#[test]
fn pod_spec_is_a_merge_patch_and_a_bad_one_is_rejected() {
    let infra: InfraRules = fixture("infrarules.yaml");
    let mut f: Function = stored("function-tag-products.yaml");
    f.spec.worker.pod_spec = Some(json!({
        "serviceAccountName": "tagger",
        "nodeSelector": {"layer.hev.dev/compute": null, "zone": "a"},
    }));
    let plan = plan_function(&f, Some(&infra), &secret(), &settings()).unwrap();
    let pod = pod(&plan);
    assert_eq!(pod["serviceAccountName"], "tagger");
    assert_eq!(
        pod["nodeSelector"],
        json!({"layer.hev.dev/node-role": "worker-cpu", "zone": "a"})
    );
    assert_eq!(
        pod["containers"][0]["name"], "worker",
        "containers are kept"
    );

    f.spec.worker.pod_spec = Some(json!({"containers": "not a list"}));
    let r = plan_function(&f, Some(&infra), &secret(), &settings()).unwrap_err();
    assert_eq!(r.reason, "InvalidPodSpec");

    let mut v = json!({"a": {"b": 1, "c": [1]}, "d": 1});
    merge_patch(&mut v, &json!({"a": {"b": null, "c": [2]}, "e": true}));
    assert_eq!(v, json!({"a": {"c": [2]}, "d": 1, "e": true}));
}

#[test]
fn worker_auth_follows_the_default_stores_mode() {
    let config = Config::for_tests("http://gw");
    let derive: VectorStore = fixture("vectorstore.yaml");
    assert_eq!(
        worker_auth(std::slice::from_ref(&derive), &config).unwrap(),
        WorkerAuth::Secret(crds::k8s::SecretKeyRef {
            name: "layer".into(),
            key: "turbopuffer-api-key".into()
        })
    );
    let mut keys: VectorStore = fixture("vectorstore-fragment-keys.yaml");
    let r = worker_auth(std::slice::from_ref(&keys), &config).unwrap_err();
    assert_eq!(r.reason, "WorkerCredentialMissing");
    keys.spec.inbound_auth.as_mut().unwrap().worker_secret_ref = Some(crds::k8s::SecretKeyRef {
        name: "layer".into(),
        key: "layer-inbound-worker-api-key".into(),
    });
    assert_eq!(
        worker_auth(std::slice::from_ref(&keys), &config).unwrap(),
        WorkerAuth::Secret(crds::k8s::SecretKeyRef {
            name: "layer".into(),
            key: "layer-inbound-worker-api-key".into()
        })
    );
    keys.spec.inbound_auth.as_mut().unwrap().mode = crds::k8s::store::AuthMode::Open;
    assert_eq!(
        worker_auth(std::slice::from_ref(&keys), &config).unwrap(),
        WorkerAuth::Open
    );
    // No store in the namespace: the chart's worker Secret.
    let mut c = config.clone();
    c.worker_secret_name = Some("layer".into());
    c.worker_secret_key = Some("k".into());
    assert!(matches!(worker_auth(&[], &c).unwrap(), WorkerAuth::Secret(s) if s.key == "k"));
    assert!(worker_auth(&[], &config).is_err());

    // Open mode: no LAYER_GATEWAY_API_KEY, and the status-route scaler has no authenticationRef.
    let infra: InfraRules = fixture("infrarules.yaml");
    let p: Pipeline = stored("pipeline.yaml");
    let plan = plan_pipeline(&p, Some(&infra), &WorkerAuth::Open, None, &settings()).unwrap();
    assert!(env_value(&plan.deployment, "LAYER_GATEWAY_API_KEY").is_none());
    assert!(plan.trigger_auth.is_none());
    let so = serde_json::to_value(plan.scaled_object.unwrap()).unwrap();
    assert!(so["spec"]["triggers"][0].get("authenticationRef").is_none());
}

#[test]
fn a_snowflake_source_needs_a_verified_warehouse_and_mounts_its_secret() {
    let infra: InfraRules = fixture("infrarules.yaml");
    let p: Pipeline = stored("pipeline-fragment-snowflake-source.yaml");
    let mut w: Warehouse = fixture("warehouse.yaml");
    let r = plan_pipeline(&p, Some(&infra), &secret(), None, &settings()).unwrap_err();
    assert_eq!(r.reason, "WarehouseMissing");
    let r = plan_pipeline(&p, Some(&infra), &secret(), Some(&w), &settings()).unwrap_err();
    assert_eq!(r.reason, "WarehouseNotVerified");
    w.status = Some(crds::k8s::WarehouseStatus {
        phase: Some(crds::k8s::warehouse::WarehousePhase::Verified),
        ..Default::default()
    });
    let plan = plan_pipeline(&p, Some(&infra), &secret(), Some(&w), &settings()).unwrap();
    let conn: Value = serde_json::from_str(
        env_value(&plan.deployment, "HEVLAYER_WAREHOUSE").unwrap()["value"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(conn["account"], "acme-xy12345");
    assert_eq!(conn["warehouse"], "EXTRACT_WH");
    assert!(
        !conn.to_string().contains("BEGIN"),
        "no credential material"
    );
    let pod = pod(&plan);
    assert_eq!(pod["volumes"][0]["secret"]["secretName"], "snowflake-rsa");
    assert_eq!(
        pod["containers"][0]["volumeMounts"][0]["mountPath"],
        "/var/run/hevlayer/warehouse/"
    );
}

#[test]
fn udf_spec_is_the_gateways_snake_case_shape_and_push_gets_a_service() {
    let mut f: Function = stored("function-tag-products.yaml");
    let spec = udf_spec(&f);
    assert_eq!(spec["target_namespaces"], json!(["products"]));
    assert_eq!(spec["inputs"], json!(["id", "title"]));
    assert_eq!(spec["filter"], json!(["category", "Eq", "outdoor"]));
    assert_eq!(spec["worker"]["batch_size"], 32);
    assert_eq!(spec["schedule"]["discovery_interval_seconds"], 300);
    assert_eq!(spec["schedule"]["max_concurrent_scans"], 1);
    assert_eq!(spec["retry"]["max_backoff_seconds"], 300);
    assert_eq!(spec["triggers"], json!(["discovery"]));
    assert_eq!(spec["paused"], false);

    f.spec.worker.dispatch = crds::k8s::workload::Dispatch::Push;
    f.spec.worker.port = Some(9000);
    let spec = udf_spec(&f);
    assert_eq!(
        spec["worker"]["url"],
        "http://function-tag-products.layer.svc:9000"
    );
    let infra: InfraRules = fixture("infrarules.yaml");
    let plan = plan_function(&f, Some(&infra), &secret(), &settings()).unwrap();
    let svc = serde_json::to_value(plan.service.unwrap()).unwrap();
    assert_eq!(svc["spec"]["ports"][0]["port"], 9000);
    assert_eq!(
        svc["spec"]["selector"]["hevlayer.com/worker"],
        "function-tag-products"
    );
}

#[test]
fn apikey_targets_mint_body_and_status_record() {
    use layer_operator::apikey::{mint_body, missing_targets, status_from_record};
    let k: ApiKey = fixture("apikey.yaml");
    let missing = missing_targets(&k, &["prod-turbopuffer".into()], &[]);
    assert_eq!(missing, vec!["warehouse.prod-snowflake".to_string()]);
    assert!(
        missing_targets(&k, &["prod-turbopuffer".into()], &["prod-snowflake".into()]).is_empty()
    );
    let body = mint_body(&k);
    assert_eq!(body["name"], "cohort-reader");
    assert_eq!(body["expiresAfter"], "365d");
    assert_eq!(
        body["entitlements"]["vectorstore.prod-turbopuffer"]["scopes"],
        json!(["read"])
    );
    let st = status_from_record(
        &json!({"keyId": "k1", "phase": "Active", "lookupHash": "sha256:ab", "token": "hvl_x",
                "expiresAt": "2027-06-10T00:00:00Z", "createdAt": "2026-06-10T00:00:00Z"}),
        "apikey-cohort-reader",
        vec![],
    );
    assert_eq!(st.key_id.as_deref(), Some("k1"));
    assert_eq!(st.phase, Some(crds::k8s::apikey::ApiKeyPhase::Active));
    assert_eq!(st.lookup_hash.as_deref(), Some("sha256:ab"));
    assert!(
        !serde_json::to_string(&st).unwrap().contains("hvl_x"),
        "never the token"
    );
}

#[test]
fn index_resolves_to_its_store_and_refuses_unknown_stores_and_conflicts() {
    use layer_operator::stores::resolve_index;
    let mut store: VectorStore = fixture("vectorstore.yaml");
    let idx: Index = fixture("index.yaml");
    assert_eq!(
        resolve_index(&idx, &[], &[]).unwrap_err().0,
        "StoreNotFound"
    );
    assert_eq!(
        resolve_index(&idx, std::slice::from_ref(&store), &[])
            .unwrap_err()
            .0,
        "StoreNotReady"
    );
    store.status = Some(crds::k8s::VectorStoreStatus {
        conditions: vec![layer_operator::conditions::condition(
            "Ready", true, "Probed", "",
        )],
        ..Default::default()
    });
    let stores = [store];
    assert_eq!(
        resolve_index(&idx, &stores, &[]).unwrap(),
        ("turbopuffer-default".to_string(), "products".to_string())
    );
    let mut older = idx.clone();
    older.metadata.name = Some("aaa-products".into());
    assert_eq!(
        resolve_index(&idx, &stores, &[older.clone(), idx.clone()])
            .unwrap_err()
            .0,
        "UpstreamConflict"
    );
    assert!(resolve_index(&older, &stores, &[older.clone(), idx.clone()]).is_ok());
    let mut typo = idx.clone();
    typo.spec.backend.as_mut().unwrap().store_ref = Some("nope".into());
    assert_eq!(
        resolve_index(&typo, &stores, &[]).unwrap_err().0,
        "StoreNotFound"
    );
}

#[test]
fn the_lease_is_created_renewed_taken_over_when_expired_and_otherwise_followed() {
    let now = Timestamp::now();
    let lease = |holder: &str, renewed_ago: i64| Lease {
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(now - SignedDuration::from_secs(renewed_ago))),
            ..LeaseSpec::default()
        }),
        ..Lease::default()
    };
    assert_eq!(decide(None, "me", now), Decision::Create);
    assert_eq!(decide(Some(&lease("me", 5)), "me", now), Decision::Renew);
    assert_eq!(
        decide(Some(&lease("other", 5)), "me", now),
        Decision::Follow("other".into())
    );
    assert_eq!(
        decide(Some(&lease("other", 60)), "me", now),
        Decision::TakeOver
    );
    assert_eq!(decide(Some(&lease("", 1)), "me", now), Decision::TakeOver);
}

#[test]
fn infrarules_must_be_named_default_with_unique_pools() {
    use layer_operator::infra::validate;
    let mut infra: InfraRules = fixture("infrarules.yaml");
    let st = validate(&infra);
    assert_eq!(st.pools, ["cpu", "cpu-large", "gpu"]);
    assert_eq!(st.conditions[0].reason, "Validated");
    infra
        .spec
        .compute_pools
        .push(infra.spec.compute_pools[0].clone());
    assert_eq!(validate(&infra).conditions[0].reason, "DuplicatePool");
    infra.metadata.name = Some("other".into());
    assert_eq!(validate(&infra).conditions[0].reason, "InvalidName");
}

#[test]
fn a_verified_warehouse_is_probed_again_after_verify_interval() {
    use layer_operator::warehouse::{VERIFIED_SECRET_ANNOTATION, probe_due};
    let mut w: Warehouse = fixture("warehouse.yaml");
    w.metadata.generation = Some(1);
    assert!(probe_due(&w, "10", 3600, 0), "never probed");
    w.metadata.annotations =
        Some([(VERIFIED_SECRET_ANNOTATION.to_string(), "10".to_string())].into());
    w.status = Some(crds::k8s::WarehouseStatus {
        observed_generation: Some(1),
        phase: Some(crds::k8s::warehouse::WarehousePhase::Verified),
        verified_at: Some("2026-06-10T00:00:00Z".into()),
        ..Default::default()
    });
    let verified = chrono::DateTime::parse_from_rfc3339("2026-06-10T00:00:00Z")
        .unwrap()
        .timestamp();
    assert!(!probe_due(&w, "10", 3600, verified + 3599));
    assert!(
        probe_due(&w, "10", 3600, verified + 3600),
        "verifyInterval elapsed"
    );
    assert!(
        probe_due(&w, "11", 3600, verified + 10),
        "the Secret changed"
    );
    w.metadata.generation = Some(2);
    assert!(probe_due(&w, "10", 3600, verified + 10), "the spec changed");
}

#[test]
fn discovery_creates_unclaimed_namespaces_and_gc_deletes_only_discovered_ones_gone_upstream() {
    use layer_operator::discovery::{discovered_index, plan, valid_name};
    let products: Index = fixture("index.yaml"); // claims "products"
    let mut old = discovered_index("old-ns", "layer").unwrap();
    old.metadata.name = Some("old-ns".into());
    let mut mine: Index = fixture("index.yaml");
    mine.metadata.name = Some("hand-written".into());
    mine.spec.backend.as_mut().unwrap().namespace = Some("gone-too".into());
    let upstream: Vec<String> = ["products", "orders", "Bad_Name", "orders"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let p = plan(
        &upstream,
        &[products.clone(), old.clone(), mine.clone()],
        true,
    );
    assert_eq!(p.create, ["orders"]);
    assert_eq!(
        p.delete,
        ["old-ns"],
        "a hand-written Index is never deleted"
    );
    assert!(
        plan(&upstream, &[products, old, mine], false)
            .delete
            .is_empty()
    );
    let idx = serde_json::to_value(discovered_index("orders", "layer").unwrap()).unwrap();
    assert_eq!(idx["apiVersion"], "hevlayer.com/v1");
    assert_eq!(idx["metadata"]["labels"]["hevlayer.com/discovered"], "true");
    assert_eq!(idx["spec"]["backend"]["namespace"], "orders");
    assert!(valid_name("a.b-c") && !valid_name("-a") && !valid_name("A") && !valid_name(""));
}
