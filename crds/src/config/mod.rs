//! Gateway configuration: `layer.yaml` (sections mirror the CRD specs), overridden by `LAYER_*`
//! environment variables from one table ([`ENV_OVERRIDES`]), overridden by command-line flags
//! (the gateway's own, applied after [`Config::load`]). Unknown keys in the file are errors; every
//! default is written next to its field.
//!
//! The reference file below lists every key, its default (or a sample where there is none) and
//! the environment variable that overrides it. The tests parse it as a [`Config`] and check that
//! every variable of [`ENV_OVERRIDES`] appears on the line of the key it sets.
//!
//! ```yaml
//! gateway:
//!   listen: 127.0.0.1:8080        # LAYER_LISTEN
//!   shards: 0                     # LAYER_SHARDS; 0 = one per core
//!   workStealing: false           # LAYER_WORK_STEALING
//!   dataDir: .layer               # LAYER_DATA_DIR
//!   maxBodyBytes: 67108864        # LAYER_MAX_BODY_BYTES (64 MiB)
//!   maxJsonDepth: 64              # LAYER_MAX_JSON_DEPTH
//!   drainTimeoutMs: 10000         # LAYER_DRAIN_TIMEOUT_MS
//!   namespaceListCacheTtlMs: 10000  # NAMESPACE_LIST_CACHE_TTL_MS
//!   server:                       # overload and slow clients, per shard
//!     maxConnectionsPerShard: 16384   # LAYER_MAX_CONNECTIONS_PER_SHARD: beyond it, 503 and close
//!     maxInFlightPerShard: 4096   # LAYER_MAX_IN_FLIGHT_PER_SHARD: beyond it, 503 overloaded
//!     headerReadTimeoutMs: 15000  # LAYER_HEADER_READ_TIMEOUT_MS (also HTTP/1 keep-alive idle)
//!     bodyReadTimeoutMs: 30000    # LAYER_BODY_READ_TIMEOUT_MS: 408 past it
//!   tls:                          # inbound TLS; plain HTTP unless both files are set
//!     certFile: /etc/layer/tls.crt  # LAYER_TLS_CERT_FILE (PEM chain, leaf first; unset by default)
//!     keyFile: /etc/layer/tls.key   # LAYER_TLS_KEY_FILE (PEM key; unset by default)
//!     reloadIntervalMs: 10000     # LAYER_TLS_RELOAD_INTERVAL_MS: files re-read when they change
//!   cache:
//!     tier: nvme                  # LAYER_CACHE_TIER: nvme | aerospike | disabled
//!     dir: <dataDir>/cache        # LAYER_CACHE_DIR (unset = <dataDir>/cache)
//!     maxBytes: 1073741824        # LAYER_CACHE_MAX_BYTES (NVMe tier bound, 1 GiB)
//!     hotBytesPerShard: 67108864  # LAYER_CACHE_HOT_BYTES_PER_SHARD (64 MiB)
//!     recover: true               # LAYER_CACHE_RECOVER (false = clear at start)
//!     populateMaxIds: 0           # LAYER_CACHE_POPULATE_MAX_IDS (write-path mirror, opt-in; 0 = off)
//!     aerospike: {hosts: "a:3000", namespace: layer}  # AEROSPIKE_HOSTS; needs --features aerospike
//!   consistency:
//!     defaultMode: eventual       # LAYER_DEFAULT_CONSISTENCY: eventual (stable reads; alias stable) | strong | eventualUncut
//!     pollIntervalMs: 1000        # CONSISTENCY_POLL_INTERVAL_MS (cold and updating namespaces)
//!     stablePollIntervalMs: 60000 # CONSISTENCY_STABLE_POLL_INTERVAL_MS (stable namespaces)
//!     safetyMarginMs: 500         # CONSISTENCY_SAFETY_MARGIN_MS
//!     maxConcurrentPolls: 16      # LAYER_CONSISTENCY_MAX_CONCURRENT_POLLS
//!   objectStore:                  # history, clickstream and snapshot bodies
//!     backend: local              # LAYER_OBJECT_STORE: local | s3
//!     dir: <dataDir>/objects      # LAYER_OBJECT_STORE_DIR (backend local; unset = <dataDir>/objects)
//!     bucket: layer-history       # LAYER_S3_BUCKET (backend s3)
//!     endpoint: http://127.0.0.1:9000  # LAYER_S3_ENDPOINT (also AWS_ENDPOINT_URL); unset = AWS
//!     region: us-east-1           # LAYER_S3_REGION (also AWS_REGION)
//!     prefix: ""                  # LAYER_OBJECT_STORE_PREFIX: key prefix inside the bucket/dir
//!     allowHttp: false            # LAYER_S3_ALLOW_HTTP (plain-http endpoints, e.g. a local S3)
//!   history:                      # search history and clickstream batching
//!     flushIntervalMs: 1000       # LAYER_HISTORY_FLUSH_INTERVAL_MS: longest an entry waits
//!     maxBatchEntries: 1000       # LAYER_HISTORY_MAX_BATCH: entries per JSONL object at most
//!     queueCapacity: 65536        # LAYER_HISTORY_QUEUE: events buffered; beyond it, dropped
//!     recentWindow: 1000          # LAYER_HISTORY_RECENT_WINDOW: entries per namespace kept in memory
//!   snapshots:                    # the automatic snapshot writer
//!     minIntervalMs: 300000       # LAYER_SNAPSHOT_MIN_INTERVAL_MS: fallback for Index snapshot.interval
//!     fieldCap: 10000             # distinct values per facet field before it is skipped (no env)
//!   scan:
//!     defaultThreads: 8           # LAYER_SCAN_THREADS: origin fan-out when neither request nor Index sets it
//!     valuesCap: 1000000          # LAYER_SCAN_VALUES_CAP: distinct values a values scan lists
//!   queue:                        # the PostgreSQL staging queue behind pipelines
//!     url: postgresql://layer@127.0.0.1:5432/layer  # LAYER_DATABASE_URL (unset: pipeline routes answer 503)
//!     schema: layer_queue         # LAYER_DATABASE_SCHEMA
//!     poolSize: 16                # LAYER_DATABASE_POOL_SIZE
//!     connectTimeoutMs: 5000      # LAYER_DATABASE_CONNECT_TIMEOUT_MS: past it, 500 database_unavailable
//!     maxLeaseExpiries: 5         # LAYER_QUEUE_MAX_LEASE_EXPIRIES: a document whose lease ran out this often is failed
//!   license:                      # GET /v2/license reports it; nothing is enforced
//!     file: /etc/layer/license    # LAYER_LICENSE_FILE (<claims>.<signature>, base64url; unset: floor)
//!     publicKey: 3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c  # LAYER_LICENSE_PUBLIC_KEY (Ed25519, hex or base64)
//!     graceDays: 14
//!   cost:                         # GET /v2/cost, /v2/cost/timeseries, /v2/cost/rate-card
//!     rateCardFile: /etc/layer/rate-card.yaml  # LAYER_COST_RATE_CARD_FILE (Turbopuffer rate card; unset: 503)
//!     costExplorerEnabled: false  # LAYER_COST_EXPLORER_ENABLED (AWS side; off: /v2/cost answers 503)
//!     endpoint: http://127.0.0.1:5000  # LAYER_COST_EXPLORER_ENDPOINT (unset = AWS)
//!     region: us-east-1           # LAYER_COST_REGION
//!     tagKey: Project             # LAYER_COST_TAG_KEY (unset: the whole bill)
//!     tagValue: layer             # LAYER_COST_TAG_VALUE
//!     site: main                  # LAYER_COST_SITE (unset by default)
//!     cacheTtlSeconds: 86400      # LAYER_COST_CACHE_TTL_SECONDS: Cost Explorer read this often
//!     refreshIntervalMs: 300000   # LAYER_COST_REFRESH_INTERVAL_MS: namespace sizes read this often
//!     instancePrices: []          # configured AwsInstancePrice rows (no Pricing API client)
//!   metrics:                      # the PromQL routes' VictoriaMetrics (unset: 503 metrics_not_configured)
//!     victoriaMetricsUrl: http://127.0.0.1:8428  # LAYER_METRICS_URL
//!     timeoutMs: 30000            # LAYER_METRICS_TIMEOUT_MS: past it, 504 metrics_timeout
//!   kubernetes:                   # in a cluster: VectorStores, Indexes, ApiKeys read through a watch
//!     enabled: false              # LAYER_KUBERNETES_WATCH
//!     namespace: layer            # LAYER_KUBERNETES_NAMESPACE (unset = the service account's namespace)
//!     indexNamespace: layer       # LAYER_KUBERNETES_INDEX_NAMESPACE (unset = namespace)
//!     indexes: true               # LAYER_KUBERNETES_INDEXES: read Index resources
//!     apiServer: https://10.0.0.1:443  # LAYER_KUBERNETES_API_SERVER (unset = KUBERNETES_SERVICE_HOST/PORT)
//!     tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token  # re-read when it changes
//!     caFile: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
//!     backoffMs: 500              # first reconnect wait, doubling up to maxBackoffMs
//!     maxBackoffMs: 30000
//!     watchTimeoutSeconds: 290    # one watch request's life; it resumes from the last version
//! vectorStore:                    # the VectorStore CRD's spec
//!   kind: turbopuffer
//!   endpoint:
//!     url: https://aws-us-east-1.turbopuffer.com   # LAYER_UPSTREAM_URL, TURBOPUFFER_API_URL
//!     region: aws-us-east-1       # unset by default
//!   credential:
//!     value: tpuf_...             # LAYER_UPSTREAM_API_KEY, TURBOPUFFER_API_KEY
//!     env: NAME_OF_ENV_VAR        # read at start when value is unset
//!   connectTimeoutMs: 2000        # LAYER_UPSTREAM_CONNECT_TIMEOUT_MS
//!   requestTimeoutMs: 30000       # LAYER_UPSTREAM_REQUEST_TIMEOUT_MS
//!   inboundAuth:
//!     mode: deriveFromStore       # LAYER_AUTH_MODE: deriveFromStore | keys | open
//!     keys:
//!       - name: shop-rw
//!         scopes: [read, write]   # read | write | admin
//!         namespaces: ["shop-*"]  # globs; empty = every namespace
//!         token: hvl_...          # or tokenEnv: NAME_OF_ENV_VAR
//! indexes:                        # the Index CRD's spec, one entry per namespace
//!   - name: products
//!     backend: {namespace: products}   # upstream namespace (default: name)
//!     consistency: eventual       # eventual (default: stable reads; alias stable) | strong | eventualUncut
//!     shards: 1                   # scatter/gather buckets (1 = unsharded; unset = 0, read as 1)
//!     scan: {threads: 8}          # max concurrent upstream legs per request (cap 32)
//!     snapshot: {interval: 5m, retention: never}   # the defaults
//!     metadata: {labels: {app: shop}}
//! agents:                         # the Agent CRD's spec: POST /v2/agents/{name}/query
//!   - name: support
//!     indices: [products]         # namespaces it searches (1 to 32; `indexes` also accepted)
//!     model:
//!       provider: builtin         # builtin (default, no model) | openai | openrouter
//!       model: gpt-4o-mini        # required unless builtin
//!       baseUrl: https://api.openai.com/v1   # default per provider; {baseUrl}/chat/completions
//!       credential: {env: OPENAI_API_KEY}    # or value: sk-...
//!       timeoutMs: 30000          # per model call
//!     budget: {deadlineMs: 60000, onDeadline: bestEffort}   # bestEffort | error; maxTokens unset
//!     retrieval: {fanout: 8, rankBy: auto, recallDepth: 50, relevanceWeight: 0.6, threshold: 0.5, textField: text}
//! ```
//!
//! The Turbopuffer SDK variables are fallbacks, not table entries: `TURBOPUFFER_API_URL` sets
//! `vectorStore.endpoint.url` when `LAYER_UPSTREAM_URL` is unset (it overrides the file), and
//! `TURBOPUFFER_API_KEY` sets `vectorStore.credential.value` when `LAYER_UPSTREAM_API_KEY` is
//! unset and the file sets no `credential.value`.
//!
//! `cache.tier: aerospike` needs a gateway built with `--features aerospike`; this crate does not
//! know the gateway's features, so that check is the gateway's ([`Config::validate`] only checks
//! that `cache.aerospike.hosts` is set).
//!
//! S3 credentials come from the standard AWS environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, or web identity / IRSA through
//! `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`), read by the gateway's object store client.
//!
//! Secrets stay out of what the configuration prints: `Debug` shows the upstream credential and
//! key tokens as `<redacted>` and URL userinfo as `***@`, a parse error of the file hides the
//! values it would quote, and [`Config::validate`] refuses endpoint URLs carrying
//! `user:password@`.
//!
//! The types are split by concept: `gateway` (the data plane's settings), `features` (object
//! store, history, snapshots, scans), `store` (the VectorStore spec and inbound auth), `index`
//! (the Index spec), `env` (the override table). All are re-exported here.

use std::path::{Path, PathBuf};

use serde::Deserialize;

mod agent;
mod cost;
mod env;
mod features;
mod gateway;
mod index;
mod kubernetes;
mod redact;
mod store;
mod stores;
mod warehouse;

pub use agent::{
    AgentBudget, AgentConfig, AgentModel, AgentProvider, AgentRankBy, AgentRetrieval, OnDeadline,
};
pub use cost::{CostConfig, InstancePrice};
pub use env::{ENV_OVERRIDES, EnvOverride};
pub use features::{
    HistoryConfig, ObjectStoreBackend, ObjectStoreConfig, PipelineQueueConfig, ScanConfig,
    SnapshotsConfig, parse_duration_ms,
};
pub use gateway::{
    AerospikeSettings, CacheConfig, CacheTierKind, ConsistencyConfig, GatewayConfig, LicenseConfig,
    MetricsConfig, ServerConfig, TlsConfig,
};
pub use index::{
    IndexBackend, IndexCache, IndexConfig, IndexConsistency, IndexMetadata, IndexScan,
    IndexSnapshot,
};
pub use kubernetes::{KubernetesConfig, SERVICE_ACCOUNT_DIR};
pub use redact::{has_userinfo, redact_userinfo};
pub use store::{
    AuthMode, Credential, DEFAULT_STORE, Endpoint, InboundAuth, KeyConfig, Scope, StoreKind,
    VectorStoreConfig,
};
pub use warehouse::{WarehouseConfig, WarehouseKind};

/// A store's credential after resolving `credential.env`.
pub fn store_key(
    store: &VectorStoreConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    let c = &store.credential;
    c.value
        .clone()
        .or_else(|| c.env.as_deref().and_then(env))
        .filter(|k| !k.trim().is_empty())
}

/// Errors while loading configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file does not parse; `message` is the parser's, with the values it quotes hidden
    /// (they may be secrets in the wrong place).
    #[error("parsing {path}: {message}")]
    Parse { path: PathBuf, message: String },
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
    /// The default store.
    pub vector_store: VectorStoreConfig,
    /// More stores, by name (`Index.backend.storeRef` routes a namespace to one).
    pub vector_stores: Vec<VectorStoreConfig>,
    pub indexes: Vec<IndexConfig>,
    /// Source systems (the `Warehouse` CRD's spec), shown read-only and named by minted keys'
    /// `warehouse.<name>` entitlements.
    pub warehouses: Vec<WarehouseConfig>,
    /// Retrieval agents (the `Agent` CRD's spec), served at `POST /v2/agents/{name}/query`.
    pub agents: Vec<AgentConfig>,
}

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
                serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: p.into(),
                    message: redact::hide_quoted_values(&e.to_string()),
                })?
            }
        };
        env::apply(&mut cfg, env)?;
        Ok(cfg)
    }

    /// The upstream credential after resolving `credential.env`.
    pub fn upstream_key(&self, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        store_key(&self.vector_store, env)
    }

    /// Every store, the default first.
    pub fn stores(&self) -> impl Iterator<Item = &VectorStoreConfig> {
        std::iter::once(&self.vector_store).chain(&self.vector_stores)
    }

    /// The store an upstream namespace is routed to: its index's `backend.storeRef`, else the
    /// default store.
    pub fn store_of(&self, ns: &str) -> &str {
        self.indexes
            .iter()
            .find(|i| i.namespace() == ns)
            .and_then(|i| i.backend.store_ref.as_deref())
            .unwrap_or(&self.vector_store.name)
    }

    /// Checks cross-field rules once everything is merged.
    ///
    /// Whether the binary can serve `cache.tier: aerospike` (a cargo feature of the gateway) is
    /// not checked here: the gateway checks it.
    pub fn validate(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        self.validate_stores(env)?;
        let url = &self.vector_store.endpoint.url;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::Invalid(format!(
                "vectorStore.endpoint.url must be http(s): {:?}",
                redact_userinfo(url)
            )));
        }
        // Credentials in a URL are not used (the upstream takes a bearer, S3 signs with the AWS
        // environment's keys) and would show wherever the URL does, e.g. connection-pool logs.
        for (key, url) in [
            ("vectorStore.endpoint.url", Some(url.as_str())),
            (
                "gateway.objectStore.endpoint",
                self.gateway.object_store.endpoint.as_deref(),
            ),
            (
                "gateway.cost.endpoint",
                self.gateway.cost.endpoint.as_deref(),
            ),
        ] {
            if url.is_some_and(has_userinfo) {
                return Err(ConfigError::Invalid(format!(
                    "{key} must not carry credentials (user:password@): put the upstream key in \
                     vectorStore.credential, S3 keys in the AWS environment"
                )));
            }
        }
        let cost = &self.gateway.cost;
        if cost.cache_ttl_seconds == 0 || cost.refresh_interval_ms == 0 {
            return Err(ConfigError::Invalid(
                "gateway.cost.cacheTtlSeconds and gateway.cost.refreshIntervalMs must be positive"
                    .into(),
            ));
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
        if self.gateway.cache.tier == CacheTierKind::Aerospike
            && self
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
        agent::validate(&self.agents)?;
        if self.gateway.max_json_depth == 0 || self.gateway.max_body_bytes == 0 {
            return Err(ConfigError::Invalid(
                "maxJsonDepth and maxBodyBytes must be positive".into(),
            ));
        }
        let tls = &self.gateway.tls;
        if tls.cert_file.is_some() != tls.key_file.is_some() || tls.reload_interval_ms == 0 {
            return Err(ConfigError::Invalid(
                "tls: set both certFile and keyFile (or neither), and a positive reloadIntervalMs"
                    .into(),
            ));
        }
        let sv = &self.gateway.server;
        if sv.max_connections_per_shard == 0
            || sv.max_in_flight_per_shard == 0
            || sv.header_read_timeout_ms == 0
            || sv.body_read_timeout_ms == 0
        {
            return Err(ConfigError::Invalid(
                "server.maxConnectionsPerShard, maxInFlightPerShard, headerReadTimeoutMs and \
                 bodyReadTimeoutMs must be positive"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
