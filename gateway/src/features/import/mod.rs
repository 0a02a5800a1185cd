//! Namespace init and import (contract §1.11, §2.18).
//!
//! `POST /v2/namespaces/{ns}/init` (`{schema_version = 1, shard_count?}`, scope `write`) gives a
//! namespace its Layer state: the schema version and its scatter/gather shard count, recorded
//! durably in the object store ([`crate::sources::layouts`]) and published to the write path and
//! every scatter/gather planner through [`crate::core::Core::shards_of`]; the namespace is
//! registered with the consistency watcher. It answers `{namespace, layer}` with the metadata
//! answer's `layer` block. Init is idempotent; it refuses (409 `shard_count_conflict`) a shard
//! count that differs from the one the namespace has (configured `indexes[].shards`, or an
//! earlier init): re-sharding is not supported. A shard count above 1 is accepted only for a
//! namespace with no rows upstream yet (409 `namespace_not_empty` otherwise): existing rows carry
//! no `_hevlayer_shard` and the gateway does not backfill them, so init never reports a
//! `backfilling` state.
//!
//! `POST /v2/namespaces/{ns}/import` (scope `write`) takes an Arrow IPC stream and writes its
//! rows through the gateway's write path in bounded batches ([`stream`], [`arrow`]). It answers
//! `{namespace, rows_written, batches, writes}`; the client ignores the body.

pub mod arrow;
pub mod stream;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, header};
use serde_json::{Value, json};

use crate::core::config::Scope;
use crate::core::error::GatewayError;
use crate::core::fields::{invalid_field, object, opt_uint};
use crate::core::http::{Resp, json_response, now_ms};
use crate::core::layout::Layout;
use crate::core::router::{Req, Route, handler};
use crate::core::runtime::Background;
use crate::core::{Control, Core, ShardCtx};
use crate::sources::layouts::{self, layer_block};
use crate::sources::snapshot_store::SnapshotStore;

/// The only Layer schema version.
pub const SCHEMA_VERSION: u64 = 1;
/// The largest shard count init accepts.
pub const MAX_SHARDS: u64 = 256;
/// How often the durable layouts are read again (layouts other replicas recorded, and a first
/// read that failed at start).
pub const RELOAD_EVERY: Duration = Duration::from_secs(30);

/// The init and import feature.
pub struct Import {
    core: Arc<Core>,
    snapshots: Arc<SnapshotStore>,
    /// One init decision at a time in this process (two racing inits agree on one layout).
    init_lock: tokio::sync::Mutex<()>,
}

fn conflict(code: &'static str, message: String) -> GatewayError {
    GatewayError::Rejected {
        status: StatusCode::CONFLICT,
        code,
        message,
    }
}

impl Import {
    pub fn new(core: Arc<Core>, snapshots: Arc<SnapshotStore>) -> Arc<Import> {
        Arc::new(Import {
            core,
            snapshots,
            init_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn routes(self: &Arc<Self>) -> Vec<Route> {
        vec![
            Route::new(
                Method::POST,
                "/v2/namespaces/{ns}/init",
                "init_namespace",
                Scope::Write,
                handler(self.clone(), Self::init),
            ),
            Route::new(
                Method::POST,
                "/v2/namespaces/{ns}/import",
                "import_namespace",
                Scope::Write,
                handler(self.clone(), Self::import),
            )
            .with_streamed_body(),
        ]
    }

    async fn init(self: Arc<Self>, ctx: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let ns = req.ns().to_string();
        let body = req.json_body(&self.core.limits)?;
        let o = object(&body)?;
        let version = opt_uint(o, "schema_version")?.unwrap_or(SCHEMA_VERSION);
        if version != SCHEMA_VERSION {
            return Err(invalid_field(
                "schema_version",
                format!("only schema version {SCHEMA_VERSION} exists"),
            ));
        }
        let asked = opt_uint(o, "shard_count")?;
        if asked.is_some_and(|n| n == 0 || n > MAX_SHARDS) {
            return Err(invalid_field(
                "shard_count",
                format!("must be between 1 and {MAX_SHARDS}"),
            ));
        }
        let asked = asked.map(|n| n as u32);
        // Upstream's metadata, for the index lag (404: no namespace yet).
        let path = format!("/v1/namespaces/{ns}/metadata");
        let up = ctx
            .upstream(&ns)
            .send("init", Method::GET, &path, &HeaderMap::new(), Bytes::new())
            .await?;
        let metadata = match up.status {
            s if s.is_success() => Some(up.body),
            StatusCode::NOT_FOUND => None,
            status => {
                return Err(GatewayError::Relay {
                    status,
                    content_type: up.headers.get(header::CONTENT_TYPE).cloned(),
                    body: up.body,
                });
            }
        };
        {
            let _one = self.init_lock.lock().await;
            self.decide(&ctx, &ns, asked).await?;
        }
        self.core.watcher.register(&ns);
        let rows = tokio::time::timeout(Duration::from_millis(250), self.snapshots.latest(&ns))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
            .map(|b| b.row_count);
        let watch = self.core.watcher.snapshot(&ns);
        let layer = layer_block(&self.core, &ns, watch, metadata.as_deref(), rows);
        Ok(json_response(
            StatusCode::OK,
            &json!({"namespace": ns, "layer": layer}),
        ))
    }

    /// Records the namespace's layout unless it has one; refuses a different shard count.
    async fn decide(
        &self,
        ctx: &ShardCtx,
        ns: &str,
        asked: Option<u32>,
    ) -> Result<(), GatewayError> {
        let core = &self.core;
        let configured = core.indexes.get(ns).map(|i| i.shards.max(1));
        let existing = core.layouts.get(ns);
        let current = configured.or(existing.map(|l| l.shard_count));
        if let (Some(a), Some(c)) = (asked, current)
            && a != c
        {
            let whence = if configured.is_some() {
                "configured (indexes[].shards)"
            } else {
                "set by an earlier init"
            };
            return Err(conflict(
                "shard_count_conflict",
                format!(
                    "{ns} has {c} shard(s), {whence}; re-sharding a namespace is not supported"
                ),
            ));
        }
        if existing.is_some() {
            return Ok(());
        }
        let shards = asked.or(current).unwrap_or(1);
        if shards > 1 && configured.is_none() && has_rows(ctx, ns).await? {
            return Err(conflict(
                "namespace_not_empty",
                format!(
                    "{ns} already has rows without a shard stamp; init with shard_count > 1 \
                     before the first write (the gateway does not backfill `_hevlayer_shard`)"
                ),
            ));
        }
        let layout = Layout {
            schema_version: SCHEMA_VERSION as u32,
            shard_count: shards,
            initialized_at_ms: now_ms(),
        };
        layouts::save(&core.store, ns, &layout)
            .await
            .map_err(|e| GatewayError::ObjectStore(e.to_string()))?;
        core.layouts.insert(ns, layout);
        Ok(())
    }

    async fn import(
        self: Arc<Self>,
        ctx: Arc<ShardCtx>,
        mut req: Req,
    ) -> Result<Resp, GatewayError> {
        let ns = req.ns().to_string();
        let encoding = req.parts.headers.get(header::CONTENT_ENCODING);
        if encoding.is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity")) {
            return Err(GatewayError::Rejected {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: "unsupported_encoding",
                message: "import takes an uncompressed Arrow IPC stream (no content-encoding)"
                    .into(),
            });
        }
        let g = &self.core.config.gateway;
        let params = req.query_params();
        let metric = params
            .get("distance_metric")
            .filter(|m| !m.is_empty())
            .cloned()
            .or_else(|| {
                self.core
                    .indexes
                    .get(&ns)
                    .and_then(|i| i.backend.distance_metric.clone())
            });
        let Some(body) = req.take_stream() else {
            return Err(GatewayError::Internal(
                "the import route's body was collected".into(),
            ));
        };
        if hyper::body::Body::size_hint(&body).lower() > g.max_body_bytes as u64 {
            return Err(GatewayError::PayloadTooLarge(format!(
                "request body rejected (limit {} bytes): content-length is past it",
                g.max_body_bytes
            )));
        }
        let plan = stream::Plan {
            ns: &ns,
            max_body_bytes: g.max_body_bytes,
            read_timeout: Duration::from_millis(g.server.body_read_timeout_ms),
            metric: metric.as_deref(),
        };
        let p = stream::run(&ctx, &plan, body).await?;
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "namespace": ns, "rows_written": p.rows_written, "batches": p.batches,
                "writes": p.writes,
            }),
        ))
    }
}

/// Whether `ns` has any row upstream: one row of an id-ordered query (upstream queries see
/// unindexed rows; metadata's `approx_row_count` may lag a fresh write). A missing namespace
/// has none.
async fn has_rows(ctx: &ShardCtx, ns: &str) -> Result<bool, GatewayError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    let body = Bytes::from_static(br#"{"rank_by":["id","asc"],"top_k":1}"#);
    let path = format!("/v2/namespaces/{ns}/query");
    let up = ctx
        .upstream(ns)
        .send("init", Method::POST, &path, &headers, body)
        .await?;
    match up.status {
        StatusCode::NOT_FOUND => Ok(false),
        s if s.is_success() => Ok(serde_json::from_slice::<Value>(&up.body)
            .ok()
            .and_then(|v| {
                v.get("rows")
                    .and_then(Value::as_array)
                    .map(|r| !r.is_empty())
            })
            .unwrap_or(true)),
        status => Err(GatewayError::Relay {
            status,
            content_type: up.headers.get(header::CONTENT_TYPE).cloned(),
            body: up.body,
        }),
    }
}

impl Background for Import {
    fn start(self: Arc<Self>, control: &Control) {
        control.handle.spawn(async move {
            loop {
                tokio::time::sleep(RELOAD_EVERY).await;
                let core = &self.core;
                match layouts::load_new(&core.store, |ns| core.layouts.get(ns).is_some()).await {
                    Ok(loaded) => self.core.layouts.extend(loaded),
                    Err(e) => tracing::warn!(error = %e, "reading namespace layouts"),
                }
            }
        });
    }
}
