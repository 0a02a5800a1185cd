//! Writes (`POST /v2/namespaces/{ns}`) and namespace replacements (`DELETE /v2/namespaces/{ns}`,
//! async copies into it) as proxy hooks.
//!
//! A write is validated whole and stamped before it is forwarded: `_hevlayer_*` attributes are
//! refused (422), `_hevlayer_upserted_at` is spliced into every upserted or patched row (and
//! `_hevlayer_shard` on sharded namespaces), bodies upstream would reject by itself are forwarded
//! untouched so the caller gets upstream's own error. The watcher learns of the write, and the
//! document cache never serves what a write changed: the touched ids (or the whole namespace)
//! are invalidated before forwarding and again once upstream acknowledged (a fetch racing the
//! write may have backfilled the old row); then the write-path mirror reads the upserted rows
//! back into the cache (`gateway.cache.populateMaxIds`).

use std::sync::Arc;

use http::header;

use crate::core::ShardCtx;
use crate::core::error::GatewayError;
use crate::core::http::{decode_gzip, now_ms};
use crate::core::metrics;
use crate::core::proxy::{ProxyHooks, Session};
use crate::core::upstream::UpstreamResponse;
use crate::sources::documents::{Touched, invalidate, populate, raw_id};

/// `POST /v2/namespaces/{ns}`.
pub struct Write;

impl ProxyHooks for Write {
    /// What the write touches, invalidated before and after.
    type Ctx = Touched;

    fn request_filter(
        &self,
        ctx: &Arc<ShardCtx>,
        s: &mut Session,
        touched_out: &mut Touched,
    ) -> Result<(), GatewayError> {
        let core = &ctx.core;
        let ns = s.req.ns();
        let decoded = decode_gzip(&s.headers, s.body.clone(), core.limits.max_body_bytes)?;
        // Sharded namespaces also get `_hevlayer_shard = xxh64(id) % shards` on every row.
        let shards = core.shards_of(ns);
        let shard_fn = move |id: &scatter::IdRef<'_>| scatter::shard_of_ref(id, shards);
        let mut opts = scatter::StampOptions::new(now_ms());
        if shards > 1 {
            opts.shard = Some(&shard_fn);
        }
        match scatter::stamp_write_bytes(&decoded, &opts, &core.limits) {
            Ok(stamped) => {
                // The (possibly stamped) body is sent uncompressed; when nothing needed a stamp
                // it is the decoded body itself, not a copy.
                s.headers.remove(header::CONTENT_ENCODING);
                s.body = stamped;
            }
            // Bad JSON or a wrongly shaped field: upstream rejects it itself, and its own error is
            // what Turbopuffer clients expect. Nothing is written either way.
            Err(e) if e.upstream_would_reject() => {}
            Err(e) => {
                metrics::write_rejected(e.error_code());
                return Err(e.into());
            }
        }
        core.watcher.note_write(ns);
        *touched_out = touched(&s.body);
        invalidate(ctx, ns, touched_out);
        Ok(())
    }

    async fn response_filter(
        &self,
        ctx: &Arc<ShardCtx>,
        s: &Session,
        t: &mut Touched,
        up: &mut UpstreamResponse,
    ) {
        if !up.status.is_success() {
            return;
        }
        let ns = s.req.ns();
        invalidate(ctx, ns, t);
        let max_ids = ctx.core.config.gateway.cache.populate_max_ids;
        if !t.populate.is_empty() && max_ids > 0 {
            let (ctx, ns, ids) = (ctx.clone(), ns.to_string(), std::mem::take(&mut t.populate));
            tokio::spawn(async move { populate(&ctx, &ns, &ids, max_ids).await });
        }
    }
}

/// `DELETE /v2/namespaces/{ns}` and async copies into it: the namespace's cached documents are
/// invalidated wholesale, before and after.
pub struct Replace;

impl ProxyHooks for Replace {
    type Ctx = ();

    fn request_filter(
        &self,
        ctx: &Arc<ShardCtx>,
        s: &mut Session,
        _: &mut (),
    ) -> Result<(), GatewayError> {
        invalidate(ctx, s.req.ns(), &whole_namespace());
        Ok(())
    }

    async fn response_filter(
        &self,
        ctx: &Arc<ShardCtx>,
        s: &Session,
        _: &mut (),
        up: &mut UpstreamResponse,
    ) {
        if up.status.is_success() {
            invalidate(ctx, s.req.ns(), &whole_namespace());
        }
    }
}

fn whole_namespace() -> Touched {
    Touched {
        whole_namespace: true,
        ..Touched::default()
    }
}

/// Reads the ids a (validated) write body touches, lazily: only the id fields are decoded, so a
/// large write is not turned into a JSON tree a second time. An unreadable body counts as touching
/// the whole namespace.
fn touched(body: &[u8]) -> Touched {
    let whole = Touched {
        ids: Vec::new(),
        populate: Vec::new(),
        whole_namespace: true,
    };
    let mut t = Touched::default();
    let mut deleted: Vec<String> = Vec::new();
    for field in sonic_rs::to_object_iter(body) {
        let Ok((key, value)) = field else {
            return whole;
        };
        let raw = value.as_raw_str();
        match key.as_ref() {
            "upsert_rows" | "patch_rows" => {
                for row in sonic_rs::to_array_iter(raw) {
                    let Ok(row) = row else { return whole };
                    if let Ok(id) = sonic_rs::get(row.as_raw_str(), ["id"])
                        && let Some(id) = raw_id(id.as_raw_str())
                    {
                        t.populate.push(id.clone());
                        t.ids.push(id);
                    }
                }
            }
            "upsert_columns" | "patch_columns" => {
                if let Ok(ids) = sonic_rs::get(raw, ["id"]) {
                    for id in sonic_rs::to_array_iter(ids.as_raw_str()) {
                        let Ok(id) = id else { return whole };
                        if let Some(id) = raw_id(id.as_raw_str()) {
                            t.populate.push(id.clone());
                            t.ids.push(id);
                        }
                    }
                }
            }
            "deletes" => {
                for id in sonic_rs::to_array_iter(raw) {
                    let Ok(id) = id else { return whole };
                    if let Some(id) = raw_id(id.as_raw_str()) {
                        deleted.push(id.clone());
                        t.ids.push(id);
                    }
                }
            }
            "delete_by_filter"
            | "patch_by_filter"
            | "copy_from_namespace"
            | "branch_from_namespace" => {
                t.whole_namespace |= raw.trim() != "null";
            }
            _ => {}
        }
    }
    // A row deleted in the same request is not read back.
    if !deleted.is_empty() {
        let deleted: std::collections::HashSet<String> = deleted.into_iter().collect();
        t.populate.retain(|id| !deleted.contains(id));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touched_ids_cover_every_write_form() {
        let t = touched(
            br#"{"upsert_rows":[{"id":1},{"id":"a"}],"patch_columns":{"id":[2]},"deletes":[3]}"#,
        );
        assert_eq!(t.ids, vec!["1", "a", "2", "3"]);
        assert_eq!(t.populate, vec!["1", "a", "2"]);
        assert!(!t.whole_namespace);
        let both = touched(br#"{"upsert_rows":[{"id":1},{"id":2}],"deletes":[2]}"#);
        assert_eq!(both.populate, vec!["1"]);
        assert_eq!(
            touched(br#"{"deletes":["a\u0062"],"delete_by_filter":null}"#),
            Touched {
                ids: vec!["ab".into()],
                populate: vec![],
                whole_namespace: false
            }
        );
        assert!(touched(b"{not json").whole_namespace);
        assert!(touched(br#"{"delete_by_filter":["a","Eq",1]}"#).whole_namespace);
    }
}
