//! Group commit of pipeline vectors: concurrent `PUT …/vectors` calls of one pipeline share
//! upstream writes, and each still gets its own answer. At the documented defaults.
//!
//! The emulator holds the first write's answer (`hold_until_released`) while more calls arrive;
//! the test waits until the gateway shows them queued (`layer_pipeline_vectors_waiting`), then
//! releases the answer: no sleeps, no timing.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use layer_e2e::pipelines::{call, create, with_db};
use layer_e2e::{Stack, pause, test_database};
use serde_json::{Value, json};

const NS: &str = "pipeline-batched";

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

/// Holds the next write to the target, runs `first` against it, and once the held write has
/// reached the emulator runs `rest` concurrently; releases the held answer when the gateway
/// shows all of `rest` queued. Returns every call's answer, `first` first.
fn round(stack: &Stack, first: (&str, usize), rest: &[(&str, usize)]) -> Vec<(u16, Value)> {
    let rule = json!({"rules": [{"route": "write", "namespace": NS, "hold_until_released": true,
                                 "count": 1}]});
    let r = stack.direct(Method::POST, "/_emu/faults", rule.to_string());
    assert!(r.status.is_success(), "{}", r.text());
    stack.clear_requests();
    std::thread::scope(|s| {
        let head = s.spawn(|| put(stack, first.0, first.1));
        wait_for("the first write upstream", || writes(stack).len() == 1);
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
        let mut out = vec![head.join().unwrap()];
        out.extend(tail.into_iter().map(|t| t.join().unwrap()));
        out
    })
}

#[test]
fn concurrent_vectors_calls_share_upstream_writes_and_keep_their_own_answers() {
    let Some((url, schema)) = test_database("vectors_batch") else {
        return;
    };
    let stack = Stack::start_with(with_db(&url, &schema));
    create(&stack, "bp", NS);

    // Eight calls queued behind a held write go up as one write, each answered for itself.
    let rest: Vec<String> = (1..=8).map(|i| format!("d{i}")).collect();
    let rest_calls: Vec<(&str, usize)> = rest.iter().map(|d| (d.as_str(), 3)).collect();
    let answers = round(&stack, ("d0", 3), &rest_calls);
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
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0], ["d0"]);
    let mut second = seen[1].clone();
    second.sort();
    batched.sort();
    assert_eq!(second, batched, "the queued calls shared one write");
    assert_eq!(
        stack.metric(r#"layer_pipeline_vector_writes_total{pipeline_id="bp"}"#),
        2.0
    );
    assert_eq!(
        stack.metric(r#"layer_pipeline_vectors_total{pipeline_id="bp",status="ok"}"#),
        9.0
    );

    // A call upstream refuses (a dimension the namespace does not have) inside a batch: the
    // batch is refused, then written call by call, so only that call gets the refusal.
    let rest = [("e1", 3), ("bad", 2), ("e2", 3)];
    let answers = round(&stack, ("e0", 3), &rest);
    let codes: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(codes[0], 200);
    assert_eq!(codes[1], 200, "{:?}", answers[1]);
    assert!((400..500).contains(&codes[2]), "{:?}", answers[2]);
    assert_eq!(codes[3], 200, "{:?}", answers[3]);
    let seen = writes(&stack);
    // e0 alone; the three together (refused); then each alone, in arrival order.
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen[1].len(), 3, "{seen:?}");
    assert!(seen[2..].iter().all(|w| w.len() == 1), "{seen:?}");
    let (_, st) = call(&stack, Method::GET, "/v2/pipelines/bp/status", Value::Null);
    assert_eq!(st["counts"], json!({"indexed": 12}), "{st}");

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
    assert_eq!(rows.len(), 24);
    assert!(rows.iter().all(|row| row["_hevlayer_upserted_at"].is_u64()));
    assert!(
        !rows
            .iter()
            .any(|row| row["id"].as_str().unwrap().starts_with("bad"))
    );
}
