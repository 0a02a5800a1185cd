//! The gateway's write path, shared by every route that writes to upstream: the callers' own
//! writes (the passthrough feature's `Write` hook) and the writes Layer makes for them (pipeline
//! vectors). Start at [`PendingWrite::begin`], or [`write`] for a whole exchange.
//!
//! A write is validated whole and stamped before it is forwarded: `_hevlayer_*` attributes are
//! refused (422), `_hevlayer_upserted_at` is spliced into every upserted or patched row (and
//! `_hevlayer_shard` on sharded namespaces). The stamp comes from the consistency watcher, which
//! holds it as in flight while the [`PendingWrite`] lives and records it as acknowledged when
//! [`PendingWrite::answered`] reports a 2xx: the namespace is not reported stable before its
//! watermark covers the write (`core::watcher`). The document cache never serves what a write
//! changed: the touched ids (or the whole namespace) are invalidated before forwarding and again
//! once upstream acknowledged (a fetch racing the write may have backfilled the old row); then,
//! when turned on (`gateway.cache.populateMaxIds`, off by default), the write-path mirror reads
//! the upserted rows back into the cache.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, header};

use crate::core::ShardCtx;
use crate::core::error::GatewayError;
use crate::core::metrics;
use crate::core::upstream::UpstreamResponse;
use crate::core::watcher::InFlight;
use crate::sources::documents::{Touched, invalidate, populate, raw_id};

/// A write between its stamp and upstream's answer. Dropping it without [`PendingWrite::answered`]
/// (an upstream error, a cancelled request) takes the stamp out of flight, unacknowledged.
pub struct PendingWrite {
    /// What the write touches, invalidated before and after.
    touched: Touched,
    /// The write's stamp, in flight for the watcher until this is dropped.
    in_flight: InFlight,
}

impl PendingWrite {
    /// Validates and stamps `body` (already decompressed) for namespace `ns`, marks the stamp in
    /// flight and invalidates what the write touches. Returns the body to send: `Some(stamped)`,
    /// or `None` when upstream would reject the body itself (bad JSON, a wrongly shaped field):
    /// then the caller forwards it unchanged so the client gets upstream's own error. Reserved
    /// attributes and bodies past the limits are refused here.
    pub fn begin(
        ctx: &ShardCtx,
        ns: &str,
        body: &Bytes,
    ) -> Result<(Option<Bytes>, PendingWrite), GatewayError> {
        Self::begin_with(ctx, ns, Source::Caller(body), &[])
    }

    /// [`PendingWrite::begin`] for a caller's body or one the gateway built.
    fn begin_with(
        ctx: &ShardCtx,
        ns: &str,
        source: Source<'_>,
        own_reserved: &[&str],
    ) -> Result<(Option<Bytes>, PendingWrite), GatewayError> {
        let core = &ctx.core;
        // Sharded namespaces also get `_hevlayer_shard = xxh64(id) % shards` on every row.
        let shards = core.shards_of(ns);
        let shard_fn = move |id: &scatter::IdRef<'_>| scatter::shard_of_ref(id, shards);
        let in_flight = core.watcher.begin_write(ns);
        let stamp = in_flight.stamp();
        let mut opts = scatter::StampOptions::new(stamp);
        opts.own_reserved = own_reserved;
        if shards > 1 {
            opts.shard = Some(&shard_fn);
        }
        // The stamper reads the ids on its walk; only a body forwarded unstamped (upstream will
        // refuse it) is read again for them.
        // The ids to read back are collected only when the mirror is on.
        let mirror = core.config.gateway.cache.populate_max_ids > 0;
        let (body, stamping) = match source {
            Source::Caller(body) => (
                body,
                scatter::stamp_write_touched(body, &opts, &core.limits),
            ),
            Source::Built(valid) => (
                valid.get_ref(),
                scatter::stamp_validated_touched(valid, &opts, &core.limits),
            ),
        };
        let (stamped, touched) = match stamping {
            Ok((stamped, ids)) => (Some(stamped), from_ids(&ids, mirror)),
            Err(e) if e.upstream_would_reject() => (None, touched(body, mirror)),
            Err(e) => {
                metrics::write_rejected(e.error_code());
                return Err(e.into());
            }
        };
        core.watcher.note_write(ns, stamp);
        invalidate(ctx, ns, &touched);
        Ok((stamped, PendingWrite { touched, in_flight }))
    }

    /// Upstream answered: the stamp leaves the in-flight set, recorded as acknowledged first when
    /// `success` (dropped unacknowledged otherwise); then the touched ids are invalidated again and, when the mirror is on, read
    /// back into the cache (in the background).
    pub fn answered(self, ctx: &Arc<ShardCtx>, ns: &str, success: bool) {
        let PendingWrite {
            mut touched,
            in_flight,
        } = self;
        if !success {
            return;
        }
        // Acknowledged first, then out of flight (the guard drops here): between the two the
        // stamp must be in one of the sets, or the watcher could report the namespace stable
        // with a watermark that does not cover this write.
        ctx.core.watcher.note_ack(ns, in_flight.stamp());
        drop(in_flight);
        invalidate(ctx, ns, &touched);
        let max_ids = ctx.core.config.gateway.cache.populate_max_ids;
        if !touched.populate.is_empty() && max_ids > 0 {
            let (ctx, ns, ids) = (
                ctx.clone(),
                ns.to_string(),
                std::mem::take(&mut touched.populate),
            );
            tokio::spawn(async move { populate(&ctx, &ns, &ids, max_ids).await });
        }
    }
}

/// One write Layer makes on a caller's behalf (`POST /v2/namespaces/{ns}` with `body`, a JSON
/// write the gateway built): stamped, in flight, invalidated and acknowledged like a caller's
/// write through the passthrough route. Upstream's answer is returned whatever its status;
/// network failures are 502/504 errors. `route` labels the upstream metrics. The body is a
/// [`scatter::Validated`] the gateway built ([`scatter::Validated::serialized`] where it is
/// made), so the stamper walks only its top level; a caller's bytes go through
/// [`PendingWrite::begin`], which validates them whole.
pub async fn write(
    ctx: &Arc<ShardCtx>,
    route: &'static str,
    ns: &str,
    body: scatter::Validated<Bytes>,
) -> Result<UpstreamResponse, GatewayError> {
    write_own(ctx, route, ns, body, &[]).await
}

/// [`write`] for a body that also sets some of the gateway's own reserved attributes (a UDF
/// completion's marker), named in `own_reserved`; any other reserved attribute is still refused.
pub async fn write_own(
    ctx: &Arc<ShardCtx>,
    route: &'static str,
    ns: &str,
    body: scatter::Validated<Bytes>,
    own_reserved: &[&str],
) -> Result<UpstreamResponse, GatewayError> {
    let (stamped, pending) = PendingWrite::begin_with(ctx, ns, Source::Built(&body), own_reserved)?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let up = ctx
        .upstream(ns)
        .send(
            route,
            Method::POST,
            &format!("/v2/namespaces/{ns}"),
            &headers,
            stamped.unwrap_or_else(|| body.into_inner()),
        )
        .await?;
    pending.answered(ctx, ns, up.status.is_success());
    Ok(up)
}

/// Where a write body comes from: a caller (validated whole by the stamper) or the gateway.
#[derive(Clone, Copy)]
enum Source<'a> {
    Caller(&'a Bytes),
    Built(&'a scatter::Validated<Bytes>),
}

/// The ids the stamper read, decoded as the cache keys them; with `mirror`, also the ids to
/// read back (a row deleted in the same request is not read back).
fn from_ids(ids: &scatter::TouchedIds<'_>, mirror: bool) -> Touched {
    let mut all: Vec<String> = Vec::with_capacity(ids.written.len() + ids.deleted.len());
    all.extend(ids.written.iter().filter_map(|raw| raw_id(raw)));
    let written = all.len();
    all.extend(ids.deleted.iter().filter_map(|raw| raw_id(raw)));
    let mut populate = Vec::new();
    if mirror {
        let gone: std::collections::HashSet<&String> = all[written..].iter().collect();
        populate = all[..written]
            .iter()
            .filter(|id| !gone.contains(id))
            .cloned()
            .collect();
    }
    Touched {
        ids: all.into(),
        populate,
        whole_namespace: ids.whole_namespace,
    }
}

/// Reads the ids a (validated) write body touches, lazily: only the id fields are decoded, so a
/// large write is not turned into a JSON tree a second time. An unreadable body counts as touching
/// the whole namespace.
fn touched(body: &[u8], mirror: bool) -> Touched {
    let whole = Touched {
        ids: Arc::from([]),
        populate: Vec::new(),
        whole_namespace: true,
    };
    let mut ids: Vec<String> = Vec::new();
    let mut populate: Vec<String> = Vec::new();
    let mut whole_namespace = false;
    let mut deleted: Vec<String> = Vec::new();
    // Keys lent from the body (sonic-rs's lazy iterator would copy each).
    let Ok(fields) = scatter::validate::members(body) else {
        return whole;
    };
    for (key, value) in fields {
        let raw = value.as_raw_str();
        match key.as_ref() {
            "upsert_rows" | "patch_rows" => {
                for row in sonic_rs::to_array_iter(raw) {
                    let Ok(row) = row else { return whole };
                    if let Ok(id) = sonic_rs::get(row.as_raw_str(), ["id"])
                        && let Some(id) = raw_id(id.as_raw_str())
                    {
                        populate.push(id.clone());
                        ids.push(id);
                    }
                }
            }
            "upsert_columns" | "patch_columns" => {
                if let Ok(column) = sonic_rs::get(raw, ["id"]) {
                    for id in sonic_rs::to_array_iter(column.as_raw_str()) {
                        let Ok(id) = id else { return whole };
                        if let Some(id) = raw_id(id.as_raw_str()) {
                            populate.push(id.clone());
                            ids.push(id);
                        }
                    }
                }
            }
            "deletes" => {
                for id in sonic_rs::to_array_iter(raw) {
                    let Ok(id) = id else { return whole };
                    if let Some(id) = raw_id(id.as_raw_str()) {
                        deleted.push(id.clone());
                        ids.push(id);
                    }
                }
            }
            "delete_by_filter"
            | "patch_by_filter"
            | "copy_from_namespace"
            | "branch_from_namespace" => {
                whole_namespace |= raw.trim() != "null";
            }
            _ => {}
        }
    }
    // A row deleted in the same request is not read back.
    if !mirror {
        populate.clear();
    } else if !deleted.is_empty() {
        let deleted: std::collections::HashSet<String> = deleted.into_iter().collect();
        populate.retain(|id| !deleted.contains(id));
    }
    Touched {
        ids: ids.into(),
        populate,
        whole_namespace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stamper's ids agree with the separate read for every write form (the order of `ids`
    /// aside: the separate read lists them in body order, the stamper's deletes last).
    #[test]
    fn stamper_ids_match_the_separate_read() {
        let limits = scatter::Limits {
            max_body_bytes: 1 << 20,
            max_depth: 64,
        };
        for body in [
            r#"{"upsert_rows":[{"id":1},{"id":"a"}],"patch_columns":{"id":[2],"x":[1]},"deletes":[3]}"#,
            r#"{"deletes":[2],"upsert_rows":[{"id":1},{"id":2}]}"#,
            r#"{"deletes":["a\u0062"],"delete_by_filter":null}"#,
            r#"{"delete_by_filter":["a","Eq",1]}"#,
            r#"{"patch_by_filter":{"filters":["a","Eq",1],"patch":{"b":2}}}"#,
            r#"{"upsert_rows":[{"x":1},{"id":"u-\"q\""}],"copy_from_namespace":"other"}"#,
            r#"{"upsert_columns":{"id":[1,"two",3],"v":[[1],[2],[3]]},"schema":{"v":"[1]f32"}}"#,
        ] {
            let bytes = Bytes::from(body);
            let (_, ids) =
                scatter::stamp_write_touched(&bytes, &scatter::StampOptions::new(7), &limits)
                    .unwrap_or_else(|e| panic!("{body}: {e}"));
            for mirror in [true, false] {
                let mut a = from_ids(&ids, mirror);
                let mut b = touched(body.as_bytes(), mirror);
                let (mut x, mut y) = (a.ids.to_vec(), b.ids.to_vec());
                x.sort();
                y.sort();
                (a.ids, b.ids) = (x.into(), y.into());
                assert_eq!(a, b, "{body}");
                if !mirror {
                    assert!(a.populate.is_empty(), "{body}");
                }
            }
        }
    }

    /// The id decoder reads ids as a JSON value would (`wire_id`), without building one.
    #[test]
    fn raw_ids_decode_as_json_values_do() {
        for raw in [
            "7",
            "0",
            "18446744073709551615",
            "18446744073709551616",
            "-1",
            "1.0",
            "1e3",
            r#""a""#,
            r#""a\u0062\n""#,
            r#""""#,
            " 12 ",
            "null",
            "true",
            "[1]",
            r#"{"id":1}"#,
        ] {
            let by_value = serde_json::from_str::<serde_json::Value>(raw.trim())
                .ok()
                .as_ref()
                .and_then(crate::sources::documents::wire_id);
            assert_eq!(raw_id(raw), by_value, "{raw}");
        }
    }

    #[test]
    fn touched_ids_cover_every_write_form() {
        let body =
            br#"{"upsert_rows":[{"id":1},{"id":"a"}],"patch_columns":{"id":[2]},"deletes":[3]}"#;
        let t = touched(body, true);
        assert_eq!(*t.ids, ["1", "a", "2", "3"]);
        assert_eq!(t.populate, vec!["1", "a", "2"]);
        assert!(!t.whole_namespace);
        // Mirror off: the same ids are invalidated, none is kept for a read-back.
        let off = touched(body, false);
        assert_eq!((&*off.ids, off.populate.len()), (&*t.ids, 0));
        let both = touched(
            br#"{"upsert_rows":[{"id":1},{"id":2}],"deletes":[2]}"#,
            true,
        );
        assert_eq!(both.populate, vec!["1"]);
        assert_eq!(
            touched(br#"{"deletes":["a\u0062"],"delete_by_filter":null}"#, true),
            Touched {
                ids: Arc::from(["ab".to_string()]),
                populate: vec![],
                whole_namespace: false
            }
        );
        assert!(touched(b"{not json", true).whole_namespace);
        assert!(touched(br#"{"delete_by_filter":["a","Eq",1]}"#, true).whole_namespace);
    }
}
