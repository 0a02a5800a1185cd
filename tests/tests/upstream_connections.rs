//! No leaked upstream connections: after rounds of upstream faults (an answer cut off mid-body,
//! an upstream that never answers, 5xx answers) and clients that go away mid-request, the
//! connections the gateway holds open to upstream come back to what its pools keep for
//! sequential traffic, and no request hangs.
//!
//! The upstream is a scripted keep-alive HTTP/1.1 server on 127.0.0.1 that counts its open
//! connections from its own side: a connection stays counted until the gateway closes it (the
//! server reads EOF), so a connection the gateway forgot without closing stays counted forever.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use layer_e2e::{Stack, UPSTREAM_KEY, pause};

/// What the upstream does with a query.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Act {
    /// A complete answer; the connection stays open for the next request.
    Answer,
    /// A 500 with a complete body; the connection stays open.
    Error500,
    /// Headers promising 1,000 bytes, 20 of them, then close.
    CutMidBody,
    /// Never answers; waits for the gateway to close the connection.
    Hang,
    /// Answers after the gateway closes (then nothing to answer) or after 5 s.
    Slow,
}

#[derive(Default)]
struct Counters {
    open: AtomicUsize,
    /// Queries received (each counted once its request was read in full).
    queries: AtomicUsize,
}

struct Upstream {
    addr: SocketAddr,
    act: Arc<Mutex<Act>>,
    counters: Arc<Counters>,
}

impl Upstream {
    fn start() -> Upstream {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let act = Arc::new(Mutex::new(Act::Answer));
        let counters = Arc::new(Counters::default());
        let (a, c) = (act.clone(), counters.clone());
        std::thread::spawn(move || {
            for stream in l.incoming() {
                let Ok(s) = stream else { continue };
                c.open.fetch_add(1, Ordering::SeqCst);
                let (a, c) = (a.clone(), c.clone());
                std::thread::spawn(move || {
                    serve(s, &a, &c);
                    c.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Upstream {
            addr,
            act,
            counters,
        }
    }

    fn set(&self, act: Act) {
        *self.act.lock().unwrap() = act;
    }

    fn open(&self) -> usize {
        self.counters.open.load(Ordering::SeqCst)
    }

    fn queries(&self) -> usize {
        self.counters.queries.load(Ordering::SeqCst)
    }
}

/// Serves one connection until the peer closes it (or an act closes it).
fn serve(s: TcpStream, act: &Mutex<Act>, c: &Counters) {
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    loop {
        // The request head, then its body.
        let mut head = String::new();
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let now = if head.contains("/query") {
            c.queries.fetch_add(1, Ordering::SeqCst);
            *act.lock().unwrap()
        } else {
            Act::Answer
        };
        let answer = |w: &mut TcpStream, status: &str, body: &[u8]| {
            let h = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            w.write_all(h.as_bytes()).is_ok() && w.write_all(body).is_ok()
        };
        let ok = match now {
            Act::Answer => answer(&mut w, "200 OK", br#"{"rows":[{"id":1}]}"#),
            Act::Error500 => answer(
                &mut w,
                "500 Internal Server Error",
                br#"{"status":"error","error":"scripted"}"#,
            ),
            Act::CutMidBody => {
                let _ = w.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"rows\":[{\"id\":1,",
                );
                return;
            }
            Act::Hang => {
                // Bounded, so a leaking gateway fails the test instead of pinning a thread.
                let _ = r.get_ref().set_read_timeout(Some(Duration::from_secs(120)));
                let mut b = [0u8; 1];
                let _ = r.read(&mut b);
                return;
            }
            Act::Slow => {
                let _ = r.get_ref().set_read_timeout(Some(Duration::from_secs(5)));
                let mut b = [0u8; 1];
                match r.read(&mut b) {
                    // Closed by the gateway (0), or bytes beyond the request: done either way.
                    Ok(0 | 1..) => return,
                    Err(_) => {
                        let _ = r.get_ref().set_read_timeout(None);
                        answer(&mut w, "200 OK", br#"{"rows":[{"id":1}]}"#)
                    }
                }
            }
        };
        if !ok {
            return;
        }
    }
}

fn query(stack: &Stack) -> u16 {
    stack
        .gw(
            Method::POST,
            "/v2/namespaces/leaks/query",
            r#"{"rank_by":["id","asc"],"top_k":1}"#,
        )
        .status
        .as_u16()
}

/// Sends a query on a raw connection, waits until upstream received it, and goes away.
fn query_and_leave(stack: &Stack, up: &Upstream) {
    let before = up.queries();
    let addr = stack.gateway_url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    let body = r#"{"rank_by":["id","asc"],"top_k":1}"#;
    let req = format!(
        "POST /v2/namespaces/leaks/query HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {UPSTREAM_KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while up.queries() == before {
        assert!(
            Instant::now() < deadline,
            "the query never reached upstream"
        );
        pause(Duration::from_millis(5));
    }
    drop(s);
}

/// Waits until at most `bound` upstream connections are open; returns how many are.
fn wait_open_at_most(up: &Upstream, bound: usize, what: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = up.open();
        if n <= bound {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {n} upstream connections still open after 30 s (bound {bound})"
        );
        pause(Duration::from_millis(20));
    }
}

#[test]
fn upstream_faults_and_clients_going_away_leak_no_connections() {
    let up = Upstream::start();
    let upstream = up.addr;
    let stack = Stack::start_with(move |c| {
        c.vector_store.endpoint.url = format!("http://{upstream}");
        // 300 ms instead of the default 30 s: the test times out 20 requests, and the timeout
        // path is the same at any value (upstream_failures.rs checks the 504 at the default).
        c.vector_store.request_timeout_ms = 300;
        // Strong mode, because the scripted upstream answers queries only (no metadata for the
        // watcher): a strong read is forwarded as is.
        c.gateway.consistency.default_mode = layer_gateway::config::IndexConsistency::Strong;
    });
    let shards = layer_e2e::base_config("http://unused").gateway.shards;
    // One pool per shard plus the control runtime's: sequential traffic keeps at most one idle
    // connection in each.
    let bound = shards + 1;
    for _ in 0..5 {
        assert_eq!(query(&stack), 200);
    }
    wait_open_at_most(&up, bound, "healthy traffic");

    const ROUNDS: usize = 20;
    for round in 0..ROUNDS {
        up.set(Act::CutMidBody);
        assert_eq!(query(&stack), 502, "round {round}: cut mid-body");
        up.set(Act::Hang);
        assert_eq!(query(&stack), 504, "round {round}: no answer");
        up.set(Act::Error500);
        let status = query(&stack);
        assert!(status >= 500, "round {round}: 5xx relayed as {status}");
        up.set(Act::Slow);
        query_and_leave(&stack, &up);
    }
    // Every connection a fault or a departed client left behind is closed or back in a pool.
    let open = wait_open_at_most(&up, bound, "after the faults");
    up.set(Act::Answer);
    for _ in 0..5 {
        assert_eq!(query(&stack), 200, "served after the faults");
    }
    let after = wait_open_at_most(&up, bound, "after healthy traffic again");
    eprintln!("upstream connections open: {open} after the faults, {after} at the end");
}
