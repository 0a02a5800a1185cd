//! The gateway's cluster watch end to end (`gateway.kubernetes`): the test plays the Kubernetes
//! API server ([`FakeApiServer`]: scripted LIST and chunked WATCH over plain HTTP) and the real
//! gateway watches it, at the watch's defaults except the API server URL, the namespace and the
//! token file (there is no pod here).
//!
//! - an `ApiKey` listed at start authenticates; its scopes hold (read yes, write 403); the REST
//!   routes see it and refuse to revoke it (409: the gateway never writes the cluster);
//! - revoking it (MODIFIED to `Revoked`) refuses its next request (401); a key ADDED through
//!   the watch authenticates and its DELETED refuses it;
//! - an `Index` ADDED through the watch is served as the file's `indexes[]` entry would be (its
//!   labels in the namespace listing, its snapshot policy), and a MODIFIED policy applies
//!   without a restart;
//! - a watch cut mid-stream reconnects and resumes (the next event arrives); a 410, as a status
//!   and as an `ERROR` event, makes the gateway list again (a change made without an event
//!   shows up); bookmarks are taken; the token file is re-read (rotation);
//! - the watch's metrics count what happened.
//!
//! Every wait polls for the condition with a generous deadline: no timing assertions.

use std::time::{Duration, Instant};

use http::Method;
use layer_e2e::kube_api::FakeApiServer;
use layer_e2e::{Stack, pause, temp_dir};
use serde_json::{Value, json};

const KEYS: &str = "/apis/hevlayer.com/v1alpha1/namespaces/layer/apikeys";
const INDEXES: &str = "/apis/hevlayer.com/v1/namespaces/layer/indexes";
const STORES: &str = "/apis/hevlayer.com/v1alpha1/namespaces/layer/vectorstores";

/// `sha256:<hex>` of a token, as the operator writes `status.lookupHash`.
fn lookup_hash(token: &str) -> String {
    layer_gateway::core::auth::lookup_hash(token)
}

fn api_key(name: &str, key_id: &str, token: &str, phase: &str, scopes: &[&str]) -> Value {
    json!({"apiVersion": "hevlayer.com/v1alpha1", "kind": "ApiKey",
        "metadata": {"name": name, "namespace": "layer", "creationTimestamp": "2026-06-10T00:00:00Z"},
        "spec": {"owner": "acme", "entitlements": {"vectorstore.default": {"scopes": scopes, "namespaces": ["products*", "orders"]}},
                 "expiresAfter": "365d"},
        "status": {"keyId": key_id, "phase": phase, "lookupHash": lookup_hash(token),
                   "createdAt": "2026-06-10T00:00:00Z", "expiresAt": "2999-01-01T00:00:00Z",
                   "secretRef": {"name": format!("apikey-{name}")}}})
}

fn index(name: &str, labels: Value, facets: &[&str]) -> Value {
    json!({"apiVersion": "hevlayer.com/v1", "kind": "Index",
        "metadata": {"name": name, "namespace": "layer"},
        "spec": {"backend": {"namespace": name}, "metadata": {"labels": labels},
                 "snapshot": {"facetFields": facets, "interval": "5m", "retention": "never"},
                 "scan": {"threads": 4}, "consistency": "eventual",
                 "embedding": {"model": "not-the-gateway's"}}})
}

/// Status of a request with `token` as bearer.
fn status(stack: &Stack, token: &str, m: Method, path: &str, body: &str) -> u16 {
    let bearer = format!("Bearer {token}");
    stack
        .gw_with(
            m,
            path,
            &[("authorization", bearer.as_str())],
            body.to_string(),
        )
        .status
        .as_u16()
}

/// A read with `token`: the namespace's metadata.
fn read(stack: &Stack, token: &str) -> u16 {
    status(
        stack,
        token,
        Method::GET,
        "/v1/namespaces/products/metadata",
        "",
    )
}

/// Polls `cond` until it holds (60 s at most; the watch reconnects after a backoff).
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        pause(Duration::from_millis(50));
    }
}

fn listing_labels(stack: &Stack, ns: &str) -> Value {
    let v = stack.gw(Method::GET, "/v2/namespaces", "").json();
    v["namespaces"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == ns).cloned())
        .map_or(Value::Null, |r| r["labels"].clone())
}

#[test]
fn the_gateway_follows_keys_and_indexes_through_the_watch() {
    let api = FakeApiServer::start();
    api.apply(
        KEYS,
        api_key("reader", "id-reader", "hvl_reader", "Active", &["read"]),
    );
    api.apply(
        STORES,
        json!({"metadata": {"name": "default"}, "spec": {"kind": "turbopuffer", "default": true}}),
    );
    let dir = temp_dir("kube-token");
    let token_file = dir.join("token");
    std::fs::write(&token_file, "sa-token-1\n").unwrap();
    let url = api.url();
    let tf = token_file.clone();
    let stack = Stack::start_with(move |c| {
        let k = &mut c.gateway.kubernetes;
        k.enabled = true;
        k.api_server = Some(url);
        k.namespace = Some("layer".into());
        k.token_file = Some(tf);
    });
    stack.write("products", json!({"upsert_rows": [{"id": 1, "text": "a"}]}));
    stack.write("orders", json!({"upsert_rows": [{"id": 1, "text": "b"}]}));

    // The listed key authenticates, within its scopes.
    eventually("the listed key authenticates", || {
        read(&stack, "hvl_reader") == 200
    });
    let write = r#"{"upsert_rows": [{"id": 2, "text": "c"}]}"#;
    assert_eq!(
        status(
            &stack,
            "hvl_reader",
            Method::POST,
            "/v2/namespaces/products",
            write
        ),
        403
    );
    let keys = stack.gw(Method::GET, "/v2/keys", "").json();
    assert_eq!(keys["keys"][0]["keyId"], "id-reader", "{keys}");
    assert_eq!(keys["keys"][0]["phase"], "Active");
    let auth = stack.gw(
        Method::POST,
        "/v2/keys/authenticate",
        json!({"token": "hvl_reader"}).to_string(),
    );
    assert_eq!(auth.status, 200);
    assert_eq!(auth.json()["keyId"], "id-reader");
    let revoke = stack.gw(Method::POST, "/v2/keys/id-reader/revoke", "");
    assert_eq!(revoke.status, 409, "{}", revoke.text());
    assert_eq!(revoke.json()["error"], "key_managed_by_kubernetes");
    // Minting over REST needs PostgreSQL, which this stack does not have.
    let mint = stack.gw(Method::POST, "/v2/keys", json!({"name": "x"}).to_string());
    assert_eq!(mint.status, 503, "{}", mint.text());

    // Revoked through the watch: the next request is refused.
    api.apply(
        KEYS,
        api_key("reader", "id-reader", "hvl_reader", "Revoked", &["read"]),
    );
    eventually("the revoked key is refused", || {
        read(&stack, "hvl_reader") == 401
    });
    let auth = stack.gw(
        Method::POST,
        "/v2/keys/authenticate",
        json!({"token": "hvl_reader"}).to_string(),
    );
    assert_eq!(auth.status, 401);

    // A key added through the watch works; deleting it stops it.
    api.apply(
        KEYS,
        api_key(
            "writer",
            "id-writer",
            "hvl_writer",
            "Active",
            &["read", "write"],
        ),
    );
    eventually("the added key authenticates", || {
        read(&stack, "hvl_writer") == 200
    });
    assert_eq!(
        status(
            &stack,
            "hvl_writer",
            Method::POST,
            "/v2/namespaces/products",
            write
        ),
        200
    );
    api.delete(KEYS, "writer");
    eventually("the deleted key is refused", || {
        read(&stack, "hvl_writer") == 401
    });

    // An Index through the watch: served as the file's entry would be.
    assert_eq!(listing_labels(&stack, "orders"), json!({}));
    api.apply(
        INDEXES,
        index("orders", json!({"app": "shop"}), &["category"]),
    );
    eventually("the index's labels are listed", || {
        listing_labels(&stack, "orders") == json!({"app": "shop"})
    });
    let policy = stack
        .gw(Method::GET, "/v2/namespaces/orders/snapshot-policy", "")
        .json();
    assert!(policy.to_string().contains("category"), "{policy}");
    // A policy change applies without a restart.
    api.apply(
        INDEXES,
        index("orders", json!({"app": "shop", "tier": "gold"}), &["brand"]),
    );
    eventually("the changed policy applies", || {
        let p = stack
            .gw(Method::GET, "/v2/namespaces/orders/snapshot-policy", "")
            .json();
        p.to_string().contains("brand") && listing_labels(&stack, "orders")["tier"] == "gold"
    });

    // A watch cut mid-stream reconnects and resumes from the last version (after a bookmark).
    api.bookmark();
    let (_, watches_before) = api.counts(KEYS);
    std::fs::write(&token_file, "sa-token-2\n").unwrap();
    api.drop_watches();
    api.apply(
        KEYS,
        api_key("late", "id-late", "hvl_late", "Active", &["read"]),
    );
    eventually("a key added after the cut authenticates", || {
        read(&stack, "hvl_late") == 200
    });
    let (lists, watches) = api.counts(KEYS);
    assert!(watches > watches_before, "the watch was not reopened");
    assert_eq!(lists, 1, "a resumable watch must not list again");
    // The rotated token is what the reconnected watch carries.
    let last = api
        .seen()
        .into_iter()
        .rev()
        .find(|r| r.target.starts_with(KEYS))
        .unwrap();
    assert_eq!(last.authorization.as_deref(), Some("Bearer sa-token-2"));

    // 410 as a status: the gateway lists again and sees a change made without an event.
    api.compact(false);
    api.set_silently(KEYS, "late", None);
    api.set_silently(
        KEYS,
        "relisted",
        Some(api_key(
            "relisted",
            "id-relisted",
            "hvl_relisted",
            "Active",
            &["read"],
        )),
    );
    api.drop_watches();
    eventually("a relist after 410 applies what it finds", || {
        read(&stack, "hvl_relisted") == 200 && read(&stack, "hvl_late") == 401
    });
    assert!(api.counts(KEYS).0 >= 2);

    // 410 as an ERROR event in the stream: the same, for the indexes.
    let (index_lists, _) = api.counts(INDEXES);
    api.compact(true);
    api.set_silently(INDEXES, "orders", None);
    api.drop_watches();
    eventually("an ERROR 410 event relists the indexes", || {
        listing_labels(&stack, "orders") == json!({})
    });
    assert!(api.counts(INDEXES).0 > index_lists);

    let m = |s: &str| stack.metric(s);
    assert!(m("layer_kubernetes_watch_events_total{kind=\"apikeys\",event=\"modified\"}") >= 1.0);
    assert!(m("layer_kubernetes_watch_events_total{kind=\"apikeys\",event=\"deleted\"}") >= 1.0);
    assert!(m("layer_kubernetes_watch_events_total{kind=\"apikeys\",event=\"bookmark\"}") >= 1.0);
    assert!(m("layer_kubernetes_watch_errors_total{kind=\"apikeys\",reason=\"gone\"}") >= 1.0);
    assert!(m("layer_kubernetes_watch_errors_total{kind=\"indexes\",reason=\"gone\"}") >= 1.0);
    assert!(m("layer_kubernetes_watch_last_sync_timestamp_seconds{kind=\"vectorstores\"}") > 0.0);
    assert_eq!(
        m("layer_kubernetes_watch_objects{kind=\"vectorstores\"}"),
        1.0
    );
    // Nothing but reads reached the API server.
    assert!(api.seen().iter().all(|r| {
        r.authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Bearer sa-token-"))
    }));
}
