//! UDF push dispatch end to end: the gateway claims batches itself and POSTs them to a worker's
//! `<url>/run` (a small HTTP worker served by this test), then completes and fails the items from
//! its answer. The worker answers 500 to its first batch and does not answer its second in time;
//! both batches are retried, and every row ends completed (one failed permanently, as the
//! worker said). Also the `write` trigger: a UDF that sweeps after writes, not on an interval.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use layer_e2e::pipelines::{call, stack_with_db};
use layer_e2e::{Stack, pause};
use serde_json::{Value, json};

/// What the test worker saw.
#[derive(Default)]
struct Seen {
    calls: AtomicUsize,
    bodies: Mutex<Vec<Value>>,
}

/// The worker's answer to its `n`th call (0-based): 500, then too slow, then the real answer.
async fn answer(n: usize, body: Value) -> Response<Full<Bytes>> {
    let reply = |status: u16, v: Value| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(v.to_string())))
            .unwrap()
    };
    match n {
        0 => reply(500, json!({"error": "model not loaded"})),
        1 => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            reply(200, json!({"completed": []}))
        }
        _ => {
            let mut completed = Vec::new();
            let mut failed = Vec::new();
            for item in body["items"].as_array().unwrap() {
                let r = json!({"namespace": item["namespace"], "id": item["id"]});
                if item["id"] == "p0001" {
                    let mut f = r;
                    f["kind"] = json!("permanent");
                    f["message"] = json!("no title we like");
                    failed.push(f);
                } else {
                    let mut c = r;
                    let title = item["input"]["title"].as_str().unwrap_or("");
                    c["attributes"] = json!({"tags": [format!("pushed:{}", title.len())]});
                    completed.push(c);
                }
            }
            reply(200, json!({"completed": completed, "failed": failed}))
        }
    }
}

/// Serves the worker on 127.0.0.1:0 in a thread of its own; returns its URL.
fn serve(seen: Arc<Seen>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let seen = seen.clone();
                        async move {
                            assert_eq!(req.uri().path(), "/run");
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let body: Value = serde_json::from_slice(&body).unwrap();
                            seen.bodies.lock().unwrap().push(body.clone());
                            let n = seen.calls.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, Infallible>(answer(n, body).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    url
}

fn status(stack: &Stack) -> Value {
    let (s, v) = call(stack, Method::GET, "/v2/udfs/pushed/status", Value::Null);
    assert_eq!(s, 200, "{v}");
    v
}

#[test]
fn push_workers_get_batches_and_failures_are_retried() {
    let Some(stack) = stack_with_db("udf_push") else {
        return;
    };
    let rows: Vec<Value> = (0..25)
        .map(|i| json!({"id": format!("p{i:04}"), "title": format!("title {i}")}))
        .collect();
    stack.write("pushns", json!({ "upsert_rows": rows }));
    let seen = Arc::new(Seen::default());
    let url = serve(seen.clone());
    // timeout_seconds 1 so the worker that does not answer is given up on in a second (the
    // default is 30); no backoff so the retries follow at once (the default starts at 5 s); one
    // batch in flight so the worker's calls come in a known order.
    let spec = json!({
        "target_namespaces": ["pushns"], "inputs": ["id", "title"],
        "worker": {"url": url, "timeout_seconds": 1, "batch_size": 10},
        "schedule": {"max_in_flight_batches": 1},
        "retry": {"max_attempts": 5, "initial_backoff_seconds": 0, "max_backoff_seconds": 0},
    });
    let (s, v) = call(
        &stack,
        Method::POST,
        "/v2/udfs",
        json!({"id": "pushed", "spec": spec}),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        v["spec"]["worker"]["dispatch"], "push",
        "a worker url means push"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let st = loop {
        let st = status(&stack);
        if st["discovery"]["sweeps_completed"].as_i64() >= Some(1)
            && st["pending_count"] == 0
            && st["processing_count"] == 0
        {
            break st;
        }
        assert!(Instant::now() < deadline, "push never drained: {st}");
        pause(Duration::from_millis(100));
    };
    assert_eq!(st["counts"]["indexed"], 24, "{st}");
    assert_eq!(st["failed_reasons"]["permanent"], 1, "{st}");
    // The batches the worker got: the wire format, and every row more than once only because
    // of the two failed calls.
    let bodies = seen.bodies.lock().unwrap().clone();
    assert!(bodies.len() >= 5, "{} calls", bodies.len());
    let first = &bodies[0];
    assert_eq!(first["udf_id"], "pushed");
    assert_eq!(first["version"], "v1");
    assert!(
        first["worker_id"]
            .as_str()
            .unwrap()
            .starts_with("layer-push-")
    );
    let item = &first["items"][0];
    assert_eq!(
        item["input"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["id", "title"]
    );
    assert!(first["items"].as_array().unwrap().len() <= 10);
    // Every completed row has the worker's attribute and the marker.
    let q = json!({"rank_by": ["id", "asc"], "top_k": 100, "include_attributes": true,
                   "consistency": {"level": "strong"}});
    let r = stack.gw(Method::POST, "/v2/namespaces/pushns/query", q.to_string());
    for row in r.json()["rows"].as_array().unwrap() {
        if row["id"] == "p0001" {
            assert!(row.get("_hevlayer_udf_pushed_v").is_none(), "{row}");
            continue;
        }
        assert_eq!(row["_hevlayer_udf_pushed_v"], "v1", "{row}");
        assert!(
            row["tags"][0].as_str().unwrap().starts_with("pushed:"),
            "{row}"
        );
    }
    // The failed calls are counted by outcome.
    assert!(stack.metric(r#"layer_udf_push_batches_total{udf="pushed",outcome="error"}"#) >= 1.0);
    assert!(stack.metric(r#"layer_udf_push_batches_total{udf="pushed",outcome="timeout"}"#) >= 1.0);
    assert!(stack.metric(r#"layer_udf_push_batches_total{udf="pushed",outcome="ok"}"#) >= 3.0);
}

#[test]
fn the_write_trigger_sweeps_after_writes() {
    let Some(stack) = stack_with_db("udf_write_trigger") else {
        return;
    };
    stack.write("trig", json!({"upsert_rows": [{"id": "a", "title": "x"}]}));
    // Only the write trigger: no sweep on an interval, one after each write through the gateway.
    let spec = json!({"target_namespaces": ["trig"], "inputs": ["id"], "worker": {},
                      "triggers": ["write"]});
    let (s, v) = call(
        &stack,
        Method::POST,
        "/v2/udfs",
        json!({"id": "trig", "spec": spec}),
    );
    assert_eq!(s, 201, "{v}");
    // The write before the UDF existed starts one sweep (a write since this gateway started):
    // wait for it to finish. Then nothing more happens until the next write.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = status_of(&stack, "trig");
        let d = &st["discovery"];
        if d["sweeps_completed"] == 1 && d["running"] == false {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first sweep never finished: {st}"
        );
        pause(Duration::from_millis(50));
    }
    pause(Duration::from_secs(2));
    let st = status_of(&stack, "trig");
    assert_eq!(
        st["discovery"]["sweeps_completed"], 1,
        "no interval sweeps: {st}"
    );
    stack.write("trig", json!({"upsert_rows": [{"id": "b", "title": "y"}]}));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = status_of(&stack, "trig");
        if st["discovery"]["sweeps_completed"].as_i64() > Some(1)
            && st["pending_count"] == 2
            && st["discovery"]["running"] == false
        {
            break;
        }
        assert!(Instant::now() < deadline, "no sweep after the write: {st}");
        pause(Duration::from_millis(100));
    }
}

fn status_of(stack: &Stack, id: &str) -> Value {
    let (s, v) = call(
        stack,
        Method::GET,
        &format!("/v2/udfs/{id}/status"),
        Value::Null,
    );
    assert_eq!(s, 200, "{v}");
    v
}
