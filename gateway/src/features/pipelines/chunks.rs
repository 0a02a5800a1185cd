//! Staged chunks: `PUT /v2/pipelines/{pid}/documents/{doc}` and
//! `GET /v2/pipelines/{pid}/documents/{doc}/chunks`.
//!
//! Durable before anything else: a staging writes its chunks as one object on the object store
//! (the backend history and snapshots use) under a key derived from the pipeline's creation time,
//! the document id and the chunks' content
//! (`pipelines/<hex pid>/<created>/<hex doc>/<sha-256>.json`), then stages the document in
//! PostgreSQL with that key (one statement), then copies the chunks into the document cache
//! (`Set::Chunks`), best-effort. A crash between the object and the row leaves an unreferenced
//! object, never a pending document without chunks; staging the same chunks again writes the
//! same object. When the cache refuses the copy (full, down: Aerospike stop-writes) the staging
//! still succeeds; the skip is logged once per burst and counted
//! (`layer_pipeline_chunk_cache_skips_total`).
//!
//! Reads follow the document's row to its key: the cache first, then the object store (a copy
//! is put back in the cache). Both unavailable: 503 `cache_cold`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use layer_cache::Set;
use layer_queue::Pipeline;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Pipelines, metrics, raw_of};
use crate::core::error::GatewayError;
use crate::core::http::{Resp, json_bytes, json_response, now_ms, validate_body};
use crate::core::router::Req;
use crate::core::{Core, ShardCtx};

/// The longest chunk id or document id: Turbopuffer's limit for a string id (64 bytes).
pub const MAX_ID_BYTES: usize = 64;
/// The most chunks one document may stage.
pub const MAX_CHUNKS: usize = 10_000;

/// The object-store prefix of one pipeline (one incarnation of its id).
fn pipeline_prefix(p: &Pipeline) -> String {
    let created: String = p.created_at.chars().filter(char::is_ascii_digit).collect();
    format!("pipelines/{}/{created}/", hex(p.id.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuses a document id the upstream could not take as an id.
pub fn check_document_id(doc: &str) -> Result<(), GatewayError> {
    if doc.is_empty() || doc.len() > MAX_ID_BYTES {
        return Err(GatewayError::Validation(format!(
            "document id must be 1 to {MAX_ID_BYTES} bytes (the upstream's limit for an id); \
             this one is {} bytes",
            doc.len()
        )));
    }
    Ok(())
}

/// Parses `PutChunksRequest` and returns the chunks as they are stored: a non-empty array of
/// objects with a string `id` (unique, at most 64 bytes), optional string `text` and optional
/// object `metadata` (other keys kept). The body is validated whole, then read lazily: what is
/// stored is the caller's `chunks` array text, not a re-serialised tree.
fn parse(body: &[u8], limits: &scatter::Limits) -> Result<(Bytes, Vec<String>), GatewayError> {
    let bad = |m: String| GatewayError::Validation(m);
    validate_body(body, limits)?;
    let chunks = match sonic_rs::get(body, ["chunks"]) {
        Ok(v) if raw_of(&v).starts_with('[') => v,
        _ => return Err(bad("chunks must be a list of chunk objects".into())),
    };
    let chunks = raw_of(&chunks);
    let mut ids = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, c) in sonic_rs::to_array_iter(chunks).enumerate() {
        let c = c.map_err(|e| bad(format!("chunks[{i}]: {e}")))?;
        let c = raw_of(&c);
        if !c.starts_with('{') {
            return Err(bad(format!("chunks[{i}] must be an object")));
        }
        if i >= MAX_CHUNKS {
            return Err(bad(format!("at most {MAX_CHUNKS} chunks per document")));
        }
        let mut id = None;
        for member in sonic_rs::to_object_iter(c) {
            let (k, v) = member.map_err(|e| bad(format!("chunks[{i}]: {e}")))?;
            let v = raw_of(&v);
            match k.as_ref() {
                "id" => id = Some(v),
                "text" if !(v == "null" || v.starts_with('"')) => {
                    return Err(bad(format!("chunks[{i}].text must be a string")));
                }
                "metadata" if !(v == "null" || v.starts_with('{')) => {
                    return Err(bad(format!("chunks[{i}].metadata must be an object")));
                }
                _ => {}
            }
        }
        let id = id
            .filter(|r| r.starts_with('"'))
            .and_then(|r| sonic_rs::from_str::<String>(r).ok())
            .ok_or_else(|| bad(format!("chunks[{i}].id must be a string")))?;
        if id.is_empty() || id.len() > MAX_ID_BYTES {
            return Err(bad(format!(
                "chunks[{i}].id must be 1 to {MAX_ID_BYTES} bytes"
            )));
        }
        if !seen.insert(id.clone()) {
            return Err(bad(format!("chunk id {id:?} appears twice")));
        }
        ids.push(id);
    }
    if ids.is_empty() {
        return Err(bad("chunks must not be empty".into()));
    }
    Ok((Bytes::copy_from_slice(chunks.as_bytes()), ids))
}

/// When the last skipped cache write was logged (ms), so a burst logs once.
static LAST_SKIP_LOG_MS: AtomicU64 = AtomicU64::new(0);
/// A burst: skipped writes closer together than this are logged once.
const SKIP_LOG_EVERY_MS: u64 = 10_000;

impl Pipelines {
    pub(super) async fn put_chunks(
        self: Arc<Self>,
        _: Arc<ShardCtx>,
        req: Req,
    ) -> Result<Resp, GatewayError> {
        let (pid, doc, raw) = self.document_request(&req)?;
        let (stored, chunk_ids) = parse(&raw, &self.core.limits)?;
        let started = Instant::now();
        let id = pid.clone();
        let pipeline = self
            .db(move |q| async move { q.get_pipeline(&id).await })
            .await?;
        req.principal.require_control(&pipeline.target_namespace)?;
        let digest = Sha256::new()
            .chain_update(doc.as_bytes())
            .chain_update([0u8])
            .chain_update(&stored)
            .finalize();
        let key = format!(
            "{}{}/{}.json",
            pipeline_prefix(&pipeline),
            hex(doc.as_bytes()),
            hex(&digest)
        );
        // 1. Durable first.
        self.core
            .store
            .put(&key, stored.clone())
            .await
            .map_err(|e| GatewayError::ObjectStore(format!("storing the chunks: {e}")))?;
        // 2. The row, pointing at the object.
        let (id, d, k) = (pid.clone(), doc.clone(), key.clone());
        let staged = self
            .db(move |q| async move { q.stage_with_chunks(&id, &d, &k).await })
            .await;
        let staged = match staged {
            Ok(s) => s,
            Err(e) => {
                // The pipeline went away meanwhile: its chunks object is not referenced.
                if e.status() == StatusCode::NOT_FOUND {
                    let _ = self.core.store.delete(&key).await;
                }
                return Err(e);
            }
        };
        // 3. Best-effort copy in the cache.
        cache_put(&self.core, &pid, &key, stored).await;
        metrics::staged(&pid, started);
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "pipeline_id": pid, "document_id": staged.document_id, "stage": "pending",
                "chunk_count": chunk_ids.len(), "chunk_ids": chunk_ids,
                "generation": staged.generation,
            }),
        ))
    }

    pub(super) async fn get_chunks(
        self: Arc<Self>,
        _: Arc<ShardCtx>,
        req: Req,
    ) -> Result<Resp, GatewayError> {
        let pid = self.granted_pipeline(&req).await?;
        let doc = req.decoded("doc").into_owned();
        let (id, d) = (pid.clone(), doc.clone());
        let state = self
            .db(move |q| async move { q.document(&id, &d).await })
            .await?;
        let Some(key) = state.chunks_key else {
            // Created by a stage move or a vectors call, never staged with chunks.
            return Ok(json_bytes(StatusCode::OK, Bytes::from_static(b"[]")));
        };
        let tier = &self.core.cache.tier;
        let cached = tier.get(Set::Chunks, &pid, &key).await;
        if let Ok(Some(body)) = &cached {
            metrics::chunk_read(&pid, "cache");
            return Ok(json_bytes(StatusCode::OK, body.clone()));
        }
        match self.core.store.get(&key).await {
            Ok(Some(body)) => {
                metrics::chunk_read(&pid, "object_store");
                cache_put(&self.core, &pid, &key, body.clone()).await;
                Ok(json_bytes(StatusCode::OK, body))
            }
            Ok(None) => Err(GatewayError::Internal(format!(
                "the chunks of document {doc} are missing from the object store ({key})"
            ))),
            Err(e) => {
                metrics::chunk_read(&pid, "unavailable");
                let cache = match cached {
                    Err(ce) => format!("the cache failed ({ce})"),
                    _ => "the cache has no copy".to_string(),
                };
                Err(GatewayError::CacheCold(format!(
                    "chunks of document {doc} unavailable: {cache} and the object store failed ({e})"
                )))
            }
        }
    }
}

/// Copies chunks into the cache, best-effort: a refused write (stop-writes, tier down) is logged
/// once per burst and counted; staging and reads go on from the object store.
async fn cache_put(core: &Core, pid: &str, key: &str, body: Bytes) {
    if let Err(e) = core.cache.tier.put(Set::Chunks, pid, key, body).await {
        metrics::chunk_cache_skipped(pid);
        let now = now_ms();
        let last = LAST_SKIP_LOG_MS.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= SKIP_LOG_EVERY_MS
            && LAST_SKIP_LOG_MS
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(pipeline = pid, error = %e,
                "chunk cache write failed (best-effort); chunks are served from the object store");
        }
    }
}

/// After a pipeline was deleted: its chunk objects (its own prefix) and their cache copies.
pub async fn forget_pipeline(core: &Core, pipeline: &Pipeline) {
    let prefix = pipeline_prefix(pipeline);
    match core.store.list(&prefix).await {
        Ok(objects) => {
            for o in objects {
                let _ = core.store.delete(&o.key).await;
            }
        }
        Err(e) => tracing::warn!(pipeline = %pipeline.id, error = %e,
            "listing a deleted pipeline's chunks failed; they stay in the object store"),
    }
    let _ = core
        .cache
        .tier
        .clear_namespace(Set::Chunks, &pipeline.id)
        .await;
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn chunks_are_checked_whole() {
        let ok = json!({"chunks": [{"id": "a", "text": "x"}, {"id": "b", "metadata": {"k": 1}}]});
        let limits = scatter::Limits {
            max_body_bytes: 1 << 20,
            max_depth: 64,
        };
        let parse = |v: &Value| parse(v.to_string().as_bytes(), &limits);
        let (stored, ids) = parse(&ok).unwrap();
        assert_eq!(ids, ["a", "b"]);
        let back: Value = serde_json::from_slice(&stored).unwrap();
        assert_eq!(back, ok["chunks"]);
        for bad in [
            json!({}),
            json!({"chunks": []}),
            json!({"chunks": [{"text": "x"}]}),
            json!({"chunks": [{"id": 1}]}),
            json!({"chunks": [{"id": "a"}, {"id": "a"}]}),
            json!({"chunks": [{"id": "a", "text": 3}]}),
            json!({"chunks": [{"id": "a", "metadata": [1]}]}),
            json!({"chunks": [{"id": "x".repeat(65)}]}),
            json!({"chunks": ["a"]}),
        ] {
            assert!(
                matches!(parse(&bad), Err(GatewayError::Validation(_))),
                "{bad}"
            );
        }
        assert!(check_document_id(&"d".repeat(64)).is_ok());
        assert!(check_document_id(&"d".repeat(65)).is_err());
        assert!(check_document_id("").is_err());
    }
}
