//! Writes (`POST /v2/namespaces/{ns}`) and namespace replacements (`DELETE /v2/namespaces/{ns}`,
//! async copies into it) as proxy hooks.
//!
//! A write is validated whole and stamped before it is forwarded: `_hevlayer_*` attributes are
//! refused (422), `_hevlayer_upserted_at` is spliced into every upserted or patched row (and
//! `_hevlayer_shard` on sharded namespaces), bodies upstream would reject by itself are forwarded
//! untouched so the caller gets upstream's own error. The stamp comes from the consistency
//! watcher, which holds it as in flight until the request ends (the guard lives in the hook's
//! `Ctx`, which the proxy engine drops on every path: an answer, an upstream error, a refused
//! body, a cancelled request) and records it as acknowledged when upstream answers 2xx: the
//! namespace is not reported stable before its watermark covers the write (`core::watcher`). The
//! document cache never serves what a write changed: the touched ids (or the whole namespace)
//! are invalidated before forwarding and again once upstream acknowledged (a fetch racing the
//! write may have backfilled the old row); then, when turned on (`gateway.cache.populateMaxIds`,
//! off by default), the write-path mirror reads the upserted rows back into the cache.

use std::sync::Arc;

use http::header;

use crate::core::ShardCtx;
use crate::core::error::GatewayError;
use crate::core::http::decode_gzip;
use crate::core::metrics;
use crate::core::proxy::{ProxyHooks, Session};
use crate::core::upstream::UpstreamResponse;
use crate::core::watcher::InFlight;
use crate::sources::documents::{Touched, invalidate, populate, raw_id};

/// `POST /v2/namespaces/{ns}`.
pub struct Write;

/// One write's state across the phases.
#[derive(Default)]
pub struct WriteCtx {
    /// What the write touches, invalidated before and after.
    touched: Touched,
    /// The write's stamp, in flight for the watcher until this is dropped (with the Ctx at the
    /// latest, on every path).
    in_flight: Option<InFlight>,
}

impl ProxyHooks for Write {
    type Ctx = WriteCtx;

    fn request_filter(
        &self,
        ctx: &Arc<ShardCtx>,
        s: &mut Session,
        c: &mut WriteCtx,
    ) -> Result<(), GatewayError> {
        let core = &ctx.core;
        let ns = s.req.ns();
        let decoded = decode_gzip(&s.headers, s.body.clone(), core.limits.max_body_bytes)?;
        // Sharded namespaces also get `_hevlayer_shard = xxh64(id) % shards` on every row.
        let shards = core.shards_of(ns);
        let shard_fn = move |id: &scatter::IdRef<'_>| scatter::shard_of_ref(id, shards);
        let write = c.in_flight.insert(core.watcher.begin_write(ns));
        let stamp = write.stamp();
        let mut opts = scatter::StampOptions::new(stamp);
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
        core.watcher.note_write(ns, stamp);
        c.touched = touched(&s.body);
        invalidate(ctx, ns, &c.touched);
        Ok(())
    }

    async fn response_filter(
        &self,
        ctx: &Arc<ShardCtx>,
        s: &Session,
        c: &mut WriteCtx,
        up: &mut UpstreamResponse,
    ) {
        // Answered: the write leaves the in-flight set, recorded as acknowledged first on a 2xx.
        let write = c.in_flight.take();
        if !up.status.is_success() {
            return;
        }
        let ns = s.req.ns();
        if let Some(w) = write {
            ctx.core.watcher.note_ack(ns, w.stamp());
        }
        let t = &mut c.touched;
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
    use std::time::Duration;

    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue, Method};

    use super::*;
    use crate::core::config::Scope;
    use crate::core::proxy::{route, serve};
    use crate::core::router::{Req, Route, Router};
    use crate::core::upstream::Upstream;
    use crate::core::{ShardCtx, test_core};

    fn upstream(url: &str) -> Upstream {
        let t = Duration::from_secs(5);
        Upstream::new(url, Some("test-key"), t, t).unwrap()
    }

    /// A write request to `ns` as the router admits it.
    fn write_req(ctx: &ShardCtx, ns: &str) -> Req {
        let path = format!("/v2/namespaces/{ns}");
        let router = Router::new(vec![Route::new(
            Method::POST,
            "/v2/namespaces/{ns}",
            "write",
            Scope::Write,
            route(Arc::new(Write)),
        )])
        .unwrap();
        let (_, params) = router.find(&Method::POST, &path).unwrap();
        let (parts, ()) = http::Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(())
            .unwrap()
            .into_parts();
        let principal = ctx.core.auth.admit(&HeaderMap::new(), None, None).unwrap();
        let body = Bytes::from_static(br#"{"upsert_rows":[{"id":1}]}"#);
        Req::new(parts, body, principal, "write", params)
    }

    async fn fault(up: &Upstream, rule: serde_json::Value) {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let body = serde_json::json!({ "rules": [rule] }).to_string();
        let r = up
            .send("faults", Method::POST, "/_emu/faults", &h, body.into())
            .await
            .unwrap();
        assert!(r.status.is_success());
    }

    /// A write's stamp is in the watcher's in-flight set exactly while its request runs, and is
    /// recorded as acknowledged only on a 2xx, however the request ends: answered, refused by
    /// upstream, failed before any answer (the response filter never runs), or cancelled.
    #[tokio::test]
    async fn a_write_is_in_flight_until_it_ends_and_acked_only_on_success() {
        let emu = turbopuffer_emulator::start(turbopuffer_emulator::Config {
            api_keys: vec!["test-key".into()],
            ..Default::default()
        })
        .await
        .unwrap();
        let up = upstream(&format!("http://{}", emu.addr));
        let ctx = Arc::new(ShardCtx::new(
            test_core(),
            up.clone(),
            Arc::new(Router::new(vec![]).unwrap()),
        ));
        let watcher = ctx.core.watcher.clone();
        let serve_write =
            |ctx: &Arc<ShardCtx>, ns: &str| serve(Arc::new(Write), ctx.clone(), write_req(ctx, ns));

        // Acknowledged: out of flight, acked at its stamp.
        let before = crate::core::http::now_ms();
        let r = serve_write(&ctx, "w").await.unwrap();
        assert_eq!(r.status(), 200);
        let (in_flight, acked) = watcher.own_writes("w").unwrap();
        assert!(in_flight.is_empty());
        assert!(acked >= before && acked <= crate::core::http::now_ms());

        // Refused by upstream: out of flight, not acknowledged.
        fault(
            &up,
            serde_json::json!({"route": "write", "status": 500, "count": 1}),
        )
        .await;
        let r = serve_write(&ctx, "w").await.unwrap();
        assert_eq!(r.status(), 500);
        assert_eq!(watcher.own_writes("w").unwrap(), (vec![], acked));

        // No answer at all (nothing listens upstream): the response filter never runs.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let unreachable = Arc::new(ShardCtx::new(
            ctx.core.clone(),
            upstream(&format!("http://{dead}")),
            ctx.router.clone(),
        ));
        assert!(serve_write(&unreachable, "w").await.is_err());
        assert_eq!(watcher.own_writes("w").unwrap(), (vec![], acked));

        // Cancelled while upstream holds it: in flight until the request is dropped.
        fault(
            &up,
            serde_json::json!({"route": "write", "delay_ms": 10_000, "count": 1}),
        )
        .await;
        let mut pending = Box::pin(serve_write(&ctx, "w"));
        let mut seen = false;
        for _ in 0..200 {
            tokio::select! {
                biased;
                _ = &mut pending => panic!("answered despite the delay"),
                () = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
            if watcher.own_writes("w").unwrap().0.len() == 1 {
                seen = true;
                break;
            }
        }
        assert!(seen, "the write is in flight while upstream holds it");
        drop(pending);
        assert_eq!(watcher.own_writes("w").unwrap(), (vec![], acked));
    }

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
