//! The HTTP client every part of the benchmark uses: one hyper client, requests with the
//! upstream key as bearer, and the UDF status read.

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use layer_e2e::UPSTREAM_KEY;
use serde_json::Value;

pub(crate) type Http = Client<HttpConnector, Full<Bytes>>;

pub(crate) async fn send_raw(c: &Http, method: Method, url: &str, body: String) -> (u16, Bytes) {
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
    (status, body)
}

pub(crate) async fn send(c: &Http, method: Method, url: &str, body: String) -> (u16, Value) {
    let (status, body) = send_raw(c, method, url, body).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

pub(crate) async fn status(http: &Http, base: &str, udf: &str) -> Value {
    let (s, v) = send(
        http,
        Method::GET,
        &format!("{base}/v2/udfs/{udf}/status"),
        String::new(),
    )
    .await;
    assert_eq!(s, 200, "status: {v}");
    v
}
