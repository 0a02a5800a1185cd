//! The pipeline request bodies (contract §2.6), parsed from an already validated JSON tree with
//! the defaults the `hevlayer` client sends (a plain-dict caller omits them, so they are applied
//! here too), and the `Pipeline` answer. Wrong types and missing required fields are 422
//! `validation_error` naming the field; unknown fields are ignored (the client's models allow
//! extra keys, and newer clients send more).

use std::time::Duration;

use layer_queue::{Claim, Guard, NewPipeline, Pipeline, StageMove};
use serde_json::{Map, Value, json};

use crate::core::error::GatewayError;
use crate::core::fields::{invalid, object, opt_bool, opt_string, opt_uint, string, string_list};
use crate::core::service::check_namespace;

/// The distance metrics Turbopuffer accepts.
pub const DISTANCE_METRICS: [&str; 2] = ["cosine_distance", "euclidean_squared"];
/// The longest lease a claim or heartbeat may ask for, in seconds (the queue's bound).
const MAX_LEASE_SECONDS: u64 = 7 * 24 * 3600;

/// A lease in seconds, within the queue's bound.
fn lease(o: &Map<String, Value>) -> Result<Option<Duration>, GatewayError> {
    match opt_uint(o, "lease_seconds")? {
        None => Ok(None),
        Some(0) => Err(invalid("lease_seconds must be at least 1")),
        Some(s) if s > MAX_LEASE_SECONDS => Err(invalid(format!(
            "lease_seconds must be at most {MAX_LEASE_SECONDS}"
        ))),
        Some(s) => Ok(Some(Duration::from_secs(s))),
    }
}

/// `CreatePipelineRequest`: `id`, `target_namespace` (a Turbopuffer namespace name),
/// `distance_metric` (default `cosine_distance`); other fields are kept in the pipeline's config.
pub fn create(body: &Value) -> Result<NewPipeline, GatewayError> {
    let o = object(body)?;
    let id = string(o, "id")?;
    if id.is_empty() || id.contains(['/', '?', '#']) {
        return Err(invalid(
            "id must be non-empty and must not contain '/', '?' or '#' (it is a path segment)",
        ));
    }
    let target = string(o, "target_namespace")?;
    check_namespace(&target)
        .map_err(|_| invalid("target_namespace must match [A-Za-z0-9-_.]{1,128}"))?;
    let metric = opt_string(o, "distance_metric")?.unwrap_or_else(|| DISTANCE_METRICS[0].into());
    if !DISTANCE_METRICS.contains(&metric.as_str()) {
        return Err(invalid(format!(
            "distance_metric must be one of {DISTANCE_METRICS:?}"
        )));
    }
    let mut new = NewPipeline::new(id, target);
    for (k, v) in o {
        if !matches!(k.as_str(), "id" | "target_namespace") {
            new.config.insert(k.clone(), v.clone());
        }
    }
    new.config.insert("distance_metric".into(), json!(metric));
    Ok(new)
}

/// The `Pipeline` answer: every field a string.
pub fn pipeline(p: &Pipeline) -> Value {
    json!({
        "id": p.id,
        "target_namespace": p.target_namespace,
        "distance_metric": p.distance_metric(),
        "created_at": p.created_at,
    })
}

/// `ClaimDocumentsRequest`: `worker_id`; `stage` `pending`, `claim_stage` `embedding`, `limit`
/// 100, `lease_seconds` 900 by default; `document_id_prefix` optional.
pub fn claim(body: &Value) -> Result<Claim, GatewayError> {
    let o = object(body)?;
    let mut claim = Claim::new(string(o, "worker_id")?);
    if let Some(s) = opt_string(o, "stage")? {
        claim.from_stage = s;
    }
    if let Some(s) = opt_string(o, "claim_stage")? {
        claim.claim_stage = s;
    }
    if let Some(limit) = opt_uint(o, "limit")? {
        claim.limit = u32::try_from(limit).map_err(|_| invalid("limit is too large"))?;
    }
    claim.lease = lease(o)?;
    claim.document_id_prefix = opt_string(o, "document_id_prefix")?;
    Ok(claim)
}

/// `HeartbeatDocumentsRequest`.
pub struct Heartbeat {
    pub document_ids: Vec<String>,
    pub worker_id: String,
    pub stage: String,
    pub lease: Option<Duration>,
}

/// `HeartbeatDocumentsRequest`: `document_ids`, `worker_id`; `stage` `embedding` by default;
/// `lease_seconds` (not in the client's model; other clients may send it) defaults to the queue's.
pub fn heartbeat(body: &Value) -> Result<Heartbeat, GatewayError> {
    let o = object(body)?;
    Ok(Heartbeat {
        document_ids: string_list(o, "document_ids")?,
        worker_id: string(o, "worker_id")?,
        stage: opt_string(o, "stage")?.unwrap_or_else(|| layer_queue::stages::EMBEDDING.into()),
        lease: lease(o)?,
    })
}

/// `SetDocumentsStageRequest`: `document_ids`, `stage`; guards `from_stage`, `worker_id`;
/// `create_missing` false by default; `failure_reason` (or `reason`) stored with the move.
pub fn stage_move(body: &Value) -> Result<StageMove, GatewayError> {
    let o = object(body)?;
    let ids = string_list(o, "document_ids")?;
    let mut mv = StageMove::new(&ids, string(o, "stage")?);
    mv.guard = Guard {
        from_stage: opt_string(o, "from_stage")?,
        worker_id: opt_string(o, "worker_id")?,
    };
    mv.create_missing = opt_bool(o, "create_missing")?.unwrap_or(false);
    mv.failure_reason = match opt_string(o, "failure_reason")? {
        Some(r) => Some(r),
        None => opt_string(o, "reason")?,
    };
    Ok(mv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_clients() {
        let c = claim(&json!({"worker_id": "w"})).unwrap();
        assert_eq!(
            (c.from_stage.as_str(), c.claim_stage.as_str(), c.limit),
            ("pending", "embedding", 100)
        );
        assert_eq!(c.lease, None);
        let c = claim(&json!({"worker_id": "w", "limit": "16", "lease_seconds": 30.0})).unwrap();
        assert_eq!((c.limit, c.lease), (16, Some(Duration::from_secs(30))));
        let h = heartbeat(&json!({"document_ids": ["a"], "worker_id": "w"})).unwrap();
        assert_eq!(h.stage, "embedding");
        let m = stage_move(&json!({"document_ids": ["a"], "stage": "failed"})).unwrap();
        assert!(!m.create_missing);
        let p = create(&json!({"id": "p", "target_namespace": "ns"})).unwrap();
        assert_eq!(p.config["distance_metric"], "cosine_distance");
    }

    #[test]
    fn bad_bodies_name_the_field() {
        fn err<T>(r: Result<T, GatewayError>) -> String {
            match r {
                Err(GatewayError::Validation(m)) => m,
                Err(e) => panic!("{e:?}"),
                Ok(_) => panic!("accepted"),
            }
        }
        assert!(err(claim(&json!({}))).contains("worker_id"));
        assert!(err(claim(&json!({"worker_id": 1}))).contains("worker_id"));
        assert!(err(claim(&json!({"worker_id": "w", "limit": -1}))).contains("limit"));
        assert!(err(claim(&json!({"worker_id": "w", "lease_seconds": 0}))).contains("lease"));
        assert!(err(heartbeat(&json!({"document_ids": [], "worker_id": "w"}))).contains("empty"));
        assert!(err(stage_move(&json!({"document_ids": [1], "stage": "x"}))).contains("strings"));
        assert!(
            err(create(&json!({"id": "p", "target_namespace": "bad/ns"})))
                .contains("target_namespace")
        );
        assert!(err(create(&json!({"id": "a/b", "target_namespace": "ns"}))).contains("'/'"));
        assert!(
            err(create(
                &json!({"id": "p", "target_namespace": "ns", "distance_metric": "dot"})
            ))
            .contains("distance_metric")
        );
        assert!(err(create(&json!([1]))).contains("object"));
    }
}
