//! The request pipeline on a shard, wrapped once around the router: route → admit (the route's
//! scope, the `{ns}` parameter against the key's grant) → read the body within `maxBodyBytes`
//! (routes with a streamed body get it unread, and bound it themselves)
//! → the route's handler → errors mapped to responses ([`GatewayError::into_response`]) →
//! metrics. Start at [`handle`].
//!
//! `HEAD` is served on every `GET` route (the `read` scope covers both): the request runs as the
//! `GET` (forwarded upstream as `GET` too) and the answer keeps its status and headers, with its
//! `content-length`, but no body.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request};
use http_body_util::{BodyExt, Full, Limited};

use super::ShardCtx;
use super::error::GatewayError;
use super::http::{RequestBody, Resp, read_body};
use super::metrics;
use super::router::{Req, Route};

/// Serves one request. Never fails: every error becomes a response here.
pub async fn handle(ctx: Arc<ShardCtx>, req: Request<RequestBody>) -> Resp {
    let started = Instant::now();
    metrics::request_started();
    let (mut parts, body) = req.into_parts();
    let head = parts.method == Method::HEAD;
    if head {
        parts.method = Method::GET;
    }
    // A `Uri` clone shares its bytes: the route and the namespace label borrow from it while
    // `parts` moves into the request.
    let uri = parts.uri.clone();
    let _slot = match InFlight::take(&ctx) {
        Ok(slot) => slot,
        Err(e) => {
            metrics::feature_event("layer_overload_rejections_total", "reason", "in_flight", 1);
            // A body still on the wire stays unread: hyper closes the connection after this
            // answer. (One read with its head is off the wire already.)
            let resp = closing(e.into_response(), body.unread_on_wire());
            metrics::request_finished(
                "overloaded",
                resp.status().as_u16(),
                started.elapsed(),
                None,
            );
            return resp;
        }
    };
    let (resp, name, query_ns) = match ctx.router.find(&parts.method, uri.path()) {
        None => {
            let e = GatewayError::NotFound {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
            };
            (settle(body, e.into_response()).await, "unknown", None)
        }
        Some((route, params)) => {
            let query_ns = route
                .latency_metric
                .map(|m| (m, params.raw(uri.path(), "ns").unwrap_or_default()));
            let ns = params.raw(uri.path(), "ns");
            let resp = match serve(&ctx, route, params, parts, body).await {
                Ok(resp) => resp,
                // Refused before the body was read: answered once the body is drained.
                Err((e, Left::Unread(body))) => settle(body, e.into_response()).await,
                // The body was refused part way (past the limit, too slow): the rest stays
                // unread, so hyper closes the connection after this answer.
                Err((e, Left::Abandoned)) => closing(e.into_response(), true),
                Err((e, Left::Nothing)) => {
                    if matches!(e, GatewayError::CacheCold(_)) {
                        metrics::cache_cold(route.name, ns);
                    }
                    e.into_response()
                }
            };
            (resp, route.name, query_ns)
        }
    };
    metrics::request_finished(name, resp.status().as_u16(), started.elapsed(), query_ns);
    if head { without_body(resp) } else { resp }
}

/// A `HEAD` answer: the `GET` answer's status and headers, its length, no body.
fn without_body(resp: Resp) -> Resp {
    let (mut parts, body) = resp.into_parts();
    let len = hyper::body::Body::size_hint(&body).exact();
    if !parts.headers.contains_key(header::CONTENT_LENGTH)
        && let Some(n) = len
    {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    Resp::from_parts(parts, Full::new(Bytes::new()))
}

/// What is left of a request's body when the request fails.
enum Left {
    /// Not read at all: read and dropped before the answer ([`settle`]).
    Unread(RequestBody),
    /// Refused part way, or before it was read because it is too large to drain: the rest is
    /// never read.
    Abandoned,
    /// Read whole, or handed to the handler.
    Nothing,
}

/// `resp`, saying `connection: close` when `unread` request bytes remain: hyper closes such a
/// connection after the answer, and an HTTP/1 client that was not told would send its next
/// request on it and lose that request.
fn closing(mut resp: Resp, unread: bool) -> Resp {
    if unread {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// The most of an unread request body the gateway reads and drops so that the connection can
/// serve the next request after an early refusal (a larger or slower body closes it instead).
pub const DRAIN_BYTES: usize = 64 << 10;
/// How long that drain may take.
const DRAIN_FOR: std::time::Duration = std::time::Duration::from_millis(1000);

/// An answer given before the request body was read (unknown route, bad namespace, refused
/// key): the body is read and dropped first, within [`DRAIN_BYTES`] and [`DRAIN_FOR`], so the
/// connection stays usable for the client's next request; when it cannot be, the answer says
/// `connection: close` (an HTTP/1 client would otherwise reuse a connection the server closes
/// and lose its next request).
async fn settle(body: RequestBody, resp: Resp) -> Resp {
    let small = hyper::body::Body::size_hint(&body).lower() <= DRAIN_BYTES as u64;
    let drained = small
        && matches!(
            tokio::time::timeout(DRAIN_FOR, Limited::new(body, DRAIN_BYTES).collect()).await,
            Ok(Ok(_))
        );
    closing(resp, !drained)
}

/// Serves a routed request. An error that came before the body was read hands the body back
/// (for [`settle`]).
async fn serve(
    ctx: &Arc<ShardCtx>,
    route: &Route,
    params: super::router::Params,
    parts: http::request::Parts,
    body: RequestBody,
) -> Result<Resp, (GatewayError, Left)> {
    let ns = params.raw(parts.uri.path(), "ns");
    if let Some(ns) = ns
        && let Err(e) = check_namespace(ns)
    {
        return Err((e, Left::Unread(body)));
    }
    let principal = match ctx
        .auth
        .admit(&parts.headers, route.scope, route.surface, ns)
    {
        Ok(p) => p,
        Err(e) => return Err((e, Left::Unread(body))),
    };
    if route.streams_body {
        let req = Req::new(parts, Bytes::new(), principal, route.name, params)
            .with_stream(BodyExt::boxed(body));
        return route
            .call(ctx.clone(), req)
            .await
            .map_err(|e| (e, Left::Nothing));
    }
    let g = &ctx.core.config.gateway;
    let timeout = std::time::Duration::from_millis(g.server.body_read_timeout_ms);
    let body = read_body(body, g.max_body_bytes, timeout)
        .await
        .map_err(|e| (e, Left::Abandoned))?;
    let req = Req::new(parts, body, principal, route.name, params);
    route
        .call(ctx.clone(), req)
        .await
        .map_err(|e| (e, Left::Nothing))
}

/// A slot among the shard's requests in flight, released on drop.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InFlight<'a> {
    fn take(ctx: &'a ShardCtx) -> Result<InFlight<'a>, GatewayError> {
        use std::sync::atomic::Ordering;
        let max = ctx.core.config.gateway.server.max_in_flight_per_shard;
        if ctx.in_flight.fetch_add(1, Ordering::Relaxed) >= max {
            ctx.in_flight.fetch_sub(1, Ordering::Relaxed);
            return Err(GatewayError::Overloaded(format!(
                "this shard is serving {max} requests already (gateway.server.maxInFlightPerShard); retry shortly"
            )));
        }
        Ok(InFlight(&ctx.in_flight))
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A namespace path segment must be a Turbopuffer namespace name, `[A-Za-z0-9-_.]{1,128}`, as
/// is (no percent-encoding: the segment is forwarded and checked against key grants raw, so an
/// encoded `/`, a NUL or a `..` must never reach either). Invalid names get upstream's own
/// plain-text 400 texts; `.` and `..` (valid characters, but path steps to any URL normaliser)
/// get the invalid-characters text too. Nothing is forwarded.
pub fn check_namespace(ns: &str) -> Result<(), GatewayError> {
    let valid_chars = ns
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !valid_chars || ns == "." || ns == ".." {
        return Err(GatewayError::InvalidUrl(
            "Invalid URL: Namespace contains invalid characters, must be [A-Za-z0-9-_.]".into(),
        ));
    }
    if ns.len() > 128 {
        return Err(GatewayError::InvalidUrl(format!(
            "Invalid URL: Namespace `{ns}` is too long, limit is currently 128 characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_segments_are_turbopuffer_names_as_is() {
        for ok in ["shop", "a.b-c_d", "A1", &"n".repeat(128)] {
            assert!(check_namespace(ok).is_ok(), "{ok}");
        }
        for bad in [
            "a%2Fb",
            "a%2fb",
            "..",
            ".",
            "a b",
            "a+b",
            "%00",
            "a%00",
            "caf%C3%A9",
            "%C0%AF",
            "a:b",
            "a*b",
            "a\\b",
        ] {
            let e = check_namespace(bad).unwrap_err();
            assert_eq!(e.status(), http::StatusCode::BAD_REQUEST, "{bad}");
            assert!(e.to_string().contains("invalid characters"), "{bad}");
        }
        let long = "n".repeat(129);
        assert!(
            check_namespace(&long)
                .unwrap_err()
                .to_string()
                .contains("too long")
        );
    }
}
