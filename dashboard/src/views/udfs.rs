//! UDFs: each function's queue (pending, processing, failed, indexed rate, discovery), its queue
//! depth over time (`layer_udf_queue_depth`), and — with write access — pause and resume behind
//! a confirm step ([`super::actions`]).

use super::pipelines::stage_counts;
use super::{Ctx, failed, num, plot};
use crate::gateway::{GatewayError, encode};
use crate::html::{banner, esc, table};

pub async fn render(ctx: &Ctx) -> String {
    let list = match ctx.gateway.get("/v2/udfs").await {
        Ok(l) => l,
        Err(GatewayError::Status {
            status: 503,
            message,
        }) => return banner(&format!("UDFs are not configured: {message}"), false),
        Err(e) => return failed("udfs", &e),
    };
    let udfs = list["udfs"].as_array().cloned().unwrap_or_default();
    let mut rows = Vec::new();
    for u in &udfs {
        let id = u["id"].as_str().unwrap_or_default();
        let paused = u["paused"].as_bool().unwrap_or(false);
        let status = ctx
            .gateway
            .get(&format!("/v2/udfs/{}/status", encode(id)))
            .await;
        let (pending, processing, failed_n, rate, counts, discovery) = match &status {
            Ok(s) => (
                num(&s["pending_count"]),
                num(&s["processing_count"]),
                num(&s["failed_count"]),
                format!("{:.1}", s["indexed_rate_per_min"].as_f64().unwrap_or(0.0)),
                stage_counts(&s["counts"]),
                discovery(&s["discovery"]),
            ),
            Err(e) => {
                let e = esc(&e.to_string());
                (
                    e,
                    "–".into(),
                    "–".into(),
                    "–".into(),
                    String::new(),
                    String::new(),
                )
            }
        };
        let action = if ctx.config.write_access {
            let verb = if paused { "resume" } else { "pause" };
            format!(
                "<a href=\"/udfs/{}/{verb}\" class=\"action\" id=\"{verb}-{}\">{verb}</a>",
                encode(id),
                esc(id)
            )
        } else {
            "<span class=\"muted\">read-only</span>".into()
        };
        rows.push(vec![
            esc(id),
            esc(u["spec"]["version"].as_str().unwrap_or("–")),
            if paused {
                "paused".into()
            } else {
                "running".into()
            },
            pending,
            processing,
            failed_n,
            rate,
            counts,
            discovery,
            action,
        ]);
    }
    let mut out = table(
        &[
            "udf",
            "version",
            "state",
            "pending",
            "processing",
            "failed",
            "indexed/min",
            "by stage",
            "discovery",
            "",
        ],
        &rows,
    );
    out.push_str("<h2>Queue depth</h2>");
    out += &plot(
        ctx,
        "queue depth by UDF",
        "sum by (udf) (layer_udf_queue_depth)",
    )
    .await;
    out
}

/// The discovery sweep in a line: sweeps completed, running or idle, the last completion.
fn discovery(d: &serde_json::Value) -> String {
    format!(
        "{} sweeps, {}, last {}",
        num(&d["sweeps_completed"]),
        if d["running"] == true {
            "running"
        } else {
            "idle"
        },
        esc(d["last_completed_at"].as_str().unwrap_or("never"))
    )
}
