//! `GET /v1/namespaces` as a proxy hook: forwarded; a namespace-limited key sees only the
//! namespaces its grant covers (the page is filtered, so upstream is asked for it uncompressed).

use std::sync::Arc;

use bytes::Bytes;
use http::header;
use serde_json::Value;

use crate::core::ShardCtx;
use crate::core::proxy::{ProxyHooks, Session};
use crate::core::upstream::UpstreamResponse;

/// The upstream namespace listing.
pub struct Listing;

impl ProxyHooks for Listing {
    type Ctx = ();

    fn upstream_request_filter(&self, s: &mut Session, _: &mut ()) {
        if s.req.principal.is_namespace_limited() {
            s.headers.remove(header::ACCEPT_ENCODING);
        }
    }

    async fn response_filter(
        &self,
        _: &Arc<ShardCtx>,
        s: &Session,
        _: &mut (),
        up: &mut UpstreamResponse,
    ) {
        let principal = &s.req.principal;
        if !principal.is_namespace_limited()
            || !up.status.is_success()
            || up.headers.contains_key(header::CONTENT_ENCODING)
        {
            return;
        }
        let Ok(mut v) = serde_json::from_slice::<Value>(&up.body) else {
            return;
        };
        principal.retain_granted(&mut v, "id");
        if let Ok(b) = serde_json::to_vec(&v) {
            up.body = Bytes::from(b);
        }
    }
}
