//! Test doubles: a scripted Kubernetes API server on `tower_test::mock` (the kube.rs
//! "mocked unit tests" pattern, components.md §5) and a fake HTTP gateway on 127.0.0.1:0. Both
//! answer through a router closure and record every request (method, path, query, JSON body)
//! so a test asserts on exactly what a reconcile sent.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// One request as the double saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub content_type: String,
    pub authorization: String,
    pub body: Value,
}

impl Seen {
    /// `"METHOD path"`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// What a router answers: a status and a JSON body.
pub type Reply = (u16, Value);
pub type Router = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;
pub type Log = Arc<Mutex<Vec<Seen>>>;

fn parse_query(q: Option<&str>) -> BTreeMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn seen(parts: &http::request::Parts, body: &[u8]) -> Seen {
    let header = |h| {
        parts
            .headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parse_query(parts.uri.query()),
        content_type: header(http::header::CONTENT_TYPE),
        authorization: header(http::header::AUTHORIZATION),
        body: if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(body).unwrap_or_else(|_| json!(String::from_utf8_lossy(body)))
        },
    }
}

/// A kube `Client` whose API server is `router`; the log of what it was sent.
pub fn api_server(router: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> (kube::Client, Log) {
    let (svc, mut handle) = tower_test::mock::pair::<
        http::Request<kube::client::Body>,
        http::Response<kube::client::Body>,
    >();
    let log: Log = Arc::default();
    let l = log.clone();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await.unwrap();
            let s = seen(&parts, &bytes);
            let (status, reply) = router(&s);
            l.lock().unwrap().push(s);
            // `null` answers with an empty body (a watch that ends at once).
            let bytes = if reply.is_null() {
                Vec::new()
            } else {
                serde_json::to_vec(&reply).unwrap()
            };
            send.send_response(
                http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(bytes))
                    .unwrap(),
            );
        }
    });
    (kube::Client::new(svc, "default"), log)
}

/// A fake HTTP server on 127.0.0.1:0 answering through `router`: its base URL and log.
pub async fn fake_http(router: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> (String, Log) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Log = Arc::default();
    let router: Router = Arc::new(router);
    let l = log.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (router, l) = (router.clone(), l.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (router, l) = (router.clone(), l.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let bytes = body.collect().await.unwrap().to_bytes();
                        let s = seen(&parts, &bytes);
                        let (status, reply) = router(&s);
                        l.lock().unwrap().push(s);
                        http::Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(serde_json::to_vec(&reply).unwrap())))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), log)
}

/// The requests logged so far.
pub fn requests(log: &Log) -> Vec<Seen> {
    log.lock().unwrap().clone()
}

/// The one logged request `METHOD path`, failing when there is not exactly one.
pub fn one(log: &Log, method: &str, path: &str) -> Seen {
    let all = requests(log);
    let hits: Vec<&Seen> = all
        .iter()
        .filter(|s| s.method == method && s.path == path)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "{method} {path}: {} hits in {:#?}",
        hits.len(),
        all.iter().map(Seen::line).collect::<Vec<_>>()
    );
    hits[0].clone()
}

/// How many logged requests are `METHOD path`.
pub fn count(log: &Log, method: &str, path: &str) -> usize {
    requests(log)
        .iter()
        .filter(|s| s.method == method && s.path == path)
        .count()
}

/// A Kubernetes `Status` 404.
pub fn not_found() -> Reply {
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "not found", "reason": "NotFound", "code": 404}),
    )
}

/// A Kubernetes list of `items`.
pub fn list(kind: &str, items: Vec<Value>) -> Reply {
    (
        200,
        json!({"apiVersion": "v1", "kind": format!("{kind}List"), "metadata": {"resourceVersion": "1"}, "items": items}),
    )
}

/// A spec-page example of `crds/tests/fixtures`.
pub fn fixture<T: DeserializeOwned>(name: &str) -> T {
    let path = format!(
        "{}/../crds/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A fixture as the API server would store it (uid, generation, resourceVersion).
pub fn stored<T: DeserializeOwned + kube::Resource>(name: &str) -> T {
    let mut obj: T = fixture(name);
    let m = obj.meta_mut();
    m.uid = Some("0000-uid".into());
    m.generation = Some(1);
    m.resource_version = Some("1".into());
    obj
}

/// A context on `client` whose gateway is `gateway_url`.
pub fn context(client: kube::Client, gateway_url: &str) -> Arc<layer_operator::context::Context> {
    Arc::new(bare_context(client, gateway_url))
}

/// The context before it is shared (to plug in a fake warehouse probe).
pub fn bare_context(client: kube::Client, gateway_url: &str) -> layer_operator::context::Context {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = layer_operator::config::Config::for_tests(gateway_url);
    config.gateway_api_key = Some("admin-token".into());
    config.metrics_url = "http://metrics:8428".into();
    layer_operator::context::Context::new(client, config, Arc::default()).unwrap()
}
