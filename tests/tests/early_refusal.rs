//! Answers given before the request body was read — a refused key, an unknown route, a bad
//! namespace — read the body first, so an HTTP/1 connection serves the client's next request (a
//! client reuses it; a server that closed it would lose that request).

use std::time::Duration;

use layer_e2e::{Stack, pause};
use layer_gateway::config::{AuthMode, KeyConfig, Scope};
use serde_json::json;

/// A refusal decided before the request body arrived (here a 403 for a namespace outside the
/// key) reads the body first, so the connection serves the next request: clients reuse it.
#[test]
fn an_early_refusal_keeps_the_connection_usable() {
    use std::io::{Read, Write};
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

    fn read_response(sock: &mut std::net::TcpStream) -> String {
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
}
