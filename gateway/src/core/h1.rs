//! The upstream side of HTTP/1.1, written for the one exchange the gateway makes: a request
//! whose head and body are known whole, answered by one response read whole. [`super::pool`]
//! holds the connections; start at [`Conn::exchange`].
//!
//! Why not hyper's client connection: it runs each connection as its own task and reaches it
//! through a dispatch channel and a response oneshot, so every exchange was two task wake-ups,
//! two channel hand-offs, a request `HeaderMap` and a URI built only to be encoded again. About a
//! quarter of a passthrough query's instructions went there (`bench/callgrind.sh`). Here the
//! request's task writes the head and body in one vectored `write` and parses the answer itself.
//!
//! What it reads (RFC 9112): a status line and headers (`httparse`, at most [`MAX_HEADERS`]
//! fields and [`MAX_HEAD`] bytes); interim `1xx` answers are skipped; the body is framed by
//! `Transfer-Encoding: chunked` (extensions ignored, trailers read and dropped), by
//! `Content-Length` (several different values are an error), or by the connection's close;
//! `HEAD` answers and `204`/`304` have none. A connection is kept only when the answer was
//! HTTP/1.1 without `Connection: close` (or HTTP/1.0 with `Connection: keep-alive`), framed by
//! length or by chunks but not both, and read to its end with nothing after it. The fields that
//! frame the answer are read from the head in the one pass over it; the fields go into a header
//! map only when the caller reads them ([`AnswerFields`]: the query route answers a success
//! with its own fields, so it builds upstream's map only for a failed or interim answer).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use smallvec::SmallVec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Most header fields an answer may carry (hyper's client allowed as many).
pub const MAX_HEADERS: usize = 100;

/// Largest answer head (status line and fields): hyper's client's read buffer bound.
pub const MAX_HEAD: usize = 400 << 10;

/// A read buffer grown past this (a large head) is dropped after its answer, not pooled.
const KEEP_BUFFER: usize = 64 << 10;

/// How much a read asks for at least.
const READ_CHUNK: usize = 8 << 10;

/// Most buffer reserved ahead of a body from its `Content-Length`.
const RESERVE_AT_MOST: usize = 16 << 20;

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing of the request was written: it may be sent again elsewhere.
    #[error("the connection closed before the request was written: {0}")]
    Unsent(io::Error),
    #[error("writing the request: {0}")]
    Write(io::Error),
    #[error("reading the upstream response: {0}")]
    Read(io::Error),
    #[error("reading the upstream response: the connection closed before the response ended")]
    Closed,
    #[error("reading the upstream response: {0}")]
    Malformed(&'static str),
    #[error("reading the upstream response: length limit exceeded")]
    TooLarge,
}

/// One connection: the stream and its read buffer.
pub struct Conn<S> {
    io: S,
    buf: BytesMut,
    /// Whether the connection may carry another exchange.
    reusable: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(io: S) -> Self {
        Conn {
            io,
            buf: BytesMut::new(),
            reusable: true,
        }
    }

    /// Whether the last answer left the connection open for another exchange: kept alive,
    /// read whole, nothing after it.
    pub fn kept_alive(&self) -> bool {
        self.reusable && self.buf.is_empty()
    }

    /// [`Conn::kept_alive`], and the peer has neither closed the connection nor sent anything
    /// since (checked without waiting).
    pub fn usable(&mut self) -> bool {
        if !self.kept_alive() {
            return false;
        }
        let mut byte = [0u8; 1];
        let mut rb = ReadBuf::new(&mut byte);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        // Pending: open and quiet. Anything else (end of stream, unsolicited bytes, an error)
        // makes it unusable.
        matches!(
            Pin::new(&mut self.io).poll_read(&mut cx, &mut rb),
            Poll::Pending
        )
    }

    /// Writes a request, `head` (see [`write_head`]) then the body's `parts` in order (none
    /// when the head already ends with it), and reads the answer to `method`, whose body may be
    /// at most `max` bytes, with the header `fields` asked for. A failure before any byte was
    /// written is [`Error::Unsent`].
    pub async fn exchange(
        &mut self,
        head: &[u8],
        parts: &[&[u8]],
        method: &Method,
        max: usize,
        fields: AnswerFields,
    ) -> Result<Answer, Error> {
        self.reusable = false;
        let mut slices: SmallVec<[IoSlice<'_>; 10]> = SmallVec::with_capacity(parts.len() + 1);
        slices.push(IoSlice::new(head));
        slices.extend(parts.iter().map(|p| IoSlice::new(p)));
        let written = match self.write(&mut slices).await {
            Ok(()) => self.io.flush().await.map_err(Error::Write),
            // Nothing went out: the caller may send it on another connection.
            Err(e @ Error::Unsent(_)) => return Err(e),
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            // An upstream may answer before it read the whole body (a 413, a 401) and close:
            // that answer, when it arrived, is the outcome, not the failed write.
            return match self.read_answer(method, max, fields).await {
                Ok(answer) => {
                    self.reusable = false;
                    Ok(answer)
                }
                Err(_) => Err(e),
            };
        }
        self.read_answer(method, max, fields).await
    }

    /// Writes `parts` whole (see [`write_parts`]). A failure before any byte went out is
    /// [`Error::Unsent`].
    async fn write(&mut self, parts: &mut [IoSlice<'_>]) -> Result<(), Error> {
        write_parts(&mut self.io, parts).await.map_err(|(e, sent)| {
            if sent {
                Error::Write(e)
            } else {
                Error::Unsent(e)
            }
        })
    }

    /// Reads more into the buffer; `false` at the end of the stream.
    async fn fill(&mut self) -> Result<bool, Error> {
        self.buf.reserve(READ_CHUNK);
        let n = self.io.read_buf(&mut self.buf).await.map_err(Error::Read)?;
        Ok(n > 0)
    }

    async fn read_answer(
        &mut self,
        method: &Method,
        max: usize,
        fields: AnswerFields,
    ) -> Result<Answer, Error> {
        let (status, headers, framed_by, close) = loop {
            let parsed = parse_head(&mut self.buf, fields)?;
            match parsed {
                Some(h) if h.status.is_informational() => {
                    if h.status == StatusCode::SWITCHING_PROTOCOLS {
                        return Err(Error::Malformed("an unrequested protocol switch"));
                    }
                }
                Some(h) => break (h.status, h.headers, h.framing, h.close),
                None => {
                    if self.buf.len() > MAX_HEAD {
                        return Err(Error::Malformed("the response head is too large"));
                    }
                    if !self.fill().await? {
                        return Err(Error::Closed);
                    }
                }
            }
        };
        let framing = framing(method, status, &framed_by)?;
        let body = match framing {
            Framing::Empty => Bytes::new(),
            Framing::Length(n) => {
                if n > max as u64 {
                    return Err(Error::TooLarge);
                }
                let n = n as usize;
                if self.buf.len() >= n {
                    // The usual answer: already read with its head.
                    self.buf.split_to(n).freeze()
                } else {
                    // A larger one goes into a buffer of its own (reserved up front up to a
                    // bound), so the connection's read buffer stays small while it is pooled.
                    let mut body = BytesMut::with_capacity(n.min(RESERVE_AT_MOST));
                    body.extend_from_slice(&self.buf);
                    self.buf.clear();
                    self.read_exactly(&mut body, n).await?;
                    body.freeze()
                }
            }
            Framing::Chunked => self.read_chunked(max).await?,
            Framing::UntilClose => {
                let mut body = self.buf.split();
                loop {
                    body.reserve(READ_CHUNK);
                    if self.io.read_buf(&mut body).await.map_err(Error::Read)? == 0 {
                        break;
                    }
                    if body.len() > max {
                        return Err(Error::TooLarge);
                    }
                }
                body.freeze()
            }
        };
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf = BytesMut::new();
        }
        self.reusable = !close && framing != Framing::UntilClose && self.buf.is_empty();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Reads from the stream into `body` until it holds `n` bytes, never past them.
    async fn read_exactly(&mut self, body: &mut BytesMut, n: usize) -> Result<(), Error> {
        while body.len() < n {
            let want = n - body.len();
            body.reserve(want.min(RESERVE_AT_MOST));
            let got = (&mut self.io)
                .take(want as u64)
                .read_buf(body)
                .await
                .map_err(Error::Read)?;
            if got == 0 {
                return Err(Error::Closed);
            }
        }
        Ok(())
    }

    /// A chunked body, its chunks joined; trailers are read and dropped.
    async fn read_chunked(&mut self, max: usize) -> Result<Bytes, Error> {
        let mut body = BytesMut::new();
        loop {
            let len = self.line().await?;
            let size = chunk_size(&self.buf[..len]);
            self.buf.advance(len + 2);
            let size = size?;
            if size == 0 {
                // Trailer fields up to the empty line.
                loop {
                    let len = self.line().await?;
                    self.buf.advance(len + 2);
                    if len == 0 {
                        return Ok(body.freeze());
                    }
                }
            }
            if body.len() as u64 + size > max as u64 {
                return Err(Error::TooLarge);
            }
            let size = size as usize;
            // The chunk's bytes go straight into the body: the buffered part copied, the
            // rest read into it (the read buffer never holds a whole large chunk).
            let end = body.len() + size;
            let buffered = size.min(self.buf.len());
            body.extend_from_slice(&self.buf[..buffered]);
            self.buf.advance(buffered);
            self.read_exactly(&mut body, end).await?;
            while self.buf.len() < 2 {
                if !self.fill().await? {
                    return Err(Error::Closed);
                }
            }
            if &self.buf[..2] != b"\r\n" {
                return Err(Error::Malformed("a chunk without its CRLF"));
            }
            self.buf.advance(2);
        }
    }

    /// Reads until the buffer starts with a whole CRLF-terminated line of the chunked framing;
    /// its length without the CRLF (the caller reads it in place, then advances past it).
    async fn line(&mut self) -> Result<usize, Error> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                return Ok(i);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(Error::Malformed("a chunk line is too long"));
            }
            if !self.fill().await? {
                return Err(Error::Closed);
            }
        }
    }
}

/// A chunk-size line's size (hex digits, then optional `;extensions`).
fn chunk_size(line: &[u8]) -> Result<u64, Error> {
    let digits = line
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(Error::Malformed("a bad chunk size"));
    }
    let mut n = 0u64;
    for d in digits {
        let v = (*d as char)
            .to_digit(16)
            .ok_or(Error::Malformed("a bad chunk size"))?;
        n = n * 16 + u64::from(v);
    }
    Ok(n)
}

/// Which of an answer's header fields the caller reads. The fields that frame the answer
/// (`Content-Length`, `Transfer-Encoding`, `Connection`) are read from the head either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerFields {
    /// Every field, in [`Answer::headers`].
    All,
    /// A failed answer's fields only (status outside `2xx`): a successful answer's map is left
    /// empty, neither built nor dropped, for a caller that answers with fields of its own.
    OnFailure,
}

/// A parsed answer head.
struct Head {
    status: StatusCode,
    headers: HeaderMap,
    framing: FramingFields,
    /// The connection closes after this answer (`Connection: close`, HTTP/1.0 without
    /// `keep-alive`, or framed both by length and by chunks).
    close: bool,
}

/// What the fields that frame an answer said, read in the one pass over the head.
#[derive(Default)]
struct FramingFields {
    /// The last `Transfer-Encoding` field, and whether its last coding is `chunked`.
    transfer_encoding: Option<bool>,
    /// The `Content-Length` fields (`None` without one): their values, which must agree, or
    /// the first bad or conflicting one's error (reported only when the length frames the
    /// answer).
    content_length: Option<Result<u64, &'static str>>,
    said_close: bool,
    said_keep_alive: bool,
}

impl FramingFields {
    fn note(&mut self, name: &str, value: &[u8]) {
        let name = name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            if !matches!(self.content_length, Some(Err(_))) {
                let so_far = self.content_length.and_then(Result::ok);
                self.content_length = Some(content_lengths(so_far, value));
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let chunked = value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            self.transfer_encoding = Some(chunked);
        } else if name.eq_ignore_ascii_case(b"connection") {
            self.said_close |= has_token(value, b"close");
            self.said_keep_alive |= has_token(value, b"keep-alive");
        }
    }
}

/// The length `so_far` agreed with one `Content-Length` value's (a comma-separated list).
fn content_lengths(so_far: Option<u64>, value: &[u8]) -> Result<u64, &'static str> {
    let mut length = so_far;
    // `split` yields at least one part, so a value that is not refused sets the length.
    for part in value.split(|b| *b == b',') {
        let n = std::str::from_utf8(part.trim_ascii())
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or("a bad content-length")?;
        if length.is_some_and(|l| l != n) {
            return Err("conflicting content-lengths");
        }
        length = Some(n);
    }
    length.ok_or("a bad content-length")
}

/// Parses the head at the start of `buf` and takes it out; `None` when it is not all there yet.
/// The header map holds the fields `fields` asks for.
fn parse_head(buf: &mut BytesMut, fields: AnswerFields) -> Result<Option<Head>, Error> {
    let mut parsed = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut parsed);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Error::Malformed("too many header fields"));
        }
        Err(_) => return Err(Error::Malformed("not an HTTP/1.x response head")),
    };
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(Error::Malformed("a bad status code"))?;
    let version = resp.version;
    let keep = fields == AnswerFields::All || !status.is_success();
    let mut framing = FramingFields::default();
    // Field values become slices of the head (reference counts, not copies): their offsets
    // are noted while the parser borrows the buffer.
    let base = buf.as_ptr() as usize;
    let mut found: smallvec::SmallVec<[(HeaderName, usize, usize); 16]> = smallvec::SmallVec::new();
    for f in resp.headers.iter() {
        framing.note(f.name, f.value);
        if keep {
            let name = HeaderName::from_bytes(f.name.as_bytes())
                .map_err(|_| Error::Malformed("a bad header name"))?;
            let start = f.value.as_ptr() as usize - base;
            found.push((name, start, start + f.value.len()));
        }
    }
    let headers = if keep {
        let head = buf.split_to(len).freeze();
        let mut headers = HeaderMap::with_capacity(found.len());
        for (name, start, end) in found {
            let value = HeaderValue::from_maybe_shared(head.slice(start..end))
                .map_err(|_| Error::Malformed("a bad header value"))?;
            headers.append(name, value);
        }
        headers
    } else {
        buf.advance(len);
        HeaderMap::new()
    };
    // Kept alive: HTTP/1.1 unless it says close, HTTP/1.0 only when it says keep-alive. An
    // answer framed both ways, or chunked over HTTP/1.0, ends its connection (RFC 9112 §6.1, §6.3).
    let both = framing.transfer_encoding.is_some()
        && (framing.content_length.is_some() || version != Some(1));
    let close = framing.said_close || both || (version != Some(1) && !framing.said_keep_alive);
    Ok(Some(Head {
        status,
        headers,
        framing,
        close,
    }))
}

/// Writes `parts` whole, in order, by vectored writes: one system call when the socket takes it
/// all, and no part copied behind another; a short write resumes where it stopped. On failure,
/// the error and whether any byte went out. (The server side writes its answers with it too.)
pub async fn write_parts<S: AsyncWrite + Unpin>(
    io: &mut S,
    parts: &mut [IoSlice<'_>],
) -> Result<(), (io::Error, bool)> {
    let mut sent = false;
    let mut parts = parts;
    // Drops empty parts at the front (nothing to send never writes).
    IoSlice::advance_slices(&mut parts, 0);
    while !parts.is_empty() {
        let e = match io.write_vectored(parts).await {
            Ok(0) => io::Error::from(io::ErrorKind::WriteZero),
            Ok(n) => {
                IoSlice::advance_slices(&mut parts, n);
                sent = true;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => e,
        };
        return Err((e, sent));
    }
    Ok(())
}

/// Whether a comma-separated field value holds `token` (ASCII case-insensitive).
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// How an answer's body is delimited.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

fn framing(method: &Method, status: StatusCode, fields: &FramingFields) -> Result<Framing, Error> {
    if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    match fields.transfer_encoding {
        Some(true) => Ok(Framing::Chunked),
        Some(false) => Ok(Framing::UntilClose),
        None => match fields.content_length {
            None => Ok(Framing::UntilClose),
            Some(Ok(n)) => Ok(Framing::Length(n)),
            Some(Err(e)) => Err(Error::Malformed(e)),
        },
    }
}

/// A request target that cannot go on a request line.
#[derive(Debug, thiserror::Error)]
#[error("the upstream request target {0:?} holds a space or a control character")]
pub struct BadTarget(pub String);

/// Writes a request head for `method` on `prefix` + `path` (origin form) with `fields`, then
/// the `content-length` of a `body_len`-byte body, into `out`. Fields named `content-length`
/// or `transfer-encoding` must not be among `fields` (the body is always sent whole).
///
/// # Errors
/// [`BadTarget`] when the target holds a space, a control character or DEL (a path built from a
/// decoded name could otherwise end the request line early); nothing is written then. Field
/// names and values are valid by their types.
pub fn write_head<'a>(
    out: &mut Vec<u8>,
    method: &Method,
    prefix: &str,
    path: &str,
    fields: impl IntoIterator<Item = (&'a HeaderName, &'a HeaderValue)>,
    body_len: usize,
) -> Result<(), BadTarget> {
    let bad = |b: &u8| *b <= b' ' || *b == 0x7f;
    if prefix.bytes().chain(path.bytes()).any(|b| bad(&b)) {
        return Err(BadTarget(format!("{prefix}{path}")));
    }
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in fields {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // Like hyper's client: a length for a body, none for an empty one (a request without
    // `Content-Length` or `Transfer-Encoding` has no body).
    if body_len > 0 {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(scatter::write::decimal(body_len as u64, &mut [0; 20]));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

#[cfg(test)]
mod tests;
