//! Helpers of the pipeline suites: a gateway config with the queue on the test database, JSON
//! calls, staging a document, reading a pipeline's status.

use std::net::SocketAddr;

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use crate::Stack;

/// A config tweak: the pipeline queue on `url`, in `schema`.
pub fn with_db(url: &str, schema: &str) -> impl FnOnce(&mut layer_gateway::Config) {
    let (url, schema) = (url.to_string(), schema.to_string());
    move |c| {
        c.gateway.queue.url = Some(url);
        c.gateway.queue.schema = schema;
    }
}

/// A stack whose gateway has the queue on the test database (a schema of its own), or `None` when
/// the test is skipped for want of a database ([`crate::test_database`]).
pub fn stack_with_db(tag: &str) -> Option<Stack> {
    let (url, schema) = crate::test_database(tag)?;
    Some(Stack::start_with(with_db(&url, &schema)))
}

/// A JSON call through the gateway: status and body (`null` when empty).
pub fn call(stack: &Stack, method: Method, path: &str, body: Value) -> (u16, Value) {
    let body = if body.is_null() {
        Bytes::new()
    } else {
        Bytes::from(body.to_string())
    };
    let r = stack.gw(method, path, body);
    let v = if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    };
    (r.status.as_u16(), v)
}

/// Stages `doc` with one chunk per text (`{doc}-{i}`).
pub fn stage(stack: &Stack, pid: &str, doc: &str, texts: &[&str]) -> (u16, Value) {
    let chunks: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"id": format!("{doc}-{i}"), "text": t}))
        .collect();
    call(
        stack,
        Method::PUT,
        &format!("/v2/pipelines/{pid}/documents/{doc}"),
        json!({ "chunks": chunks }),
    )
}

/// A pipeline's status, asserting 200.
pub fn status(stack: &Stack, pid: &str) -> Value {
    let (s, v) = call(
        stack,
        Method::GET,
        &format!("/v2/pipelines/{pid}/status"),
        Value::Null,
    );
    assert_eq!(s, 200, "{v}");
    v
}

/// Creates pipeline `id` for `target_namespace`, asserting 201; returns the `Pipeline` body.
pub fn create(stack: &Stack, id: &str, target_namespace: &str) -> Value {
    let body = json!({"id": id, "target_namespace": target_namespace});
    let (s, v) = call(stack, Method::POST, "/v2/pipelines", body);
    assert_eq!(s, 201, "create {id}: {v}");
    v
}

/// The database's address in `LAYER_TEST_DATABASE_URL` (`postgresql://user@127.0.0.1:port/db`),
/// for a TCP proxy in front of it.
pub fn pg_addr(url: &str) -> SocketAddr {
    url.split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|hp| hp.parse().ok())
        .expect("LAYER_TEST_DATABASE_URL as postgresql://user@127.0.0.1:port/db")
}
