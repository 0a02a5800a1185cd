//! The gateway's HTTP/1.1 server codec (`core::h1_server`) reading a client's byte stream,
//! against hyper's HTTP/1 server reading the same bytes. The first input byte picks how the
//! stream arrives at the codec (in pieces of 1 to 16 bytes with the rest "still on its way"
//! between them, or whole); the rest is what the client sends before closing.
//!
//! Checked: serving never panics or hangs; every request the codec serves itself, hyper serves
//! too, identically and in the same order (method, target, fields, body) — a request the two
//! framed differently would be a smuggling hole; what the codec hands over is exactly the bytes
//! after the requests it served (none lost, none repeated); and the stream in pieces serves a
//! prefix of what the whole stream serves (arriving in pieces may hand over sooner, never
//! serve something else).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use layer_gateway::fuzzing::{H1Outcome, RequestBody, h1_serve};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// A served request, comparable between the two servers.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    method: String,
    target: String,
    fields: Vec<(String, Bytes)>,
    body: Bytes,
}

async fn seen<B>(req: Request<B>) -> Seen
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Seen {
        method: parts.method.to_string(),
        target: parts.uri.to_string(),
        fields: parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), Bytes::copy_from_slice(v.as_bytes())))
            .collect(),
        body,
    }
}

/// A client stream: the pieces in order, each after one `Pending` (woken at once), then the end.
struct Pieces {
    reads: VecDeque<Option<Bytes>>,
}

impl AsyncRead for Pieces {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.reads.pop_front() {
            Some(Some(mut bytes)) => {
                let n = bytes.len().min(buf.remaining());
                buf.put_slice(&bytes.split_to(n));
                if !bytes.is_empty() {
                    this.reads.push_front(Some(bytes));
                }
                Poll::Ready(Ok(()))
            }
            Some(None) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            None => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for Pieces {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime")
}

/// What the codec served, and the bytes it handed over (`None`: it closed).
fn ours(stream: &[u8], piece: usize) -> (Vec<Seen>, Option<Bytes>) {
    let mut reads = VecDeque::new();
    for part in stream.chunks(piece.max(1)) {
        reads.push_back(None);
        reads.push_back(Some(Bytes::copy_from_slice(part)));
    }
    let served = Arc::new(Mutex::new(Vec::new()));
    let log = served.clone();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let outcome = runtime().block_on(h1_serve(
        Pieces { reads },
        move |req: Request<RequestBody>| {
            let log = log.clone();
            async move {
                let s = seen(req).await;
                log.lock().expect("the log").push(s);
                Response::new(Full::new(Bytes::from_static(b"ok")))
            }
        },
        Duration::from_secs(15),
        rx,
    ));
    let handed = match outcome {
        H1Outcome::Handover(_, read) => Some(read),
        H1Outcome::Closed | H1Outcome::FirstHeadTimedOut => None,
    };
    let served = served.lock().expect("the log").clone();
    (served, handed)
}

/// What hyper's HTTP/1 server serves of the whole stream.
fn hypers(stream: &[u8]) -> Vec<Seen> {
    let served = Arc::new(Mutex::new(Vec::new()));
    let log = served.clone();
    let stream = stream.to_vec();
    runtime().block_on(async move {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let log = log.clone();
            async move {
                let s = seen(req).await;
                log.lock().expect("the log").push(s);
                Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(
                    b"ok",
                ))))
            }
        });
        // Half-close allowed: the client closes its side right after its last byte, and hyper
        // would otherwise drop the requests still in hand when it reads that end.
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .half_close(true)
            .serve_connection(hyper_util::rt::TokioIo::new(server), svc);
        let writer = async move {
            let _ = client.write_all(&stream).await;
            let _ = client.shutdown().await;
            // Held (answers are read by nobody; the duplex holds 1 MiB of them) until hyper is done.
            client
        };
        let (_, _client) = tokio::join!(conn, writer);
    });
    served.lock().expect("the log").clone()
}

/// Runs one input (see the module docs).
///
/// # Panics
/// When a check fails.
pub fn run(data: &[u8]) {
    let Some((&choice, stream)) = data.split_first() else {
        return;
    };
    let piece = if choice & 0x80 != 0 {
        stream.len()
    } else {
        usize::from(choice & 0x0f) + 1
    };
    let (whole, handed) = ours(stream, stream.len());
    let theirs = hypers(stream);
    assert!(
        theirs.len() >= whole.len() && theirs[..whole.len()] == whole[..],
        "the codec served {whole:?}, hyper {theirs:?}"
    );
    if let Some(rest) = &handed {
        assert!(
            stream.ends_with(rest),
            "the bytes handed over are not the stream's end"
        );
    }
    let (split, _) = ours(stream, piece);
    assert!(
        split.len() <= whole.len() && whole[..split.len()] == split[..],
        "in {piece}-byte pieces the codec served {split:?}, whole {whole:?}"
    );
}
