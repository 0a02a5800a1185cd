//! Federated query end to end (`POST /v2/query`): the fused rows equal an RRF the test computes
//! from the per-namespace queries (at a given `rank_constant` / `per_namespace_limit` and at the
//! defaults), per-namespace `matched` and `stable_as_of`, the `merge`, `hybrid` and `routing`
//! echoes equal to the single-namespace query's, a failing namespace as an `errors` entry or,
//! with `strict`, as the request's error, `read` checked on every namespace (403 naming the one a
//! key lacks, nothing sent upstream), and 422 for a body without namespaces.

use http::Method;
use layer_e2e::{Stack, configured_key, now_ms};
use layer_gateway::config::{AuthMode, Scope};
use serde_json::{Value, json};

const NAMESPACES: [(&str, u64); 3] = [("fa", 30), ("fb", 20), ("fc", 25)];

fn seed(stack: &Stack, ns: &str, n: u64) {
    let words = ["alpha", "bravo", "charlie", "delta", "echo"];
    let rows: Vec<Value> = (0..n)
        .map(|i| {
            let f = |k: u64| ((i * 37 + k * 11 + ns.len() as u64 * 7) % 97) as f64 / 97.0;
            json!({
                "id": i,
                "vector": [f(1), f(2), f(3)],
                "text": format!("{} {}", words[(i % 5) as usize], words[((i / 5) % 5) as usize]),
                "cat": format!("{ns}-{}", i % 3),
            })
        })
        .collect();
    stack.write(
        ns,
        json!({"upsert_rows": rows, "distance_metric": "euclidean_squared",
               "schema": {"text": {"type": "string", "full_text_search": true}}}),
    );
}

fn seeded() -> Stack {
    let stack = Stack::start();
    for (ns, n) in NAMESPACES {
        seed(&stack, ns, n);
    }
    // Taken after the last seed: a cut past it covers every seeded row.
    let t = now_ms();
    for (ns, _) in NAMESPACES {
        stack.wait_watermark(ns, t);
    }
    stack
}

fn post(stack: &Stack, path: &str, body: &Value) -> (u16, Value) {
    let r = stack.gw(Method::POST, path, body.to_string());
    (
        r.status.as_u16(),
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

/// The RRF of the single-namespace answers to `query` (with `top_k` = `per_ns`), computed here:
/// `(namespace, row, score)` best first, ties in namespace order then rank.
fn expected_rrf(
    stack: &Stack,
    query: &Value,
    per_ns: u64,
    k: f64,
    top_k: usize,
) -> Vec<(String, Value, f64)> {
    let mut all = Vec::new();
    for (ns, _) in NAMESPACES {
        let mut q = query.clone();
        q["top_k"] = json!(per_ns);
        let (s, v) = post(stack, &format!("/v2/namespaces/{ns}/query"), &q);
        assert_eq!(s, 200, "{v}");
        let rows = v["rows"].as_array().expect("rows").clone();
        assert_eq!(rows.len() as u64, per_ns, "{ns}: {v}");
        for (r, row) in rows.into_iter().enumerate() {
            all.push((ns.to_string(), row, 1.0 / (k + r as f64 + 1.0)));
        }
    }
    // Stable: equal scores keep namespace order, then rank.
    all.sort_by(|a, b| b.2.total_cmp(&a.2));
    all.truncate(top_k);
    all
}

fn assert_fused(got: &Value, want: &[(String, Value, f64)]) {
    let rows = got["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), want.len(), "{got}");
    for (row, (ns, wrow, score)) in rows.iter().zip(want) {
        assert_eq!(row["$namespace"], json!(ns), "{row}");
        assert!(
            (row["$rrf_score"].as_f64().unwrap() - score).abs() < 1e-12,
            "{row} vs {score}"
        );
        let mut bare = row.clone();
        let o = bare.as_object_mut().unwrap();
        o.remove("$namespace");
        o.remove("$rrf_score");
        assert_eq!(&bare, wrow, "the fused row is the namespace's own row");
    }
}

#[test]
fn federated_results_equal_rrf_of_per_namespace_queries() {
    let stack = seeded();
    let names: Vec<&str> = NAMESPACES.iter().map(|(n, _)| *n).collect();
    let query = json!({"vector": [0.3, 0.6, 0.2], "include_attributes": ["cat", "text"]});

    // Explicit fusion settings: k = 5, 4 rows per namespace, 7 fused.
    let mut body = query.clone();
    body["namespaces"] = json!(names);
    body["top_k"] = json!(7);
    body["fusion"] = json!({"rank_constant": 5, "per_namespace_limit": 4});
    let (s, got) = post(&stack, "/v2/query", &body);
    assert_eq!(s, 200, "{got}");
    assert_fused(&got, &expected_rrf(&stack, &query, 4, 5.0, 7));
    assert_eq!(got["merge"]["strategy"], "rrf");
    assert_eq!(got["merge"]["rank_constant"], 5);
    assert_eq!(got["merge"]["per_namespace_limit"], 4);
    assert_eq!(got["merge"]["candidates"], 12);
    let per_ns = got["namespaces"].as_array().expect("namespaces");
    assert_eq!(per_ns.len(), 3);
    for (entry, ns) in per_ns.iter().zip(&names) {
        assert_eq!(entry["namespace"], json!(ns));
        assert_eq!(entry["matched"], 4);
        assert!(
            entry["stable_as_of"].as_u64().is_some(),
            "stable cut per namespace: {entry}"
        );
    }
    assert!(
        got.get("errors").is_none() && got.get("hybrid").is_none(),
        "{got}"
    );

    // Defaults: what the client always sends (top_k 10, strict false, fusion with rank_constant
    // 60 only): 10 rows per namespace, k = 60.
    let mut body = query.clone();
    body["namespaces"] = json!(names);
    body["top_k"] = json!(10);
    body["strict"] = json!(false);
    body["include_leg_breakdown"] = json!(false);
    body["fusion"] = json!({"rank_constant": 60});
    let (s, got) = post(&stack, "/v2/query", &body);
    assert_eq!(s, 200, "{got}");
    assert_fused(&got, &expected_rrf(&stack, &query, 10, 60.0, 10));
    assert_eq!(got["merge"]["per_namespace_limit"], 10);
    let matched: Vec<u64> = got["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["matched"].as_u64().unwrap())
        .collect();
    assert_eq!(matched, [10, 10, 10]);
}

#[test]
fn hybrid_and_routing_echoes_are_the_namespace_query_s() {
    let stack = seeded();
    let names: Vec<&str> = NAMESPACES.iter().map(|(n, _)| *n).collect();
    for rank_by in [
        json!(["text", "HybridText", "alpah bravo", {"rank_constant": 60}]),
        json!(["text", "Auto", "alpha"]),
    ] {
        let query = json!({"rank_by": rank_by, "top_k": 5});
        let (s, single) = post(&stack, "/v2/namespaces/fa/query", &query);
        assert_eq!(s, 200, "{single}");
        let mut body = query.clone();
        body["namespaces"] = json!(names);
        let (s, got) = post(&stack, "/v2/query", &body);
        assert_eq!(s, 200, "{got}");
        assert_eq!(got.get("hybrid"), single.get("hybrid"), "{got}");
        assert_eq!(got.get("routing"), single.get("routing"), "{got}");
        assert!(
            got.get("hybrid").is_some(),
            "both spellings run hybrid text here: {got}"
        );
        assert_fused(&got, &expected_rrf(&stack, &query, 5, 60.0, 5));
    }
}

#[test]
fn a_failing_namespace_is_an_errors_entry_unless_strict() {
    let stack = seeded();
    let body =
        json!({"namespaces": ["fa", "never-written"], "vector": [0.1, 0.2, 0.3], "top_k": 3});
    let (s, got) = post(&stack, "/v2/query", &body);
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["rows"].as_array().unwrap().len(), 3);
    assert!(
        got["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["$namespace"] == "fa")
    );
    let errors = got["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{got}");
    assert_eq!(errors[0]["namespace"], "never-written");
    assert!(errors[0]["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(got["namespaces"].as_array().unwrap().len(), 1);

    let mut strict = body.clone();
    strict["strict"] = json!(true);
    let (s, got) = post(&stack, "/v2/query", &strict);
    assert!(
        s >= 400,
        "strict turns the failure into the request's error: {s} {got}"
    );
    assert_eq!(
        s as u64,
        errors[0]["status"].as_u64().unwrap(),
        "the namespace's own status"
    );
    assert_eq!(got["error"], "namespace_failed", "{got}");
    assert_eq!(got["namespace"], "never-written", "{got}");

    let (s, got) = post(&stack, "/v2/query", &json!({"vector": [0.1, 0.2, 0.3]}));
    assert_eq!(s, 422, "{got}");
}

#[test]
fn read_is_checked_on_every_namespace() {
    let stack = Stack::start_with(|c| {
        c.vector_store.inbound_auth.mode = AuthMode::Keys;
        c.vector_store.inbound_auth.keys = vec![
            configured_key("admin", vec![Scope::Admin], &[]),
            configured_key("shop-reader", vec![Scope::Read], &["shop-*"]),
            configured_key("writer", vec![Scope::Write], &[]),
        ];
    });
    let as_key = |k: &str, body: Value| {
        let r = stack.gw_with(
            Method::POST,
            "/v2/query",
            &[("authorization", &format!("Bearer {k}"))],
            body.to_string(),
        );
        (
            r.status.as_u16(),
            serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null),
        )
    };
    for ns in ["shop-a", "shop-b", "other"] {
        let r = stack.gw_with(
            Method::POST,
            &format!("/v2/namespaces/{ns}"),
            &[("authorization", "Bearer admin")],
            json!({"upsert_rows": [{"id": "r1", "vector": [1.0, 0.0]}], "distance_metric": "cosine_distance"})
                .to_string(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let q = |names: &[&str]| json!({"namespaces": names, "vector": [1.0, 0.0], "top_k": 2});
    let (s, v) = as_key("shop-reader", q(&["shop-a", "shop-b"]));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["rows"].as_array().unwrap().len(), 2, "{v}");

    stack.clear_requests();
    let (s, v) = as_key("shop-reader", q(&["shop-a", "other"]));
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["namespace"], "other", "{v}");
    let (s, v) = as_key("writer", q(&["shop-a"]));
    assert_eq!(s, 403, "{v}");
    let sent = stack.upstream_requests();
    assert!(
        !sent.iter().any(|r| r.to_string().contains("/query")),
        "a refused federated query sends no leg: {sent:?}"
    );
    let (s, v) = as_key("admin", q(&["shop-a", "other"]));
    assert_eq!(s, 200, "{v}");
}
