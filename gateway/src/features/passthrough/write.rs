//! Writes (`POST /v2/namespaces/{ns}`) and namespace replacements (`DELETE /v2/namespaces/{ns}`,
//! async copies into it) as proxy hooks.
//!
//! A write goes through the shared write path ([`crate::sources::writes`]): validated whole and
//! stamped, its stamp in flight for the watcher, the ids it touches invalidated before it is
//! forwarded and again once upstream acknowledged it. Bodies upstream would reject by itself are
//! forwarded untouched so the caller gets upstream's own error. The [`PendingWrite`] lives in the
//! hook's `Ctx`, which the proxy engine drops on every path (an answer, an upstream error, a
//! refused body, a cancelled request), so the stamp never stays in flight.

use std::sync::Arc;

use http::header;

use crate::core::ShardCtx;
use crate::core::error::GatewayError;
use crate::core::http::decode_gzip;
use crate::core::proxy::{ProxyHooks, Session};
use crate::core::upstream::UpstreamResponse;
use crate::sources::documents::{Touched, invalidate};
use crate::sources::writes::PendingWrite;

/// `POST /v2/namespaces/{ns}`.
pub struct Write;

/// One write's state across the phases: its stamp in flight for the watcher and the ids it
/// touches, until upstream answered (dropped with the Ctx on every other path).
#[derive(Default)]
pub struct WriteCtx {
    pending: Option<PendingWrite>,
}

impl ProxyHooks for Write {
    type Ctx = WriteCtx;

    fn request_filter(
        &self,
        ctx: &Arc<ShardCtx>,
        s: &mut Session,
        c: &mut WriteCtx,
    ) -> Result<(), GatewayError> {
        let decoded = decode_gzip(&s.headers, s.body.clone(), ctx.core.limits.max_body_bytes)?;
        let (stamped, pending) = PendingWrite::begin(ctx, s.req.ns(), &decoded)?;
        // The stamped body is sent uncompressed; when nothing needed a stamp it is the decoded
        // body itself, not a copy. `None`: upstream rejects the body itself (bad JSON, a wrongly
        // shaped field), and its own error is what Turbopuffer clients expect.
        if let Some(body) = stamped {
            s.headers.remove(header::CONTENT_ENCODING);
            s.body = body;
        }
        c.pending = Some(pending);
        Ok(())
    }

    async fn response_filter(
        &self,
        ctx: &Arc<ShardCtx>,
        s: &Session,
        c: &mut WriteCtx,
        up: &mut UpstreamResponse,
    ) {
        if let Some(pending) = c.pending.take() {
            pending.answered(ctx, s.req.ns(), up.status.is_success());
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
        let principal = ctx
            .core
            .auth
            .admit(
                &HeaderMap::new(),
                None,
                crate::core::auth::Surface::Data,
                None,
            )
            .unwrap();
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
            crate::core::upstream::Upstreams::single(up.clone()),
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
            crate::core::upstream::Upstreams::single(upstream(&format!("http://{dead}"))),
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
}
