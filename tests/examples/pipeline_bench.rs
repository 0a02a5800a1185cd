//! The pipeline API's benchmark through HTTP (run by `bench/pipelines.sh`, beside the queue's
//! Rust-API and raw-SQL figures; a program, never a timed test).
//!
//! An emulator and a gateway (2 shards, the documented defaults, the queue on
//! `LAYER_TEST_DATABASE_URL` in a fresh schema) in this process, then:
//!
//! 1. **Queue**: DOCS documents staged through the queue's Rust API (setup, not measured), then
//!    8 concurrent HTTP workers each looping `POST …/claim` (limit 16) → `POST …/documents/stage`
//!    (`indexed`, guarded by `from_stage` and `worker_id`) until a claim comes back empty:
//!    documents per second, and claim-call latency p50/p99.
//! 2. **Vectors**: VDOCS documents, each one `PUT …/documents/{doc}/vectors` call with 8 rows of
//!    DIMS dimensions, 8 concurrent writers, against the same rows written straight to the
//!    emulator (`POST /v2/namespaces/{ns}` with `upsert_rows`), in alternating rounds: rows per
//!    second each way.
//!
//! Usage: `LAYER_TEST_DATABASE_URL=postgresql://... cargo run --release -p layer-e2e --example
//! pipeline_bench [DOCS] [VDOCS]` (defaults 20000 and 4000; DOCS 0 skips the queue part).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use layer_e2e::{Emulator, UPSTREAM_KEY, base_config};
use layer_queue::{NewPipeline, Queue, QueueConfig};
use serde_json::{Value, json};

const WORKERS: usize = 8;
const BATCH: u32 = 16;
const ROWS_PER_CALL: usize = 8;
const DIMS: usize = 384;

type Http = Client<HttpConnector, Full<Bytes>>;

async fn send(c: &Http, method: Method, url: &str, body: String) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {UPSTREAM_KEY}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let resp = c.request(req).await.expect("request failed");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let url = std::env::var("LAYER_TEST_DATABASE_URL").expect("LAYER_TEST_DATABASE_URL");
    let mut args = std::env::args().skip(1);
    let docs: usize = args.next().map_or(20_000, |s| s.parse().expect("DOCS"));
    let vdocs: usize = args.next().map_or(4_000, |s| s.parse().expect("VDOCS"));
    let emulator = Emulator::start();
    let schema = format!("bench_http_{:08x}", std::process::id());
    let mut cfg = base_config(&emulator.url());
    cfg.gateway.queue.url = Some(url.clone());
    cfg.gateway.queue.schema = schema.clone();
    let gateway = layer_gateway::start(cfg, &|_| None).expect("gateway");
    let base = format!("http://{}", gateway.addr);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("client runtime");
    rt.block_on(async {
        let http: Http = Client::builder(TokioExecutor::new()).build_http();
        let mut qc = QueueConfig::new(url);
        qc.schema = schema.clone();
        let queue = Queue::connect(&qc).await.expect("queue");
        println!(
            "# pipeline API through HTTP: {WORKERS} workers, gateway with 2 shards, schema {schema}"
        );
        if docs > 0 {
            queue_throughput(&http, &queue, &base, docs).await;
        }
        vectors(&http, &base, &emulator.url(), vdocs).await;
    });
    gateway.shutdown();
}

async fn queue_throughput(http: &Http, queue: &Queue, base: &str, docs: usize) {
    queue
        .create_pipeline(&NewPipeline::new("bench", "bench-vectors"))
        .await
        .expect("pipeline");
    let ids: Vec<String> = (0..docs).map(|i| format!("d{i:07}")).collect();
    for chunk in ids.chunks(5_000) {
        queue.stage_documents("bench", chunk).await.expect("stage");
    }
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let (http, base, done) = (http.clone(), base.to_string(), done.clone());
        tasks.push(tokio::spawn(async move {
            let worker = format!("w{w}");
            let mut claims = Vec::new();
            loop {
                let t = Instant::now();
                let (s, v) = send(
                    &http,
                    Method::POST,
                    &format!("{base}/v2/pipelines/bench/claim"),
                    json!({"worker_id": worker, "limit": BATCH}).to_string(),
                )
                .await;
                claims.push(t.elapsed());
                assert_eq!(s, 200, "claim: {v}");
                let got = v["documents"].as_array().map_or(0, Vec::len);
                if got == 0 {
                    return claims;
                }
                let (s, v) = send(
                    &http,
                    Method::POST,
                    &format!("{base}/v2/pipelines/bench/documents/stage"),
                    json!({"document_ids": v["documents"], "stage": "indexed",
                           "from_stage": "embedding", "worker_id": worker})
                    .to_string(),
                )
                .await;
                assert_eq!(s, 200, "complete: {v}");
                done.fetch_add(got, Ordering::Relaxed);
            }
        }));
    }
    let mut claims = Vec::new();
    for t in tasks {
        claims.extend(t.await.expect("worker"));
    }
    let secs = started.elapsed().as_secs_f64();
    claims.sort();
    let n = done.load(Ordering::Relaxed);
    assert_eq!(n, docs, "every document completed once");
    println!();
    println!("| path | documents | seconds | documents/s | claim p50 ms | claim p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| HTTP API (claim 16 + guarded stage move) | {n} | {secs:.2} | {:.0} | {:.2} | {:.2} |",
        n as f64 / secs,
        pct(&claims, 0.5),
        pct(&claims, 0.99)
    );
}

/// One call's rows for document `d`: ROWS_PER_CALL rows of DIMS dimensions.
fn rows(d: usize) -> Vec<Value> {
    (0..ROWS_PER_CALL)
        .map(|r| {
            let v: Vec<f64> = (0..DIMS)
                .map(|k| ((d * 31 + r * 7 + k) % 97) as f64 / 97.0)
                .collect();
            json!({"id": format!("v{d}-{r}"), "vector": v, "attributes": {"doc": format!("v{d}")}})
        })
        .collect()
}

async fn vectors(http: &Http, base: &str, emulator: &str, vdocs: usize) {
    for (pid, delay_ms) in [("vec", 0), ("vec-delayed", UPSTREAM_DELAY_MS)] {
        let (s, v) = send(
            http,
            Method::POST,
            &format!("{base}/v2/pipelines"),
            json!({"id": pid, "target_namespace": format!("bench-{pid}")}).to_string(),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        if delay_ms > 0 {
            // Every upstream write takes this long before the emulator runs it, as a write to a
            // remote Turbopuffer does (tens to hundreds of milliseconds), on both paths.
            let rule = json!({"rules": [{"route": "write", "delay_ms": delay_ms}]});
            let (s, v) = send(
                http,
                Method::POST,
                &format!("{emulator}/_emu/faults"),
                rule.to_string(),
            )
            .await;
            assert_eq!(s, 200, "{v}");
        }
        // Fewer documents with the delay: each call then takes the delay at least.
        let n = if delay_ms > 0 { vdocs / 4 } else { vdocs };
        compare_vectors(http, base, emulator, pid, n, delay_ms).await;
        if delay_ms > 0 {
            send(
                http,
                Method::DELETE,
                &format!("{emulator}/_emu/faults"),
                String::new(),
            )
            .await;
        }
    }
}

/// Upstream write latency of the second comparison.
const UPSTREAM_DELAY_MS: u64 = 20;

async fn compare_vectors(
    http: &Http,
    base: &str,
    emulator: &str,
    pid: &str,
    vdocs: usize,
    delay_ms: u64,
) {
    // Rounds alternate the two paths so drift on a shared machine hits both alike.
    let rounds = 4;
    let per_round = vdocs / rounds;
    let (mut via, mut direct) = (0.0, 0.0);
    for round in 0..rounds {
        let range = round * per_round..(round + 1) * per_round;
        let (base, p) = (base.to_string(), pid.to_string());
        via += run_writers(http, range.clone(), move |d| {
            let url = format!("{base}/v2/pipelines/{p}/documents/v{d}/vectors");
            (Method::PUT, url, json!({"vectors": rows(d)}).to_string())
        })
        .await;
        let (emulator, p) = (emulator.to_string(), pid.to_string());
        direct += run_writers(http, range, move |d| {
            let url = format!("{emulator}/v2/namespaces/bench-direct-{p}");
            let upsert: Vec<Value> = rows(d)
                .into_iter()
                .map(|mut r| {
                    let attrs = r["attributes"].take();
                    let mut o = r.as_object().cloned().unwrap_or_default();
                    o.remove("attributes");
                    if let Value::Object(a) = attrs {
                        o.extend(a);
                    }
                    Value::Object(o)
                })
                .collect();
            let body = json!({"upsert_rows": upsert, "distance_metric": "cosine_distance"});
            (Method::POST, url, body.to_string())
        })
        .await;
    }
    let n = (per_round * rounds * ROWS_PER_CALL) as f64;
    println!();
    println!(
        "| vectors ({ROWS_PER_CALL} rows x {DIMS} dims per call, {WORKERS} writers, upstream write delay {delay_ms} ms) | rows | seconds | rows/s |"
    );
    println!("|---|---:|---:|---:|");
    println!(
        "| pipeline `put_pipeline_document_vectors` (gateway) | {n} | {via:.2} | {:.0} |",
        n / via
    );
    println!(
        "| the same rows straight to the emulator | {n} | {direct:.2} | {:.0} |",
        n / direct
    );
    println!("| pipeline / direct (time) | | {:.2} | |", via / direct);
    let (_, metrics) = get_text(http, &format!("{base}/metrics")).await;
    let sample = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let writes = sample(&format!(
        r#"layer_pipeline_vector_writes_total{{pipeline_id="{pid}"}}"#
    ));
    let calls = sample(&format!(
        r#"layer_pipeline_vectors_total{{pipeline_id="{pid}",status="ok"}}"#
    ));
    println!();
    println!(
        "Group commit: {calls} vectors calls went up in {writes} upstream writes ({:.2} calls per write).",
        calls / writes.max(1.0)
    );
}

async fn get_text(c: &Http, url: &str) -> (u16, String) {
    let req = Request::builder()
        .method(Method::GET)
        .uri(url)
        .header("authorization", format!("Bearer {UPSTREAM_KEY}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = c.request(req).await.expect("request");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Runs `WORKERS` writers over `docs`, each sending the request `make` builds; returns seconds.
async fn run_writers(
    http: &Http,
    docs: std::ops::Range<usize>,
    make: impl Fn(usize) -> (Method, String, String) + Send + Sync + Clone + 'static,
) -> f64 {
    let next = Arc::new(AtomicUsize::new(docs.start));
    let end = docs.end;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let (http, next, make) = (http.clone(), next.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let d = next.fetch_add(1, Ordering::Relaxed);
                if d >= end {
                    return;
                }
                let (m, url, body) = make(d);
                let (s, v) = send(&http, m, &url, body).await;
                assert_eq!(s, 200, "{url}: {v}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    started.elapsed().as_secs_f64()
}
