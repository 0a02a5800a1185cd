//! Fetch by id: `GET /v2/namespaces/{ns}/documents/{id}` and the batch
//! `POST /v2/namespaces/{ns}/documents` `{ids, include_attributes?}`, cache first
//! ([`crate::sources::documents::lookup`]: the cache, then one origin read for the rest), with
//! `x-layer-cache: hit | miss | miss-on-error`. Cached rows are written from their stored text;
//! start at [`fetch_one`] and [`fetch_many`].
//! Fetches that carry a search's `traceparent` are reported to the [`Recorder`] (clickstream).

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use http::header::{HeaderName, HeaderValue};
use serde_json::Value;

use crate::core::ShardCtx;
use crate::core::config::Scope;
use crate::core::error::GatewayError;
use crate::core::http::{Resp, TRACEPARENT, decode_gzip, json_bytes};
use crate::core::record::{FetchRecord, Recorder, Served};
use crate::core::router::{Req, Route, handler};
use crate::sources::documents::{CachedRow, document, document_bytes, lookup, wire_id};
use http::Method;

/// The fetch feature: its routes report fetches to `recorder`.
pub struct Fetch {
    recorder: Arc<dyn Recorder>,
}

impl Fetch {
    pub fn new(recorder: Arc<dyn Recorder>) -> Arc<Fetch> {
        Arc::new(Fetch { recorder })
    }

    pub fn routes(self: &Arc<Self>) -> Vec<Route> {
        vec![
            Route::new(
                Method::GET,
                "/v2/namespaces/{ns}/documents/{id}",
                "fetch",
                Scope::Read,
                handler(self.clone(), Fetch::one),
            ),
            Route::new(
                Method::POST,
                "/v2/namespaces/{ns}/documents",
                "batch_fetch",
                Scope::Read,
                handler(self.clone(), Fetch::many),
            ),
        ]
    }

    async fn one(self: Arc<Self>, ctx: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let ns = req.ns();
        let id = req.decoded("id").into_owned();
        let include = req.query_params().get("include_attributes").map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect()
        });
        let (body, served) = fetch_one(&ctx, ns, &id, include).await?;
        self.recorder.record_fetch(FetchRecord {
            ns,
            headers: &req.parts.headers,
            ids: std::slice::from_ref(&id),
            served,
        });
        Ok(with_cache_header(json_bytes(StatusCode::OK, body), served))
    }

    async fn many(self: Arc<Self>, ctx: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let ns = req.ns();
        let limit = ctx.core.config.gateway.max_body_bytes;
        let raw = decode_gzip(&req.parts.headers, req.body.clone(), limit)?;
        let record = req.parts.headers.contains_key(TRACEPARENT);
        let (body, found, served) = fetch_many(&ctx, ns, &raw, record).await?;
        if record {
            self.recorder.record_fetch(FetchRecord {
                ns,
                headers: &req.parts.headers,
                ids: &found,
                served,
            });
        }
        Ok(with_cache_header(json_bytes(StatusCode::OK, body), served))
    }
}

/// `x-layer-cache` (a constant name: a string name is copied on every insert).
const X_LAYER_CACHE: HeaderName = HeaderName::from_static("x-layer-cache");

fn with_cache_header(mut r: Resp, served: Served) -> Resp {
    r.headers_mut()
        .insert(X_LAYER_CACHE, HeaderValue::from_static(served.header()));
    r
}

/// A cached row as a document's JSON text: written from the stored text ([`document_bytes`]) when
/// the row is kept valid, or through the value tree ([`document`]) for a row that path refuses
/// (an escape) or a tier value that failed validation. `None` for stored text that does not
/// parse: no document, as it has always been.
fn cached_document(id: &str, row: &CachedRow, include: Option<&[String]>) -> Option<Vec<u8>> {
    let spliced = match row {
        CachedRow::Kept(v) => document_bytes(id, v.as_slice(), include),
        CachedRow::Unchecked(_) => None,
    };
    spliced.or_else(|| {
        let row: Value = serde_json::from_slice(row.text()).ok()?;
        serde_json::to_vec(&document(id, &row, include)).ok()
    })
}

/// Documents for `ids` as JSON text, in request order ([`lookup`]: cached rows written by
/// [`cached_document`], origin rows through [`document`]), and how they were served.
async fn documents(
    ctx: &ShardCtx,
    ns: &str,
    ids: &[impl AsRef<str>],
    include: Option<&[String]>,
) -> Result<(Vec<Option<Vec<u8>>>, Served), GatewayError> {
    lookup(
        ctx,
        ns,
        ids,
        |id, row| cached_document(id, row, include),
        |id, row| serde_json::to_vec(&document(id, &row, include)).unwrap_or_default(),
    )
    .await
}

/// `GET /v2/namespaces/{ns}/documents/{id}`: the response body.
async fn fetch_one(
    ctx: &ShardCtx,
    ns: &str,
    id: &str,
    include: Option<Vec<String>>,
) -> Result<(Bytes, Served), GatewayError> {
    let (mut docs, served) = documents(ctx, ns, &[id], include.as_deref()).await?;
    match docs.pop().flatten() {
        Some(body) => Ok((Bytes::from(body), served)),
        None => Err(GatewayError::NotFoundDocs {
            message: format!("document {id:?} was not found in namespace {ns:?}"),
            missing: vec![serde_json::to_string(id).unwrap_or_default()],
        }),
    }
}

/// `POST /v2/namespaces/{ns}/documents` `{ids, include_attributes?}`: the response body
/// (`{documents, missing}`: documents in request order, absent ids in `missing`), the ids found
/// (listed only when `record`: the clickstream wants them), and how they were served. The
/// documents come from [`documents`], as a single fetch's does; the page joins their text.
async fn fetch_many(
    ctx: &ShardCtx,
    ns: &str,
    body: &[u8],
    record: bool,
) -> Result<(Bytes, Vec<String>, Served), GatewayError> {
    let req: Value = crate::core::http::json_body(body, &ctx.core.limits)?;
    let ids: Vec<String> = match req.get("ids") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                wire_id(v).ok_or_else(|| {
                    GatewayError::Validation("ids must be strings (or unsigned integers)".into())
                })
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(GatewayError::Validation(
                "ids must be an array of document ids".into(),
            ));
        }
    };
    if ids.len() > 10_000 {
        return Err(GatewayError::Validation(format!(
            "at most 10000 ids per batch fetch, got {}",
            ids.len()
        )));
    }
    let include: Option<Vec<String>> = match req.get("include_attributes") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
        ),
        Some(_) => {
            return Err(GatewayError::Validation(
                "include_attributes must be an array of attribute names".into(),
            ));
        }
    };
    let (docs, served) = documents(ctx, ns, &ids, include.as_deref()).await?;
    // One pass: documents joined into the page, absent ids into their own list.
    const HEAD: &[u8] = b"{\"documents\":[";
    let size: usize = docs.iter().flatten().map(|d| d.len() + 1).sum();
    let mut out = Vec::with_capacity(HEAD.len() + size + 16);
    out.extend_from_slice(HEAD);
    let (mut missing, mut found) = (Vec::new(), Vec::new());
    for (id, doc) in ids.iter().zip(&docs) {
        match doc {
            Some(doc) => {
                if out.len() > HEAD.len() {
                    out.push(b',');
                }
                out.extend_from_slice(doc);
                if record {
                    found.push(id.clone());
                }
            }
            None => {
                missing.push(if missing.is_empty() { b'[' } else { b',' });
                // Writing a string into a `Vec` cannot fail.
                let _ = serde_json::to_writer(&mut missing, id);
            }
        }
    }
    out.extend_from_slice(b"],\"missing\":");
    if missing.is_empty() {
        out.extend_from_slice(b"[]");
    } else {
        out.extend_from_slice(&missing);
        out.push(b']');
    }
    out.push(b'}');
    Ok((Bytes::from(out), found, served))
}
