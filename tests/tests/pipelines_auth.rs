//! Pipelines and inbound keys (`keys` mode): the route scopes (create and delete need `admin`,
//! worker routes `write`, reads `read`) and the namespace grant bound to each pipeline's
//! `target_namespace` (the contract's PIPE surface): a key limited to `shop-*` cannot create a
//! pipeline for another namespace, nor reach one through any of its routes, and does not see it
//! in the listing. The queue is the test PostgreSQL (`LAYER_TEST_DATABASE_URL`).

use http::Method;
use layer_e2e::pipelines::with_db;
use layer_e2e::{Stack, configured_key, test_database};
use layer_gateway::config::{AuthMode, Scope};
use serde_json::{Value, json};

#[test]
fn keys_reach_only_the_pipelines_of_their_namespaces() {
    let Some((url, schema)) = test_database("pipeline_keys") else {
        return;
    };
    let stack = Stack::start_with(|c| {
        with_db(&url, &schema)(c);
        c.vector_store.inbound_auth.mode = AuthMode::Keys;
        c.vector_store.inbound_auth.keys = vec![
            configured_key("admin", vec![Scope::Admin], &[]),
            configured_key("shop-admin", vec![Scope::Admin], &["shop-*"]),
            configured_key("shop-worker", vec![Scope::Read, Scope::Write], &["shop-*"]),
        ];
    });
    let as_key = |k: &str, m: Method, p: &str, body: Value| {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let r = stack.gw_with(m, p, &[("authorization", &format!("Bearer {k}"))], body);
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        (r.status.as_u16(), v)
    };
    // Scopes: a worker key cannot create; admin keys can, within their grant.
    let shop = json!({"id": "shop-docs", "target_namespace": "shop-vectors"});
    let other = json!({"id": "other-docs", "target_namespace": "other-vectors"});
    let (s, v) = as_key("shop-worker", Method::POST, "/v2/pipelines", shop.clone());
    assert_eq!(
        (s, v["required_scope"].as_str()),
        (403, Some("admin")),
        "{v}"
    );
    assert_eq!(
        as_key("shop-admin", Method::POST, "/v2/pipelines", shop).0,
        201
    );
    let (s, v) = as_key("shop-admin", Method::POST, "/v2/pipelines", other.clone());
    assert_eq!(
        (s, v["namespace"].as_str()),
        (403, Some("other-vectors")),
        "{v}"
    );
    assert_eq!(as_key("admin", Method::POST, "/v2/pipelines", other).0, 201);

    // The listing shows a limited key only its namespaces' pipelines.
    let ids = |k: &str| -> Vec<String> {
        let (_, v) = as_key(k, Method::GET, "/v2/pipelines", Value::Null);
        v["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids("shop-worker"), ["shop-docs"]);
    assert_eq!(ids("admin"), ["other-docs", "shop-docs"]);

    // Every route of a pipeline outside the grant is 403, and nothing is written.
    let chunks = json!({"chunks": [{"id": "c"}]});
    let vectors = json!({"vectors": [{"id": "c", "vector": [1.0]}]});
    for (m, path, body) in [
        (
            Method::PUT,
            "/v2/pipelines/other-docs/documents/d",
            chunks.clone(),
        ),
        (
            Method::GET,
            "/v2/pipelines/other-docs/documents/d/chunks",
            Value::Null,
        ),
        (
            Method::PUT,
            "/v2/pipelines/other-docs/documents/d/vectors",
            vectors.clone(),
        ),
        (
            Method::POST,
            "/v2/pipelines/other-docs/claim",
            json!({"worker_id": "w"}),
        ),
        (
            Method::POST,
            "/v2/pipelines/other-docs/documents/heartbeat",
            json!({"document_ids": ["d"], "worker_id": "w"}),
        ),
        (
            Method::POST,
            "/v2/pipelines/other-docs/documents/stage",
            json!({"document_ids": ["d"], "stage": "pending", "create_missing": true}),
        ),
        (Method::GET, "/v2/pipelines/other-docs/status", Value::Null),
    ] {
        let (s, v) = as_key("shop-worker", m.clone(), path, body);
        assert_eq!(
            (s, v["error"].as_str()),
            (403, Some("namespace not in key grant")),
            "{m} {path}: {v}"
        );
    }
    let (s, _) = as_key(
        "shop-admin",
        Method::DELETE,
        "/v2/pipelines/other-docs",
        Value::Null,
    );
    assert_eq!(s, 403);
    let (_, st) = as_key(
        "admin",
        Method::GET,
        "/v2/pipelines/other-docs/status",
        Value::Null,
    );
    assert_eq!(
        st["counts"],
        json!({}),
        "nothing was staged through the refused calls"
    );

    // Within the grant the worker key does its job.
    let (s, v) = as_key(
        "shop-worker",
        Method::PUT,
        "/v2/pipelines/shop-docs/documents/d",
        chunks,
    );
    assert_eq!(s, 200, "{v}");
    let (_, c) = as_key(
        "shop-worker",
        Method::POST,
        "/v2/pipelines/shop-docs/claim",
        json!({"worker_id": "w"}),
    );
    assert_eq!(c["documents"], json!(["d"]));
    let (s, v) = as_key(
        "shop-worker",
        Method::PUT,
        "/v2/pipelines/shop-docs/documents/d/vectors",
        vectors,
    );
    assert_eq!((s, v["status"].as_str()), (200, Some("indexed")), "{v}");
}
