//! The operator's settings: flags, each also an environment variable, named as the Helm chart's
//! `operator.yaml` sets them (`LAYER_GATEWAY_URL`, `LAYER_WORKER_SECRET_NAME`, ...).

use clap::Parser;
use crds::k8s::common::SecretKeyRef;
use crds::k8s::store::AuthMode;

/// Command-line flags and environment of `layer-operator`.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "layer-operator",
    version,
    about = "Reconciles the hevlayer.com resources"
)]
pub struct Config {
    /// The gateway's base URL: what workers get as `HEVLAYER_BASE_URL` and where Functions and
    /// ApiKeys are registered.
    #[arg(
        long,
        env = "LAYER_GATEWAY_URL",
        default_value = "http://layer-gateway:8080"
    )]
    pub gateway_url: String,
    /// The operator's bearer for the gateway's admin routes (UDF registration, key minting).
    #[arg(long, env = "LAYER_GATEWAY_API_KEY", hide_env_values = true)]
    pub gateway_api_key: Option<String>,
    /// The inbound auth mode of the release (`deriveFromStore`, `keys`, `open`), used when a
    /// namespace has no VectorStore to read it from.
    #[arg(long, env = "LAYER_AUTH_MODE", default_value = "deriveFromStore")]
    pub auth_mode: String,
    /// The Secret holding the workers' gateway key, when a namespace has no VectorStore saying
    /// which one.
    #[arg(long, env = "LAYER_WORKER_SECRET_NAME")]
    pub worker_secret_name: Option<String>,
    /// The key of that Secret.
    #[arg(long, env = "LAYER_WORKER_SECRET_KEY")]
    pub worker_secret_key: Option<String>,
    /// Only this namespace's resources are reconciled; blank = every namespace.
    #[arg(long, env = "LAYER_OPERATOR_WATCH_NAMESPACE", default_value = "")]
    pub watch_namespace: String,
    /// The replica ceiling of a pool that sets no `maxReplicasPerWorkload`.
    #[arg(
        long,
        env = "LAYER_OPERATOR_MAX_REPLICAS_CEILING",
        default_value_t = 100
    )]
    pub max_replicas_ceiling: i32,
    /// The Prometheus-compatible server KEDA queries for `layer_udf_queue_depth` (the bundled
    /// VictoriaMetrics); blank = Functions scale on the gateway's status route instead.
    #[arg(long, env = "LAYER_METRICS_URL", default_value = "")]
    pub metrics_url: String,
    /// Worker pod label carrying the pipeline id.
    #[arg(
        long,
        env = "LAYER_WORKER_PIPELINE_ID_LABEL",
        default_value = "layer.hev.dev/pipeline-id"
    )]
    pub pipeline_id_label: String,
    /// Worker pod component label key and value.
    #[arg(
        long,
        env = "LAYER_WORKER_COMPONENT_LABEL",
        default_value = "layer.hev.dev/component"
    )]
    pub component_label: String,
    #[arg(long, env = "LAYER_WORKER_COMPONENT_VALUE", default_value = "worker")]
    pub component_value: String,
    /// Address of `/metrics` and `/healthz`.
    #[arg(long, env = "LAYER_OPERATOR_LISTEN", default_value = "0.0.0.0:8090")]
    pub listen: String,
    /// The namespace of the leader Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub pod_namespace: String,
    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME", default_value = "layer-operator")]
    pub pod_name: String,
    /// The leader Lease's name (the chart's RBAC names `layer-operator`).
    #[arg(long, default_value = "layer-operator")]
    pub lease_name: String,
    /// Whether upstream namespaces are discovered into Indexes.
    #[arg(long, env = "LAYER_DISCOVERY_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub discovery_enabled: bool,
    /// Seconds between discovery sweeps.
    #[arg(long, env = "LAYER_DISCOVERY_INTERVAL_SECONDS", default_value_t = 60)]
    pub discovery_interval_seconds: u64,
    /// Namespaces per listing page.
    #[arg(long, env = "LAYER_DISCOVERY_PAGE_SIZE", default_value_t = 1000)]
    pub discovery_page_size: u32,
    /// Only upstream namespaces with this prefix are discovered.
    #[arg(long, env = "LAYER_DISCOVERY_PREFIX", default_value = "")]
    pub discovery_prefix: String,
    /// Where discovered Indexes are created; blank = the operator's namespace.
    #[arg(long, env = "LAYER_INDEX_NAMESPACE", default_value = "")]
    pub index_namespace: String,
    /// Whether an Index discovery created is deleted when its namespace is gone upstream.
    #[arg(long, env = "LAYER_INDEX_GC_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub index_gc_enabled: bool,
    /// The document cache StatefulSet (and its `aerospike.conf` ConfigMap) the chart renders in
    /// the operator's namespace; `InfraRules/default`'s `documentCache` policy is checked
    /// against it.
    #[arg(
        long,
        env = "LAYER_DOCUMENT_CACHE_NAME",
        default_value = "layer-document-cache"
    )]
    pub document_cache_name: String,
    /// The Snowflake endpoint Warehouse probes reach; blank = `https://<account>.snowflakecomputing.com`
    /// (set it for a private link).
    #[arg(long, env = "LAYER_SNOWFLAKE_ENDPOINT", default_value = "")]
    pub snowflake_endpoint: String,
    /// How long a Lease is held without renewal before another replica may take it.
    #[arg(long, default_value_t = 15)]
    pub lease_seconds: i32,
}

impl Config {
    /// Settings for tests: the defaults with the given gateway URL.
    pub fn for_tests(gateway_url: &str) -> Config {
        let mut c = Config::parse_from(["layer-operator"]);
        c.gateway_url = gateway_url.into();
        c
    }

    /// Where discovered Indexes live.
    pub fn index_namespace(&self) -> String {
        if self.index_namespace.is_empty() {
            self.pod_namespace.clone()
        } else {
            self.index_namespace.clone()
        }
    }

    /// The fallback auth mode (unknown spellings mean the default, `deriveFromStore`).
    pub fn fallback_mode(&self) -> AuthMode {
        match self.auth_mode.as_str() {
            "keys" => AuthMode::Keys,
            "open" => AuthMode::Open,
            _ => AuthMode::DeriveFromStore,
        }
    }

    /// The fallback worker Secret (both name and key set).
    pub fn fallback_worker_secret(&self) -> Option<SecretKeyRef> {
        match (&self.worker_secret_name, &self.worker_secret_key) {
            (Some(name), Some(key)) if !name.is_empty() && !key.is_empty() => Some(SecretKeyRef {
                name: name.clone(),
                key: key.clone(),
            }),
            _ => None,
        }
    }
}

/// Operator settings the builders need (from [`crate::config::Config`]).
#[derive(Clone, Debug)]
pub struct Settings {
    pub gateway_url: String,
    pub metrics_url: String,
    pub ceiling: i32,
    pub pipeline_id_label: String,
    pub component_label: String,
    pub component_value: String,
}

impl Settings {
    pub fn from_config(c: &Config) -> Settings {
        Settings {
            gateway_url: c.gateway_url.trim_end_matches('/').into(),
            metrics_url: c.metrics_url.clone(),
            ceiling: c.max_replicas_ceiling,
            pipeline_id_label: c.pipeline_id_label.clone(),
            component_label: c.component_label.clone(),
            component_value: c.component_value.clone(),
        }
    }
}
