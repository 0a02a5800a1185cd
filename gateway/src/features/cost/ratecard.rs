//! The Turbopuffer rate card: a file (YAML or JSON) of invoice-verified unit prices, and what a
//! span of measured usage costs under it.
//!
//! ```yaml
//! version: "2026-01"
//! source: invoice             # the only source accepted
//! verifiedBy: finance@acme    # or verified_by
//! verifiedAt: "2026-01-05"    # or verified_at
//! lines:
//!   - {service: queries,  unit: 1M queries, usd: 2.0}
//!   - {service: queried,  unit: PB,         usd: 1.0}
//!   - {service: returned, unit: GB,         usd: 0.05}
//!   - {service: writes,   unit: GB,         usd: 2.0}
//!   - {service: storage,  unit: GB-month,   usd: 0.33}
//! ```
//!
//! Services are the quantities the gateway measures (`core::usage`): `queries` (upstream query
//! calls), `queried` (logical bytes of the namespaces queried), `returned` (query response bytes),
//! `writes` (write request bytes) and `storage` (the namespaces' logical bytes over time). Units:
//! `query`, `1k queries`, `1M queries` for `queries`; `B`, `KB`, `MB`, `GB`, `TB`, `PB` (powers of
//! 1000) and `KiB` … `PiB` (powers of 1024) for the byte services; those byte units with
//! `-month` for `storage`, a month being 730 hours. Anything else is refused with a message
//! naming it, and the routes answer 503 with that message: a price the gateway cannot apply is
//! never guessed at.

use serde::Deserialize;

use crate::core::usage::Totals;

/// Seconds in the month `storage` is priced per (730 hours).
pub const MONTH_S: f64 = 730.0 * 3600.0;

/// The services the gateway measures.
pub const SERVICES: [&str; 5] = ["queries", "queried", "returned", "writes", "storage"];

/// One priced line of the card.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLine {
    pub service: String,
    pub unit: String,
    pub usd: f64,
}

/// The card as the file holds it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateCard {
    pub version: String,
    pub source: String,
    #[serde(alias = "verifiedBy", default)]
    pub verified_by: String,
    #[serde(alias = "verifiedAt", default)]
    pub verified_at: String,
    pub lines: Vec<RateLine>,
}

/// How many of the measured quantity one `unit` is (queries, bytes, or byte-seconds).
fn scale(service: &str, unit: &str) -> Option<f64> {
    let bytes = |u: &str| -> Option<f64> {
        Some(match u {
            "B" | "byte" | "bytes" => 1.0,
            "KB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            "TB" => 1e12,
            "PB" => 1e15,
            "KiB" => 1024.0,
            "MiB" => 1024f64.powi(2),
            "GiB" => 1024f64.powi(3),
            "TiB" => 1024f64.powi(4),
            "PiB" => 1024f64.powi(5),
            _ => return None,
        })
    };
    match service {
        "queries" => Some(match unit {
            "query" | "queries" => 1.0,
            "1k queries" => 1e3,
            "1M queries" => 1e6,
            _ => return None,
        }),
        "queried" | "returned" | "writes" => bytes(unit),
        "storage" => bytes(unit.strip_suffix("-month")?).map(|b| b * MONTH_S),
        _ => None,
    }
}

impl RateCard {
    /// Parses and checks a card file's text.
    pub fn parse(text: &str) -> Result<RateCard, String> {
        let card: RateCard = serde_yaml_ng::from_str(text)
            .map_err(|e| format!("the rate card does not parse: {e}"))?;
        if card.source != "invoice" {
            return Err(format!(
                "the rate card's source is {:?}; only \"invoice\" is accepted",
                card.source
            ));
        }
        if card.version.trim().is_empty() {
            return Err("the rate card has no version".into());
        }
        for l in &card.lines {
            if !SERVICES.contains(&l.service.as_str()) {
                return Err(format!(
                    "rate card line {:?}: unknown service (the gateway measures {})",
                    l.service,
                    SERVICES.join(", ")
                ));
            }
            if scale(&l.service, &l.unit).is_none() {
                return Err(format!(
                    "rate card line {:?}: unit {:?} is not one the gateway can apply",
                    l.service, l.unit
                ));
            }
            if !(l.usd.is_finite() && l.usd >= 0.0) {
                return Err(format!(
                    "rate card line {:?}: usd must be a non-negative number",
                    l.service
                ));
            }
        }
        Ok(card)
    }

    /// The priced lines of `usage` over `seconds` with `storage_bytes` stored throughout.
    pub fn price(&self, usage: &Totals, storage_bytes: u64, seconds: f64) -> Vec<Priced> {
        self.lines
            .iter()
            .map(|l| {
                let measured = match l.service.as_str() {
                    "queries" => usage.queries as f64,
                    "queried" => usage.queried_bytes as f64,
                    "returned" => usage.returned_bytes as f64,
                    "writes" => usage.written_bytes as f64,
                    _ => storage_bytes as f64 * seconds,
                };
                let per = scale(&l.service, &l.unit).unwrap_or(f64::INFINITY);
                let qty = measured / per;
                let bytes = match l.service.as_str() {
                    "queried" => Some(usage.queried_bytes),
                    "returned" => Some(usage.returned_bytes),
                    "writes" => Some(usage.written_bytes),
                    "storage" => Some(storage_bytes),
                    _ => None,
                };
                Priced {
                    service: l.service.clone(),
                    unit: l.unit.clone(),
                    qty,
                    qty_bytes: bytes,
                    amount_usd: qty * l.usd,
                }
            })
            .collect()
    }
}

/// One rate-card line applied to usage.
#[derive(Clone, Debug, PartialEq)]
pub struct Priced {
    pub service: String,
    pub unit: String,
    pub qty: f64,
    pub qty_bytes: Option<u64>,
    pub amount_usd: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARD: &str = r#"
version: "2026-01"
source: invoice
verifiedBy: finance
verifiedAt: "2026-01-05"
lines:
  - {service: queries, unit: 1M queries, usd: 2.0}
  - {service: writes, unit: GB, usd: 2.0}
  - {service: storage, unit: GiB-month, usd: 0.33}
"#;

    #[test]
    fn prices_usage() {
        let card = RateCard::parse(CARD).unwrap();
        assert_eq!(card.verified_by, "finance");
        let usage = Totals {
            queries: 500_000,
            written_bytes: 3_000_000_000,
            ..Totals::default()
        };
        let p = card.price(&usage, 1024 * 1024 * 1024, MONTH_S);
        assert_eq!(p[0].amount_usd, 1.0);
        assert_eq!(p[1].amount_usd, 6.0);
        assert!((p[2].amount_usd - 0.33).abs() < 1e-12, "{p:?}");
        assert_eq!(p[2].qty_bytes, Some(1 << 30));
    }

    #[test]
    fn refuses_what_it_cannot_apply() {
        for (bad, says) in [
            (CARD.replace("invoice", "estimate"), "only \"invoice\""),
            (
                CARD.replace("service: writes", "service: egress"),
                "unknown service",
            ),
            (
                CARD.replace("unit: GB,", "unit: GB-hour,"),
                "unit \"GB-hour\"",
            ),
            (CARD.replace("usd: 2.0}", "usd: -1}"), "non-negative"),
            ("lines: 3".to_string(), "does not parse"),
        ] {
            let e = RateCard::parse(&bad).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }
}
