//! `VectorStore`s applied live through the cluster watch (`gateway.kubernetes`): the test plays
//! the API server ([`FakeApiServer`]) and runs a second emulator as the new store's endpoint,
//! which accepts only its own keys.
//!
//! - a `VectorStore` listed at start, its credential in a `Secret`, and an `Index` whose
//!   `backend.storeRef` names it: writes and queries for that namespace reach the second
//!   emulator (its data shows them), other namespaces stay on the file's store;
//! - an `ApiKey` entitled to that store only (`vectorstore.second`) reads the routed namespace
//!   and is refused on the others (the grant follows the live routes);
//! - a MODIFIED store (its `secretRef` names another key) takes effect: a credential the second
//!   emulator refuses fails the next requests, a good one serves again;
//! - a store ADDED after start with an `Index` MODIFIED onto it routes without a restart;
//! - a DELETED store stops routing: its namespaces answer 503 `store_unavailable` while the
//!   others keep working; moving the `Index` back to the default store serves it again.
//!
//! Every wait polls with a generous deadline: no timing assertions.

use std::time::{Duration, Instant};

use http::Method;
use layer_e2e::kube_api::FakeApiServer;
use layer_e2e::{Emulator, Http, Reply, Stack, pause, temp_dir};
use serde_json::{Value, json};

const INDEXES: &str = "/apis/hevlayer.com/v1/namespaces/layer/indexes";
const STORES: &str = "/apis/hevlayer.com/v1alpha1/namespaces/layer/vectorstores";
const SECRETS: &str = "/api/v1/namespaces/layer/secrets";
const KEYS: &str = "/apis/hevlayer.com/v1alpha1/namespaces/layer/apikeys";

const SECOND_KEY: &str = "tpuf_second_1";
const SECOND_KEY_ROTATED: &str = "tpuf_second_2";

/// `data` values of a Secret are base64 (these are the three keys' encodings).
fn b64(s: &str) -> &'static str {
    match s {
        SECOND_KEY => "dHB1Zl9zZWNvbmRfMQ==",
        SECOND_KEY_ROTATED => "dHB1Zl9zZWNvbmRfMg==",
        "tpuf_not_accepted" => "dHB1Zl9ub3RfYWNjZXB0ZWQ=",
        other => panic!("no encoding for {other}"),
    }
}

fn store(name: &str, url: &str, secret_key: &str) -> Value {
    json!({"apiVersion": "hevlayer.com/v1alpha1", "kind": "VectorStore",
        "metadata": {"name": name, "namespace": "layer"},
        "spec": {"kind": "turbopuffer", "endpoint": {"url": url, "region": "local"},
                 "credential": {"secretRef": {"name": format!("{name}-credential"), "key": secret_key}}}})
}

fn index(name: &str, store_ref: Option<&str>) -> Value {
    let mut backend = json!({"namespace": name});
    if let Some(s) = store_ref {
        backend["storeRef"] = json!(s);
    }
    json!({"apiVersion": "hevlayer.com/v1", "kind": "Index",
        "metadata": {"name": name, "namespace": "layer"}, "spec": {"backend": backend}})
}

/// Polls `cond` until it holds (60 s at most).
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        pause(Duration::from_millis(50));
    }
}

fn query_body() -> String {
    json!({"rank_by": ["id", "asc"], "top_k": 100}).to_string()
}

/// A query through the gateway.
fn query(stack: &Stack, ns: &str) -> Reply {
    stack.gw(
        Method::POST,
        &format!("/v2/namespaces/{ns}/query"),
        query_body(),
    )
}

/// The ids an emulator holds for `ns` (asked directly with `key`); `None` when it has no such
/// namespace.
fn ids_at(http: &Http, emulator: &Emulator, key: &str, ns: &str) -> Option<Vec<u64>> {
    let bearer = format!("Bearer {key}");
    let r = http.send(
        Method::POST,
        &format!("{}/v2/namespaces/{ns}/query", emulator.url()),
        &[
            ("authorization", bearer.as_str()),
            ("content-type", "application/json"),
        ],
        query_body(),
    );
    if r.status == 404 {
        return None;
    }
    assert_eq!(r.status, 200, "emulator query: {}", r.text());
    let mut ids: Vec<u64> = r.json()["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|row| row["id"].as_u64())
        .collect();
    ids.sort_unstable();
    Some(ids)
}

#[test]
fn vector_stores_route_their_indexes_namespaces_live() {
    let second = Emulator::start_with_keys(&[SECOND_KEY, SECOND_KEY_ROTATED]);
    let api = FakeApiServer::start();
    api.apply(
        SECRETS,
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "second-credential", "namespace": "layer"},
            "data": {"api-key": b64(SECOND_KEY), "rotated": b64(SECOND_KEY_ROTATED),
                     "wrong": b64("tpuf_not_accepted")}}),
    );
    api.apply(STORES, store("second", &second.url(), "api-key"));
    api.apply(INDEXES, index("products", Some("second")));
    let http = Http::default();
    // The second store already holds a row the gateway never wrote: seeing it through the
    // gateway proves the route (a write would land on the default store before it).
    let seeded = http.send(
        Method::POST,
        &format!("{}/v2/namespaces/products", second.url()),
        &[
            ("authorization", &format!("Bearer {SECOND_KEY}")),
            ("content-type", "application/json"),
        ],
        json!({"upsert_rows": [{"id": 100, "text": "seeded"}]}).to_string(),
    );
    assert_eq!(seeded.status, 200, "{}", seeded.text());

    let dir = temp_dir("kube-stores");
    let token_file = dir.join("token");
    std::fs::write(&token_file, "sa-token\n").unwrap();
    let url = api.url();
    let stack = Stack::start_with(move |c| {
        let k = &mut c.gateway.kubernetes;
        k.enabled = true;
        k.api_server = Some(url);
        k.namespace = Some("layer".into());
        k.token_file = Some(token_file);
    });
    let first = &stack.emulator;
    let default_key = layer_e2e::UPSTREAM_KEY;

    eventually("products is served by the second store", || {
        let r = query(&stack, "products");
        r.status == 200 && r.text().contains("\"id\":100")
    });
    stack.write("products", json!({"upsert_rows": [{"id": 1, "text": "a"}]}));
    stack.write("orders", json!({"upsert_rows": [{"id": 2, "text": "b"}]}));
    assert_eq!(
        ids_at(&http, &second, SECOND_KEY, "products"),
        Some(vec![1, 100])
    );
    assert_eq!(ids_at(&http, first, default_key, "products"), None);
    assert_eq!(ids_at(&http, first, default_key, "orders"), Some(vec![2]));
    assert_eq!(ids_at(&http, &second, SECOND_KEY, "orders"), None);
    let r = query(&stack, "products");
    assert_eq!(r.status, 200, "{}", r.text());
    // The Secret was read by name: the gateway never listed Secrets.
    assert!(
        api.seen()
            .iter()
            .all(|s| s.target.split('?').next() != Some(SECRETS))
    );
    assert!(
        api.seen()
            .iter()
            .any(|s| s.target == format!("{SECRETS}/second-credential"))
    );

    // A key entitled to the second store only: the live route decides which namespaces it opens.
    api.apply(
        KEYS,
        json!({"metadata": {"name": "second-reader", "creationTimestamp": "2026-06-10T00:00:00Z"},
            "spec": {"entitlements": {"vectorstore.second": {"scopes": ["read"], "namespaces": ["*"]}}},
            "status": {"keyId": "id-second", "phase": "Active",
                "lookupHash": layer_gateway::core::auth::lookup_hash("hvl_second_reader"),
                "expiresAt": "2999-01-01T00:00:00Z"}}),
    );
    let with_key = |ns: &str| {
        stack
            .gw_with(
                Method::POST,
                &format!("/v2/namespaces/{ns}/query"),
                &[("authorization", "Bearer hvl_second_reader")],
                query_body(),
            )
            .status
    };
    eventually("the store's key reads its namespace", || {
        with_key("products") == 200
    });
    assert_eq!(with_key("orders"), 403);

    // MODIFIED: a credential the store refuses fails the next requests; a good one serves.
    api.apply(STORES, store("second", &second.url(), "wrong"));
    eventually("the refused credential takes effect", || {
        matches!(query(&stack, "products").status.as_u16(), 401 | 403)
    });
    assert_eq!(query(&stack, "orders").status, 200);
    api.apply(STORES, store("second", &second.url(), "rotated"));
    eventually("the rotated credential takes effect", || {
        query(&stack, "products").status == 200
    });
    stack.write("products", json!({"upsert_rows": [{"id": 3, "text": "c"}]}));
    assert_eq!(
        ids_at(&http, &second, SECOND_KEY, "products"),
        Some(vec![1, 3, 100])
    );

    // ADDED after start: a third store, and an Index MODIFIED onto it.
    let third = Emulator::start_with_keys(&["tpuf_third"]);
    api.apply(
        SECRETS,
        json!({"metadata": {"name": "third-credential"}, "stringData": {"k": "tpuf_third"}}),
    );
    api.apply(STORES, store("third", &third.url(), "k"));
    api.apply(INDEXES, index("orders", Some("third")));
    eventually("orders moves to the third store", || {
        let r = query(&stack, "orders");
        r.status == 404 || (r.status == 200 && !r.text().contains("\"id\":2"))
    });
    stack.write("orders", json!({"upsert_rows": [{"id": 4, "text": "d"}]}));
    assert_eq!(ids_at(&http, &third, "tpuf_third", "orders"), Some(vec![4]));
    assert_eq!(ids_at(&http, first, default_key, "orders"), Some(vec![2]));

    // DELETED: the store's namespaces answer 503 store_unavailable; others keep working.
    api.delete(STORES, "second");
    eventually("the deleted store stops routing", || {
        query(&stack, "products").status == 503
    });
    let r = query(&stack, "products");
    assert_eq!(r.json()["error"], "store_unavailable", "{}", r.text());
    let w = stack.gw(
        Method::POST,
        "/v2/namespaces/products",
        json!({"upsert_rows": [{"id": 5}]}).to_string(),
    );
    assert_eq!(w.status, 503, "{}", w.text());
    assert_eq!(
        ids_at(&http, &second, SECOND_KEY, "products")
            .unwrap()
            .len(),
        3
    );
    assert_eq!(query(&stack, "orders").status, 200);
    stack.write("notes", json!({"upsert_rows": [{"id": 6, "text": "e"}]}));
    assert_eq!(ids_at(&http, first, default_key, "notes"), Some(vec![6]));

    // The Index goes back to the default store: served again, from the file's store.
    api.apply(INDEXES, index("products", None));
    eventually("products is served by the default store", || {
        query(&stack, "products").status != 503
    });
    stack.write("products", json!({"upsert_rows": [{"id": 7, "text": "f"}]}));
    assert_eq!(ids_at(&http, first, default_key, "products"), Some(vec![7]));
}
