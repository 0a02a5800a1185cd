//! UDFs and inbound keys (`keys` mode): control routes need `admin`, worker routes `write`, reads
//! `read`; a key limited to some namespaces reaches only UDFs all of whose target namespaces it
//! grants, and the listing leaves the others out. The queue is the test PostgreSQL
//! (`LAYER_TEST_DATABASE_URL`).

use http::Method;
use layer_e2e::pipelines::with_db;
use layer_e2e::{Stack, configured_key, test_database};
use layer_gateway::config::{AuthMode, Scope};
use serde_json::{Value, json};

#[test]
fn udf_routes_check_scopes_and_namespace_grants() {
    let Some((url, schema)) = test_database("udf_keys") else {
        return;
    };
    let stack = Stack::start_with(|c| {
        with_db(&url, &schema)(c);
        c.vector_store.inbound_auth.mode = AuthMode::Keys;
        c.vector_store.inbound_auth.keys = vec![
            configured_key("admin", vec![Scope::Admin], &[]),
            configured_key("shop-admin", vec![Scope::Admin], &["shop-*"]),
            configured_key("shop-worker", vec![Scope::Read, Scope::Write], &["shop-*"]),
            configured_key("reader", vec![Scope::Read], &[]),
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
    for ns in ["shop-a", "other"] {
        let (s, v) = as_key(
            "admin",
            Method::POST,
            &format!("/v2/namespaces/{ns}"),
            json!({"upsert_rows": [{"id": "r1", "title": "t"}]}),
        );
        assert_eq!(s, 200, "{v}");
    }
    let spec = |ns: &str| json!({"target_namespaces": [ns], "inputs": ["id"], "worker": {}});
    let shop = json!({"id": "shop-tags", "spec": spec("shop-a")});
    let other = json!({"id": "other-tags", "spec": spec("other")});
    // Scopes: a worker key cannot create; admin keys can, within their grant.
    let (s, v) = as_key("shop-worker", Method::POST, "/v2/udfs", shop.clone());
    assert_eq!(
        (s, v["required_scope"].as_str()),
        (403, Some("admin")),
        "{v}"
    );
    assert_eq!(as_key("shop-admin", Method::POST, "/v2/udfs", shop).0, 201);
    let (s, v) = as_key("shop-admin", Method::POST, "/v2/udfs", other.clone());
    assert_eq!((s, v["namespace"].as_str()), (403, Some("other")), "{v}");
    assert_eq!(as_key("admin", Method::POST, "/v2/udfs", other).0, 201);
    // The listing shows a limited key only the UDFs of its namespaces.
    let (_, v) = as_key("shop-worker", Method::GET, "/v2/udfs", Value::Null);
    assert_eq!(v["udfs"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["udfs"][0]["id"], "shop-tags");
    // Worker routes need write, control routes admin, reads read.
    let claim = json!({"worker_id": "w"});
    assert_eq!(
        as_key(
            "shop-worker",
            Method::POST,
            "/v2/udfs/shop-tags/claim",
            claim.clone()
        )
        .0,
        200
    );
    let (s, v) = as_key(
        "reader",
        Method::POST,
        "/v2/udfs/shop-tags/claim",
        claim.clone(),
    );
    assert_eq!(
        (s, v["required_scope"].as_str()),
        (403, Some("write")),
        "{v}"
    );
    assert_eq!(
        as_key(
            "reader",
            Method::GET,
            "/v2/udfs/shop-tags/status",
            Value::Null
        )
        .0,
        200
    );
    for control in ["pause", "resume", "reset-failed", "discover"] {
        let (s, v) = as_key(
            "shop-worker",
            Method::POST,
            &format!("/v2/udfs/shop-tags/{control}"),
            Value::Null,
        );
        assert_eq!(
            (s, v["required_scope"].as_str()),
            (403, Some("admin")),
            "{control}: {v}"
        );
    }
    // A limited key cannot reach another namespace's UDF through any route.
    let (s, v) = as_key(
        "shop-worker",
        Method::POST,
        "/v2/udfs/other-tags/claim",
        claim,
    );
    assert_eq!((s, v["namespace"].as_str()), (403, Some("other")), "{v}");
    let (s, _) = as_key(
        "shop-admin",
        Method::DELETE,
        "/v2/udfs/other-tags",
        Value::Null,
    );
    assert_eq!(s, 403);
}
