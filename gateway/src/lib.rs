//! `layer-gateway`: Layer's data plane.
//!
//! Where to start:
//! - [`runtime`] starts one pinned single-threaded tokio runtime per core, each with its own
//!   `SO_REUSEPORT` listener (or one work-stealing runtime), and drains on shutdown;
//! - [`handler`] is the request pipeline on a shard: classify ([`route`]) → admit ([`auth`]) →
//!   read and, for writes, validate and stamp the body (crate `scatter`) → forward
//!   ([`upstream`]) → relay → record ([`metrics`]);
//! - [`config`] is `layer.yaml` + `LAYER_*` overrides; [`error`] is the one error → HTTP mapping.

pub mod auth;
pub mod config;
pub mod error;
pub mod fetch;
pub mod handler;
pub mod history;
pub mod jobs;
pub mod metrics;
pub mod namespaces;
pub mod origin;
pub mod query;
pub mod route;
pub mod runtime;
pub mod scans;
pub mod snapshots;
pub mod stable;
pub mod store;
#[cfg(feature = "aerospike")]
pub mod tier_runtime;
pub mod upstream;
pub mod warm;
pub mod watcher;

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

pub use config::Config;
pub use runtime::{Running, StartError};

/// Validates the configuration and starts the data plane. `env` resolves credentials and
/// `tokenEnv` references (pass `|k| std::env::var(k).ok()` in production).
pub fn start(config: Config, env: &dyn Fn(&str) -> Option<String>) -> Result<Running, StartError> {
    start_with_tier(config, env, None)
}

/// Opens the configured cache tier (blocking while the NVMe tier recovers).
fn open_tier(config: &Config) -> Result<Arc<dyn layer_cache::Tier>, StartError> {
    let c = &config.gateway.cache;
    Ok(match c.tier {
        config::CacheTierKind::Disabled => Arc::new(layer_cache::DisabledTier),
        config::CacheTierKind::Aerospike => open_aerospike(config)?,
        config::CacheTierKind::Nvme => {
            let dir = c
                .dir
                .clone()
                .unwrap_or_else(|| config.gateway.data_dir.join("cache"));
            let mut nc = layer_cache::NvmeConfig::new(dir, c.max_bytes);
            nc.start = if c.recover {
                layer_cache::StartMode::Recover
            } else {
                layer_cache::StartMode::Clear
            };
            let tier =
                layer_cache::NvmeTier::open(nc).map_err(|e| StartError::Cache(e.to_string()))?;
            tracing::info!(
                backend = tier.backend(),
                direct_io = tier.direct_io(),
                "NVMe cache tier open"
            );
            Arc::new(tier)
        }
    })
}

/// Connects the Aerospike tier. The client keeps cluster-tending tasks on the runtime it was
/// created on, so it gets a small runtime of its own that lives as long as the tier.
#[cfg(feature = "aerospike")]
fn open_aerospike(config: &Config) -> Result<Arc<dyn layer_cache::Tier>, StartError> {
    let a = &config.gateway.cache.aerospike;
    let mut cfg = layer_cache::AerospikeConfig::new(a.hosts.clone().unwrap_or_default());
    cfg.namespace = a.namespace.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("layer-aerospike")
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    let tier = rt
        .block_on(layer_cache::AerospikeTier::connect(cfg))
        .map_err(|e| StartError::Cache(e.to_string()))?;
    tracing::info!(hosts = ?a.hosts, "Aerospike cache tier connected");
    Ok(Arc::new(tier_runtime::RuntimeTier::new(Arc::new(tier), rt)))
}

#[cfg(not(feature = "aerospike"))]
fn open_aerospike(_: &Config) -> Result<Arc<dyn layer_cache::Tier>, StartError> {
    Err(StartError::Cache(
        "this gateway was built without the aerospike feature".into(),
    ))
}

/// Like [`start`], with a cache tier supplied by the caller (tests inject failures this way).
pub fn start_with_tier(
    config: Config,
    env: &dyn Fn(&str) -> Option<String>,
    tier: Option<Arc<dyn layer_cache::Tier>>,
) -> Result<Running, StartError> {
    config.validate(env)?;
    let tier = match tier {
        Some(t) => t,
        None => open_tier(&config)?,
    };
    let cache = fetch::CacheTier::new(tier, config.gateway.cache.hot_bytes_per_shard);
    let auth = auth::Auth::from_config(&config, env)?;
    let shards = match config.gateway.shards {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let limits = scatter::Limits {
        max_body_bytes: config.gateway.max_body_bytes,
        max_depth: config.gateway.max_json_depth,
        prevalidated: false,
    };
    let upstream_key = config.upstream_key(env);
    let (watcher, registrations) = watcher::Watcher::new(config.gateway.consistency.clone());
    let indexes = config
        .indexes
        .iter()
        .map(|i| (i.namespace().to_string(), i.clone()))
        .collect();
    for i in &config.indexes {
        watcher.register(i.namespace());
    }
    let store =
        store::ObjectStore::open(&config, env).map_err(|e| StartError::Store(e.to_string()))?;
    let history = history::History::new(&config, store.clone());
    let snapshots = snapshots::Snapshots::new(&config, store.clone());
    let scans = scans::Scans::new(&config);
    let warm = warm::Warm::new(&config);
    let shared = Arc::new(handler::Shared {
        store,
        history,
        snapshots,
        scans,
        warm,
        control: std::sync::OnceLock::new(),
        config,
        auth: ArcSwap::from_pointee(auth),
        limits,
        shards,
        started: Instant::now(),
        watcher,
        indexes,
        cache,
    });
    runtime::start(shared, upstream_key, registrations)
}
