//! UDFs end to end: a gateway on the emulator with the queue on the PostgreSQL the test command
//! starts (`LAYER_TEST_DATABASE_URL`, a schema per test), at the documented defaults unless a
//! test says otherwise.
//!
//! - the flow: create (201, every default written out), discovery at once, claims capped at
//!   `batch_size` with exactly the declared inputs, completions writing the attribute and the
//!   marker through the write path, status draining; a second sweep finds nothing, a version
//!   bump finds every row, rows written later are found alone, a `stale_after` that passed
//!   brings its row back;
//! - the double-apply rule: a report from a worker whose items another worker re-claimed after
//!   the lease ran out is ignored; an upstream 5xx leaves the items leased;
//! - retries: transient failures back off then fail at `max_attempts`; permanent failures fail
//!   at once; `reset-failed`; pause and resume; `max_in_flight_batches`;
//! - four concurrent workers never hold the same item;
//! - push dispatch to a worker served by the test, including one that times out or answers 500;
//! - bad input: 404, 409, 422 naming the field, nothing stored.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use layer_e2e::pipelines::{call, stack_with_db};
use layer_e2e::{Http, Stack, UPSTREAM_KEY, pause};
use serde_json::{Value, json};

/// Writes `n` products (`p0000`…) with a title through the gateway.
fn products(stack: &Stack, ns: &str, from: usize, n: usize) {
    let rows: Vec<Value> = (from..from + n)
        .map(|i| json!({"id": format!("p{i:04}"), "title": format!("product {i}"), "price": i}))
        .collect();
    stack.write(ns, json!({ "upsert_rows": rows }));
}

fn create(stack: &Stack, id: &str, spec: Value) -> Value {
    let (s, v) = call(
        stack,
        Method::POST,
        "/v2/udfs",
        json!({"id": id, "spec": spec}),
    );
    assert_eq!(s, 201, "create {id}: {v}");
    v
}

fn status(stack: &Stack, id: &str) -> Value {
    let (s, v) = call(
        stack,
        Method::GET,
        &format!("/v2/udfs/{id}/status"),
        Value::Null,
    );
    assert_eq!(s, 200, "{v}");
    v
}

/// Waits until a sweep has completed and none runs.
fn swept(stack: &Stack, id: &str, sweeps: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = status(stack, id);
        let d = &st["discovery"];
        if d["sweeps_completed"].as_i64().unwrap_or(0) >= sweeps && d["running"] == false {
            return st;
        }
        assert!(Instant::now() < deadline, "discovery never finished: {st}");
        pause(Duration::from_millis(50));
    }
}

fn claim(stack: &Stack, id: &str, worker: &str, extra: Value) -> Vec<Value> {
    let mut body = json!({"worker_id": worker});
    if let Some(o) = extra.as_object() {
        for (k, v) in o {
            body[k] = v.clone();
        }
    }
    let (s, v) = call(stack, Method::POST, &format!("/v2/udfs/{id}/claim"), body);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["worker_id"], worker);
    v["items"].as_array().unwrap().clone()
}

fn complete(stack: &Stack, id: &str, worker: &str, items: &[Value]) -> (u16, Value) {
    let done: Vec<Value> = items
        .iter()
        .map(|i| {
            let title = i["input"]["title"].as_str().unwrap_or("").to_string();
            json!({"namespace": i["namespace"], "id": i["id"],
                   "attributes": {"tags": [format!("t:{}", title.len())]}})
        })
        .collect();
    call(
        stack,
        Method::POST,
        &format!("/v2/udfs/{id}/items/complete"),
        json!({"worker_id": worker, "items": done}),
    )
}

/// Every row of `ns` with the given attributes, by id (a strong query through the gateway).
fn rows(stack: &Stack, ns: &str, attrs: &[&str]) -> BTreeMap<String, Value> {
    // `true` and then the named ones: naming an attribute the schema lacks is a 400 upstream.
    let body = json!({"rank_by": ["id", "asc"], "top_k": 10000, "include_attributes": true,
                      "consistency": {"level": "strong"}});
    let r = stack.gw(
        Method::POST,
        &format!("/v2/namespaces/{ns}/query"),
        body.to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let kept: serde_json::Map<String, Value> = attrs
                .iter()
                .map(|a| (a.to_string(), row.get(*a).cloned().unwrap_or(Value::Null)))
                .collect();
            (row["id"].as_str().unwrap().to_string(), Value::Object(kept))
        })
        .collect()
}

fn drain(stack: &Stack, id: &str, worker: &str) -> usize {
    let mut n = 0;
    loop {
        let items = claim(stack, id, worker, json!({}));
        if items.is_empty() {
            return n;
        }
        let (s, v) = complete(stack, id, worker, &items);
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["updated"], items.len(), "{v}");
        n += items.len();
    }
}

#[test]
fn discovery_claims_completions_and_reruns() {
    let Some(stack) = stack_with_db("udf_flow") else {
        return;
    };
    products(&stack, "products", 0, 70);
    let udf = create(
        &stack,
        "tag-products",
        json!({"target_namespaces": ["products"], "inputs": ["id", "title", "description"],
               "worker": {}}),
    );
    // Every default is written out (the client's models are the ruling).
    assert_eq!(udf["spec"]["version"], "v1");
    assert_eq!(udf["spec"]["worker"]["batch_size"], 32);
    assert_eq!(udf["spec"]["schedule"]["lease_seconds"], 120);
    assert_eq!(udf["paused"], false);
    // The first sweep runs at once.
    let st = swept(&stack, "tag-products", 1);
    assert_eq!(st["pending_count"], 70, "{st}");
    assert_eq!(st["discovery"]["progress"]["enqueued"], 70, "{st}");
    // A claim asking for more than a batch gets a batch, with exactly the declared inputs.
    let first = claim(&stack, "tag-products", "w1", json!({"limit": 100}));
    assert_eq!(first.len(), 32);
    let input = first[0]["input"].as_object().unwrap();
    // `description` is in no row (nor the schema): null, as the worker's keyword needs.
    assert_eq!(
        input.keys().collect::<Vec<_>>(),
        vec!["id", "title", "description"]
    );
    assert_eq!(input["id"], first[0]["id"]);
    assert!(input["description"].is_null());
    assert_eq!(status(&stack, "tag-products")["processing_count"], 32);
    let (s, v) = complete(&stack, "tag-products", "w1", &first);
    assert_eq!((s, v["updated"].clone()), (200, json!(32)), "{v}");
    // A retried report (a lost answer) counts again and writes nothing new.
    let (s, v) = complete(&stack, "tag-products", "w1", &first);
    assert_eq!((s, v["updated"].clone()), (200, json!(32)), "{v}");
    assert_eq!(drain(&stack, "tag-products", "w1"), 38);
    let st = status(&stack, "tag-products");
    assert_eq!(
        (st["pending_count"].clone(), st["processing_count"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(st["counts"]["indexed"], 70, "{st}");
    let all = rows(
        &stack,
        "products",
        &["tags", "_hevlayer_udf_tag_products_v"],
    );
    assert_eq!(all.len(), 70);
    for (id, row) in &all {
        assert_eq!(row["_hevlayer_udf_tag_products_v"], "v1", "{id}: {row}");
        assert!(
            row["tags"][0].as_str().unwrap().starts_with("t:"),
            "{id}: {row}"
        );
    }
    // The same version again: nothing to do.
    let (s, v) = call(
        &stack,
        Method::POST,
        "/v2/udfs/tag-products/discover",
        json!({}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["enqueued"].clone(), v["complete"].clone()),
        (json!(0), json!(true)),
        "{v}"
    );
    // Rows written since: only those.
    products(&stack, "products", 70, 5);
    let (_, v) = call(
        &stack,
        Method::POST,
        "/v2/udfs/tag-products/discover",
        json!({}),
    );
    assert_eq!(v["enqueued"], 5, "{v}");
    assert_eq!(drain(&stack, "tag-products", "w2"), 5);
    // A version bump: every row again, and the marker follows.
    let mut spec = udf["spec"].clone();
    spec["version"] = json!("v2");
    let (s, v) = call(
        &stack,
        Method::PUT,
        "/v2/udfs/tag-products",
        json!({ "spec": spec }),
    );
    assert_eq!(s, 200, "{v}");
    let (_, v) = call(
        &stack,
        Method::POST,
        "/v2/udfs/tag-products/discover",
        json!({}),
    );
    assert_eq!(v["enqueued"], 75, "{v}");
    assert_eq!(drain(&stack, "tag-products", "w3"), 75);
    let all = rows(&stack, "products", &["_hevlayer_udf_tag_products_v"]);
    assert!(
        all.values()
            .all(|r| r["_hevlayer_udf_tag_products_v"] == "v2")
    );
    // A stale_after that passed brings its row back (callers may write that one marker).
    stack.write(
        "products",
        json!({"patch_rows": [{"id": "p0003", "_hevlayer_udf_tag_products_stale_after": "2000-01-01T00:00:00Z"},
                              {"id": "p0004", "_hevlayer_udf_tag_products_stale_after": "2999-01-01T00:00:00Z"}]}),
    );
    let (_, v) = call(
        &stack,
        Method::POST,
        "/v2/udfs/tag-products/discover",
        json!({}),
    );
    assert_eq!(v["enqueued"], 1, "{v}");
    let items = claim(&stack, "tag-products", "w4", json!({}));
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], "p0003");
    assert_eq!(complete(&stack, "tag-products", "w4", &items).0, 200);
    // Completion cleared the marker, so it does not come back.
    let row = &rows(
        &stack,
        "products",
        &["_hevlayer_udf_tag_products_stale_after"],
    )["p0003"];
    assert!(
        row["_hevlayer_udf_tag_products_stale_after"].is_null(),
        "{row}"
    );
    let (_, v) = call(
        &stack,
        Method::POST,
        "/v2/udfs/tag-products/discover",
        json!({}),
    );
    assert_eq!(v["enqueued"], 0, "{v}");
    // get answers {udf, status}; list has it; delete removes it (not what it wrote).
    let (s, v) = call(&stack, Method::GET, "/v2/udfs/tag-products", Value::Null);
    assert_eq!(s, 200);
    assert_eq!(
        (v["udf"]["id"].clone(), v["status"]["udf_id"].clone()),
        (json!("tag-products"), json!("tag-products"))
    );
    let (_, v) = call(&stack, Method::GET, "/v2/udfs", Value::Null);
    assert_eq!(v["udfs"].as_array().unwrap().len(), 1);
    let (s, v) = call(&stack, Method::DELETE, "/v2/udfs/tag-products", Value::Null);
    assert_eq!((s, v["status"].clone()), (200, json!("deleted")), "{v}");
    assert_eq!(
        call(&stack, Method::GET, "/v2/udfs/tag-products", Value::Null).0,
        404
    );
    assert_eq!(rows(&stack, "products", &["tags"]).len(), 75);
}

fn fail(stack: &Stack, id: &str, worker: &str, items: &[(&Value, &str)]) -> Value {
    let body: Vec<Value> = items
        .iter()
        .map(|(i, kind)| json!({"namespace": i["namespace"], "id": i["id"], "kind": kind, "message": "boom"}))
        .collect();
    let (s, v) = call(
        stack,
        Method::POST,
        &format!("/v2/udfs/{id}/items/fail"),
        json!({"worker_id": worker, "items": body}),
    );
    assert_eq!(s, 200, "{v}");
    v
}

#[test]
fn retries_failures_reset_pause_and_batch_bound() {
    let Some(stack) = stack_with_db("udf_retry") else {
        return;
    };
    products(&stack, "shop", 0, 3);
    // Backoff of 1 s and 3 attempts so the test sees a row fail after its retries in seconds;
    // at the defaults (5 s doubling to 300 s, 8 attempts) that takes ten minutes. The default
    // schedule is checked in the queue's own tests (queue/tests/udf_items.rs).
    create(
        &stack,
        "r",
        json!({"target_namespaces": ["shop"], "inputs": ["id"], "worker": {},
               "retry": {"max_attempts": 3, "initial_backoff_seconds": 1, "max_backoff_seconds": 1}}),
    );
    swept(&stack, "r", 1);
    let items = claim(&stack, "r", "w", json!({}));
    assert_eq!(items.len(), 3);
    let by_id = |id: &str| items.iter().find(|i| i["id"] == id).unwrap();
    let v = fail(
        &stack,
        "r",
        "w",
        &[(by_id("p0000"), "transient"), (by_id("p0001"), "permanent")],
    );
    assert_eq!(v["updated"], 2);
    // Backing off: not claimable at once (checked first: the backoff is 0.5–1 s with its
    // jitter), claimable after the backoff.
    assert!(claim(&stack, "r", "w", json!({})).is_empty());
    assert_eq!(complete(&stack, "r", "w", &[by_id("p0002").clone()]).0, 200);
    let st = status(&stack, "r");
    assert_eq!(
        (st["failed_count"].clone(), st["pending_count"].clone()),
        (json!(1), json!(1)),
        "{st}"
    );
    assert_eq!(st["failed_reasons"]["permanent"], 1, "{st}");
    for attempt in 2..=3 {
        pause(Duration::from_millis(1100));
        let again = claim(&stack, "r", "w", json!({}));
        assert_eq!(again.len(), 1, "attempt {attempt}");
        fail(&stack, "r", "w", &[(&again[0], "transient")]);
    }
    // Out of attempts: failed.
    let st = status(&stack, "r");
    assert_eq!(
        (st["failed_count"].clone(), st["pending_count"].clone()),
        (json!(2), json!(0)),
        "{st}"
    );
    assert_eq!(st["failed_reasons"]["max_attempts"], 1, "{st}");
    // reset-failed requeues both (a bodyless POST, as the client sends it).
    let (s, v) = call(&stack, Method::POST, "/v2/udfs/r/reset-failed", Value::Null);
    assert_eq!((s, v["updated"].clone()), (200, json!(2)), "{v}");
    // Paused: claims answer nothing, nothing is lost; resumed: the items come back.
    let (s, v) = call(&stack, Method::POST, "/v2/udfs/r/pause", Value::Null);
    assert_eq!((s, v["paused"].clone()), (200, json!(true)), "{v}");
    assert!(claim(&stack, "r", "w", json!({})).is_empty());
    assert_eq!(status(&stack, "r")["pending_count"], 2);
    let (_, v) = call(&stack, Method::POST, "/v2/udfs/r/resume", Value::Null);
    assert_eq!(v["paused"], false);
    // max_in_flight_batches 1: a second worker waits for the first batch.
    let (_, u) = call(&stack, Method::GET, "/v2/udfs/r", Value::Null);
    let mut spec = u["udf"]["spec"].clone();
    spec["schedule"]["max_in_flight_batches"] = json!(1);
    spec["worker"]["batch_size"] = json!(1);
    assert_eq!(
        call(&stack, Method::PUT, "/v2/udfs/r", json!({ "spec": spec })).0,
        200
    );
    let one = claim(&stack, "r", "w1", json!({}));
    assert_eq!(one.len(), 1);
    assert!(claim(&stack, "r", "w2", json!({})).is_empty());
    assert_eq!(complete(&stack, "r", "w1", &one).0, 200);
    assert_eq!(claim(&stack, "r", "w2", json!({})).len(), 1);
}

#[test]
fn late_reports_and_upstream_failures_never_double_apply() {
    let Some(stack) = stack_with_db("udf_late") else {
        return;
    };
    products(&stack, "late", 0, 2);
    create(
        &stack,
        "late",
        json!({"target_namespaces": ["late"], "inputs": ["id", "title"], "worker": {}}),
    );
    swept(&stack, "late", 1);
    // A 1 s lease (the claim's own `lease_seconds`) so the lease runs out within the test; the
    // default (the spec's 120 s) is what the other tests' claims get.
    let w1 = claim(&stack, "late", "w1", json!({"lease_seconds": 1}));
    assert_eq!(w1.len(), 2);
    pause(Duration::from_millis(1200));
    // w1 "crashed": w2 re-claims after the lease.
    let w2 = claim(&stack, "late", "w2", json!({}));
    assert_eq!(w2.len(), 2);
    // w1 comes back and reports: ignored, nothing written.
    let late: Vec<Value> = w1
        .iter()
        .map(|i| json!({"namespace": i["namespace"], "id": i["id"], "attributes": {"tags": ["late"]}}))
        .collect();
    let (s, v) = call(
        &stack,
        Method::POST,
        "/v2/udfs/late/items/complete",
        json!({"worker_id": "w1", "items": late}),
    );
    assert_eq!((s, v["updated"].clone()), (200, json!(0)), "{v}");
    assert!(
        rows(&stack, "late", &["tags"])
            .values()
            .all(|r| r["tags"].is_null())
    );
    // Upstream refuses w2's write: 502, the items stay leased to w2.
    let fault = json!({"rules": [{"route": "write", "status": 500, "count": 1}]});
    assert!(
        stack
            .direct(Method::POST, "/_emu/faults", fault.to_string())
            .status
            .is_success()
    );
    let (s, v) = complete(&stack, "late", "w2", &w2);
    assert_eq!(
        (s, v["error"].clone()),
        (502, json!("upstream_error")),
        "{v}"
    );
    let st = status(&stack, "late");
    assert_eq!(
        (
            st["processing_count"].clone(),
            st["counts"]["indexed"].clone()
        ),
        (json!(2), Value::Null),
        "{st}"
    );
    // Its retry lands once.
    let (s, v) = complete(&stack, "late", "w2", &w2);
    assert_eq!((s, v["updated"].clone()), (200, json!(2)), "{v}");
    assert!(
        rows(&stack, "late", &["tags"])
            .values()
            .all(|r| r["tags"][0].as_str().unwrap().starts_with("t:"))
    );
}

#[test]
fn four_workers_never_hold_the_same_item() {
    let Some(stack) = stack_with_db("udf_four") else {
        return;
    };
    products(&stack, "four", 0, 400);
    create(
        &stack,
        "four",
        json!({"target_namespaces": ["four"], "inputs": ["id"], "worker": {"batch_size": 10}}),
    );
    swept(&stack, "four", 1);
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let url = stack.gateway_url.clone();
    let threads: Vec<_> = (0..4)
        .map(|w| {
            let (seen, url) = (seen.clone(), url.clone());
            std::thread::spawn(move || {
                let http = Http::new(false);
                let bearer = format!("Bearer {UPSTREAM_KEY}");
                let headers = [("authorization", bearer.as_str()), ("content-type", "application/json")];
                let worker = format!("w{w}");
                loop {
                    let r = http.send(Method::POST, &format!("{url}/v2/udfs/four/claim"),
                        &headers, json!({"worker_id": worker}).to_string());
                    assert_eq!(r.status, 200, "{}", r.text());
                    let items = r.json()["items"].as_array().unwrap().clone();
                    if items.is_empty() {
                        return;
                    }
                    seen.lock().unwrap().extend(items.iter().map(|i| i["id"].as_str().unwrap().to_string()));
                    let done: Vec<Value> = items.iter().map(|i| json!({"namespace": i["namespace"], "id": i["id"], "attributes": {"tags": [worker]}})).collect();
                    let r = http.send(Method::POST, &format!("{url}/v2/udfs/four/items/complete"),
                        &headers, json!({"worker_id": worker, "items": done}).to_string());
                    assert_eq!(r.status, 200, "{}", r.text());
                    assert_eq!(r.json()["updated"], items.len());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (400, 400));
    let st = status(&stack, "four");
    assert_eq!(
        (st["counts"]["indexed"].clone(), st["pending_count"].clone()),
        (json!(400), json!(0)),
        "{st}"
    );
}

#[test]
fn bad_input_is_refused_and_nothing_is_stored() {
    let Some(stack) = stack_with_db("udf_bad") else {
        return;
    };
    products(&stack, "bad", 0, 2);
    let field = |body: Value| {
        let (s, v) = call(&stack, Method::POST, "/v2/udfs", body);
        assert_eq!(
            (s, v["error"].clone()),
            (422, json!("validation_error")),
            "{v}"
        );
        v["field"].as_str().unwrap().to_string()
    };
    let spec = |extra: Value| {
        let mut s = json!({"target_namespaces": ["bad"], "inputs": ["id"], "worker": {}});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        s
    };
    assert_eq!(
        field(json!({"id": "x", "spec": spec(json!({"inputs": []}))})),
        "spec.inputs"
    );
    assert_eq!(
        field(json!({"id": "x", "spec": {"inputs": ["id"], "target_namespaces": ["bad"]}})),
        "spec.worker"
    );
    assert_eq!(
        field(json!({"id": "x", "spec": spec(json!({"filter": ["title", "Bogus", 1]}))})),
        "spec.filter"
    );
    assert_eq!(
        field(json!({"id": "x", "spec": spec(json!({"target_namespaces": ["nope"]}))})),
        "spec.target_namespaces"
    );
    assert_eq!(field(json!({"id": "a b", "spec": spec(json!({}))})), "id");
    assert_eq!(
        call(&stack, Method::GET, "/v2/udfs", Value::Null).1["udfs"],
        json!([])
    );
    // Unknown UDFs are 404 on every route.
    for (m, p) in [
        (Method::GET, "/v2/udfs/ghost"),
        (Method::GET, "/v2/udfs/ghost/status"),
        (Method::POST, "/v2/udfs/ghost/claim"),
        (Method::POST, "/v2/udfs/ghost/pause"),
        (Method::DELETE, "/v2/udfs/ghost"),
    ] {
        let (s, v) = call(&stack, m, p, json!({"worker_id": "w"}));
        assert_eq!(
            (s, v["error"].clone()),
            (404, json!("not_found")),
            "{p}: {v}"
        );
    }
    // A duplicate id is 409; a second UDF writing the same marker is refused.
    create(&stack, "dup-x", spec(json!({})));
    let (s, v) = call(
        &stack,
        Method::POST,
        "/v2/udfs",
        json!({"id": "dup-x", "spec": spec(json!({}))}),
    );
    assert_eq!(
        (s, v["error"].clone()),
        (409, json!("already_exists")),
        "{v}"
    );
    assert_eq!(field(json!({"id": "dup_x", "spec": spec(json!({}))})), "id");
    // A UDF's queue is not a pipeline.
    assert_eq!(
        call(
            &stack,
            Method::GET,
            "/v2/pipelines/udf:dup-x/status",
            Value::Null
        )
        .0,
        404
    );
    assert_eq!(
        call(&stack, Method::GET, "/v2/pipelines", Value::Null).1["pipelines"],
        json!([])
    );
    // A completion with a reserved attribute is refused whole: nothing written, still leased.
    swept(&stack, "dup-x", 1);
    let items = claim(&stack, "dup-x", "w", json!({}));
    assert_eq!(items.len(), 2);
    let body = json!({"worker_id": "w", "items": [
        {"namespace": "bad", "id": items[0]["id"], "attributes": {"tags": ["ok"]}},
        {"namespace": "bad", "id": items[1]["id"], "attributes": {"_hevlayer_udf_dup_x_v": "v9"}},
    ]});
    let (s, v) = call(&stack, Method::POST, "/v2/udfs/dup-x/items/complete", body);
    assert_eq!(
        (s, v["field"].clone()),
        (422, json!("items[1].attributes")),
        "{v}"
    );
    assert!(
        rows(&stack, "bad", &["tags"])
            .values()
            .all(|r| r["tags"].is_null())
    );
    assert_eq!(status(&stack, "dup-x")["processing_count"], 2);
}

#[test]
fn specs_items_and_leases_survive_a_restart() {
    let Some((url, schema)) = layer_e2e::test_database("udf_restart") else {
        return;
    };
    let mut stack = Stack::start_with(layer_e2e::pipelines::with_db(&url, &schema));
    products(&stack, "keep", 0, 40);
    create(
        &stack,
        "keep",
        json!({"target_namespaces": ["keep"], "inputs": ["id", "title"], "worker": {}}),
    );
    swept(&stack, "keep", 1);
    let held = claim(&stack, "keep", "w1", json!({}));
    assert_eq!(held.len(), 32);
    stack.restart_gateway(layer_e2e::pipelines::with_db(&url, &schema), None);
    let st = status(&stack, "keep");
    assert_eq!(
        (st["processing_count"].clone(), st["pending_count"].clone()),
        (json!(32), json!(8)),
        "{st}"
    );
    assert_eq!(st["discovery"]["sweeps_completed"], 1, "{st}");
    // The worker that held a batch before the restart still holds it.
    let (s, v) = complete(&stack, "keep", "w1", &held);
    assert_eq!((s, v["updated"].clone()), (200, json!(32)), "{v}");
    assert_eq!(drain(&stack, "keep", "w2"), 8);
}
