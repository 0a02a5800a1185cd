//! Group commit of pipeline vectors: concurrent `PUT …/vectors` calls of one pipeline share
//! upstream writes, and each still gets its own answer. At the documented defaults.
//!
//! The emulator holds the answers of the first writes (`hold_until_released`), one per write a
//! lane keeps in flight (`MAX_WRITES_IN_FLIGHT`, 16), while more calls arrive; the test waits until the gateway shows
//! them queued (`layer_pipeline_vectors_waiting`), then releases the answers: no sleeps, no
//! timing.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use layer_e2e::pipelines::{call, create, stack_with_db};
use layer_e2e::{Stack, pause};
use serde_json::{Value, json};

const NS: &str = "pipeline-batched";
/// The writes a lane keeps in flight before calls queue (the gateway's constant).
const IN_FLIGHT: usize = layer_gateway::features::pipelines::batch::MAX_WRITES_IN_FLIGHT;

fn vectors(doc: &str, dims: usize) -> Value {
    let v: Vec<f64> = (0..dims).map(|k| (k + 1) as f64 / 10.0).collect();
    json!({"vectors": [
        {"id": format!("{doc}-0"), "vector": v, "attributes": {"doc": doc}},
        {"id": format!("{doc}-1"), "vector": v, "attributes": {"doc": doc}},
    ]})
}

fn put(stack: &Stack, doc: &str, dims: usize) -> (u16, Value) {
    call(
        stack,
        Method::PUT,
        &format!("/v2/pipelines/bp/documents/{doc}/vectors"),
        vectors(doc, dims),
    )
}

/// The writes to the target namespace the emulator received, as the docs each carried.
fn writes(stack: &Stack) -> Vec<Vec<String>> {
    stack
        .upstream_requests()
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"] == format!("/v2/namespaces/{NS}"))
        .map(|r| {
            let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
            let mut docs: Vec<String> = body["upsert_rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| row["doc"].as_str().unwrap().to_string())
                .collect();
            docs.dedup();
            docs
        })
        .collect()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        pause(Duration::from_millis(10));
    }
}

/// Holds the next `first.len()` writes to the target, runs `first` concurrently, and once the
/// held writes have reached the emulator runs `rest` concurrently; releases the held answers
/// when the gateway shows all of `rest` queued. Returns every call's answer, `first` first.
fn round(stack: &Stack, first: &[(&str, usize)], rest: &[(&str, usize)]) -> Vec<(u16, Value)> {
    round_then(stack, first, rest, None)
}

/// [`round`], with `then` as a further fault rule for the writes after the held ones.
fn round_then(
    stack: &Stack,
    first: &[(&str, usize)],
    rest: &[(&str, usize)],
    then: Option<Value>,
) -> Vec<(u16, Value)> {
    let mut rules = vec![
        json!({"route": "write", "namespace": NS, "hold_until_released": true,
                                "count": first.len()}),
    ];
    rules.extend(then);
    let rule = json!({ "rules": rules });
    let r = stack.direct(Method::POST, "/_emu/faults", rule.to_string());
    assert!(r.status.is_success(), "{}", r.text());
    stack.clear_requests();
    std::thread::scope(|s| {
        let head: Vec<_> = first
            .iter()
            .map(|&(doc, dims)| s.spawn(move || put(stack, doc, dims)))
            .collect();
        wait_for("the first writes upstream", || {
            writes(stack).len() == first.len()
        });
        let tail: Vec<_> = rest
            .iter()
            .map(|&(doc, dims)| s.spawn(move || put(stack, doc, dims)))
            .collect();
        let sample = r#"layer_pipeline_vectors_waiting{pipeline_id="bp"}"#;
        wait_for("the calls queued behind it", || {
            stack.metric(sample) == rest.len() as f64
        });
        let r = stack.direct(Method::POST, "/_emu/faults/release", Bytes::new());
        assert!(r.status.is_success(), "{}", r.text());
        let mut out: Vec<_> = head.into_iter().map(|t| t.join().unwrap()).collect();
        out.extend(tail.into_iter().map(|t| t.join().unwrap()));
        out
    })
}

#[test]
fn concurrent_vectors_calls_share_upstream_writes_and_keep_their_own_answers() {
    let Some(stack) = stack_with_db("vectors_batch") else {
        return;
    };
    create(&stack, "bp", NS);

    // The first calls are written at once, each alone (the lane's writes in flight); eight calls
    // queued behind them go up as one write, each answered for itself.
    let names: Vec<String> = (0..IN_FLIGHT + 8).map(|i| format!("d{i}")).collect();
    let first: Vec<(&str, usize)> = names[..IN_FLIGHT].iter().map(|d| (d.as_str(), 3)).collect();
    let rest: Vec<String> = names[IN_FLIGHT..].to_vec();
    let rest_calls: Vec<(&str, usize)> = rest.iter().map(|d| (d.as_str(), 3)).collect();
    let answers = round(&stack, &first, &rest_calls);
    for (i, (s, v)) in answers.iter().enumerate() {
        assert_eq!(
            (*s, v["status"].as_str()),
            (200, Some("indexed")),
            "call {i}: {v}"
        );
        assert_eq!(v["rows_upserted"], 2);
    }
    let mut batched = rest.clone();
    let seen = writes(&stack);
    assert_eq!(seen.len(), IN_FLIGHT + 1, "{seen:?}");
    assert!(seen[..IN_FLIGHT].iter().all(|w| w.len() == 1), "{seen:?}");
    let mut last = seen[IN_FLIGHT].clone();
    last.sort();
    batched.sort();
    assert_eq!(last, batched, "the queued calls shared one write");
    assert_eq!(
        stack.metric(r#"layer_pipeline_vector_writes_total{pipeline_id="bp"}"#),
        (IN_FLIGHT + 1) as f64
    );
    assert_eq!(
        stack.metric(r#"layer_pipeline_vectors_total{pipeline_id="bp",status="ok"}"#),
        (IN_FLIGHT + 8) as f64
    );

    // A call upstream refuses (a dimension the namespace does not have) inside a batch: the
    // batch is refused, then written call by call, so only that call gets the refusal.
    let names: Vec<String> = (0..IN_FLIGHT).map(|i| format!("e{i}")).collect();
    let first: Vec<(&str, usize)> = names.iter().map(|d| (d.as_str(), 3)).collect();
    let rest = [("f0", 3), ("bad", 2), ("f1", 3)];
    let answers = round(&stack, &first, &rest);
    let codes: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert!(codes[..=IN_FLIGHT].iter().all(|&c| c == 200), "{answers:?}");
    assert!((400..500).contains(&codes[IN_FLIGHT + 1]), "{answers:?}");
    assert_eq!(codes[IN_FLIGHT + 2], 200, "{answers:?}");
    let seen = writes(&stack);
    // The first ones alone; the three together (refused); then each alone, in arrival order.
    assert_eq!(seen.len(), IN_FLIGHT + 4, "{seen:?}");
    assert_eq!(seen[IN_FLIGHT].len(), 3, "{seen:?}");
    assert!(
        seen[IN_FLIGHT + 1..].iter().all(|w| w.len() == 1),
        "{seen:?}"
    );
    let (_, st) = call(&stack, Method::GET, "/v2/pipelines/bp/status", Value::Null);
    let indexed = 2 * (IN_FLIGHT + 8) - 6;
    assert_eq!(st["counts"], json!({"indexed": indexed}), "{st}");

    // Every accepted row is upstream, stamped; the refused call's are not.
    let r = stack.direct(
        Method::POST,
        &format!("/v2/namespaces/{NS}/query"),
        json!({"rank_by": ["id", "asc"], "top_k": 100,
               "include_attributes": ["_hevlayer_upserted_at"]})
        .to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let rows = r.json()["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 2 * indexed);
    assert!(rows.iter().all(|row| row["_hevlayer_upserted_at"].is_u64()));
    assert!(
        !rows
            .iter()
            .any(|row| row["id"].as_str().unwrap().starts_with("bad"))
    );

    // A shared write upstream rate-limits (429) is not split into one write per call (that
    // would only add load): each of its calls gets the 429.
    let names: Vec<String> = (0..IN_FLIGHT).map(|i| format!("g{i}")).collect();
    let first: Vec<(&str, usize)> = names.iter().map(|d| (d.as_str(), 3)).collect();
    let rest = [("h0", 3), ("h1", 3), ("h2", 3)];
    let limit = json!({"route": "write", "namespace": NS, "status": 429, "count": 1});
    let answers = round_then(&stack, &first, &rest, Some(limit));
    let codes: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert!(codes[..IN_FLIGHT].iter().all(|&c| c == 200), "{answers:?}");
    assert_eq!(codes[IN_FLIGHT..], [429, 429, 429], "{answers:?}");
    assert_eq!(writes(&stack).len(), IN_FLIGHT + 1);
}
