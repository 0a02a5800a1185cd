//! Hostile input at the defaults: framing tricks (conflicting `content-length` and
//! `transfer-encoding`, two different lengths) smuggle nothing upstream; a gzip bomb, JSON depth
//! bombs and duplicate keys on every route that reads JSON, and two `authorization` headers are
//! refused with a 4xx and nothing reaches upstream.

use std::io::Write;

use bytes::Bytes;
use http::Method;
use layer_e2e::{Stack, UPSTREAM_KEY};
use serde_json::json;

/// Upstream requests for `ns` (other than the watcher's metadata polls).
fn forwarded(stack: &Stack, ns: &str) -> usize {
    stack
        .upstream_requests()
        .iter()
        .filter(|r| {
            let path = r["path"].as_str().unwrap_or_default();
            path.contains(&format!("/namespaces/{ns}")) && !path.ends_with("/metadata")
        })
        .count()
}

#[test]
fn framing_tricks_never_smuggle_a_request_upstream() {
    // hyper applies RFC 9112 §6.3: with both framings, `transfer-encoding: chunked` wins and
    // the length is dropped; two different lengths are a 400. The gateway re-frames everything
    // it forwards, so whatever a conflicting pair hides can never reach upstream as a request:
    // here the chunked body is empty (upstream judges that write, 400), and the bytes a
    // length-trusting proxy would have taken as the body are parsed as a next request and
    // refused.
    let stack = Stack::start();
    let auth = format!("authorization: Bearer {UPSTREAM_KEY}");
    let both = format!(
        "POST /v2/namespaces/framing HTTP/1.1\r\nhost: x\r\n{auth}\r\ncontent-type: application/json\r\n\
         content-length: 40\r\ntransfer-encoding: chunked\r\n\r\n\
         0\r\n\r\n{{\"upsert_rows\":[{{\"id\":1}}]}}"
    );
    let status = stack.raw_status(&both);
    assert!(status.starts_with("HTTP/1.1 4"), "{status}");
    let two_lengths = format!(
        "POST /v2/namespaces/framing HTTP/1.1\r\nhost: x\r\n{auth}\r\ncontent-type: application/json\r\n\
         content-length: 27\r\ncontent-length: 5\r\nconnection: close\r\n\r\n{{\"upsert_rows\":[{{\"id\":1}}]}}"
    );
    let status = stack.raw_status(&two_lengths);
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");
    let smuggled = stack
        .upstream_requests()
        .iter()
        .filter(|r| {
            r["body"]
                .as_str()
                .is_some_and(|b| b.contains("upsert_rows"))
        })
        .count();
    assert_eq!(smuggled, 0, "{:?}", stack.upstream_requests());
}

#[test]
fn a_gzip_bomb_is_413_without_being_forwarded() {
    let stack = Stack::start();
    // 80 MiB of a repeated row inflated, past the default 64 MiB maxBodyBytes, sent as ~80 KiB.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(br#"{"upsert_rows":["#).unwrap();
    let row = br#"{"id":1,"t":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},"#;
    for _ in 0..(80 << 20) / row.len() {
        enc.write_all(row).unwrap();
    }
    let gz = enc.finish().unwrap();
    assert!(
        gz.len() < 1 << 20,
        "the bomb is small on the wire ({})",
        gz.len()
    );
    let r = stack.gw_with(
        Method::POST,
        "/v2/namespaces/bomb",
        &[("content-encoding", "gzip")],
        gz,
    );
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(forwarded(&stack, "bomb"), 0);
}

#[test]
fn json_bombs_are_refused_on_every_route_that_reads_json() {
    let stack = Stack::start();
    let deep = |key: &str| format!("{{\"{key}\":{}1{}}}", "[".repeat(200), "]".repeat(200));
    let ns = "jsonbomb";
    let cases = [
        (
            Method::POST,
            format!("/v2/namespaces/{ns}"),
            deep("upsert_rows"),
        ),
        (
            Method::POST,
            format!("/v2/namespaces/{ns}/query"),
            deep("filters"),
        ),
        (
            Method::POST,
            format!("/v1/namespaces/{ns}/schema"),
            deep("title"),
        ),
        (
            Method::POST,
            format!("/v2/namespaces/{ns}/documents"),
            deep("ids"),
        ),
        (
            Method::POST,
            format!("/v2/namespaces/{ns}/scans"),
            deep("filters"),
        ),
        (
            Method::POST,
            format!("/v2/namespaces/{ns}/snapshots"),
            deep("filters"),
        ),
        (
            Method::PUT,
            format!("/v2/namespaces/{ns}/snapshot-policy"),
            deep("facet_fields"),
        ),
        // Duplicate keys: parsers disagree on which copy wins, so none is accepted.
        (
            Method::POST,
            format!("/v2/namespaces/{ns}/documents"),
            r#"{"ids":["a"],"ids":["b"]}"#.to_string(),
        ),
        (
            Method::POST,
            format!("/v2/namespaces/{ns}/scans"),
            r#"{"mode":"count","mode":"ids"}"#.to_string(),
        ),
        (
            Method::POST,
            format!("/v2/namespaces/{ns}/query"),
            r#"{"rank_by":["id","asc"],"top_k":1,"filters":["id","Eq",1],"filters":["id","Eq",2]}"#
                .to_string(),
        ),
    ];
    for (m, path, body) in cases {
        let r = stack.gw(m.clone(), &path, body.clone());
        assert!(
            (400..=422).contains(&r.status.as_u16()),
            "{m} {path}: {} {}",
            r.status,
            r.text()
        );
    }
    assert_eq!(forwarded(&stack, ns), 0, "a bomb reached upstream");
}

#[test]
fn two_authorization_headers_are_refused() {
    let stack = Stack::start();
    stack.write("twoauth", json!({"upsert_rows": [{"id": 1}]}));
    let good = format!("Bearer {UPSTREAM_KEY}");
    for pair in [
        [good.as_str(), "Bearer nope"],
        ["Bearer nope", good.as_str()],
    ] {
        let r = stack.http.send(
            Method::GET,
            &format!("{}/v2/namespaces/twoauth/metadata", stack.gateway_url),
            &[("authorization", pair[0]), ("authorization", pair[1])],
            Bytes::new(),
        );
        assert_eq!(r.status, 401, "{pair:?}: {}", r.text());
    }
}
