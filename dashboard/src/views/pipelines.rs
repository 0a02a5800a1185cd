//! Pipelines: each pipeline's status (counts by stage, pending/processing/failed, the indexed
//! rate) and a plot of its documents by stage over time (`layer_pipeline_stage_count`).

use serde_json::Value;

use super::{Ctx, failed, num, plot};
use crate::gateway::GatewayError;
use crate::html::{banner, esc, table};

/// Pipelines plotted one chart each; beyond this, one chart sums them by stage.
pub const CHARTS: usize = 8;

pub async fn render(ctx: &Ctx) -> String {
    let list = match ctx.gateway.get("/v2/pipelines").await {
        Ok(l) => l,
        Err(GatewayError::Status {
            status: 503,
            message,
        }) => return banner(&format!("Pipelines are not configured: {message}"), false),
        Err(e) => return failed("pipelines", &e),
    };
    let pipelines = list["pipelines"].as_array().cloned().unwrap_or_default();
    let mut rows = Vec::new();
    for p in &pipelines {
        let id = p["id"].as_str().unwrap_or_default();
        let status = ctx
            .gateway
            .get(&format!(
                "/v2/pipelines/{}/status",
                crate::gateway::encode(id)
            ))
            .await;
        let (state, counts, pending, processing, failed_n, rate) = match &status {
            Ok(s) => (
                esc(s["status"].as_str().unwrap_or("–")),
                stage_counts(&s["counts"]),
                num(&s["pending_count"]),
                num(&s["processing_count"]),
                num(&s["failed_count"]),
                format!("{:.1}", s["indexed_rate_per_min"].as_f64().unwrap_or(0.0)),
            ),
            Err(e) => (
                esc(&e.to_string()),
                String::new(),
                "–".into(),
                "–".into(),
                "–".into(),
                "–".into(),
            ),
        };
        rows.push(vec![
            esc(id),
            esc(p["target_namespace"].as_str().unwrap_or_default()),
            state,
            pending,
            processing,
            failed_n,
            rate,
            counts,
        ]);
    }
    let mut out = table(
        &[
            "pipeline",
            "namespace",
            "status",
            "pending",
            "processing",
            "failed",
            "indexed/min",
            "by stage",
        ],
        &rows,
    );
    out.push_str("<h2>Documents by stage</h2>");
    if pipelines.len() <= CHARTS {
        for p in &pipelines {
            let id = p["id"].as_str().unwrap_or_default();
            let expr = format!(
                "sum by (stage) (layer_pipeline_stage_count{{pipeline_id=\"{}\"}})",
                id.replace('\\', "\\\\").replace('"', "\\\"")
            );
            out += &plot(ctx, id, &expr).await;
        }
    } else {
        out += &plot(
            ctx,
            "all pipelines",
            "sum by (stage) (layer_pipeline_stage_count)",
        )
        .await;
    }
    out
}

/// `stage=n` pairs, sorted.
pub fn stage_counts(counts: &Value) -> String {
    let mut pairs: Vec<String> = counts
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{}={}", esc(k), num(v)))
                .collect()
        })
        .unwrap_or_default();
    pairs.sort();
    pairs.join(" ")
}
