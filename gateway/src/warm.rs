//! Cache warming (being built): warm jobs and `hint_cache_warm`.

use bytes::Bytes;

use crate::auth::Principal;
use crate::config::Config;
use crate::error::GatewayError;
use crate::handler::{Resp, ShardCtx};
use crate::route::Route;

/// The warm feature's shared state.
#[derive(Debug)]
pub struct Warm {}

impl Warm {
    pub fn new(_config: &Config) -> Self {
        Warm {}
    }
}

/// Serves `warm`, `list_warm_jobs`, `get_warm_job` and `hint_cache_warm`.
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
