//! Helpers shared by the search-history suites (`tests/tests/history.rs` for entries, filters
//! and clickstream; `tests/tests/history_store.rs` for batching, restarts, store failures and
//! deep paging): the object-store backends a scenario runs against, a stack writing history to
//! one, and small readers for the listing routes.

use std::path::PathBuf;

use bytes::Bytes;
use http::Method;
use layer_gateway::Config;
use layer_gateway::config::IndexConsistency;
use layer_gateway::core::store::ObjectStore;
use serde_json::{Value, json};

use crate::{Reply, Stack, TestS3, temp_dir};

/// Where a scenario's history goes.
#[derive(Clone, Debug)]
pub enum Backend {
    Local(PathBuf),
    S3(TestS3, String),
}

impl Backend {
    /// Points the configuration's object store at this backend.
    pub fn apply(&self, cfg: &mut Config) {
        match self {
            Backend::Local(dir) => cfg.gateway.object_store.dir = Some(dir.clone()),
            Backend::S3(s3, prefix) => s3.configure(cfg, prefix),
        }
    }

    /// The same store the gateway writes, opened by the test to look at the objects.
    pub fn open(&self) -> ObjectStore {
        let mut cfg = Config::default();
        self.apply(&mut cfg);
        ObjectStore::open(&cfg, &|_| None).expect("open the test's view of the store")
    }
}

/// The local backend, plus S3 when a test server is running.
pub fn backends(scenario: &str) -> Vec<Backend> {
    let mut out = vec![Backend::Local(temp_dir(&format!("objects-{scenario}")))];
    match TestS3::from_env() {
        Some(s3) => {
            out.push(Backend::S3(s3, TestS3::unique_prefix(scenario)));
        }
        None => eprintln!(
            "skipped: no S3 (LAYER_TEST_S3_ENDPOINT unset): history scenario {scenario:?} ran \
             against the local directory only"
        ),
    }
    out
}

/// A stack whose gateway writes history to `backend`, with strong reads by default (these suites
/// are about history, not the watermark); `tweak` adjusts the configuration further.
pub fn stack(backend: &Backend, tweak: impl FnOnce(&mut Config)) -> Stack {
    let backend = backend.clone();
    Stack::start_with(move |c| {
        backend.apply(c);
        // Reads see writes at once: these tests are about history, not the watermark.
        c.gateway.consistency.default_mode = IndexConsistency::Strong;
        tweak(c);
    })
}

/// Three documents `a`, `b`, `c` with 2-d vectors and a `title`.
pub fn seed(stack: &Stack, ns: &str) {
    stack.write(
        ns,
        json!({"upsert_rows": [
            {"id": "a", "vector": [1.0, 0.0], "title": "alpha"},
            {"id": "b", "vector": [0.0, 1.0], "title": "beta"},
            {"id": "c", "vector": [0.7, 0.7], "title": "gamma"}
        ], "distance_metric": "euclidean_squared"}),
    );
}

/// `POST /v2/namespaces/{ns}/query` with `headers`; asserts 200.
pub fn query(stack: &Stack, ns: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
    let r = stack.gw_with(
        Method::POST,
        &format!("/v2/namespaces/{ns}/query"),
        headers,
        body.to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r
}

/// `GET {path}` with the query string; asserts 200 and that the cursor header equals the body's.
pub fn list(stack: &Stack, path: &str) -> Value {
    let r = stack.gw(Method::GET, path, Bytes::new());
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    let body = r.json();
    let header = r
        .headers
        .get("x-layer-next-cursor")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(
        header.as_deref(),
        body.get("next_cursor").and_then(Value::as_str),
        "{path}: x-layer-next-cursor and next_cursor agree"
    );
    body
}

/// The search-history entries of `ns` (`params` is the query string, `?...` or empty).
pub fn entries(stack: &Stack, ns: &str, params: &str) -> Vec<Value> {
    list(
        stack,
        &format!("/v2/namespaces/{ns}/search-history{params}"),
    )["entries"]
        .as_array()
        .cloned()
        .unwrap()
}

/// The trace id of a reply's `traceparent` header.
pub fn trace_of(r: &Reply) -> String {
    let tp = r.headers["traceparent"].to_str().unwrap();
    tp.split('-').nth(1).unwrap().to_string()
}

/// The ids of a query answer's `rows`, in rank order, as strings.
pub fn ids_of(r: &Reply) -> Vec<String> {
    r.json()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| match &row["id"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// An entry's or event's `timestamp_nanos`.
pub fn nanos(e: &Value) -> u64 {
    e["timestamp_nanos"]
        .as_u64()
        .expect("timestamp_nanos is a u64")
}
