//! Vectors: `PUT /v2/pipelines/{pid}/documents/{doc}/vectors`.
//!
//! The rows (`id`, `vector`, the entry's `attributes`) are upserted into the pipeline's
//! `target_namespace` through the gateway's own write path ([`crate::sources::writes`]): stamped
//! with `_hevlayer_upserted_at` and tracked by the consistency watcher like any write through the
//! gateway, so stable reads, scans and snapshots see them. Then the document becomes `indexed`.
//! Concurrent calls of one pipeline share upstream writes ([`super::batch`], group commit); each
//! still gets its own answer.
//!
//! Failures: an upstream 5xx or no answer is 502 `upstream_error` and the document stays where it
//! was (leased, for re-claim); an upstream 4xx (a vector whose dimension the namespace refuses,
//! say) is relayed as upstream sent it. Bad input is refused before anything is written: an empty
//! list, an entry without a vector, vectors of different dimensions in one call, a non-numeric
//! component, an id over 64 bytes, `_hevlayer_*` or `id`/`vector` among the attributes.
//! Multi-vector entries (`vectors`, what `write_single_multivector` sends) are refused with 422
//! `unsupported_by_store` and `feature: multi_vector`: Turbopuffer stores one vector per row.
//!
//! Which worker may finish a document: the request carries no worker id (the client sends none),
//! so the rule is per generation ([`layer_queue::handoff`]): the generation is read before the
//! upstream write; afterwards the document becomes `indexed` only if it is still at that
//! generation and not indexed already. A late worker whose lease ran out and was re-claimed
//! writes the same chunks' vectors again (an idempotent upsert of the same ids) and changes
//! nothing in the queue; a re-stage that landed meanwhile keeps the document `pending` for its
//! new chunks (`status: "restaged"`). A document that was never staged is created `indexed`.

use std::sync::Arc;
use std::time::Instant;

use http::StatusCode;
use layer_queue::Indexed;
use serde_json::{Map, json};

use super::chunks::MAX_ID_BYTES;
use super::{Pipelines, metrics, raw_of};
use crate::core::ShardCtx;
use crate::core::error::GatewayError;
use crate::core::http::{Resp, json_response, validate_body};
use crate::core::router::Req;

/// The most vectors one call may write (Turbopuffer's per-request bound is far above typical
/// chunk counts; the body size limit applies too).
pub const MAX_VECTORS: usize = 10_000;

/// Builds the upstream write's rows (comma-separated row objects, which
/// [`super::batch::upsert_body`] wraps, with other calls' rows under load) from a `PutVectorsRequest` body by splicing: the body is
/// validated whole first (duplicate keys, depth, size, escapes), then read lazily; each row is the entry's raw `id` and `vector` text
/// followed by the members of its `attributes`, so the floats are never parsed into numbers and
/// formatted again (that was most of the route's cost). Returns the rows and their count.
pub fn upstream_rows(
    body: &[u8],
    limits: &scatter::Limits,
) -> Result<(Vec<u8>, usize), GatewayError> {
    let bad = |m: String| GatewayError::Validation(m);
    validate_body(body, limits)?;
    let entries = match sonic_rs::get(body, ["vectors"]) {
        Ok(v) if v.as_raw_str().starts_with('[') => v,
        _ => return Err(bad("vectors must be a list of vector entries".into())),
    };
    let mut out = Vec::with_capacity(body.len() + 64);
    let (mut n, mut dims) = (0usize, None);
    for (i, entry) in sonic_rs::to_array_iter(entries.as_raw_str()).enumerate() {
        let entry = entry.map_err(|e| bad(format!("vectors[{i}]: {e}")))?;
        let raw = entry.as_raw_str().trim();
        if !raw.starts_with('{') {
            return Err(bad(format!("vectors[{i}] must be an object")));
        }
        if i >= MAX_VECTORS {
            return Err(bad(format!("at most {MAX_VECTORS} vectors per call")));
        }
        let (mut id, mut vector, mut attrs) = (None, None, None);
        for member in sonic_rs::to_object_iter(raw) {
            let (k, v) = member.map_err(|e| bad(format!("vectors[{i}]: {e}")))?;
            let v = raw_of(&v);
            match k.as_ref() {
                "id" => id = Some(v),
                "vector" => vector = Some(v),
                "attributes" if v != "null" => attrs = Some(v),
                "vectors" if v != "null" => {
                    return Err(GatewayError::Detailed {
                        status: StatusCode::UNPROCESSABLE_ENTITY,
                        code: "unsupported_by_store",
                        message: format!(
                            "vectors[{i}] is a multi-vector entry; Turbopuffer stores one vector per row"
                        ),
                        detail: Map::from_iter([("feature".into(), json!("multi_vector"))]),
                    });
                }
                _ => {}
            }
        }
        let id_text = id
            .filter(|r| r.starts_with('"'))
            .and_then(|r| sonic_rs::from_str::<String>(r).ok())
            .ok_or_else(|| bad(format!("vectors[{i}].id must be a string")))?;
        if id_text.is_empty() || id_text.len() > MAX_ID_BYTES {
            return Err(bad(format!(
                "vectors[{i}].id must be 1 to {MAX_ID_BYTES} bytes"
            )));
        }
        let vector = vector
            .filter(|r| r.starts_with('['))
            .ok_or_else(|| bad(format!("vectors[{i}].vector must be a list of numbers")))?;
        let len = count_numbers(vector).filter(|&n| n > 0).ok_or_else(|| {
            bad(format!(
                "vectors[{i}].vector must be a non-empty list of numbers"
            ))
        })?;
        match dims {
            None => dims = Some(len),
            Some(d) if d != len => {
                return Err(bad(format!(
                    "vectors[{i}] has {len} dimensions; the first entry has {d}"
                )));
            }
            Some(_) => {}
        }
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"id":"#);
        out.extend_from_slice(id.unwrap_or_default().as_bytes());
        out.extend_from_slice(br#","vector":"#);
        out.extend_from_slice(vector.as_bytes());
        if let Some(attrs) = attrs {
            if !attrs.starts_with('{') {
                return Err(bad(format!("vectors[{i}].attributes must be an object")));
            }
            for member in sonic_rs::to_object_iter(attrs) {
                let (k, _) = member.map_err(|e| bad(format!("vectors[{i}].attributes: {e}")))?;
                if k.starts_with(scatter::RESERVED_PREFIX) {
                    // Refused here, per call, not by the stamper over a shared write (which
                    // would fail every call of it).
                    return Err(scatter::RewriteError::ReservedAttribute {
                        attribute: k.to_string(),
                    }
                    .into());
                }
                if k.as_ref() == "id" || k.as_ref() == "vector" {
                    return Err(bad(format!(
                        "vectors[{i}].attributes must not set {:?} (the entry's own field)",
                        k.as_ref()
                    )));
                }
            }
            let inner = attrs[1..attrs.len() - 1].trim();
            if !inner.is_empty() {
                out.push(b',');
                out.extend_from_slice(inner.as_bytes());
            }
        }
        out.push(b'}');
        n += 1;
    }
    if n == 0 {
        return Err(bad("vectors must not be empty".into()));
    }
    Ok((out, n))
}

/// The number of elements of a JSON array's raw text (already validated as JSON) when every
/// element is a number; `None` otherwise. A byte scan: in valid JSON only numbers are made of
/// digits, signs, `.`, `e`/`E` and whitespace, and anything else (a string, `true`, `null`, a
/// nested array or object) has a byte outside that set; the commas at this level separate the
/// elements, since nothing nested can occur.
fn count_numbers(array: &str) -> Option<usize> {
    let inner = array.strip_prefix('[')?.strip_suffix(']')?.trim();
    if inner.is_empty() {
        return Some(0);
    }
    let mut n = 1;
    for b in inner.bytes() {
        match b {
            b',' => n += 1,
            b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E' | b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => return None,
        }
    }
    Some(n)
}

impl Pipelines {
    pub(super) async fn put_vectors(
        self: Arc<Self>,
        ctx: Arc<ShardCtx>,
        req: Req,
    ) -> Result<Resp, GatewayError> {
        let (pid, doc, raw) = self.document_request(&req)?;
        // Checked whole before the queue is asked anything.
        let (rows, n) = upstream_rows(&raw, &self.core.limits)?;
        let started = Instant::now();
        let (id, d) = (pid.clone(), doc.clone());
        let (pipeline, seen) = self
            .db(move |q| async move { q.pipeline_and_generation(&id, &d).await })
            .await?;
        req.principal.require_control(&pipeline.target_namespace)?;
        let up = self
            .batcher
            .write(
                &ctx,
                &pid,
                &pipeline.target_namespace,
                pipeline.distance_metric(),
                rows,
                n,
            )
            .await
            .inspect_err(|_| metrics::vectors(&pid, "upstream_error", started))?;
        if up.status.is_client_error() {
            metrics::vectors(&pid, "rejected", started);
            return Err(GatewayError::Relay {
                status: up.status,
                content_type: up.headers.get(http::header::CONTENT_TYPE).cloned(),
                body: up.body,
            });
        }
        if !up.status.is_success() {
            metrics::vectors(&pid, "upstream_error", started);
            return Err(GatewayError::Upstream(format!(
                "writing the vectors to {} answered {}: {}",
                pipeline.target_namespace,
                up.status,
                String::from_utf8_lossy(&up.body)
            )));
        }
        let (id, d) = (pid.clone(), doc.clone());
        let outcome = self
            .db(move |q| async move { q.mark_indexed(&id, &d, seen).await })
            .await?;
        let (status, stage) = match &outcome {
            Indexed::Moved { from } => {
                metrics::indexed(&pid, from.as_deref());
                ("indexed", "indexed".to_string())
            }
            Indexed::Already => ("already_indexed", "indexed".to_string()),
            Indexed::Restaged { stage, .. } => ("restaged", stage.clone()),
        };
        metrics::vectors(&pid, "ok", started);
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "status": status, "pipeline_id": pid, "document_id": doc, "stage": stage,
                "namespace": pipeline.target_namespace, "rows_upserted": n,
            }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::super::batch;
    use super::*;

    fn limits() -> scatter::Limits {
        scatter::Limits {
            max_body_bytes: 1 << 20,
            max_depth: 64,
        }
    }

    fn body(v: Value) -> Result<(Value, usize), GatewayError> {
        let (rows, n) = upstream_rows(v.to_string().as_bytes(), &limits())?;
        let out: Value =
            serde_json::from_slice(&batch::upsert_body(&[&rows], "cosine_distance")).unwrap();
        Ok((out, n))
    }

    #[test]
    fn entries_become_rows_or_clear_errors() {
        let (out, n) = body(json!({"vectors": [
            {"id": "c1", "vector": [0.1, 0.2], "attributes": {"text": "a", "n": {"x": [1]}}},
            {"id": "c2", "vector": [1, -2e3], "attributes": {}},
            {"id": "c\\u0033", "vector": [1, 2], "vectors": null, "extra": 1},
        ]}))
        .unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            out,
            json!({"upsert_rows": [
                {"id": "c1", "vector": [0.1, 0.2], "text": "a", "n": {"x": [1]}},
                {"id": "c2", "vector": [1, -2e3]},
                {"id": "c\\u0033", "vector": [1, 2]},
            ], "distance_metric": "cosine_distance"})
        );
        let code = |v: Value| match body(v) {
            Err(e) => e.code(),
            Ok(_) => "accepted",
        };
        assert_eq!(code(json!({"vectors": []})), "validation_error");
        assert_eq!(code(json!({"vectors": {}})), "validation_error");
        assert_eq!(code(json!({"vectors": [{"id": "a"}]})), "validation_error");
        assert_eq!(
            code(json!({"vectors": [{"id": "a", "vector": []}]})),
            "validation_error"
        );
        assert_eq!(
            code(json!({"vectors": [{"id": "a", "vector": [1]}, {"id": "b", "vector": [1, 2]}]})),
            "validation_error"
        );
        assert_eq!(
            code(json!({"vectors": [{"id": "a", "vector": ["x"]}]})),
            "validation_error"
        );
        assert_eq!(
            code(json!({"vectors": [{"id": "a", "vector": [null]}]})),
            "validation_error"
        );
        assert_eq!(
            code(json!({"vectors": [{"id": "a", "vector": [1], "attributes": {"id": 2}}]})),
            "validation_error"
        );
        assert_eq!(
            code(json!({"vectors": [{"id": "a", "vector": [1], "attributes": [1]}]})),
            "validation_error"
        );
        let reserved = code(json!({"vectors": [{"id": "a", "vector": [1],
                                              "attributes": {"_hevlayer_x": 1}}]}));
        assert_eq!(
            reserved,
            scatter::RewriteError::ReservedAttribute {
                attribute: String::new()
            }
            .error_code()
        );
        assert_eq!(
            code(json!({"vectors": [{"id": "a", "vectors": [[1.0], [2.0]]}]})),
            "unsupported_by_store"
        );
        assert_eq!(
            code(json!({"vectors": [{"id": 7, "vector": [1]}]})),
            "validation_error"
        );
        assert_eq!(
            code(json!({"vectors": [{"id": "x".repeat(65), "vector": [1]}]})),
            "validation_error"
        );
        assert_eq!(code(json!({"vectors": ["a"]})), "validation_error");
        assert_eq!(
            code(json!({"vectors": [{"id": "a", "vector": [[1]]}]})),
            "validation_error"
        );
        assert_eq!(
            code(json!({"vectors": [{"id": "a", "vector": [true]}]})),
            "validation_error"
        );
        assert_eq!(count_numbers("[ 1, -2.5e3 ,3E+2,0 ]"), Some(4));
        assert_eq!(count_numbers("[]"), Some(0));
        assert_eq!(count_numbers("[1,{}]"), None);
        // Escapes pass through as the caller wrote them; the id's length is its decoded one.
        let raw = br#"{"vectors":[{"id":"c\u0033","vector":[1]}]}"#;
        let (rows, _) = upstream_rows(raw, &limits()).unwrap();
        let out: Value =
            serde_json::from_slice(&batch::upsert_body(&[&rows], "euclidean_squared")).unwrap();
        assert_eq!(out["upsert_rows"][0]["id"], "c3");
        assert_eq!(out["distance_metric"], "euclidean_squared");
        // Duplicate keys anywhere are refused by the whole-body validation.
        let dup = br#"{"vectors":[{"id":"a","vector":[1],"attributes":{"k":1,"k":2}}]}"#;
        assert!(upstream_rows(dup, &limits()).is_err());
    }
}
