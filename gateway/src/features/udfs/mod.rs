//! UDFs (Functions): the fourteen UDF operations of the `hevlayer` client (`/v2/udfs…`, contract
//! §1.8) and the runtime behind them. A UDF runs a worker's function over rows that already
//! exist: the gateway discovers the rows that need it, queues them, leases batches to workers,
//! retries and fails them, and writes each completion's attributes with the version marker.
//!
//! Where to start: [`Udfs::routes`]; [`spec`] parses and checks specs; [`discovery`] sweeps
//! target namespaces into the queue; [`complete`] writes completions; [`push`] dispatches
//! batches to HTTP workers; [`metrics`] names what is exported. The queue is `layer-queue`'s
//! (the pipelines' claims, leases, attempts and backoff, on PostgreSQL through
//! [`crate::sources::queue`]); specs live next to it, so restarts keep everything.
//!
//! Scopes: worker routes (claim, complete, fail, heartbeat) need `write`; control routes
//! (create, upsert, delete, discover, pause, resume, reset-failed) `admin`; reads `read`. A key
//! limited to some namespaces reaches a UDF only when it grants every target namespace.

pub mod complete;
pub mod discovery;
pub mod metrics;
pub mod push;
pub mod spec;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Method, StatusCode};
use layer_queue::items::ItemClaim;
use layer_queue::{Queue, QueueError, Udf};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::core::config::Scope;
use crate::core::error::GatewayError;
use crate::core::fields::{object, opt_uint, string};
use crate::core::http::{Resp, json_response};
use crate::core::router::{Req, Route, Router, handler};
use crate::core::runtime::Background;
use crate::core::{Control, Core, ShardCtx};
use crate::sources::queue::{self, QueueSource};
use spec::{Spec, bad};

/// The UDF feature: the shared queue, the core, and the control-runtime context its writes use.
pub struct Udfs {
    core: Arc<Core>,
    queue: Arc<QueueSource>,
    /// A context on the control runtime (its upstream pool): completions, discovery and push
    /// dispatch all run there, next to the PostgreSQL pool. Set when the runtimes start.
    control: OnceLock<Arc<ShardCtx>>,
    /// Wakes the discovery loop (a new UDF, `discover`, a resume).
    wake: Notify,
    /// Discovery state that is not in the database (sweeps asked for while one ran).
    sweeps: discovery::Local,
    /// The UDFs as last read (by the discovery loop every second, and by this replica's own
    /// changes), so worker routes do not read the registry on every call. The queue's own
    /// statements re-check what must be current (pause, existence, the version a marker gets).
    known: ArcSwap<HashMap<String, Udf>>,
}

impl Udfs {
    /// Builds the feature on the shared queue.
    pub fn new(core: Arc<Core>, queue: Arc<QueueSource>) -> Arc<Self> {
        metrics::describe();
        Arc::new(Udfs {
            core,
            queue,
            control: OnceLock::new(),
            wake: Notify::new(),
            sweeps: discovery::Local::default(),
            known: ArcSwap::from_pointee(HashMap::new()),
        })
    }

    /// The UDF routes (contract §1.8).
    pub fn routes(self: &Arc<Self>) -> Vec<Route> {
        use Method as M;
        use Scope::{Admin, Read, Write};
        let r = |method, pattern, name, scope, h| Route::new(method, pattern, name, scope, h);
        vec![
            r(
                M::POST,
                "/v2/udfs",
                "create_udf",
                Admin,
                handler(self.clone(), Self::create),
            ),
            r(
                M::GET,
                "/v2/udfs",
                "list_udfs",
                Read,
                handler(self.clone(), Self::list),
            ),
            r(
                M::GET,
                "/v2/udfs/{id}",
                "get_udf",
                Read,
                handler(self.clone(), Self::get),
            ),
            r(
                M::PUT,
                "/v2/udfs/{id}",
                "upsert_udf",
                Admin,
                handler(self.clone(), Self::upsert),
            ),
            r(
                M::DELETE,
                "/v2/udfs/{id}",
                "delete_udf",
                Admin,
                handler(self.clone(), Self::delete),
            ),
            r(
                M::GET,
                "/v2/udfs/{id}/status",
                "udf_status",
                Read,
                handler(self.clone(), Self::status),
            ),
            r(
                M::POST,
                "/v2/udfs/{id}/discover",
                "discover_udf",
                Admin,
                handler(self.clone(), Self::discover),
            ),
            r(
                M::POST,
                "/v2/udfs/{id}/pause",
                "pause_udf",
                Admin,
                handler(self.clone(), Self::pause),
            ),
            r(
                M::POST,
                "/v2/udfs/{id}/resume",
                "resume_udf",
                Admin,
                handler(self.clone(), Self::resume),
            ),
            r(
                M::POST,
                "/v2/udfs/{id}/reset-failed",
                "reset_failed_udf",
                Admin,
                handler(self.clone(), Self::reset_failed),
            ),
            r(
                M::POST,
                "/v2/udfs/{id}/claim",
                "claim_udf_items",
                Write,
                handler(self.clone(), Self::claim),
            ),
            r(
                M::POST,
                "/v2/udfs/{id}/items/complete",
                "complete_udf_items",
                Write,
                handler(self.clone(), Self::complete),
            ),
            r(
                M::POST,
                "/v2/udfs/{id}/items/fail",
                "fail_udf_items",
                Write,
                handler(self.clone(), Self::fail),
            ),
            r(
                M::POST,
                "/v2/udfs/{id}/items/heartbeat",
                "heartbeat_udf_items",
                Write,
                handler(self.clone(), Self::heartbeat),
            ),
        ]
    }

    /// One queue call on the control runtime; queue errors keep their status and code.
    async fn db<T, F, Fut>(&self, f: F) -> Result<T, GatewayError>
    where
        T: Send + 'static,
        F: FnOnce(Queue) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, QueueError>> + Send + 'static,
    {
        self.queue.run("UDFs", f).await?.map_err(queue_error)
    }

    /// The control-runtime context (503 before the runtimes started).
    fn control_ctx(&self) -> Result<Arc<ShardCtx>, GatewayError> {
        self.control
            .get()
            .cloned()
            .ok_or_else(|| GatewayError::Rejected {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "starting",
                message: "the gateway is starting".into(),
            })
    }

    async fn create(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let body = self.body(&req)?;
        let o = object(&body)?;
        let id = string(o, "id").map_err(|e| bad("id", e))?;
        spec::check_id(&id)?;
        let spec = Spec::parse(o.get("spec").unwrap_or(&Value::Null))?;
        self.admit_spec(&req, &id, &spec).await?;
        let (sid, stored) = (id.clone(), spec.to_json());
        let paused = spec.paused;
        let udf = self
            .db(move |q| async move {
                let udf = q.create_udf(&sid, &stored).await?;
                match paused {
                    Some(true) => q.set_udf_paused(&sid, true).await,
                    _ => Ok(udf),
                }
            })
            .await?;
        self.remember(&udf);
        self.wake.notify_one();
        Ok(json_response(StatusCode::CREATED, &udf_json(&udf)))
    }

    async fn upsert(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let id = req.decoded("id").into_owned();
        spec::check_id(&id)?;
        let body = self.body(&req)?;
        let spec = Spec::parse(object(&body)?.get("spec").unwrap_or(&Value::Null))?;
        self.admit_spec(&req, &id, &spec).await?;
        let (sid, stored) = (id.clone(), spec.to_json());
        let paused = spec.paused;
        let (udf, created) = self
            .db(move |q| async move {
                let (udf, created) = q.upsert_udf(&sid, &stored).await?;
                match paused {
                    Some(p) if p != udf.paused => Ok((q.set_udf_paused(&sid, p).await?, created)),
                    _ => Ok((udf, created)),
                }
            })
            .await?;
        self.remember(&udf);
        self.wake.notify_one();
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(json_response(status, &udf_json(&udf)))
    }

    /// What create and upsert check beyond the spec's shape: the caller may reach every target
    /// namespace, no other UDF shares the marker, and upstream knows the namespaces and accepts
    /// the filter ([`discovery::probe`]).
    async fn admit_spec(&self, req: &Req, id: &str, spec: &Spec) -> Result<(), GatewayError> {
        for ns in &spec.target_namespaces {
            req.principal.require_control(ns)?;
        }
        let all = self.db(|q| async move { q.list_udfs().await }).await?;
        let marker = spec::marker_name(id);
        if let Some(other) = all
            .iter()
            .find(|u| u.id != id && spec::marker_name(&u.id) == marker)
        {
            return Err(bad(
                "id",
                format!(
                    "UDF {} already writes the marker {}",
                    other.id,
                    spec::version_marker(id)
                ),
            ));
        }
        let ctx = self.control_ctx()?;
        let handle = self.core.control()?.handle.clone();
        let (id, spec) = (id.to_string(), spec.clone());
        handle
            .spawn(async move { discovery::probe(&ctx, &id, &spec).await })
            .await
            .map_err(|e| GatewayError::Internal(format!("probe: {e}")))?
    }

    async fn list(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let all = self.db(|q| async move { q.list_udfs().await }).await?;
        let udfs: Vec<Value> = all
            .iter()
            .filter(|u| may_reach(&req, u))
            .map(udf_json)
            .collect();
        Ok(json_response(StatusCode::OK, &json!({ "udfs": udfs })))
    }

    async fn get(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let id = req.decoded("id").into_owned();
        let (udf, status) = self
            .db(move |q| async move { q.udf_status(&id).await })
            .await?;
        reach(&req, &udf)?;
        Ok(json_response(
            StatusCode::OK,
            &json!({"udf": udf_json(&udf), "status": status_json(&udf, &status)}),
        ))
    }

    async fn status(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let id = req.decoded("id").into_owned();
        let (udf, status) = self
            .db(move |q| async move { q.udf_status(&id).await })
            .await?;
        reach(&req, &udf)?;
        Ok(json_response(StatusCode::OK, &status_json(&udf, &status)))
    }

    async fn delete(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let udf = self.reached(&req).await?;
        let id = udf.id.clone();
        self.db(move |q| async move { q.delete_udf(&id).await })
            .await?;
        metrics::forget(&udf.id);
        self.forget(&udf.id);
        Ok(json_response(
            StatusCode::OK,
            &json!({"status": "deleted", "udf_id": udf.id}),
        ))
    }

    async fn pause(self: Arc<Self>, ctx: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        self.set_paused(ctx, req, true).await
    }

    async fn resume(self: Arc<Self>, ctx: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        self.set_paused(ctx, req, false).await
    }

    async fn set_paused(
        self: Arc<Self>,
        _: Arc<ShardCtx>,
        req: Req,
        paused: bool,
    ) -> Result<Resp, GatewayError> {
        let udf = self.reached(&req).await?;
        let udf = self
            .db(move |q| async move { q.set_udf_paused(&udf.id, paused).await })
            .await?;
        self.remember(&udf);
        if !paused {
            self.wake.notify_one();
        }
        Ok(json_response(StatusCode::OK, &udf_json(&udf)))
    }

    async fn reset_failed(
        self: Arc<Self>,
        _: Arc<ShardCtx>,
        req: Req,
    ) -> Result<Resp, GatewayError> {
        let udf = self.reached(&req).await?;
        let id = udf.id.clone();
        let n = self
            .db(move |q| async move { q.reset_failed_items(&id).await })
            .await?;
        Ok(json_response(
            StatusCode::OK,
            &json!({"udf_id": udf.id, "updated": n}),
        ))
    }

    async fn discover(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let udf = self.reached(&req).await?;
        let body = self.body_or_empty(&req)?;
        let o = object(&body)?;
        let page_size = opt_uint(o, "page_size")?.unwrap_or(10_000);
        if page_size == 0 || page_size > crate::sources::origin::MAX_PAGE as u64 {
            return Err(bad(
                "page_size",
                format!("must be between 1 and {}", crate::sources::origin::MAX_PAGE),
            ));
        }
        let spec = Spec::parse(&udf.spec)?;
        let namespaces = match o.get("namespaces") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad("namespaces", "must be a list of strings"))
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(bad("namespaces", "must be a list of strings")),
        };
        for ns in &namespaces {
            if !spec.target_namespaces.contains(ns) {
                return Err(bad(
                    "namespaces",
                    format!("{ns} is not a target namespace of UDF {}", udf.id),
                ));
            }
        }
        let namespaces = if namespaces.is_empty() {
            spec.target_namespaces.clone()
        } else {
            namespaces
        };
        let out = discovery::discover_now(&self, &udf.id, namespaces, page_size as usize).await?;
        Ok(json_response(StatusCode::OK, &out))
    }

    async fn claim(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let udf = self.reached(&req).await?;
        let spec = Spec::parse(&udf.spec)?;
        let body = self.body(&req)?;
        let o = object(&body)?;
        let worker_id = string(o, "worker_id")?;
        let limit = opt_uint(o, "limit")?.unwrap_or(spec.worker.batch_size);
        if limit == 0 {
            return Err(bad("limit", "must be at least 1"));
        }
        let lease = opt_uint(o, "lease_seconds")?.unwrap_or(spec.schedule.lease_seconds);
        if lease == 0 || lease > spec::MAX_LEASE_SECONDS {
            return Err(bad(
                "lease_seconds",
                format!("must be between 1 and {}", spec::MAX_LEASE_SECONDS),
            ));
        }
        let claim = ItemClaim {
            worker_id: worker_id.clone(),
            // A worker asking for more than a batch gets a batch (`worker.batchSize`).
            limit: limit.min(spec.worker.batch_size) as u32,
            lease: Duration::from_secs(lease),
            max_in_flight: spec.schedule.max_in_flight_batches as i64,
        };
        let id = udf.id.clone();
        let claimed = self
            .db(move |q| async move { q.claim_items(&id, &claim).await })
            .await?;
        metrics::claimed(&udf.id, &claimed);
        let items: Vec<Value> = claimed.iter().map(complete::claimed_item).collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({"udf_id": udf.id, "worker_id": worker_id, "items": items}),
        ))
    }

    async fn complete(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let udf = self.reached(&req).await?;
        let body = self.body(&req)?;
        let report = complete::Report::parse(&body)?;
        let updated = complete::run(&self, &udf.id, report).await?;
        Ok(json_response(
            StatusCode::OK,
            &json!({"udf_id": udf.id, "updated": updated}),
        ))
    }

    async fn fail(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let udf = self.reached(&req).await?;
        let body = self.body(&req)?;
        let failures = complete::Failures::parse(&body)?;
        let updated = complete::fail(&self, &udf, failures).await?;
        Ok(json_response(
            StatusCode::OK,
            &json!({"udf_id": udf.id, "updated": updated}),
        ))
    }

    async fn heartbeat(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let udf = self.reached(&req).await?;
        let spec = Spec::parse(&udf.spec)?;
        let body = self.body(&req)?;
        let o = object(&body)?;
        let worker_id = string(o, "worker_id")?;
        let keys = complete::item_refs(o)?;
        if keys.is_empty() {
            return Ok(json_response(
                StatusCode::OK,
                &json!({"udf_id": udf.id, "updated": 0}),
            ));
        }
        let lease = Duration::from_secs(spec.schedule.lease_seconds);
        let id = udf.id.clone();
        let n = self
            .db(move |q| async move { q.heartbeat_items(&id, &keys, &worker_id, lease).await })
            .await?;
        Ok(json_response(
            StatusCode::OK,
            &json!({"udf_id": udf.id, "updated": n}),
        ))
    }

    /// The route's UDF, once the caller may reach it (404 for an unknown one): from what this
    /// replica knows, else from the registry.
    async fn reached(&self, req: &Req) -> Result<Udf, GatewayError> {
        let id = req.decoded("id").into_owned();
        let known = self.known.load().get(&id).cloned();
        let udf = match known {
            Some(u) => u,
            None => {
                let udf = self
                    .db(move |q| async move { q.get_udf(&id).await })
                    .await?;
                self.remember(&udf);
                udf
            }
        };
        reach(req, &udf)?;
        Ok(udf)
    }

    /// Records a UDF as this replica now knows it.
    fn remember(&self, udf: &Udf) {
        self.known.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.insert(udf.id.clone(), udf.clone());
            m
        });
    }

    /// Replaces what this replica knows with a fresh listing.
    pub(crate) fn remember_all(&self, all: &[Udf]) {
        self.known.store(Arc::new(
            all.iter().map(|u| (u.id.clone(), u.clone())).collect(),
        ));
    }

    fn forget(&self, id: &str) {
        self.known.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.remove(id);
            m
        });
    }

    /// A route's JSON body (gzip accepted), validated whole.
    fn body(&self, req: &Req) -> Result<Value, GatewayError> {
        req.json_body(&self.core.limits)
    }

    /// [`Udfs::body`], with an empty body read as `{}` (bodyless POSTs).
    fn body_or_empty(&self, req: &Req) -> Result<Value, GatewayError> {
        if req.body.is_empty() {
            return Ok(json!({}));
        }
        self.body(req)
    }
}

/// The UDF's target namespaces, as stored.
fn targets(udf: &Udf) -> Vec<String> {
    udf.spec["target_namespaces"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn may_reach(req: &Req, udf: &Udf) -> bool {
    !req.principal.is_control_limited()
        || targets(udf).iter().all(|ns| req.principal.may_control(ns))
}

fn reach(req: &Req, udf: &Udf) -> Result<(), GatewayError> {
    if !req.principal.is_control_limited() {
        return Ok(());
    }
    for ns in targets(udf) {
        req.principal.require_control(&ns)?;
    }
    Ok(())
}

/// The `Udf` model.
pub fn udf_json(u: &Udf) -> Value {
    json!({
        "id": u.id, "spec": u.spec, "paused": u.paused,
        "created_at": u.created_at, "updated_at": u.updated_at,
    })
}

/// The `UdfStatus` model, plus what discovery is doing.
fn status_json(u: &Udf, s: &layer_queue::PipelineStatus) -> Value {
    let d = &u.discovery;
    json!({
        "udf_id": u.id,
        "paused": u.paused,
        "active_namespaces": targets(u),
        "discovery": {
            "sweeps_completed": d.sweeps_completed,
            "last_completed_at": d.last_completed_at,
            "running": d.running,
            "progress": d.progress,
            "last_error": d.last_error,
        },
        "counts": s.counts,
        "failed_reasons": s.failed_reasons,
        "pending_count": s.pending_count,
        "processing_count": s.processing_count,
        "failed_count": s.failed_count,
        "indexed_rate_per_min": s.indexed_rate_per_min,
        "rate_window_seconds": s.rate_window_seconds,
    })
}

/// A queue error as a response: its own status and code, and a count of database failures.
fn queue_error(e: QueueError) -> GatewayError {
    if queue::is_database_failure(&e) {
        metrics::database_error(e.code());
    }
    queue::queue_error(e)
}

/// At start: the control-runtime context, then the loops: discovery ([`discovery::run`]), push
/// dispatch ([`push::run`]) and the queue gauges.
impl Background for Udfs {
    fn start(self: Arc<Self>, control: &Control) {
        let router = Router::new(Vec::new()).map(Arc::new);
        if let Ok(router) = router {
            let ctx = ShardCtx::new(self.core.clone(), control.upstreams.clone(), router);
            let _ = self.control.set(Arc::new(ctx));
        }
        if !self.queue.configured() {
            return;
        }
        control.handle.spawn(discovery::run(self.clone()));
        control.handle.spawn(push::run(self.clone()));
        control.handle.spawn(metrics::run(self.clone()));
    }
}
