//! The client side of HTTP/1.1 on a shard: reads requests off an accepted connection, calls the
//! service and writes its answers, for the requests the gateway almost always gets — HTTP/1.1,
//! well formed, framed by `Content-Length` (or bodiless), the whole body arrived with its head.
//! Anything else is handed, with every byte read so far, to hyper's server, which then serves
//! the rest of the connection as it served all of it before. Start at [`serve`].
//!
//! Why: hyper's server connection (dispatcher, role encoder, body channel, the auto builder's
//! protocol sniffing) was ~15k of a point query's ~63k user-space instructions and ~9k of a
//! cached fetch's ~29k (`bench/profile.sh`). Here the request is parsed once (`httparse`), its
//! path, field values and body are slices of the read buffer (no copy), and the answer's head
//! and body leave in one vectored write.
//!
//! Handed to hyper ([`Outcome::Handover`]): an HTTP/2 preface or any version but 1.1; a head
//! `httparse` refuses, over [`MAX_HEAD`] bytes or [`MAX_HEADERS`] fields, or with a field name,
//! value or target `http` refuses; `Transfer-Encoding`, `Expect`, `Upgrade`, `Connection:
//! upgrade` or `CONNECT`; several or bad `Content-Length`s; a body over [`MAX_BUFFERED_BODY`]
//! or not all in the socket yet. hyper answers those as it always did (its 400s, 431s,
//! `100 Continue`, chunked bodies, the body read timeout), so nothing is refused here.
//!
//! Kept from hyper's server: the header read timeout (`gateway.server.headerReadTimeoutMs`)
//! bounds the wait for each request's head, the idle keep-alive wait included; a `date` field on
//! every answer; `content-length` from the body (a `HEAD` answer keeps the one it carries; `1xx`,
//! `204` and `304` send no body and get none); `connection: close` in either
//! direction closes the connection after the answer (and is said in the answer); requests
//! pipelined on the connection are answered in order; on graceful shutdown an idle connection
//! closes and a busy one closes after its answer, saying `connection: close`.

use std::future::Future;
use std::io::{self, IoSlice};
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, StatusCode, Uri, Version};
use smallvec::SmallVec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;

use super::h1::{has_token, write_parts};
use super::http::{RequestBody, Resp};

/// Most header fields a request served here may carry (more: hyper's, which allows 100).
pub const MAX_HEADERS: usize = 64;

/// Largest request head served here (larger: hyper's, up to its own bound).
pub const MAX_HEAD: usize = 16 << 10;

/// Largest request (head and body) served here; larger bodies go to hyper.
pub const MAX_BUFFERED_BODY: usize = 1 << 20;

/// Room a new read buffer block gets (hyper's first read size).
const READ_CHUNK: usize = 8 << 10;

/// Least room a read is given; with less left, a new block is taken.
const MIN_READ: usize = 1 << 10;

/// How a connection left [`serve`].
pub enum Outcome<S> {
    /// Closed: by the client, after a `connection: close` answer, on shutdown, on an I/O error,
    /// or when the idle wait for a next request ran out.
    Closed,
    /// The first request's head did not begin within the header read timeout.
    FirstHeadTimedOut,
    /// For hyper: the connection and every byte read from it that no answer used.
    Handover(S, Bytes),
}

/// Serves requests on `io` with `service` until the connection closes or must go to hyper.
/// `header_timeout` bounds each wait for a request head; `shutdown` turning `true` starts a
/// graceful close.
pub async fn serve<S, F, Fut>(
    mut io: S,
    mut service: F,
    header_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> Outcome<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(Request<RequestBody>) -> Fut,
    Fut: Future<Output = Resp>,
{
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = Vec::with_capacity(512);
    let mut first = true;
    // One timer for the connection, moved to each head's deadline. Moving a registered timer
    // later only records the new deadline (the runtime re-files it when the old one comes due),
    // where a timeout per head put an entry in the timer wheel and took it out again for every
    // request (`bench/results/2026-12-07-timers.md`).
    let mut head_timer = std::pin::pin!(tokio::time::sleep(header_timeout));
    loop {
        if !first {
            head_timer
                .as_mut()
                .reset(tokio::time::Instant::now() + header_timeout);
        }
        let read = read_request(&mut io, &mut buf, &mut shutdown);
        let head = tokio::select! {
            biased;
            read = read => read,
            // Checked even when the read spent the task's budget, as `tokio::time::timeout`
            // does.
            () = tokio::task::unconstrained(head_timer.as_mut()) => {
                if first && buf.is_empty() {
                    return Outcome::FirstHeadTimedOut;
                }
                return Outcome::Closed;
            }
        };
        let head = match head {
            Read::Closed => return Outcome::Closed,
            Read::Handover => return Outcome::Handover(io, buf.freeze()),
            Read::Head(head) => head,
        };
        first = false;
        let is_head = head.method == Method::HEAD;
        let (req, close_asked) = match build(head, &mut buf) {
            Ok(r) => r,
            Err(Unbuilt(bytes)) => return Outcome::Handover(io, bytes),
        };
        // Pinned here, in this loop's state, and lent to `answer`: handed over by value, the
        // handler's future (kilobytes) was copied into `answer`'s state and again into its pin.
        let handler = std::pin::pin!(service(req));
        let Some(resp) = answer(&mut io, &mut buf, handler).await else {
            // The client went away: its handler is dropped (hyper's server did the same).
            return Outcome::Closed;
        };
        let said = says_close(resp.headers());
        let close = said || close_asked || *shutdown.borrow();
        out.clear();
        let body = encode(resp, is_head, close && !said, &mut out);
        let mut parts = [IoSlice::new(&out), IoSlice::new(&body)];
        if write_parts(&mut io, &mut parts).await.is_err() || io.flush().await.is_err() {
            return Outcome::Closed;
        }
        if close {
            let _ = io.shutdown().await;
            return Outcome::Closed;
        }
    }
}

/// Runs a request's handler (pinned by the caller, which drops it) while watching the
/// connection, as hyper's server did: the end of the stream (or a read error) stops polling it
/// and gives `None`, and the caller returns, dropping it; bytes that arrive meanwhile (a
/// pipelined request) are kept for the next read. A handler done at its first poll never reads.
async fn answer<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    mut handler: std::pin::Pin<&mut impl Future<Output = Resp>>,
) -> Option<Resp> {
    let mut watching = true;
    loop {
        if watching {
            make_room(buf);
        }
        tokio::select! {
            biased;
            resp = &mut handler => return Some(resp),
            n = io.read_buf(buf), if watching => match n {
                Ok(0) | Err(_) => return None,
                Ok(_) => watching = false,
            },
        }
    }
}

/// Room for a read: the buffer's rest while it has [`MIN_READ`] (answered requests still share
/// its block), a new block when it runs low.
fn make_room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < MIN_READ {
        buf.reserve(READ_CHUNK);
    }
}

/// Whether `buf` holds no request yet: nothing, or only the line breaks some clients send after
/// a body (the parser skips them before a request line).
fn no_request_yet(buf: &[u8]) -> bool {
    buf.iter().all(|b| matches!(b, b'\r' | b'\n'))
}

/// What one wait for a request gave.
enum Read {
    Head(Head),
    Closed,
    Handover,
}

/// Reads until `buf` starts with a whole request served here (head and body), the client
/// closes, or the request is one for hyper.
async fn read_request<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    shutdown: &mut watch::Receiver<bool>,
) -> Read {
    loop {
        if !buf.is_empty() {
            match parse(buf) {
                Parse::Unsupported => return Read::Handover,
                Parse::Partial if buf.len() >= MAX_HEAD => return Read::Handover,
                Parse::Partial => {}
                Parse::Complete(head) => {
                    // The body is on its way when not all here: take what the socket holds
                    // now, without waiting (hyper times a slow body and answers it). The head's
                    // offsets stay valid as the buffer grows.
                    let whole = head.len + head.body_len;
                    buf.reserve(whole.saturating_sub(buf.len()));
                    while buf.len() < whole {
                        match read_ready(io, buf) {
                            Some(Ok(0) | Err(_)) => return Read::Closed,
                            Some(Ok(_)) => {}
                            None => return Read::Handover,
                        }
                    }
                    return Read::Head(head);
                }
            }
        }
        let idle = no_request_yet(buf);
        if idle && *shutdown.borrow() {
            return Read::Closed;
        }
        make_room(buf);
        tokio::select! {
            biased;
            n = io.read_buf(buf) => match n {
                Ok(0) | Err(_) => return Read::Closed,
                Ok(_) => {}
            },
            // Only an idle connection closes on shutdown; a request begun is read and served.
            // (The sender gone: the gateway is going away.)
            changed = shutdown.changed(), if idle => if changed.is_err() {
                return Read::Closed;
            },
        }
    }
}

/// One read of what the socket already holds; `None` when it holds nothing.
fn read_ready<S: AsyncRead + Unpin>(io: &mut S, buf: &mut BytesMut) -> Option<io::Result<usize>> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    // Outside the task's scheduling budget: a budget run out would read as "nothing there yet"
    // and hand the connection over for no reason.
    match std::pin::pin!(tokio::task::unconstrained(io.read_buf(buf))).poll(&mut cx) {
        Poll::Pending => None,
        Poll::Ready(r) => Some(r),
    }
}

/// A connection handed to hyper: the bytes already read from it come first.
pub struct Prefixed<S> {
    read: Bytes,
    io: S,
}

impl<S> Prefixed<S> {
    pub fn new(read: Bytes, io: S) -> Self {
        Prefixed { read, io }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read.is_empty() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let n = this.read.len().min(buf.remaining());
        buf.put_slice(&this.read.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Where something lies in a request head: `start..end`. A head served here is at most
/// [`MAX_HEAD`] bytes, so `u16` offsets hold it (and a head stays small to move).
#[derive(Clone, Copy, Debug)]
struct Span(u16, u16);

const _: () = assert!(MAX_HEAD <= u16::MAX as usize);

impl Span {
    fn range(self) -> Range<usize> {
        usize::from(self.0)..usize::from(self.1)
    }
}

/// A request head served here, as offsets into the read buffer.
#[derive(Debug)]
struct Head {
    /// Bytes of the head, the blank line that ends it included.
    len: usize,
    body_len: usize,
    method: Method,
    target: Span,
    /// Each field's name and value.
    fields: SmallVec<[(Span, Span); 16]>,
    /// The request said `connection: close`.
    close: bool,
}

/// What the read buffer starts with.
#[derive(Debug)]
enum Parse {
    /// Not a whole head yet.
    Partial,
    Complete(Head),
    /// A request for hyper (see the module documentation).
    Unsupported,
}

fn parse(buf: &[u8]) -> Parse {
    // Uninitialised slots: initialising 64 of them was 2 KiB written per request.
    let mut fields = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut fields) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parse::Partial,
        Err(_) => return Parse::Unsupported,
    };
    let (Some(1), Some(method), Some(target)) = (req.version, req.method, req.path) else {
        return Parse::Unsupported;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parse::Unsupported;
    };
    if method == Method::CONNECT {
        return Parse::Unsupported;
    }
    if len > MAX_HEAD {
        return Parse::Unsupported;
    }
    // httparse's slices point into `buf`: their offsets locate them in the frozen head (all
    // within its first `len <= MAX_HEAD` bytes).
    // (Checked all the same: a slice from anywhere else goes to hyper, it does not panic.)
    let base = buf.as_ptr() as usize;
    let at = |s: &[u8]| {
        let start = (s.as_ptr() as usize).checked_sub(base)?;
        let end = start + s.len();
        (end <= len).then_some(Span(start as u16, end as u16))
    };
    let Some(target) = at(target.as_bytes()) else {
        return Parse::Unsupported;
    };
    let mut head = Head {
        len,
        body_len: 0,
        method,
        target,
        fields: SmallVec::with_capacity(req.headers.len()),
        close: false,
    };
    let mut length = None;
    for f in req.headers.iter() {
        let name = f.name.as_bytes();
        let named = |n: &HeaderName| name.eq_ignore_ascii_case(n.as_str().as_bytes());
        if named(&header::TRANSFER_ENCODING) || named(&header::EXPECT) || named(&header::UPGRADE) {
            return Parse::Unsupported;
        }
        if named(&header::CONTENT_LENGTH) {
            match (length, content_length(f.value)) {
                (None, Some(n)) if n <= MAX_BUFFERED_BODY => length = Some(n),
                _ => return Parse::Unsupported,
            }
        }
        if named(&header::CONNECTION) {
            if has_token(f.value, b"upgrade") {
                return Parse::Unsupported;
            }
            head.close |= has_token(f.value, b"close");
        }
        let (Some(name), Some(value)) = (at(name), at(f.value)) else {
            return Parse::Unsupported;
        };
        head.fields.push((name, value));
    }
    head.body_len = length.unwrap_or(0);
    Parse::Complete(head)
}

/// A `Content-Length` value of digits only (at most 19, so it fits).
fn content_length(value: &[u8]) -> Option<usize> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Bytes for hyper: a request `http` refused after its head was taken off the buffer.
struct Unbuilt(Bytes);

/// Takes the request `head` describes (head, then body) off the front of `buf` and builds it,
/// its target, field values and body sharing the buffer's bytes; also whether it asked to
/// close.
fn build(head: Head, buf: &mut BytesMut) -> Result<(Request<RequestBody>, bool), Unbuilt> {
    let raw = buf.split_to(head.len).freeze();
    let body = buf.split_to(head.body_len).freeze();
    let refused = |buf: &mut BytesMut| {
        let mut all = BytesMut::with_capacity(raw.len() + body.len() + buf.len());
        all.extend_from_slice(&raw);
        all.extend_from_slice(&body);
        all.extend_from_slice(buf);
        Unbuilt(all.freeze())
    };
    let Ok(uri) = Uri::from_maybe_shared(raw.slice(head.target.range())) else {
        return Err(refused(buf));
    };
    let mut headers = HeaderMap::with_capacity(head.fields.len());
    for (name, value) in head.fields {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&raw[name.range()]),
            HeaderValue::from_maybe_shared(raw.slice(value.range())),
        ) else {
            return Err(refused(buf));
        };
        headers.append(name, value);
    }
    let mut req = Request::new(RequestBody::Buffered(Some(body).filter(|b| !b.is_empty())));
    *req.method_mut() = head.method;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = headers;
    Ok((req, head.close))
}

/// Whether `connection` holds `close`.
fn says_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| has_token(v.as_bytes(), b"close"))
}

/// Writes the answer's head into `out` as hyper's server would (`say_close`: add
/// `connection: close`, which the answer does not say itself); returns the body to send after
/// it (empty for a `HEAD` request and for statuses without one).
fn encode(resp: Resp, is_head: bool, say_close: bool, out: &mut Vec<u8>) -> Bytes {
    let (parts, body) = resp.into_parts();
    let body = body.into_inner().unwrap_or_default();
    let status = parts.status;
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // The body frames the answer: a `HEAD` answer keeps the length it was given (the body it
    // stands for is not sent), `1xx`, `204` and `304` send none and get no length of their own,
    // every other answer gets its body's length in place of any the service set. No answer is
    // chunked (bodies are whole), so a `transfer-encoding` field never goes out.
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let own_length = !bodiless && !is_head;
    for (name, value) in &parts.headers {
        if name == header::TRANSFER_ENCODING || (own_length && name == header::CONTENT_LENGTH) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if own_length {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(scatter::write::decimal(body.len() as u64, &mut [0; 20]));
        out.extend_from_slice(b"\r\n");
    }
    if say_close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !parts.headers.contains_key(header::DATE) {
        out.extend_from_slice(b"date: ");
        date::extend(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if is_head || bodiless {
        Bytes::new()
    } else {
        body
    }
}

/// The `date` field's value, formatted once a second per thread (as hyper caches it).
mod date {
    use std::cell::RefCell;

    use super::{SystemTime, UNIX_EPOCH};

    /// `Sun, 06 Nov 1994 08:49:37 GMT`
    const LEN: usize = 29;

    thread_local! {
        static CACHED: RefCell<(u64, [u8; LEN])> = const { RefCell::new((u64::MAX, [0; LEN])) };
    }

    /// Appends the current date.
    pub fn extend(out: &mut Vec<u8>) {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        CACHED.with_borrow_mut(|(at, text)| {
            if *at != secs {
                let formatted = httpdate::fmt_http_date(now);
                if formatted.len() == LEN {
                    text.copy_from_slice(formatted.as_bytes());
                    *at = secs;
                } else {
                    out.extend_from_slice(formatted.as_bytes());
                    return;
                }
            }
            out.extend_from_slice(text);
        });
    }
}

#[cfg(test)]
mod tests;
