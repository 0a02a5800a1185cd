//! Measures the Function reconciler (issue 22's Measure section): 1,000 distinct Functions, each
//! reconciled once (create → Deployment, KEDA `ScaledObject`, gateway registration, discovery,
//! status), against an in-process scripted API server (`tower_test::mock`, as the tests use) and a
//! fake gateway on 127.0.0.1. Unlike the tests' doubles, these keep no request log and drop every
//! body once answered, so the process's peak RSS (`VmHWM`) is the operator's own work plus the
//! two small doubles.
//!
//! Run in release: `cargo run --release -p layer-operator --example measure_functions [N]`.
//! Prints per-reconcile latency (mean, p50, p99, max), CPU seconds and `VmHWM` before and after.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crds::k8s::{Function, InfraRules, VectorStore};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

const CRDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/tests/fixtures");

fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let text = std::fs::read_to_string(format!("{CRDS}/{name}")).expect("fixture");
    serde_yaml_ng::from_str(&text).expect("fixture parses")
}

fn proc_status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// The scripted API server: answers by path, keeps nothing but a PATCH counter.
fn api_server(
    template: Value,
    infra: Value,
    store: Value,
    patches: Arc<AtomicUsize>,
) -> kube::Client {
    let (svc, mut handle) = tower_test::mock::pair::<
        http::Request<kube::client::Body>,
        http::Response<kube::client::Body>,
    >();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let path = parts.uri.path();
            let named = |name: &str| {
                let mut o = template.clone();
                o["metadata"]["name"] = json!(name);
                o
            };
            let (status, reply): (u16, Vec<u8>) = match (parts.method.as_str(), path) {
                ("GET", "/apis/hevlayer.com/v1alpha1/infrarules/default") => {
                    (200, serde_json::to_vec(&infra).unwrap_or_default())
                }
                ("GET", p) if p.ends_with("/vectorstores") => {
                    let list = json!({"apiVersion": "v1", "kind": "VectorStoreList",
                                      "metadata": {"resourceVersion": "1"}, "items": [store]});
                    (200, serde_json::to_vec(&list).unwrap_or_default())
                }
                ("PATCH", p) if p.contains("/functions/") && p.ends_with("/status") => {
                    patches.fetch_add(1, Ordering::Relaxed);
                    let name = p.trim_end_matches("/status").rsplit('/').next().unwrap_or("");
                    let mut o = named(name);
                    let sent: Value = serde_json::from_slice(&bytes).unwrap_or_default();
                    o["status"] = sent["status"].clone();
                    (200, serde_json::to_vec(&o).unwrap_or_default())
                }
                ("PATCH", p) if p.contains("/functions/") => {
                    let name = p.rsplit('/').next().unwrap_or("");
                    (200, serde_json::to_vec(&named(name)).unwrap_or_default())
                }
                // Server-side apply of the Deployment / ScaledObject / Service: echo the body.
                ("PATCH", _) => {
                    patches.fetch_add(1, Ordering::Relaxed);
                    (200, bytes.to_vec())
                }
                ("POST", p) if p.ends_with("/events") => (201, bytes.to_vec()),
                _ => (
                    404,
                    br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","reason":"NotFound","code":404}"#.to_vec(),
                ),
            };
            let resp = http::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(kube::client::Body::from(reply));
            if let Ok(r) = resp {
                send.send_response(r);
            }
        }
    });
    kube::Client::new(svc, "default")
}

/// The fake gateway: accepts every UDF registration and discovery.
async fn gateway() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let (parts, body) = req.into_parts();
                    let bytes = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let sent: Value = serde_json::from_slice(&bytes).unwrap_or_default();
                    let id = parts.uri.path().split('/').nth(3).unwrap_or("").to_string();
                    let reply = if parts.uri.path().ends_with("/discover") {
                        json!({"udf_id": id, "enqueued": 1, "namespaces": ["products"]})
                    } else {
                        json!({"id": id, "spec": sent["spec"], "paused": false,
                               "created_at": "t", "updated_at": "t"})
                    };
                    http::Response::builder()
                        .status(200)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(
                            serde_json::to_vec(&reply).unwrap_or_default(),
                        )))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let infra: InfraRules = fixture("infrarules.yaml");
    let store: VectorStore = fixture("vectorstore.yaml");
    let mut base: Function = fixture("function-tag-products.yaml");
    base.metadata.finalizers = Some(vec!["hevlayer.com/function-cleanup".into()]);
    base.metadata.generation = Some(1);
    base.metadata.resource_version = Some("1".into());
    let template = serde_json::to_value(&base)?;
    let patches = Arc::new(AtomicUsize::new(0));
    let client = api_server(
        template,
        serde_json::to_value(&infra)?,
        serde_json::to_value(&store)?,
        patches.clone(),
    );
    let mut config = layer_operator::config::Config::for_tests(&gateway().await);
    config.gateway_api_key = Some("admin-token".into());
    config.metrics_url = "http://metrics:8428".into();
    let ctx = Arc::new(layer_operator::context::Context::new(
        client,
        config,
        Arc::default(),
    )?);
    let functions: Vec<Arc<Function>> = (0..n)
        .map(|i| {
            let mut f = base.clone();
            f.metadata.name = Some(format!("fn-{i:04}"));
            f.metadata.uid = Some(format!("uid-{i}"));
            Arc::new(f)
        })
        .collect();
    let hwm_before = proc_status("VmHWM");
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let mut took: Vec<Duration> = Vec::with_capacity(n);
    for f in &functions {
        let t = Instant::now();
        layer_operator::workload::reconcile_function(f.clone(), ctx.clone()).await?;
        took.push(t.elapsed());
    }
    let total = start.elapsed();
    let cpu = cpu_seconds() - cpu0;
    took.sort();
    let pct = |p: f64| took[((took.len() as f64 - 1.0) * p).round() as usize];
    println!("functions reconciled: {n} (sequential, one reconcile each)");
    println!(
        "server-side applies + status patches: {}",
        patches.load(Ordering::Relaxed)
    );
    println!(
        "per reconcile: mean {:?}, p50 {:?}, p99 {:?}, max {:?}; total {:?}",
        total / n as u32,
        pct(0.5),
        pct(0.99),
        took[took.len() - 1],
        total
    );
    println!(
        "CPU: {cpu:.2} s ({:.2} ms per reconcile)",
        cpu * 1000.0 / n as f64
    );
    println!(
        "VmHWM before reconciles: {hwm_before}; after: {}",
        proc_status("VmHWM")
    );
    println!("VmRSS at the end: {}", proc_status("VmRSS"));
    Ok(())
}
