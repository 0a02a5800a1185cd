//! `layer run -f`: the test plays the Kubernetes API server (a scripted fake over plain HTTP on
//! 127.0.0.1:0, named by a kubeconfig the test writes), the gateway, emulator and PostgreSQL are
//! the real ones, and a UDF worker written here claims from the gateway's queue and completes
//! (failing chosen rows permanently), so the queue really drains. Covered: the server-side apply
//! (path, field manager, content type, body, bearer), `--index`, `--context`,
//! `--kube-namespace` and the context's namespace, `--rm` after a clean drain (the CR and the
//! registration deleted) and not after failures (exit 1, both kept), `--no-apply --detach` (no
//! API-server call; back once discovery completed), and an invalid manifest (the field named,
//! nothing applied or registered).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use layer_e2e::pipelines::{call, with_db};
use layer_e2e::{Stack, UPSTREAM_KEY, pause, test_database};
use serde_json::{Value, json};

use super::{home, layer};

/// One request the fake API server saw.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    content_type: String,
    authorization: String,
    body: Value,
}

/// The scripted API server: PATCH answers the applied object back (with a uid and a
/// resourceVersion, as a server would), DELETE answers a success `Status`, anything else 404.
struct FakeApiServer {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    _rt: tokio::runtime::Runtime,
}

fn status_body(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
           "status": if code < 300 { "Success" } else { "Failure" },
           "reason": reason, "code": code})
}

async fn answer(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |k: &str| {
        req.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (content_type, authorization) = (header("content-type"), header("authorization"));
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    seen.lock().unwrap().push(Seen {
        method: method.clone(),
        path,
        query,
        content_type,
        authorization,
        body: body.clone(),
    });
    let (code, out) = match method.as_str() {
        "PATCH" => {
            let mut obj = body;
            obj["metadata"]["uid"] = json!("5f0c-test");
            obj["metadata"]["resourceVersion"] = json!("1");
            obj["metadata"]["generation"] = json!(1);
            (200, obj)
        }
        "DELETE" => (200, status_body(200, "")),
        _ => (404, status_body(404, "NotFound")),
    };
    Ok(Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(out.to_string())))
        .unwrap())
}

impl FakeApiServer {
    fn start() -> FakeApiServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        rt.spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| answer(req, log.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        FakeApiServer { url, seen, _rt: rt }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A pull worker on the gateway's UDF routes: claims batches and completes each row with
/// `cli_tag`, failing the ids in `fail` permanently, until stopped.
struct Worker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Worker {
    fn start(gateway: &str, udf: &str, fail: &'static [&'static str]) -> Worker {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, gw, udf) = (stop.clone(), gateway.to_string(), udf.to_string());
        let thread = std::thread::spawn(move || {
            let http = layer_e2e::Http::default();
            let auth = format!("Bearer {UPSTREAM_KEY}");
            let post = |path: String, body: Value| -> (u16, Value) {
                let r = http.send(
                    Method::POST,
                    &format!("{gw}{path}"),
                    &[("authorization", auth.as_str())],
                    body.to_string(),
                );
                let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                (r.status.as_u16(), v)
            };
            let mut handled = 0;
            while !flag.load(Ordering::Relaxed) {
                let (s, v) = post(
                    format!("/v2/udfs/{udf}/claim"),
                    json!({"worker_id": "cli-test-worker", "limit": 8}),
                );
                let items = v["items"].as_array().cloned().unwrap_or_default();
                if s != 200 || items.is_empty() {
                    pause(Duration::from_millis(50));
                    continue;
                }
                let (bad, good): (Vec<Value>, Vec<Value>) = items
                    .into_iter()
                    .partition(|i| fail.contains(&i["id"].as_str().unwrap_or("")));
                if !good.is_empty() {
                    let done: Vec<Value> = good
                        .iter()
                        .map(|i| json!({"namespace": i["namespace"], "id": i["id"],
                                        "attributes": {"cli_tag": format!("t-{}", i["input"]["title"].as_str().unwrap_or(""))}}))
                        .collect();
                    let (s, v) = post(
                        format!("/v2/udfs/{udf}/items/complete"),
                        json!({"worker_id": "cli-test-worker", "items": done}),
                    );
                    assert_eq!(s, 200, "complete: {v}");
                }
                if !bad.is_empty() {
                    let failed: Vec<Value> = bad
                        .iter()
                        .map(|i| {
                            json!({"namespace": i["namespace"], "id": i["id"],
                                        "kind": "permanent", "message": "no title for you"})
                        })
                        .collect();
                    let (s, v) = post(
                        format!("/v2/udfs/{udf}/items/fail"),
                        json!({"worker_id": "cli-test-worker", "items": failed}),
                    );
                    assert_eq!(s, 200, "fail: {v}");
                }
                handled += good.len() + bad.len();
            }
            handled
        });
        Worker {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the worker; the number of rows it handled.
    fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("worker panicked")
    }
}

fn kubeconfig(dir: &std::path::Path, server: &str) -> String {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: elsewhere\nclusters:\n\
- name: fake\n  cluster:\n    server: {server}\n\
- name: nowhere\n  cluster:\n    server: http://127.0.0.1:1\n\
users:\n- name: tester\n  user:\n    token: fake-token\n\
contexts:\n\
- name: fake-ctx\n  context:\n    cluster: fake\n    user: tester\n    namespace: from-context\n\
- name: elsewhere\n  context:\n    cluster: nowhere\n    user: tester\n"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

fn manifest(dir: &std::path::Path, name: &str, namespace: Option<&str>, worker: &str) -> String {
    let path = dir.join(format!("{name}.yaml"));
    let ns = namespace.map_or(String::new(), |n| format!("  namespace: {n}"));
    let text = [
        "apiVersion: hevlayer.com/v1alpha1".to_string(),
        "kind: Function".into(),
        "metadata:".into(),
        format!("  name: {name}"),
        ns,
        "  labels:".into(),
        "    team: search".into(),
        "spec:".into(),
        "  targetNamespaces: [replaced-by-index]".into(),
        "  inputs: [id, title]".into(),
        "  version: v1".into(),
        "  worker:".into(),
        worker.into(),
        "  schedule:".into(),
        "    leaseSeconds: 60".into(),
        "  triggers: [discovery]".into(),
    ]
    .into_iter()
    .filter(|l| !l.is_empty())
    .collect::<Vec<_>>()
    .join("\n");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

const WORKER: &str = "    image: ghcr.io/example/tag:1\n    batchSize: 8";

#[test]
fn run_applies_registers_and_waits_for_the_drain() {
    let Some((db, schema)) = test_database("cli_run") else {
        return;
    };
    let stack = Stack::start_with(with_db(&db, &schema));
    let gw = stack.gateway_url.clone();
    let api = FakeApiServer::start();
    let h = home("cli-run");
    let kc = kubeconfig(&h, &api.url);
    let rows: Vec<Value> = (1..=5)
        .map(|i| json!({"id": format!("r{i}"), "title": format!("row {i}")}))
        .collect();
    stack.write("cli-fn-rows", json!({ "upsert_rows": rows }));
    let vars = [
        ("LAYER_BASE_URL", gw.as_str()),
        ("LAYER_API_KEY", UPSTREAM_KEY),
        ("KUBECONFIG", kc.as_str()),
    ];
    // --interval 0.2 (default 2 s) only so the test polls the drain quickly.
    let fast = ["--interval", "0.2"];

    // 1. A clean drain with --rm: applied in --kube-namespace through --context, registered
    //    with --index's target, every row done, then the registration and the CR deleted.
    let file = manifest(&h, "cli-tags", Some("from-manifest"), WORKER);
    let worker = Worker::start(&gw, "cli-tags", &[]);
    let mut args = vec![
        "run",
        "-f",
        &file,
        "--index",
        "cli-fn-rows",
        "--context",
        "fake-ctx",
        "--kube-namespace",
        "layer-test",
        "--rm",
    ];
    args.extend(fast);
    let r = layer(&h, &args, &vars);
    let handled = worker.stop();
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(handled, 5, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("cli-tags drained: pending=0 processing=0 failed=0"),
        "{}",
        r.stdout
    );
    let seen = api.seen();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    let (patch, delete) = (&seen[0], &seen[1]);
    let fn_path = "/apis/hevlayer.com/v1alpha1/namespaces/layer-test/functions/cli-tags";
    assert_eq!(
        (patch.method.as_str(), patch.path.as_str()),
        ("PATCH", fn_path)
    );
    let query: Vec<&str> = patch.query.split('&').collect();
    assert!(query.contains(&"fieldManager=layer-cli"), "{}", patch.query);
    assert_eq!(patch.content_type, "application/apply-patch+yaml");
    assert_eq!(patch.authorization, "Bearer fake-token");
    let b = &patch.body;
    assert_eq!(b["apiVersion"], "hevlayer.com/v1alpha1");
    assert_eq!(b["kind"], "Function");
    assert_eq!(b["metadata"]["name"], "cli-tags");
    assert_eq!(b["metadata"]["namespace"], "layer-test");
    assert_eq!(b["metadata"]["labels"], json!({"team": "search"}));
    assert_eq!(b["spec"]["targetNamespaces"], json!(["cli-fn-rows"]));
    assert_eq!(b["spec"]["inputs"], json!(["id", "title"]));
    assert_eq!(b["spec"]["worker"]["image"], "ghcr.io/example/tag:1");
    assert_eq!(b["spec"]["worker"]["batchSize"], 8);
    assert_eq!(b["spec"]["schedule"]["leaseSeconds"], 60);
    assert_eq!(
        (delete.method.as_str(), delete.path.as_str()),
        ("DELETE", fn_path)
    );
    assert_eq!(
        call(&stack, Method::GET, "/v2/udfs/cli-tags", Value::Null).0,
        404,
        "--rm deletes the registration"
    );
    let q = stack.gw(
        Method::POST,
        "/v2/namespaces/cli-fn-rows/query",
        json!({"rank_by": ["id", "asc"], "top_k": 10, "include_attributes": ["cli_tag"],
               "consistency": {"level": "strong"}})
        .to_string(),
    );
    let tags: Vec<Value> = q.json()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cli_tag"].clone())
        .collect();
    assert_eq!(
        tags,
        (1..=5)
            .map(|i| json!(format!("t-row {i}")))
            .collect::<Vec<_>>()
    );

    // 2. A drain with a failure: exit 1, --rm does nothing, the CR (in the context's namespace:
    //    neither the flag nor the manifest names one) and the registration stay.
    let file = manifest(&h, "cli-tags-fail", None, WORKER);
    let worker = Worker::start(&gw, "cli-tags-fail", &["r3"]);
    let mut args = vec![
        "run",
        "-f",
        &file,
        "--index",
        "cli-fn-rows",
        "--context",
        "fake-ctx",
        "--rm",
    ];
    args.extend(fast);
    let r = layer(&h, &args, &vars);
    worker.stop();
    assert_eq!(r.code, 1, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    let last = r.stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with("error: udf cli-tags-fail: the queue drained with 1 failed item"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("failed=1"), "{}", r.stdout);
    let seen = api.seen();
    assert_eq!(seen.len(), 3, "no DELETE after failures: {seen:#?}");
    assert_eq!(seen[2].method, "PATCH");
    assert_eq!(
        seen[2].path,
        "/apis/hevlayer.com/v1alpha1/namespaces/from-context/functions/cli-tags-fail"
    );
    let (s, v) = call(&stack, Method::GET, "/v2/udfs/cli-tags-fail", Value::Null);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"]["failed_count"], 1, "{v}");

    // 3. --no-apply --detach: no API-server call at all (the kubeconfig is not even read: it
    //    names a file that does not exist), registered and discovered, no wait.
    let file = manifest(&h, "cli-tags-detached", None, WORKER);
    let r = layer(
        &h,
        &[
            "run",
            "-f",
            &file,
            "--index",
            "cli-fn-rows",
            "--no-apply",
            "--detach",
            "-o",
            "json",
        ],
        &[
            ("LAYER_BASE_URL", gw.as_str()),
            ("LAYER_API_KEY", UPSTREAM_KEY),
            ("KUBECONFIG", "/nonexistent/kubeconfig"),
        ],
    )
    .ok();
    assert_eq!(api.seen().len(), 3, "--no-apply made an API-server call");
    // Returned once discovery completed: every row is queued, none handled.
    assert_eq!(r.json()["udf_id"], "cli-tags-detached");
    assert_eq!(r.json()["pending_count"], 5, "{}", r.stdout);
    let (s, v) = call(
        &stack,
        Method::GET,
        "/v2/udfs/cli-tags-detached",
        Value::Null,
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"]["pending_count"], 5, "{v}");
    assert_eq!(
        v["udf"]["spec"]["target_namespaces"],
        json!(["cli-fn-rows"])
    );

    // 4. An invalid manifest: one line naming the field, exit 1, nothing applied or registered.
    let file = manifest(&h, "cli-tags-bad", None, "    batchSize: 8");
    let r = layer(&h, &["run", "-f", &file, "--context", "fake-ctx"], &vars);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("cli-tags-bad.yaml: spec.worker: missing field `image`"),
        "{}",
        r.stderr
    );
    assert_eq!(api.seen().len(), 3);
    assert_eq!(
        call(&stack, Method::GET, "/v2/udfs/cli-tags-bad", Value::Null).0,
        404
    );
    let r = layer(&h, &["run", "-f", &file, "--detach", "--rm"], &vars);
    assert_eq!(
        r.code, 2,
        "--detach with --rm is a usage error: {}",
        r.stderr
    );

    // 5. A paused Function cannot drain: said at once, exit 1 (registered, paused).
    let file = manifest(&h, "cli-tags-paused", None, WORKER);
    let text = std::fs::read_to_string(&file).unwrap() + "\n  paused: true\n";
    std::fs::write(&file, text).unwrap();
    let r = layer(
        &h,
        &["run", "-f", &file, "--index", "cli-fn-rows", "--no-apply"],
        &vars,
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("udf cli-tags-paused is paused"),
        "{}",
        r.stderr
    );
    let (s, v) = call(&stack, Method::GET, "/v2/udfs/cli-tags-paused", Value::Null);
    assert_eq!((s, &v["udf"]["paused"]), (200, &json!(true)), "{v}");
}
