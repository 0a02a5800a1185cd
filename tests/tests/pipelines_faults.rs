//! Pipelines under faults, end to end (gateway on the emulator, the queue on the test
//! PostgreSQL reached through a TCP proxy the test cuts):
//!
//! - PostgreSQL goes away in the middle of a run with two embed workers (which retry on 500, as
//!   the docs tell workers to): the run completes once it is back, every document indexed exactly
//!   once, no row lost or written twice upstream;
//! - leases over HTTP: a worker that stops heartbeating loses its documents to the next claim;
//!   heartbeats keep them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use layer_e2e::pipelines::{call, create, pg_addr, stack_with_db, stage, status, with_db};
use layer_e2e::proxy::Proxy;
use layer_e2e::{Http, Stack, UPSTREAM_KEY, pause, test_database};
use serde_json::{Value, json};

/// One HTTP call, retried every 100 ms while it answers 500 (PostgreSQL unavailable), for at
/// most 60 s. Returns the final status and body.
fn retrying(
    http: &Http,
    method: Method,
    url: &str,
    body: &Value,
    retries: &AtomicUsize,
) -> (u16, Value) {
    let bearer = format!("Bearer {UPSTREAM_KEY}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let b = if body.is_null() {
            Bytes::new()
        } else {
            Bytes::from(body.to_string())
        };
        let r = http.send(method.clone(), url, &headers, b);
        if r.status != 500 || Instant::now() > deadline {
            let v = if r.body.is_empty() {
                Value::Null
            } else {
                r.json()
            };
            return (r.status.as_u16(), v);
        }
        retries.fetch_add(1, Ordering::Relaxed);
        pause(Duration::from_millis(100));
    }
}

#[test]
fn a_run_completes_after_postgresql_went_away_mid_run() {
    let Some((url, schema)) = test_database("pg_mid_run") else {
        return;
    };
    let pg = pg_addr(&url);
    let proxy = Proxy::start(pg);
    let proxied = url.replace(&pg.to_string(), &proxy.addr.to_string());
    let stack = Stack::start_with(with_db(&proxied, &schema));
    create(&stack, "m", "pipeline-mid-run");
    let n = 60;
    for i in 0..n {
        stage(&stack, "m", &format!("d{i:02}"), &[&format!("text {i}")]);
    }

    let indexed = Arc::new(AtomicUsize::new(0));
    // Moves whose acknowledgement PostgreSQL lost with the cut: answered `already_indexed` on retry.
    let lost_acks = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let (base, indexed, lost_acks, retries, stop) = (
                stack.gateway_url.clone(),
                indexed.clone(),
                lost_acks.clone(),
                retries.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let http = Http::new(false);
                // A short lease, so documents whose claim answer was lost with the connection
                // (claimed in PostgreSQL, never seen by the worker) come back within the test;
                // the 900 s default is what the flow suite runs at.
                let claim = json!({"worker_id": format!("w{w}"), "limit": 4, "lease_seconds": 3});
                while !stop.load(Ordering::Relaxed) {
                    let (s, v) = retrying(&http, Method::POST, &format!("{base}/v2/pipelines/m/claim"), &claim, &retries);
                    assert_eq!(s, 200, "claim: {v}");
                    let docs: Vec<String> = serde_json::from_value(v["documents"].clone()).unwrap();
                    if docs.is_empty() {
                        pause(Duration::from_millis(100));
                        continue;
                    }
                    for doc in docs {
                        let (s, chunks) = retrying(
                            &http,
                            Method::GET,
                            &format!("{base}/v2/pipelines/m/documents/{doc}/chunks"),
                            &Value::Null,
                            &retries,
                        );
                        assert_eq!(s, 200, "chunks: {chunks}");
                        let id = chunks[0]["id"].clone();
                        let body = json!({"vectors": [{"id": id, "vector": [1.0, 0.5, 0.25], "attributes": {"doc": doc}}]});
                        let (s, v) = retrying(
                            &http,
                            Method::PUT,
                            &format!("{base}/v2/pipelines/m/documents/{doc}/vectors"),
                            &body,
                            &retries,
                        );
                        assert_eq!(s, 200, "vectors: {v}");
                        // A retried call whose first attempt's mark committed while the cut
                        // dropped the connection answers `already_indexed`: the document still
                        // moved once, but the gateway never saw that commit acknowledged, so the
                        // metric below does not count it.
                        if v["status"] == "indexed" || v["status"] == "already_indexed" {
                            indexed.fetch_add(1, Ordering::Relaxed);
                        }
                        if v["status"] == "already_indexed" {
                            lost_acks.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();

    // Cut PostgreSQL once a third of the run is done, for two seconds.
    let deadline = Instant::now() + Duration::from_secs(60);
    while indexed.load(Ordering::Relaxed) < n / 3 {
        assert!(Instant::now() < deadline, "the run did not start");
        pause(Duration::from_millis(20));
    }
    proxy.cut();
    pause(Duration::from_secs(2));
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let st = status(&stack, "m");
        if st["counts"] == json!({"indexed": n}) {
            break;
        }
        assert!(Instant::now() < deadline, "the run did not complete: {st}");
        pause(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert!(
        retries.load(Ordering::Relaxed) > 0,
        "the outage was seen by the workers"
    );
    // Exactly once: each document moved to indexed once, each chunk is one row upstream.
    assert_eq!(indexed.load(Ordering::Relaxed), n);
    // The gateway counts every move it saw committed: all of them but the lost acknowledgements.
    assert_eq!(
        stack.metric(r#"layer_pipeline_indexed_total{pipeline_id="m"}"#),
        (n - lost_acks.load(Ordering::Relaxed)) as f64
    );
    let q = json!({"rank_by": ["id", "asc"], "top_k": 1000, "consistency": {"level": "strong"}});
    let (_, rows) = call(
        &stack,
        Method::POST,
        "/v2/namespaces/pipeline-mid-run/query",
        q,
    );
    assert_eq!(rows["rows"].as_array().unwrap().len(), n);
}

#[test]
fn leases_run_out_without_heartbeats_and_heartbeats_keep_them() {
    let Some(stack) = stack_with_db("http_leases") else {
        return;
    };
    create(&stack, "l", "pipeline-leases");
    for d in ["a", "b"] {
        stage(&stack, "l", d, &[d]);
    }
    // Two-second leases so the test can watch them run out (the 900 s default is checked by the
    // flow suite and the queue's lease suite).
    let (_, c) = call(
        &stack,
        Method::POST,
        "/v2/pipelines/l/claim",
        json!({"worker_id": "w1", "limit": 2, "lease_seconds": 2}),
    );
    assert_eq!(c["documents"].as_array().unwrap().len(), 2);
    // At 1 s both leases are extended to 3 s; at 2 s only a's, to 4 s.
    let beat = || {
        call(
            &stack,
            Method::POST,
            "/v2/pipelines/l/documents/heartbeat",
            json!({"document_ids": ["a", "b"], "worker_id": "w1", "stage": "embedding", "lease_seconds": 2}),
        )
    };
    pause(Duration::from_millis(1_000));
    let (_, hb) = beat();
    assert_eq!(hb["updated"], 2);
    // From here on w1 heartbeats `a` only.
    pause(Duration::from_millis(1_000));
    let (_, hb) = call(
        &stack,
        Method::POST,
        "/v2/pipelines/l/documents/heartbeat",
        json!({"document_ids": ["a"], "worker_id": "w1", "lease_seconds": 2}),
    );
    assert_eq!(hb["updated"], 1);
    // b's lease runs out about a second before a's (each 2 s after its last heartbeat): w2's
    // first successful claim, polled, gets b and not a.
    let deadline = Instant::now() + Duration::from_secs(10);
    let c2 = loop {
        let (_, c2) = call(
            &stack,
            Method::POST,
            "/v2/pipelines/l/claim",
            json!({"worker_id": "w2", "limit": 10}),
        );
        if c2["documents"].as_array().is_some_and(|d| !d.is_empty()) {
            break c2;
        }
        assert!(Instant::now() < deadline, "b's lease never ran out: {c2}");
        pause(Duration::from_millis(50));
    };
    assert_eq!(c2["documents"], json!(["b"]));
    // w1 no longer holds b: its heartbeat extends nothing there, and its guarded move is refused.
    let (_, hb) = beat();
    assert_eq!(hb["updated"], 1);
    let (s, _) = call(
        &stack,
        Method::POST,
        "/v2/pipelines/l/documents/stage",
        json!({"document_ids": ["b"], "stage": "indexed", "worker_id": "w1"}),
    );
    assert_eq!(s, 409);
    assert_eq!(
        stack.metric(r#"layer_pipeline_lease_expiries_total{pipeline_id="l"}"#),
        1.0
    );
}
