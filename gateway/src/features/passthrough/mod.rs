//! The passthrough family: every Turbopuffer route the gateway forwards, as one proxy path
//! (`crate::core::proxy`) with per-route hooks — plain passthrough (explain, recall, async
//! operations), writes and namespace replacement ([`write`]), schema and metadata
//! ([`metadata`]), and the upstream listing ([`listing`]). Queries have their own feature.

pub mod listing;
pub mod metadata;
pub mod write;

use std::sync::Arc;

use http::Method;

use crate::core::config::Scope;
use crate::core::proxy::{Plain, route};
use crate::core::router::Route;
use crate::sources::snapshot_store::SnapshotStore;

/// The passthrough family's routes. `snapshots` feeds metadata's `indexed` / `index_lag_rows`.
pub fn routes(snapshots: Arc<SnapshotStore>) -> Vec<Route> {
    use Method as M;
    use Scope::{Read, Write as W};
    let plain = route(Arc::new(Plain));
    let write = route(Arc::new(write::Write));
    let replace = route(Arc::new(write::Replace));
    let metadata = route(Arc::new(metadata::Metadata { snapshots }));
    let schema = route(Arc::new(metadata::Schema { update: false }));
    let schema_update = route(Arc::new(metadata::Schema { update: true }));
    let listing = route(Arc::new(listing::Listing));
    vec![
        Route::new(M::POST, "/v2/namespaces/{ns}", "write", W, write)
            .with_latency_metric("layer_upsert_duration_seconds"),
        Route::new(
            M::DELETE,
            "/v2/namespaces/{ns}",
            "delete",
            W,
            replace.clone(),
        ),
        Route::new(
            M::POST,
            "/v2/namespaces/{ns}/async",
            "copy_async",
            W,
            replace,
        ),
        Route::new(M::GET, "/v1/namespaces", "list", Read, listing)
            .with_latency_metric("layer_list_duration_seconds"),
        Route::new(
            M::GET,
            "/v1/namespaces/{ns}/metadata",
            "metadata",
            Read,
            metadata.clone(),
        )
        .with_latency_metric("layer_head_duration_seconds"),
        Route::new(
            M::GET,
            "/v2/namespaces/{ns}/metadata",
            "metadata",
            Read,
            metadata.clone(),
        )
        .with_latency_metric("layer_head_duration_seconds"),
        Route::new(
            M::PATCH,
            "/v1/namespaces/{ns}/metadata",
            "update_metadata",
            W,
            metadata.clone(),
        ),
        Route::new(
            M::PATCH,
            "/v2/namespaces/{ns}/metadata",
            "update_metadata",
            W,
            metadata,
        ),
        Route::new(M::GET, "/v1/namespaces/{ns}/schema", "schema", Read, schema),
        Route::new(
            M::POST,
            "/v1/namespaces/{ns}/schema",
            "update_schema",
            W,
            schema_update,
        ),
        Route::new(
            M::POST,
            "/v2/namespaces/{ns}/explain_query",
            "explain",
            Read,
            plain.clone(),
        ),
        Route::new(
            M::POST,
            "/v1/namespaces/{ns}/_debug/recall",
            "recall",
            Read,
            plain.clone(),
        ),
        Route::new(
            M::GET,
            "/v1/namespaces/{ns}/operations/{token}",
            "operation",
            Read,
            plain,
        ),
    ]
}
