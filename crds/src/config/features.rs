//! Configuration of the durable and derived features: the object store (search history,
//! clickstream, snapshot bodies), search-history batching, the snapshot writer and scans, plus
//! [`parse_duration_ms`] for the Index snapshot policy. Their keys, defaults and `LAYER_*`
//! variables are in the reference file of [`super`] (sections `gateway.objectStore`,
//! `gateway.history`, `gateway.snapshots`, `gateway.scan`); the overrides are in the one table
//! [`super::ENV_OVERRIDES`].
//!
//! S3 credentials come from the standard AWS environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, or web identity / IRSA through
//! `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`), read by the gateway's object store client.

use std::path::PathBuf;

use serde::Deserialize;

/// Which object store backs history and snapshots.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ObjectStoreBackend {
    /// A local directory (the embedded default).
    #[default]
    Local,
    /// S3 or an S3-compatible server.
    S3,
}

impl std::str::FromStr for ObjectStoreBackend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "local" => Ok(Self::Local),
            "s3" => Ok(Self::S3),
            other => Err(format!("expected local or s3, got {other:?}")),
        }
    }
}

/// `gateway.objectStore`. `Debug` masks userinfo in `endpoint` (S3 credentials come from the
/// AWS environment, never from the URL).
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectStoreConfig {
    pub backend: ObjectStoreBackend,
    /// Root directory for `local` (default `<dataDir>/objects`).
    pub dir: Option<PathBuf>,
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Prefix prepended to every key (no leading or trailing slash needed).
    pub prefix: String,
    pub allow_http: bool,
}

impl std::fmt::Debug for ObjectStoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStoreConfig")
            .field("backend", &self.backend)
            .field("dir", &self.dir)
            .field("bucket", &self.bucket)
            .field(
                "endpoint",
                &self.endpoint.as_deref().map(super::redact_userinfo),
            )
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// `gateway.history`: search history and clickstream batching.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct HistoryConfig {
    pub flush_interval_ms: u64,
    pub max_batch_entries: usize,
    pub queue_capacity: usize,
    pub recent_window: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            flush_interval_ms: 1000,
            max_batch_entries: 1000,
            queue_capacity: 65_536,
            recent_window: 1000,
        }
    }
}

/// `gateway.snapshots`: the automatic snapshot writer's gateway-wide settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SnapshotsConfig {
    pub min_interval_ms: u64,
    pub field_cap: usize,
}

impl Default for SnapshotsConfig {
    fn default() -> Self {
        SnapshotsConfig {
            min_interval_ms: 300_000,
            field_cap: 10_000,
        }
    }
}

/// `gateway.scan`: scan defaults.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ScanConfig {
    pub default_threads: u32,
    pub values_cap: usize,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            default_threads: 8,
            values_cap: 1_000_000,
        }
    }
}

/// `gateway.queue`: the PostgreSQL staging queue behind pipelines (and, later, the UDF runtime).
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PipelineQueueConfig {
    /// A `postgresql://` URL (or libpq `key=value` string). Unset: no PostgreSQL, and every
    /// pipeline route answers 503 naming `LAYER_DATABASE_URL` (`scripts/run` sets it to a private
    /// cluster under the data directory).
    pub url: Option<String>,
    /// The schema the queue's tables live in (created by the first migration).
    pub schema: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// How long a call waits for a connection before it answers 500 `database_unavailable`.
    pub connect_timeout_ms: u64,
    /// A document whose lease runs out this many times since it was staged (claimed by workers
    /// that never finished it) is moved to `failed` with reason `lease_expired`.
    pub max_lease_expiries: i32,
}

impl Default for PipelineQueueConfig {
    fn default() -> Self {
        PipelineQueueConfig {
            url: None,
            schema: "layer_queue".into(),
            pool_size: 16,
            connect_timeout_ms: 5_000,
            max_lease_expiries: 5,
        }
    }
}

impl std::fmt::Debug for PipelineQueueConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineQueueConfig")
            .field("url", &self.url.as_deref().map(super::redact_userinfo))
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("max_lease_expiries", &self.max_lease_expiries)
            .finish()
    }
}

/// Parses a policy duration: `30s`, `5m`, `12h`, `30d`, `2w`, or a bare number of seconds.
/// `never` (retention) is `None`.
pub fn parse_duration_ms(s: &str) -> Result<Option<u64>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("expected a duration like 30s, 5m, 12h, 30d or never, got {s:?}"))?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => {
            return Err(format!(
                "unknown duration unit in {s:?} (use ms, s, m, h, d, w or never)"
            ));
        }
    };
    Ok(Some(n.saturating_mul(unit_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("5m"), Ok(Some(300_000)));
        assert_eq!(parse_duration_ms("30d"), Ok(Some(30 * 86_400_000)));
        assert_eq!(parse_duration_ms("never"), Ok(None));
        assert_eq!(parse_duration_ms("90"), Ok(Some(90_000)));
        assert!(parse_duration_ms("5y").is_err());
        assert!(parse_duration_ms("").is_err());
    }
}
