//! The overview: at-a-glance health cards from the gateway's `/health` (status, cache tier state
//! and reconnect generation, warm and cold namespaces) and the license state.

use super::{Ctx, failed};
use crate::html::{self, card};

pub async fn render(ctx: &Ctx) -> String {
    let mut out = String::from("<h2>Gateway</h2><div class=\"cards\">");
    match ctx.gateway.get_any("/health").await {
        Ok((status, h)) => {
            let ok = status.is_success();
            out += &card(
                "Status",
                h["status"].as_str().unwrap_or("unknown"),
                if ok { "good" } else { "bad" },
            );
            let uptime = h["uptime_seconds"].as_u64().unwrap_or(0);
            out += &card("Uptime", &format!("{} min", uptime / 60), "");
            out += &card("Shards", &h["shards"].to_string(), "");
            let cache = &h["cache"];
            let state = cache["state"].as_str().unwrap_or("unknown");
            out += &card(
                &format!("Cache tier ({})", cache["backend"].as_str().unwrap_or("?")),
                state,
                if state == "cold" { "bad" } else { "good" },
            );
            out += &card(
                "Cache reconnects",
                &cache["reconnect_generation"].to_string(),
                "",
            );
            let namespaces = h["namespaces"].as_array().cloned().unwrap_or_default();
            let warm = namespaces.iter().filter(|n| n["state"] == "warm").count();
            out += &card("Namespaces warm", &warm.to_string(), "");
            out += &card(
                "Namespaces cold",
                &(namespaces.len() - warm).to_string(),
                "",
            );
            out.push_str("</div>");
        }
        Err(e) => {
            out.push_str("</div>");
            out += &failed("health", &e);
        }
    }
    out.push_str("<h2>License</h2><div class=\"cards\">");
    match ctx.gateway.get("/v2/license").await {
        Ok(l) => {
            let state = l["gateway"]["state"].as_str().unwrap_or("unknown");
            out += &card(
                "License",
                state,
                if state == "licensed" { "good" } else { "" },
            );
            if let Some(reason) = l["reason"].as_str() {
                out += &format!("<div class=\"card\">{}</div>", html::esc(reason));
            }
        }
        Err(e) => out += &failed("license", &e),
    }
    out.push_str("</div>");
    out
}
