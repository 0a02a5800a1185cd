//! The environment overrides as one table: each [`EnvOverride`] names its variable, the
//! `layer.yaml` key it sets, and the function that sets it. [`Config::load`] walks
//! [`ENV_OVERRIDES`] and calls each entry's `apply` for the variables that are set, so a variable
//! cannot be listed without taking effect (and the tests check that each one changes the
//! configuration, and sets the key its `doc` names).
//!
//! The Turbopuffer SDK variables (`TURBOPUFFER_API_URL`, `TURBOPUFFER_API_KEY`) are fallbacks
//! applied after the table, see [`apply`].

use std::fmt::Display;
use std::str::FromStr;

use super::{Config, ConfigError};

/// One environment variable that overrides one key of `layer.yaml`.
#[derive(Clone, Copy, Debug)]
pub struct EnvOverride {
    /// The variable's name.
    pub var: &'static str,
    /// The `layer.yaml` path it sets, e.g. `gateway.listen`.
    pub doc: &'static str,
    /// Sets the key from the variable's value; `Err` is why the value does not parse.
    pub apply: fn(&mut Config, &str) -> Result<(), String>,
}

/// Parses `v` into `slot` (strings and paths cannot fail).
fn set<T: FromStr>(slot: &mut T, v: &str) -> Result<(), String>
where
    T::Err: Display,
{
    *slot = v.parse().map_err(|e: T::Err| e.to_string())?;
    Ok(())
}

/// Parses `v` into an optional `slot`.
fn set_some<T: FromStr>(slot: &mut Option<T>, v: &str) -> Result<(), String>
where
    T::Err: Display,
{
    *slot = Some(v.parse().map_err(|e: T::Err| e.to_string())?);
    Ok(())
}

/// Every environment override, in the order they are applied. The module doc of
/// [`super`](crate::config) shows each variable next to the key it sets.
pub const ENV_OVERRIDES: &[EnvOverride] = &[
    EnvOverride {
        var: "LAYER_LISTEN",
        doc: "gateway.listen",
        apply: |c, v| set(&mut c.gateway.listen, v),
    },
    EnvOverride {
        var: "LAYER_SHARDS",
        doc: "gateway.shards",
        apply: |c, v| set(&mut c.gateway.shards, v),
    },
    EnvOverride {
        var: "LAYER_WORK_STEALING",
        doc: "gateway.workStealing",
        apply: |c, v| set(&mut c.gateway.work_stealing, v),
    },
    EnvOverride {
        var: "LAYER_DATA_DIR",
        doc: "gateway.dataDir",
        apply: |c, v| set(&mut c.gateway.data_dir, v),
    },
    EnvOverride {
        var: "LAYER_MAX_BODY_BYTES",
        doc: "gateway.maxBodyBytes",
        apply: |c, v| set(&mut c.gateway.max_body_bytes, v),
    },
    EnvOverride {
        var: "LAYER_MAX_JSON_DEPTH",
        doc: "gateway.maxJsonDepth",
        apply: |c, v| set(&mut c.gateway.max_json_depth, v),
    },
    EnvOverride {
        var: "LAYER_DRAIN_TIMEOUT_MS",
        doc: "gateway.drainTimeoutMs",
        apply: |c, v| set(&mut c.gateway.drain_timeout_ms, v),
    },
    EnvOverride {
        var: "LAYER_MAX_CONNECTIONS_PER_SHARD",
        doc: "gateway.server.maxConnectionsPerShard",
        apply: |c, v| set(&mut c.gateway.server.max_connections_per_shard, v),
    },
    EnvOverride {
        var: "LAYER_MAX_IN_FLIGHT_PER_SHARD",
        doc: "gateway.server.maxInFlightPerShard",
        apply: |c, v| set(&mut c.gateway.server.max_in_flight_per_shard, v),
    },
    EnvOverride {
        var: "LAYER_HEADER_READ_TIMEOUT_MS",
        doc: "gateway.server.headerReadTimeoutMs",
        apply: |c, v| set(&mut c.gateway.server.header_read_timeout_ms, v),
    },
    EnvOverride {
        var: "LAYER_BODY_READ_TIMEOUT_MS",
        doc: "gateway.server.bodyReadTimeoutMs",
        apply: |c, v| set(&mut c.gateway.server.body_read_timeout_ms, v),
    },
    EnvOverride {
        var: "LAYER_LICENSE_FILE",
        doc: "gateway.license.file",
        apply: |c, v| set_some(&mut c.gateway.license.file, v),
    },
    EnvOverride {
        var: "LAYER_LICENSE_PUBLIC_KEY",
        doc: "gateway.license.publicKey",
        apply: |c, v| set_some(&mut c.gateway.license.public_key, v),
    },
    EnvOverride {
        var: "LAYER_COST_RATE_CARD_FILE",
        doc: "gateway.cost.rateCardFile",
        apply: |c, v| set_some(&mut c.gateway.cost.rate_card_file, v),
    },
    EnvOverride {
        var: "LAYER_COST_EXPLORER_ENABLED",
        doc: "gateway.cost.costExplorerEnabled",
        apply: |c, v| set(&mut c.gateway.cost.cost_explorer_enabled, v),
    },
    EnvOverride {
        var: "LAYER_COST_EXPLORER_ENDPOINT",
        doc: "gateway.cost.endpoint",
        apply: |c, v| set_some(&mut c.gateway.cost.endpoint, v),
    },
    EnvOverride {
        var: "LAYER_COST_REGION",
        doc: "gateway.cost.region",
        apply: |c, v| set(&mut c.gateway.cost.region, v),
    },
    EnvOverride {
        var: "LAYER_COST_TAG_KEY",
        doc: "gateway.cost.tagKey",
        apply: |c, v| set_some(&mut c.gateway.cost.tag_key, v),
    },
    EnvOverride {
        var: "LAYER_COST_TAG_VALUE",
        doc: "gateway.cost.tagValue",
        apply: |c, v| set_some(&mut c.gateway.cost.tag_value, v),
    },
    EnvOverride {
        var: "LAYER_COST_SITE",
        doc: "gateway.cost.site",
        apply: |c, v| set_some(&mut c.gateway.cost.site, v),
    },
    EnvOverride {
        var: "LAYER_COST_CACHE_TTL_SECONDS",
        doc: "gateway.cost.cacheTtlSeconds",
        apply: |c, v| set(&mut c.gateway.cost.cache_ttl_seconds, v),
    },
    EnvOverride {
        var: "LAYER_COST_REFRESH_INTERVAL_MS",
        doc: "gateway.cost.refreshIntervalMs",
        apply: |c, v| set(&mut c.gateway.cost.refresh_interval_ms, v),
    },
    EnvOverride {
        var: "LAYER_METRICS_URL",
        doc: "gateway.metrics.victoriaMetricsUrl",
        apply: |c, v| set_some(&mut c.gateway.metrics.victoria_metrics_url, v),
    },
    EnvOverride {
        var: "LAYER_METRICS_TIMEOUT_MS",
        doc: "gateway.metrics.timeoutMs",
        apply: |c, v| set(&mut c.gateway.metrics.timeout_ms, v),
    },
    EnvOverride {
        var: "LAYER_KUBERNETES_WATCH",
        doc: "gateway.kubernetes.enabled",
        apply: |c, v| set(&mut c.gateway.kubernetes.enabled, v),
    },
    EnvOverride {
        var: "LAYER_KUBERNETES_NAMESPACE",
        doc: "gateway.kubernetes.namespace",
        apply: |c, v| set_some(&mut c.gateway.kubernetes.namespace, v),
    },
    EnvOverride {
        var: "LAYER_KUBERNETES_INDEX_NAMESPACE",
        doc: "gateway.kubernetes.indexNamespace",
        apply: |c, v| set_some(&mut c.gateway.kubernetes.index_namespace, v),
    },
    EnvOverride {
        var: "LAYER_KUBERNETES_INDEXES",
        doc: "gateway.kubernetes.indexes",
        apply: |c, v| set(&mut c.gateway.kubernetes.indexes, v),
    },
    EnvOverride {
        var: "LAYER_KUBERNETES_API_SERVER",
        doc: "gateway.kubernetes.apiServer",
        apply: |c, v| set_some(&mut c.gateway.kubernetes.api_server, v),
    },
    EnvOverride {
        var: "LAYER_TLS_CERT_FILE",
        doc: "gateway.tls.certFile",
        apply: |c, v| set_some(&mut c.gateway.tls.cert_file, v),
    },
    EnvOverride {
        var: "LAYER_TLS_KEY_FILE",
        doc: "gateway.tls.keyFile",
        apply: |c, v| set_some(&mut c.gateway.tls.key_file, v),
    },
    EnvOverride {
        var: "LAYER_TLS_RELOAD_INTERVAL_MS",
        doc: "gateway.tls.reloadIntervalMs",
        apply: |c, v| set(&mut c.gateway.tls.reload_interval_ms, v),
    },
    EnvOverride {
        var: "LAYER_UPSTREAM_URL",
        doc: "vectorStore.endpoint.url",
        apply: |c, v| set(&mut c.vector_store.endpoint.url, v),
    },
    EnvOverride {
        var: "LAYER_UPSTREAM_API_KEY",
        doc: "vectorStore.credential.value",
        apply: |c, v| set_some(&mut c.vector_store.credential.value, v),
    },
    EnvOverride {
        var: "LAYER_UPSTREAM_CONNECT_TIMEOUT_MS",
        doc: "vectorStore.connectTimeoutMs",
        apply: |c, v| set(&mut c.vector_store.connect_timeout_ms, v),
    },
    EnvOverride {
        var: "LAYER_UPSTREAM_REQUEST_TIMEOUT_MS",
        doc: "vectorStore.requestTimeoutMs",
        apply: |c, v| set(&mut c.vector_store.request_timeout_ms, v),
    },
    EnvOverride {
        var: "LAYER_AUTH_MODE",
        doc: "vectorStore.inboundAuth.mode",
        apply: |c, v| set(&mut c.vector_store.inbound_auth.mode, v),
    },
    EnvOverride {
        var: "LAYER_DEFAULT_CONSISTENCY",
        doc: "gateway.consistency.defaultMode",
        apply: |c, v| set(&mut c.gateway.consistency.default_mode, v),
    },
    EnvOverride {
        var: "LAYER_CACHE_TIER",
        doc: "gateway.cache.tier",
        apply: |c, v| set(&mut c.gateway.cache.tier, v),
    },
    EnvOverride {
        var: "LAYER_CACHE_DIR",
        doc: "gateway.cache.dir",
        apply: |c, v| set_some(&mut c.gateway.cache.dir, v),
    },
    EnvOverride {
        var: "LAYER_CACHE_MAX_BYTES",
        doc: "gateway.cache.maxBytes",
        apply: |c, v| set(&mut c.gateway.cache.max_bytes, v),
    },
    EnvOverride {
        var: "LAYER_CACHE_HOT_BYTES_PER_SHARD",
        doc: "gateway.cache.hotBytesPerShard",
        apply: |c, v| set(&mut c.gateway.cache.hot_bytes_per_shard, v),
    },
    EnvOverride {
        var: "LAYER_CACHE_RECOVER",
        doc: "gateway.cache.recover",
        apply: |c, v| set(&mut c.gateway.cache.recover, v),
    },
    EnvOverride {
        var: "AEROSPIKE_HOSTS",
        doc: "gateway.cache.aerospike.hosts",
        apply: |c, v| set_some(&mut c.gateway.cache.aerospike.hosts, v),
    },
    EnvOverride {
        var: "LAYER_CACHE_POPULATE_MAX_IDS",
        doc: "gateway.cache.populateMaxIds",
        apply: |c, v| set(&mut c.gateway.cache.populate_max_ids, v),
    },
    EnvOverride {
        var: "CONSISTENCY_POLL_INTERVAL_MS",
        doc: "gateway.consistency.pollIntervalMs",
        apply: |c, v| set(&mut c.gateway.consistency.poll_interval_ms, v),
    },
    EnvOverride {
        var: "CONSISTENCY_STABLE_POLL_INTERVAL_MS",
        doc: "gateway.consistency.stablePollIntervalMs",
        apply: |c, v| set(&mut c.gateway.consistency.stable_poll_interval_ms, v),
    },
    EnvOverride {
        var: "CONSISTENCY_SAFETY_MARGIN_MS",
        doc: "gateway.consistency.safetyMarginMs",
        apply: |c, v| set(&mut c.gateway.consistency.safety_margin_ms, v),
    },
    EnvOverride {
        var: "LAYER_CONSISTENCY_MAX_CONCURRENT_POLLS",
        doc: "gateway.consistency.maxConcurrentPolls",
        apply: |c, v| set(&mut c.gateway.consistency.max_concurrent_polls, v),
    },
    EnvOverride {
        var: "NAMESPACE_LIST_CACHE_TTL_MS",
        doc: "gateway.namespaceListCacheTtlMs",
        apply: |c, v| set(&mut c.gateway.namespace_list_cache_ttl_ms, v),
    },
    EnvOverride {
        var: "LAYER_OBJECT_STORE",
        doc: "gateway.objectStore.backend",
        apply: |c, v| set(&mut c.gateway.object_store.backend, v),
    },
    EnvOverride {
        var: "LAYER_OBJECT_STORE_DIR",
        doc: "gateway.objectStore.dir",
        apply: |c, v| set_some(&mut c.gateway.object_store.dir, v),
    },
    EnvOverride {
        var: "LAYER_S3_BUCKET",
        doc: "gateway.objectStore.bucket",
        apply: |c, v| set_some(&mut c.gateway.object_store.bucket, v),
    },
    EnvOverride {
        var: "LAYER_S3_ENDPOINT",
        doc: "gateway.objectStore.endpoint",
        apply: |c, v| set_some(&mut c.gateway.object_store.endpoint, v),
    },
    EnvOverride {
        var: "LAYER_S3_REGION",
        doc: "gateway.objectStore.region",
        apply: |c, v| set_some(&mut c.gateway.object_store.region, v),
    },
    EnvOverride {
        var: "LAYER_OBJECT_STORE_PREFIX",
        doc: "gateway.objectStore.prefix",
        apply: |c, v| set(&mut c.gateway.object_store.prefix, v),
    },
    EnvOverride {
        var: "LAYER_S3_ALLOW_HTTP",
        doc: "gateway.objectStore.allowHttp",
        apply: |c, v| set(&mut c.gateway.object_store.allow_http, v),
    },
    EnvOverride {
        var: "LAYER_HISTORY_FLUSH_INTERVAL_MS",
        doc: "gateway.history.flushIntervalMs",
        apply: |c, v| set(&mut c.gateway.history.flush_interval_ms, v),
    },
    EnvOverride {
        var: "LAYER_HISTORY_MAX_BATCH",
        doc: "gateway.history.maxBatchEntries",
        apply: |c, v| set(&mut c.gateway.history.max_batch_entries, v),
    },
    EnvOverride {
        var: "LAYER_HISTORY_QUEUE",
        doc: "gateway.history.queueCapacity",
        apply: |c, v| set(&mut c.gateway.history.queue_capacity, v),
    },
    EnvOverride {
        var: "LAYER_HISTORY_RECENT_WINDOW",
        doc: "gateway.history.recentWindow",
        apply: |c, v| set(&mut c.gateway.history.recent_window, v),
    },
    EnvOverride {
        var: "LAYER_SNAPSHOT_MIN_INTERVAL_MS",
        doc: "gateway.snapshots.minIntervalMs",
        apply: |c, v| set(&mut c.gateway.snapshots.min_interval_ms, v),
    },
    EnvOverride {
        var: "LAYER_SCAN_THREADS",
        doc: "gateway.scan.defaultThreads",
        apply: |c, v| set(&mut c.gateway.scan.default_threads, v),
    },
    EnvOverride {
        var: "LAYER_SCAN_VALUES_CAP",
        doc: "gateway.scan.valuesCap",
        apply: |c, v| set(&mut c.gateway.scan.values_cap, v),
    },
    EnvOverride {
        var: "LAYER_DATABASE_URL",
        doc: "gateway.queue.url",
        apply: |c, v| set_some(&mut c.gateway.queue.url, v),
    },
    EnvOverride {
        var: "LAYER_DATABASE_SCHEMA",
        doc: "gateway.queue.schema",
        apply: |c, v| set(&mut c.gateway.queue.schema, v),
    },
    EnvOverride {
        var: "LAYER_DATABASE_POOL_SIZE",
        doc: "gateway.queue.poolSize",
        apply: |c, v| set(&mut c.gateway.queue.pool_size, v),
    },
    EnvOverride {
        var: "LAYER_DATABASE_CONNECT_TIMEOUT_MS",
        doc: "gateway.queue.connectTimeoutMs",
        apply: |c, v| set(&mut c.gateway.queue.connect_timeout_ms, v),
    },
    EnvOverride {
        var: "LAYER_QUEUE_MAX_LEASE_EXPIRIES",
        doc: "gateway.queue.maxLeaseExpiries",
        apply: |c, v| set(&mut c.gateway.queue.max_lease_expiries, v),
    },
];

/// Applies [`ENV_OVERRIDES`] for the variables `env` has, then the Turbopuffer SDK fallbacks:
/// `TURBOPUFFER_API_URL` when `LAYER_UPSTREAM_URL` is unset (it overrides the file), and
/// `TURBOPUFFER_API_KEY` when `LAYER_UPSTREAM_API_KEY` is unset and no `credential.value` is set.
pub(super) fn apply(
    cfg: &mut Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    for o in ENV_OVERRIDES {
        let Some(value) = env(o.var) else { continue };
        if let Err(reason) = (o.apply)(cfg, &value) {
            return Err(ConfigError::Env {
                var: o.var,
                value,
                reason,
            });
        }
    }
    let s = &mut cfg.vector_store;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_and_keys_are_unique() {
        let mut vars = std::collections::BTreeSet::new();
        let mut docs = std::collections::BTreeSet::new();
        for o in ENV_OVERRIDES {
            assert!(vars.insert(o.var), "{} listed twice", o.var);
            assert!(docs.insert(o.doc), "{} set by two variables", o.doc);
            assert!(
                o.var
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                o.var
            );
        }
    }

    #[test]
    fn a_parse_failure_names_the_variable_and_value() {
        let env = |k: &str| (k == "LAYER_MAX_JSON_DEPTH").then(|| "deep".to_string());
        match Config::load(None, &env) {
            Err(ConfigError::Env { var, value, reason }) => {
                assert_eq!(var, "LAYER_MAX_JSON_DEPTH");
                assert_eq!(value, "deep");
                assert!(reason.contains("invalid digit"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
