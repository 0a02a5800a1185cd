//! The wire shapes: `CostSnapshot` and `CostTimeseries` (contract §2.11) from the rate card, the
//! Cost Explorer days, the namespace sizes and the measured usage. Pure functions of their
//! inputs and `now_ms`.
//!
//! Turbopuffer lines have basis `estimate` (invoice-verified rates times the gateway's own
//! measurement, not Turbopuffer's meter); AWS lines have basis `metered` (Cost Explorer's
//! figures). Timeseries samples are `[start_ms, usd]`, one per step, the last step ending at the
//! first step boundary at or after now.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Storage;
use super::aws::{AwsState, within};
use super::ratecard::{Priced, RateCard};
use crate::core::config::CostConfig;
use crate::core::usage::Usage;

/// Everything a report reads.
pub struct Inputs<'a> {
    pub card: &'a RateCard,
    pub aws: &'a AwsState,
    pub storage: &'a Storage,
    pub usage: &'a Usage,
    pub cfg: &'a CostConfig,
}

const TIB: f64 = 1_099_511_627_776.0;

fn iso(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// The Turbopuffer lines over `[from, to)`.
fn turbopuffer(i: &Inputs, from: u64, to: u64) -> Vec<Priced> {
    let usage = i.usage.sum(from, to);
    i.card
        .price(&usage, i.storage.bytes(), (to - from) as f64 / 1000.0)
}

/// AWS amounts by service over `[from, to)`, with the days they came from.
fn aws_by_service(i: &Inputs, from: u64, to: u64) -> BTreeMap<String, (f64, Vec<Value>)> {
    let mut out: BTreeMap<String, (f64, Vec<Value>)> = BTreeMap::new();
    let days = i.aws.days.as_deref().unwrap_or_default();
    for (d, amount) in within(days, from, to) {
        let e = out.entry(d.service.clone()).or_default();
        e.0 += amount;
        e.1.push(json!({
            "start_ms": d.start_ms, "end_ms": d.end_ms, "amount_usd": amount,
            "day_amount_usd": d.amount_usd, "estimated": d.estimated,
        }));
    }
    out
}

fn with_site(mut v: Value, cfg: &CostConfig) -> Value {
    if let Some(site) = &cfg.site {
        v["site"] = json!(site);
    }
    v
}

/// `CostSnapshot` over the `window_s` seconds before `now`.
pub fn snapshot(i: &Inputs, window_s: u64, now: u64) -> Value {
    let from = now.saturating_sub(window_s * 1000);
    let version = &i.card.version;
    let mut lines = Vec::new();
    let mut tpuf_usd = 0.0;
    for p in turbopuffer(i, from, now) {
        tpuf_usd += p.amount_usd;
        let mut l = json!({
            "provider": "turbopuffer", "service": p.service, "basis": "estimate",
            "amount_usd": p.amount_usd, "rate_card_version": version,
            "qty": p.qty, "unit": p.unit,
        });
        if let Some(b) = p.qty_bytes {
            l["qty_bytes"] = json!(b);
        }
        if p.service == "storage" {
            l["breakdown"] = i
                .storage
                .by_ns
                .iter()
                .map(|(ns, (b, rows))| json!({"namespace": ns, "bytes": b, "rows": rows}))
                .collect();
        }
        lines.push(with_site(l, i.cfg));
    }
    let mut aws_usd = 0.0;
    for (service, (amount, days)) in aws_by_service(i, from, now) {
        aws_usd += amount;
        lines.push(with_site(
            json!({
                "provider": "aws", "service": service, "basis": "metered",
                "amount_usd": amount, "breakdown": days,
            }),
            i.cfg,
        ));
    }
    let total = aws_usd + tpuf_usd;
    let usage = i.usage.sum(from, now);
    let mut totals = json!({"total_usd": total, "aws_usd": aws_usd, "turbopuffer_usd": tpuf_usd});
    if usage.queries > 0 {
        totals["cost_per_query_usd"] = json!(total / usage.queries as f64);
    }
    if i.storage.rows() > 0 {
        totals["cost_per_document_usd"] = json!(total / i.storage.rows() as f64);
    }
    if i.storage.bytes() > 0 {
        totals["cost_per_tib_indexed_usd"] = json!(total / (i.storage.bytes() as f64 / TIB));
    }
    json!({
        "as_of_ms": now,
        "window_seconds": window_s,
        "totals": totals,
        "lines": lines,
        "rate_card_status": {
            "turbopuffer_rate_card_version": version,
            "aws_cost_source": "cost_explorer",
            "aws_cost_refreshed_at_ms": i.aws.refreshed_at_ms,
            "aws_cost_stale": i.aws.stale(),
            "aws_pricing_stale": true,
            "aws_pricing_refreshed_at_ms": 0,
        },
        "caveats": caveats(i, from),
    })
}

fn caveats(i: &Inputs, from: u64) -> Vec<String> {
    let mut c = vec![
        "Turbopuffer amounts are the rate card's prices applied to the upstream usage this \
         gateway measured (queries, bytes queried, returned and written, to the 5-minute \
         bucket); traffic that does not pass through this gateway is not counted, and \
         Turbopuffer's invoice is the authority."
            .to_string(),
        "Storage is priced at the namespaces' current logical size (their metadata) over the \
         whole window; bytes queried charge each query with its namespace's size as last read."
            .to_string(),
        "AWS amounts are Cost Explorer's daily unblended cost by service; a window that covers \
         part of a day takes that fraction of the day."
            .to_string(),
        "No AWS Pricing API client: the instance price list is the configured one \
         (gateway.cost.instancePrices), reported stale."
            .to_string(),
    ];
    if from < i.usage.since_ms {
        c.push(format!(
            "Usage is measured in memory since this gateway started ({}); the window begins \
             earlier, and usage before the start is not counted.",
            iso(i.usage.since_ms)
        ));
    }
    match (&i.storage.refreshed_at_ms, &i.storage.last_error) {
        (None, _) => c.push(
            "Namespace sizes have not been read yet: storage and bytes queried count 0.".into(),
        ),
        (Some(at), Some(e)) => c.push(format!(
            "Namespace sizes could not be refreshed ({e}); they are from {}.",
            iso(*at)
        )),
        _ => {}
    }
    if let Some(e) = &i.aws.last_error {
        c.push(format!(
            "Cost Explorer could not be refreshed ({e}); AWS amounts are from {}.",
            iso(i.aws.refreshed_at_ms)
        ));
    }
    if i.aws.days.iter().flatten().any(|d| d.estimated) {
        c.push("Some AWS days are still estimated by Cost Explorer.".into());
    }
    c
}

/// `CostTimeseries`: USD per step over the `window_s` seconds before `now`.
pub fn timeseries(i: &Inputs, window_s: u64, step_s: u64, now: u64) -> Value {
    let step = step_s * 1000;
    let end = now.div_ceil(step) * step;
    let n = window_s / step_s;
    let starts: Vec<u64> = (0..n).map(|k| end.saturating_sub((n - k) * step)).collect();
    let version = &i.card.version;
    let mut series = Vec::new();
    let tpuf: Vec<Vec<Priced>> = starts
        .iter()
        .map(|t| turbopuffer(i, *t, t + step))
        .collect();
    for (k, l) in i.card.lines.iter().enumerate() {
        let samples: Vec<Value> = starts
            .iter()
            .zip(&tpuf)
            .map(|(t, p)| json!([t, p[k].amount_usd]))
            .collect();
        series.push(with_site(
            json!({
                "provider": "turbopuffer", "service": l.service, "basis": "estimate",
                "rate_card_version": version, "label": format!("turbopuffer {}", l.service),
                "samples": samples,
            }),
            i.cfg,
        ));
    }
    let per_step: Vec<BTreeMap<String, (f64, Vec<Value>)>> = starts
        .iter()
        .map(|t| aws_by_service(i, *t, t + step))
        .collect();
    let services: std::collections::BTreeSet<&String> =
        per_step.iter().flat_map(|m| m.keys()).collect();
    for s in services {
        let samples: Vec<Value> = starts
            .iter()
            .zip(&per_step)
            .map(|(t, m)| json!([t, m.get(s).map_or(0.0, |x| x.0)]))
            .collect();
        series.push(with_site(
            json!({
                "provider": "aws", "service": s, "basis": "metered",
                "label": format!("aws {s}"), "samples": samples,
            }),
            i.cfg,
        ));
    }
    json!({"window_seconds": window_s, "step_seconds": step_s, "series": series})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::usage::Totals;
    use crate::features::cost::aws::AwsDay;

    const CARD: &str = "version: v1\nsource: invoice\nlines:\n  - {service: queries, unit: query, usd: 0.5}\n  - {service: storage, unit: B-month, usd: 1.0}\n";
    const H: u64 = 3_600_000;

    #[test]
    fn snapshot_and_timeseries_agree() {
        let now = 1_000 * 24 * H + 30 * 60_000; // 00:30 UTC on day 1000
        let card = RateCard::parse(CARD).unwrap();
        let usage = Usage::new(now - 2 * H);
        let ring = usage.ring();
        let q = |n| Totals {
            queries: n,
            ..Totals::default()
        };
        ring.record(now - 90 * 60_000, &q(2));
        ring.record(now - 60_000, &q(3));
        let day0 = 999 * 24 * H;
        let aws = AwsState {
            days: Some(vec![AwsDay {
                start_ms: day0,
                end_ms: day0 + 24 * H,
                service: "EC2".into(),
                amount_usd: 24.0,
                estimated: false,
            }]),
            refreshed_at_ms: now,
            last_error: None,
        };
        let storage = Storage::default();
        let cfg = CostConfig::default();
        let i = Inputs {
            card: &card,
            aws: &aws,
            storage: &storage,
            usage: &usage,
            cfg: &cfg,
        };
        // 6 hours back: five queries, and the 5.5 hours of day 999 inside the window.
        let s = snapshot(&i, 21_600, now);
        assert_eq!(s["totals"]["aws_usd"], 5.5, "{s}");
        assert_eq!(s["totals"]["turbopuffer_usd"], 2.5, "{s}");
        assert_eq!(s["totals"]["total_usd"], 8.0);
        assert_eq!(s["totals"]["cost_per_query_usd"], 8.0 / 5.0);
        assert!(s["totals"].get("cost_per_document_usd").is_none());
        assert_eq!(s["rate_card_status"]["aws_cost_stale"], false);
        assert!(
            s["caveats"]
                .to_string()
                .contains("since this gateway started")
        );
        assert!(s["caveats"].to_string().contains("have not been read yet"));
        // By hour: six samples on hour boundaries, the last ending at 01:00.
        let t = timeseries(&i, 21_600, 3_600, now);
        let series = t["series"].as_array().unwrap();
        let queries = &series[0]["samples"];
        let starts: Vec<u64> = (0..6).map(|k| queries[k][0].as_u64().unwrap()).collect();
        assert_eq!(
            starts,
            (0..6)
                .map(|k| now - 30 * 60_000 - (5 - k) * H)
                .collect::<Vec<_>>()
        );
        let sum = |s: &Value| -> f64 {
            s["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p[1].as_f64().unwrap())
                .sum()
        };
        assert_eq!(sum(&series[0]), 2.5);
        let ec2 = series.iter().find(|s| s["provider"] == "aws").unwrap();
        // 19:00 on day 999 to 00:00: five hours.
        assert_eq!(sum(ec2), 5.0);
    }
}
