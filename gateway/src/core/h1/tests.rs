//! The codec against scripted peers (`tokio::io::duplex`): framings, interim answers, split
//! reads, limits and malformed answers; and the request head it writes.

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

const MAX: usize = 1 << 20;

/// A connection whose peer answers the first request with `answer`, written `piece` bytes at a
/// time, then keeps its end open (`close`: closes it). Returns the request the peer read.
async fn scripted(
    answer: &'static [u8],
    piece: usize,
    close: bool,
) -> (Conn<DuplexStream>, tokio::task::JoinHandle<Vec<u8>>) {
    let (client, mut server) = tokio::io::duplex(1 << 16);
    let peer = tokio::spawn(async move {
        let request = read_request(&mut server).await;
        for part in answer.chunks(piece) {
            server.write_all(part).await.unwrap();
            tokio::task::yield_now().await;
        }
        if close {
            drop(server);
        } else {
            // Held open until the test ends.
            std::mem::forget(server);
        }
        request
    });
    (Conn::new(client), peer)
}

/// Reads one whole request (head and `content-length` body) from `peer`.
async fn read_request(peer: &mut DuplexStream) -> Vec<u8> {
    let mut request = Vec::new();
    loop {
        let mut fields = [httparse::EMPTY_HEADER; 16];
        let mut parsed = httparse::Request::new(&mut fields);
        if let Ok(httparse::Status::Complete(head)) = parsed.parse(&request) {
            let length = parsed
                .headers
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case("content-length"))
                .map_or(0, |f| {
                    std::str::from_utf8(f.value).unwrap().parse().unwrap()
                });
            if request.len() >= head + length {
                return request;
            }
        }
        let mut chunk = [0u8; 4096];
        let n = peer.read(&mut chunk).await.unwrap();
        if n == 0 {
            return request;
        }
        request.extend_from_slice(&chunk[..n]);
    }
}

/// A `POST` head to `path` for a body of `len` bytes.
fn post_head(path: &str, len: usize) -> Vec<u8> {
    let mut head = Vec::new();
    write_head(&mut head, &Method::POST, "", path, &HeaderMap::new(), len).unwrap();
    head
}

fn get() -> Vec<u8> {
    b"GET /x HTTP/1.1\r\nhost: u\r\n\r\n".to_vec()
}

/// One `GET` answered with `answer` (see [`scripted`]): the answer read with all its fields,
/// and whether the connection stayed usable. Read again with [`AnswerFields::OnFailure`], the
/// outcome must be the same (framing and reuse come from the head either way), the map left
/// empty on a success.
async fn one(answer: &'static [u8], piece: usize, close: bool) -> (Result<Answer, Error>, bool) {
    let all = one_with(AnswerFields::All, answer, piece, close).await;
    let lean = one_with(AnswerFields::OnFailure, answer, piece, close).await;
    let shown = String::from_utf8_lossy(answer);
    match (&all.0, &lean.0) {
        (Ok(a), Ok(l)) => {
            assert_eq!((a.status, &a.body), (l.status, &l.body), "{shown:?}");
            if a.status.is_success() {
                assert!(l.headers.is_empty(), "{shown:?}");
            } else {
                assert_eq!(a.headers, l.headers, "{shown:?}");
            }
        }
        (Err(a), Err(l)) => assert_eq!(a.to_string(), l.to_string(), "{shown:?}"),
        (a, l) => panic!("{a:?} read with all fields, {l:?} on failure only: {shown:?}"),
    }
    assert_eq!(all.1, lean.1, "reuse of {shown:?}");
    all
}

/// [`one`] read with `fields` only.
async fn one_with(
    fields: AnswerFields,
    answer: &'static [u8],
    piece: usize,
    close: bool,
) -> (Result<Answer, Error>, bool) {
    let (mut c, _peer) = scripted(answer, piece, close).await;
    let r = c.exchange(&get(), &[], &Method::GET, MAX, fields).await;
    let reusable = c.usable();
    (r, reusable)
}

#[tokio::test]
async fn a_content_length_body_is_read_and_the_connection_kept() {
    for piece in [1, 7, 4096] {
        let (r, reusable) = one(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"rows\":[]}",
            piece,
            false,
        )
        .await;
        let a = r.unwrap();
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.headers["content-type"], "application/json");
        assert_eq!(a.body, "{\"rows\":[]}");
        assert!(reusable, "piece {piece}");
    }
}

/// The query path reads a successful answer's body only (it answers with its own fields) and
/// relays a failed one with upstream's fields.
#[tokio::test]
async fn on_failure_only_a_failed_answer_keeps_its_fields() {
    async fn read(answer: &'static [u8]) -> Answer {
        let (r, reusable) = one_with(AnswerFields::OnFailure, answer, 64, false).await;
        assert!(reusable, "{:?}", String::from_utf8_lossy(answer));
        r.unwrap()
    }
    let a =
        read(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
            .await;
    assert!(a.headers.is_empty(), "{:?}", a.headers);
    assert_eq!(a.body, "{}");
    let a =
        read(b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 2\r\n\r\n{}")
            .await;
    assert_eq!(a.headers["retry-after"], "1");
    assert_eq!(a.headers["content-length"], "2");
}

#[tokio::test]
async fn a_chunked_body_is_joined_with_extensions_and_trailers_dropped() {
    for piece in [1, 5, 4096] {
        let (r, reusable) = one(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nx-trailer: t\r\n\r\n",
            piece,
            false,
        )
        .await;
        assert_eq!(r.unwrap().body, "Wikipedia in\r\n\r\nchunks.");
        assert!(reusable, "piece {piece}");
    }
}

#[tokio::test]
async fn a_body_without_length_runs_to_the_close_and_ends_the_connection() {
    let (r, reusable) = one(b"HTTP/1.1 200 OK\r\n\r\nall of it", 3, true).await;
    assert_eq!(r.unwrap().body, "all of it");
    assert!(!reusable);
}

#[tokio::test]
async fn connection_close_and_http_1_0_are_not_reused() {
    let (r, reusable) = one(
        b"HTTP/1.1 200 OK\r\nConnection: Close\r\ncontent-length: 2\r\n\r\nok",
        64,
        false,
    )
    .await;
    assert_eq!(r.unwrap().body, "ok");
    assert!(!reusable);
    let (r, reusable) = one(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok", 64, false).await;
    assert_eq!(r.unwrap().body, "ok");
    assert!(!reusable);
    let (r, reusable) = one(
        b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok",
        64,
        false,
    )
    .await;
    assert_eq!(r.unwrap().body, "ok");
    assert!(reusable);
}

#[tokio::test]
async fn interim_answers_are_skipped() {
    let (r, _) = one(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n",
        2,
        false,
    )
    .await;
    let a = r.unwrap();
    assert_eq!(a.status, StatusCode::CREATED);
    assert!(a.headers.get("link").is_none());
}

#[tokio::test]
async fn head_204_and_304_answers_have_no_body() {
    for answer in [
        &b"HTTP/1.1 204 No Content\r\n\r\n"[..],
        b"HTTP/1.1 304 Not Modified\r\ncontent-length: 10\r\n\r\n",
    ] {
        let answer: &'static [u8] = answer;
        let (r, reusable) = one(answer, 64, false).await;
        assert!(r.unwrap().body.is_empty());
        assert!(reusable);
    }
    let (mut c, _peer) =
        scripted(b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n", 64, false).await;
    let a = c
        .exchange(
            b"HEAD / HTTP/1.1\r\n\r\n",
            &[],
            &Method::HEAD,
            MAX,
            AnswerFields::All,
        )
        .await
        .unwrap();
    assert!(a.body.is_empty());
    assert_eq!(a.headers["content-length"], "99");
    assert!(c.usable());
}

#[tokio::test]
async fn limits_and_malformed_answers_are_errors() {
    let cases: [(&'static [u8], &str); 8] = [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nab", "closed"),
        (b"HTTP/1.1 200 OK\r\ncontent-le", "closed"),
        (b"", "closed"),
        (b"SMTP ready\r\n\r\n", "not an HTTP"),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nab",
            "conflicting",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "bad content-length",
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            "bad chunk size",
        ),
        (
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "protocol switch",
        ),
    ];
    for (answer, expect) in cases {
        let (r, reusable) = one(answer, 64, true).await;
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains(expect),
            "{e} for {:?}",
            String::from_utf8_lossy(answer)
        );
        assert!(!reusable);
    }
    let (mut c, _peer) = scripted(
        b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{\"rows\":[]}",
        64,
        false,
    )
    .await;
    let e = c
        .exchange(&get(), &[], &Method::GET, 10, AnswerFields::All)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::TooLarge), "{e}");
    let (mut c, _peer) = scripted(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n",
        64,
        false,
    )
    .await;
    let e = c
        .exchange(&get(), &[], &Method::GET, 10, AnswerFields::All)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::TooLarge), "{e}");
}

/// Framing fields in combination (each answer read in both [`AnswerFields`] modes by [`one`]):
/// the last `Transfer-Encoding` decides, a `Content-Length` is judged only when it frames the
/// answer, and of several bad lengths the first one's error is reported.
#[tokio::test]
async fn framing_fields_are_read_in_order_and_judged_only_when_they_frame() {
    // (answer, peer closes after it, body read, connection reusable)
    let cases: [(&'static [u8], bool, &str, bool); 4] = [
        // The last transfer coding decides: `gzip` last is not chunked (read to the close).
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: gzip\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            true,
            "2\r\nok\r\n0\r\n\r\n",
            false,
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            false,
            "ok",
            true,
        ),
        // A bad length under chunks does not frame the answer (but framed both ways, it
        // closes).
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: x\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            false,
            "ok",
            false,
        ),
        // Nor on an answer without a body.
        (
            b"HTTP/1.1 304 Not Modified\r\ncontent-length: x\r\n\r\n",
            false,
            "",
            true,
        ),
    ];
    for (answer, close, body, kept) in cases {
        let (r, reusable) = one(answer, 64, close).await;
        let shown = String::from_utf8_lossy(answer);
        assert_eq!(r.unwrap().body, body, "{shown:?}");
        assert_eq!(reusable, kept, "{shown:?}");
    }
    for fields in [AnswerFields::All, AnswerFields::OnFailure] {
        let (mut c, _peer) =
            scripted(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n", 64, false).await;
        let a = c
            .exchange(b"HEAD / HTTP/1.1\r\n\r\n", &[], &Method::HEAD, MAX, fields)
            .await
            .unwrap();
        assert!(a.body.is_empty());
        assert!(c.usable(), "{fields:?}");
    }
    // The first bad length's error, whichever kind.
    for (answer, expect) in [
        (
            &b"HTTP/1.1 200 OK\r\ncontent-length: x\r\ncontent-length: 2, 3\r\n\r\nok"[..],
            "a bad content-length",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\ncontent-length: x\r\n\r\nok",
            "conflicting content-lengths",
        ),
    ] {
        let answer: &'static [u8] = answer;
        let (r, _) = one(answer, 64, true).await;
        let e = r.unwrap_err().to_string();
        assert!(e.ends_with(expect), "{e}");
    }
}

#[tokio::test]
async fn bytes_after_the_answer_or_a_closed_peer_make_the_connection_unusable() {
    let (r, reusable) = one(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA",
        64,
        false,
    )
    .await;
    assert_eq!(r.unwrap().body, "ok");
    assert!(!reusable);
    let (mut c, peer) = scripted(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", 64, true).await;
    c.exchange(&get(), &[], &Method::GET, MAX, AnswerFields::All)
        .await
        .unwrap();
    peer.await.unwrap();
    assert!(!c.usable(), "the peer closed after answering");
}

#[tokio::test]
async fn a_request_to_a_closed_peer_is_unsent() {
    let (client, server) = tokio::io::duplex(64);
    drop(server);
    let mut c = Conn::new(client);
    let e = c
        .exchange(&get(), &[], &Method::GET, MAX, AnswerFields::All)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unsent(_)), "{e}");
}

#[tokio::test]
async fn the_request_goes_out_as_written() {
    let (mut c, peer) = scripted(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", 64, false).await;
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.append("x-tag", HeaderValue::from_static("a"));
    headers.append("x-tag", HeaderValue::from_static("b"));
    let mut req = Vec::new();
    write_head(&mut req, &Method::POST, "/base", "/v2/q?x=1", &headers, 2).unwrap();
    c.exchange(&req, &[b"{", b"}"], &Method::POST, MAX, AnswerFields::All)
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(peer.await.unwrap()).unwrap(),
        "POST /base/v2/q?x=1 HTTP/1.1\r\ncontent-type: application/json\r\nx-tag: a\r\nx-tag: b\r\ncontent-length: 2\r\n\r\n{}"
    );
}

#[test]
fn lengths_are_written_for_bodies_only() {
    let head = |m: Method, n: usize| {
        let mut out = Vec::new();
        write_head(&mut out, &m, "", "/", &HeaderMap::new(), n).unwrap();
        String::from_utf8(out).unwrap()
    };
    assert_eq!(head(Method::GET, 0), "GET / HTTP/1.1\r\n\r\n");
    assert_eq!(head(Method::DELETE, 0), "DELETE / HTTP/1.1\r\n\r\n");
    assert_eq!(head(Method::POST, 0), "POST / HTTP/1.1\r\n\r\n");
    assert_eq!(
        head(Method::GET, 1234567),
        "GET / HTTP/1.1\r\ncontent-length: 1234567\r\n\r\n"
    );
}

#[test]
fn chunk_sizes() {
    assert_eq!(chunk_size(b"1a").unwrap(), 26);
    assert_eq!(chunk_size(b"FF ; name=value").unwrap(), 255);
    assert_eq!(chunk_size(b"0").unwrap(), 0);
    for bad in [&b""[..], b"g", b";x", b"1000000000000000"] {
        assert!(
            chunk_size(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn a_target_that_would_break_the_request_line_is_refused() {
    for path in ["/v2/namespaces/a\r\nx: y/query", "/a b", "/a\u{7f}", "/\t"] {
        let mut out = Vec::new();
        let e = write_head(&mut out, &Method::GET, "", path, &HeaderMap::new(), 0).unwrap_err();
        assert_eq!(e.0, path);
        assert!(out.is_empty());
    }
    let mut out = Vec::new();
    write_head(
        &mut out,
        &Method::GET,
        "/base",
        "/v2/namespaces/caf%C3%A9?x=%20",
        &HeaderMap::new(),
        0,
    )
    .unwrap();
    assert!(out.starts_with(b"GET /base/v2/namespaces/caf%C3%A9?x=%20 HTTP/1.1\r\n"));
}

#[tokio::test]
async fn a_large_body_is_read_into_its_own_buffer() {
    static ANSWER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let answer = ANSWER.get_or_init(|| {
        let body = vec![b'x'; 300_000];
        let mut a =
            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
        a.extend_from_slice(&body);
        a
    });
    let (mut c, _peer) = scripted(answer, 1000, false).await;
    let a = c
        .exchange(&get(), &[], &Method::GET, MAX, AnswerFields::All)
        .await
        .unwrap();
    assert_eq!(a.body.len(), 300_000);
    assert!(a.body.iter().all(|b| *b == b'x'));
    assert!(c.usable());
    assert!(c.buf.capacity() <= KEEP_BUFFER, "{}", c.buf.capacity());
}

#[tokio::test]
async fn a_large_chunk_is_read_into_the_body() {
    static ANSWER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let answer = ANSWER.get_or_init(|| {
        let mut a = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        a.extend_from_slice(format!("{:x}\r\n", 200_000).as_bytes());
        a.extend_from_slice(&vec![b'y'; 200_000]);
        a.extend_from_slice(b"\r\n3\r\nend\r\n0\r\n\r\n");
        a
    });
    let (mut c, _peer) = scripted(answer, 777, false).await;
    let a = c
        .exchange(&get(), &[], &Method::GET, MAX, AnswerFields::All)
        .await
        .unwrap();
    assert_eq!(a.body.len(), 200_003);
    assert!(a.body.ends_with(b"yend"));
    assert!(c.usable());
    assert!(c.buf.capacity() <= KEEP_BUFFER, "{}", c.buf.capacity());
}

#[tokio::test]
async fn answers_framed_both_ways_or_saying_close_end_their_connection() {
    for answer in [
        &b"HTTP/1.0 200 OK\r\nconnection: close\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok"[..],
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 2\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    ] {
        let answer: &'static [u8] = answer;
        let (r, reusable) = one(answer, 64, false).await;
        assert_eq!(r.unwrap().body, "ok");
        assert!(!reusable, "{:?}", String::from_utf8_lossy(answer));
    }
}

/// An upstream that answers before reading the whole body and closes (a 413 to a large
/// write): the answer is the outcome, not the failed write.
#[tokio::test]
async fn an_answer_sent_before_the_body_was_read_is_returned() {
    let (client, mut server) = tokio::io::duplex(1 << 10);
    tokio::spawn(async move {
        let mut head = [0u8; 64];
        let _ = server.read(&mut head).await;
        server
            .write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\n\r\nbig!")
            .await
            .unwrap();
        drop(server);
    });
    let mut c = Conn::new(client);
    let body = vec![b'z'; 1 << 20];
    let head = post_head("/w", body.len());
    let a = c
        .exchange(&head, &[&body], &Method::POST, MAX, AnswerFields::All)
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.body, "big!");
    assert!(!c.kept_alive());
}

/// A peer that takes at most `cap` bytes per write, gathering from every slice of a vectored
/// write as a socket does, and answers with `answer` once asked to read.
struct ShortWrites {
    cap: usize,
    got: Vec<u8>,
    writes: usize,
    answer: &'static [u8],
    /// The write of this number (0 the first) fails, having taken nothing.
    fail_at: Option<usize>,
}

impl tokio::io::AsyncWrite for ShortWrites {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.writes += 1;
        if self.fail_at == Some(self.writes - 1) {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let mut room = self.cap;
        for b in bufs {
            let n = b.len().min(room);
            self.got.extend_from_slice(&b[..n]);
            room -= n;
        }
        Poll::Ready(Ok(self.cap - room))
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncRead for ShortWrites {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.answer.len().min(buf.remaining());
        buf.put_slice(&self.answer[..n]);
        self.answer = &self.answer[n..];
        Poll::Ready(Ok(()))
    }
}

/// Head and body parts leave in one vectored write when the socket takes them (not the head,
/// then each part), and short writes resume exactly where the socket stopped, across the
/// boundaries between head and parts, so the peer reads the request byte for byte.
#[tokio::test]
async fn head_and_body_leave_together_and_short_writes_resume_in_place() {
    let mut head = Vec::new();
    let body: Vec<u8> = (0..5000u32).map(|i| b'a' + (i % 26) as u8).collect();
    write_head(
        &mut head,
        &Method::POST,
        "",
        "/v2/namespaces/n/query",
        &HeaderMap::new(),
        body.len(),
    )
    .unwrap();
    let whole = [head.as_slice(), body.as_slice()].concat();
    for cap in [
        1,
        7,
        head.len() - 1,
        head.len(),
        head.len() + 1,
        4096,
        whole.len(),
    ] {
        let mut c = Conn::new(ShortWrites {
            cap,
            got: Vec::new(),
            writes: 0,
            answer: b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
            fail_at: None,
        });
        // The body in parts, as a spliced one is sent: an empty part between two others,
        // one a byte long, and the rest.
        let parts: [&[u8]; 4] = [&body[..1000], &[], &body[1000..1001], &body[1001..]];
        let a = c
            .exchange(&head, &parts, &Method::POST, MAX, AnswerFields::All)
            .await
            .unwrap();
        assert_eq!(a.body, "ok");
        assert!(c.io.got == whole, "cap {cap}: the request arrived altered");
        assert_eq!(c.io.writes, whole.len().div_ceil(cap), "cap {cap}");
    }
    // An empty body adds no write of its own.
    let mut c = Conn::new(ShortWrites {
        cap: 1 << 16,
        got: Vec::new(),
        writes: 0,
        answer: b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
        fail_at: None,
    });
    c.exchange(&get(), &[], &Method::GET, MAX, AnswerFields::All)
        .await
        .unwrap();
    assert_eq!((c.io.got.as_slice(), c.io.writes), (get().as_slice(), 1));
}

/// A request is unsent only when no byte of it left: the pool sends an unsent request again
/// on another connection, so a request failing after part of it went out must be a write
/// error (sending it again could apply a write twice).
#[tokio::test]
async fn a_request_is_unsent_only_when_nothing_of_it_left() {
    let body = [b'x'; 100];
    let head = post_head("/w", body.len());
    for (fail_at, unsent) in [(0, true), (1, false), (3, false)] {
        let mut c = Conn::new(ShortWrites {
            cap: 40,
            got: Vec::new(),
            writes: 0,
            // Nothing to read: the failed write is the outcome.
            answer: b"",
            fail_at: Some(fail_at),
        });
        let e = c
            .exchange(
                &head,
                &[&body[..50], &body[50..]],
                &Method::POST,
                MAX,
                AnswerFields::All,
            )
            .await
            .unwrap_err();
        assert_eq!(
            matches!(e, Error::Unsent(_)),
            unsent,
            "failing write {fail_at}: {e}"
        );
        assert!(matches!(e, Error::Unsent(_) | Error::Write(_)), "{e}");
        assert!(!c.kept_alive());
    }
}
