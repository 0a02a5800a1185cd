//! Fetch by id: `GET /v2/namespaces/{ns}/documents/{id}` and the batch
//! `POST /v2/namespaces/{ns}/documents` `{ids, include_attributes?}`, cache first
//! ([`crate::sources::documents::rows`]), with `x-layer-cache: hit | miss | miss-on-error`.
//! Fetches that carry a search's `traceparent` are reported to the [`Recorder`] (clickstream).

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use http::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::core::ShardCtx;
use crate::core::config::Scope;
use crate::core::error::GatewayError;
use crate::core::http::{Resp, TRACEPARENT, decode_gzip, json_bytes, json_response};
use crate::core::record::{FetchRecord, Recorder, Served};
use crate::core::router::{Req, Route, handler};
use crate::sources::documents::{cached_row, document, document_bytes, from_origin, rows, wire_id};
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
        let (page, served) = fetch_many(&ctx, ns, &raw).await?;
        if req.parts.headers.contains_key(TRACEPARENT) {
            let ids: Vec<String> = page
                .get("documents")
                .and_then(Value::as_array)
                .map(|docs| {
                    docs.iter()
                        .filter_map(|d| d.get("id").and_then(Value::as_str).map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            self.recorder.record_fetch(FetchRecord {
                ns,
                headers: &req.parts.headers,
                ids: &ids,
                served,
            });
        }
        Ok(with_cache_header(
            json_response(StatusCode::OK, &page),
            served,
        ))
    }
}

/// `x-layer-cache` (a constant name: a string name is copied on every insert).
const X_LAYER_CACHE: HeaderName = HeaderName::from_static("x-layer-cache");

fn with_cache_header(mut r: Resp, served: Served) -> Resp {
    r.headers_mut()
        .insert(X_LAYER_CACHE, HeaderValue::from_static(served.header()));
    r
}

/// `GET /v2/namespaces/{ns}/documents/{id}`: the response body. A cached row (hot or tier hit,
/// [`cached_row`]) is written from its stored text ([`document_bytes`]); a row that path refuses
/// (an escape, or text that fails whole-body validation) and a row read from origin
/// ([`from_origin`]) go through [`document`].
async fn fetch_one(
    ctx: &ShardCtx,
    ns: &str,
    id: &str,
    include: Option<Vec<String>>,
) -> Result<(Bytes, Served), GatewayError> {
    let not_found = || GatewayError::NotFoundDocs {
        message: format!("document {id:?} was not found in namespace {ns:?}"),
        missing: vec![serde_json::to_string(id).unwrap_or_default()],
    };
    let as_document = |row: &Value| {
        Bytes::from(serde_json::to_vec(&document(id, row, include.as_deref())).unwrap_or_default())
    };
    let served = match cached_row(ctx, ns, id).await {
        Ok(row) => {
            if let Some(body) = document_bytes(id, &row, include.as_deref(), &ctx.core.limits) {
                return Ok((Bytes::from(body), Served::Hit));
            }
            // Stored text that does not parse is no document, as it has always been.
            return match serde_json::from_slice::<Value>(&row) {
                Ok(row) => Ok((as_document(&row), Served::Hit)),
                Err(_) => Err(not_found()),
            };
        }
        Err(miss) => miss,
    };
    let ids = [id.to_string()];
    match from_origin(ctx, ns, &ids, &[0]).await?.pop() {
        Some((_, row)) => Ok((as_document(&row), served)),
        None => Err(not_found()),
    }
}

/// `POST /v2/namespaces/{ns}/documents` `{ids, include_attributes?}`: documents in request order,
/// absent ids in `missing`.
async fn fetch_many(
    ctx: &ShardCtx,
    ns: &str,
    body: &[u8],
) -> Result<(Value, Served), GatewayError> {
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
    let (rows, served) = rows(ctx, ns, &ids).await?;
    let mut documents = Vec::new();
    let mut missing = Vec::new();
    for (id, row) in ids.iter().zip(rows) {
        match row {
            Some(r) => documents.push(document(id, &r, include.as_deref())),
            None => missing.push(Value::String(id.clone())),
        }
    }
    Ok((json!({"documents": documents, "missing": missing}), served))
}
