//! Observe: the metric catalog (`/v2/metrics/catalog`) grouped by family, and for the chosen
//! family (`?family=`, the first by default) one plot per metric of its example PromQL over the
//! last 30 minutes, through the gateway's metrics proxy.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Ctx, failed, plot};
use crate::gateway::{decode_query, encode};
use crate::html::{banner, esc};

pub async fn render(ctx: &Ctx, query: &str) -> String {
    let catalog = match ctx.gateway.get("/v2/metrics/catalog").await {
        Ok(c) => c,
        Err(e) => return failed("metric catalog", &e),
    };
    let mut families: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for e in catalog["entries"].as_array().cloned().unwrap_or_default() {
        let family = e["family"].as_str().unwrap_or("other").to_string();
        families.entry(family).or_default().push(e);
    }
    if families.is_empty() {
        return banner("The metric catalog is empty.", false);
    }
    let wanted = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("family="))
        .map(decode_query);
    let chosen = wanted
        .filter(|f| families.contains_key(f))
        .or_else(|| families.keys().next().cloned())
        .unwrap_or_default();
    let mut out = String::from("<p>");
    for (family, entries) in &families {
        let class = if *family == chosen {
            " style=\"font-weight:600\""
        } else {
            ""
        };
        out += &format!(
            "<a href=\"/observe?family={}\"{class}>{}</a> ({}) · ",
            encode(family),
            esc(family),
            entries.len()
        );
    }
    out.push_str("</p>");
    for e in families.get(&chosen).into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or_default();
        let expr = e["example_promql"].as_str().unwrap_or(name);
        out += &format!(
            "<h2>{}</h2><p class=\"muted\">{} · {}</p>",
            esc(name),
            esc(e["kind"].as_str().unwrap_or_default()),
            esc(e["description"].as_str().unwrap_or_default())
        );
        out += &plot(ctx, expr, expr).await;
    }
    out
}
