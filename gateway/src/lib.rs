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
pub mod handler;
pub mod metrics;
pub mod namespaces;
pub mod query;
pub mod route;
pub mod runtime;
pub mod stable;
pub mod upstream;
pub mod watcher;

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

pub use config::Config;
pub use runtime::{Running, StartError};

/// Validates the configuration and starts the data plane. `env` resolves credentials and
/// `tokenEnv` references (pass `|k| std::env::var(k).ok()` in production).
pub fn start(config: Config, env: &dyn Fn(&str) -> Option<String>) -> Result<Running, StartError> {
    config.validate(env)?;
    let auth = auth::Auth::from_config(&config, env)?;
    let shards = match config.gateway.shards {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let limits = scatter::Limits {
        max_body_bytes: config.gateway.max_body_bytes,
        max_depth: config.gateway.max_json_depth,
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
    let shared = Arc::new(handler::Shared {
        config,
        auth: ArcSwap::from_pointee(auth),
        limits,
        shards,
        started: Instant::now(),
        watcher,
        indexes,
    });
    runtime::start(shared, upstream_key, registrations)
}
