//! Gateway configuration: `layer.yaml` (sections mirror the CRD specs), overridden by `LAYER_*`
//! environment variables from one table ([`ENV_OVERRIDES`]), overridden by command-line flags.
//! Unknown keys in the file are errors; every default is written next to its field.
//!
//! ```yaml
//! gateway:
//!   listen: 127.0.0.1:8080        # LAYER_LISTEN
//!   shards: 0                     # LAYER_SHARDS; 0 = one per core
//!   workStealing: false           # LAYER_WORK_STEALING
//!   dataDir: ./.layer             # LAYER_DATA_DIR
//!   maxBodyBytes: 67108864        # LAYER_MAX_BODY_BYTES (64 MiB)
//!   maxJsonDepth: 64              # LAYER_MAX_JSON_DEPTH
//!   drainTimeoutMs: 10000         # LAYER_DRAIN_TIMEOUT_MS
//!   namespaceListCacheTtlMs: 10000  # NAMESPACE_LIST_CACHE_TTL_MS
//!   cache:
//!     tier: nvme                  # LAYER_CACHE_TIER: nvme | aerospike | disabled
//!     dir: <dataDir>/cache        # LAYER_CACHE_DIR
//!     maxBytes: 1073741824        # LAYER_CACHE_MAX_BYTES (NVMe tier bound)
//!     hotBytesPerShard: 67108864  # LAYER_CACHE_HOT_BYTES_PER_SHARD
//!     recover: true               # LAYER_CACHE_RECOVER (false = clear at start)
//!     populateMaxIds: 1000        # LAYER_CACHE_POPULATE_MAX_IDS (write-path mirror; 0 = off)
//!     aerospike: {hosts: "a:3000", namespace: layer}  # AEROSPIKE_HOSTS; needs --features aerospike
//!   consistency:
//!     defaultMode: stable         # LAYER_DEFAULT_CONSISTENCY: stable | strong | eventual
//!     pollIntervalMs: 1000        # CONSISTENCY_POLL_INTERVAL_MS (cold and updating namespaces)
//!     stablePollIntervalMs: 60000 # CONSISTENCY_STABLE_POLL_INTERVAL_MS (stable namespaces)
//!     safetyMarginMs: 500         # CONSISTENCY_SAFETY_MARGIN_MS
//!     maxConcurrentPolls: 16      # LAYER_CONSISTENCY_MAX_CONCURRENT_POLLS
//!   objectStore: {backend: local}   # history and snapshots; see [`features`] for every key
//!   history: {flushIntervalMs: 1000}
//!   snapshots: {minIntervalMs: 300000}
//!   scan: {defaultThreads: 8, valuesCap: 1000000}
//! vectorStore:
//!   kind: turbopuffer
//!   endpoint:
//!     url: https://aws-us-east-1.turbopuffer.com   # LAYER_UPSTREAM_URL, TURBOPUFFER_API_URL
//!     region: aws-us-east-1
//!   credential:
//!     value: tpuf_...             # LAYER_UPSTREAM_API_KEY, TURBOPUFFER_API_KEY
//!   connectTimeoutMs: 2000        # LAYER_UPSTREAM_CONNECT_TIMEOUT_MS
//!   requestTimeoutMs: 30000       # LAYER_UPSTREAM_REQUEST_TIMEOUT_MS
//!   inboundAuth:
//!     mode: deriveFromStore       # LAYER_AUTH_MODE: deriveFromStore | keys | open
//!     keys:
//!       - name: shop-rw
//!         scopes: [read, write]
//!         namespaces: ["shop-*"]  # globs; empty = every namespace
//!         token: hvl_...          # or tokenEnv: NAME_OF_ENV_VAR
//! indexes:                        # the Index CRD's spec, one entry per namespace
//!   - name: products
//!     backend: {namespace: products}   # upstream namespace (default: name)
//!     consistency: stable         # stable (default) | strong | eventual
//!     shards: 1                   # scatter/gather buckets (1 = unsharded)
//!     scan: {threads: 8}          # max concurrent upstream legs per request (cap 32)
//!     metadata: {labels: {app: shop}}
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod features;
pub use features::{
    HistoryConfig, ObjectStoreBackend, ObjectStoreConfig, ScanConfig, SnapshotsConfig,
    parse_duration_ms,
};

/// Errors while loading configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_yaml_ng::Error,
    },
    #[error("environment variable {var}={value:?}: {reason}")]
    Env {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    pub gateway: GatewayConfig,
    pub vector_store: VectorStoreConfig,
    pub indexes: Vec<IndexConfig>,
}

/// One `Index` (the CRD's spec): a namespace exposed through the gateway.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct IndexConfig {
    pub name: String,
    pub backend: IndexBackend,
    pub metadata: IndexMetadata,
    pub snapshot: IndexSnapshot,
    pub scan: IndexScan,
    pub cache: IndexCache,
    pub consistency: IndexConsistency,
    /// Hash buckets the namespace is split into (`_hevlayer_shard = xxh64(id) % shards`); 1 =
    /// unsharded. A Layer extension of the Index spec; fixed for the namespace's lifetime.
    pub shards: u32,
}

impl IndexConfig {
    /// The upstream namespace this index serves.
    pub fn namespace(&self) -> &str {
        self.backend.namespace.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct IndexBackend {
    pub store_ref: Option<String>,
    pub namespace: Option<String>,
    pub distance_metric: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexMetadata {
    pub labels: std::collections::BTreeMap<String, String>,
    pub tags: Vec<String>,
}

/// Snapshot policy (used by the history issue; parsed and validated now).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct IndexSnapshot {
    pub facet_fields: Vec<String>,
    pub interval: String,
    pub retention: String,
}

impl Default for IndexSnapshot {
    fn default() -> Self {
        IndexSnapshot {
            facet_fields: Vec::new(),
            interval: "5m".into(),
            retention: "never".into(),
        }
    }
}

/// Cache posture (used by the cache issue; parsed and validated now).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct IndexCache {
    pub ttl: Option<String>,
    #[serde(rename = "capGiB")]
    pub cap_gib: Option<u64>,
    pub mode: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexScan {
    pub threads: Option<u32>,
}

impl std::str::FromStr for IndexConsistency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "stable" => Ok(IndexConsistency::Stable),
            "strong" => Ok(IndexConsistency::Strong),
            "eventual" => Ok(IndexConsistency::Eventual),
            other => Err(format!(
                "unknown consistency mode {other:?} (stable, strong, eventual)"
            )),
        }
    }
}

/// Per-namespace read consistency.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IndexConsistency {
    /// Stable reads: eventual upstream reads cut at the watermark while the index is updating.
    #[default]
    Stable,
    /// Stable reads off: queries are forwarded unchanged (upstream's default is strong).
    Strong,
    /// Stable reads off, but queries are sent with eventual consistency and no predicate.
    Eventual,
}

/// The document cache tier.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CacheConfig {
    /// `nvme` (log-structured segments under `dir`, io_uring) or `disabled`.
    pub tier: CacheTierKind,
    /// Segment directory (default: `<dataDir>/cache`).
    pub dir: Option<PathBuf>,
    /// Size bound of the NVMe tier.
    pub max_bytes: u64,
    /// Hot cache per shard, in bytes.
    pub hot_bytes_per_shard: usize,
    /// Recover the NVMe tier's segments at start (`true`) or clear them.
    pub recover: bool,
    /// Write-path mirror: rows a write upserts or patches are read back into the cache once the
    /// write is acknowledged, at most this many ids per write (0 turns it off).
    pub populate_max_ids: usize,
    /// The Aerospike tier (`tier: aerospike`; the binary must be built with `--features aerospike`).
    pub aerospike: AerospikeSettings,
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

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            tier: CacheTierKind::Nvme,
            dir: None,
            max_bytes: 1 << 30,
            hot_bytes_per_shard: 64 << 20,
            recover: true,
            populate_max_ids: 1000,
            aerospike: AerospikeSettings::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CacheTierKind {
    #[default]
    Nvme,
    /// Aerospike (cargo feature `aerospike`).
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
    pub cache: CacheConfig,
    pub consistency: ConsistencyConfig,
    pub object_store: ObjectStoreConfig,
    pub history: HistoryConfig,
    pub snapshots: SnapshotsConfig,
    pub scan: ScanConfig,
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
            consistency: ConsistencyConfig::default(),
            object_store: ObjectStoreConfig::default(),
            history: HistoryConfig::default(),
            snapshots: SnapshotsConfig::default(),
            scan: ScanConfig::default(),
        }
    }
}

/// The upstream store (the `VectorStore` CRD's spec).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct VectorStoreConfig {
    pub kind: StoreKind,
    pub endpoint: Endpoint,
    pub credential: Credential,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub inbound_auth: InboundAuth,
}

impl Default for VectorStoreConfig {
    fn default() -> Self {
        VectorStoreConfig {
            kind: StoreKind::Turbopuffer,
            endpoint: Endpoint::default(),
            credential: Credential::default(),
            connect_timeout_ms: 2_000,
            request_timeout_ms: 30_000,
            inbound_auth: InboundAuth::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    Turbopuffer,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Endpoint {
    pub url: String,
    pub region: Option<String>,
}

impl Default for Endpoint {
    fn default() -> Self {
        Endpoint {
            url: "https://aws-us-east-1.turbopuffer.com".into(),
            region: None,
        }
    }
}

/// The upstream credential: inline, or read from an environment variable at start.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Credential {
    pub value: Option<String>,
    pub env: Option<String>,
}

/// Inbound auth policy (`VectorStore.spec.inboundAuth`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InboundAuth {
    pub mode: AuthMode,
    pub keys: Vec<KeyConfig>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum AuthMode {
    /// The upstream credential is the (admin) bearer.
    #[default]
    #[serde(rename = "deriveFromStore")]
    DeriveFromStore,
    /// Configured keys with scopes and namespace globs.
    #[serde(rename = "keys")]
    Keys,
    /// No inbound auth.
    #[serde(rename = "open")]
    Open,
}

impl std::str::FromStr for AuthMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "deriveFromStore" => Ok(AuthMode::DeriveFromStore),
            "keys" => Ok(AuthMode::Keys),
            "open" => Ok(AuthMode::Open),
            other => Err(format!(
                "unknown auth mode {other:?} (deriveFromStore, keys, open)"
            )),
        }
    }
}

/// Key scopes.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

/// One configured inbound key.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyConfig {
    pub name: String,
    pub scopes: Vec<Scope>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_env: Option<String>,
}

/// The `LAYER_*` environment overrides, in one table: variable, what it sets.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("LAYER_LISTEN", "gateway.listen"),
    ("LAYER_SHARDS", "gateway.shards"),
    ("LAYER_WORK_STEALING", "gateway.workStealing"),
    ("LAYER_DATA_DIR", "gateway.dataDir"),
    ("LAYER_MAX_BODY_BYTES", "gateway.maxBodyBytes"),
    ("LAYER_MAX_JSON_DEPTH", "gateway.maxJsonDepth"),
    ("LAYER_DRAIN_TIMEOUT_MS", "gateway.drainTimeoutMs"),
    (
        "LAYER_UPSTREAM_URL",
        "vectorStore.endpoint.url (also TURBOPUFFER_API_URL)",
    ),
    (
        "LAYER_UPSTREAM_API_KEY",
        "vectorStore.credential.value (also TURBOPUFFER_API_KEY)",
    ),
    (
        "LAYER_UPSTREAM_CONNECT_TIMEOUT_MS",
        "vectorStore.connectTimeoutMs",
    ),
    (
        "LAYER_UPSTREAM_REQUEST_TIMEOUT_MS",
        "vectorStore.requestTimeoutMs",
    ),
    ("LAYER_AUTH_MODE", "vectorStore.inboundAuth.mode"),
    (
        "LAYER_DEFAULT_CONSISTENCY",
        "gateway.consistency.defaultMode",
    ),
    ("LAYER_CACHE_TIER", "gateway.cache.tier"),
    ("LAYER_CACHE_DIR", "gateway.cache.dir"),
    ("LAYER_CACHE_MAX_BYTES", "gateway.cache.maxBytes"),
    (
        "LAYER_CACHE_HOT_BYTES_PER_SHARD",
        "gateway.cache.hotBytesPerShard",
    ),
    ("LAYER_CACHE_RECOVER", "gateway.cache.recover"),
    ("AEROSPIKE_HOSTS", "gateway.cache.aerospike.hosts"),
    (
        "LAYER_CACHE_POPULATE_MAX_IDS",
        "gateway.cache.populateMaxIds",
    ),
    (
        "CONSISTENCY_POLL_INTERVAL_MS",
        "gateway.consistency.pollIntervalMs",
    ),
    (
        "CONSISTENCY_STABLE_POLL_INTERVAL_MS",
        "gateway.consistency.stablePollIntervalMs",
    ),
    (
        "CONSISTENCY_SAFETY_MARGIN_MS",
        "gateway.consistency.safetyMarginMs",
    ),
    (
        "LAYER_CONSISTENCY_MAX_CONCURRENT_POLLS",
        "gateway.consistency.maxConcurrentPolls",
    ),
    (
        "NAMESPACE_LIST_CACHE_TTL_MS",
        "gateway.namespaceListCacheTtlMs",
    ),
    ("LAYER_OBJECT_STORE", "gateway.objectStore.backend"),
    ("LAYER_OBJECT_STORE_DIR", "gateway.objectStore.dir"),
    ("LAYER_S3_BUCKET", "gateway.objectStore.bucket"),
    (
        "LAYER_S3_ENDPOINT",
        "gateway.objectStore.endpoint (also AWS_ENDPOINT_URL)",
    ),
    (
        "LAYER_S3_REGION",
        "gateway.objectStore.region (also AWS_REGION)",
    ),
    ("LAYER_OBJECT_STORE_PREFIX", "gateway.objectStore.prefix"),
    ("LAYER_S3_ALLOW_HTTP", "gateway.objectStore.allowHttp"),
    (
        "LAYER_HISTORY_FLUSH_INTERVAL_MS",
        "gateway.history.flushIntervalMs",
    ),
    ("LAYER_HISTORY_MAX_BATCH", "gateway.history.maxBatchEntries"),
    ("LAYER_HISTORY_QUEUE", "gateway.history.queueCapacity"),
    (
        "LAYER_HISTORY_RECENT_WINDOW",
        "gateway.history.recentWindow",
    ),
    (
        "LAYER_SNAPSHOT_MIN_INTERVAL_MS",
        "gateway.snapshots.minIntervalMs",
    ),
    ("LAYER_SCAN_THREADS", "gateway.scan.defaultThreads"),
    ("LAYER_SCAN_VALUES_CAP", "gateway.scan.valuesCap"),
];

impl Config {
    /// Loads the file (if any), then applies environment overrides from `env`.
    pub fn load(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut cfg = match path {
            None => Config::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.into(),
                    source,
                })?;
                serde_yaml_ng::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: p.into(),
                    source,
                })?
            }
        };
        cfg.apply_env(env)?;
        Ok(cfg)
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(var: &'static str, v: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            v.parse().map_err(|e: T::Err| ConfigError::Env {
                var,
                reason: e.to_string(),
                value: v,
            })
        }
        let g = &mut self.gateway;
        let s = &mut self.vector_store;
        for (var, _) in ENV_OVERRIDES {
            let Some(v) = env(var) else { continue };
            match *var {
                "LAYER_LISTEN" => g.listen = parse(var, v)?,
                "LAYER_SHARDS" => g.shards = parse(var, v)?,
                "LAYER_WORK_STEALING" => g.work_stealing = parse(var, v)?,
                "LAYER_DATA_DIR" => g.data_dir = PathBuf::from(v),
                "LAYER_MAX_BODY_BYTES" => g.max_body_bytes = parse(var, v)?,
                "LAYER_MAX_JSON_DEPTH" => g.max_json_depth = parse(var, v)?,
                "LAYER_DRAIN_TIMEOUT_MS" => g.drain_timeout_ms = parse(var, v)?,
                "LAYER_UPSTREAM_URL" => s.endpoint.url = v,
                "LAYER_UPSTREAM_API_KEY" => s.credential.value = Some(v),
                "LAYER_UPSTREAM_CONNECT_TIMEOUT_MS" => s.connect_timeout_ms = parse(var, v)?,
                "LAYER_UPSTREAM_REQUEST_TIMEOUT_MS" => s.request_timeout_ms = parse(var, v)?,
                "LAYER_AUTH_MODE" => s.inbound_auth.mode = parse(var, v)?,
                "LAYER_DEFAULT_CONSISTENCY" => g.consistency.default_mode = parse(var, v)?,
                "LAYER_CACHE_TIER" => g.cache.tier = parse(var, v)?,
                "LAYER_CACHE_DIR" => g.cache.dir = Some(PathBuf::from(v)),
                "LAYER_CACHE_MAX_BYTES" => g.cache.max_bytes = parse(var, v)?,
                "LAYER_CACHE_HOT_BYTES_PER_SHARD" => g.cache.hot_bytes_per_shard = parse(var, v)?,
                "LAYER_CACHE_RECOVER" => g.cache.recover = parse(var, v)?,
                "AEROSPIKE_HOSTS" => g.cache.aerospike.hosts = Some(v),
                "LAYER_CACHE_POPULATE_MAX_IDS" => g.cache.populate_max_ids = parse(var, v)?,
                "CONSISTENCY_POLL_INTERVAL_MS" => g.consistency.poll_interval_ms = parse(var, v)?,
                "CONSISTENCY_STABLE_POLL_INTERVAL_MS" => {
                    g.consistency.stable_poll_interval_ms = parse(var, v)?
                }
                "CONSISTENCY_SAFETY_MARGIN_MS" => g.consistency.safety_margin_ms = parse(var, v)?,
                "LAYER_CONSISTENCY_MAX_CONCURRENT_POLLS" => {
                    g.consistency.max_concurrent_polls = parse(var, v)?
                }
                "NAMESPACE_LIST_CACHE_TTL_MS" => g.namespace_list_cache_ttl_ms = parse(var, v)?,
                "LAYER_OBJECT_STORE" => g.object_store.backend = parse(var, v)?,
                "LAYER_OBJECT_STORE_DIR" => g.object_store.dir = Some(PathBuf::from(v)),
                "LAYER_S3_BUCKET" => g.object_store.bucket = Some(v),
                "LAYER_S3_ENDPOINT" => g.object_store.endpoint = Some(v),
                "LAYER_S3_REGION" => g.object_store.region = Some(v),
                "LAYER_OBJECT_STORE_PREFIX" => g.object_store.prefix = v,
                "LAYER_S3_ALLOW_HTTP" => g.object_store.allow_http = parse(var, v)?,
                "LAYER_HISTORY_FLUSH_INTERVAL_MS" => g.history.flush_interval_ms = parse(var, v)?,
                "LAYER_HISTORY_MAX_BATCH" => g.history.max_batch_entries = parse(var, v)?,
                "LAYER_HISTORY_QUEUE" => g.history.queue_capacity = parse(var, v)?,
                "LAYER_HISTORY_RECENT_WINDOW" => g.history.recent_window = parse(var, v)?,
                "LAYER_SNAPSHOT_MIN_INTERVAL_MS" => g.snapshots.min_interval_ms = parse(var, v)?,
                "LAYER_SCAN_THREADS" => g.scan.default_threads = parse(var, v)?,
                "LAYER_SCAN_VALUES_CAP" => g.scan.values_cap = parse(var, v)?,
                _ => {}
            }
        }
        // The Turbopuffer SDK variables are honoured when the LAYER_ ones are absent.
        if env("LAYER_UPSTREAM_URL").is_none()
            && let Some(v) = env("TURBOPUFFER_API_URL")
        {
            s.endpoint.url = v;
        }
        if env("LAYER_UPSTREAM_API_KEY").is_none()
            && s.credential.value.is_none()
            && let Some(v) = env("TURBOPUFFER_API_KEY")
        {
            s.credential.value = Some(v);
        }
        Ok(())
    }

    /// The upstream credential after resolving `credential.env`.
    pub fn upstream_key(&self, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        let c = &self.vector_store.credential;
        c.value
            .clone()
            .or_else(|| c.env.as_deref().and_then(env))
            .filter(|k| !k.trim().is_empty())
    }

    /// Checks cross-field rules once everything is merged.
    pub fn validate(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let url = &self.vector_store.endpoint.url;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::Invalid(format!(
                "vectorStore.endpoint.url must be http(s): {url:?}"
            )));
        }
        let auth = &self.vector_store.inbound_auth;
        if auth.mode == AuthMode::DeriveFromStore && self.upstream_key(env).is_none() {
            return Err(ConfigError::Invalid(
                "inboundAuth.mode deriveFromStore needs the upstream credential (vectorStore.credential, --upstream-api-key or TURBOPUFFER_API_KEY)".into(),
            ));
        }
        if auth.mode == AuthMode::Keys && auth.keys.is_empty() {
            return Err(ConfigError::Invalid(
                "inboundAuth.mode keys needs at least one key".into(),
            ));
        }
        for k in &auth.keys {
            if k.token.is_none() == k.token_env.is_none() {
                return Err(ConfigError::Invalid(format!(
                    "key {:?}: set exactly one of token and tokenEnv",
                    k.name
                )));
            }
            if k.scopes.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "key {:?}: scopes must not be empty",
                    k.name
                )));
            }
        }
        if self.gateway.cache.tier == CacheTierKind::Aerospike {
            if !cfg!(feature = "aerospike") {
                return Err(ConfigError::Invalid(
                    "cache.tier aerospike needs a gateway built with `--features aerospike`".into(),
                ));
            }
            if self
                .gateway
                .cache
                .aerospike
                .hosts
                .as_deref()
                .is_none_or(str::is_empty)
            {
                return Err(ConfigError::Invalid(
                    "cache.tier aerospike needs cache.aerospike.hosts (or AEROSPIKE_HOSTS)".into(),
                ));
            }
        }
        let h = &self.gateway.history;
        if h.flush_interval_ms == 0 || h.max_batch_entries == 0 || h.queue_capacity == 0 {
            return Err(ConfigError::Invalid(
                "history flushIntervalMs, maxBatchEntries and queueCapacity must be positive"
                    .into(),
            ));
        }
        let sc = &self.gateway.scan;
        if sc.default_threads == 0 || sc.values_cap == 0 || self.gateway.snapshots.field_cap == 0 {
            return Err(ConfigError::Invalid(
                "scan.defaultThreads, scan.valuesCap and snapshots.fieldCap must be positive"
                    .into(),
            ));
        }
        let o = &self.gateway.object_store;
        if o.backend == ObjectStoreBackend::S3 && o.bucket.as_deref().is_none_or(str::is_empty) {
            return Err(ConfigError::Invalid(
                "objectStore.backend s3 needs objectStore.bucket (LAYER_S3_BUCKET)".into(),
            ));
        }
        for i in &self.indexes {
            for (what, v) in [
                ("interval", &i.snapshot.interval),
                ("retention", &i.snapshot.retention),
            ] {
                if let Err(e) = parse_duration_ms(v) {
                    return Err(ConfigError::Invalid(format!(
                        "index {:?}: snapshot.{what}: {e}",
                        i.name
                    )));
                }
            }
        }
        let c = &self.gateway.consistency;
        if c.poll_interval_ms == 0 || c.stable_poll_interval_ms == 0 || c.max_concurrent_polls == 0
        {
            return Err(ConfigError::Invalid(
                "consistency poll intervals and maxConcurrentPolls must be positive".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for idx in &self.indexes {
            if idx.name.is_empty() {
                return Err(ConfigError::Invalid("every index needs a name".into()));
            }
            if !seen.insert(idx.namespace().to_string()) {
                return Err(ConfigError::Invalid(format!(
                    "two indexes resolve to the upstream namespace {:?}",
                    idx.namespace()
                )));
            }
        }
        if self.gateway.max_json_depth == 0 || self.gateway.max_body_bytes == 0 {
            return Err(ConfigError::Invalid(
                "maxJsonDepth and maxBodyBytes must be positive".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
