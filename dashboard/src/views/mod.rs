//! One module per tab. Each view reads the gateway through [`Ctx::gateway`], renders with
//! [`crate::html`] and [`crate::chart`], and shows a failing read as a banner in place of its
//! data: a page always renders. Start at [`render`].

pub mod actions;
mod keys;
mod namespaces;
mod observe;
mod overview;
mod pipelines;
mod udfs;

use serde_json::Value;

use crate::chart;
use crate::config::Config;
use crate::gateway::{Gateway, GatewayError, encode};
use crate::html::{self, banner};

/// What a view reads with.
pub struct Ctx {
    pub gateway: Gateway,
    pub config: Config,
}

/// The range every chart covers, and its step.
pub const RANGE_SECONDS: u64 = 30 * 60;
pub const STEP_SECONDS: u64 = 15;

/// Renders the tab at `path` (`query` is the raw query string); `None` for an unknown path.
pub async fn render(ctx: &Ctx, path: &str, query: &str) -> Option<String> {
    let (title, body) = match path {
        "/" => ("Overview", overview::render(ctx).await),
        "/namespaces" => ("Namespaces", namespaces::render(ctx).await),
        "/pipelines" => ("Pipelines", pipelines::render(ctx).await),
        "/udfs" => ("UDFs", udfs::render(ctx).await),
        "/keys" => ("Keys", keys::render(ctx).await),
        "/observe" => ("Observe", observe::render(ctx, query).await),
        "/cluster" => (
            "Cluster",
            banner(
                "Kubernetes access not configured: this dashboard reads no Kubernetes API \
                 (dashboard.kubeAccess.enabled needs the in-cluster install). Workloads, HPAs, \
                 ScaledObjects and nodes show here once it does.",
                false,
            ),
        ),
        "/cost" => ("Cost", cost(ctx).await),
        _ => return None,
    };
    Some(html::page(title, path, &body, ctx.config.refresh_seconds))
}

/// A failed read, as a banner.
pub fn failed(what: &str, e: &GatewayError) -> String {
    banner(&format!("{what}: {e}"), true)
}

/// A chart of the PromQL `expr` over the last [`RANGE_SECONDS`], through the gateway's metrics
/// proxy; a failing query is a banner instead.
pub async fn plot(ctx: &Ctx, title: &str, expr: &str) -> String {
    let end = html::now_ms() / 1000;
    let path = format!(
        "/v2/metrics/api/v1/query_range?query={}&start={}&end={end}&step={STEP_SECONDS}",
        encode(expr),
        end - RANGE_SECONDS
    );
    match ctx.gateway.get(&path).await {
        Ok(answer) => chart::svg(title, &chart::from_prometheus(&answer)),
        Err(e) => failed(&format!("{title} ({expr})"), &e),
    }
}

/// A number from a JSON value, as text (`–` when absent).
pub fn num(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::Null => "–".into(),
        other => html::esc(&other.to_string()),
    }
}

async fn cost(ctx: &Ctx) -> String {
    match ctx.gateway.get("/v2/cost?window=24h").await {
        Ok(snapshot) => {
            let t = &snapshot["totals"];
            let cards = [
                html::card("Total (24 h), USD", &num(&t["total_usd"]), ""),
                html::card("AWS, USD", &num(&t["aws_usd"]), ""),
                html::card("Turbopuffer, USD", &num(&t["turbopuffer_usd"]), ""),
            ]
            .concat();
            let rows: Vec<Vec<String>> = snapshot["lines"]
                .as_array()
                .map(|lines| {
                    lines
                        .iter()
                        .map(|l| {
                            vec![
                                html::esc(l["provider"].as_str().unwrap_or_default()),
                                html::esc(l["service"].as_str().unwrap_or_default()),
                                html::esc(l["basis"].as_str().unwrap_or_default()),
                                num(&l["amount_usd"]),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "<div class=\"cards\">{cards}</div><h2>Lines</h2>{}",
                html::table(&["provider", "service", "basis", "USD"], &rows)
            )
        }
        Err(GatewayError::Status {
            status: 503 | 404,
            message,
        }) => banner(&format!("Cost not configured: {message}"), false),
        Err(e) => failed("cost", &e),
    }
}
