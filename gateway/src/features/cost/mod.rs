//! Cost (contract §1.10, §2.11): `GET /v2/cost` (a `CostSnapshot` over `window`),
//! `GET /v2/cost/timeseries` (`CostTimeseries`: USD per `step` over `window`) and
//! `GET /v2/cost/rate-card` (`RateCard`). Control plane, `read` scope.
//!
//! - **Turbopuffer**: the rate-card file ([`ratecard`], `gateway.cost.rateCardFile`, read on each
//!   call so an updated card shows at once) applied to the usage the gateway measures on its
//!   upstream calls (`core::usage`: in memory, since the gateway started) and to the namespaces'
//!   logical bytes, read from their metadata every `refreshIntervalMs` (storage).
//! - **AWS**: Cost Explorer's daily unblended cost by service ([`aws`]), read every
//!   `cacheTtlSeconds` on the control runtime; a failed read keeps the last good data and sets
//!   `aws_cost_stale`. The instance price list of the AWS rate card is the configured one (no
//!   Pricing API client), reported `stale: true`.
//!
//! What each route needs, else 503 `cost_unavailable` naming what is missing (`missing` lists
//! `turbopuffer_rate_card` and/or `aws_cost_explorer`), never invented numbers:
//!
//! | route | needs |
//! |---|---|
//! | `/v2/cost`, `/v2/cost/timeseries` | a valid rate card, and Cost Explorer enabled with one good read |
//! | `/v2/cost/rate-card` | a valid rate card |

pub mod aws;
pub mod ratecard;
mod report;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use http::{Method, StatusCode};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::core::config::Scope;
use crate::core::error::GatewayError;
use crate::core::http::{Resp, json_response, now_ms};
use crate::core::router::{Req, Route, handler};
use crate::core::runtime::Background;
use crate::core::{Control, Core, ShardCtx};
use aws::AwsState;
use ratecard::RateCard;

/// The namespaces' sizes as last read.
#[derive(Clone, Debug, Default)]
pub struct Storage {
    /// Logical bytes and rows by namespace.
    pub by_ns: BTreeMap<String, (u64, u64)>,
    /// `None`: never read.
    pub refreshed_at_ms: Option<u64>,
    pub last_error: Option<String>,
}

impl Storage {
    pub fn bytes(&self) -> u64 {
        self.by_ns.values().map(|(b, _)| b).sum()
    }
    pub fn rows(&self) -> u64 {
        self.by_ns.values().map(|(_, r)| r).sum()
    }
}

/// The cost feature.
pub struct Cost {
    core: Arc<Core>,
    aws: Mutex<AwsState>,
    storage: Mutex<Storage>,
}

/// The windows and steps the client names, in seconds.
const WINDOWS: [(&str, u64); 5] = [
    ("1h", 3_600),
    ("6h", 21_600),
    ("24h", 86_400),
    ("7d", 604_800),
    ("30d", 2_592_000),
];
const STEPS: [(&str, u64); 5] = [
    ("5m", 300),
    ("30m", 1_800),
    ("1h", 3_600),
    ("6h", 21_600),
    ("1d", 86_400),
];

fn pick(
    name: &str,
    value: Option<&String>,
    table: &[(&str, u64)],
    default: u64,
) -> Result<u64, GatewayError> {
    let Some(v) = value else { return Ok(default) };
    table
        .iter()
        .find(|(k, _)| k == v)
        .map(|(_, s)| *s)
        .ok_or_else(|| {
            let allowed: Vec<&str> = table.iter().map(|(k, _)| *k).collect();
            GatewayError::Validation(format!(
                "{name} must be one of {}, not {v:?}",
                allowed.join(", ")
            ))
        })
}

fn unavailable(missing: Vec<(&'static str, String)>) -> GatewayError {
    let message = format!(
        "cost is unavailable: {}",
        missing
            .iter()
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    );
    let mut detail = serde_json::Map::new();
    detail.insert(
        "missing".into(),
        json!(missing.iter().map(|(k, _)| *k).collect::<Vec<_>>()),
    );
    GatewayError::Detailed {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "cost_unavailable",
        message,
        detail,
    }
}

impl Cost {
    pub fn new(core: Arc<Core>) -> Arc<Cost> {
        Arc::new(Cost {
            core,
            aws: Mutex::new(AwsState::default()),
            storage: Mutex::new(Storage::default()),
        })
    }

    pub fn routes(self: &Arc<Self>) -> Vec<Route> {
        let read = |pattern, name, h| Route::new(Method::GET, pattern, name, Scope::Read, h);
        vec![
            read(
                "/v2/cost",
                "get_cost_snapshot",
                handler(self.clone(), Self::snapshot),
            ),
            read(
                "/v2/cost/timeseries",
                "get_cost_timeseries",
                handler(self.clone(), Self::timeseries),
            ),
            read(
                "/v2/cost/rate-card",
                "get_cost_rate_card",
                handler(self.clone(), Self::rate_card),
            ),
        ]
    }

    /// The rate card, or why there is none.
    async fn card(&self) -> Result<RateCard, (&'static str, String)> {
        let Some(path) = &self.core.config.gateway.cost.rate_card_file else {
            return Err((
                "turbopuffer_rate_card",
                "no Turbopuffer rate card is configured (gateway.cost.rateCardFile)".into(),
            ));
        };
        let text = tokio::fs::read_to_string(path).await.map_err(|e| {
            (
                "turbopuffer_rate_card",
                format!(
                    "the Turbopuffer rate card {} cannot be read: {e}",
                    path.display()
                ),
            )
        })?;
        RateCard::parse(&text).map_err(|e| {
            (
                "turbopuffer_rate_card",
                format!("the Turbopuffer rate card {}: {e}", path.display()),
            )
        })
    }

    /// The rate card and the AWS state, or 503 naming everything missing.
    async fn inputs(&self) -> Result<(RateCard, AwsState), GatewayError> {
        let mut missing = Vec::new();
        let card = self.card().await.map_err(|m| missing.push(m)).ok();
        let aws = self.aws.lock().clone();
        if !self.core.config.gateway.cost.cost_explorer_enabled {
            missing.push((
                "aws_cost_explorer",
                "no AWS access: Cost Explorer is not enabled (gateway.cost.costExplorerEnabled)"
                    .into(),
            ));
        } else if aws.days.is_none() {
            missing.push((
                "aws_cost_explorer",
                match &aws.last_error {
                    Some(e) => format!("AWS Cost Explorer could not be read: {e}"),
                    None => "AWS Cost Explorer has not been read yet".into(),
                },
            ));
        }
        match card {
            Some(card) if missing.is_empty() => Ok((card, aws)),
            _ => Err(unavailable(missing)),
        }
    }

    async fn snapshot(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let q = req.query_params();
        let window = pick("window", q.get("window"), &WINDOWS, 86_400)?;
        let (card, aws) = self.inputs().await?;
        let storage = self.storage.lock().clone();
        let body = report::snapshot(&self.report(&card, &aws, &storage), window, now_ms());
        Ok(json_response(StatusCode::OK, &body))
    }

    async fn timeseries(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let q = req.query_params();
        let window = pick("window", q.get("window"), &WINDOWS, 86_400)?;
        let step = pick("step", q.get("step"), &STEPS, 3_600)?;
        if step > window {
            return Err(GatewayError::Validation(format!(
                "step ({step} s) must not be longer than window ({window} s)"
            )));
        }
        let (card, aws) = self.inputs().await?;
        let storage = self.storage.lock().clone();
        let body = report::timeseries(&self.report(&card, &aws, &storage), window, step, now_ms());
        Ok(json_response(StatusCode::OK, &body))
    }

    async fn rate_card(self: Arc<Self>, _: Arc<ShardCtx>, _: Req) -> Result<Resp, GatewayError> {
        let card = self.card().await.map_err(|m| unavailable(vec![m]))?;
        let cfg = &self.core.config.gateway.cost;
        let items: Vec<Value> = cfg
            .instance_prices
            .iter()
            .map(|p| {
                json!({
                    "instance_type": p.instance_type, "family": p.family, "vcpu": p.vcpu,
                    "memory_gib": p.memory_gib, "nvme_gib": p.nvme_gib, "hourly_usd": p.hourly_usd,
                })
            })
            .collect();
        let lines: Vec<Value> = card
            .lines
            .iter()
            .map(|l| json!({"service": l.service, "unit": l.unit, "usd": l.usd}))
            .collect();
        let body = json!({
            "aws": {
                "role": "estimator",
                "region": cfg.region,
                // Never refreshed from the Pricing API: the list is the configured one.
                "refreshed_at_ms": 0,
                "ttl_seconds": cfg.cache_ttl_seconds,
                "stale": true,
                "items": items,
            },
            "turbopuffer": {
                "version": card.version,
                "verified_by": card.verified_by,
                "verified_at": card.verified_at,
                "source": card.source,
                "lines": lines,
            },
        });
        Ok(json_response(StatusCode::OK, &body))
    }

    fn report<'a>(
        &'a self,
        card: &'a RateCard,
        aws: &'a AwsState,
        storage: &'a Storage,
    ) -> report::Inputs<'a> {
        report::Inputs {
            card,
            aws,
            storage,
            usage: &self.core.usage,
            cfg: &self.core.config.gateway.cost,
        }
    }

    /// Reads Cost Explorer once and keeps the outcome.
    async fn refresh_aws(&self, client: &aws_sdk_costexplorer::Client) {
        let cfg = &self.core.config.gateway.cost;
        let result = aws::read(client, cfg).await;
        let mut s = self.aws.lock();
        match result {
            Ok(days) => {
                s.days = Some(days);
                s.refreshed_at_ms = now_ms();
                s.last_error = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cost: Cost Explorer read failed");
                s.last_error = Some(e);
            }
        }
    }

    /// Reads every store's namespaces and their logical sizes.
    async fn refresh_storage(&self, control: &Control) {
        let mut by_ns = BTreeMap::new();
        let mut error = None;
        for store in self.core.config.stores() {
            let Some(up) = control.upstreams.by_name(&store.name) else {
                continue;
            };
            match read_sizes(&up).await {
                Ok(sizes) => by_ns.extend(sizes),
                Err(e) => error = Some(format!("store {}: {e}", store.name)),
            }
        }
        self.core
            .usage
            .set_sizes(by_ns.iter().map(|(k, (b, _))| (k.clone(), *b)).collect());
        let mut s = self.storage.lock();
        if error.is_none() || s.refreshed_at_ms.is_none() {
            s.by_ns = by_ns;
        }
        if error.is_none() {
            s.refreshed_at_ms = Some(now_ms());
        }
        s.last_error = error;
    }
}

/// Every namespace of one store with its `approx_logical_bytes` and `approx_row_count`.
async fn read_sizes(
    up: &crate::core::upstream::Upstream,
) -> Result<BTreeMap<String, (u64, u64)>, String> {
    let empty = http::HeaderMap::new();
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!(
                "/v1/namespaces?page_size=1000&cursor={}",
                crate::core::params::encode_query_component(c)
            ),
            None => "/v1/namespaces?page_size=1000".to_string(),
        };
        let r = up
            .send(
                "cost_storage",
                Method::GET,
                &path,
                &empty,
                Default::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
        if !r.status.is_success() {
            return Err(format!("listing answered {}", r.status.as_u16()));
        }
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
        for n in v["namespaces"].as_array().into_iter().flatten() {
            if let Some(id) = n["id"].as_str() {
                names.push(id.to_string());
            }
        }
        match v["next_cursor"].as_str() {
            Some(c) if !c.is_empty() => cursor = Some(c.to_string()),
            _ => break,
        }
    }
    let reads = futures_util::stream::iter(names)
        .map(|ns| {
            let empty = &empty;
            async move {
                let path = format!("/v1/namespaces/{ns}/metadata");
                let r = up
                    .send(
                        "cost_storage",
                        Method::GET,
                        &path,
                        empty,
                        Default::default(),
                    )
                    .await;
                (ns, r)
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    let mut out = BTreeMap::new();
    for (ns, r) in reads {
        match r {
            Ok(r) if r.status.is_success() => {
                let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                let bytes = v["approx_logical_bytes"].as_u64().unwrap_or(0);
                let rows = v["approx_row_count"].as_u64().unwrap_or(0);
                out.insert(ns, (bytes, rows));
            }
            // Deleted between the listing and the read.
            Ok(r) if r.status == StatusCode::NOT_FOUND => {}
            Ok(r) => return Err(format!("metadata of {ns} answered {}", r.status.as_u16())),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(out)
}

impl Background for Cost {
    fn start(self: Arc<Self>, control: &Control) {
        let cfg = self.core.config.gateway.cost.clone();
        if cfg.rate_card_file.is_some() {
            let me = self.clone();
            let c = control.clone();
            control.handle.spawn(async move {
                let every = Duration::from_millis(cfg.refresh_interval_ms);
                loop {
                    me.refresh_storage(&c).await;
                    tokio::time::sleep(every).await;
                }
            });
        }
        if self.core.config.gateway.cost.cost_explorer_enabled {
            let me = self;
            control.handle.spawn(async move {
                let client = aws::client(&me.core.config.gateway.cost).await;
                let every = Duration::from_secs(me.core.config.gateway.cost.cache_ttl_seconds);
                loop {
                    me.refresh_aws(&client).await;
                    tokio::time::sleep(every).await;
                }
            });
        }
    }
}
