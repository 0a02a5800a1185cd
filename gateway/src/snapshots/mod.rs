//! Snapshots (being built): materialized facet histograms, their history and activity.

use std::sync::Arc;

use bytes::Bytes;

use crate::auth::Principal;
use crate::config::Config;
use crate::error::GatewayError;
use crate::handler::{Control, Resp, ShardCtx, Shared};
use crate::route::Route;
use crate::store::ObjectStore;

mod body;
pub use body::{FacetValue, FieldHistogram, SkippedField, SnapshotBody};

/// The snapshot feature's shared state.
#[derive(Debug)]
pub struct Snapshots {
    pub store: ObjectStore,
}

impl Snapshots {
    pub fn new(_config: &Config, store: ObjectStore) -> Self {
        Snapshots { store }
    }
}

/// Starts the automatic snapshot writer on the control runtime.
pub fn spawn(_shared: &Arc<Shared>, _control: &Control) {}

/// The latest snapshot body of `ns`, if one was ever written.
pub async fn latest(
    _shared: &Shared,
    _ns: &str,
) -> Result<Option<Arc<SnapshotBody>>, GatewayError> {
    Ok(None)
}

/// Serves the snapshot routes.
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
