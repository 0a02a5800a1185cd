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
                        let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
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

fn stack_on(upstream: SocketAddr, timeout_ms: u64) -> Stack {
    Stack::start_with(move |c| {
        c.vector_store.endpoint.url = format!("http://{upstream}");
        c.vector_store.request_timeout_ms = timeout_ms;
        // A strong read goes straight to upstream (no watcher state needed).
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
    // The default mode is set to strong so the query is forwarded as is; the scripted upstream
    // does not implement metadata for the watcher.
    let upstream = scripted(|n| if n == 0 { Act::CutMidBody } else { Act::Answer });
    let stack = stack_on(upstream, 30_000);
    let (status, body, _) = query(&stack);
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "upstream_error", "{body}");
    let (status, body, _) = query(&stack);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0]["id"], 1);
}

#[test]
fn an_upstream_that_never_answers_is_a_504_at_the_request_timeout() {
    // The upstream request timeout is lowered to 1 s (the default 30 s would make the test wait
    // that long; the timer is the same at any value). The request must end then, not hang.
    let upstream = scripted(|n| if n == 0 { Act::Hang } else { Act::Answer });
    let stack = stack_on(upstream, 1_000);
    let (status, body, took) = query(&stack);
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"], "upstream_error", "{body}");
    assert!(
        took < Duration::from_secs(15),
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
    let stack = stack_on(refused, 30_000);
    let (status, body, _) = query(&stack);
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "upstream_error", "{body}");
}
