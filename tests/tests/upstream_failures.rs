//! Upstream failing in ways the emulator cannot act out, against a scripted upstream on
//! 127.0.0.1: an answer cut off mid-body, an upstream that accepts and never answers, and one
//! that refuses connections. Each is a clear 502/504 `upstream_error`, no hung request, and the
//! gateway keeps serving once upstream behaves.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::Method;
use layer_e2e::Stack;
use serde_json::Value;

/// What the scripted upstream does with the n-th connection.
#[derive(Clone, Copy)]
enum Act {
    /// Headers promising 1,000 bytes, 20 of them, then close.
    CutMidBody,
    /// Read the request and never answer (the connection stays open).
    Hang,
    /// A complete, valid answer.
    Answer,
}

/// A scripted upstream: reads a request head, then acts as `script(n)` says.
fn scripted(script: impl Fn(usize) -> Act + Send + 'static) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(mut s) = stream else { continue };
            let act = script(n.fetch_add(1, Ordering::SeqCst));
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.read(&mut buf);
                match act {
                    Act::CutMidBody => {
                        let _ = s.write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"rows\":[{\"id\":1,",
                        );
                    }
                    Act::Hang => {
                        let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
                        let _ = s.read(&mut buf);
                    }
                    Act::Answer => {
                        let body = br#"{"rows":[{"id":1}]}"#;
                        let _ = s.write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                                body.len()
                            )
                            .as_bytes(),
                        );
                        let _ = s.write_all(body);
                    }
                }
            });
        }
    });
    addr
}

/// The documented `vectorStore.requestTimeoutMs`; every test here runs at it.
const DEFAULT_TIMEOUT_MS: u64 = 30_000;

fn stack_on(upstream: SocketAddr, timeout_ms: u64) -> Stack {
    Stack::start_with(move |c| {
        c.vector_store.endpoint.url = format!("http://{upstream}");
        assert_eq!(c.vector_store.request_timeout_ms, DEFAULT_TIMEOUT_MS);
        c.vector_store.request_timeout_ms = timeout_ms;
        // Strong mode, because the scripted upstream answers queries only (no metadata for the
        // watcher): a strong read is forwarded as is. The default stable mode forwards the same
        // bytes when the namespace has no watermark, which is the case here too.
        c.gateway.consistency.default_mode = layer_gateway::config::IndexConsistency::Strong;
    })
}

fn query(stack: &Stack) -> (u16, Value, Duration) {
    let started = Instant::now();
    let r = stack.gw(
        Method::POST,
        "/v2/namespaces/flaky/query",
        r#"{"rank_by":["id","asc"],"top_k":1}"#,
    );
    (r.status.as_u16(), r.json(), started.elapsed())
}

#[test]
fn an_answer_cut_off_mid_body_is_a_502_and_the_next_request_is_served() {
    let upstream = scripted(|n| if n == 0 { Act::CutMidBody } else { Act::Answer });
    let stack = stack_on(upstream, DEFAULT_TIMEOUT_MS);
    let (status, body, _) = query(&stack);
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "upstream_error", "{body}");
    let (status, body, _) = query(&stack);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0]["id"], 1);
}

#[test]
fn an_upstream_that_never_answers_is_a_504_at_the_default_request_timeout() {
    // At the default upstream request timeout (30 s): the request ends then, it does not hang.
    let upstream = scripted(|n| if n == 0 { Act::Hang } else { Act::Answer });
    let stack = stack_on(upstream, DEFAULT_TIMEOUT_MS);
    // The harness client gives up at 30 s too: this request waits up to 45 s itself.
    let started = Instant::now();
    let req = http::Request::post(format!("{}/v2/namespaces/flaky/query", stack.gateway_url))
        .header(
            "authorization",
            format!("Bearer {}", layer_e2e::UPSTREAM_KEY),
        )
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            br#"{"rank_by":["id","asc"],"top_k":1}"#,
        )))
        .unwrap();
    let (status, body) = stack.http.block_on(async {
        let resp = tokio::time::timeout(Duration::from_secs(45), stack.http.client().request(req))
            .await
            .expect("the gateway answered within 45 s")
            .expect("an answer");
        let status = resp.status().as_u16();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, serde_json::from_slice::<Value>(&body).unwrap())
    });
    let took = started.elapsed();
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"], "upstream_error", "{body}");
    assert!(
        took < Duration::from_secs(45),
        "the request hung for {took:?}"
    );
    let (status, _, _) = query(&stack);
    assert_eq!(status, 200);
}

#[test]
fn an_upstream_refusing_connections_is_a_502() {
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let stack = stack_on(refused, DEFAULT_TIMEOUT_MS);
    let (status, body, _) = query(&stack);
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "upstream_error", "{body}");
}
