//! Query expansion end to end: sharded namespaces answer exactly like unsharded ones, HybridText
//! finds typos BM25 misses, Auto routes and defers, multi-query and the Layer single-query shape,
//! `nearest_to_id`, and the search metadata headers.

use bytes::Bytes;
use http::Method;
use layer_e2e::Stack;
use layer_gateway::config::{IndexConfig, IndexConsistency};
use serde_json::{Value, json};

fn index(name: &str, shards: u32) -> IndexConfig {
    // Strong consistency keeps these tests about expansion, not about the watermark.
    IndexConfig {
        name: name.into(),
        shards,
        consistency: IndexConsistency::Strong,
        ..Default::default()
    }
}

fn stack() -> Stack {
    Stack::start_with(|c| c.indexes = vec![index("flat", 1), index("sharded", 4), index("docs", 1)])
}

/// Deterministic pseudo-random numbers (xorshift) so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() % 10_000) as f64 / 10_000.0
    }
}

fn seed(stack: &Stack, ns: &str, seed: u64, n: u64) {
    let mut rng = Rng(seed);
    let words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];
    let rows: Vec<Value> = (0..n)
        .map(|i| {
            let text = format!("{} {} {}", words[(rng.next() % 6) as usize], words[(rng.next() % 6) as usize], words[(rng.next() % 6) as usize]);
            json!({"id": i, "vector": [rng.unit(), rng.unit(), rng.unit()], "cat": format!("c{}", rng.next() % 5), "price": rng.next() % 100, "text": text})
        })
        .collect();
    let body = json!({"upsert_rows": rows, "distance_metric": "euclidean_squared", "schema": {"text": {"type": "string", "full_text_search": true}}});
    let r = stack.gw(
        Method::POST,
        &format!("/v2/namespaces/{ns}"),
        body.to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

fn query(stack: &Stack, ns: &str, body: &Value) -> Value {
    let r = stack.gw(
        Method::POST,
        &format!("/v2/namespaces/{ns}/query"),
        body.to_string(),
    );
    assert_eq!(r.status, 200, "{ns}: {body} -> {}", r.text());
    r.json()
}

/// The parts of a response that must not depend on sharding.
fn essence(v: &Value) -> Value {
    let rows: Vec<Value> = v["rows"].as_array().cloned().unwrap_or_default();
    json!({"rows": rows, "aggregations": v.get("aggregations"), "aggregation_groups": v.get("aggregation_groups")})
}

#[test]
fn sharding_is_invisible_to_the_client() {
    let stack = stack();
    for seed_value in [7u64, 1234] {
        for ns in ["flat", "sharded"] {
            stack.direct(
                Method::DELETE,
                &format!("/v2/namespaces/{ns}"),
                Bytes::new(),
            );
            seed(&stack, ns, seed_value, 120);
        }
        // The write path stamped a shard on every row of the sharded namespace only.
        let w = stack
            .upstream_requests()
            .into_iter()
            .rev()
            .find(|r| r["path"] == "/v2/namespaces/sharded" && r["method"] == "POST")
            .unwrap();
        let sent: Value = serde_json::from_str(w["body"].as_str().unwrap()).unwrap();
        let shards: Vec<u64> = sent["upsert_rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["_hevlayer_shard"].as_u64().unwrap())
            .collect();
        assert!(
            shards.iter().all(|s| *s < 4) && (0..4).all(|s| shards.contains(&s)),
            "{shards:?}"
        );

        let mut rng = Rng(seed_value ^ 0xabcdef);
        let mut queries = vec![
            json!({"rank_by": ["id", "asc"], "top_k": 17, "include_attributes": ["cat", "price"]}),
            json!({"rank_by": [["price", "desc"], ["id", "asc"]], "top_k": 25, "filters": ["cat", "In", ["c1", "c3"]], "include_attributes": ["price"]}),
            json!({"rank_by": ["text", "BM25", "alpha delta"], "top_k": 15}),
            json!({"aggregate_by": {"n": ["Count"]}, "filters": ["price", "Lt", 50]}),
            json!({"aggregate_by": {"n": ["Count"]}, "group_by": ["cat"]}),
        ];
        for _ in 0..6 {
            queries.push(json!({"rank_by": ["vector", "ANN", [rng.unit(), rng.unit(), rng.unit()]], "top_k": 1 + rng.next() % 30, "include_attributes": ["cat"]}));
        }
        for q in &queries {
            let flat = query(&stack, "flat", q);
            let sharded = query(&stack, "sharded", q);
            assert_eq!(essence(&flat), essence(&sharded), "query {q}");
        }
    }
    // The scatter really happened: one _hevlayer_shard-filtered leg per shard.
    stack.clear_requests();
    query(
        &stack,
        "sharded",
        &json!({"rank_by": ["id", "asc"], "top_k": 3}),
    );
    let legs: Vec<Value> = stack
        .upstream_requests()
        .into_iter()
        .filter(|r| r["path"] == "/v2/namespaces/sharded/query")
        .map(|r| serde_json::from_str(r["body"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(legs.len(), 4);
    let mut seen: Vec<u64> = legs
        .iter()
        .map(|l| l["filters"][2].as_u64().unwrap())
        .collect();
    seen.sort();
    assert_eq!(seen, vec![0, 1, 2, 3]);
    assert!(
        legs.iter()
            .all(|l| l["filters"][0] == "_hevlayer_shard" && l["filters"][1] == "Eq")
    );
}

fn tickets(stack: &Stack) {
    let rows = json!([
        {"id": "t1", "content": "Connection timeout on Kubernetes ingress", "tenant": "a"},
        {"id": "t2", "content": "Billing page shows wrong currency", "tenant": "a"},
        {"id": "t3", "content": "Password reset email never arrives", "tenant": "a"},
        {"id": "t4", "content": "Kubernetes pod restarts after deploy", "tenant": "b"},
    ]);
    let body = json!({"upsert_rows": rows, "schema": {"content": {"type": "string", "full_text_search": true, "fuzzy": true}}});
    assert_eq!(
        stack
            .gw(Method::POST, "/v2/namespaces/docs", body.to_string())
            .status,
        200
    );
}

#[test]
fn hybrid_text_finds_what_bm25_misses() {
    let stack = stack();
    tickets(&stack);
    let bm25 = query(
        &stack,
        "docs",
        &json!({"rank_by": ["content", "BM25", "conection timout kubernets"], "top_k": 5}),
    );
    assert!(
        bm25["rows"].as_array().unwrap().is_empty(),
        "plain BM25 misses every typo: {bm25}"
    );
    let hybrid = query(
        &stack,
        "docs",
        &json!({"rank_by": ["content", "HybridText", "conection timout kubernets"], "top_k": 3, "include_attributes": ["content"], "filters": ["tenant", "Eq", "a"]}),
    );
    assert_eq!(hybrid["rows"][0]["id"], "t1", "{hybrid}");
    assert!(hybrid["rows"][0]["$score"].as_f64().unwrap() > 0.0);
    assert!(
        hybrid["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"] != "t4"),
        "filters reach every leg"
    );
    let echo = &hybrid["hybrid"];
    assert_eq!(echo["tokens"], json!(["conection", "timout", "kubernets"]));
    assert_eq!(
        (
            echo["tokens_dropped"].clone(),
            echo["fuzziness"].clone(),
            echo["rank_constant"].clone()
        ),
        (json!(0), json!("auto"), json!(60))
    );
    assert_eq!(echo["legs"], 4);
    assert_eq!(echo["per_leg_limit"], 50);
    // Validation: a bad option is a 422 naming the option; the expansion went upstream as one multi-query.
    let r = stack.gw(
        Method::POST,
        "/v2/namespaces/docs/query",
        json!({"rank_by": ["content", "HybridText", "x y", {"fuzziness": 3}], "top_k": 3})
            .to_string(),
    );
    assert_eq!(r.status, 422);
    assert!(r.json()["message"].as_str().unwrap().contains("fuzziness"));
    let r = stack.gw(
        Method::POST,
        "/v2/namespaces/docs/query",
        json!({"rank_by": ["content", "HybridText", "a"], "top_k": 3}).to_string(),
    );
    assert_eq!(
        (r.status.as_u16(), r.json()["error"].clone()),
        (422, json!("validation_error"))
    );
}

#[test]
fn auto_routes_and_defers() {
    let stack = stack();
    tickets(&stack);
    // ≤ 2 tokens → hybrid_text, executed without a vector.
    let r = query(
        &stack,
        "docs",
        &json!({"rank_by": ["content", "Auto", "kubernets timout"], "top_k": 3}),
    );
    assert_eq!(
        r["routing"],
        json!({"route": "hybrid_text", "policy": "v1", "tokens": 2, "executed": true})
    );
    assert_eq!(r["rows"][0]["id"], "t1");
    assert!(r["hybrid"].is_object());
    // 3–7 tokens → fused, which needs a vector: deferred.
    let r = query(
        &stack,
        "docs",
        &json!({"rank_by": ["content", "Auto", "connection timeout on kubernetes"], "top_k": 3}),
    );
    assert_eq!(
        r["routing"],
        json!({"route": "fused", "policy": "v1", "tokens": 4, "executed": false})
    );
    assert_eq!(r["rows"], json!([]));
    // ≥ 8 tokens → semantic; deferred without a vector.
    let long = "the connection to the kubernetes ingress keeps timing out after deploy";
    let r = query(
        &stack,
        "docs",
        &json!({"rank_by": ["content", "Auto", long], "top_k": 3}),
    );
    assert_eq!(
        (
            r["routing"]["route"].clone(),
            r["routing"]["executed"].clone()
        ),
        (json!("semantic"), json!(false))
    );
    // A forced route is reported as such; forcing a vector route without a vector is a 422.
    let r = query(
        &stack,
        "docs",
        &json!({"rank_by": ["content", "Auto", long, {"route": "hybrid_text"}], "top_k": 3}),
    );
    assert_eq!(
        (
            r["routing"]["route"].clone(),
            r["routing"]["policy"].clone(),
            r["routing"]["executed"].clone()
        ),
        (json!("hybrid_text"), json!("forced"), json!(true))
    );
    let r = stack.gw(
        Method::POST,
        "/v2/namespaces/docs/query",
        json!({"rank_by": ["content", "Auto", "kube", {"route": "semantic"}], "top_k": 3})
            .to_string(),
    );
    assert_eq!(r.status, 422, "{}", r.text());
}

#[test]
fn layer_single_query_shape_and_nearest_to_id() {
    let stack = stack();
    seed(&stack, "flat", 99, 40);
    // The hevlayer QueryRequest shape: vector + the Layer-only defaults the client always sends.
    let v = json!([0.2, 0.4, 0.6]);
    let layer = query(
        &stack,
        "flat",
        &json!({"vector": v, "top_k": 5, "include_leg_breakdown": false}),
    );
    let native = query(
        &stack,
        "flat",
        &json!({"rank_by": ["vector", "ANN", v], "top_k": 5}),
    );
    assert_eq!(layer["rows"], native["rows"]);
    let sent = stack
        .upstream_requests()
        .into_iter()
        .rev()
        .find(|r| r["path"] == "/v2/namespaces/flat/query")
        .unwrap();
    assert!(
        !sent["body"]
            .as_str()
            .unwrap()
            .contains("include_leg_breakdown"),
        "Layer-only keys never reach upstream"
    );
    // Aggregation-only responses still carry rows.
    // Aggregation-only answers carry `rows` for Layer-shaped requests (hevlayer always sends
    // `include_leg_breakdown`); native Turbopuffer bodies keep upstream's shape.
    let agg = query(
        &stack,
        "flat",
        &json!({"aggregate_by": {"n": ["Count"]}, "include_leg_breakdown": false}),
    );
    let native = query(&stack, "flat", &json!({"aggregate_by": {"n": ["Count"]}}));
    assert!(native.get("rows").is_none(), "{native}");
    assert_eq!(
        (agg["rows"].clone(), agg["aggregations"]["n"].clone()),
        (json!([]), json!(40))
    );

    // nearest_to_id ranks by the centroid of the named documents' stored vectors.
    let docs = stack.direct(Method::POST, "/v2/namespaces/flat/query", json!({"filters": ["id", "In", [3, 8]], "rank_by": ["id", "asc"], "top_k": 2, "include_attributes": ["vector"]}).to_string()).json();
    let a: Vec<f64> = serde_json::from_value(docs["rows"][0]["vector"].clone()).unwrap();
    let b: Vec<f64> = serde_json::from_value(docs["rows"][1]["vector"].clone()).unwrap();
    let centroid: Vec<f32> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| ((x + y) / 2.0) as f32)
        .collect();
    let by_id = query(
        &stack,
        "flat",
        &json!({"nearest_to_id": [3, 8], "top_k": 6}),
    );
    let by_vec = query(
        &stack,
        "flat",
        &json!({"rank_by": ["vector", "ANN", centroid], "top_k": 6}),
    );
    assert_eq!(by_id["rows"], by_vec["rows"]);
    let r = stack.gw(
        Method::POST,
        "/v2/namespaces/flat/query",
        json!({"nearest_to_id": [3, 4040], "top_k": 3}).to_string(),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["missing"], json!([4040]));
    for bad in [
        json!({"nearest_to_id": [], "top_k": 3}),
        json!({"nearest_to_id": [3], "vector": [1, 2, 3], "top_k": 3}),
        json!({"top_k": 3, "include_leg_breakdown": false}),
    ] {
        let r = stack.gw(Method::POST, "/v2/namespaces/flat/query", bad.to_string());
        assert_eq!(r.status, 422, "{bad} -> {}", r.text());
    }
    // A native body without a ranking is upstream's to judge: its own 400 comes back.
    let via = stack.gw(
        Method::POST,
        "/v2/namespaces/flat/query",
        json!({"top_k": 3}).to_string(),
    );
    let direct = stack.direct(
        Method::POST,
        "/v2/namespaces/flat/query",
        json!({"top_k": 3}).to_string(),
    );
    assert_eq!((via.status, via.text()), (direct.status, direct.text()));
}

#[test]
fn multi_query_rules() {
    let stack = stack();
    seed(&stack, "flat", 5, 30);
    let leg = json!({"rank_by": ["id", "asc"], "top_k": 2});
    let r = query(
        &stack,
        "flat",
        &json!({"queries": [leg, {"vector": [0.1, 0.2, 0.3], "top_k": 2}]}),
    );
    assert_eq!(r["results"].as_array().unwrap().len(), 2);
    assert_eq!(r["results"][0]["rows"].as_array().unwrap().len(), 2);
    // Layer's rules bind Layer-shaped multi-queries (here: a `vector` leg) ...
    let layer_leg = json!({"vector": [0.1, 0.2, 0.3], "top_k": 2});
    let mut seventeen = vec![leg.clone(); 16];
    seventeen.push(layer_leg.clone());
    for bad in [
        json!({"queries": [layer_leg]}),
        json!({"queries": seventeen}),
        json!({"queries": [leg, leg], "cursor": "abc"}),
        json!({"queries": [leg, {"rank_by": ["id", "asc"], "top_k": 2, "cursor": "x"}]}),
    ] {
        let r = stack.gw(
            Method::POST,
            "/v2/namespaces/flat/query?stainless_overload=multiQuery",
            bad.to_string(),
        );
        assert_eq!(r.status, 422, "{bad} -> {}", r.text());
    }
    // ... while native ones keep upstream's: one leg is fine, seventeen is upstream's 400.
    let one = query(&stack, "flat", &json!({"queries": [leg]}));
    assert_eq!(one["results"].as_array().unwrap().len(), 1);
    let r = stack.gw(
        Method::POST,
        "/v2/namespaces/flat/query",
        json!({"queries": vec![leg.clone(); 17]}).to_string(),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("requires 17 permits")
    );
    // With rerank_by the body is an upstream fused query and passes through.
    let fused = json!({"queries": [leg, {"rank_by": ["id", "desc"], "top_k": 2}], "rerank_by": ["RRF"], "limit": 3});
    let r = query(&stack, "flat", &fused);
    assert_eq!(r["results"][0]["rows"].as_array().unwrap().len(), 3);
    let sent = stack
        .upstream_requests()
        .into_iter()
        .rev()
        .find(|r| r["path"] == "/v2/namespaces/flat/query")
        .unwrap();
    assert_eq!(sent["body"], fused.to_string());
}

#[test]
fn search_metadata_headers_are_validated() {
    let stack = stack();
    seed(&stack, "flat", 3, 5);
    let body = json!({"rank_by": ["id", "asc"], "top_k": 1}).to_string();
    let ok = stack.gw_with(
        Method::POST,
        "/v2/namespaces/flat/query",
        &[
            ("x-hevlayer-search-query", "red shoes"),
            ("x-hevlayer-tags", "b,a:1,a:1"),
        ],
        body.clone(),
    );
    assert_eq!(ok.status, 200);
    let bad = stack.gw_with(
        Method::POST,
        "/v2/namespaces/flat/query",
        &[("x-hevlayer-tags", "ok,not ok")],
        body,
    );
    assert_eq!(bad.status, 422);
    assert!(bad.json()["message"].as_str().unwrap().contains("not ok"));
}
