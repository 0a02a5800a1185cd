//! Pipelines end to end: a gateway on the emulator with the queue on the PostgreSQL the test
//! command starts (`LAYER_TEST_DATABASE_URL`, a schema per test), at the documented defaults
//! (900 s leases, the local object store under the data dir, the NVMe cache tier) unless a test
//! says otherwise.
//!
//! - the flow: create (201, duplicate 409), stage, two workers claiming concurrently, chunks read
//!   back, vectors into the target namespace (stamped, so stable reads see them), `pending_count`
//!   draining to 0, each document indexed exactly once;
//! - the vectors rule: a second worker finishing the same generation changes nothing; a re-stage
//!   during the write is kept; an upstream 5xx is 502 and the document stays leased;
//! - bad input: 4xx with the error shape and nothing written;
//! - PostgreSQL unreachable (through a TCP proxy the test cuts): 500 `database_unavailable` on
//!   pipeline routes, every other route serving, and recovery by itself;
//! - no database configured: 503 naming `LAYER_DATABASE_URL`;
//! - a gateway restart: every state survives;
//! - the chunk cache refusing writes, then the object store down too: chunks from the store,
//!   then 503 `cache_cold`;
//! - the stage gauge KEDA reads.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use layer_e2e::pipelines::{call, create, pg_addr, stack_with_db, stage, status, with_db};
use layer_e2e::proxy::Proxy;
use layer_e2e::tier::RemoteTier;
use layer_e2e::{Http, Stack, TestS3, UPSTREAM_KEY, pause, test_database};
use serde_json::{Value, json};

/// A toy embedding: three dimensions from the text's bytes (the flow, not the model, is tested
/// here; the example workers use all-MiniLM-L6-v2).
fn embed(text: &str) -> Vec<f64> {
    let sum: u64 = text.bytes().map(u64::from).sum();
    vec![text.len() as f64, (sum % 97) as f64 + 1.0, 1.0]
}

/// One embed worker's loop over its own HTTP client: claim 4, read chunks, write vectors, until
/// a claim comes back empty. Returns the documents it finished.
fn worker(gateway: String, pid: String, name: String) -> Vec<String> {
    let http = Http::new(false);
    let bearer = format!("Bearer {UPSTREAM_KEY}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];
    let mut done = Vec::new();
    loop {
        let claim = json!({"worker_id": name, "limit": 4});
        let r = http.send(
            Method::POST,
            &format!("{gateway}/v2/pipelines/{pid}/claim"),
            &headers,
            claim.to_string(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let docs: Vec<String> = serde_json::from_value(r.json()["documents"].clone()).unwrap();
        if docs.is_empty() {
            return done;
        }
        for doc in docs {
            let r = http.send(
                Method::GET,
                &format!("{gateway}/v2/pipelines/{pid}/documents/{doc}/chunks"),
                &headers,
                Bytes::new(),
            );
            assert_eq!(r.status, 200, "{}", r.text());
            let chunks = r.json();
            let vectors: Vec<Value> = chunks
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    let text = c["text"].as_str().unwrap();
                    json!({"id": c["id"], "vector": embed(text), "attributes": {"text": text, "doc": doc}})
                })
                .collect();
            let r = http.send(
                Method::PUT,
                &format!("{gateway}/v2/pipelines/{pid}/documents/{doc}/vectors"),
                &headers,
                json!({ "vectors": vectors }).to_string(),
            );
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.json()["status"], "indexed", "{}", r.text());
            done.push(doc);
        }
    }
}

#[test]
fn stage_claim_embed_index_with_two_workers() {
    let Some(stack) = stack_with_db("flow") else {
        return;
    };
    let create = json!({"id": "docs", "target_namespace": "pipeline-docs"});
    let (s, p) = call(&stack, Method::POST, "/v2/pipelines", create.clone());
    assert_eq!(s, 201, "{p}");
    assert_eq!(p["distance_metric"], "cosine_distance");
    assert!(p["created_at"].is_string());
    let (s, dup) = call(&stack, Method::POST, "/v2/pipelines", create);
    assert_eq!((s, dup["error"].as_str()), (409, Some("already_exists")));
    let (_, list) = call(&stack, Method::GET, "/v2/pipelines", Value::Null);
    assert!(
        list["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == "docs")
    );

    let n = 40;
    for i in 0..n {
        let (s, v) = stage(
            &stack,
            "docs",
            &format!("d{i}"),
            &[&format!("text of {i}"), "tail"],
        );
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["chunk_count"], 2);
        assert_eq!(
            v["chunk_ids"],
            json!([format!("d{i}-0"), format!("d{i}-1")])
        );
    }
    // Re-staging replaces the chunks and is idempotent in what it leaves.
    stage(&stack, "docs", "d0", &["new text of 0"]);
    let (_, chunks) = call(
        &stack,
        Method::GET,
        "/v2/pipelines/docs/documents/d0/chunks",
        Value::Null,
    );
    assert_eq!(chunks, json!([{"id": "d0-0", "text": "new text of 0"}]));
    let st = status(&stack, "docs");
    assert_eq!(
        (st["pending_count"].as_i64(), st["status"].as_str()),
        (Some(n), Some("pending"))
    );

    let workers: Vec<_> = ["embed-0", "embed-1"]
        .iter()
        .map(|w| {
            let (g, w) = (stack.gateway_url.clone(), w.to_string());
            std::thread::spawn(move || worker(g, "docs".into(), w))
        })
        .collect();
    let mut finished: Vec<String> = workers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    finished.sort();
    let mut want: Vec<String> = (0..n).map(|i| format!("d{i}")).collect();
    want.sort();
    assert_eq!(
        finished, want,
        "every document finished exactly once over both workers"
    );

    let st = status(&stack, "docs");
    assert_eq!(st["pending_count"], 0);
    assert_eq!(st["processing_count"], 0);
    assert_eq!(st["counts"], json!({"indexed": n}));
    assert_eq!(st["status"], "idle");

    // The vectors are in the target namespace, stamped like any write through the gateway.
    let q = json!({"rank_by": ["id", "asc"], "top_k": 1000, "include_attributes": ["doc"],
                   "consistency": {"level": "strong"}});
    let (s, rows) = call(
        &stack,
        Method::POST,
        "/v2/namespaces/pipeline-docs/query",
        q,
    );
    assert_eq!(s, 200, "{rows}");
    assert_eq!(rows["rows"].as_array().unwrap().len(), 2 * n as usize - 1);
    let direct = stack.direct(
        Method::POST,
        "/v2/namespaces/pipeline-docs/query",
        json!({"rank_by": ["id", "asc"], "top_k": 1, "include_attributes": ["_hevlayer_upserted_at"]})
            .to_string(),
    );
    assert!(
        direct.json()["rows"][0]["_hevlayer_upserted_at"].is_u64(),
        "{}",
        direct.text()
    );
    // Stable reads see them once the namespace is stable (the watcher tracked the writes).
    stack.wait_watermark("pipeline-docs", layer_e2e::now_ms());
    let (_, count) = call(
        &stack,
        Method::POST,
        "/v2/namespaces/pipeline-docs/scans",
        json!({"mode": "count"}),
    );
    assert_eq!(count["count"], 2 * n - 1, "{count}");

    let (s, del) = call(&stack, Method::DELETE, "/v2/pipelines/docs", Value::Null);
    assert_eq!((s, del["status"].as_str()), (200, Some("deleted")));
    let (s, _) = call(
        &stack,
        Method::GET,
        "/v2/pipelines/docs/status",
        Value::Null,
    );
    assert_eq!(s, 404);
}

#[test]
fn vectors_mark_a_generation_indexed_once_and_upstream_failures_keep_the_lease() {
    let Some(stack) = stack_with_db("vectors") else {
        return;
    };
    create(&stack, "v", "pipeline-v");
    stage(&stack, "v", "a", &["alpha"]);
    let (_, c) = call(
        &stack,
        Method::POST,
        "/v2/pipelines/v/claim",
        json!({"worker_id": "w1"}),
    );
    assert_eq!(c["documents"], json!(["a"]));
    let vectors = json!({"vectors": [{"id": "a-0", "vector": [1.0, 2.0, 3.0]}]});
    let path = "/v2/pipelines/v/documents/a/vectors";

    // Upstream refuses the write: 502, nothing marked, the lease stays with w1.
    let fault = json!({"rules": [{"route": "write", "status": 500, "count": 1}]});
    assert!(
        stack
            .direct(Method::POST, "/_emu/faults", fault.to_string())
            .status
            .is_success()
    );
    let (s, e) = call(&stack, Method::PUT, path, vectors.clone());
    assert_eq!(
        (s, e["error"].as_str()),
        (502, Some("upstream_error")),
        "{e}"
    );
    let st = status(&stack, "v");
    assert_eq!(
        (
            st["counts"]["embedding"].as_i64(),
            st["processing_count"].as_i64()
        ),
        (Some(1), Some(1))
    );

    // Two finishes of one generation: indexed once.
    let (s, first) = call(&stack, Method::PUT, path, vectors.clone());
    assert_eq!(
        (s, first["status"].as_str()),
        (200, Some("indexed")),
        "{first}"
    );
    let (_, second) = call(&stack, Method::PUT, path, vectors.clone());
    assert_eq!(second["status"], "already_indexed");
    assert_eq!(status(&stack, "v")["counts"], json!({"indexed": 1}));

    // A document never staged: created indexed (what `write_single_vector` alone does).
    let (s, fresh) = call(
        &stack,
        Method::PUT,
        "/v2/pipelines/v/documents/solo/vectors",
        json!({"vectors": [{"id": "solo", "vector": [0.5, 0.5, 0.5]}]}),
    );
    assert_eq!(
        (s, fresh["status"].as_str()),
        (200, Some("indexed")),
        "{fresh}"
    );
    let (_, chunks) = call(
        &stack,
        Method::GET,
        "/v2/pipelines/v/documents/solo/chunks",
        Value::Null,
    );
    assert_eq!(chunks, json!([]));

    // Upstream's own 4xx (a dimension the namespace refuses) is relayed; nothing marked.
    stage(&stack, "v", "b", &["beta"]);
    let (s, e) = call(
        &stack,
        Method::PUT,
        "/v2/pipelines/v/documents/b/vectors",
        json!({"vectors": [{"id": "b-0", "vector": [1.0, 2.0]}]}),
    );
    assert!((400..500).contains(&s), "{s} {e}");
    assert_eq!(status(&stack, "v")["counts"]["pending"], 1);
}

#[test]
fn bad_input_is_refused_whole() {
    let Some(stack) = stack_with_db("bad_input") else {
        return;
    };
    create(&stack, "b", "pipeline-b");
    let code = |(s, v): (u16, Value)| (s, v["error"].as_str().unwrap_or("").to_string());
    let put = |doc: &str, body: Value| {
        code(call(
            &stack,
            Method::PUT,
            &format!("/v2/pipelines/b/documents/{doc}"),
            body,
        ))
    };
    assert_eq!(
        put("d", json!({"chunks": []})),
        (422, "validation_error".into())
    );
    assert_eq!(
        put("d", json!({"chunks": [{"id": 1}]})),
        (422, "validation_error".into())
    );
    assert_eq!(
        put(&"x".repeat(65), json!({"chunks": [{"id": "c"}]})),
        (422, "validation_error".into())
    );
    assert_eq!(
        code(call(
            &stack,
            Method::PUT,
            "/v2/pipelines/nope/documents/d",
            json!({"chunks": [{"id": "c"}]})
        )),
        (404, "not_found".into())
    );
    // A body past maxBodyBytes (64 MiB) is refused from its declared length, before it is read.
    // Sent raw: the gateway answers and closes while a client writing 65 MiB is still writing,
    // which an HTTP client may report as a broken pipe instead of the answer.
    assert_eq!(
        stack.raw_status(&format!(
            "PUT /v2/pipelines/b/documents/d HTTP/1.1\r\nhost: gateway\r\n\
             authorization: Bearer {UPSTREAM_KEY}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{{",
            65 << 20
        )),
        "HTTP/1.1 413 Payload Too Large"
    );
    let dup = r#"{"chunks":[{"id":"c"}],"chunks":[]}"#;
    let r = stack.gw(Method::PUT, "/v2/pipelines/b/documents/d", dup);
    assert_eq!(r.status, 422, "{}", r.text());
    // Nothing of the above was staged.
    assert_eq!(status(&stack, "b")["counts"], json!({}));

    stage(&stack, "b", "d", &["text"]);
    let vec_put = |body: Value| {
        code(call(
            &stack,
            Method::PUT,
            "/v2/pipelines/b/documents/d/vectors",
            body,
        ))
    };
    assert_eq!(
        vec_put(json!({"vectors": [{"id": "a", "vector": [1]}, {"id": "b", "vector": [1, 2]}]})),
        (422, "validation_error".into())
    );
    assert_eq!(
        vec_put(json!({"vectors": [{"id": "a", "vectors": [[1.0], [2.0]]}]})),
        (422, "unsupported_by_store".into())
    );
    assert_eq!(
        vec_put(json!({"vectors": [{"id": "a", "vector": [1], "attributes": {"_hevlayer_x": 1}}]}))
            .0,
        422
    );
    // A guarded move whose guard fails: 409 with the documents, nothing moved.
    let (s, v) = call(
        &stack,
        Method::POST,
        "/v2/pipelines/b/documents/stage",
        json!({"document_ids": ["d"], "stage": "indexed", "from_stage": "embedding"}),
    );
    assert_eq!((s, v["error"].as_str()), (409, Some("conflict")), "{v}");
    assert_eq!(v["document_ids"], json!(["d"]));
    let (s, v) = call(
        &stack,
        Method::POST,
        "/v2/pipelines/b/documents/stage",
        json!({"document_ids": ["d", "ghost"], "stage": "failed"}),
    );
    assert_eq!(
        (s, v["document_ids"].clone()),
        (404, json!(["ghost"])),
        "{v}"
    );
    assert_eq!(status(&stack, "b")["counts"], json!({"pending": 1}));
    let (s, _) = call(
        &stack,
        Method::POST,
        "/v2/pipelines/b/claim",
        json!({"worker_id": "w", "limit": 0}),
    );
    assert_eq!(s, 422);
}

#[test]
fn without_a_database_pipeline_routes_answer_503_and_the_rest_serves() {
    let stack = Stack::start();
    let (s, v) = call(&stack, Method::GET, "/v2/pipelines", Value::Null);
    assert_eq!(
        (s, v["error"].as_str()),
        (503, Some("database_not_configured"))
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("LAYER_DATABASE_URL")
    );
    stack.write("no-db", json!({"upsert_rows": [{"id": 1}]}));
}

#[test]
fn postgresql_down_is_500_and_recovers_by_itself() {
    let Some((url, schema)) = test_database("pg_down") else {
        return;
    };
    // Reach PostgreSQL through a proxy the test can cut.
    let pg = pg_addr(&url);
    let proxy = Proxy::start(pg);
    let proxied = url.replace(&pg.to_string(), &proxy.addr.to_string());
    let stack = Stack::start_with(with_db(&proxied, &schema));
    create(&stack, "p", "pipeline-p");
    stage(&stack, "p", "before", &["x"]);

    proxy.cut();
    let started = Instant::now();
    let (s, v) = stage(&stack, "p", "during", &["y"]);
    assert_eq!(
        (s, v["error"].as_str()),
        (500, Some("database_unavailable")),
        "{v}"
    );
    let (s, _) = call(&stack, Method::GET, "/v2/pipelines/p/status", Value::Null);
    assert_eq!(s, 500);
    // The connect timeout (5 s default) bounds how long a call waits.
    assert!(started.elapsed() < Duration::from_secs(30));
    stack.write("pipeline-other", json!({"upsert_rows": [{"id": 1}]}));
    assert_eq!(stack.gw(Method::GET, "/health", Bytes::new()).status, 200);

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, v) = stage(&stack, "p", "after", &["z"]);
        if s == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {s} {v}");
        pause(Duration::from_millis(200));
    }
    assert_eq!(status(&stack, "p")["counts"], json!({"pending": 2}));
    assert!(
        stack.metric(r#"layer_pipeline_database_errors_total{code="database_unavailable"}"#) >= 1.0
    );
}

#[test]
fn a_restart_keeps_every_state() {
    let Some((url, schema)) = test_database("restart") else {
        return;
    };
    let mut stack = Stack::start_with(with_db(&url, &schema));
    create(&stack, "r", "pipeline-r");
    for d in ["a", "b", "c"] {
        stage(&stack, "r", d, &[d]);
    }
    let (_, c) = call(
        &stack,
        Method::POST,
        "/v2/pipelines/r/claim",
        json!({"worker_id": "w", "limit": 1}),
    );
    let held = c["documents"][0].as_str().unwrap().to_string();
    let before = status(&stack, "r");
    let s3 = TestS3::from_env();
    // The chunks must outlive the gateway's data dir: on the S3 server when the test command
    // started one, otherwise the restarted gateway gets the same data dir.
    let dir = layer_e2e::temp_dir("pipeline-restart");
    let prefix = TestS3::unique_prefix("pipeline-restart");
    let configure = |c: &mut layer_gateway::Config| {
        c.gateway.queue.url = Some(url.clone());
        c.gateway.queue.schema = schema.clone();
        c.gateway.data_dir = dir.clone();
        if let Some(s3) = &s3 {
            s3.configure(c, &prefix);
        }
    };
    stack.restart_gateway(configure, None);
    // Stage with the restarted gateway's configuration, then restart again over it.
    stage(&stack, "r", "d", &["delta"]);
    stack.restart_gateway(configure, None);
    let after = status(&stack, "r");
    assert_eq!(
        after["counts"]["pending"],
        before["counts"]["pending"].as_i64().unwrap() + 1
    );
    assert_eq!(after["counts"]["embedding"], 1);
    let (_, chunks) = call(
        &stack,
        Method::GET,
        "/v2/pipelines/r/documents/d/chunks",
        Value::Null,
    );
    assert_eq!(chunks, json!([{"id": "d-0", "text": "delta"}]));
    // The lease survived too: its holder can still finish it, another worker cannot take it.
    let (_, other) = call(
        &stack,
        Method::POST,
        "/v2/pipelines/r/claim",
        json!({"worker_id": "w2", "limit": 10}),
    );
    assert!(
        !other["documents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == held.as_str())
    );
    let (s, _) = call(
        &stack,
        Method::POST,
        "/v2/pipelines/r/documents/stage",
        json!({"document_ids": [held], "stage": "indexed", "worker_id": "w"}),
    );
    assert_eq!(s, 200);
}

#[test]
fn chunks_come_from_the_object_store_when_the_cache_refuses_and_503_when_both_are_down() {
    let Some((url, schema)) = test_database("chunks_faults") else {
        return;
    };
    let Some(s3) = TestS3::from_env() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no S3 server under CI"
        );
        eprintln!("SKIPPED: LAYER_TEST_S3_ENDPOINT is unset");
        return;
    };
    let s3_addr: SocketAddr = s3
        .endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("LAYER_TEST_S3_ENDPOINT as http://127.0.0.1:port");
    let proxy = Proxy::start(s3_addr);
    let via_proxy = TestS3 {
        endpoint: format!("http://{}", proxy.addr),
        bucket: s3.bucket.clone(),
    };
    let inner: Arc<dyn layer_cache::Tier> = Arc::new(
        layer_cache::NvmeTier::open(layer_cache::NvmeConfig::new(
            layer_e2e::temp_dir("pipeline-tier"),
            64 << 20,
        ))
        .unwrap(),
    );
    let tier = RemoteTier::new(inner);
    let prefix = TestS3::unique_prefix("pipeline-chunks");
    let stack = Stack::start_with_tier(
        |c| {
            with_db(&url, &schema)(c);
            via_proxy.configure(c, &prefix);
        },
        Some(Arc::new(tier.clone())),
    );
    create(&stack, "c", "pipeline-c");
    let reads = |source: &str| {
        stack.metric(&format!(
            r#"layer_pipeline_chunk_reads_total{{pipeline_id="c",source="{source}"}}"#
        ))
    };
    stage(&stack, "c", "warm", &["cached"]);
    let (_, got) = call(
        &stack,
        Method::GET,
        "/v2/pipelines/c/documents/warm/chunks",
        Value::Null,
    );
    assert_eq!(got, json!([{"id": "warm-0", "text": "cached"}]));
    assert_eq!(reads("cache"), 1.0);

    // The cache refuses writes (stop-writes): staging goes on to the object store only.
    tier.cut();
    let (s, v) = stage(&stack, "c", "cold", &["stored"]);
    assert_eq!(s, 200, "{v}");
    assert!(stack.metric(r#"layer_pipeline_chunk_cache_skips_total{pipeline_id="c"}"#) >= 1.0);
    let (s, got) = call(
        &stack,
        Method::GET,
        "/v2/pipelines/c/documents/cold/chunks",
        Value::Null,
    );
    assert_eq!((s, got), (200, json!([{"id": "cold-0", "text": "stored"}])));
    assert_eq!(reads("object_store"), 1.0);

    // And the object store too: 503 cache_cold, and staging fails without writing a row.
    proxy.cut();
    let (s, v) = call(
        &stack,
        Method::GET,
        "/v2/pipelines/c/documents/cold/chunks",
        Value::Null,
    );
    assert_eq!((s, v["error"].as_str()), (503, Some("cache_cold")), "{v}");
    let (s, v) = stage(&stack, "c", "lost", &["nowhere"]);
    assert_eq!(s, 502, "{v}");
    let counts: BTreeMap<String, i64> =
        serde_json::from_value(status(&stack, "c")["counts"].clone()).unwrap();
    assert_eq!(counts, BTreeMap::from([("pending".to_string(), 2)]));

    // Both back: served again.
    proxy.restore();
    tier.restore();
    let (s, _) = call(
        &stack,
        Method::GET,
        "/v2/pipelines/c/documents/cold/chunks",
        Value::Null,
    );
    assert_eq!(s, 200);
}

#[test]
fn the_stage_gauge_shows_pending_for_keda() {
    let Some(stack) = stack_with_db("gauge") else {
        return;
    };
    create(&stack, "g", "pipeline-g");
    for d in ["a", "b", "c"] {
        stage(&stack, "g", d, &[d]);
    }
    call(
        &stack,
        Method::POST,
        "/v2/pipelines/g/claim",
        json!({"worker_id": "w", "limit": 1}),
    );
    // Refreshed every 10 s (GAUGE_INTERVAL, the default).
    let pending = r#"layer_pipeline_stage_count{pipeline_id="g",stage="pending"}"#;
    let embedding = r#"layer_pipeline_stage_count{pipeline_id="g",stage="embedding"}"#;
    let deadline = Instant::now() + Duration::from_secs(25);
    while stack.metric(pending) != 2.0 || stack.metric(embedding) != 1.0 {
        assert!(
            Instant::now() < deadline,
            "gauge never showed 2 pending, 1 embedding"
        );
        pause(Duration::from_millis(250));
    }
    let transitions = r#"layer_stage_transitions_total{pipeline_id="g",from_stage="pending",to_stage="embedding",status="ok"}"#;
    assert_eq!(stack.metric(transitions), 1.0);
}
