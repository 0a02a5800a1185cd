//! The gateway's HTTP/1.1 client codec (`core::h1`) reading an upstream's answer: the first
//! input byte picks how the answer arrives (in pieces of 1 to 16 bytes, or whole) and whether
//! the request was a `HEAD`; the rest is the byte stream the upstream sends before closing.
//!
//! Checked: reading never panics or hangs; the outcome (status, fields and body, or the error) is
//! the same however the bytes are split; a body is never larger than the limit; an answer framed
//! by one `Content-Length` has exactly that many body bytes; a `HEAD`, `204` or `304` answer has
//! none. (Whether the connection stays reusable may differ: bytes after the answer make it
//! unusable only if they arrived before the answer was done.) Read with only a failed answer's
//! fields (`AnswerFields::OnFailure`, the query path's), the outcome is the same with a
//! successful answer's fields left out; only a field the header map refuses and `httparse`
//! lets through (with today's versions, a name over 64 KiB, beyond this target's inputs) may
//! fail the full read of a success and not that one.

use bytes::Bytes;
use http::Method;
use layer_gateway::fuzzing::{H1AnswerFields, H1Conn, h1_request_head};
use tokio::io::AsyncWriteExt;

/// The body limit the codec is given (small, so the limit is reached).
const MAX: usize = 4096;

/// What one read produced, comparable across splits.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Answer {
        status: u16,
        fields: Vec<(String, Bytes)>,
        body: Bytes,
    },
    Error(String),
}

fn read(stream: &[u8], piece: usize, method: &Method, fields: H1AnswerFields) -> Outcome {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let stream = stream.to_vec();
        let peer = tokio::spawn(async move {
            for part in stream.chunks(piece.max(1)) {
                if server.write_all(part).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
            // Closed here: a close-delimited body ends, an unfinished one fails.
        });
        let mut conn = H1Conn::new(client);
        let head = h1_request_head(method);
        let out = match conn.exchange(&head, &[], method, MAX, fields).await {
            Ok(a) => Outcome::Answer {
                status: a.status.as_u16(),
                fields: a
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str().to_owned(), Bytes::copy_from_slice(v.as_bytes())))
                    .collect(),
                body: a.body,
            },
            Err(e) => Outcome::Error(e.to_string()),
        };
        let _ = peer.await;
        out
    })
}

/// Runs one input (see the module docs).
///
/// # Panics
/// When a check fails.
pub fn run(data: &[u8]) {
    let Some((&choice, stream)) = data.split_first() else {
        return;
    };
    let method = if choice & 0x80 != 0 {
        Method::HEAD
    } else {
        Method::GET
    };
    let piece = usize::from(choice & 0x0f) + 1;
    let whole = read(stream, stream.len(), &method, H1AnswerFields::All);
    let split = read(stream, piece, &method, H1AnswerFields::All);
    assert_eq!(
        whole, split,
        "the answer read whole and in {piece}-byte pieces"
    );
    let on_failure = read(stream, piece, &method, H1AnswerFields::OnFailure);
    match (&whole, on_failure) {
        (
            Outcome::Answer {
                status,
                fields,
                body,
            },
            Outcome::Answer {
                status: s,
                fields: f,
                body: b,
            },
        ) => {
            assert_eq!((status, body), (&s, &b), "read on failure only");
            let expected: &[(String, Bytes)] = if (200..300).contains(status) {
                &[]
            } else {
                fields
            };
            assert_eq!(expected, f.as_slice(), "fields read on failure only");
        }
        // A field the full read refused may hide a later error that the other read reaches.
        (Outcome::Error(e), Outcome::Error(f)) => assert!(
            e == &f || e.contains("a bad header"),
            "{e} with all fields, {f} on failure only"
        ),
        (Outcome::Error(e), Outcome::Answer { status, .. }) => assert!(
            (200..300).contains(&status) && e.contains("a bad header"),
            "{e} with all fields, a {status} answer on failure only"
        ),
        (Outcome::Answer { .. }, Outcome::Error(e)) => {
            panic!("an answer with all fields, {e} on failure only")
        }
    }
    if let Outcome::Answer {
        status,
        fields,
        body,
    } = &whole
    {
        assert!(body.len() <= MAX, "a body over the limit");
        let lengths: Vec<&Bytes> = fields
            .iter()
            .filter(|(n, _)| n == "content-length")
            .map(|(_, v)| v)
            .collect();
        let chunked = fields.iter().any(|(n, _)| n == "transfer-encoding");
        let bodiless = method == Method::HEAD || *status == 204 || *status == 304;
        if let [one] = lengths.as_slice()
            && !chunked
            && !bodiless
            && let Some(n) = std::str::from_utf8(one)
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
        {
            assert_eq!(
                body.len(),
                n,
                "a body of another length than its content-length"
            );
        }
        if bodiless {
            assert!(body.is_empty(), "a body on a bodiless answer");
        }
    }
}
