//! Metadata and schema as proxy hooks: the gateway's own `_hevlayer_*` attributes are hidden
//! from schemas, and a metadata body (`GET /v{1,2}/namespaces/{ns}/metadata`, and the PATCH
//! response) is upstream's verbatim with two keys spliced in front: `id` (the client model
//! requires it; upstream omits it) and `layer: {stable_as_of, is_stable, indexed,
//! index_lag_rows, …}` ([`crate::sources::layouts::layer_block`]): the watcher's cut,
//! `indexed` / `index_lag_rows` from the latest snapshot (null without one), and the layout init
//! set. Bodies are rewritten only when something changes, and only uncompressed
//! (the hooks ask upstream for an uncompressed answer).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header;
use serde_json::Value;

use crate::core::ShardCtx;
use crate::core::error::GatewayError;
use crate::core::http::decode_gzip;
use crate::core::metrics;
use crate::core::proxy::{ProxyHooks, Session};
use crate::core::upstream::UpstreamResponse;
use crate::sources::layouts::layer_block;
use crate::sources::snapshot_store::SnapshotStore;

/// The schema routes: `GET /v1/namespaces/{ns}/schema` (`update: false`) and
/// `POST /v1/namespaces/{ns}/schema` (`update: true`, where a bare schema map gets the same
/// reserved-attribute and validation rules as a write's `schema`). Both answers hide reserved
/// attributes.
pub struct Schema {
    pub update: bool,
}

impl ProxyHooks for Schema {
    type Ctx = ();

    fn request_filter(
        &self,
        ctx: &Arc<ShardCtx>,
        s: &mut Session,
        _: &mut (),
    ) -> Result<(), GatewayError> {
        if !self.update {
            return Ok(());
        }
        let limits = &ctx.core.limits;
        let decoded = decode_gzip(&s.headers, s.body.clone(), limits.max_body_bytes)?;
        match check_schema(&decoded, limits) {
            Ok(()) => Ok(()),
            // Upstream rejects such bodies itself, with the error its clients expect.
            Err(e) if e.upstream_would_reject() => Ok(()),
            Err(e) => {
                metrics::write_rejected("reserved_attribute");
                Err(e.into())
            }
        }
    }

    fn upstream_request_filter(&self, s: &mut Session, _: &mut ()) {
        s.headers.remove(header::ACCEPT_ENCODING);
    }

    async fn response_filter(
        &self,
        _: &Arc<ShardCtx>,
        _: &Session,
        _: &mut (),
        up: &mut UpstreamResponse,
    ) {
        strip_reserved_schema(up, false);
    }
}

/// A bare schema map (`POST /v1/namespaces/{ns}/schema`) checked as `{"schema": <body>}`.
fn check_schema(body: &[u8], limits: &scatter::Limits) -> Result<(), scatter::RewriteError> {
    let mut wrapped = Vec::with_capacity(body.len() + 12);
    wrapped.extend_from_slice(b"{\"schema\":");
    wrapped.extend_from_slice(body);
    wrapped.push(b'}');
    scatter::stamp_write(&wrapped, 0, limits)?;
    Ok(())
}

/// Metadata (GET and the PATCH answer): the `id` and `layer` keys spliced in.
pub struct Metadata {
    pub snapshots: Arc<SnapshotStore>,
}

impl ProxyHooks for Metadata {
    type Ctx = ();

    fn upstream_request_filter(&self, s: &mut Session, _: &mut ()) {
        s.headers.remove(header::ACCEPT_ENCODING);
    }

    async fn response_filter(
        &self,
        ctx: &Arc<ShardCtx>,
        s: &Session,
        _: &mut (),
        up: &mut UpstreamResponse,
    ) {
        let ns = s.req.ns();
        // `indexed` / `index_lag_rows` are reconciled from the latest snapshot; without one (or
        // with the object store down) they stay null. Metadata never waits long on the store.
        let rows = if up.status.is_success() {
            tokio::time::timeout(Duration::from_millis(250), self.snapshots.latest(ns))
                .await
                .ok()
                .and_then(Result::ok)
                .flatten()
                .map(|b| b.row_count)
        } else {
            None
        };
        let watch = ctx.core.watcher.snapshot(ns);
        enrich_metadata(up, ns, |body| {
            layer_block(&ctx.core, ns, watch, Some(body), rows)
        });
    }
}

/// Removes the gateway's own `_hevlayer_*` attributes from a schema map (the top level of a
/// schema response, or the `schema` member of a metadata body when `nested`). The body is only
/// re-serialised when something was removed.
pub fn strip_reserved_schema(up: &mut UpstreamResponse, nested: bool) {
    if !up.status.is_success() || up.headers.contains_key(http::header::CONTENT_ENCODING) {
        return;
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(&up.body) else {
        return;
    };
    let map = if nested {
        v.get_mut("schema").and_then(Value::as_object_mut)
    } else {
        v.as_object_mut()
    };
    let Some(map) = map else { return };
    let before = map.len();
    map.retain(|k, _| !k.starts_with(scatter::RESERVED_PREFIX));
    if map.len() != before
        && let Ok(b) = serde_json::to_vec(&v)
    {
        up.body = Bytes::from(b);
    }
}

/// Splices `id` (when absent) and the `layer` block (`layer`, built by
/// [`crate::sources::layouts::layer_block`]) into a successful metadata body (after hiding the
/// gateway's own attributes from its schema).
pub fn enrich_metadata(up: &mut UpstreamResponse, ns: &str, layer: impl FnOnce(&[u8]) -> Value) {
    if !up.status.is_success() || up.headers.contains_key(http::header::CONTENT_ENCODING) {
        return;
    }
    strip_reserved_schema(up, true);
    let body = &up.body;
    let Some(open) = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .filter(|&i| body[i] == b'{')
    else {
        return;
    };
    if scatter::validate(body, &scatter::Limits::default()).is_err() {
        return;
    }
    let has_id = sonic_rs::get_from_slice(body, &["id"]).is_ok();
    let layer = layer(body);
    let mut out = Vec::with_capacity(body.len() + 160);
    out.extend_from_slice(&body[..=open]);
    if !has_id {
        out.extend_from_slice(b"\"id\":");
        out.extend_from_slice(&serde_json::to_vec(ns).unwrap_or_default());
        out.push(b',');
    }
    out.extend_from_slice(b"\"layer\":");
    out.extend_from_slice(&serde_json::to_vec(&layer).unwrap_or_default());
    let rest = &body[open + 1..];
    if rest.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'}') {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    up.body = Bytes::from(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::watcher::Status;
    use http::{HeaderMap, StatusCode};
    use serde_json::json;

    fn up(body: &str) -> UpstreamResponse {
        UpstreamResponse {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn metadata_gets_id_and_layer_and_keeps_the_rest() {
        let mut r = up(r#"{"schema":{},"approx_row_count":3,"index":{"status":"up-to-date"}}"#);
        let core = crate::core::test_core();
        let block = |ns: &'static str, watch| {
            let core = core.clone();
            move |body: &[u8]| layer_block(&core, ns, watch, Some(body), None)
        };
        enrich_metadata(&mut r, "ns1", block("ns1", (Status::Stable, Some(7))));
        let s = std::str::from_utf8(&r.body).unwrap();
        assert!(
            s.ends_with(r#""schema":{},"approx_row_count":3,"index":{"status":"up-to-date"}}"#),
            "{s}"
        );
        let v: Value = serde_json::from_str(s).unwrap();
        assert_eq!(v["id"], "ns1");
        assert_eq!(
            v["layer"],
            json!({"stable_as_of": 7, "is_stable": true, "indexed": null, "index_lag_rows": null})
        );
        let mut r = up("{}");
        enrich_metadata(&mut r, "x", block("x", (Status::Unknown, None)));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (
                v["layer"]["stable_as_of"].clone(),
                v["layer"]["is_stable"].clone()
            ),
            (Value::Null, json!(false))
        );
        let mut r = up(r#"{"id":"keep"}"#);
        enrich_metadata(&mut r, "x", block("x", (Status::Unknown, None)));
        assert_eq!(
            serde_json::from_slice::<Value>(&r.body).unwrap()["id"],
            "keep"
        );
    }

    #[test]
    fn schema_maps_with_reserved_attributes_are_rejected() {
        let limits = scatter::Limits::default();
        assert!(check_schema(br#"{"title": {"type": "string"}}"#, &limits).is_ok());
        assert!(check_schema(br#"{"_hevlayer_upserted_at": "int"}"#, &limits).is_err());
        assert!(check_schema(br#"{"a": 1, "a": 2}"#, &limits).is_err());
    }
}
