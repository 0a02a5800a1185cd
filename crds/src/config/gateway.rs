//! `gateway`: the data plane's own settings (listener, shards, limits), its document cache tier
//! and the consistency watcher's tunables. The keys, defaults and environment variables are in
//! the reference file of [`super`]; the durable features' sections are in `features`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::{
    CostConfig, HistoryConfig, IndexConsistency, KubernetesConfig, ObjectStoreConfig,
    PipelineQueueConfig, ScanConfig, SnapshotsConfig,
};

/// The data plane's own settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// Shard runtimes (0 = one per core).
    pub shards: usize,
    /// One work-stealing runtime instead of pinned shards (few long-lived HTTP/2 clients).
    pub work_stealing: bool,
    pub data_dir: PathBuf,
    /// Largest request body accepted (413 above it).
    pub max_body_bytes: usize,
    /// Deepest JSON nesting accepted in bodies the gateway parses.
    pub max_json_depth: usize,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    pub drain_timeout_ms: u64,
    /// TTL of the enriched `GET /v2/namespaces` listing cache.
    pub namespace_list_cache_ttl_ms: u64,
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub cache: CacheConfig,
    pub consistency: ConsistencyConfig,
    pub object_store: ObjectStoreConfig,
    pub history: HistoryConfig,
    pub snapshots: SnapshotsConfig,
    pub scan: ScanConfig,
    pub queue: PipelineQueueConfig,
    pub license: LicenseConfig,
    pub cost: CostConfig,
    pub metrics: MetricsConfig,
    pub kubernetes: KubernetesConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            shards: 0,
            work_stealing: false,
            data_dir: PathBuf::from(".layer"),
            max_body_bytes: 64 << 20,
            max_json_depth: 64,
            drain_timeout_ms: 10_000,
            cache: CacheConfig::default(),
            namespace_list_cache_ttl_ms: 10_000,
            server: ServerConfig::default(),
            tls: TlsConfig::default(),
            consistency: ConsistencyConfig::default(),
            object_store: ObjectStoreConfig::default(),
            history: HistoryConfig::default(),
            snapshots: SnapshotsConfig::default(),
            scan: ScanConfig::default(),
            queue: PipelineQueueConfig::default(),
            license: LicenseConfig::default(),
            cost: CostConfig::default(),
            metrics: MetricsConfig::default(),
            kubernetes: KubernetesConfig::default(),
        }
    }
}

/// `gateway.server`: bounds on what clients may hold of a shard (overload and slow clients).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerConfig {
    /// Open client connections per shard; a connection beyond it is answered 503 (with
    /// `retry-after`) and closed.
    pub max_connections_per_shard: usize,
    /// Requests being served at once per shard; beyond it a request is answered 503
    /// `overloaded` with `retry-after` instead of queueing.
    pub max_in_flight_per_shard: usize,
    /// Longest a client may take to send a request's headers; HTTP/1 also closes a keep-alive
    /// connection idle this long (the wait for the next request's headers is timed too).
    pub header_read_timeout_ms: u64,
    /// Longest a client may take to send a request's body (408 `request_timeout`).
    pub body_read_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections_per_shard: 16_384,
            max_in_flight_per_shard: 4_096,
            header_read_timeout_ms: 15_000,
            body_read_timeout_ms: 30_000,
        }
    }
}

/// `gateway.tls`: inbound TLS (plain HTTP when neither file is set).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsConfig {
    /// PEM certificate chain (leaf first).
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// How often the files are checked for changes; a changed pair is loaded for new
    /// connections (a pair that fails to load keeps the old one serving).
    pub reload_interval_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_file: None,
            key_file: None,
            reload_interval_ms: 10_000,
        }
    }
}

impl TlsConfig {
    /// Whether the gateway serves TLS.
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some() && self.key_file.is_some()
    }
}

/// The document cache tier.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CacheConfig {
    /// `nvme` (log-structured segments under `dir`, io_uring), `aerospike` or `disabled`.
    pub tier: CacheTierKind,
    /// Segment directory (default: `<dataDir>/cache`).
    pub dir: Option<PathBuf>,
    /// Size bound of the NVMe tier.
    pub max_bytes: u64,
    /// Hot cache per shard, in bytes.
    pub hot_bytes_per_shard: usize,
    /// Recover the NVMe tier's segments at start (`true`) or clear them.
    pub recover: bool,
    /// Write-path mirror (opt-in): rows a write upserts or patches are read back into the cache
    /// once the write is acknowledged, at most this many ids per write; 0 (the default) leaves
    /// them to the first fetch, so a write costs no second upstream request.
    pub populate_max_ids: usize,
    /// The Aerospike tier (`tier: aerospike`; the gateway must be built with `--features
    /// aerospike`, which the gateway checks: this crate cannot see its features).
    pub aerospike: AerospikeSettings,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            tier: CacheTierKind::Nvme,
            dir: None,
            max_bytes: 1 << 30,
            hot_bytes_per_shard: 64 << 20,
            recover: true,
            populate_max_ids: 0,
            aerospike: AerospikeSettings::default(),
        }
    }
}

/// `gateway.cache.aerospike`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AerospikeSettings {
    /// Seed hosts, `host:port[,host:port]` (env `AEROSPIKE_HOSTS`).
    pub hosts: Option<String>,
    /// Aerospike namespace holding the cache.
    pub namespace: String,
}

impl Default for AerospikeSettings {
    fn default() -> Self {
        AerospikeSettings {
            hosts: None,
            namespace: "layer".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CacheTierKind {
    #[default]
    Nvme,
    /// Aerospike (the gateway's cargo feature `aerospike`).
    Aerospike,
    Disabled,
}

impl std::str::FromStr for CacheTierKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "nvme" => Ok(CacheTierKind::Nvme),
            "disabled" => Ok(CacheTierKind::Disabled),
            "aerospike" => Ok(CacheTierKind::Aerospike),
            other => Err(format!(
                "unknown cache tier {other:?} (nvme, aerospike, disabled)"
            )),
        }
    }
}

/// The consistency watcher's tunables.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ConsistencyConfig {
    /// Read consistency of namespaces without an index entry (`stable` unless set).
    pub default_mode: IndexConsistency,
    pub poll_interval_ms: u64,
    pub stable_poll_interval_ms: u64,
    pub safety_margin_ms: u64,
    pub max_concurrent_polls: usize,
}

impl Default for ConsistencyConfig {
    fn default() -> Self {
        ConsistencyConfig {
            default_mode: IndexConsistency::Stable,
            poll_interval_ms: 1_000,
            stable_poll_interval_ms: 60_000,
            safety_margin_ms: 500,
            max_concurrent_polls: 16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The env parser and the file parser agree on every tier's spelling.
    #[test]
    fn cache_tier_spellings_match_the_file_format() {
        for (s, want) in [
            ("nvme", CacheTierKind::Nvme),
            ("aerospike", CacheTierKind::Aerospike),
            ("disabled", CacheTierKind::Disabled),
        ] {
            assert_eq!(s.parse::<CacheTierKind>(), Ok(want));
            assert_eq!(serde_yaml_ng::from_str::<CacheTierKind>(s).unwrap(), want);
        }
        let err = "ssd".parse::<CacheTierKind>().unwrap_err();
        assert!(err.contains("unknown cache tier"), "{err}");
    }
}

/// `gateway.license`: the offline-verifiable license (`GET /v2/license` reports it; nothing is
/// enforced by it).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LicenseConfig {
    /// The license file (`<base64url claims>.<base64url Ed25519 signature>`).
    pub file: Option<PathBuf>,
    /// The issuer's Ed25519 public key, 32 bytes in hex or base64.
    pub public_key: Option<String>,
    /// Days after `exp` the license stays in `grace`.
    pub grace_days: u64,
}

impl Default for LicenseConfig {
    fn default() -> Self {
        LicenseConfig {
            file: None,
            public_key: None,
            grace_days: 14,
        }
    }
}

/// `gateway.metrics`: the VictoriaMetrics single node the PromQL routes (`/v2/metrics/query`,
/// `/v2/metrics/api/v1/query_range`, ...) forward to. Unset, those routes answer 503
/// `metrics_not_configured`; the catalog routes need nothing.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricsConfig {
    /// Base URL of VictoriaMetrics (`http://127.0.0.1:8428`); never exposed to callers.
    pub victoria_metrics_url: Option<String>,
    /// Longest the gateway waits for VictoriaMetrics' answer (504 `metrics_timeout` past it).
    pub timeout_ms: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            victoria_metrics_url: None,
            timeout_ms: 30_000,
        }
    }
}
