//! The UDF's workers: claim → complete with a no-op function until nothing is pending (plain or
//! pipelined), and the version bump that requeues every row for the second drain.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};

use crate::client::{Http, send, status};
use crate::{POLL, WORKERS};

/// A version bump (`v1` → `v2`) and a sweep that requeues every row; returns how many it
/// enqueued.
pub(crate) async fn requeue(http: &Http, base: &str, udf: &str) -> u64 {
    let (s, v) = send(
        http,
        Method::GET,
        &format!("{base}/v2/udfs/{udf}"),
        String::new(),
    )
    .await;
    assert_eq!(s, 200, "get: {v}");
    let sweeps = v["status"]["discovery"]["sweeps_completed"]
        .as_i64()
        .unwrap_or(0);
    let mut spec = v["udf"]["spec"].clone();
    spec["version"] = json!("v2");
    let (s, v) = send(
        http,
        Method::PUT,
        &format!("{base}/v2/udfs/{udf}"),
        json!({ "spec": spec }).to_string(),
    )
    .await;
    assert_eq!(s, 200, "version bump: {v}");
    let (s, v) = send(
        http,
        Method::POST,
        &format!("{base}/v2/udfs/{udf}/discover"),
        "{}".into(),
    )
    .await;
    assert_eq!(s, 200, "discover: {v}");
    let started = Instant::now();
    loop {
        let st = status(http, base, udf).await;
        let d = &st["discovery"];
        if d["sweeps_completed"].as_i64().unwrap_or(0) > sweeps && d["running"] == false {
            return st["pending_count"].as_u64().unwrap_or(0);
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "discovery never finished: {st}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// What the workers did.
pub(crate) struct Work {
    pub(crate) done: usize,
    pub(crate) secs: f64,
    pub(crate) claims: Vec<Duration>,
    pub(crate) completes: Vec<Duration>,
}

/// 4 workers: claim → complete every item with `{"tag": "x"}`, until a claim comes back empty
/// and status shows nothing pending. `pipelined`: a worker claims its next batch while the
/// completion of its previous one is in flight (at most one claim and one completion at a time,
/// two batches held), as a worker that prefetches does.
pub(crate) async fn drain(http: &Http, base: &str, udf: &'static str, pipelined: bool) -> Work {
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let (http, base, done) = (http.clone(), base.to_string(), done.clone());
        tasks.push(tokio::spawn(async move {
            let worker = format!("w{w}");
            let mut claims = Vec::new();
            let mut completes = Vec::new();
            let mut in_flight: Option<tokio::task::JoinHandle<Duration>> = None;
            loop {
                let t = Instant::now();
                let (s, v) = send(
                    &http,
                    Method::POST,
                    &format!("{base}/v2/udfs/{udf}/claim"),
                    json!({ "worker_id": worker }).to_string(),
                )
                .await;
                claims.push(t.elapsed());
                assert_eq!(s, 200, "claim: {v}");
                let items = v["items"].as_array().cloned().unwrap_or_default();
                if items.is_empty() {
                    if let Some(c) = in_flight.take() {
                        completes.push(c.await.expect("completion"));
                        continue;
                    }
                    if status(&http, &base, udf).await["pending_count"] == 0 {
                        return (claims, completes);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                if let Some(c) = in_flight.take() {
                    completes.push(c.await.expect("completion"));
                }
                let c = tokio::spawn(complete(
                    http.clone(),
                    format!("{base}/v2/udfs/{udf}/items/complete"),
                    worker.clone(),
                    items,
                    done.clone(),
                ));
                if pipelined {
                    in_flight = Some(c);
                } else {
                    completes.push(c.await.expect("completion"));
                }
            }
        }));
    }
    let (mut claims, mut completes) = (Vec::new(), Vec::new());
    for t in tasks {
        let (c, d) = t.await.expect("worker");
        claims.extend(c);
        completes.extend(d);
    }
    Work {
        done: done.load(Ordering::Relaxed),
        secs: started.elapsed().as_secs_f64(),
        claims,
        completes,
    }
}

/// One completion call: every item with `{"tag": "x"}`; returns its latency.
async fn complete(
    http: Http,
    url: String,
    worker: String,
    items: Vec<Value>,
    done: Arc<AtomicUsize>,
) -> Duration {
    let report: Vec<Value> = items
        .iter()
        .map(|i| json!({"namespace": i["namespace"], "id": i["id"], "attributes": {"tag": "x"}}))
        .collect();
    let t = Instant::now();
    let (s, v) = send(
        &http,
        Method::POST,
        &url,
        json!({"worker_id": worker, "items": report}).to_string(),
    )
    .await;
    let took = t.elapsed();
    assert_eq!(s, 200, "complete: {v}");
    assert_eq!(v["updated"], items.len(), "complete: {v}");
    done.fetch_add(items.len(), Ordering::Relaxed);
    took
}
