//! The upstream client: one connection pool per shard and store ([`super::pool`]: kept-alive
//! HTTP/1.1, rustls for https), connect and request timeouts, the upstream credential, and the
//! header rules of a transparent hop (hop-by-hop headers dropped, `Host` set to the upstream's,
//! `Location` kept relative).
//!
//! Secrets: the credential's header value is marked sensitive (its `Debug` is `Sensitive`, and
//! HPACK never indexes it); the caller's `authorization` is replaced by the credential, or
//! dropped unless [`Upstream::forward_caller_auth`] allows it (an `open` gateway without a
//! credential); a base URL's `user:password@` is neither used nor repeated in an error.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};

use super::error::GatewayError;
use super::h1;
pub use super::h1::AnswerFields;
use super::metrics;
use super::pool::{Pool, SendError};
pub use super::upstreams::{UpstreamRef, Upstreams};
use super::usage::{Ring, Usage, measure};

/// Largest upstream response body relayed (query results are at most 10k rows).
const MAX_RESPONSE: usize = 512 << 20;

/// Room in a request's buffer for its request line's fixed parts, `host`, the credential and
/// `content-length`, beyond the caller's fields.
const HEAD_ROOM: usize = 256;

/// The bytes the caller's fields take in a head (`name: value\r\n` each).
fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum()
}

/// An upstream response, fully read.
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A shard's connection pool to the upstream store.
#[derive(Clone)]
pub struct Upstream {
    /// The connections; `None` only for an unavailable store's client.
    pool: Option<Arc<Pool>>,
    /// `scheme://authority`, used to make absolute `Location`s relative.
    origin: String,
    /// The `Host` every request carries (the base URL's authority).
    host: HeaderValue,
    /// Path prefix of the base URL (without trailing slash), prepended to every route.
    prefix: String,
    auth: Option<HeaderValue>,
    /// Without `auth`, whether the caller's `authorization` goes upstream (else it is dropped).
    caller_auth: bool,
    request_timeout: Duration,
    /// Where this client records the usage it causes ([`Upstream::metered`]).
    meter: Option<(Arc<Usage>, Arc<Ring>)>,
    /// The gauge of exchanges in flight this client moves (`layer_tpuf_inflight` for the store's).
    inflight_gauge: Option<&'static str>,
    /// Set for a route to a store that is not configured: every request fails with 503
    /// `store_unavailable` naming it ([`Upstream::unavailable`]).
    unavailable: Option<Arc<str>>,
}

/// Moves a gauge up now and down when dropped (however the exchange ends, cancellation too).
struct InFlight(Option<&'static str>);

impl InFlight {
    fn start(gauge: Option<&'static str>) -> InFlight {
        if let Some(g) = gauge {
            metrics::feature_gauge_add(g, 1);
        }
        InFlight(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(g) = self.0 {
            metrics::feature_gauge_add(g, -1);
        }
    }
}

/// Headers that describe one hop and must not be forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

impl Upstream {
    /// Builds a client for `base_url`; `key` replaces the caller's bearer when set. Without a
    /// key the caller's `authorization` is dropped unless [`Upstream::forward_caller_auth`]
    /// says otherwise.
    pub fn new(
        base_url: &str,
        key: Option<&str>,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, GatewayError> {
        // Two rustls crypto providers are linked (ring for our client, aws-lc-rs through the
        // object store's S3 client), so rustls cannot pick one by itself: choose ring,
        // process-wide, before the first TLS config is built. A second call is a no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let shown = crate::core::config::redact_userinfo(base_url);
        let uri: Uri = base_url
            .parse()
            .map_err(|e| GatewayError::Internal(format!("bad upstream url {shown:?}: {e}")))?;
        // Userinfo is dropped: the upstream takes a bearer, and the authority shows in the
        // connection pool's debug logs.
        let (scheme, authority) = match (uri.scheme_str(), uri.authority()) {
            (Some(s), Some(a)) => (s.to_string(), host_port(a)),
            _ => {
                return Err(GatewayError::Internal(format!(
                    "upstream url needs a scheme and host: {shown:?}"
                )));
            }
        };
        let origin = format!("{scheme}://{authority}");
        let origin_uri: Uri = origin
            .parse()
            .map_err(|e| GatewayError::Internal(format!("bad upstream url {shown:?}: {e}")))?;
        let host = HeaderValue::from_str(&authority)
            .map_err(|_| GatewayError::Internal(format!("bad upstream host in {shown:?}")))?;
        let pool = Arc::new(Pool::new(origin_uri, connect_timeout));
        let auth = match key {
            Some(k) => {
                let mut v =
                    HeaderValue::from_str(&format!("Bearer {}", k.trim())).map_err(|_| {
                        GatewayError::Internal(
                            "upstream credential is not a valid header value".into(),
                        )
                    })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Upstream {
            pool: Some(pool),
            origin,
            host,
            prefix: uri.path().trim_end_matches('/').to_string(),
            auth,
            caller_auth: false,
            request_timeout,
            meter: None,
            inflight_gauge: None,
            unavailable: None,
        })
    }

    /// The client of a store that is not configured (deleted, or never declared): every
    /// request fails with 503 `store_unavailable`, nothing is sent.
    pub fn unavailable(store: &str) -> Upstream {
        let t = Duration::from_secs(1);
        Upstream {
            pool: None,
            origin: "http://store-unavailable.invalid".into(),
            host: HeaderValue::from_static("store-unavailable.invalid"),
            prefix: String::new(),
            auth: None,
            caller_auth: false,
            request_timeout: t,
            meter: None,
            inflight_gauge: None,
            unavailable: Some(Arc::from(store)),
        }
    }

    /// Whether this is the client of a store that is not configured.
    pub fn is_unavailable(&self) -> bool {
        self.unavailable.is_some()
    }

    /// Whether, without a credential of its own, the client relays the caller's
    /// `authorization` (an `open` gateway in front of callers holding upstream keys). Off by
    /// default: a `keys` gateway's bearers are Layer tokens, never meant for the upstream.
    pub fn forward_caller_auth(mut self, forward: bool) -> Self {
        self.caller_auth = forward;
        self
    }

    /// Records the queries and writes this client sends into `ring` of `usage` (the cost
    /// feature prices them). One ring per thread: a shard's clients of every store share it.
    pub fn metered(mut self, usage: &Arc<Usage>, ring: &Arc<Ring>) -> Self {
        self.meter = Some((usage.clone(), ring.clone()));
        self
    }

    /// Counts this client's exchanges in flight in the gauge `metric` (declared here).
    pub fn count_in_flight(mut self, metric: &'static str) -> Self {
        metrics::declare_gauge(metric);
        self.inflight_gauge = Some(metric);
        self
    }

    /// Sends one request and reads the whole response. Network failures become 502/504
    /// [`GatewayError`]s; any HTTP status (including upstream errors) is returned as is.
    pub async fn send(
        &self,
        route: &'static str,
        method: Method,
        path_and_query: &str,
        in_headers: &HeaderMap,
        body: Bytes,
    ) -> Result<UpstreamResponse, GatewayError> {
        self.send_parts(
            route,
            method,
            path_and_query,
            in_headers,
            &[&body],
            AnswerFields::All,
        )
        .await
    }

    /// [`Upstream::send`] of a body made of `parts`, in order (a spliced body's runs: sent by
    /// one vectored write, never joined into one buffer), read with the `answer_fields` asked
    /// for: [`AnswerFields::OnFailure`] leaves a successful answer's map empty, for a
    /// caller that answers with its own fields.
    pub async fn send_parts(
        &self,
        route: &'static str,
        method: Method,
        path_and_query: &str,
        in_headers: &HeaderMap,
        parts: &[&[u8]],
        answer_fields: AnswerFields,
    ) -> Result<UpstreamResponse, GatewayError> {
        if let Some(store) = &self.unavailable {
            return Err(GatewayError::Rejected {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "store_unavailable",
                message: format!(
                    "the namespace is routed to vector store {store:?}, which is not configured"
                ),
            });
        }
        let Some(pool) = self.pool.as_deref() else {
            return Err(GatewayError::Internal(
                "upstream client without connections".into(),
            ));
        };
        let req_bytes: usize = parts.iter().map(|p| p.len()).sum();
        let metered = self.meter.as_ref().map(|m| (m, method.clone()));
        // The head in origin form (the connection is to the origin already) with the caller's
        // end-to-end fields, sized once.
        let relayed_auth = self.auth.is_none() && self.caller_auth;
        let fields = in_headers
            .iter()
            .filter(|(name, _)| {
                !is_hop_by_hop(name) && (*name != header::AUTHORIZATION || relayed_auth)
            })
            .chain(std::iter::once((&header::HOST, &self.host)))
            .chain(self.auth.iter().map(|a| (&header::AUTHORIZATION, a)));
        // The head is built alone; the body goes out from its own buffer behind it, in the same
        // vectored write (never copied behind the head).
        let mut head = Vec::with_capacity(
            HEAD_ROOM + self.prefix.len() + path_and_query.len() + header_bytes(in_headers),
        );
        h1::write_head(
            &mut head,
            &method,
            &self.prefix,
            path_and_query,
            fields,
            req_bytes,
        )
        .map_err(|e| GatewayError::Internal(e.to_string()))?;
        let started = tokio::time::Instant::now();
        let _in_flight = InFlight::start(self.inflight_gauge);
        let deadline = started + self.request_timeout;
        let answer = match pool
            .send(&head, parts, &method, MAX_RESPONSE, answer_fields, deadline)
            .await
        {
            Ok(answer) => answer,
            Err(SendError::Failed(e)) => {
                metrics::upstream_error(route, "connect");
                return Err(GatewayError::Upstream(e));
            }
            Err(SendError::TimedOut) => {
                metrics::upstream_error(route, "timeout");
                return Err(GatewayError::UpstreamTimeout(
                    self.request_timeout.as_millis() as u64,
                ));
            }
        };
        metrics::upstream(route, started.elapsed());
        let h1::Answer {
            status,
            mut headers,
            body,
        } = answer;
        if let Some(((usage, ring), method)) = metered
            && status.is_success()
            && let Some(t) = measure(usage, &method, path_and_query, req_bytes, body.len())
        {
            ring.record(super::http::now_ms(), &t);
        }
        // Upstream's map, with the hop-by-hop fields taken out (not copied into a new map).
        // `content-length` (on most answers) is removed by its constant (no name parsing); the
        // other names are looked up only when one is present (a scan of a few keys). Nothing
        // to do on a map left empty (see [`AnswerFields`]).
        if !headers.is_empty() {
            headers.remove(header::CONTENT_LENGTH);
            if headers.keys().any(is_hop_by_hop) {
                for name in HOP_BY_HOP {
                    headers.remove(*name);
                }
            }
            self.relativize_location(&mut headers);
        }
        Ok(UpstreamResponse {
            status,
            headers,
            body,
        })
    }

    /// An absolute `Location` on the upstream origin becomes a path on the gateway's origin
    /// (the SDKs reject a `Location` on another origin).
    fn relativize_location(&self, headers: &mut HeaderMap) {
        let Some(loc) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) else {
            return;
        };
        let Some(rest) = loc.strip_prefix(&self.origin) else {
            return;
        };
        let rest = rest.strip_prefix(&self.prefix).unwrap_or(rest);
        if let Ok(v) = HeaderValue::from_str(if rest.is_empty() { "/" } else { rest }) {
            headers.insert(header::LOCATION, v);
        }
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// `host[:port]` of an authority, without any `user:password@`.
fn host_port(a: &http::uri::Authority) -> String {
    let s = a.as_str();
    s.rsplit_once('@').map_or(s, |(_, host)| host).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_is_made_relative() {
        let u = Upstream::new(
            "http://127.0.0.1:9/base/",
            None,
            Duration::from_secs(1),
            Duration::from_secs(1),
        )
        .unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            header::LOCATION,
            HeaderValue::from_static("http://127.0.0.1:9/base/v1/namespaces/a/operations/t"),
        );
        u.relativize_location(&mut h);
        assert_eq!(h[header::LOCATION], "/v1/namespaces/a/operations/t");
        let mut h = HeaderMap::new();
        h.insert(
            header::LOCATION,
            HeaderValue::from_static("/v1/namespaces/a/operations/t"),
        );
        u.relativize_location(&mut h);
        assert_eq!(h[header::LOCATION], "/v1/namespaces/a/operations/t");
    }

    /// The credential never shows in `Debug`, userinfo is neither kept nor repeated in errors,
    /// and the caller's `authorization` goes upstream only when allowed and no credential
    /// replaces it.
    #[test]
    fn secrets_stay_out_of_debug_errors_and_the_upstream() {
        let t = Duration::from_secs(1);
        let u = Upstream::new("http://127.0.0.1:9", Some("tpuf_SECRET"), t, t).unwrap();
        let auth = u.auth.as_ref().unwrap();
        assert!(auth.is_sensitive());
        assert!(!format!("{auth:?}").contains("SECRET"));
        let u = Upstream::new("http://layer:pw_SECRET@127.0.0.1:9/base", None, t, t).unwrap();
        assert_eq!(
            (u.origin.as_str(), u.prefix.as_str()),
            ("http://127.0.0.1:9", "/base")
        );
        for bad in ["http://layer:pw_SECRET@[::1", "layer:pw_SECRET@host/x"] {
            let err = Upstream::new(bad, None, t, t).err().expect(bad).to_string();
            assert!(!err.contains("SECRET") && err.contains("***@"), "{err}");
        }
    }

    /// A listener on 127.0.0.1 that records the first request head (lowercased), then answers
    /// 200.
    async fn recording_listener() -> (std::net::SocketAddr, tokio::task::JoinHandle<String>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let seen = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0; 4096];
            let n = s.read(&mut buf).await.unwrap();
            s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nkeep-alive: timeout=5\r\n\
                  trailer: x-t\r\nx-upstream: kept\r\n\r\n",
            )
            .await
            .unwrap();
            String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase()
        });
        (addr, seen)
    }

    /// What `send` would put on the wire, without sending: the headers after its rules.
    fn outgoing(make: impl Fn(&str) -> Upstream, caller: &str) -> Option<String> {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(caller).unwrap(),
        );
        h.insert("x-other", HeaderValue::from_static("kept"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (addr, seen) = rt.block_on(recording_listener());
        let u = make(&format!("http://{addr}"));
        rt.block_on(async {
            u.send("test", Method::GET, "/v1/namespaces", &h, Bytes::new())
                .await
                .unwrap();
            let head = seen.await.unwrap();
            assert!(head.contains("x-other: kept"), "{head}");
            head.lines()
                .find_map(|l| l.strip_prefix("authorization: "))
                .map(str::to_string)
        })
    }

    #[test]
    fn the_caller_bearer_goes_upstream_only_when_allowed() {
        let t = Duration::from_secs(2);
        let keyed = |url: &str| Upstream::new(url, Some("tpuf_k"), t, t).unwrap();
        let keyless = |url: &str| Upstream::new(url, None, t, t).unwrap();
        assert_eq!(
            outgoing(keyed, "Bearer hvl_c").as_deref(),
            Some("bearer tpuf_k")
        );
        assert_eq!(outgoing(keyless, "Bearer hvl_c"), None);
        let open = |url: &str| keyless(url).forward_caller_auth(true);
        assert_eq!(
            outgoing(open, "Bearer tpuf_c").as_deref(),
            Some("bearer tpuf_c")
        );
        let keyed_open = |url: &str| keyed(url).forward_caller_auth(true);
        assert_eq!(
            outgoing(keyed_open, "Bearer x").as_deref(),
            Some("bearer tpuf_k")
        );
    }

    /// Requests go out in origin-form with the base URL's path prefix and its authority as
    /// `Host` (the caller's `Host` is not relayed).
    #[test]
    fn requests_carry_the_prefix_and_the_upstream_host() {
        let t = Duration::from_secs(2);
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("gateway.example"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (addr, seen) = recording_listener().await;
            let u = Upstream::new(&format!("http://{addr}/base/"), None, t, t).unwrap();
            let resp = u
                .send("test", Method::GET, "/v1/namespaces?x=1", &h, Bytes::new())
                .await
                .unwrap();
            // The answer keeps upstream's own fields and loses the hop-by-hop ones.
            assert_eq!(resp.headers["x-upstream"], "kept");
            for gone in ["keep-alive", "trailer", "content-length"] {
                assert!(!resp.headers.contains_key(gone), "{gone}");
            }
            let head = seen.await.unwrap();
            assert!(
                head.starts_with("get /base/v1/namespaces?x=1 http/1.1\r\n"),
                "{head}"
            );
            let hosts: Vec<&str> = head.lines().filter(|l| l.starts_with("host: ")).collect();
            assert_eq!(hosts, [format!("host: {addr}")], "{head}");
        });
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        assert!(is_hop_by_hop(&header::CONNECTION));
        assert!(is_hop_by_hop(&header::HOST));
        assert!(!is_hop_by_hop(&header::CONTENT_ENCODING));
    }
}
