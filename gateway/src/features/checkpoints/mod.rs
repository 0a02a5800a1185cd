//! Checkpoints (contract §1.11, §2.13): a label pinned to a namespace's current snapshot — its
//! `sha`, `watermark_ms` and `row_count` — durable in the object store next to the snapshot
//! history, so it survives restarts.
//!
//! ```text
//! checkpoints/{ns}/labels/{hex(label)}.json             the checkpoint (get; 409 when present)
//! checkpoints/{ns}/order/{created_ms:020}-{hex(label)}  empty marker: newest-first listing
//! ```
//!
//! Labels follow the tag rules (§3.2): 1 to 128 bytes of ASCII letters, digits and `: _ - . / = +`
//! (hex in keys, so no object store escapes them). Creating one needs `write` and pins the newest entry of the
//! namespace's snapshot history (the automatic writer's, for a namespace with a snapshot policy,
//! or a manual job merged into it); a namespace with no history yet answers 409 `no_snapshot`. The listing is
//! newest first with `limit` (default 100, at most 1000) and `before` (a label's cursor), and
//! `next_cursor` in the body and in `x-layer-next-cursor`.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use serde_json::{Value, json};

use crate::core::config::Scope;
use crate::core::error::GatewayError;
use crate::core::fields::{object, string};
use crate::core::http::{Resp, json_response, now_ms};
use crate::core::router::{Req, Route, handler};
use crate::core::{Core, ShardCtx};
use crate::sources::snapshot_store::{SnapshotStore, durable};

/// The default and largest page of the listing.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// The checkpoints feature.
pub struct Checkpoints {
    core: Arc<Core>,
    snapshots: Arc<SnapshotStore>,
}

fn label_ok(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 128
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":_-./=+".contains(&b))
}

/// A label as a key segment: hex, so no object store escapes or splits it.
fn seg(label: &str) -> String {
    label.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unseg(s: &str) -> String {
    let bytes: Vec<u8> = (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn label_key(ns: &str, label: &str) -> String {
    format!("checkpoints/{ns}/labels/{}.json", seg(label))
}

fn order_prefix(ns: &str) -> String {
    format!("checkpoints/{ns}/order/")
}

fn store_error(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::ObjectStore(e.to_string())
}

impl Checkpoints {
    pub fn new(core: Arc<Core>, snapshots: Arc<SnapshotStore>) -> Arc<Checkpoints> {
        Arc::new(Checkpoints { core, snapshots })
    }

    pub fn routes(self: &Arc<Self>) -> Vec<Route> {
        vec![
            Route::new(
                Method::POST,
                "/v2/namespaces/{ns}/checkpoints",
                "create_checkpoint",
                Scope::Write,
                handler(self.clone(), Self::create),
            ),
            Route::new(
                Method::GET,
                "/v2/namespaces/{ns}/checkpoints",
                "list_checkpoints",
                Scope::Read,
                handler(self.clone(), Self::list),
            ),
            Route::new(
                Method::GET,
                "/v2/namespaces/{ns}/checkpoints/{label}",
                "get_checkpoint",
                Scope::Read,
                handler(self.clone(), Self::get),
            ),
        ]
    }

    async fn create(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let ns = req.ns().to_string();
        let body = req.json_body(&self.core.limits)?;
        let label = string(object(&body)?, "label")?.trim().to_string();
        if !label_ok(&label) {
            return Err(GatewayError::Validation(
                "label must be 1 to 128 bytes of ASCII letters, digits and : _ - . / = +".into(),
            ));
        }
        let store = &self.core.store;
        if store
            .get(&label_key(&ns, &label))
            .await
            .map_err(store_error)?
            .is_some()
        {
            return Err(GatewayError::Rejected {
                status: StatusCode::CONFLICT,
                code: "already_exists",
                message: format!("checkpoint {label} of {ns} already exists"),
            });
        }
        // The history's newest entry, read from the store itself (the in-memory latest may be
        // a few seconds behind a snapshot just recorded).
        let objects = self.snapshots.objects();
        let newest = durable::history(objects, &ns)
            .await
            .map_err(store_error)?
            .into_iter()
            .next();
        let snapshot = match newest {
            Some(e) => durable::get_body(objects, &ns, &e.sha)
                .await
                .map_err(store_error)?,
            None => None,
        };
        let Some(snapshot) = snapshot else {
            return Err(GatewayError::Rejected {
                status: StatusCode::CONFLICT,
                code: "no_snapshot",
                message: format!(
                    "{ns} has no snapshot history to pin: set a snapshot policy with facet fields \
                     (PUT /v2/namespaces/{ns}/snapshot-policy) and let the writer record one"
                ),
            });
        };
        let created = now_ms();
        let checkpoint = json!({
            "namespace": ns, "label": label, "watermark_ms": snapshot.watermark_ms,
            "sha": snapshot.sha, "row_count": snapshot.row_count, "created_at_ms": created,
        });
        store
            .put(&label_key(&ns, &label), Bytes::from(checkpoint.to_string()))
            .await
            .map_err(store_error)?;
        store
            .put(
                &format!("{}{created:020}-{}", order_prefix(&ns), seg(&label)),
                Bytes::new(),
            )
            .await
            .map_err(store_error)?;
        Ok(json_response(StatusCode::CREATED, &checkpoint))
    }

    async fn get(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let ns = req.ns().to_string();
        let label = req.decoded("label").into_owned();
        match self.read(&ns, &label).await? {
            Some(v) => Ok(json_response(StatusCode::OK, &v)),
            None => Err(GatewayError::Rejected {
                status: StatusCode::NOT_FOUND,
                code: "not_found",
                message: format!("checkpoint {label} of {ns} not found"),
            }),
        }
    }

    async fn read(&self, ns: &str, label: &str) -> Result<Option<Value>, GatewayError> {
        let Some(bytes) = self
            .core
            .store
            .get(&label_key(ns, label))
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| GatewayError::ObjectStore(format!("checkpoint {label}: {e}")))
    }

    async fn list(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let ns = req.ns().to_string();
        let params = req.query_params();
        let limit = match params.get("limit").filter(|v| !v.is_empty()) {
            None => DEFAULT_LIMIT,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    GatewayError::Validation(format!("limit must be between 1 and {MAX_LIMIT}"))
                })?,
        };
        let before = params.get("before").filter(|v| !v.is_empty()).cloned();
        let prefix = order_prefix(&ns);
        let mut keys: Vec<String> = self
            .core
            .store
            .list(&prefix)
            .await
            .map_err(store_error)?
            .into_iter()
            .filter_map(|l| l.key.strip_prefix(&prefix).map(str::to_string))
            .collect();
        keys.sort_unstable_by(|a, b| b.cmp(a)); // newest first
        if let Some(b) = &before {
            keys.retain(|k| k.as_str() < b.as_str());
        }
        let more = keys.len() > limit;
        keys.truncate(limit);
        let mut out = Vec::with_capacity(keys.len());
        for k in &keys {
            let label = unseg(k.split_once('-').map_or(k.as_str(), |(_, l)| l));
            if let Some(v) = self.read(&ns, &label).await? {
                out.push(v);
            }
        }
        let next = if more { keys.last().cloned() } else { None };
        let mut r = json_response(
            StatusCode::OK,
            &json!({"checkpoints": out, "next_cursor": next}),
        );
        if let Some(n) = &next
            && let Ok(v) = HeaderValue::from_str(n)
        {
            r.headers_mut().insert("x-layer-next-cursor", v);
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_tag_rules_and_round_trip_as_keys() {
        for ok in ["v1", "release/2026-12", "a:b=c+d", "x".repeat(128).as_str()] {
            assert!(label_ok(ok), "{ok}");
            assert_eq!(unseg(&seg(ok)), ok);
            assert!(!seg(ok).contains('/'));
        }
        for bad in ["", "has space", "é", "a,b", &"x".repeat(129)] {
            assert!(!label_ok(bad), "{bad}");
        }
    }
}
