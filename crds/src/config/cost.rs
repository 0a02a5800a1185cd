//! `gateway.cost`: what `GET /v2/cost`, `/v2/cost/timeseries` and `/v2/cost/rate-card` read.
//! The Turbopuffer side is priced from a rate-card file (`rateCardFile`) times the usage the
//! gateway measures; the AWS side reads Cost Explorer (`costExplorerEnabled`, with `endpoint`
//! for a Cost Explorer other than AWS's, e.g. moto). The instance price list of the AWS rate card
//! is configured (`instancePrices`): the gateway has no Pricing API client. Names follow the
//! documented product's Helm values (`gateway.cost.costExplorerEnabled`, `tagKey`, `tagValue`,
//! `site`, `cacheTtlSeconds`, `region`).

use std::path::PathBuf;

use serde::Deserialize;

/// `gateway.cost`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CostConfig {
    /// The Turbopuffer rate card (YAML or JSON: `version`, `source: invoice`, `verifiedBy`,
    /// `verifiedAt`, `lines` of `{service, unit, usd}`); unset: the cost routes answer 503.
    pub rate_card_file: Option<PathBuf>,
    /// Read AWS costs from Cost Explorer (credentials: the standard AWS chain: environment,
    /// web identity / IRSA, profile, instance metadata). Off: `/v2/cost` and
    /// `/v2/cost/timeseries` answer 503.
    pub cost_explorer_enabled: bool,
    /// Cost Explorer's endpoint (unset: AWS's own for `region`).
    pub endpoint: Option<String>,
    /// The region Cost Explorer is called in (and the AWS rate card's region).
    pub region: String,
    /// Only costs carrying this cost-allocation tag (with `tagValue`) are read; unset: the
    /// account's whole bill.
    pub tag_key: Option<String>,
    pub tag_value: Option<String>,
    /// Shown as every line's `site` when set.
    pub site: Option<String>,
    /// How often Cost Explorer is read (each call is billed by AWS).
    pub cache_ttl_seconds: u64,
    /// How often namespace sizes (storage) are read from the upstream metadata.
    pub refresh_interval_ms: u64,
    /// The AWS rate card's instance prices, as configured (no Pricing API client: the card
    /// reports `stale: true` and says so).
    pub instance_prices: Vec<InstancePrice>,
}

impl Default for CostConfig {
    fn default() -> Self {
        CostConfig {
            rate_card_file: None,
            cost_explorer_enabled: false,
            endpoint: None,
            region: "us-east-1".into(),
            tag_key: None,
            tag_value: None,
            site: None,
            cache_ttl_seconds: 86_400,
            refresh_interval_ms: 300_000,
            instance_prices: Vec::new(),
        }
    }
}

/// One configured instance price (`AwsInstancePrice` on the wire).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InstancePrice {
    #[serde(alias = "instance_type")]
    pub instance_type: String,
    pub family: String,
    pub vcpu: u32,
    #[serde(alias = "memory_gib")]
    pub memory_gib: f64,
    #[serde(alias = "nvme_gib", default)]
    pub nvme_gib: f64,
    #[serde(alias = "hourly_usd")]
    pub hourly_usd: f64,
}
