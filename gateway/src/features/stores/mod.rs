//! Vector stores and warehouses, read-only (contract §1.10, §2.9, §2.15): the stores this
//! gateway fronts (`vectorStore` and `vectorStores`), each with a live reachability probe and
//! its capability report, the capabilities of the store serving a namespace, and the configured
//! warehouses. Credentials never appear in any answer: a store shows where its credential comes
//! from (`secretRef`), never the value.
//!
//! Where to start: [`Stores::routes`]; [`capabilities`] is the feature table.

pub mod capabilities;
pub mod namespace;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use crate::core::config::{Scope, VectorStoreConfig, WarehouseConfig, redact_userinfo};
use crate::core::error::GatewayError;
use crate::core::http::{Resp, json_response};
use crate::core::router::{Req, Route, handler};
use crate::core::{Core, ShardCtx};
use crate::sources::queue::QueueSource;

/// How long the reachability probe of a store may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The stores feature.
pub struct Stores {
    core: Arc<Core>,
    queue: Arc<QueueSource>,
}

impl Stores {
    pub fn new(core: Arc<Core>, queue: Arc<QueueSource>) -> Arc<Stores> {
        Arc::new(Stores { core, queue })
    }

    /// The read routes of stores and warehouses, and a namespace's capabilities.
    pub fn routes(self: &Arc<Self>) -> Vec<Route> {
        use Method as M;
        let read = |pattern, name, h| Route::new(M::GET, pattern, name, Scope::Read, h);
        vec![
            read(
                "/v2/vectorstores",
                "list_vectorstores",
                handler(self.clone(), Self::list),
            ),
            read(
                "/v2/vectorstores/{name}",
                "get_vectorstore",
                handler(self.clone(), Self::get),
            ),
            read(
                "/v2/vectorstores/{name}/capabilities",
                "vectorstore_capabilities",
                handler(self.clone(), Self::capabilities),
            ),
            read(
                "/v2/namespaces/{ns}/capabilities",
                "namespace_capabilities",
                handler(self.clone(), Self::namespace_capabilities),
            ),
            read(
                "/v2/warehouses",
                "list_warehouses",
                handler(self.clone(), Self::warehouses),
            ),
            read(
                "/v2/warehouses/{name}",
                "get_warehouse",
                handler(self.clone(), Self::warehouse),
            ),
        ]
    }

    fn store(&self, name: &str) -> Result<&VectorStoreConfig, GatewayError> {
        self.core
            .config
            .stores()
            .find(|s| s.name == name)
            .ok_or_else(|| not_found("vector store", name))
    }

    async fn list(self: Arc<Self>, ctx: Arc<ShardCtx>, _: Req) -> Result<Resp, GatewayError> {
        let mut out = Vec::new();
        for (i, s) in self.core.config.stores().enumerate() {
            out.push(self.store_json(&ctx, s, i == 0).await);
        }
        Ok(json_response(
            StatusCode::OK,
            &json!({ "vectorstores": out }),
        ))
    }

    async fn get(self: Arc<Self>, ctx: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let name = req.decoded("name").into_owned();
        let s = self.store(&name)?;
        let default = s.name == self.core.config.vector_store.name;
        let body = self.store_json(&ctx, s, default).await;
        Ok(json_response(StatusCode::OK, &body))
    }

    async fn capabilities(
        self: Arc<Self>,
        _: Arc<ShardCtx>,
        req: Req,
    ) -> Result<Resp, GatewayError> {
        let name = req.decoded("name").into_owned();
        let s = self.store(&name)?;
        Ok(json_response(
            StatusCode::OK,
            &capabilities::report(&s.name, s.kind.as_str()),
        ))
    }

    /// The store's report narrowed by the namespace's schema (read from upstream now) and
    /// sharding. An upstream failure is relayed as a 502, never guessed around.
    async fn namespace_capabilities(
        self: Arc<Self>,
        ctx: Arc<ShardCtx>,
        req: Req,
    ) -> Result<Resp, GatewayError> {
        let ns = req.ns();
        let store = self.core.config.store_of(ns).to_string();
        let s = self.store(&store)?;
        let up = ctx
            .upstream(ns)
            .send(
                "schema",
                Method::GET,
                &format!("/v1/namespaces/{ns}/schema"),
                &HeaderMap::new(),
                Bytes::new(),
            )
            .await?;
        let facts = match up.status {
            StatusCode::NOT_FOUND => None,
            st if st.is_success() => {
                let schema: Value = serde_json::from_slice(&up.body).map_err(|e| {
                    GatewayError::Upstream(format!("namespace schema is not JSON: {e}"))
                })?;
                Some(namespace::SchemaFacts::of(&schema))
            }
            st => {
                return Err(GatewayError::Upstream(format!(
                    "reading the namespace schema: upstream answered {st}"
                )));
            }
        };
        let report = capabilities::report(&s.name, s.kind.as_str());
        Ok(json_response(
            StatusCode::OK,
            &namespace::narrow(report, facts.as_ref(), self.core.shards_of(ns)),
        ))
    }

    /// The `VectorStore` model, with a live probe of the store (`GET /v1/namespaces`, at most
    /// [`PROBE_TIMEOUT`]).
    async fn store_json(&self, ctx: &ShardCtx, s: &VectorStoreConfig, default: bool) -> Value {
        let probe = match ctx.upstreams.by_name(&s.name) {
            Some(up) => tokio::time::timeout(
                PROBE_TIMEOUT,
                up.send(
                    "store_probe",
                    Method::GET,
                    "/v1/namespaces?page_size=1",
                    &HeaderMap::new(),
                    Bytes::new(),
                ),
            )
            .await
            .ok(),
            None => None,
        };
        let (reachable, ready) = match &probe {
            Some(Ok(r)) if r.status.is_success() => (
                Some(true),
                ("True", "Reachable", "the store answered".to_string()),
            ),
            Some(Ok(r)) => (
                Some(true),
                (
                    "False",
                    "Refused",
                    format!("the store answered {}", r.status),
                ),
            ),
            Some(Err(e)) => (Some(false), ("False", "Unreachable", e.to_string())),
            None => (
                Some(false),
                ("False", "Timeout", "no answer within 2 s".to_string()),
            ),
        };
        let secret = match (&s.credential.env, &s.credential.value) {
            (Some(var), _) => json!({"name": "env", "key": var}),
            (None, Some(_)) => json!({"name": "layer.yaml", "key": "credential.value"}),
            (None, None) => json!({"name": "none", "key": ""}),
        };
        let url = redact_userinfo(&s.endpoint.url).to_string();
        let keys: Vec<Value> = s
            .inbound_auth
            .keys
            .iter()
            .map(|k| {
                let scopes: Vec<&str> = k.scopes.iter().map(|s| s.as_str()).collect();
                json!({"name": k.name, "scopes": scopes, "namespaces": k.namespaces})
            })
            .collect();
        let mode = match s.inbound_auth.mode {
            crate::core::config::AuthMode::DeriveFromStore => "deriveFromStore",
            crate::core::config::AuthMode::Keys => "keys",
            crate::core::config::AuthMode::Open => "open",
        };
        json!({
            "name": s.name,
            "kind": s.kind.as_str(),
            "default": default,
            "endpoint": {"url": url, "region": s.endpoint.region.clone().unwrap_or_default()},
            "credential": {"secretRef": secret},
            "inboundAuth": {"mode": mode, "keys": keys},
            "turbopufferUrl": url,
            "status": {
                "reachable": reachable,
                "observedGeneration": null,
                "conditions": [{"type": "Ready", "status": ready.0, "reason": ready.1, "message": ready.2}],
            },
        })
    }

    async fn warehouses(self: Arc<Self>, _: Arc<ShardCtx>, _: Req) -> Result<Resp, GatewayError> {
        let users = self.key_users().await;
        let out: Vec<Value> = self
            .core
            .config
            .warehouses
            .iter()
            .map(|w| warehouse_json(w, &users))
            .collect();
        Ok(json_response(StatusCode::OK, &json!({ "warehouses": out })))
    }

    async fn warehouse(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let name = req.decoded("name").into_owned();
        let w = self
            .core
            .config
            .warehouses
            .iter()
            .find(|w| w.name == name)
            .ok_or_else(|| not_found("warehouse", &name))?;
        let users = self.key_users().await;
        Ok(json_response(StatusCode::OK, &warehouse_json(w, &users)))
    }

    /// The entitlement keys of every live minted key (for a warehouse's `consumers.apiKeys`);
    /// empty when the key store cannot be read.
    async fn key_users(&self) -> Vec<String> {
        if !self.queue.configured() {
            return Vec::new();
        }
        let keys = self
            .queue
            .run("API keys", |q| async move { q.list_keys(false).await })
            .await;
        match keys {
            Ok(Ok(keys)) => keys
                .iter()
                .filter_map(|k| k.entitlements.as_object())
                .flat_map(|m| m.keys().cloned())
                .collect(),
            _ => Vec::new(),
        }
    }
}

fn not_found(what: &str, name: &str) -> GatewayError {
    GatewayError::Rejected {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        message: format!("{what} {name} not found"),
    }
}

/// The `Warehouse` model: the configured spec and a status (this gateway does not probe
/// warehouses: `Pending`, with a condition saying so).
fn warehouse_json(w: &WarehouseConfig, key_users: &[String]) -> Value {
    let target = format!("warehouse.{}", w.name);
    let api_keys = key_users.iter().filter(|k| **k == target).count();
    let mut v = json!({
        "name": w.name,
        "namespace": w.namespace.clone().unwrap_or_else(|| "layer".into()),
        "kind": w.kind.as_str(),
        "verifyInterval": w.verify_interval,
        "status": {
            "phase": "Pending",
            "consumers": {"pipelines": 0, "apiKeys": api_keys},
            "conditions": [{"type": "Verified", "status": "Unknown", "reason": "NotProbed",
                            "message": "this gateway does not probe warehouses; the operator will"}],
        },
    });
    if let Some(s) = &w.snowflake {
        let mut sf = json!({
            "account": s.account, "user": s.user, "warehouse": s.warehouse,
            "keyPairSecretRef": {"name": s.key_pair_secret_ref.name},
        });
        if let Some(r) = &s.role {
            sf["role"] = json!(r);
        }
        if let Some(p) = &s.pool {
            sf["pool"] = json!({"size": p.size, "timeout": p.timeout});
        }
        v["snowflake"] = sf;
    }
    if let Some(r) = &w.rest {
        let mut rest = json!({
            "baseUrl": r.base_url,
            "verify": {"path": r.verify.path, "query": r.verify.query},
        });
        if let Some(a) = &r.auth {
            rest["auth"] =
                json!({"in": a.location, "name": a.name, "secretRef": {"name": a.secret_ref.name}});
        }
        if let Some(l) = &r.rate_limit {
            rest["rateLimit"] = json!({"requestsPerSecond": l.requests_per_second});
        }
        v["rest"] = rest;
    }
    v
}
