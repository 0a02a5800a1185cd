//! Search history and clickstream (being built): every served query becomes one history entry,
//! fetches carrying a search's trace context become clickstream events; both are batched to the
//! object store as JSONL and listed by `GET /v2/namespaces/{ns}/search-history` / `clickstream`.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::auth::Principal;
use crate::config::Config;
use crate::error::GatewayError;
use crate::fetch::Served;
use crate::handler::{Control, Resp, SearchContext, ShardCtx, Shared};
use crate::route::Route;
use crate::store::ObjectStore;

/// The history feature's shared state.
#[derive(Debug)]
pub struct History {
    pub store: ObjectStore,
}

impl History {
    pub fn new(_config: &Config, store: ObjectStore) -> Self {
        History { store }
    }
}

/// Starts the background writers on the control runtime.
pub fn spawn(_shared: &Arc<Shared>, _control: &Control) {}

/// Records one served query (best-effort; never blocks or fails the query).
#[allow(clippy::too_many_arguments)]
pub fn record_query(
    _ctx: &ShardCtx,
    _ns: &str,
    _search: &SearchContext,
    _trace: Option<&HeaderValue>,
    _request: &Bytes,
    _status: StatusCode,
    _response: &Bytes,
    _watermark: Option<u64>,
) {
}

/// Records fetches that carry a search's trace context as clickstream events.
pub fn record_fetch(
    _ctx: &ShardCtx,
    _ns: &str,
    _headers: &HeaderMap,
    _ids: &[String],
    _served: Served,
) {
}

/// Serves the history routes (`search_history`, `clickstream`).
pub async fn serve(
    _ctx: &ShardCtx,
    route: Route<'_>,
    _principal: &Principal,
    parts: http::request::Parts,
    _body: Bytes,
) -> Result<Resp, GatewayError> {
    Err(GatewayError::NotFound {
        method: parts.method.to_string(),
        path: format!("{} ({})", parts.uri.path(), route.name),
    })
}
