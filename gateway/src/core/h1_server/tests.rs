//! The server codec against scripted clients: what it serves (keep-alive, pipelining, split
//! heads, the request it builds, the answer's head as hyper wrote it), what it hands to hyper
//! (with every byte it read), closing, the header read timeout at its default and graceful
//! shutdown.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use http::Response;
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;

use super::*;

/// Bytes the server wrote, shared with the test.
type Written = Arc<Mutex<Vec<u8>>>;

/// One answer: status, fields (lowercase names), body.
type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// A client connection playing `reads` in order: `Some(bytes)` is one read's worth, `None` is
/// one `Pending` (woken at once: the bytes after it are "still on their way"). When the script
/// is done, reads wait forever (`hold`) or see the end of the stream.
struct Script {
    reads: VecDeque<Option<Vec<u8>>>,
    hold: bool,
    written: Written,
    shut: Arc<Mutex<bool>>,
}

impl Script {
    fn new(reads: Vec<Option<&[u8]>>, hold: bool) -> (Script, Written, Arc<Mutex<bool>>) {
        let written = Arc::new(Mutex::new(Vec::new()));
        let shut = Arc::new(Mutex::new(false));
        let script = Script {
            reads: reads.into_iter().map(|r| r.map(<[u8]>::to_vec)).collect(),
            hold,
            written: written.clone(),
            shut: shut.clone(),
        };
        (script, written, shut)
    }
}

impl AsyncRead for Script {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.reads.pop_front() {
            Some(Some(mut bytes)) => {
                let n = bytes.len().min(buf.remaining());
                buf.put_slice(&bytes[..n]);
                if n < bytes.len() {
                    this.reads.push_front(Some(bytes.split_off(n)));
                }
                Poll::Ready(Ok(()))
            }
            Some(None) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            None if this.hold => Poll::Pending,
            None => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for Script {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.written.lock().unwrap().extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        *self.shut.lock().unwrap() = true;
        Poll::Ready(Ok(()))
    }
}

/// The default header read timeout (`gateway.server.headerReadTimeoutMs`).
fn header_timeout() -> Duration {
    let c = crate::core::config::Config::default();
    Duration::from_millis(c.gateway.server.header_read_timeout_ms)
}

/// What the echo service saw of one request.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    method: Method,
    uri: String,
    fields: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// Serves `script` with a service that records each request and answers `200` with the body
/// `"<method> <uri> <body length>"`.
async fn serve_echo(script: Script) -> (Outcome<Script>, Vec<Seen>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (_tx, rx) = watch::channel(false);
    let log = seen.clone();
    let outcome = serve(
        script,
        move |req: Request<RequestBody>| {
            let log = log.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                let text = format!("{} {} {}", parts.method, parts.uri, body.len());
                log.lock().unwrap().push(Seen {
                    method: parts.method,
                    uri: parts.uri.to_string(),
                    fields: parts
                        .headers
                        .iter()
                        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                        .collect(),
                    body: body.to_vec(),
                });
                Response::new(Full::new(Bytes::from(text)))
            }
        },
        header_timeout(),
        rx,
    )
    .await;
    let seen = seen.lock().unwrap().clone();
    (outcome, seen)
}

/// The answers in `bytes`: status, fields (lowercase names) and body (by `content-length`).
fn answers(mut bytes: &[u8], head_request: bool) -> Vec<Answer> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut fields);
        let httparse::Status::Complete(n) = resp.parse(bytes).unwrap() else {
            panic!("a partial answer: {:?}", String::from_utf8_lossy(bytes));
        };
        let fields: Vec<(String, String)> = resp
            .headers
            .iter()
            .map(|f| {
                (
                    f.name.to_string(),
                    String::from_utf8(f.value.to_vec()).unwrap(),
                )
            })
            .collect();
        let len = fields
            .iter()
            .find(|(k, _)| k == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        let len = if head_request { 0 } else { len };
        out.push((resp.code.unwrap(), fields, bytes[n..n + len].to_vec()));
        bytes = &bytes[n + len..];
    }
    out
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn keep_alive_and_pipelined_requests_are_answered_in_order() {
    let first =
        b"POST /v2/namespaces/a/query?x=1 HTTP/1.1\r\nhost: h\r\ncontent-length: 5\r\n\r\nhello";
    let second = b"GET /v1/namespaces HTTP/1.1\r\nhost: h\r\nx-tag: a\r\nx-tag: b\r\n\r\n";
    let third = b"DELETE /v2/namespaces/b HTTP/1.1\r\nHost: h\r\n\r\n";
    let mut two = second.to_vec();
    two.extend_from_slice(third);
    let (script, written, shut) = Script::new(vec![Some(first), Some(&two)], false);
    let (outcome, seen) = serve_echo(script).await;
    assert!(matches!(outcome, Outcome::Closed));
    assert!(!*shut.lock().unwrap(), "the client closed, not the server");
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].method, Method::POST);
    assert_eq!(seen[0].uri, "/v2/namespaces/a/query?x=1");
    assert_eq!(seen[0].body, b"hello");
    assert_eq!(
        seen[1].fields,
        vec![
            ("host".into(), b"h".to_vec()),
            ("x-tag".into(), b"a".to_vec()),
            ("x-tag".into(), b"b".to_vec())
        ]
    );
    assert_eq!(seen[2].method, Method::DELETE);
    let written = written.lock().unwrap().clone();
    assert!(written.starts_with(b"HTTP/1.1 200 OK\r\n"));
    let got = answers(&written, false);
    let bodies: Vec<&[u8]> = got.iter().map(|(_, _, b)| b.as_slice()).collect();
    assert_eq!(
        bodies,
        [
            &b"POST /v2/namespaces/a/query?x=1 5"[..],
            b"GET /v1/namespaces 0",
            b"DELETE /v2/namespaces/b 0"
        ]
    );
    for (status, fields, _) in &got {
        assert_eq!(*status, 200);
        assert_eq!(field(fields, "date").map(str::len), Some(29), "{fields:?}");
        assert_eq!(field(fields, "connection"), None);
    }
}

#[tokio::test]
async fn a_head_split_anywhere_is_read_whole() {
    let request = b"PUT /v1/x HTTP/1.1\r\nhost: h\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
    for cut in 1..request.len() {
        // Both pieces are in the socket when read: the body is never "still on its way".
        let (script, written, _) =
            Script::new(vec![Some(&request[..cut]), Some(&request[cut..])], false);
        let (outcome, seen) = serve_echo(script).await;
        assert!(matches!(outcome, Outcome::Closed), "cut at {cut}");
        assert_eq!(seen.len(), 1, "cut at {cut}");
        assert_eq!(seen[0].body, b"{}", "cut at {cut}");
        assert_eq!(
            answers(&written.lock().unwrap(), false)[0].2,
            b"PUT /v1/x 2"
        );
    }
}

#[tokio::test]
async fn a_body_still_on_its_way_goes_to_hyper_with_every_byte_read() {
    let request = b"POST /q HTTP/1.1\r\ncontent-length: 10\r\n\r\n0123456789";
    let head_len = request.len() - 10;
    for cut in head_len..request.len() {
        let (script, written, _) = Script::new(
            vec![Some(&request[..cut]), None, Some(&request[cut..])],
            false,
        );
        let (outcome, seen) = serve_echo(script).await;
        let Outcome::Handover(mut rest, read) = outcome else {
            panic!("cut at {cut}: not handed over");
        };
        assert_eq!(&read[..], &request[..cut], "cut at {cut}");
        assert!(seen.is_empty() && written.lock().unwrap().is_empty());
        // What the connection still holds follows on (after the one `Pending`).
        let mut all = read.to_vec();
        rest.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, request);
    }
}

#[tokio::test]
async fn requests_it_does_not_serve_go_to_hyper_untouched() {
    let many_fields: String = (0..=MAX_HEADERS)
        .map(|i| format!("x-f{i}: v\r\n"))
        .collect();
    let many_fields = format!("GET / HTTP/1.1\r\n{many_fields}\r\n");
    let long_head = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD));
    let too_long = format!(
        "POST / HTTP/1.1\r\ncontent-length: {}\r\n\r\n",
        MAX_BUFFERED_BODY + 1
    );
    let cases: Vec<&[u8]> = vec![
        b"GET / HTTP/1.0\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\n",
        b"GET / HTTP/1.1\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
        b"GET / HTTP/1.1\r\nconnection: Upgrade\r\n\r\n",
        b"CONNECT h:443 HTTP/1.1\r\nhost: h:443\r\n\r\n",
        b"POST / HTTP/1.1\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\nhi",
        b"POST / HTTP/1.1\r\ncontent-length: 2x\r\n\r\nhi",
        b"POST / HTTP/1.1\r\ncontent-length: -2\r\n\r\nhi",
        b"POST / HTTP/1.1\r\ncontent-length: \r\n\r\nhi",
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nbad field: x\r\n\r\n",
        // `httparse` takes this target; `http::Uri` does not.
        b"GET http://[::1 HTTP/1.1\r\n\r\n",
        many_fields.as_bytes(),
        long_head.as_bytes(),
        too_long.as_bytes(),
    ];
    for case in cases {
        let (script, written, _) = Script::new(vec![Some(case)], true);
        let (outcome, seen) = serve_echo(script).await;
        let Outcome::Handover(_, read) = outcome else {
            panic!("served: {:?}", String::from_utf8_lossy(case));
        };
        let expected = &case[..read.len()];
        assert_eq!(&read[..], expected);
        assert!(
            read.len() == case.len() || read.len() >= MAX_HEAD,
            "{:?}",
            String::from_utf8_lossy(case)
        );
        assert!(seen.is_empty() && written.lock().unwrap().is_empty());
    }
    // After requests served here, hyper gets the connection from the first one it must take.
    let mut stream = b"GET /a HTTP/1.1\r\n\r\n".to_vec();
    stream.extend_from_slice(b"POST /b HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n");
    let (script, written, _) = Script::new(vec![Some(&stream)], true);
    let (outcome, seen) = serve_echo(script).await;
    let Outcome::Handover(_, read) = outcome else {
        panic!("not handed over")
    };
    assert_eq!(&read[..], &stream[19..]);
    assert_eq!(seen.len(), 1);
    assert_eq!(answers(&written.lock().unwrap(), false).len(), 1);
}

/// Serves one request with a service answering `resp()`; returns the outcome, what was written
/// and whether the server shut its side.
async fn serve_one(request: &[u8], resp: fn() -> Resp) -> (Outcome<Script>, Vec<u8>, bool) {
    let (script, written, shut) = Script::new(vec![Some(request)], false);
    let (_tx, rx) = watch::channel(false);
    let outcome = serve(script, |_req| async move { resp() }, header_timeout(), rx).await;
    let written = written.lock().unwrap().clone();
    let shut = *shut.lock().unwrap();
    (outcome, written, shut)
}

fn text(body: &'static str) -> Resp {
    Response::new(Full::new(Bytes::from_static(body.as_bytes())))
}

#[tokio::test]
async fn the_answer_head_is_written_as_hyper_wrote_it() {
    let get = b"GET /x HTTP/1.1\r\n\r\n";
    let (_, written, _) = serve_one(get, || {
        let mut r = text("{}");
        *r.status_mut() = StatusCode::NOT_FOUND;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    })
    .await;
    let head = String::from_utf8(written.clone()).unwrap();
    assert!(head.starts_with("HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\ndate: "), "{head}");
    assert!(head.ends_with(" GMT\r\n\r\n{}"), "{head}");
    let (_, written, _) = serve_one(get, || {
        let mut r = text("");
        *r.status_mut() = StatusCode::from_u16(599).unwrap();
        r
    })
    .await;
    assert!(written.starts_with(b"HTTP/1.1 599 <none>\r\ncontent-length: 0\r\n"));
    // A `HEAD` answer keeps the length it was given and sends no body.
    let (_, written, _) = serve_one(b"HEAD /x HTTP/1.1\r\n\r\n", || {
        let mut r = text("");
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(7));
        r
    })
    .await;
    let got = answers(&written, true);
    assert_eq!(field(&got[0].1, "content-length"), Some("7"));
    assert!(written.ends_with(b"\r\n\r\n"));
    // 204 and 304: no body, and no length but one they carry.
    for (status, length) in [(204, None), (304, Some("3")), (304, None)] {
        let mut request = b"GET /x HTTP/1.1\r\n\r\n".to_vec();
        request.extend_from_slice(b"GET /y HTTP/1.1\r\n\r\n");
        let (script, written, _) = Script::new(vec![Some(&request)], false);
        let (_tx, rx) = watch::channel(false);
        serve(
            script,
            move |_req| async move {
                let mut r = text("abc");
                *r.status_mut() = StatusCode::from_u16(status).unwrap();
                if length.is_some() {
                    r.headers_mut()
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(3));
                }
                r
            },
            header_timeout(),
            rx,
        )
        .await;
        let written = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        // Two answers, neither with a body.
        assert_eq!(
            written.matches(&format!("HTTP/1.1 {status} ")).count(),
            2,
            "{written}"
        );
        assert!(!written.contains("abc"), "{written}");
        assert_eq!(
            written.contains("content-length: 3"),
            length.is_some(),
            "{written}"
        );
    }
}

#[tokio::test]
async fn connection_close_either_way_closes_after_the_answer() {
    // Asked by the client: said in the answer; what follows is not read.
    let request = b"GET /a HTTP/1.1\r\nConnection: Close\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    let (outcome, written, shut) = serve_one(request, || text("a")).await;
    assert!(matches!(outcome, Outcome::Closed) && shut);
    let got = answers(&written, false);
    assert_eq!(got.len(), 1);
    assert_eq!(field(&got[0].1, "connection"), Some("close"));
    // Said by the service (an unread body, an abandoned request): closed, said once.
    let request = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    let (outcome, written, shut) = serve_one(request, || {
        let mut r = text("a");
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    })
    .await;
    assert!(matches!(outcome, Outcome::Closed) && shut);
    let written = String::from_utf8(written).unwrap();
    assert_eq!(written.matches("HTTP/1.1").count(), 1);
    assert_eq!(written.matches("connection: close").count(), 1, "{written}");
    // Keep-alive otherwise: the second request is answered too.
    let (_, written, shut) = serve_one(request, || text("a")).await;
    assert!(!shut);
    assert_eq!(answers(&written, false).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_header_read_timeout_at_its_default_bounds_each_wait_for_a_head() {
    // A client that never sends: the first head timed out (counted by the caller).
    let started = tokio::time::Instant::now();
    let (script, _, _) = Script::new(vec![], true);
    let (outcome, _) = serve_echo(script).await;
    assert!(matches!(outcome, Outcome::FirstHeadTimedOut));
    assert_timed_out(started);
    // Half a head, then nothing: closed at the same bound.
    let started = tokio::time::Instant::now();
    let (script, written, _) = Script::new(vec![Some(b"GET / HT")], true);
    let (outcome, _) = serve_echo(script).await;
    assert!(matches!(outcome, Outcome::Closed));
    assert_timed_out(started);
    assert!(written.lock().unwrap().is_empty());
    // Idle after an answer: closed once the wait for the next head ran out.
    let started = tokio::time::Instant::now();
    let (script, written, _) = Script::new(vec![Some(b"GET / HTTP/1.1\r\n\r\n")], true);
    let (outcome, seen) = serve_echo(script).await;
    assert!(matches!(outcome, Outcome::Closed));
    assert_eq!(seen.len(), 1);
    assert_eq!(answers(&written.lock().unwrap(), false).len(), 1);
    assert_timed_out(started);
}

#[tokio::test]
async fn graceful_shutdown_closes_idle_connections_and_busy_ones_after_their_answer() {
    // Idle: closes as soon as shutdown begins.
    let (script, written, _) = Script::new(vec![Some(b"GET / HTTP/1.1\r\n\r\n")], true);
    let (tx, rx) = watch::channel(false);
    let server = tokio::spawn(serve(
        script,
        |_req| async { text("a") },
        header_timeout(),
        rx,
    ));
    tokio::task::yield_now().await;
    assert_eq!(answers(&written.lock().unwrap(), false).len(), 1);
    tx.send(true).unwrap();
    assert!(matches!(server.await.unwrap(), Outcome::Closed));
    // Busy: the request in hand is answered, saying `connection: close`.
    let (script, written, shut) = Script::new(
        vec![Some(b"GET / HTTP/1.1\r\n\r\nGET /next HTTP/1.1\r\n\r\n")],
        true,
    );
    let (tx, rx) = watch::channel(false);
    let tx = Arc::new(tx);
    let during = tx.clone();
    let outcome = serve(
        script,
        move |_req| {
            during.send(true).unwrap();
            async { text("a") }
        },
        header_timeout(),
        rx,
    )
    .await;
    assert!(matches!(outcome, Outcome::Closed) && *shut.lock().unwrap());
    let got = answers(&written.lock().unwrap(), false);
    assert_eq!(got.len(), 1);
    assert_eq!(field(&got[0].1, "connection"), Some("close"));
}

/// The wait for each head is timed from its own start: after a handler that took most of a
/// timeout, or more than one (the connection's timer came due meanwhile), the idle wait for the
/// next head still gets the whole of one (the timer is moved to each head's deadline, not set
/// once).
#[tokio::test(start_paused = true)]
async fn each_wait_for_a_head_gets_the_whole_timeout_after_a_slow_handler() {
    for slow in [header_timeout() * 2 / 3, header_timeout() * 2] {
        let (script, written, _) = Script::new(vec![Some(b"GET / HTTP/1.1\r\n\r\n")], true);
        let (_tx, rx) = watch::channel(false);
        let answered = Arc::new(Mutex::new(None));
        let at = answered.clone();
        let outcome = serve(
            script,
            move |_req| {
                let at = at.clone();
                async move {
                    tokio::time::sleep(slow).await;
                    *at.lock().unwrap() = Some(tokio::time::Instant::now());
                    text("a")
                }
            },
            header_timeout(),
            rx,
        )
        .await;
        assert!(matches!(outcome, Outcome::Closed));
        assert_eq!(answers(&written.lock().unwrap(), false).len(), 1);
        let answered = answered.lock().unwrap().expect("the handler ran");
        assert_timed_out(answered);
    }
}

/// The wait ended at the header read timeout (the timer wheel rounds up to its next tick).
fn assert_timed_out(started: tokio::time::Instant) {
    let waited = started.elapsed();
    assert!(
        waited >= header_timeout() && waited < header_timeout() + Duration::from_millis(5),
        "{waited:?}"
    );
}

/// One request for the property test: method, target, fields, body.
fn request() -> impl Strategy<Value = (Method, String, Vec<(String, String)>, Vec<u8>)> {
    let method = prop::sample::select(vec![Method::GET, Method::POST, Method::PUT, Method::DELETE]);
    let target = "/[a-z0-9/._-]{0,40}(\\?[a-z0-9=&%]{0,20})?";
    let field = ("x-[a-z]{1,10}", "[ -~]{0,30}")
        .prop_map(|(n, v): (String, String)| (n, v.trim().to_string()));
    let fields = prop::collection::vec(field, 0..8);
    let body = prop::collection::vec(any::<u8>(), 0..3000);
    (method, target, fields, body)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any sequence of requests, cut into any reads, is served as sent, in order: method,
    /// target, fields in order, body; one answer each.
    #[test]
    fn requests_cut_anywhere_are_served_as_sent(
        requests in prop::collection::vec(request(), 1..5),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut stream = Vec::new();
        for (method, target, fields, body) in &requests {
            stream.extend_from_slice(format!("{method} {target} HTTP/1.1\r\n").as_bytes());
            for (n, v) in fields {
                stream.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
            }
            stream.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
            stream.extend_from_slice(body);
        }
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(stream.len())).collect();
        at.extend([0, stream.len()]);
        at.sort_unstable();
        at.dedup();
        let reads: Vec<Option<&[u8]>> = at.windows(2).map(|w| Some(&stream[w[0]..w[1]])).collect();
        let (script, written, _) = Script::new(reads, false);
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let (outcome, seen) = rt.block_on(serve_echo(script));
        prop_assert!(matches!(outcome, Outcome::Closed));
        prop_assert_eq!(seen.len(), requests.len());
        for (got, (method, target, fields, body)) in seen.iter().zip(&requests) {
            prop_assert_eq!(&got.method, method);
            prop_assert_eq!(&got.uri, target);
            // A `HeaderMap` lists a name's values together, in the order they came.
            let mut map = HeaderMap::new();
            for (n, v) in fields {
                map.append(HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
            }
            map.append(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            let expected: Vec<(String, Vec<u8>)> =
                map.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect();
            prop_assert_eq!(&got.fields, &expected);
            prop_assert_eq!(&got.body, body);
        }
        prop_assert_eq!(answers(&written.lock().unwrap(), false).len(), requests.len());
    }
}

#[tokio::test]
async fn a_client_gone_during_its_request_drops_the_handler() {
    struct Dropped(Arc<Mutex<bool>>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = true;
        }
    }
    // The request, then the end of the stream while the handler waits (on its upstream, say).
    let (script, written, _) = Script::new(vec![Some(b"GET /slow HTTP/1.1\r\n\r\n")], false);
    let dropped = Arc::new(Mutex::new(false));
    let flag = dropped.clone();
    let (_tx, rx) = watch::channel(false);
    let outcome = serve(
        script,
        move |_req| {
            let guard = Dropped(flag.clone());
            async move {
                let _guard = guard;
                std::future::pending::<Resp>().await
            }
        },
        header_timeout(),
        rx,
    )
    .await;
    assert!(matches!(outcome, Outcome::Closed));
    assert!(*dropped.lock().unwrap(), "the handler was not dropped");
    assert!(written.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn bytes_arriving_while_a_handler_runs_are_the_next_request() {
    let (script, written, _) = Script::new(
        vec![
            Some(b"GET /a HTTP/1.1\r\n\r\n"),
            Some(b"GET /b HTTP/1.1\r\n\r\n"),
        ],
        true,
    );
    let (_tx, rx) = watch::channel(false);
    let outcome = serve(
        script,
        |req: Request<RequestBody>| async move {
            // Waits, as on an upstream: the connection is read meanwhile.
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            Response::new(Full::new(Bytes::from(req.uri().path().to_owned())))
        },
        header_timeout(),
        rx,
    )
    .await;
    assert!(matches!(outcome, Outcome::Closed));
    let got = answers(&written.lock().unwrap(), false);
    let bodies: Vec<&[u8]> = got.iter().map(|(_, _, b)| b.as_slice()).collect();
    assert_eq!(bodies, [&b"/a"[..], b"/b"]);
}

/// A server answering `a` to every request on one end of a duplex: the client's end, the
/// shutdown sender and the server's task.
fn spawn_text_server() -> (
    tokio::io::DuplexStream,
    watch::Sender<bool>,
    tokio::task::JoinHandle<Outcome<tokio::io::DuplexStream>>,
) {
    let (client, server) = tokio::io::duplex(1 << 16);
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(serve(
        server,
        |_req| async { text("a") },
        header_timeout(),
        rx,
    ));
    (client, tx, task)
}

#[tokio::test(start_paused = true)]
async fn shutdown_finishes_a_head_begun_and_closes_a_connection_idle_but_for_line_breaks() {
    // Half a head when shutdown begins: the request is read whole and answered, then closed.
    let (mut client, tx, task) = spawn_text_server();
    client.write_all(b"GET / HT").await.unwrap();
    tokio::task::yield_now().await;
    tx.send(true).unwrap();
    tokio::task::yield_now().await;
    client.write_all(b"TP/1.1\r\n\r\n").await.unwrap();
    assert!(matches!(task.await.unwrap(), Outcome::Closed));
    let mut written = Vec::new();
    client.read_to_end(&mut written).await.unwrap();
    let got = answers(&written, false);
    assert_eq!(got.len(), 1);
    assert_eq!(field(&got[0].1, "connection"), Some("close"));
    // A trailing line break after a request: idle, so closed as soon as shutdown begins.
    let (mut client, tx, task) = spawn_text_server();
    client
        .write_all(b"GET / HTTP/1.1\r\n\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    let started = tokio::time::Instant::now();
    tx.send(true).unwrap();
    assert!(matches!(task.await.unwrap(), Outcome::Closed));
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn the_body_frames_the_answer_whatever_length_the_service_set() {
    // A wrong length and a `transfer-encoding` from the service never reach the client.
    let (_, written, _) = serve_one(b"GET /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\n\r\n", || {
        let mut r = text("abc");
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(10));
        r.headers_mut().insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        r
    })
    .await;
    let got = answers(&written, false);
    assert_eq!(got.len(), 2, "{:?}", String::from_utf8_lossy(&written));
    for (_, fields, body) in got {
        assert_eq!(body, b"abc");
        assert_eq!(field(&fields, "content-length"), Some("3"));
        assert_eq!(field(&fields, "transfer-encoding"), None);
    }
}

#[tokio::test]
async fn a_handed_over_connection_reads_what_was_read_first() {
    let (script, _, _) = Script::new(vec![Some(b"def"), Some(b"gh")], false);
    let mut io = Prefixed::new(Bytes::from_static(b"abc"), script);
    let mut all = Vec::new();
    io.read_to_end(&mut all).await.unwrap();
    assert_eq!(all, b"abcdefgh");
    // A read smaller than what was read first takes it in pieces.
    let (script, _, _) = Script::new(vec![Some(b"de")], false);
    let mut io = Prefixed::new(Bytes::from_static(b"abc"), script);
    let mut two = [0u8; 2];
    io.read_exact(&mut two).await.unwrap();
    assert_eq!(&two, b"ab");
    let mut rest = Vec::new();
    io.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b"cde");
}
