//! Queries: `POST /v2/namespaces/{ns}/query` (single and multi-query, Layer's query shapes,
//! stable reads, scatter/gather — [`plan`]) and the legacy `POST /v1/namespaces/{ns}/query`
//! (forwarded and relayed as upstream answers, through the proxy engine). Both report what they
//! served to the [`Recorder`] (search history) and record `layer_query_duration_seconds` by
//! namespace. Answers the gateway reads are fetched uncompressed and gzip-compressed here when
//! the caller accepts it.

mod cursor;
pub mod plan;

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, header};

use crate::core::ShardCtx;
use crate::core::config::Scope;
use crate::core::error::GatewayError;
use crate::core::federation::{LegAnswer, NamespaceQuery};
use crate::core::http::{Resp, accepts_gzip, ensure_traceparent, gzip_response, relay};
use crate::core::proxy::{self, ProxyHooks, Session};
use crate::core::record::{QueryRecord, Recorder, SearchContext, search_context};
use crate::core::router::{Req, Route, handler};
use crate::core::stable;
use crate::core::upstream::UpstreamResponse;

/// The query feature: its routes report to `recorder`.
pub struct Query {
    recorder: Arc<dyn Recorder>,
}

impl Query {
    pub fn new(recorder: Arc<dyn Recorder>) -> Arc<Query> {
        Arc::new(Query { recorder })
    }

    pub fn routes(self: &Arc<Self>) -> Vec<Route> {
        let v1 = Arc::new(V1 {
            recorder: self.recorder.clone(),
        });
        vec![
            Route::new(
                Method::POST,
                "/v2/namespaces/{ns}/query",
                "query",
                Scope::Read,
                handler(self.clone(), Query::serve),
            )
            .with_query_metrics(),
            Route::new(
                Method::POST,
                "/v1/namespaces/{ns}/query",
                "query_v1",
                Scope::Read,
                proxy::route(v1),
            )
            .with_query_metrics(),
        ]
    }

    async fn serve(
        self: Arc<Self>,
        ctx: Arc<ShardCtx>,
        mut req: Req,
    ) -> Result<Resp, GatewayError> {
        let mut headers = std::mem::take(&mut req.parts.headers);
        let trace = ensure_traceparent(&mut headers);
        let search = search_context(&headers)?;
        let gzip_ok = accepts_gzip(&headers);
        let ns = req.ns();
        let a = plan::serve(
            &ctx,
            ns,
            req.path_and_query(),
            &mut headers,
            req.body.clone(),
        )
        .await?;
        self.recorder.record_query(QueryRecord {
            ns,
            search: &search,
            trace: trace.as_ref(),
            request: &req.body,
            request_checked: a.request_checked,
            status: a.status,
            response: &a.body,
            watermark: a.watermark,
        });
        let mut up = UpstreamResponse {
            status: a.status,
            headers: a.headers,
            body: a.body,
        };
        if gzip_ok {
            gzip_response(&mut up);
        }
        let mut resp = relay(up, trace);
        stable::stamp_header(resp.headers_mut(), a.watermark);
        Ok(resp)
    }
}

/// One namespace's leg of a federated query or an agent's plan: the v2 query's planner, stable
/// cut and echoes, answered uncompressed (legs are not recorded to search history).
impl NamespaceQuery for Query {
    fn query<'a>(
        &'a self,
        ctx: &'a ShardCtx,
        ns: &'a str,
        mut headers: http::HeaderMap,
        body: Bytes,
    ) -> futures_util::future::BoxFuture<'a, Result<LegAnswer, GatewayError>> {
        Box::pin(async move {
            let path = format!("/v2/namespaces/{ns}/query");
            let a = plan::serve(ctx, ns, &path, &mut headers, body).await?;
            Ok(LegAnswer {
                status: a.status,
                body: a.body,
                watermark: a.watermark,
            })
        })
    }
}

/// The legacy v1 query: relayed as upstream answers it, recorded like the v2 route. Its answer is
/// fetched uncompressed (to read the result ids) and compressed here when the caller accepts
/// gzip.
struct V1 {
    recorder: Arc<dyn Recorder>,
}

#[derive(Default)]
struct V1Ctx {
    search: SearchContext,
    gzip_ok: bool,
    /// The uncompressed answer, for the recorder.
    answer: Option<Bytes>,
}

impl ProxyHooks for V1 {
    type Ctx = V1Ctx;

    fn request_filter(
        &self,
        _: &Arc<ShardCtx>,
        s: &mut Session,
        c: &mut V1Ctx,
    ) -> Result<(), GatewayError> {
        c.search = search_context(&s.headers)?;
        c.gzip_ok = accepts_gzip(&s.headers);
        Ok(())
    }

    fn upstream_request_filter(&self, s: &mut Session, _: &mut V1Ctx) {
        s.headers.remove(header::ACCEPT_ENCODING);
    }

    async fn response_filter(
        &self,
        _: &Arc<ShardCtx>,
        _: &Session,
        c: &mut V1Ctx,
        up: &mut UpstreamResponse,
    ) {
        if !up.headers.contains_key(header::CONTENT_ENCODING) {
            c.answer = Some(up.body.clone());
        }
        if c.gzip_ok {
            gzip_response(up);
        }
    }

    fn logging(&self, _: &Arc<ShardCtx>, s: &Session, c: &V1Ctx, up: &UpstreamResponse) {
        // A cheap `Bytes` clone of the request; a gzip body is inflated by the recorder, off the
        // shard.
        if let Some(answer) = &c.answer {
            self.recorder.record_query(QueryRecord {
                ns: s.req.ns(),
                search: &c.search,
                trace: s.trace.as_ref(),
                request: &s.req.body,
                // Relayed as sent: nobody validated it.
                request_checked: false,
                status: up.status,
                response: answer,
                watermark: None,
            });
        }
    }
}
