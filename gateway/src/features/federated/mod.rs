//! Federated query: `POST /v2/query` runs one Layer query over several namespaces and fuses the
//! answers with reciprocal rank fusion ([`fuse`]).
//!
//! Each namespace is one leg served by the v2 query's own machinery (planner, HybridText / Auto
//! echoes, `nearest_to_id`, the namespace's stable cut), reached through the
//! [`NamespaceQuery`] handle; legs run concurrently. `read` is checked on every namespace before
//! any leg runs. A failing namespace becomes an `errors` entry, or with `strict` fails the
//! request (its status, code `namespace_failed`, the namespace in the body). The same engine
//! ([`Federation`]) serves the agents feature, whose plans are several queries over several
//! namespaces.

pub mod fuse;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::{BoxFuture, join_all};
use http::{HeaderMap, Method, StatusCode};
use serde_json::{Map, Value};

use crate::core::ShardCtx;
use crate::core::config::Scope;
use crate::core::error::GatewayError;
use crate::core::federation::{
    Federation, Fused, Fusion, Leg, NamespaceQuery, leg_headers, require_read,
};
use crate::core::fields::{invalid_field, object, opt_bool, opt_uint};
use crate::core::http::{Resp, json_response};
use crate::core::router::{Req, Route, handler};
use crate::core::service::check_namespace;
use fuse::LegOutcome;

/// Most namespaces one federated query may name.
pub const MAX_NAMESPACES: usize = 32;
/// RRF's `k` when `fusion.rank_constant` is not given.
pub const DEFAULT_RANK_CONSTANT: u64 = 60;
/// `top_k` when the body has none.
pub const DEFAULT_TOP_K: u64 = 10;

/// The federated query feature: legs go to `legs` (the v2 query).
pub struct Federated {
    legs: Arc<dyn NamespaceQuery>,
}

impl Federated {
    pub fn new(legs: Arc<dyn NamespaceQuery>) -> Arc<Federated> {
        Arc::new(Federated { legs })
    }

    pub fn routes(self: &Arc<Self>) -> Vec<Route> {
        vec![Route::new(
            Method::POST,
            "/v2/query",
            "federated_query",
            Scope::Read,
            handler(self.clone(), Federated::serve),
        )]
    }

    async fn serve(self: Arc<Self>, ctx: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let body = req.json_body(&ctx.core.limits)?;
        let Request {
            namespaces,
            fusion,
            query,
        } = parse(&body)?;
        require_read(&req.principal, &namespaces)?;
        let headers = leg_headers(&req.parts.headers);
        let legs = namespaces
            .into_iter()
            .map(|namespace| {
                let mut body = query.clone();
                body.insert("top_k".into(), Value::from(fusion.per_namespace_limit));
                Leg { namespace, body }
            })
            .collect();
        let fused = self.run(&ctx, &headers, legs, fusion).await?;
        Ok(json_response(
            StatusCode::OK,
            &Value::Object(fused.to_json()),
        ))
    }
}

impl Federation for Federated {
    fn run<'a>(
        &'a self,
        ctx: &'a ShardCtx,
        headers: &'a HeaderMap,
        legs: Vec<Leg>,
        fusion: Fusion,
    ) -> BoxFuture<'a, Result<Fused, GatewayError>> {
        Box::pin(async move {
            let answers = join_all(legs.iter().map(|leg| {
                let body = Bytes::from(Value::Object(leg.body.clone()).to_string());
                self.legs.query(ctx, &leg.namespace, headers.clone(), body)
            }))
            .await;
            let mut outcomes = Vec::with_capacity(legs.len());
            for (leg, answer) in legs.into_iter().zip(answers) {
                let outcome = outcome_of(answer);
                if fusion.strict
                    && let LegOutcome::Failed { status, error } = &outcome
                {
                    let mut detail = Map::new();
                    detail.insert("namespace".into(), Value::String(leg.namespace.clone()));
                    return Err(GatewayError::Detailed {
                        status: StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY),
                        code: "namespace_failed",
                        message: format!("namespace {}: {error}", leg.namespace),
                        detail,
                    });
                }
                outcomes.push((leg.namespace, outcome));
            }
            Ok(fuse::fuse(outcomes, &fusion))
        })
    }
}

/// A leg's answer as fusion sees it: rows and echoes, or a failure with the status and message
/// its caller would have got.
fn outcome_of(answer: Result<crate::core::federation::LegAnswer, GatewayError>) -> LegOutcome {
    match answer {
        Err(e) => LegOutcome::Failed {
            status: e.status().as_u16(),
            error: e.to_string(),
        },
        Ok(a) if !a.status.is_success() => LegOutcome::Failed {
            status: a.status.as_u16(),
            error: error_text(&a.body),
        },
        Ok(a) => match serde_json::from_slice::<Value>(&a.body) {
            Ok(Value::Object(mut o)) => LegOutcome::Rows {
                rows: match o.remove("rows") {
                    Some(Value::Array(rows)) => rows,
                    _ => Vec::new(),
                },
                watermark: a.watermark,
                hybrid: o.remove("hybrid"),
                routing: o.remove("routing"),
            },
            _ => LegOutcome::Failed {
                status: StatusCode::BAD_GATEWAY.as_u16(),
                error: "the namespace's answer is not a JSON object".into(),
            },
        },
    }
}

/// The message of an error body: its `message` or `error` string, else the text itself.
fn error_text(body: &[u8]) -> String {
    if let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(body) {
        for key in ["message", "error"] {
            if let Some(Value::String(s)) = o.get(key) {
                return s.clone();
            }
        }
    }
    String::from_utf8_lossy(body).chars().take(1000).collect()
}

/// A read `FederatedQueryRequest`.
#[derive(Debug)]
pub struct Request {
    pub namespaces: Vec<String>,
    pub fusion: Fusion,
    /// The Layer query every namespace runs: the body without `namespaces`, `strict` and
    /// `fusion`.
    pub query: Map<String, Value>,
}

/// Reads a `FederatedQueryRequest`.
pub fn parse(body: &Value) -> Result<Request, GatewayError> {
    let o = object(body)?;
    let namespaces = namespaces_of(o)?;
    let strict = opt_bool(o, "strict")?.unwrap_or(false);
    let top_k = positive(o, "top_k")?.unwrap_or(DEFAULT_TOP_K);
    let (rank_constant, per_namespace_limit) = match o.get("fusion") {
        None | Some(Value::Null) => (None, None),
        Some(Value::Object(f)) => (
            positive(f, "rank_constant")
                .map_err(|_| invalid_field("fusion.rank_constant", "must be a positive integer"))?,
            positive(f, "per_namespace_limit").map_err(|_| {
                invalid_field("fusion.per_namespace_limit", "must be a positive integer")
            })?,
        ),
        Some(_) => return Err(invalid_field("fusion", "must be an object")),
    };
    if o.contains_key("queries") {
        return Err(invalid_field(
            "queries",
            "a federated query is one Layer single query; send multi-queries per namespace",
        ));
    }
    if o.get("cursor").is_some_and(|c| !c.is_null()) {
        return Err(invalid_field(
            "cursor",
            "pagination is single-namespace only; a federated query has no cursor",
        ));
    }
    let mut query = o.clone();
    for k in ["namespaces", "strict", "fusion"] {
        query.remove(k);
    }
    let fusion = Fusion {
        rank_constant: rank_constant.unwrap_or(DEFAULT_RANK_CONSTANT),
        per_namespace_limit: per_namespace_limit.unwrap_or(top_k),
        top_k,
        strict,
    };
    Ok(Request {
        namespaces,
        fusion,
        query,
    })
}

/// A positive integer field (absent: `None`).
fn positive(o: &Map<String, Value>, key: &str) -> Result<Option<u64>, GatewayError> {
    match opt_uint(o, key)? {
        Some(0) => Err(invalid_field(key, "must be a positive integer")),
        v => Ok(v),
    }
}

/// `namespaces`: 1 to [`MAX_NAMESPACES`] distinct namespace names.
fn namespaces_of(o: &Map<String, Value>) -> Result<Vec<String>, GatewayError> {
    let bad = |m: &str| invalid_field("namespaces", m);
    let Some(Value::Array(items)) = o.get("namespaces") else {
        return Err(bad("required: a list of 1 to 32 namespace names"));
    };
    if items.is_empty() || items.len() > MAX_NAMESPACES {
        return Err(bad("must name 1 to 32 namespaces"));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for v in items {
        let Some(ns) = v.as_str() else {
            return Err(bad("must be a list of strings"));
        };
        check_namespace(ns).map_err(|e| invalid_field("namespaces", format!("{ns:?}: {e}")))?;
        if out.iter().any(|n| n == ns) {
            return Err(bad(&format!("{ns:?} is named twice")));
        }
        out.push(ns.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_leg_body() {
        let Request {
            namespaces: ns,
            fusion: f,
            query: q,
        } = parse(&json!({
            "namespaces": ["a", "b"], "rank_by": ["text", "BM25", "x"], "top_k": 5,
            "strict": false, "include_leg_breakdown": false
        }))
        .unwrap();
        assert_eq!(ns, ["a", "b"]);
        assert_eq!(
            (f.rank_constant, f.per_namespace_limit, f.top_k, f.strict),
            (60, 5, 5, false)
        );
        assert!(!q.contains_key("namespaces") && !q.contains_key("strict"));
        assert_eq!(q["rank_by"], json!(["text", "BM25", "x"]));
        let f = parse(&json!({
            "namespaces": ["a"], "fusion": {"rank_constant": 1, "per_namespace_limit": 3}
        }))
        .unwrap()
        .fusion;
        assert_eq!(
            (f.rank_constant, f.per_namespace_limit, f.top_k),
            (1, 3, 10)
        );
    }

    #[test]
    fn bad_bodies_are_422() {
        for body in [
            json!({}),
            json!({"namespaces": []}),
            json!({"namespaces": ["a", "a"]}),
            json!({"namespaces": ["a/b"]}),
            json!({"namespaces": [1]}),
            json!({"namespaces": ["a"], "fusion": {"rank_constant": 0}}),
            json!({"namespaces": ["a"], "fusion": 3}),
            json!({"namespaces": ["a"], "top_k": 0}),
            json!({"namespaces": ["a"], "cursor": "c"}),
            json!({"namespaces": ["a"], "queries": []}),
            json!({"namespaces": ["a"], "strict": "yes"}),
        ] {
            let e = parse(&body).unwrap_err();
            assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        }
    }
}
