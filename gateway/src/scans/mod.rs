//! Scans (being built): ids, count and values over filter, fts and ann selectors.

use bytes::Bytes;

use crate::auth::Principal;
use crate::config::Config;
use crate::error::GatewayError;
use crate::handler::{Resp, ShardCtx};
use crate::route::Route;

/// The scan feature's shared state.
#[derive(Debug)]
pub struct Scans {}

impl Scans {
    pub fn new(_config: &Config) -> Self {
        Scans {}
    }
}

/// Serves the scan routes (`create_scan`, `list_scans`, `get_scan`, `scan_results`, `delete_scan`).
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
