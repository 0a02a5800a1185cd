//! The handles behind federated query and agents: [`NamespaceQuery`] runs one Layer query on
//! one namespace (the query feature implements it with its planner, stable cut and echoes) and
//! [`Federation`] runs several such legs and fuses them with reciprocal rank fusion (the
//! federated feature implements it; agents use it). The composition root wires them. Plain data
//! types ([`Leg`], [`Fusion`], [`Fused`]) cross between them.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header::{self, HeaderValue};
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use super::ShardCtx;
use super::auth::{Denied, Principal, Surface};
use super::config::Scope;
use super::error::GatewayError;
use super::http::{TRACEPARENT, ensure_traceparent};

/// What one namespace's Layer query answered: the finished (upstream-shaped, uncompressed) body
/// and the stable cut it was served at.
pub struct LegAnswer {
    pub status: StatusCode,
    pub body: Bytes,
    pub watermark: Option<u64>,
}

/// One Layer query (`POST /v2/namespaces/{ns}/query` semantics) on one namespace.
pub trait NamespaceQuery: Send + Sync {
    fn query<'a>(
        &'a self,
        ctx: &'a ShardCtx,
        ns: &'a str,
        headers: HeaderMap,
        body: Bytes,
    ) -> BoxFuture<'a, Result<LegAnswer, GatewayError>>;
}

/// One leg of a federated query: a Layer single-query body (its `top_k` already the leg's limit)
/// on one namespace.
#[derive(Clone, Debug)]
pub struct Leg {
    pub namespace: String,
    pub body: Map<String, Value>,
}

/// How legs are fused.
#[derive(Clone, Copy, Debug)]
pub struct Fusion {
    /// RRF's `k`: a row at 1-based rank `r` in a leg adds `1 / (k + r)` to its document's score.
    pub rank_constant: u64,
    /// Rows per leg (each leg's `top_k`).
    pub per_namespace_limit: u64,
    /// Rows in the fused answer.
    pub top_k: u64,
    /// A failing namespace fails the request instead of becoming an `errors` entry.
    pub strict: bool,
}

/// One namespace's part of a fused answer.
#[derive(Clone, Debug, PartialEq)]
pub struct NamespaceResult {
    pub namespace: String,
    /// Distinct documents the namespace's legs returned.
    pub matched: u64,
    /// The stable cut its legs were served at (the oldest, when it had several).
    pub stable_as_of: Option<u64>,
}

/// A namespace whose leg failed (not strict).
#[derive(Clone, Debug, PartialEq)]
pub struct NamespaceError {
    pub namespace: String,
    pub status: u16,
    pub error: String,
}

/// A fused answer.
#[derive(Clone, Debug, Default)]
pub struct Fused {
    /// Fused rows, best first, each with `$namespace` and `$rrf_score`.
    pub rows: Vec<Value>,
    /// The `merge` echo (strategy, constants, counts).
    pub merge: Map<String, Value>,
    pub namespaces: Vec<NamespaceResult>,
    pub errors: Vec<NamespaceError>,
    /// The first `hybrid` / `routing` echoes the legs reported.
    pub hybrid: Option<Value>,
    pub routing: Option<Value>,
}

impl Fused {
    /// The `FederatedQueryResponse` body.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut o = Map::new();
        o.insert("rows".into(), Value::Array(self.rows.clone()));
        o.insert("merge".into(), Value::Object(self.merge.clone()));
        let namespaces = self
            .namespaces
            .iter()
            .map(|n| {
                let mut e = json!({"namespace": n.namespace, "matched": n.matched});
                if let Some(wm) = n.stable_as_of {
                    e["stable_as_of"] = json!(wm);
                }
                e
            })
            .collect();
        o.insert("namespaces".into(), Value::Array(namespaces));
        if !self.errors.is_empty() {
            let errors = self
                .errors
                .iter()
                .map(|e| json!({"namespace": e.namespace, "error": e.error, "status": e.status}))
                .collect();
            o.insert("errors".into(), Value::Array(errors));
        }
        if let Some(h) = &self.hybrid {
            o.insert("hybrid".into(), h.clone());
        }
        if let Some(r) = &self.routing {
            o.insert("routing".into(), r.clone());
        }
        o
    }
}

/// Runs legs and fuses them.
pub trait Federation: Send + Sync {
    fn run<'a>(
        &'a self,
        ctx: &'a ShardCtx,
        headers: &'a HeaderMap,
        legs: Vec<Leg>,
        fusion: Fusion,
    ) -> BoxFuture<'a, Result<Fused, GatewayError>>;
}

/// `read` on every namespace, checked one by one: the first the key's grant leaves out is a 403
/// naming it.
pub fn require_read(principal: &Principal, namespaces: &[String]) -> Result<(), GatewayError> {
    for ns in namespaces {
        principal
            .check(Scope::Read, Surface::Data, Some(ns))
            .map_err(|d| match d {
                Denied::Scope(required) => GatewayError::InsufficientScope { required },
                Denied::Namespace => GatewayError::NamespaceNotGranted {
                    namespace: ns.clone(),
                },
            })?;
    }
    Ok(())
}

/// The headers every leg is sent with: the caller's credential (relayed upstream only in
/// caller-auth mode) and trace context, a JSON content type, nothing of the federated request's
/// own framing (length, encodings).
pub fn leg_headers(from: &HeaderMap) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(a) = from.get(header::AUTHORIZATION) {
        h.insert(header::AUTHORIZATION, a.clone());
    }
    if let Some(t) = from.get(TRACEPARENT) {
        h.insert(TRACEPARENT, t.clone());
    }
    ensure_traceparent(&mut h);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h
}
