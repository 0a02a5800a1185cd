//! Operations routes: `GET /health` (liveness, the cache tier's state, and each known
//! namespace's cache state) and `GET /metrics` (Prometheus text). Both are public.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::core::error::GatewayError;
use crate::core::http::{Resp, json_response};
use crate::core::labeled;
use crate::core::metrics;
use crate::core::router::{Req, Route, handler};
use crate::core::{Core, ShardCtx};
use crate::sources::warmth::Warmth;

/// The operations feature.
/// The per-namespace cache-state gauge of the metric catalog.
const CACHE_STATE: &str = "hevlayer_cache_state";
/// Namespaces with a series of their own in [`CACHE_STATE`].
const MAX_STATE_NAMESPACES: usize = 256;

pub struct Ops {
    core: Arc<Core>,
    warmth: Arc<Warmth>,
}

impl Ops {
    pub fn new(core: Arc<Core>, warmth: Arc<Warmth>) -> Arc<Ops> {
        labeled::describe(CACHE_STATE, labeled::Kind::Gauge, "Namespace cache state.");
        Arc::new(Ops { core, warmth })
    }

    pub fn routes(self: &Arc<Self>) -> Vec<Route> {
        vec![
            Route::public(
                Method::GET,
                "/health",
                "health",
                handler(self.clone(), Ops::health),
            ),
            Route::public(
                Method::GET,
                "/metrics",
                "metrics",
                handler(self.clone(), Ops::metrics),
            ),
        ]
    }

    async fn health(self: Arc<Self>, _: Arc<ShardCtx>, _: Req) -> Result<Resp, GatewayError> {
        let (status, body) = self.report();
        Ok(json_response(status, &body))
    }

    async fn metrics(self: Arc<Self>, _: Arc<ShardCtx>, _: Req) -> Result<Resp, GatewayError> {
        // The gauge families are process-wide: setting this gateway's cache states and rendering
        // them is one step, so a second gateway in the process (the e2e suites start several)
        // cannot replace them in between. Scrapes only; nothing awaits under the lock.
        static SCRAPE: parking_lot::Mutex<()> = parking_lot::Mutex::new(());
        let text = {
            let _one = SCRAPE.lock();
            self.cache_state_gauge();
            metrics::render(self.core.shards)
        };
        let mut r = Response::new(Full::new(Bytes::from(text)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        Ok(r)
    }

    /// The health body. 503 means up but degraded: the cache tier went cold (fetches still fall
    /// through to origin). A namespace is `warm` when a warm completed for it since start and the
    /// tier serves, else `cold`; namespaces are those the gateway watches or warmed.
    /// `hevlayer_cache_state{namespace,store_kind,state}`: 1 for the state each namespace
    /// `/health` lists is in, refreshed at each scrape. The first [`MAX_STATE_NAMESPACES`] (by
    /// name) get a series each; the rest are counted in `namespace="_other"`.
    fn cache_state_gauge(&self) {
        let (_, body) = self.report();
        let mut values: Vec<(String, i64)> = Vec::new();
        let mut other: std::collections::BTreeMap<&str, i64> = Default::default();
        for (i, n) in body["namespaces"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let (Some(ns), Some(state)) = (n["namespace"].as_str(), n["state"].as_str()) else {
                continue;
            };
            let state = if state == "warm" { "warm" } else { "cold" };
            if i < MAX_STATE_NAMESPACES {
                let l = labeled::labels(&[
                    ("namespace", ns),
                    ("store_kind", "turbopuffer"),
                    ("state", state),
                ]);
                values.push((l, 1));
            } else {
                *other.entry(state).or_default() += 1;
            }
        }
        for (state, n) in other {
            let l = labeled::labels(&[
                ("namespace", metrics::OTHER_NAMESPACE),
                ("store_kind", "turbopuffer"),
                ("state", state),
            ]);
            values.push((l, n));
        }
        labeled::set_gauges(CACHE_STATE, values);
    }

    fn report(&self) -> (StatusCode, Value) {
        let core = &self.core;
        let h = core.cache.tier.health();
        let tier_warm = h.state == layer_cache::CacheState::Warm;
        let status = if h.state == layer_cache::CacheState::Cold {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        let warmed = self.warmth.warmed();
        let mut names = core.watcher.namespaces();
        names.extend(warmed.iter().map(|(ns, _)| ns.clone()));
        names.sort();
        names.dedup();
        let namespaces: Vec<Value> = names
            .iter()
            .map(|ns| {
                let through = warmed.iter().find(|(n, _)| n == ns).map(|(_, t)| *t);
                let state = if tier_warm && through.is_some() {
                    "warm"
                } else {
                    "cold"
                };
                json!({"namespace": ns, "state": state, "cache_warmed_through": through})
            })
            .collect();
        let body = json!({
            "status": if status == StatusCode::OK { "ok" } else { "degraded" },
            "uptime_seconds": core.started.elapsed().as_secs(),
            "shards": core.shards,
            "cache": {
                "state": h.state.as_str(),
                "reconnect_generation": h.reconnect_generation,
                "backend": core.cache.tier.name(),
            },
            "namespaces": namespaces,
        });
        (status, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_lists_watched_and_warmed_namespaces() {
        let core = crate::core::test_core();
        let warmth = Warmth::new(core.watcher.clone());
        core.watcher.register("b");
        warmth.stamp("a", 7);
        let ops = Ops::new(core, warmth);
        let (status, body) = ops.report();
        assert_eq!(status, StatusCode::OK);
        // The test core's tier is disabled: nothing is warm.
        assert_eq!(
            body["namespaces"],
            json!([
                {"namespace": "a", "state": "cold", "cache_warmed_through": 7},
                {"namespace": "b", "state": "cold", "cache_warmed_through": null},
            ])
        );
        assert_eq!(body["cache"]["backend"], "disabled");
        ops.cache_state_gauge();
        let text = labeled::render();
        assert!(
            text.contains(
                r#"hevlayer_cache_state{namespace="a",store_kind="turbopuffer",state="cold"} 1"#
            ),
            "{text}"
        );
    }
}
