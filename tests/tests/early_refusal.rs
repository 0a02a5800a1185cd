//! Answers given before the request body was read — a refused key, an unknown route, a bad
//! namespace — read the body first, so an HTTP/1 connection serves the client's next request (a
//! client reuses it; a server that closed it would lose that request). A body refused part way
//! (past `maxBodyBytes`) is not read to its end: that answer says `connection: close`, so the
//! client does not send its next request on a connection the gateway closes.

use std::time::Duration;

use layer_e2e::{Stack, UPSTREAM_KEY, pause};
use layer_gateway::config::{AuthMode, KeyConfig, Scope};
use serde_json::json;

/// A refusal decided before the request body arrived (here a 403 for a namespace outside the
/// key) reads the body first, so the connection serves the next request: clients reuse it.
#[test]
fn an_early_refusal_keeps_the_connection_usable() {
    use std::io::Write;
    let stack = Stack::start_with(|c| {
        c.vector_store.inbound_auth.mode = AuthMode::Keys;
        c.vector_store.inbound_auth.keys = vec![KeyConfig {
            name: "reader".into(),
            scopes: vec![Scope::Read],
            namespaces: vec!["in-*".into()],
            token: Some("reader-token".into()),
            token_env: None,
        }];
    });
    let url = stack.gateway_url.clone();
    let token = "reader-token";
    let addr = url.trim_start_matches("http://");
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = json!({"rank_by": ["id", "asc"], "top_k": 1}).to_string();
    let head = format!(
        "POST /v2/namespaces/out/query HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).unwrap();
    pause(Duration::from_millis(20)); // the body arrives after the headers, as httpcore sends it
    sock.write_all(body.as_bytes()).unwrap();
    let first = read_response(&mut sock);
    assert!(first.starts_with("HTTP/1.1 403"), "{first}");
    assert!(
        !first.to_ascii_lowercase().contains("connection: close"),
        "{first}"
    );
    sock.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let second = read_response(&mut sock);
    assert!(
        second.starts_with("HTTP/1.1 200"),
        "the connection was not kept: {second:?}"
    );
}

/// One HTTP/1.1 answer read off `sock` (head and a `content-length` body), or what came before
/// the peer closed.
fn read_response(sock: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = sock.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some((head, rest)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if rest.len() >= len {
                break;
            }
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A body past `maxBodyBytes` is refused (413) without being read to its end, whether its
/// `content-length` says so up front or it is chunked and overflows part way. The answer says
/// `connection: close` and the gateway closes the connection: a client that reused it would lose
/// its next request.
#[test]
fn a_body_refused_part_way_closes_the_connection_and_says_so() {
    use std::io::{Read, Write};
    // A small limit, so a refused body is quick to send (the behaviour is the same at the
    // default limit; only the size that crosses it differs).
    let stack = Stack::start_with(|c| c.gateway.max_body_bytes = 4096);
    let addr = stack.gateway_url.trim_start_matches("http://").to_string();
    // Only what the gateway reads is sent (the declared body is never sent, the chunk is cut
    // short past the limit): bytes left unread when it closes would make the kernel reset the
    // connection, which may discard the answer before this test reads it.
    let head = format!(
        "POST /v2/namespaces/refused HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {UPSTREAM_KEY}\r\ncontent-type: application/json\r\n"
    );
    let declared = format!("{head}content-length: 8192\r\n\r\n");
    let chunked = format!(
        "{head}transfer-encoding: chunked\r\n\r\n2000\r\n{{\"upsert_rows\":[{{\"id\":1,\"title\":\"{}",
        "x".repeat(5000)
    );
    for request in [declared, chunked] {
        let mut sock = std::net::TcpStream::connect(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        sock.write_all(request.as_bytes()).unwrap();
        let answer = read_response(&mut sock);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
        let mut rest = [0u8; 64];
        assert_eq!(
            sock.read(&mut rest).unwrap_or(0),
            0,
            "the gateway closes the connection after the answer"
        );
    }
}
