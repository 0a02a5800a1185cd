//! The AWS side: daily unblended cost by service from Cost Explorer (`GetCostAndUsage`, the
//! last 30 days through today, filtered by the configured cost-allocation tag), read on the
//! control runtime every `cacheTtlSeconds` through the official SDK. A failed read keeps the last
//! good days and marks them stale; the routes never call AWS themselves.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_costexplorer::Client;
use aws_sdk_costexplorer::types::{
    DateInterval, Expression, Granularity, GroupDefinition, GroupDefinitionType, TagValues,
};
use chrono::{NaiveDate, TimeDelta, Utc};

use crate::core::config::CostConfig;

/// The metric read (what the bill shows before credits and discounts are amortized).
pub const METRIC: &str = "UnblendedCost";
const DAY_MS: u64 = 86_400_000;

/// One service's cost over one day.
#[derive(Clone, Debug, PartialEq)]
pub struct AwsDay {
    pub start_ms: u64,
    pub end_ms: u64,
    pub service: String,
    pub amount_usd: f64,
    /// Cost Explorer's own flag: the day's figures are not final.
    pub estimated: bool,
}

/// What the last reads left.
#[derive(Clone, Debug, Default)]
pub struct AwsState {
    /// The last good read (`None`: never read successfully).
    pub days: Option<Vec<AwsDay>>,
    pub refreshed_at_ms: u64,
    /// Why the last read failed (the data, if any, is stale).
    pub last_error: Option<String>,
}

impl AwsState {
    pub fn stale(&self) -> bool {
        self.last_error.is_some()
    }
}

/// A Cost Explorer client for the configured endpoint and region. Credentials: the standard AWS
/// chain (environment, web identity / IRSA, profile, instance metadata).
pub async fn client(cfg: &CostConfig) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(cfg.region.clone()))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2));
    if let Some(ep) = &cfg.endpoint {
        loader = loader.endpoint_url(ep);
    }
    Client::new(&loader.load().await)
}

fn day_ms(d: &str) -> Option<u64> {
    let date = NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()?;
    let ms = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
    u64::try_from(ms).ok()
}

/// Reads the last 30 days (and today so far), every page.
pub async fn read(client: &Client, cfg: &CostConfig) -> Result<Vec<AwsDay>, String> {
    let today = Utc::now().date_naive();
    let start = (today - TimeDelta::days(30)).format("%Y-%m-%d").to_string();
    let end = (today + TimeDelta::days(1)).format("%Y-%m-%d").to_string();
    let period = DateInterval::builder()
        .start(start)
        .end(end)
        .build()
        .map_err(|e| e.to_string())?;
    let by_service = GroupDefinition::builder()
        .r#type(GroupDefinitionType::Dimension)
        .key("SERVICE")
        .build();
    let filter = match (&cfg.tag_key, &cfg.tag_value) {
        (Some(k), v) => Some(
            Expression::builder()
                .tags(
                    TagValues::builder()
                        .key(k)
                        .set_values(v.clone().map(|v| vec![v]))
                        .build(),
                )
                .build(),
        ),
        (None, _) => None,
    };
    let mut days = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = client
            .get_cost_and_usage()
            .time_period(period.clone())
            .granularity(Granularity::Daily)
            .metrics(METRIC)
            .group_by(by_service.clone())
            .set_filter(filter.clone())
            .set_next_page_token(token.take())
            .send()
            .await
            .map_err(|e| crate::core::error::chain(&e))?;
        for r in out.results_by_time() {
            let Some(p) = r.time_period() else { continue };
            let (Some(start_ms), Some(end_ms)) = (day_ms(p.start()), day_ms(p.end())) else {
                return Err(format!(
                    "Cost Explorer answered a period that is not YYYY-MM-DD: {} .. {}",
                    p.start(),
                    p.end()
                ));
            };
            let end_ms = end_ms.max(start_ms + DAY_MS);
            let mut push = |service: &str, m: Option<&aws_sdk_costexplorer::types::MetricValue>| {
                let amount = m
                    .and_then(|m| m.amount())
                    .and_then(|a| a.parse::<f64>().ok());
                if let Some(amount_usd) = amount {
                    days.push(AwsDay {
                        start_ms,
                        end_ms,
                        service: service.to_string(),
                        amount_usd,
                        estimated: r.estimated(),
                    });
                }
            };
            if r.groups().is_empty() {
                // Ungrouped answers carry only the total.
                push("total", r.total().and_then(|t| t.get(METRIC)));
            }
            for g in r.groups() {
                let service = g.keys().join(" / ");
                push(&service, g.metrics().and_then(|m| m.get(METRIC)));
            }
        }
        match out.next_page_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(days)
}

/// The share of `[from_ms, to_ms)` each day covers, applied to its amount (Cost Explorer's
/// days are the finest grain read, so a window that cuts a day takes that fraction of it).
pub fn within(days: &[AwsDay], from_ms: u64, to_ms: u64) -> Vec<(AwsDay, f64)> {
    days.iter()
        .filter_map(|d| {
            let lo = d.start_ms.max(from_ms);
            let hi = d.end_ms.min(to_ms);
            (hi > lo).then(|| {
                let share = (hi - lo) as f64 / (d.end_ms - d.start_ms) as f64;
                (d.clone(), d.amount_usd * share)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_take_the_days_they_cover() {
        let d0 = day_ms("2026-01-01").unwrap();
        let day = |i: u64, amount_usd| AwsDay {
            start_ms: d0 + i * DAY_MS,
            end_ms: d0 + (i + 1) * DAY_MS,
            service: "EC2".into(),
            amount_usd,
            estimated: false,
        };
        let days = vec![day(0, 10.0), day(1, 20.0)];
        let all: f64 = within(&days, 0, u64::MAX).iter().map(|x| x.1).sum();
        assert_eq!(all, 30.0);
        // The last six hours of day 0 and the first six of day 1.
        let cut = within(&days, d0 + 18 * 3_600_000, d0 + DAY_MS + 6 * 3_600_000);
        assert_eq!(cut.iter().map(|x| x.1).collect::<Vec<_>>(), vec![2.5, 5.0]);
        assert!(within(&days, d0 + 2 * DAY_MS, d0 + 3 * DAY_MS).is_empty());
    }
}
