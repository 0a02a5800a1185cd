//! Pipelines: the staging queue's HTTP API (`/v2/pipelines…`, the ten pipeline operations of the
//! `hevlayer` client). A CPU worker stages a document's chunks, a GPU worker claims pending
//! documents under a lease, reads the chunks back and writes vectors, which go to Turbopuffer
//! through the gateway's own write path and mark the document `indexed`.
//!
//! Where to start: [`Pipelines::routes`] lists the routes; [`chunks`] stages and reads chunks
//! (object store first, the document cache best-effort); [`vectors`] writes vectors; [`models`]
//! parses the request bodies with the client's defaults; [`metrics`] names what is exported.
//!
//! State lives in PostgreSQL through `layer-queue` (documents, stages, leases; one transaction
//! per call) and in the object store (chunk bodies); the gateway keeps none of its own, so a
//! restart loses nothing. Queue calls run on the control runtime, where the connection pool's
//! connections live, so a shard never drives PostgreSQL I/O. Migrations are applied before the
//! first call that needs them (and tried at start); while PostgreSQL is unreachable every
//! pipeline route answers 500 `database_unavailable` and every other route keeps serving. Without
//! a configured database (`LAYER_DATABASE_URL` unset) pipeline routes answer 503
//! `database_not_configured`.
//!
//! Keys limited to some namespaces reach a pipeline only when its `target_namespace` is among
//! them (the contract's PIPE surface): creating one for another namespace, and every route of an
//! existing one, answer 403 `namespace not in key grant`; the listing leaves such pipelines out.

pub mod batch;
pub mod chunks;
pub mod metrics;
pub mod models;
pub mod vectors;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use layer_queue::{Claim, Queue, QueueError, StageMove};
use serde_json::{Value, json};

use crate::core::config::Scope;
use crate::core::error::GatewayError;
use crate::core::http::{Resp, json_response};
use crate::core::router::{Req, Route, handler};
use crate::core::runtime::Background;
use crate::core::{Control, Core, ShardCtx};
use crate::sources::queue::{self, QueueSource};

/// How often the stage gauge (`layer_pipeline_stage_count`) is refreshed from PostgreSQL.
pub const GAUGE_INTERVAL: Duration = Duration::from_secs(10);

/// The pipelines feature: the queue handle (when a database is configured) and the core.
pub struct Pipelines {
    core: Arc<Core>,
    queue: Arc<QueueSource>,
    /// Group commit of concurrent vectors calls ([`batch`]).
    batcher: Arc<batch::Batcher>,
}

impl Pipelines {
    /// Builds the feature on the shared queue.
    pub fn new(core: Arc<Core>, queue: Arc<QueueSource>) -> Arc<Self> {
        metrics::describe();
        Arc::new(Pipelines {
            core,
            queue,
            batcher: Arc::default(),
        })
    }

    /// The pipeline routes (contract §1.7).
    pub fn routes(self: &Arc<Self>) -> Vec<Route> {
        use Method as M;
        use Scope::{Admin, Read, Write};
        let p = |method, pattern, name, scope, h| Route::new(method, pattern, name, scope, h);
        vec![
            p(
                M::POST,
                "/v2/pipelines",
                "create_pipeline",
                Admin,
                handler(self.clone(), Self::create),
            ),
            p(
                M::GET,
                "/v2/pipelines",
                "list_pipelines",
                Read,
                handler(self.clone(), Self::list),
            ),
            p(
                M::DELETE,
                "/v2/pipelines/{pid}",
                "delete_pipeline",
                Admin,
                handler(self.clone(), Self::delete),
            ),
            p(
                M::GET,
                "/v2/pipelines/{pid}/status",
                "pipeline_status",
                Read,
                handler(self.clone(), Self::status),
            ),
            p(
                M::PUT,
                "/v2/pipelines/{pid}/documents/{doc}",
                "put_pipeline_chunks",
                Write,
                handler(self.clone(), Self::put_chunks),
            ),
            p(
                M::GET,
                "/v2/pipelines/{pid}/documents/{doc}/chunks",
                "get_pipeline_chunks",
                Read,
                handler(self.clone(), Self::get_chunks),
            ),
            p(
                M::PUT,
                "/v2/pipelines/{pid}/documents/{doc}/vectors",
                "put_pipeline_vectors",
                Write,
                handler(self.clone(), Self::put_vectors),
            ),
            p(
                M::POST,
                "/v2/pipelines/{pid}/claim",
                "claim_documents",
                Write,
                handler(self.clone(), Self::claim),
            ),
            p(
                M::POST,
                "/v2/pipelines/{pid}/documents/heartbeat",
                "heartbeat_documents",
                Write,
                handler(self.clone(), Self::heartbeat),
            ),
            p(
                M::POST,
                "/v2/pipelines/{pid}/documents/stage",
                "set_documents_stage",
                Write,
                handler(self.clone(), Self::set_stage),
            ),
        ]
    }

    /// Runs one queue call on the control runtime ([`QueueSource::run`]); queue errors keep
    /// their status and code.
    async fn db<T, F, Fut>(&self, f: F) -> Result<T, GatewayError>
    where
        T: Send + 'static,
        F: FnOnce(Queue) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, QueueError>> + Send + 'static,
    {
        self.queue.run("pipelines", f).await?.map_err(queue_error)
    }

    async fn create(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let new = models::create(&self.body(&req)?)?;
        req.principal.require_control(&new.target_namespace)?;
        let started = Instant::now();
        let created = self
            .db(move |q| async move { q.create_pipeline(&new).await })
            .await?;
        metrics::operation("create", &created.id, started);
        Ok(json_response(
            StatusCode::CREATED,
            &models::pipeline(&created),
        ))
    }

    async fn list(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let all = self.db(|q| async move { q.list_pipelines().await }).await?;
        let list: Vec<Value> = all
            .iter()
            .filter(|p| req.principal.may_control(&p.target_namespace))
            .map(models::pipeline)
            .collect();
        Ok(json_response(StatusCode::OK, &json!({"pipelines": list})))
    }

    async fn delete(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let pid = self.granted_pipeline(&req).await?;
        let id = pid.clone();
        let pipeline = self
            .db(move |q| async move {
                let p = q.get_pipeline(&id).await?;
                q.delete_pipeline(&id).await?;
                Ok(p)
            })
            .await?;
        // The rows are gone in one statement; the chunk objects of this pipeline (its own key
        // prefix, so a pipeline re-created under the same id keeps its new chunks) and their
        // cache copies go best-effort in the background.
        let core = self.core.clone();
        tokio::spawn(async move { chunks::forget_pipeline(&core, &pipeline).await });
        metrics::forget(&pid);
        Ok(json_response(
            StatusCode::OK,
            &json!({"status": "deleted", "pipeline_id": pid}),
        ))
    }

    async fn status(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let pid = self.granted_pipeline(&req).await?;
        let status = self
            .db(move |q| async move { q.status(&pid).await })
            .await?;
        let body = serde_json::to_value(&status)
            .map_err(|e| GatewayError::Internal(format!("status: {e}")))?;
        Ok(json_response(StatusCode::OK, &body))
    }

    async fn claim(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let pid = self.granted_pipeline(&req).await?;
        let claim: Claim = models::claim(&self.body(&req)?)?;
        let started = Instant::now();
        let (id, c) = (pid.clone(), claim.clone());
        let claimed = self
            .db(move |q| async move { q.claim(&id, &c).await })
            .await?;
        let expired = claimed.iter().filter(|c| c.lease_expired).count();
        metrics::claimed(&pid, &claim, claimed.len(), expired, started);
        let ids: Vec<&str> = claimed.iter().map(|c| c.document_id.as_str()).collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "pipeline_id": pid, "stage": claim.from_stage, "claim_stage": claim.claim_stage,
                "worker_id": claim.worker_id, "documents": ids,
            }),
        ))
    }

    async fn heartbeat(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let pid = self.granted_pipeline(&req).await?;
        let hb = models::heartbeat(&self.body(&req)?)?;
        let (id, stage) = (pid.clone(), hb.stage.clone());
        let extended = self
            .db(move |q| async move {
                q.heartbeat(&id, &hb.document_ids, &hb.worker_id, &hb.stage, hb.lease)
                    .await
            })
            .await?;
        Ok(json_response(
            StatusCode::OK,
            &json!({"pipeline_id": pid, "stage": stage, "updated": extended.len()}),
        ))
    }

    async fn set_stage(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let pid = self.granted_pipeline(&req).await?;
        let mv: StageMove = models::stage_move(&self.body(&req)?)?;
        let started = Instant::now();
        let (id, m) = (pid.clone(), mv.clone());
        let result = self
            .db(move |q| async move { q.set_stage(&id, &m).await })
            .await;
        metrics::stage_moved(&pid, &mv, result.is_ok(), started);
        let updated = result?;
        Ok(json_response(
            StatusCode::OK,
            &json!({"pipeline_id": pid, "stage": mv.stage, "updated": updated}),
        ))
    }

    /// The route's pipeline id, once the caller may reach it: for a key limited to some
    /// namespaces the pipeline's `target_namespace` must be among them (a pipeline route reads
    /// and writes that namespace's data). Unlimited principals pay nothing; a limited one pays
    /// one read of the pipeline. (Routes that read the pipeline anyway check with [`granted`].)
    async fn granted_pipeline(&self, req: &Req) -> Result<String, GatewayError> {
        let pid = req.decoded("pid").into_owned();
        if layer_queue::udfs::is_udf_queue(&pid) {
            // A UDF's queue row: not a pipeline, whatever the caller may reach.
            return Err(queue_error(QueueError::NotFound {
                message: format!("pipeline {pid} not found"),
                document_ids: Vec::new(),
            }));
        }
        if req.principal.is_control_limited() {
            let id = pid.clone();
            let pipeline = self
                .db(move |q| async move { q.get_pipeline(&id).await })
                .await?;
            req.principal.require_control(&pipeline.target_namespace)?;
        }
        Ok(pid)
    }

    /// A route's JSON body (gzip accepted), validated whole.
    fn body(&self, req: &Req) -> Result<Value, GatewayError> {
        req.json_body(&self.core.limits)
    }

    /// The request body, inflated when gzip-encoded (bounded by `maxBodyBytes`), unparsed.
    fn raw_body(&self, req: &Req) -> Result<bytes::Bytes, GatewayError> {
        req.inflated_body(&self.core.limits)
    }

    /// What the per-document routes read first: the pipeline id, the checked document id and
    /// the inflated body.
    fn document_request(&self, req: &Req) -> Result<(String, String, bytes::Bytes), GatewayError> {
        let pid = req.decoded("pid").into_owned();
        let doc = req.decoded("doc").into_owned();
        chunks::check_document_id(&doc)?;
        Ok((pid, doc, self.raw_body(req)?))
    }
}

/// A lazily read value's raw text, borrowed from the input (sonic-rs copies only for `FastStr`
/// inputs, which are not used here).
pub(super) fn raw_of<'a>(v: &sonic_rs::LazyValue<'a>) -> &'a str {
    match v.as_raw_cow() {
        std::borrow::Cow::Borrowed(s) => s.trim(),
        std::borrow::Cow::Owned(_) => "",
    }
}

/// A queue error as a response: its own status and code, the document ids it is about, and a
/// count of database failures.
fn queue_error(e: QueueError) -> GatewayError {
    if queue::is_database_failure(&e) {
        metrics::database_error(e.code());
    }
    queue::queue_error(e)
}

/// At start: applies the migrations (retrying while PostgreSQL is unreachable, so the first
/// worker call does not pay for them), then refreshes the stage gauge every [`GAUGE_INTERVAL`].
impl Background for Pipelines {
    fn start(self: Arc<Self>, control: &Control) {
        if !self.queue.configured() {
            return;
        }
        let source = self.queue.clone();
        control.handle.spawn(async move {
            let mut warned = false;
            loop {
                match source.ready().await {
                    None => return,
                    Some(Ok(queue)) => match queue.stage_counts().await {
                        Ok(counts) => metrics::stage_counts(&counts),
                        Err(e) => metrics::database_error(e.code()),
                    },
                    Some(Err(e)) if !warned => {
                        tracing::warn!(error = %e, "pipeline queue not ready; retrying");
                        warned = true;
                    }
                    Some(Err(_)) => {}
                }
                if let Some(pool) = source.pool_use() {
                    metrics::pool_use(pool);
                }
                tokio::time::sleep(GAUGE_INTERVAL).await;
            }
        });
    }
}
