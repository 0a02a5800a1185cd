//! Ranked scatter/gather for the `fts` and `ann` selectors (count and values modes), and the
//! small upstream query helper the scan sources share.
//!
//! One Turbopuffer query per shard (`rank_by [field, "BM25", query]` or
//! `[field, "ANN", vector]`), each capped at `top_k = 10_000`, at most `threads` in flight, the
//! caller's `filters` ANDed with the stable-cut predicate and the shard condition. BM25 returns
//! only matching rows (score > 0); for ANN the gateway keeps the rows with `$dist <= radius`
//! (rows come in ascending distance, so the first row outside the ball ends the shard).
//!
//! A shard is *saturated* when its page is full and every row of it matched: there may be more.
//! Without `exhaustive` one round is done and saturated shards make the result a lower bound
//! (`bounded`, `shards_saturated`). With `exhaustive` each saturated shard is paged further
//! (the same `threads` bound on every round) until every page is short or the deadline passes
//! (`timed_out`; unfinished shards stay counted as saturated).
//!
//! Score-band pagination is realised as offset paging over the same ranked query at one stable
//! cut: upstream orders ties deterministically (by id), so consecutive pages are the next bands
//! of the same ranking (Turbopuffer has no filter on `$score`/`$dist` to express the band as a
//! predicate). The cut (`_hevlayer_upserted_at <= watermark` with eventual reads, or a strong
//! read before a watermark exists) keeps pages consistent with each other.

use std::time::Instant;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::{Value, json};

use super::request::Ranked;
use crate::core::error::GatewayError;
use crate::core::upstream::Upstream;

/// `filters` for one shard at one cut: the caller's filter, the cut predicate, the shard.
pub fn shard_filters(
    filters: Option<&Value>,
    cut: Option<u64>,
    shards: u32,
    shard: u32,
) -> Option<Value> {
    let mut conds: Vec<Value> = Vec::new();
    if let Some(f) = filters {
        conds.push(f.clone());
    }
    if let Some(w) = cut {
        conds.push(json!([scatter::UPSERTED_AT, "Lte", w]));
    }
    if shards > 1 {
        conds.push(json!([scatter::SHARD, "Eq", shard]));
    }
    match conds.len() {
        0 => None,
        1 => conds.pop(),
        _ => Some(json!(["And", conds])),
    }
}

/// Read consistency at a cut: eventual with the predicate, strong without one.
pub fn consistency(cut: Option<u64>) -> Value {
    json!({"level": if cut.is_some() { "eventual" } else { "strong" }})
}

/// A ranked scatter/gather.
#[derive(Clone, Debug)]
pub struct RankedSpec<'a> {
    pub namespace: &'a str,
    pub ranked: &'a Ranked,
    pub filters: Option<&'a Value>,
    /// `false` (ids only) or the attributes the values histogram needs.
    pub include_attributes: Value,
    pub shards: u32,
    pub threads: usize,
    pub exhaustive: bool,
    pub deadline: Instant,
    pub cut: Option<u64>,
    /// Rows per shard page (Turbopuffer's `top_k` ceiling in production).
    pub page: usize,
}

/// What a ranked scatter/gather found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RankedOutcome {
    /// Rows matched (in the ball for `ann`).
    pub matched: u64,
    /// Rows read from upstream.
    pub read: u64,
    pub shards_saturated: u32,
    pub shards_total: u32,
    pub timed_out: bool,
}

impl RankedOutcome {
    /// The count is a lower bound.
    pub fn bounded(&self) -> bool {
        self.shards_saturated > 0
    }
}

fn page_body(spec: &RankedSpec<'_>, shard: u32, offset: usize) -> Value {
    let rank_by = match spec.ranked {
        Ranked::Fts { field, query } => json!([field, "BM25", query]),
        Ranked::Ann { field, vector, .. } => json!([field, "ANN", vector]),
    };
    let mut body = json!({
        "rank_by": rank_by,
        "top_k": spec.page,
        "include_attributes": spec.include_attributes,
        "consistency": consistency(spec.cut),
    });
    if offset > 0 {
        body["offset"] = json!(offset);
    }
    if let Some(f) = shard_filters(spec.filters, spec.cut, spec.shards, shard) {
        body["filters"] = f;
    }
    body
}

/// Runs the scatter/gather, handing every matched page to `on_rows`.
pub async fn run(
    upstream: &Upstream,
    spec: &RankedSpec<'_>,
    mut on_rows: impl FnMut(&[Value]),
) -> Result<RankedOutcome, GatewayError> {
    let shards = spec.shards.max(1);
    let threads = spec.threads.max(1);
    let page = spec.page.max(1);
    let radius = match spec.ranked {
        Ranked::Ann { radius, .. } => Some(*radius),
        Ranked::Fts { .. } => None,
    };
    let mut out = RankedOutcome {
        shards_total: shards,
        ..RankedOutcome::default()
    };
    let mut queue: Vec<(u32, usize)> = (0..shards).rev().map(|s| (s, 0)).collect();
    let mut saturated = vec![false; shards as usize];
    let mut in_flight = FuturesUnordered::new();
    loop {
        while in_flight.len() < threads {
            let Some((shard, offset)) = queue.pop() else {
                break;
            };
            let body = page_body(spec, shard, offset);
            let deadline = tokio::time::Instant::from_std(spec.deadline);
            in_flight.push(async move {
                let r = tokio::time::timeout_at(
                    deadline,
                    crate::sources::origin::query(upstream, "scan_ranked", spec.namespace, &body),
                )
                .await;
                (shard, offset, r)
            });
        }
        let Some((shard, offset, result)) = in_flight.next().await else {
            break;
        };
        let Ok(result) = result else {
            // The deadline passed: this shard and everything still queued or in flight is
            // unfinished, so the count is a lower bound.
            out.timed_out = true;
            saturated[shard as usize] = true;
            for (s, _) in queue.drain(..) {
                saturated[s as usize] = true;
            }
            while let Some((s, _, _)) = in_flight.next().await {
                saturated[s as usize] = true;
            }
            break;
        };
        let mut body = result?;
        let rows = match body.get_mut("rows").map(Value::take) {
            Some(Value::Array(rows)) => rows,
            _ => Vec::new(),
        };
        out.read += rows.len() as u64;
        let in_ball = match radius {
            None => rows.len(),
            Some(r) => rows
                .iter()
                .take_while(|row| {
                    row.get("$dist")
                        .and_then(Value::as_f64)
                        .is_some_and(|d| d <= r)
                })
                .count(),
        };
        out.matched += in_ball as u64;
        on_rows(&rows[..in_ball]);
        let full = rows.len() >= page && in_ball == rows.len();
        saturated[shard as usize] = full;
        if full && spec.exhaustive {
            if Instant::now() >= spec.deadline {
                out.timed_out = true;
            } else {
                queue.push((shard, offset + page));
            }
        }
    }
    out.shards_saturated = saturated.iter().filter(|s| **s).count() as u32;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_page_bodies() {
        let ranked = Ranked::Ann {
            field: "vector".into(),
            vector: vec![0.5, 1.0],
            radius: 0.2,
        };
        let f = json!(["c", "Eq", "x"]);
        let spec = RankedSpec {
            namespace: "ns",
            ranked: &ranked,
            filters: Some(&f),
            include_attributes: json!(false),
            shards: 4,
            threads: 2,
            exhaustive: true,
            deadline: Instant::now(),
            cut: Some(77),
            page: 10_000,
        };
        let b = page_body(&spec, 2, 20_000);
        assert_eq!(b["rank_by"], json!(["vector", "ANN", [0.5, 1.0]]));
        assert_eq!(
            (b["top_k"].as_u64(), b["offset"].as_u64()),
            (Some(10_000), Some(20_000))
        );
        assert_eq!(
            b["filters"],
            json!([
                "And",
                [
                    ["c", "Eq", "x"],
                    ["_hevlayer_upserted_at", "Lte", 77],
                    ["_hevlayer_shard", "Eq", 2]
                ]
            ])
        );
        assert_eq!(b["consistency"]["level"], "eventual");
        let fts = Ranked::Fts {
            field: "title".into(),
            query: "q".into(),
        };
        let spec = RankedSpec {
            ranked: &fts,
            filters: None,
            shards: 1,
            cut: None,
            ..spec
        };
        let b = page_body(&spec, 0, 0);
        assert_eq!(b["rank_by"], json!(["title", "BM25", "q"]));
        assert!(b.get("offset").is_none() && b.get("filters").is_none());
        assert_eq!(b["consistency"]["level"], "strong");
    }
}
