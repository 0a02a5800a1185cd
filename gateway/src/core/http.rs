//! Responses and bodies: the response type, JSON responses, relaying an upstream answer, reading
//! a bounded request body, gzip in both directions, the W3C `traceparent`, and the clock the
//! write stamp uses.

use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::Value;

use super::error::GatewayError;
use super::upstream::UpstreamResponse;

/// Every response the gateway writes.
pub type Resp = Response<Full<Bytes>>;

/// A request's body as the service gets it: read whole with its head by the shard's own
/// HTTP/1.1 server ([`super::h1_server`]; `None` once taken, or when there was none), or
/// hyper's stream for every other request.
#[derive(Debug)]
pub enum RequestBody {
    Buffered(Option<Bytes>),
    Hyper(Incoming),
}

impl RequestBody {
    /// Whether some of the body may still be on the connection, unread.
    pub fn unread_on_wire(&self) -> bool {
        match self {
            RequestBody::Buffered(_) => false,
            RequestBody::Hyper(body) => !hyper::body::Body::is_end_stream(body),
        }
    }
}

impl hyper::body::Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Buffered(b) => {
                std::task::Poll::Ready(b.take().map(|b| Ok(hyper::body::Frame::data(b))))
            }
            RequestBody::Hyper(body) => std::pin::Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Buffered(b) => b.is_none(),
            RequestBody::Hyper(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            RequestBody::Buffered(b) => {
                hyper::body::SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
            RequestBody::Hyper(body) => body.size_hint(),
        }
    }
}

/// Reads a request body, refusing (413) anything larger than `limit` and (408) a body not
/// received within `timeout`. A body whose declared `content-length` is past the limit is
/// refused before any of it is read.
pub async fn read_body(
    body: RequestBody,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, GatewayError> {
    if hyper::body::Body::size_hint(&body).lower() > limit as u64 {
        return Err(GatewayError::PayloadTooLarge(format!(
            "request body rejected (limit {limit} bytes): content-length {} is past it",
            hyper::body::Body::size_hint(&body).lower()
        )));
    }
    let read = collect_bytes(Limited::new(body, limit));
    match tokio::time::timeout(timeout, read).await {
        Err(_) => Err(GatewayError::RequestTimeout(format!(
            "the request body was not received within {} ms",
            timeout.as_millis()
        ))),
        Ok(r) => r.map_err(|e| {
            GatewayError::PayloadTooLarge(format!(
                "request body rejected (limit {limit} bytes): {e}"
            ))
        }),
    }
}

/// A whole body's bytes. A body that arrives in one frame (the usual case for a request or an
/// upstream answer of a few KB) is returned as that frame, with no buffer list and no copy; more
/// frames are copied into one buffer sized from the body's declared length (up to 1 MiB; it
/// grows past that as data arrives). Trailers are dropped.
pub async fn collect_bytes<B>(mut body: B) -> Result<Bytes, B::Error>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    let mut first: Option<Bytes> = None;
    let mut joined: Option<bytes::BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        match (&mut joined, first.take()) {
            (Some(buf), _) => buf.extend_from_slice(&data),
            (None, None) => first = Some(data),
            (None, Some(head)) => {
                // The declared length sizes the buffer up to 1 MiB: a sender that declares much
                // and sends little does not get a large buffer reserved for it.
                let declared = usize::try_from(body.size_hint().lower())
                    .unwrap_or(0)
                    .min(1 << 20);
                let mut buf = bytes::BytesMut::with_capacity(head.len() + data.len() + declared);
                buf.extend_from_slice(&head);
                buf.extend_from_slice(&data);
                joined = Some(buf);
            }
        }
    }
    Ok(joined.map_or_else(|| first.unwrap_or_default(), bytes::BytesMut::freeze))
}

/// Parses the JSON body of a Layer route (scan and snapshot jobs, batch fetch, snapshot
/// policy): validated whole first, like every body the gateway reads — duplicate keys at any
/// depth, nesting past `maxJsonDepth` and bodies past `maxBodyBytes` are refused before a tree is
/// built (422, or 413 for the size) — then parsed. An empty body is `{}`.
pub fn json_body(body: &[u8], limits: &scatter::Limits) -> Result<Value, GatewayError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    validate_body(body, limits)?;
    serde_json::from_slice(body)
        .map_err(|e| GatewayError::Validation(format!("request body is not valid JSON: {e}")))
}

/// Validates a Layer route's JSON body whole without building a tree (for routes that then read
/// it lazily and splice): duplicate keys at any depth, nesting past `maxJsonDepth`, invalid
/// escapes are 422 `validation_error`, a body past `maxBodyBytes` 413.
pub fn validate_body(body: &[u8], limits: &scatter::Limits) -> Result<(), GatewayError> {
    scatter::validate(body, limits).map_err(|e| match e {
        scatter::RewriteError::Oversize { .. } => GatewayError::PayloadTooLarge(e.to_string()),
        e => GatewayError::Validation(format!("request body: {e}")),
    })
}

/// Whether the caller accepts a gzip-compressed answer.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains("gzip")))
}

/// Compresses a response the gateway built (query answers are fetched uncompressed so they can
/// be merged) when the caller accepts gzip. Small bodies are not worth it.
pub fn gzip_response(up: &mut UpstreamResponse) {
    use std::io::Write;
    if up.body.len() < 1024 || up.headers.contains_key(header::CONTENT_ENCODING) {
        return;
    }
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(up.body.len() / 3),
        flate2::Compression::fast(),
    );
    if enc.write_all(&up.body).is_ok()
        && let Ok(gz) = enc.finish()
    {
        up.body = Bytes::from(gz);
        up.headers
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
}

/// Inflates a `content-encoding: gzip` request body (413 past `limit` bytes, without inflating
/// more than `limit + 1`); any other body is returned as is.
pub fn decode_gzip(headers: &HeaderMap, raw: Bytes, limit: usize) -> Result<Bytes, GatewayError> {
    let gz = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    if !gz {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
    let read = flate2::read::GzDecoder::new(raw.as_ref())
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| GatewayError::Validation(format!("request body is not valid gzip: {e}")))?;
    if read > limit {
        return Err(GatewayError::PayloadTooLarge(format!(
            "decompressed request body exceeds {limit} bytes"
        )));
    }
    Ok(Bytes::from(out))
}

/// An upstream answer as the gateway's response; `trace` is echoed unless upstream sent one.
pub fn relay(up: UpstreamResponse, trace: Option<HeaderValue>) -> Resp {
    let mut resp = Response::new(Full::new(up.body));
    *resp.status_mut() = up.status;
    *resp.headers_mut() = up.headers;
    if let Some(t) = trace {
        resp.headers_mut().entry(TRACEPARENT).or_insert(t);
    }
    resp
}

/// A JSON response.
pub fn json_response(status: StatusCode, v: &Value) -> Resp {
    json_bytes(
        status,
        Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
    )
}

/// A response with a JSON body already serialised.
pub fn json_bytes(status: StatusCode, body: Bytes) -> Resp {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The W3C trace context header. A constant name: inserting a custom name given as a string
/// copies it on every call.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Adds a W3C `traceparent` when the caller sent none, so upstream logs and ours correlate.
/// Returns the request's trace context.
pub fn ensure_traceparent(headers: &mut HeaderMap) -> Option<HeaderValue> {
    if let Some(t) = headers.get(TRACEPARENT) {
        return Some(t.clone());
    }
    let trace: u128 = rand::random::<u128>() | 1;
    let span: u64 = rand::random::<u64>() | 1;
    // `00-{trace:032x}-{span:016x}-01`, written in place: one allocation (the shared owner, so
    // the clone below is a reference count, not a copy).
    let mut text = *b"00-00000000000000000000000000000000-0000000000000000-01";
    hex_into(&mut text[3..35], trace);
    hex_into(&mut text[36..52], u128::from(span));
    let v = HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(text)).ok()?;
    headers.insert(TRACEPARENT, v.clone());
    Some(v)
}

/// Writes the low `4 * out.len()` bits of `n` as lowercase hex, most significant digit first.
fn hex_into(out: &mut [u8], mut n: u128) {
    for b in out.iter_mut().rev() {
        *b = b"0123456789abcdef"[(n & 0xf) as usize];
        n >>= 4;
    }
}

/// Server time in epoch milliseconds (the write stamp).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Part = Result<hyper::body::Frame<Bytes>, std::io::Error>;

    /// A body of these frames (`Err` for a failing frame).
    fn frames(
        parts: Vec<Part>,
    ) -> http_body_util::StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Part>>> {
        http_body_util::StreamBody::new(futures_util::stream::iter(parts))
    }

    #[tokio::test]
    async fn a_body_is_collected_whole_and_one_frame_is_not_copied() {
        use hyper::body::Frame;
        let one = Bytes::from_static(b"{\"rows\":[]}");
        let got = collect_bytes(frames(vec![Ok(Frame::data(one.clone()))]))
            .await
            .unwrap();
        assert_eq!(got.as_ptr(), one.as_ptr(), "the frame itself");
        let mut trailers = HeaderMap::new();
        trailers.insert("x-t", HeaderValue::from_static("1"));
        let got = collect_bytes(frames(vec![
            Ok(Frame::data(Bytes::from_static(b"ab"))),
            Ok(Frame::data(Bytes::new())),
            Ok(Frame::data(Bytes::from_static(b"cd"))),
            Ok(Frame::data(Bytes::from_static(b"e"))),
            Ok(Frame::trailers(trailers)),
        ]))
        .await
        .unwrap();
        assert_eq!(got, "abcde");
        assert!(collect_bytes(frames(vec![])).await.unwrap().is_empty());
        let failed = collect_bytes(frames(vec![
            Ok(Frame::data(Bytes::from_static(b"ab"))),
            Err(std::io::Error::other("reset")),
        ]))
        .await;
        assert!(failed.is_err());
    }

    #[test]
    fn traceparent_is_generated_once() {
        let mut h = HeaderMap::new();
        let first = ensure_traceparent(&mut h).unwrap();
        let t = h["traceparent"].to_str().unwrap().to_string();
        assert_eq!(t.len(), 55);
        assert_eq!(first, t.as_str());
        let parts: Vec<&str> = t.split('-').collect();
        assert_eq!(parts.len(), 4, "{t}");
        assert_eq!((parts[0], parts[3]), ("00", "01"));
        assert_eq!((parts[1].len(), parts[2].len()), (32, 16));
        assert!(
            parts[1..3].iter().all(|p| p
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())),
            "{t}"
        );
        assert!(
            u128::from_str_radix(parts[1], 16).unwrap() & 1 == 1,
            "never all zero: {t}"
        );
        let mut buf = [0u8; 8];
        hex_into(&mut buf, 0x0123_abcd);
        assert_eq!(&buf, b"0123abcd");
        for n in [
            0,
            1,
            0xfeed_f00d,
            u128::from(u64::MAX),
            u128::MAX,
            0x1234 << 100,
        ] {
            let mut buf = [0u8; 32];
            hex_into(&mut buf, n);
            assert_eq!(buf, *format!("{n:032x}").as_bytes());
            let mut buf = [0u8; 16];
            hex_into(&mut buf, n);
            assert_eq!(buf, *format!("{:016x}", n as u64).as_bytes());
        }
        ensure_traceparent(&mut h);
        assert_eq!(h["traceparent"], t.as_str());
    }

    /// Generated trace ids do not repeat, within a thread or across threads.
    #[test]
    fn generated_trace_ids_are_distinct() {
        let ids = || {
            (0..200)
                .map(|_| {
                    let mut h = HeaderMap::new();
                    ensure_traceparent(&mut h).unwrap().to_str().unwrap()[3..35].to_string()
                })
                .collect::<Vec<_>>()
        };
        let mut all = ids();
        all.extend(std::thread::spawn(ids).join().unwrap());
        all.extend(std::thread::spawn(ids).join().unwrap());
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn layer_route_bodies_are_validated_whole() {
        let limits = scatter::Limits::default();
        assert_eq!(json_body(b"  ", &limits).unwrap(), serde_json::json!({}));
        assert_eq!(json_body(br#"{"a": [1]}"#, &limits).unwrap()["a"][0], 1);
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100), "]".repeat(100));
        let e = json_body(deep.as_bytes(), &limits).unwrap_err();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        let e = json_body(br#"{"ids": [1], "ids": [2]}"#, &limits).unwrap_err();
        assert!(e.to_string().contains("duplicate key"), "{e}");
        let small = scatter::Limits {
            max_body_bytes: 8,
            ..limits
        };
        let e = json_body(br#"{"ids": [1, 2, 3]}"#, &small).unwrap_err();
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(json_body(b"[1]", &limits).is_err());
    }

    #[test]
    fn gzip_bodies_are_bounded_when_inflated() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b'a'; 10_000]).unwrap();
        let gz = Bytes::from(enc.finish().unwrap());
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert_eq!(decode_gzip(&h, gz.clone(), 10_000).unwrap().len(), 10_000);
        let e = decode_gzip(&h, gz, 9_999).unwrap_err();
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
