//! Blobs (contract §1.11, §2.14): raw bytes stored per namespace, content-addressed by SHA-256
//! in the object store ([`crate::sources::blobs`]), with the cache tier in front.
//!
//! - `PUT /v1/namespaces/{ns}/blobs` (`write`): the body as sent (any content type, bounded by
//!   `maxBodyBytes`, read once), stored under its SHA-256; idempotent. `?warm=true` also puts it
//!   in the cache tier. Answers `{ref, sha256, size}`; `ref` is `sha256:<hex>`, what documents
//!   hold in their attributes (and what the `blobs` step of `hint_cache_warm` looks for).
//! - `GET /v1/namespaces/{ns}/blobs/{sha256}` (`read`): the bytes as stored
//!   (`application/octet-stream`), the cache tier first (`x-layer-cache: hit`), the object store
//!   behind it (`miss`); 404 for an unknown blob, 422 for a malformed hash.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::Full;
use serde_json::json;

use crate::core::config::Scope;
use crate::core::error::GatewayError;
use crate::core::http::{Resp, json_response};
use crate::core::router::{Req, Route, handler};
use crate::core::{Core, ShardCtx};
use crate::sources::blobs;

/// The blobs feature.
pub struct Blobs {
    core: Arc<Core>,
}

fn store_error(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::ObjectStore(e.to_string())
}

impl Blobs {
    pub fn new(core: Arc<Core>) -> Arc<Blobs> {
        Arc::new(Blobs { core })
    }

    pub fn routes(self: &Arc<Self>) -> Vec<Route> {
        vec![
            Route::new(
                Method::PUT,
                "/v1/namespaces/{ns}/blobs",
                "put_blob",
                Scope::Write,
                handler(self.clone(), Self::put),
            ),
            Route::new(
                Method::GET,
                "/v1/namespaces/{ns}/blobs/{sha}",
                "get_blob",
                Scope::Read,
                handler(self.clone(), Self::get),
            ),
        ]
    }

    async fn put(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let ns = req.ns().to_string();
        let warm = match req.query_params().get("warm").map(String::as_str) {
            None | Some("") | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(GatewayError::Validation(format!(
                    "warm must be true or false, got {other:?}"
                )));
            }
        };
        let bytes = req.inflated_body(&self.core.limits)?;
        let sha = blobs::sha256(&bytes);
        let size = bytes.len();
        blobs::put(&self.core, &ns, &sha, bytes.clone())
            .await
            .map_err(store_error)?;
        let mut answer = json!({
            "ref": format!("{}{sha}", blobs::REF_PREFIX), "sha256": sha, "size": size,
        });
        if warm {
            answer["warmed"] = json!(blobs::warm(&self.core, &ns, &sha, bytes).await);
        }
        Ok(json_response(StatusCode::OK, &answer))
    }

    async fn get(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let ns = req.ns().to_string();
        let sha = req.decoded("sha").into_owned();
        let sha = sha
            .strip_prefix(blobs::REF_PREFIX)
            .unwrap_or(&sha)
            .to_string();
        if !blobs::is_sha(&sha) {
            return Err(GatewayError::Validation(format!(
                "{sha:?} is not a SHA-256 (64 lowercase hex digits)"
            )));
        }
        let Some((bytes, served)) = blobs::get(&self.core, &ns, &sha)
            .await
            .map_err(store_error)?
        else {
            return Err(GatewayError::Rejected {
                status: StatusCode::NOT_FOUND,
                code: "not_found",
                message: format!("blob {sha} of {ns} not found"),
            });
        };
        let mut r = http::Response::new(Full::new(Bytes::clone(&bytes)));
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        h.insert(
            "x-layer-cache",
            HeaderValue::from_static(match served {
                blobs::Served::Cache => "hit",
                blobs::Served::ObjectStore => "miss",
            }),
        );
        Ok(r)
    }
}
