//! Routes as data, and the one matcher.
//!
//! A feature declares its routes as [`Route`] values: method, path pattern
//! (`/v2/namespaces/{ns}/scans/{id}`), the name used as the metrics label, the scope a key needs
//! (or none for the public routes), and the handler. The composition root concatenates every
//! feature's table into one [`Router`]. Matching splits the path once into at most
//! [`MAX_SEGMENTS`] spans on the stack (no allocation), compares literal segments, and hands the
//! handler typed path parameters ([`Params`], read through [`Req::param`] / [`Req::decoded`]).
//!
//! Path rules: exactly one leading `/`, no empty segment (`//`, a trailing `/`), at most
//! [`MAX_SEGMENTS`] segments; anything else matches no route (a Layer 404, never forwarded).
//! Parameters are raw segments; [`Req::decoded`] percent-decodes one with path rules (`+` is a
//! literal plus). Auth scope and the namespace a key's grant is checked against come from the
//! matched route, so this table is the whole auth table.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::Method;

use super::ShardCtx;
use super::auth::Principal;
use super::config::Scope;
use super::error::GatewayError;
use super::http::Resp;
use super::principal::Surface;

/// Most path segments a route may have (and a request path may have to match one).
pub const MAX_SEGMENTS: usize = 12;
/// Most parameters a route pattern may have.
pub const MAX_PARAMS: usize = 4;

/// The future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Resp, GatewayError>> + Send>>;
/// A request body a handler reads itself, chunk by chunk (routes built with
/// [`Route::with_streamed_body`]).
pub type StreamedBody = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

/// A route's handler: the shard's context and the admitted request.
pub type Handler = Arc<dyn Fn(Arc<ShardCtx>, Req) -> HandlerFuture + Send + Sync>;

/// Builds a [`Handler`] from a feature's state and an async function of it, e.g.
/// `handler(scans.clone(), Scans::list)` with `async fn list(self: Arc<Self>, ctx, req)`.
pub fn handler<S, F, Fut>(state: Arc<S>, f: F) -> Handler
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, Arc<ShardCtx>, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, GatewayError>> + Send + 'static,
{
    Arc::new(move |ctx, req| {
        // The box is allocated first and the future written into it: `Box::pin(f(..))` built
        // the future (kilobytes for the query route) on the stack and then copied it whole.
        let slot = Box::<Fut>::new_uninit();
        let boxed: Box<Fut> = Box::write(slot, f(state.clone(), ctx, req));
        Box::into_pin(boxed)
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seg {
    Lit(&'static str),
    Param(&'static str),
}

/// One route of the gateway.
pub struct Route {
    pub method: Method,
    pub pattern: &'static str,
    /// Metrics label and log name.
    pub name: &'static str,
    /// The scope a key needs; `None` for unauthenticated routes.
    pub scope: Option<Scope>,
    /// The plane the scope is checked on (from the pattern: [`Surface::of`]).
    pub surface: Surface,
    /// The per-namespace latency family this route also records (`{ns}` routes only):
    /// `layer_query_duration_seconds` for query routes.
    pub latency_metric: Option<&'static str>,
    /// The handler reads the body itself ([`Req::take_stream`]); the pipeline does not collect it.
    pub streams_body: bool,
    handler: Handler,
    segs: Vec<Seg>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("method", &self.method)
            .field("pattern", &self.pattern)
            .field("name", &self.name)
            .field("scope", &self.scope)
            .finish()
    }
}

impl Route {
    /// An authenticated route needing `scope`.
    ///
    /// # Panics
    /// On a malformed pattern (a programming error caught by the route-table tests at build time
    /// of the router, never on a request).
    pub fn new(
        method: Method,
        pattern: &'static str,
        name: &'static str,
        scope: Scope,
        handler: Handler,
    ) -> Route {
        Route::build(method, pattern, name, Some(scope), handler)
    }

    /// A route anyone may call (`/health`, `/metrics`).
    pub fn public(
        method: Method,
        pattern: &'static str,
        name: &'static str,
        handler: Handler,
    ) -> Route {
        Route::build(method, pattern, name, None, handler)
    }

    fn build(
        method: Method,
        pattern: &'static str,
        name: &'static str,
        scope: Option<Scope>,
        handler: Handler,
    ) -> Route {
        let segs = parse_pattern(pattern).unwrap_or_else(|e| panic!("route {name}: {e}"));
        Route {
            method,
            pattern,
            name,
            scope,
            surface: Surface::of(pattern),
            latency_metric: None,
            streams_body: false,
            handler,
            segs,
        }
    }

    /// Records `layer_query_duration_seconds{namespace,status}` for this route.
    pub fn with_query_metrics(self) -> Route {
        self.with_latency_metric(super::metrics::QUERY_LATENCY)
    }

    /// Records the histogram `metric{namespace,status}` for this route (declared now, so the
    /// family is in `/metrics` before its first sample).
    pub fn with_latency_metric(mut self, metric: &'static str) -> Route {
        super::metrics::declare_latency(metric);
        self.latency_metric = Some(metric);
        self
    }

    /// The handler gets the request body as a stream ([`Req::take_stream`]) instead of collected
    /// bytes; it enforces `maxBodyBytes` and the body read timeout itself.
    pub fn with_streamed_body(mut self) -> Route {
        self.streams_body = true;
        self
    }

    /// Runs the handler.
    pub fn call(&self, ctx: Arc<ShardCtx>, req: Req) -> HandlerFuture {
        (self.handler)(ctx, req)
    }

    /// Whether the pattern has a `{name}` parameter.
    pub fn has_param(&self, name: &str) -> bool {
        self.segs
            .iter()
            .any(|s| matches!(s, Seg::Param(p) if *p == name))
    }

    fn matches(&self, path: &str, spans: &[(u16, u16)]) -> Option<Params> {
        if spans.len() != self.segs.len() {
            return None;
        }
        let mut params = Params::default();
        for (seg, &(a, b)) in self.segs.iter().zip(spans) {
            let s = &path[a as usize..b as usize];
            match seg {
                Seg::Lit(l) if *l == s => {}
                Seg::Lit(_) => return None,
                Seg::Param(name) => {
                    let i = params.len as usize;
                    params.names[i] = name;
                    params.spans[i] = (a, b);
                    params.len += 1;
                }
            }
        }
        Some(params)
    }
}

fn parse_pattern(pattern: &'static str) -> Result<Vec<Seg>, String> {
    let rest = pattern
        .strip_prefix('/')
        .ok_or_else(|| format!("pattern {pattern:?} must start with /"))?;
    let mut segs = Vec::new();
    let mut params = 0;
    for s in rest.split('/') {
        if s.is_empty() {
            return Err(format!("pattern {pattern:?} has an empty segment"));
        }
        if let Some(name) = s.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
            params += 1;
            segs.push(Seg::Param(name));
        } else {
            segs.push(Seg::Lit(s));
        }
    }
    if segs.len() > MAX_SEGMENTS || params > MAX_PARAMS {
        return Err(format!("pattern {pattern:?} is too long"));
    }
    Ok(segs)
}

/// The path parameters of a matched request: names and byte spans into the request path.
#[derive(Clone, Copy, Debug, Default)]
pub struct Params {
    names: [&'static str; MAX_PARAMS],
    spans: [(u16, u16); MAX_PARAMS],
    len: u8,
}

impl Params {
    /// The raw (still percent-encoded) segment of parameter `name` in `path`.
    pub fn raw<'p>(&self, path: &'p str, name: &str) -> Option<&'p str> {
        (0..self.len as usize)
            .find(|&i| self.names[i] == name)
            .and_then(|i| path.get(self.spans[i].0 as usize..self.spans[i].1 as usize))
    }
}

/// Splits `path` into segment spans; `None` when it breaks the path rules (module docs).
fn split(path: &str, out: &mut [(u16, u16); MAX_SEGMENTS]) -> Option<usize> {
    if path.len() > u16::MAX as usize {
        return None;
    }
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return None;
    }
    // A byte loop: `str::split(char)` costs a searcher per segment (~150 instructions each on
    // a query path, `bench/profile.sh`); paths are short.
    let mut n = 0;
    let mut start = 1usize;
    for end in (1..=bytes.len()).filter(|&i| i == bytes.len() || bytes[i] == b'/') {
        if end == start || n == MAX_SEGMENTS {
            return None;
        }
        out[n] = (start as u16, end as u16);
        n += 1;
        start = end + 1;
    }
    Some(n)
}

/// Every route of the gateway.
#[derive(Debug)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// A router over `routes`; `Err` names two routes that would match the same requests.
    pub fn new(routes: Vec<Route>) -> Result<Router, String> {
        for (i, a) in routes.iter().enumerate() {
            for b in &routes[i + 1..] {
                let same_shape = a.method == b.method
                    && a.segs.len() == b.segs.len()
                    && a.segs.iter().zip(&b.segs).all(|(x, y)| match (x, y) {
                        (Seg::Lit(l), Seg::Lit(r)) => l == r,
                        _ => true,
                    });
                if same_shape {
                    return Err(format!(
                        "routes {} ({} {}) and {} ({} {}) overlap",
                        a.name, a.method, a.pattern, b.name, b.method, b.pattern
                    ));
                }
            }
        }
        Ok(Router { routes })
    }

    /// The route serving `method` + `path`, with its parameters.
    pub fn find(&self, method: &Method, path: &str) -> Option<(&Route, Params)> {
        let mut spans = [(0u16, 0u16); MAX_SEGMENTS];
        let n = split(path, &mut spans)?;
        let spans = &spans[..n];
        self.routes
            .iter()
            .filter(|r| r.method == *method)
            .find_map(|r| r.matches(path, spans).map(|p| (r, p)))
    }

    /// Every route, in table order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

/// An admitted request, as a handler receives it.
pub struct Req {
    pub parts: http::request::Parts,
    /// The whole body, read within `maxBodyBytes` (still compressed if it was sent so).
    pub body: Bytes,
    pub principal: Arc<Principal>,
    /// The route's name (metrics label; the upstream route label of a forwarded request).
    pub name: &'static str,
    params: Params,
    /// The unread body of a streamed route (`body` is empty then).
    stream: Option<StreamedBody>,
}

impl Req {
    pub fn new(
        parts: http::request::Parts,
        body: Bytes,
        principal: Arc<Principal>,
        name: &'static str,
        params: Params,
    ) -> Req {
        Req {
            parts,
            body,
            principal,
            name,
            params,
            stream: None,
        }
    }

    /// Hands the handler the unread body (routes with a streamed body).
    pub fn with_stream(mut self, body: StreamedBody) -> Req {
        self.stream = Some(body);
        self
    }

    /// The unread body of a streamed route; `None` for routes whose body was collected (then
    /// [`Req::body`] holds it), and after the first call.
    pub fn take_stream(&mut self) -> Option<StreamedBody> {
        self.stream.take()
    }

    /// The raw path parameter `name` (empty when the route has none: route tests check that every
    /// handler only asks for parameters its pattern has).
    pub fn param(&self, name: &str) -> &str {
        self.params
            .raw(self.parts.uri.path(), name)
            .unwrap_or_default()
    }

    /// The namespace parameter `{ns}`, raw (as it is forwarded upstream and checked against key
    /// grants).
    pub fn ns(&self) -> &str {
        self.param("ns")
    }

    /// Path parameter `name`, percent-decoded with path rules (`+` is a literal plus).
    pub fn decoded(&self, name: &str) -> Cow<'_, str> {
        super::params::decode_path_segment(self.param(name))
    }

    /// The body, inflated when gzip-encoded (bounded by `limits.max_body_bytes`), unparsed.
    pub fn inflated_body(&self, limits: &scatter::Limits) -> Result<Bytes, GatewayError> {
        super::http::decode_gzip(
            &self.parts.headers,
            self.body.clone(),
            limits.max_body_bytes,
        )
    }

    /// The body as JSON (gzip accepted), validated whole (duplicate keys, depth, size).
    pub fn json_body(&self, limits: &scatter::Limits) -> Result<serde_json::Value, GatewayError> {
        super::http::json_body(&self.inflated_body(limits)?, limits)
    }

    /// The raw query string (`""` when absent).
    pub fn query(&self) -> &str {
        self.parts.uri.query().unwrap_or("")
    }

    /// The query string, decoded (empty values left out).
    pub fn query_params(&self) -> std::collections::HashMap<String, String> {
        super::params::parse_query(self.query())
    }

    /// Path and query as received, for forwarding.
    pub fn path_and_query(&self) -> &str {
        self.parts.uri.path_and_query().map_or("/", |p| p.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() -> Handler {
        Arc::new(|_, _| Box::pin(async { Err(GatewayError::Internal("unused".into())) }))
    }

    fn router() -> Router {
        Router::new(vec![
            Route::public(Method::GET, "/health", "health", noop()),
            Route::new(
                Method::POST,
                "/v2/namespaces/{ns}",
                "write",
                Scope::Write,
                noop(),
            ),
            Route::new(
                Method::GET,
                "/v2/namespaces/{ns}/scans/{id}",
                "get_scan",
                Scope::Read,
                noop(),
            ),
            Route::new(
                Method::GET,
                "/v2/namespaces/{ns}/scans/{id}/results",
                "scan_results",
                Scope::Read,
                noop(),
            ),
        ])
        .unwrap()
    }

    #[test]
    fn matches_literals_and_parameters() {
        let r = router();
        let path = "/v2/namespaces/scans/scans/scan%2D1/results";
        let (route, p) = r.find(&Method::GET, path).unwrap();
        assert_eq!(route.name, "scan_results");
        assert_eq!(p.raw(path, "ns"), Some("scans"));
        assert_eq!(p.raw(path, "id"), Some("scan%2D1"));
        assert_eq!(p.raw(path, "nope"), None);
        assert_eq!(r.find(&Method::GET, "/health").unwrap().0.scope, None);
        assert!(r.find(&Method::POST, "/health").is_none());
        assert!(r.find(&Method::PUT, "/v2/namespaces/a").is_none());
    }

    #[test]
    fn malformed_paths_match_nothing() {
        let r = router();
        for p in [
            "",
            "health",
            "//health",
            "/health/",
            "/v2/namespaces//scans/x",
            "/v2/namespaces/",
            "/v2//namespaces/a",
            "/a/b/c/d/e/f/g/h/i/j/k/l/m/n",
        ] {
            assert!(
                r.find(&Method::GET, p).is_none() && r.find(&Method::POST, p).is_none(),
                "{p:?}"
            );
        }
    }

    /// The reference for [`split`]: the path rules written with `str::split`.
    fn split_by_str(path: &str) -> Option<Vec<(u16, u16)>> {
        if path.len() > u16::MAX as usize {
            return None;
        }
        let mut out = Vec::new();
        let mut start = 1usize;
        for s in path.strip_prefix('/')?.split('/') {
            if s.is_empty() || out.len() == MAX_SEGMENTS {
                return None;
            }
            out.push((start as u16, (start + s.len()) as u16));
            start += s.len() + 1;
        }
        Some(out)
    }

    proptest::proptest! {
        /// The byte loop splits every path as the `str::split` reference does: the same
        /// segments, and the same refusals (no leading `/`, an empty segment, too many).
        #[test]
        fn split_agrees_with_str_split(path in "[/ab%é]{0,40}") {
            let mut spans = [(0u16, 0u16); MAX_SEGMENTS];
            let got = split(&path, &mut spans).map(|n| spans[..n].to_vec());
            proptest::prop_assert_eq!(got, split_by_str(&path));
        }
    }

    #[test]
    fn overlapping_routes_are_refused() {
        let err = Router::new(vec![
            Route::new(Method::GET, "/v2/a/{x}", "one", Scope::Read, noop()),
            Route::new(Method::GET, "/v2/a/{y}", "two", Scope::Read, noop()),
        ])
        .unwrap_err();
        assert!(err.contains("one") && err.contains("two"), "{err}");
        assert!(
            Router::new(vec![
                Route::new(Method::GET, "/v2/a/{x}", "one", Scope::Read, noop()),
                Route::new(Method::GET, "/v2/a/b/{y}", "two", Scope::Read, noop()),
                Route::new(Method::POST, "/v2/a/{x}", "three", Scope::Read, noop()),
            ])
            .is_ok()
        );
    }
}
