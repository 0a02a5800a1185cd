//! Namespaces and indexes: rows, size, the stable watermark and whether the index is caught up,
//! the cache state, the last write (the gateway's enriched `/v2/namespaces` listing).

use super::{Ctx, failed, num};
use crate::html::{self, ago, esc, now_ms, table};

/// Rows shown on one page (the gateway's listing cap).
pub const PAGE: u32 = 1000;

pub async fn render(ctx: &Ctx) -> String {
    let listing = match ctx
        .gateway
        .get(&format!("/v2/namespaces?page_size={PAGE}"))
        .await
    {
        Ok(l) => l,
        Err(e) => return failed("namespaces", &e),
    };
    let now = now_ms();
    let entries = listing["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|n| {
            let stable = match n["stable_as_of_ms"].as_u64() {
                Some(ms) => ago(ms, now),
                None => "–".into(),
            };
            let caught_up = match n["is_stable"].as_bool() {
                Some(true) => "stable",
                Some(false) => "updating",
                None => "unknown",
            };
            let last_write = n["last_write_ms"]
                .as_u64()
                .map_or("–".into(), |ms| ago(ms, now));
            let size = n["size_bytes"].as_u64().map_or("–".into(), html::bytes);
            let error = n["metadata_error"]
                .as_str()
                .map(|e| format!(" <span class=\"muted\">({})</span>", esc(e)))
                .unwrap_or_default();
            vec![
                format!("{}{error}", esc(n["name"].as_str().unwrap_or_default())),
                num(&n["row_count"]),
                size,
                format!("{stable} ({caught_up})"),
                esc(n["cache_state"]["state"].as_str().unwrap_or("–")),
                last_write,
            ]
        })
        .collect();
    let more = if listing["next_cursor"]
        .as_str()
        .is_some_and(|c| !c.is_empty())
    {
        html::banner(&format!("Showing the first {PAGE} namespaces."), false)
    } else {
        String::new()
    };
    format!(
        "{more}{}",
        table(
            &[
                "namespace",
                "rows",
                "size",
                "stable as of",
                "cache",
                "last write"
            ],
            &rows
        )
    )
}
