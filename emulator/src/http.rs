//! The HTTP server: hyper (HTTP/1.1 and h2c), request decoding (gzip bodies), bearer auth,
//! routing by path segments, fault injection, the request log, measured `server_total_ms`, and
//! response encoding (gzip when asked, for bodies of [`GZIP_MIN_BYTES`] or more). Start at
//! [`serve`].

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::control::{Control, LoggedRequest, query_param};
use crate::error::{ApiError, ApiResult};
use crate::routes::{self, Reply};
use crate::store::Store;

/// Largest accepted request body (the live limit is 512 MB; tests never need more than this).
const MAX_BODY: usize = 256 << 20;

/// Smallest response body that is gzip-compressed when the client accepts gzip. The contract
/// (§1.1) only says responses honour `Accept-Encoding`; that Turbopuffer leaves small bodies
/// uncompressed was observed by a client workload, and 1 KiB is our choice, the same threshold
/// as the Layer gateway's `gzip_response` and the SDKs' request compression (body > 1024 bytes).
pub const GZIP_MIN_BYTES: usize = 1024;

/// Shared server state.
pub struct App {
    pub store: Arc<Store>,
    pub control: Control,
    /// Accepted bearer tokens; empty means any bearer is accepted.
    pub keys: Vec<String>,
}

/// Accepts connections until the listener fails.
pub async fn serve(app: Arc<App>, listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _peer) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(handle(app, req).await) }
            });
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// Binds `addr` and returns the listener and its local address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let gzip_ok = accepts_gzip(&parts.headers);
    let result = async {
        let raw = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| ApiError::Status {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: format!("request body rejected: {e}"),
            })?
            .to_bytes();
        let body = decode_body(&parts.headers, raw)?;
        dispatch(
            &app,
            &parts.method,
            parts.uri.path(),
            parts.uri.query().unwrap_or(""),
            &parts.headers,
            &body,
            started,
        )
        .await
    }
    .await;
    match result {
        Ok(reply) => render(reply, gzip_ok),
        Err(e) => {
            let (status, ctype, bytes) = e.into_parts();
            response(status, ctype, bytes, &[], gzip_ok)
        }
    }
}

/// Whether `Accept-Encoding` lists `gzip` (or `*`) with a non-zero quality.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let q_zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
        })
}

fn decode_body(headers: &HeaderMap, raw: Bytes) -> ApiResult<Bytes> {
    let gz = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    if !gz {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len() * 4);
    flate2::read::GzDecoder::new(raw.as_ref())
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::BadRequest(format!("Failed to decompress the request body: {e}")))?;
    Ok(Bytes::from(out))
}

fn render(reply: Reply, gzip_ok: bool) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let bytes = serde_json::to_vec(&reply.body).unwrap_or_default();
    response(status, "application/json", bytes, &reply.headers, gzip_ok)
}

fn response(
    status: StatusCode,
    ctype: &str,
    bytes: Vec<u8>,
    extra: &[(String, String)],
    gzip_ok: bool,
) -> Response<Full<Bytes>> {
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, ctype);
    for (k, v) in extra {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            builder = builder.header(name, value);
        }
    }
    let body = if gzip_ok && bytes.len() >= GZIP_MIN_BYTES {
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(bytes.len() / 2),
            flate2::Compression::fast(),
        );
        match enc.write_all(&bytes).and_then(|()| enc.finish()) {
            Ok(gz) => {
                builder = builder.header(header::CONTENT_ENCODING, "gzip");
                gz
            }
            Err(_) => bytes,
        }
    } else {
        bytes
    };
    builder
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        out.entry(k.as_str().to_string())
            .and_modify(|e| {
                e.push_str(", ");
                e.push_str(&v);
            })
            .or_insert(v);
    }
    out
}

fn check_auth(app: &App, headers: &HeaderMap) -> ApiResult<()> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    match token {
        None => Err(ApiError::Unauthorized(
            "🙅 missing API key: send `Authorization: Bearer <key>`".into(),
        )),
        Some(t) if app.keys.is_empty() || app.keys.iter().any(|k| k == t) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized("🙅 invalid API key".into())),
    }
}

/// Validates a namespace path segment (plain-text 400s, as the live service answers).
fn check_namespace(ns: &str) -> ApiResult<()> {
    if ns.len() > 128 {
        return Err(ApiError::PlainText(format!(
            "Invalid URL: Namespace `{ns}` is too long, limit is currently 128 characters"
        )));
    }
    if ns.is_empty()
        || !ns
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(ApiError::PlainText(
            "Invalid URL: Namespace contains invalid characters, must be [A-Za-z0-9-_.]".into(),
        ));
    }
    Ok(())
}

/// The route name used by fault rules, and the namespace, for a data-plane path.
fn classify<'a>(method: &Method, segs: &[&'a str]) -> Option<(&'static str, Option<&'a str>)> {
    let m = method.as_str();
    Some(match (m, segs) {
        ("GET", ["v1", "namespaces"]) => ("list", None),
        ("POST", ["v2", "namespaces", ns]) => ("write", Some(*ns)),
        ("DELETE", ["v2", "namespaces", ns]) => ("delete", Some(*ns)),
        ("POST", ["v2", "namespaces", ns, "async"]) => ("copy_async", Some(*ns)),
        // v1 query is the legacy path some clients (hevlayer's `query_turbopuffer_namespace`)
        // still call; the body shape is the same.
        ("POST", ["v1" | "v2", "namespaces", ns, "query"]) => ("query", Some(*ns)),
        ("POST", ["v2", "namespaces", ns, "explain_query"]) => ("explain", Some(*ns)),
        ("GET", ["v1" | "v2", "namespaces", ns, "metadata"]) => ("metadata", Some(*ns)),
        ("PATCH", ["v1" | "v2", "namespaces", ns, "metadata"]) => ("update_metadata", Some(*ns)),
        ("GET", ["v1", "namespaces", ns, "schema"]) => ("schema", Some(*ns)),
        ("POST", ["v1", "namespaces", ns, "schema"]) => ("update_schema", Some(*ns)),
        ("GET", ["v1", "namespaces", ns, "hint_cache_warm"]) => ("hint_cache_warm", Some(*ns)),
        ("POST", ["v1", "namespaces", ns, "_debug", "recall"]) => ("recall", Some(*ns)),
        ("GET", ["v1", "namespaces", ns, "operations", _]) => ("operation", Some(*ns)),
        _ => return None,
    })
}

async fn dispatch(
    app: &Arc<App>,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &Bytes,
    started: Instant,
) -> ApiResult<Reply> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    if let ["_emu", rest @ ..] = segs.as_slice() {
        check_auth(app, headers)?;
        return app
            .control
            .handle(&app.store, method.as_str(), rest, query, body);
    }
    app.control.record(LoggedRequest {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers: header_map(headers),
        body: String::from_utf8_lossy(body).into_owned(),
        content_encoding: headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    });
    if let [_, "namespaces", ns, ..] = segs.as_slice() {
        check_namespace(ns)?;
    }
    check_auth(app, headers)?;
    let Some((route, ns)) = classify(method, &segs) else {
        return Err(ApiError::NotFound(format!(
            "🤷 no route for {method} {path}"
        )));
    };
    let action = app.control.fault_for(route, ns, method.as_str(), headers);
    let hold_ms = action.as_ref().map_or(0, |a| a.hold_ms);
    let mut gate = action.as_ref().and_then(|a| a.gate.clone());
    if let Some(action) = action {
        if action.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(action.delay_ms)).await;
        }
        if let Some((status, body, headers)) = action.respond {
            return Ok(Reply {
                status,
                body,
                headers: headers.into_iter().collect(),
            });
        }
    }
    let store = &app.store;
    let ns = ns.unwrap_or("");
    let prefer_async = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("respond-async"));
    let reply = match route {
        "list" => {
            let p = |n| query_param(query, n).map(percent_decode);
            Ok(Reply::ok(store.list(
                p("prefix").as_deref(),
                p("cursor").as_deref(),
                p("page_size").as_deref(),
            )?))
        }
        "write" => routes::write(store, ns, body, prefer_async, false),
        "copy_async" => routes::write(store, ns, body, prefer_async, true),
        "delete" => store.delete(ns).map(Reply::ok),
        "query" => routes::query(store, ns, body).await,
        "explain" => {
            let knobs = store.knobs.read().clone();
            routes::explain(store, ns, body, &knobs)
        }
        "metadata" => routes::metadata(store, ns, segs[0] == "v1"),
        "update_metadata" => routes::update_metadata(store, ns, body),
        "schema" => routes::get_schema(store, ns),
        "update_schema" => routes::update_schema(store, ns, body),
        "hint_cache_warm" => routes::hint_cache_warm(store, ns),
        "recall" => routes::recall(store, ns, body),
        "operation" => store.operation(ns, segs[4]).map(Reply::ok),
        _ => Err(ApiError::NotFound(format!(
            "🤷 no route for {method} {path}"
        ))),
    }?;
    if hold_ms > 0 {
        tokio::time::sleep(Duration::from_millis(hold_ms)).await;
    }
    if let Some(gate) = gate.as_mut() {
        // Until the next release (a bound, so a test that forgets it does not hang forever).
        let _ = tokio::time::timeout(Duration::from_secs(60), gate.changed()).await;
    }
    // Writes, queries and copies report the request's measured server time.
    Ok(routes::stamp_server_total(reply, started))
}

/// Decodes `%XX` escapes and `+` in a query-string value.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_validation_is_plain_text() {
        let e = check_namespace("bad/ns!").unwrap_err();
        assert_eq!(e.into_parts().1, "text/plain; charset=utf-8");
        assert!(
            check_namespace(&"a".repeat(129))
                .unwrap_err()
                .to_string()
                .contains("too long")
        );
        assert!(check_namespace("ok-name_1.2").is_ok());
    }

    #[test]
    fn only_bodies_of_a_kilobyte_or_more_are_compressed() {
        let small = response(
            StatusCode::OK,
            "application/json",
            vec![b' '; 1023],
            &[],
            true,
        );
        assert!(small.headers().get(header::CONTENT_ENCODING).is_none());
        let big = response(
            StatusCode::OK,
            "application/json",
            vec![b' '; 1024],
            &[],
            true,
        );
        assert_eq!(big.headers()[header::CONTENT_ENCODING], "gzip");
        let not_asked = response(
            StatusCode::OK,
            "application/json",
            vec![b' '; 4096],
            &[],
            false,
        );
        assert!(not_asked.headers().get(header::CONTENT_ENCODING).is_none());
    }

    #[test]
    fn accept_encoding_is_parsed_with_qualities() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&h)
        };
        assert!(with("gzip"));
        assert!(with("br, GZIP;q=0.5"));
        assert!(with("*"));
        assert!(!with("identity"));
        assert!(!with("gzip;q=0"));
        assert!(!with("x-gzip-not"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb+c"), "a/b c");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
