//! Minted API keys end to end, on the emulator and the test PostgreSQL (`LAYER_TEST_DATABASE_URL`),
//! at the documented defaults (`deriveFromStore`: the store credential is the bootstrap admin):
//!
//! - mint (201, the only answer with the token), list, get, authenticate, revoke (idempotent,
//!   the record kept), delete; `EntitlementTargetMissing` for a target that does not exist;
//! - a minted token within its scopes and globs on the data plane, refused outside them (403
//!   with the spec's bodies) and on the control plane without a `layer` entitlement; a claims-only
//!   key authenticates but opens nothing; a `layer: admin` key mints;
//! - revocation on one replica stops the key on another within a second; expiry; a restart keeps
//!   every key; the token is nowhere in the database or the metrics;
//! - bad input: 422 naming the field, nothing stored;
//! - two stores: an index routed to store B reaches B only, and a key entitled to A cannot reach
//!   B's namespaces.

use std::time::{Duration, Instant};

use http::Method;
use layer_e2e::pipelines::with_db;
use layer_e2e::{Emulator, Stack, UPSTREAM_KEY, base_config, pause, test_database};
use serde_json::{Value, json};

/// A call with a bearer: status and JSON body (`null` when empty).
fn call(stack_url: &str, token: &str, m: Method, path: &str, body: Value) -> (u16, Value) {
    let http = layer_e2e::Http::new(false);
    let bearer = format!("Bearer {token}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let r = http.send(m, &format!("{stack_url}{path}"), &headers, body);
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status.as_u16(), v)
}

fn mint(url: &str, token: &str, body: Value) -> Value {
    let (s, v) = call(url, token, Method::POST, "/v2/keys", body);
    assert_eq!(s, 201, "{v}");
    v
}

#[test]
fn minted_keys_lifecycle_scopes_and_revocation() {
    let Some((db, schema)) = test_database("keys_flow") else {
        return;
    };
    let mut stack = Stack::start_with(with_db(&db, &schema));
    let url = stack.gateway_url.clone();
    stack.write(
        "cohort-7",
        json!({"upsert_rows": [{"id": "a", "text": "acme"}]}),
    );
    stack.write("orders", json!({"upsert_rows": [{"id": "o", "text": "x"}]}));
    // The store credential bootstraps: it mints the first admin key.
    let admin = mint(
        &url,
        UPSTREAM_KEY,
        json!({"name": "ops", "entitlements": {"layer": {"scopes": ["admin"]}}, "expiresAfter": "never"}),
    );
    let admin_token = admin["token"].as_str().unwrap().to_string();
    assert!(admin_token.starts_with("hvl_") && admin_token.len() >= 47);
    assert_eq!(admin["phase"], "Active");
    assert!(admin.get("expiresAt").is_none());
    // A reader minted with the admin key: the docs' example.
    let reader = mint(
        &url,
        &admin_token,
        json!({"name": "cohort-reader", "owner": "acme",
               "entitlements": {"vectorstore.default": {"scopes": ["read"], "namespaces": ["cohort-*"]},
                                "warehouse.prod-snowflake": {"claims": ["notes:cohort:*:read"]}}}),
    );
    let token = reader["token"].as_str().unwrap().to_string();
    let key_id = reader["keyId"].as_str().unwrap().to_string();
    assert_eq!(reader["expiresAfter"], "365d");
    assert!(reader["expiresAt"].is_string());
    assert!(
        reader["lookupHash"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    // No such warehouse is configured: created anyway, with the condition.
    assert_eq!(
        reader["conditions"][0]["type"], "EntitlementTargetMissing",
        "{reader}"
    );
    // Within its grant: reads of cohort-*.
    let q = json!({"rank_by": ["id", "asc"], "top_k": 5});
    let (s, v) = call(
        &url,
        &token,
        Method::POST,
        "/v2/namespaces/cohort-7/query",
        q.clone(),
    );
    assert_eq!(s, 200, "{v}");
    // Outside it: 403 with the spec's bodies.
    let (s, v) = call(
        &url,
        &token,
        Method::POST,
        "/v2/namespaces/orders/query",
        q.clone(),
    );
    assert_eq!(
        (s, v["error"].as_str(), v["namespace"].as_str()),
        (403, Some("namespace not in key grant"), Some("orders")),
        "{v}"
    );
    let (s, v) = call(
        &url,
        &token,
        Method::POST,
        "/v2/namespaces/cohort-7",
        json!({"upsert_rows": [{"id": "b"}]}),
    );
    assert_eq!(
        (s, v["required_scope"].as_str()),
        (403, Some("write")),
        "{v}"
    );
    let (s, v) = call(&url, &token, Method::GET, "/v2/pipelines", Value::Null);
    assert_eq!(
        (s, v["required_scope"].as_str()),
        (403, Some("read")),
        "{v}"
    );
    let (s, v) = call(&url, &token, Method::POST, "/v2/keys", json!({"name": "x"}));
    assert_eq!(
        (s, v["required_scope"].as_str()),
        (403, Some("admin")),
        "{v}"
    );
    // The listing shows it only its namespaces.
    let (s, v) = call(&url, &token, Method::GET, "/v2/namespaces", Value::Null);
    assert_eq!(s, 200, "{v}");
    let names: Vec<&str> = v["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert_eq!(names, ["cohort-7"], "{v}");
    // authenticate: unauthenticated, the token is the credential.
    let (s, v) = call(
        &url,
        "",
        Method::POST,
        "/v2/keys/authenticate",
        json!({"token": token}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["keyId"], key_id.as_str());
    assert_eq!(v["owner"], "acme");
    assert_eq!(
        v["entitlements"]["warehouse.prod-snowflake"]["claims"][0],
        "notes:cohort:*:read"
    );
    let (s, _) = call(
        &url,
        "",
        Method::POST,
        "/v2/keys/authenticate",
        json!({"token": "hvl_nope"}),
    );
    assert_eq!(s, 401);
    // A claims-only key authenticates but opens no route.
    let claims = mint(
        &url,
        &admin_token,
        json!({"name": "ext", "entitlements": {"warehouse.w": {"claims": ["c"]}}}),
    );
    let ct = claims["token"].as_str().unwrap();
    assert_eq!(
        call(
            &url,
            "",
            Method::POST,
            "/v2/keys/authenticate",
            json!({"token": ct})
        )
        .0,
        200
    );
    assert_eq!(
        call(
            &url,
            ct,
            Method::POST,
            "/v2/namespaces/cohort-7/query",
            q.clone()
        )
        .0,
        403
    );
    // list and get never show a token.
    let (s, v) = call(&url, &admin_token, Method::GET, "/v2/keys", Value::Null);
    assert_eq!(s, 200);
    assert_eq!(v["keys"].as_array().unwrap().len(), 3);
    assert!(!v.to_string().contains(&token) && !v.to_string().contains("\"token\""));
    let (s, v) = call(
        &url,
        &admin_token,
        Method::GET,
        &format!("/v2/keys/{key_id}"),
        Value::Null,
    );
    assert_eq!((s, v["name"].as_str()), (200, Some("cohort-reader")));
    // The reader was used: lastSeenAt is recorded (batched off the request path, within a few
    // seconds; then at most once per five minutes).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, v) = call(
            &url,
            &admin_token,
            Method::GET,
            &format!("/v2/keys/{key_id}"),
            Value::Null,
        );
        if v["lastSeenAt"].is_string() {
            break;
        }
        assert!(Instant::now() < deadline, "lastSeenAt never recorded: {v}");
        pause(Duration::from_millis(100));
    }

    // A second replica on the same database: it learns the key, and its revocation through the
    // first replica within a second.
    let mut cfg = base_config(&stack.emulator.url());
    with_db(&db, &schema)(&mut cfg);
    let second = layer_gateway::start(cfg, &|_| None).unwrap();
    let url2 = format!("http://{}", second.addr);
    let deadline = Instant::now() + Duration::from_secs(5);
    while call(
        &url2,
        &token,
        Method::POST,
        "/v2/namespaces/cohort-7/query",
        q.clone(),
    )
    .0 != 200
    {
        assert!(
            Instant::now() < deadline,
            "the second replica never accepted the key"
        );
        pause(Duration::from_millis(50));
    }
    let (s, v) = call(
        &url,
        &admin_token,
        Method::POST,
        &format!("/v2/keys/{key_id}/revoke"),
        Value::Null,
    );
    assert_eq!((s, v["phase"].as_str()), (200, Some("Revoked")), "{v}");
    let revoked_at = v["revokedAt"].clone();
    assert_eq!(
        call(
            &url,
            &token,
            Method::POST,
            "/v2/namespaces/cohort-7/query",
            q.clone()
        )
        .0,
        401
    );
    let revoked = Instant::now();
    while call(
        &url2,
        &token,
        Method::POST,
        "/v2/namespaces/cohort-7/query",
        q.clone(),
    )
    .0 != 401
    {
        // A deadline for a hang, not a measurement (no timing assertions): the replica's poll
        // (every 250 ms) normally refuses it within about a quarter second.
        assert!(
            revoked.elapsed() < Duration::from_secs(10),
            "the second replica still accepts a revoked key"
        );
        pause(Duration::from_millis(20));
    }
    second.shutdown();
    // Idempotent; the record stays, listed with includeRevoked.
    let (_, v) = call(
        &url,
        &admin_token,
        Method::POST,
        &format!("/v2/keys/{key_id}/revoke"),
        Value::Null,
    );
    assert_eq!(v["revokedAt"], revoked_at);
    assert_eq!(
        call(
            &url,
            "",
            Method::POST,
            "/v2/keys/authenticate",
            json!({"token": token})
        )
        .0,
        401
    );
    let (_, v) = call(&url, &admin_token, Method::GET, "/v2/keys", Value::Null);
    assert_eq!(v["keys"].as_array().unwrap().len(), 2);
    let (_, v) = call(
        &url,
        &admin_token,
        Method::GET,
        "/v2/keys?includeRevoked=true",
        Value::Null,
    );
    assert_eq!(v["keys"].as_array().unwrap().len(), 3);

    // Expiry: a key of one second works, then is refused and listed as Expired.
    let short = mint(
        &url,
        &admin_token,
        json!({"name": "short", "entitlements": {"layer": {"scopes": ["read"]}}, "expiresAfter": "1s"}),
    );
    let st = short["token"].as_str().unwrap();
    assert_eq!(
        call(&url, st, Method::GET, "/v2/pipelines", Value::Null).0,
        200
    );
    pause(Duration::from_millis(1100));
    assert_eq!(
        call(&url, st, Method::GET, "/v2/pipelines", Value::Null).0,
        401
    );
    let (_, v) = call(
        &url,
        &admin_token,
        Method::GET,
        &format!("/v2/keys/{}", short["keyId"].as_str().unwrap()),
        Value::Null,
    );
    assert_eq!(v["phase"], "Expired");

    // Restart keeps every key (and the admin token keeps working).
    stack.restart_gateway(with_db(&db, &schema), None);
    let url = stack.gateway_url.clone();
    let deadline = Instant::now() + Duration::from_secs(5);
    while call(&url, &admin_token, Method::GET, "/v2/keys", Value::Null).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the restarted gateway never loaded the keys"
        );
        pause(Duration::from_millis(50));
    }
    // The token is nowhere: not in the metrics, not in the database.
    let metrics = stack
        .gw(Method::GET, "/metrics", bytes::Bytes::new())
        .text();
    assert!(!metrics.contains(&admin_token) && !metrics.contains(&token));
    let dump = db_dump(&db, &schema);
    assert!(
        dump.contains("cohort-reader"),
        "the dump reads the key table"
    );
    assert!(!dump.contains(&admin_token) && !dump.contains(&token) && !dump.contains(&token[4..]));
    // Delete is hard.
    let (s, v) = call(
        &url,
        &admin_token,
        Method::DELETE,
        &format!("/v2/keys/{key_id}"),
        json!({}),
    );
    assert_eq!((s, v["status"].as_str()), (200, Some("deleted")), "{v}");
    assert_eq!(
        call(
            &url,
            &admin_token,
            Method::GET,
            &format!("/v2/keys/{key_id}"),
            Value::Null
        )
        .0,
        404
    );
}

/// Every row of the key table as text.
fn db_dump(db: &str, schema: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(db, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let rows = client
            .query(&format!("SELECT t::text FROM {schema}.api_keys t"), &[])
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

#[test]
fn a_namespace_limited_admin_cannot_manage_keys() {
    let Some((db, schema)) = test_database("keys_limited_admin") else {
        return;
    };
    let stack = Stack::start_with(with_db(&db, &schema));
    let url = stack.gateway_url.clone();
    let limited = mint(
        &url,
        UPSTREAM_KEY,
        json!({"name": "only", "entitlements": {"layer": {"scopes": ["admin"], "namespaces": ["only-*"]}}}),
    );
    let lt = limited["token"].as_str().unwrap();
    // It cannot mint itself an unlimited key, nor list, revoke or delete keys.
    let (s, v) = call(
        &url,
        lt,
        Method::POST,
        "/v2/keys",
        json!({"name": "escalate", "entitlements": {"layer": {"scopes": ["admin"]}}}),
    );
    assert_eq!(
        (s, v["required_scope"].as_str()),
        (403, Some("admin")),
        "{v}"
    );
    assert_eq!(call(&url, lt, Method::GET, "/v2/keys", Value::Null).0, 403);
    let id = limited["keyId"].as_str().unwrap();
    assert_eq!(
        call(
            &url,
            lt,
            Method::POST,
            &format!("/v2/keys/{id}/revoke"),
            Value::Null
        )
        .0,
        403
    );
    // Within its namespaces it still works.
    let w = call(
        &url,
        lt,
        Method::POST,
        "/v2/namespaces/only-1",
        json!({"upsert_rows": [{"id": 1}]}),
    );
    assert_eq!(w.0, 200, "{}", w.1);
    assert_eq!(
        call(
            &url,
            lt,
            Method::POST,
            "/v2/namespaces/other",
            json!({"upsert_rows": [{"id": 1}]})
        )
        .0,
        403
    );
}

#[test]
fn bad_mints_name_the_field_and_store_nothing() {
    let Some((db, schema)) = test_database("keys_bad") else {
        return;
    };
    let stack = Stack::start_with(with_db(&db, &schema));
    let url = stack.gateway_url.clone();
    let field = |body: Value| {
        let (s, v) = call(&url, UPSTREAM_KEY, Method::POST, "/v2/keys", body);
        assert_eq!(
            (s, v["error"].as_str()),
            (422, Some("validation_error")),
            "{v}"
        );
        v["field"].as_str().unwrap().to_string()
    };
    assert_eq!(
        field(json!({"name": "a", "entitlements": {"store.x": {}}})),
        "entitlements.store.x"
    );
    assert_eq!(
        field(
            json!({"name": "a", "entitlements": {"vectorstore.default": {"namespaces": ["a[b"]}}})
        ),
        "entitlements.vectorstore.default.namespaces"
    );
    assert_eq!(
        field(json!({"name": "a", "expiresAfter": "soon"})),
        "expiresAfter"
    );
    assert_eq!(
        field(json!({"name": "a", "entitlements": {"layer": {"scopes": ["root"]}}})),
        "entitlements.layer.scopes"
    );
    assert_eq!(field(json!({"entitlements": {}})), "name");
    let (_, v) = call(
        &url,
        UPSTREAM_KEY,
        Method::GET,
        "/v2/keys?includeRevoked=true",
        Value::Null,
    );
    assert_eq!(v["keys"], json!([]));
    // A duplicate name is 409; unknown ids 404.
    mint(&url, UPSTREAM_KEY, json!({"name": "dup"}));
    let (s, v) = call(
        &url,
        UPSTREAM_KEY,
        Method::POST,
        "/v2/keys",
        json!({"name": "dup"}),
    );
    assert_eq!(
        (s, v["error"].as_str()),
        (409, Some("already_exists")),
        "{v}"
    );
    assert_eq!(
        call(
            &url,
            UPSTREAM_KEY,
            Method::POST,
            "/v2/keys/nope/revoke",
            Value::Null
        )
        .0,
        404
    );
}

#[test]
fn two_stores_route_namespaces_and_keys() {
    let Some((db, schema)) = test_database("keys_stores") else {
        return;
    };
    let b = Emulator::start();
    let b_url = b.url();
    let stack = Stack::start_with(|c| {
        with_db(&db, &schema)(c);
        c.vector_store.name = "a".into();
        let mut store_b = c.vector_store.clone();
        store_b.name = "b".into();
        store_b.endpoint.url = b_url.clone();
        c.vector_stores = vec![store_b];
        c.indexes = vec![index_on("orders", "b")];
    });
    let url = stack.gateway_url.clone();
    // Writes to `orders` land in store B only; `shop` stays on A.
    let w = |ns: &str| {
        call(
            &url,
            UPSTREAM_KEY,
            Method::POST,
            &format!("/v2/namespaces/{ns}"),
            json!({"upsert_rows": [{"id": "r1", "text": "t"}]}),
        )
    };
    assert_eq!(w("orders").0, 200);
    assert_eq!(w("shop").0, 200);
    let http = layer_e2e::Http::new(false);
    let bearer = format!("Bearer {UPSTREAM_KEY}");
    let q = json!({"rank_by": ["id", "asc"], "top_k": 5}).to_string();
    let direct = |base: &str, ns: &str| {
        http.send(
            Method::POST,
            &format!("{base}/v2/namespaces/{ns}/query"),
            &[("authorization", bearer.as_str())],
            q.clone(),
        )
        .status
        .as_u16()
    };
    assert_eq!(direct(&b_url, "orders"), 200, "orders is on B");
    assert_eq!(
        direct(&stack.emulator.url(), "orders"),
        404,
        "orders is not on A"
    );
    assert_eq!(direct(&stack.emulator.url(), "shop"), 200);
    assert_eq!(direct(&b_url, "shop"), 404);
    // A key entitled to A cannot reach B's namespaces; one entitled to B can.
    let on_a = mint(
        &url,
        UPSTREAM_KEY,
        json!({"name": "on-a", "entitlements": {"vectorstore.a": {"scopes": ["read"]}}}),
    );
    let on_b = mint(
        &url,
        UPSTREAM_KEY,
        json!({"name": "on-b", "entitlements": {"vectorstore.b": {"scopes": ["read"]}}}),
    );
    let qv = json!({"rank_by": ["id", "asc"], "top_k": 5});
    let read = |t: &Value, ns: &str| {
        call(
            &url,
            t["token"].as_str().unwrap(),
            Method::POST,
            &format!("/v2/namespaces/{ns}/query"),
            qv.clone(),
        )
    };
    assert_eq!(read(&on_a, "shop").0, 200);
    let (s, v) = read(&on_a, "orders");
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("namespace not in key grant")),
        "{v}"
    );
    assert_eq!(read(&on_b, "orders").0, 200);
    assert_eq!(read(&on_b, "shop").0, 403);
    // A key naming a store that does not exist is created, inert, with the condition.
    let ghost = mint(
        &url,
        UPSTREAM_KEY,
        json!({"name": "ghost", "entitlements": {"vectorstore.c": {"scopes": ["read"]}}}),
    );
    assert_eq!(ghost["conditions"][0]["type"], "EntitlementTargetMissing");
    assert_eq!(read(&ghost, "shop").0, 403);
    // The stores, read-only: both reachable, no credential in any answer.
    let (s, v) = call(
        &url,
        UPSTREAM_KEY,
        Method::GET,
        "/v2/vectorstores",
        Value::Null,
    );
    assert_eq!(s, 200, "{v}");
    let stores = v["vectorstores"].as_array().unwrap();
    assert_eq!(stores.len(), 2);
    assert_eq!(
        (stores[0]["name"].as_str(), stores[0]["default"].as_bool()),
        (Some("a"), Some(true))
    );
    assert_eq!(stores[1]["endpoint"]["url"], b_url.as_str());
    assert!(
        stores.iter().all(|s| s["status"]["reachable"] == true),
        "{v}"
    );
    assert!(!v.to_string().contains(UPSTREAM_KEY));
    let (s, v) = call(
        &url,
        UPSTREAM_KEY,
        Method::GET,
        "/v2/vectorstores/b/capabilities",
        Value::Null,
    );
    assert_eq!((s, v["store"]["name"].as_str()), (200, Some("b")), "{v}");
    let (s, v) = call(
        &url,
        UPSTREAM_KEY,
        Method::GET,
        "/v2/namespaces/orders/capabilities",
        Value::Null,
    );
    assert_eq!((s, v["store"]["name"].as_str()), (200, Some("b")), "{v}");
    assert_eq!(
        call(
            &url,
            UPSTREAM_KEY,
            Method::GET,
            "/v2/vectorstores/zz",
            Value::Null
        )
        .0,
        404
    );
    let (s, v) = call(
        &url,
        UPSTREAM_KEY,
        Method::GET,
        "/v2/warehouses",
        Value::Null,
    );
    assert_eq!((s, v["warehouses"].clone()), (200, json!([])));
    // A key with only a store entitlement cannot read the control plane's store views.
    assert_eq!(read_cp(&url, &on_b, "/v2/vectorstores"), 403);
    // The missing store appears (a restart with it configured): the ghost key works there.
    let c = Emulator::start();
    let c_url = c.url();
    let mut stack = stack;
    stack.restart_gateway(
        |cfg| {
            with_db(&db, &schema)(cfg);
            cfg.vector_store.name = "a".into();
            let mut store_c = cfg.vector_store.clone();
            store_c.name = "c".into();
            store_c.endpoint.url = c_url.clone();
            cfg.vector_stores = vec![store_c];
            cfg.indexes = vec![index_on("ghostly", "c")];
        },
        None,
    );
    let url = stack.gateway_url.clone();
    let w = call(
        &url,
        UPSTREAM_KEY,
        Method::POST,
        "/v2/namespaces/ghostly",
        json!({"upsert_rows": [{"id": "g"}]}),
    );
    assert_eq!(w.0, 200, "{}", w.1);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (s, v) = call(
            &url,
            ghost["token"].as_str().unwrap(),
            Method::POST,
            "/v2/namespaces/ghostly/query",
            qv.clone(),
        );
        if s == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the key never reached its store: {s} {v}"
        );
        pause(Duration::from_millis(50));
    }
    let (_, v) = call(
        &url,
        UPSTREAM_KEY,
        Method::GET,
        &format!("/v2/keys/{}", ghost["keyId"].as_str().unwrap()),
        Value::Null,
    );
    assert_eq!(v["conditions"], json!([]), "{v}");
}

fn read_cp(url: &str, key: &Value, path: &str) -> u16 {
    call(
        url,
        key["token"].as_str().unwrap(),
        Method::GET,
        path,
        Value::Null,
    )
    .0
}

/// An index of `name` routed to `store`.
fn index_on(name: &str, store: &str) -> layer_gateway::config::IndexConfig {
    layer_gateway::config::IndexConfig {
        name: name.into(),
        backend: layer_gateway::config::IndexBackend {
            store_ref: Some(store.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}
