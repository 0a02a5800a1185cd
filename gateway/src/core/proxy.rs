//! The proxy engine: one forwarding path with phase hooks, the shape of pingora's `ProxyHttp`.
//!
//! A forwarded request goes through these phases, each a method of [`ProxyHooks`] with a
//! do-nothing default:
//! 1. **request filter** — validate or rewrite the body (a write's reserved-attribute check and
//!    stamp), act before upstream sees it (cache invalidation), or refuse with an error;
//! 2. **upstream request filter** — adjust what goes upstream (e.g. drop `accept-encoding` when
//!    the response filter must read the answer);
//! 3. the exchange on the shard's upstream pool (the caller's bearer replaced by the upstream
//!    credential, hop-by-hop headers dropped, a `traceparent` added when the caller sent none);
//! 4. **response filter** — rewrite a successful answer (hide reserved attributes, enrich
//!    metadata, filter a listing) or act once upstream acknowledged (invalidate again);
//! 5. **logging** — record what was served (search history).
//!
//! Upstream's answer is relayed with its status, headers and body unless a hook changed them.
//! Hooks keep per-request state in their [`ProxyHooks::Ctx`]. The engine owns the Ctx and drops
//! it however the request ends (a refusing request filter, an upstream error, which skips the
//! response filter, a cancelled request), so a guard kept there is always released. [`route`]
//! turns hooks into a route handler; [`Plain`] forwards without any hook.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

use super::ShardCtx;
use super::error::GatewayError;
use super::http::{Resp, ensure_traceparent, relay};
use super::router::{Handler, Req};
use super::upstream::UpstreamResponse;

/// One forwarded request while it goes through the phases.
pub struct Session {
    /// The admitted request. Its `parts.headers` were moved to [`Session::headers`].
    pub req: Req,
    /// The headers that go upstream (the caller's, with a `traceparent`).
    pub headers: HeaderMap,
    /// The body that goes upstream (the caller's bytes unless a request filter replaced them).
    pub body: Bytes,
    /// The request's trace context, echoed on the response.
    pub trace: Option<HeaderValue>,
}

/// The phases of a forwarded request (module docs). Every method has a default that does
/// nothing.
pub trait ProxyHooks: Send + Sync + 'static {
    /// Per-request state the phases share.
    type Ctx: Default + Send + Sync;

    /// Phase 1: before anything is sent. An error answers the request; nothing is forwarded.
    fn request_filter(
        &self,
        _ctx: &Arc<ShardCtx>,
        _s: &mut Session,
        _c: &mut Self::Ctx,
    ) -> Result<(), GatewayError> {
        Ok(())
    }

    /// Phase 2: adjust the headers (or body) that go upstream.
    fn upstream_request_filter(&self, _s: &mut Session, _c: &mut Self::Ctx) {}

    /// Phase 4: rewrite or act on upstream's answer.
    fn response_filter(
        &self,
        _ctx: &Arc<ShardCtx>,
        _s: &Session,
        _c: &mut Self::Ctx,
        _up: &mut UpstreamResponse,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Phase 5: record what was served.
    fn logging(&self, _ctx: &Arc<ShardCtx>, _s: &Session, _c: &Self::Ctx, _up: &UpstreamResponse) {}
}

/// Forwards one request through `hooks`' phases.
pub async fn serve<H: ProxyHooks>(
    hooks: Arc<H>,
    ctx: Arc<ShardCtx>,
    mut req: Req,
) -> Result<Resp, GatewayError> {
    let mut headers = std::mem::take(&mut req.parts.headers);
    let trace = ensure_traceparent(&mut headers);
    let body = req.body.clone();
    let mut s = Session {
        req,
        headers,
        body,
        trace,
    };
    let mut c = H::Ctx::default();
    hooks.request_filter(&ctx, &mut s, &mut c)?;
    hooks.upstream_request_filter(&mut s, &mut c);
    // A namespace route goes to the store serving its namespace; a listing to the default store.
    let ns = s.req.ns();
    let upstream = if ns.is_empty() {
        ctx.upstreams.default_store()
    } else {
        ctx.upstream(ns)
    };
    let mut up = upstream
        .send(
            s.req.name,
            s.req.parts.method.clone(),
            s.req.path_and_query(),
            &s.headers,
            s.body.clone(),
        )
        .await?;
    hooks.response_filter(&ctx, &s, &mut c, &mut up).await;
    hooks.logging(&ctx, &s, &c, &up);
    Ok(relay(up, s.trace.clone()))
}

/// A route handler forwarding through `hooks`.
pub fn route<H: ProxyHooks>(hooks: Arc<H>) -> Handler {
    Arc::new(move |ctx, req| Box::pin(serve(hooks.clone(), ctx, req)))
}

/// Forwards byte for byte, relays byte for byte.
pub struct Plain;

impl ProxyHooks for Plain {
    type Ctx = ();
}
