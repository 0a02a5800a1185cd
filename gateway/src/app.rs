//! The composition root: the only module that names every feature. It validates the
//! configuration, builds the [`Core`], the shared sources, each feature with the narrow handles
//! it needs, concatenates their route tables into one [`Router`], and starts the runtimes with
//! every feature's background work. Start at [`start`].

use std::sync::Arc;

use crate::core::Core;
use crate::core::auth::Auth;
use crate::core::cache::CacheTier;
use crate::core::config::{CacheTierKind, Config, ConfigError};
use crate::core::record::Recorder;
use crate::core::router::{Route, Router};
use crate::core::runtime::{self, Background, Running, StartError};
use crate::core::store::ObjectStore;
use crate::core::watcher::Watcher;
use crate::features::{
    agents::Agents, blobs::Blobs, checkpoints::Checkpoints, cost::Cost, federated::Federated,
    fetch::Fetch, history::History, import::Import, keys::Keys, license::License, metrics::Metrics,
    namespaces, ops::Ops, passthrough, pipelines::Pipelines, query::Query, scans::Scans,
    snapshots::Snapshots, stores::Stores, udfs::Udfs, warm::Warm,
};
use crate::sources::kubernetes::Kubernetes;
use crate::sources::queue::QueueSource;
use crate::sources::snapshot_store::SnapshotStore;
use crate::sources::warmth::Warmth;

/// Validates the configuration and starts the data plane. `env` resolves credentials and
/// `tokenEnv` references (pass `|k| std::env::var(k).ok()` in production).
pub fn start(config: Config, env: &dyn Fn(&str) -> Option<String>) -> Result<Running, StartError> {
    start_with_tier(config, env, None)
}

/// Like [`start`], with a cache tier supplied by the caller (tests inject failures this way).
pub fn start_with_tier(
    config: Config,
    env: &dyn Fn(&str) -> Option<String>,
    tier: Option<Arc<dyn layer_cache::Tier>>,
) -> Result<Running, StartError> {
    config.validate(env)?;
    let mut config = config;
    // Agents' model keys named by `credential.env` are read once, here.
    for a in &mut config.agents {
        let c = &mut a.model.credential;
        if c.value.is_none() {
            c.value = c.env.as_deref().and_then(env);
        }
    }
    if config.gateway.cache.tier == CacheTierKind::Aerospike && !cfg!(feature = "aerospike") {
        return Err(ConfigError::Invalid(
            "cache.tier aerospike needs a gateway built with `--features aerospike`".into(),
        )
        .into());
    }
    let tier = match tier {
        Some(t) => t,
        None => open_tier(&config)?,
    };
    let cache = CacheTier::new(tier, config.gateway.cache.hot_bytes_per_shard);
    let auth = Auth::from_config(&config, env)?;
    let shards = match config.gateway.shards {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    // Each store's credential, the default store's first.
    let store_keys: Vec<Option<String>> = config
        .stores()
        .map(|s| crate::core::config::store_key(s, env))
        .collect();
    let (watcher, registrations) = Watcher::new(config.gateway.consistency.clone());
    for i in &config.indexes {
        watcher.register(i.namespace());
    }
    let store = ObjectStore::open(&config, env).map_err(|e| StartError::Store(e.to_string()))?;
    let core = Arc::new(Core::new(config, auth, shards, watcher, cache, store));
    crate::sources::layouts::load_at_start(&core, env);
    let kubernetes = Kubernetes::new(core.clone(), env)?;
    let app = App::build_with(core.clone(), kubernetes)?;
    let router = Router::new(app.routes()).map_err(StartError::Routes)?;
    runtime::start(
        core,
        Arc::new(router),
        store_keys,
        registrations,
        app.background(),
    )
}

/// Every feature, built.
pub struct App {
    history: Arc<History>,
    query: Arc<Query>,
    federated: Arc<Federated>,
    agents: Arc<Agents>,
    fetch: Arc<Fetch>,
    snapshots: Arc<Snapshots>,
    scans: Arc<Scans>,
    warm: Arc<Warm>,
    ops: Arc<Ops>,
    pipelines: Arc<Pipelines>,
    udfs: Arc<Udfs>,
    keys: Arc<Keys>,
    stores: Arc<Stores>,
    checkpoints: Arc<Checkpoints>,
    blobs: Arc<Blobs>,
    import: Arc<Import>,
    license: Arc<License>,
    cost: Arc<Cost>,
    metrics: Arc<Metrics>,
    snapshot_store: Arc<SnapshotStore>,
    kubernetes: Option<Arc<Kubernetes>>,
}

impl App {
    /// Builds the sources and the features, and connects what one feature offers another. Fails
    /// on a configuration a feature refuses (a malformed database URL).
    pub fn build(core: Arc<Core>) -> Result<App, ConfigError> {
        Self::build_with(core, None)
    }

    /// [`App::build`] with the cluster watch (`gateway.kubernetes`), which feeds the indexes
    /// and the key store.
    pub fn build_with(
        core: Arc<Core>,
        kubernetes: Option<Arc<Kubernetes>>,
    ) -> Result<App, ConfigError> {
        let snapshot_store = SnapshotStore::new(core.clone());
        let queue = QueueSource::new(core.clone())?;
        let warmth = Warmth::new(core.watcher.clone());
        let history = History::new(&core.config, core.store.clone());
        let recorder: Arc<dyn Recorder> = history.clone();
        let warm = Warm::new(core.clone(), snapshot_store.clone(), warmth.clone());
        // The Auto policy's background warm (scans, snapshot jobs) reaches the warm feature
        // through the warmth source; a weak handle, so the two do not keep each other alive.
        let weak = Arc::downgrade(&warm);
        warmth.set_background(Box::new(move |ns: &str| {
            if let Some(w) = weak.upgrade() {
                w.ensure_background(ns);
            }
        }));
        let query = Query::new(recorder.clone());
        let federated = Federated::new(query.clone());
        let agents = Agents::new(core.clone(), federated.clone())?;
        Ok(App {
            pipelines: Pipelines::new(core.clone(), queue.clone()),
            udfs: Udfs::new(core.clone(), queue.clone()),
            keys: Keys::new(
                core.clone(),
                queue.clone(),
                kubernetes.as_ref().map(|k| k.keys()),
            ),
            stores: Stores::new(core.clone(), queue),
            checkpoints: Checkpoints::new(core.clone(), snapshot_store.clone()),
            blobs: Blobs::new(core.clone()),
            import: Import::new(core.clone(), snapshot_store.clone()),
            license: License::new(core.clone()),
            cost: Cost::new(core.clone()),
            metrics: Metrics::new(core.clone()),
            query,
            federated,
            agents,
            fetch: Fetch::new(recorder),
            snapshots: Snapshots::new(core.clone(), snapshot_store.clone(), warmth.clone()),
            scans: Scans::new(core.clone(), snapshot_store.clone(), warmth.clone()),
            ops: Ops::new(core, warmth),
            warm,
            history,
            snapshot_store,
            kubernetes,
        })
    }

    /// Every route of every feature: the one routing and auth table.
    pub fn routes(&self) -> Vec<Route> {
        let mut routes = Vec::new();
        routes.extend(self.ops.routes());
        routes.extend(self.query.routes());
        routes.extend(self.federated.routes());
        routes.extend(self.agents.routes());
        routes.extend(passthrough::routes(self.snapshot_store.clone()));
        routes.extend(self.fetch.routes());
        routes.extend(namespaces::routes());
        routes.extend(self.history.routes());
        routes.extend(self.snapshots.routes());
        routes.extend(self.scans.routes());
        routes.extend(self.warm.routes());
        routes.extend(self.pipelines.routes());
        routes.extend(self.udfs.routes());
        routes.extend(self.keys.routes());
        routes.extend(self.stores.routes());
        routes.extend(self.checkpoints.routes());
        routes.extend(self.blobs.routes());
        routes.extend(self.import.routes());
        routes.extend(self.license.routes());
        routes.extend(self.cost.routes());
        routes.extend(self.metrics.routes());
        routes
    }

    /// Work each feature runs on the control runtime.
    pub fn background(&self) -> Vec<Arc<dyn Background>> {
        let mut all: Vec<Arc<dyn Background>> = vec![
            self.history.clone(),
            self.snapshots.clone(),
            self.pipelines.clone(),
            self.udfs.clone(),
            self.keys.clone(),
            self.cost.clone(),
            self.import.clone(),
        ];
        if let Some(k) = &self.kubernetes {
            all.push(k.clone());
        }
        all
    }
}

/// Opens the configured cache tier (blocking while the NVMe tier recovers).
fn open_tier(config: &Config) -> Result<Arc<dyn layer_cache::Tier>, StartError> {
    let c = &config.gateway.cache;
    Ok(match c.tier {
        CacheTierKind::Disabled => Arc::new(layer_cache::DisabledTier),
        CacheTierKind::Aerospike => open_aerospike(config)?,
        CacheTierKind::Nvme => {
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
    let tier = crate::core::tier_runtime::RuntimeTier::new(Arc::new(tier), rt);
    Ok(Arc::new(crate::core::tier_metrics::TimedTier::new(
        Arc::new(tier),
    )))
}

#[cfg(not(feature = "aerospike"))]
fn open_aerospike(_: &Config) -> Result<Arc<dyn layer_cache::Tier>, StartError> {
    Err(StartError::Cache(
        "this gateway was built without the aerospike feature".into(),
    ))
}

#[cfg(test)]
mod tests {
    use http::Method;

    use super::*;
    use crate::core::params::decode_path_segment;

    fn router() -> Router {
        let app = App::build(crate::core::test_core()).expect("the test core's config is valid");
        Router::new(app.routes()).expect("no overlapping routes")
    }

    /// The whole routing and auth table, one line per route: method, pattern, metrics name,
    /// scope (`-` for public routes). A change to any route's path or scope changes this text.
    const TABLE: &str = "\
GET /health health -
GET /metrics metrics -
POST /v2/namespaces/{ns}/query query read
POST /v1/namespaces/{ns}/query query_v1 read
POST /v2/query federated_query read
POST /v2/agents/{name}/query agent_query read
POST /v2/namespaces/{ns} write write
DELETE /v2/namespaces/{ns} delete write
POST /v2/namespaces/{ns}/async copy_async write
GET /v1/namespaces list read
GET /v1/namespaces/{ns}/metadata metadata read
GET /v2/namespaces/{ns}/metadata metadata read
PATCH /v1/namespaces/{ns}/metadata update_metadata write
PATCH /v2/namespaces/{ns}/metadata update_metadata write
GET /v1/namespaces/{ns}/schema schema read
POST /v1/namespaces/{ns}/schema update_schema write
POST /v2/namespaces/{ns}/explain_query explain read
POST /v1/namespaces/{ns}/_debug/recall recall read
GET /v1/namespaces/{ns}/operations/{token} operation read
GET /v2/namespaces/{ns}/documents/{id} fetch read
POST /v2/namespaces/{ns}/documents batch_fetch read
GET /v2/namespaces list_namespaces read
GET /v2/namespaces/{ns}/search-history search_history read
GET /v1/namespaces/{ns}/search-history search_history read
GET /v2/namespaces/{ns}/clickstream clickstream read
GET /v1/namespaces/{ns}/clickstream clickstream read
POST /v2/namespaces/{ns}/snapshots create_snapshot read
GET /v2/namespaces/{ns}/snapshot-jobs list_snapshot_jobs read
GET /v2/namespaces/{ns}/snapshot-jobs/{id} get_snapshot_job read
GET /v2/namespaces/{ns}/history namespace_history read
GET /v2/namespaces/{ns}/snapshots/{sha} get_snapshot read
GET /v2/namespaces/{ns}/snapshot-policy get_snapshot_policy read
PUT /v2/namespaces/{ns}/snapshot-policy put_snapshot_policy write
GET /v2/activity/snapshots snapshot_activity read
POST /v2/namespaces/{ns}/scans create_scan read
GET /v2/namespaces/{ns}/scans list_scans read
GET /v2/namespaces/{ns}/scans/{id} get_scan read
DELETE /v2/namespaces/{ns}/scans/{id} delete_scan read
GET /v2/namespaces/{ns}/scans/{id}/results scan_results read
POST /v2/namespaces/{ns}/warm warm read
GET /v2/namespaces/{ns}/warm-jobs list_warm_jobs read
GET /v2/namespaces/{ns}/warm-jobs/{id} get_warm_job read
GET /v1/namespaces/{ns}/hint_cache_warm hint_cache_warm read
POST /v2/pipelines create_pipeline admin
GET /v2/pipelines list_pipelines read
DELETE /v2/pipelines/{pid} delete_pipeline admin
GET /v2/pipelines/{pid}/status pipeline_status read
PUT /v2/pipelines/{pid}/documents/{doc} put_pipeline_chunks write
GET /v2/pipelines/{pid}/documents/{doc}/chunks get_pipeline_chunks read
PUT /v2/pipelines/{pid}/documents/{doc}/vectors put_pipeline_vectors write
POST /v2/pipelines/{pid}/claim claim_documents write
POST /v2/pipelines/{pid}/documents/heartbeat heartbeat_documents write
POST /v2/pipelines/{pid}/documents/stage set_documents_stage write
POST /v2/udfs create_udf admin
GET /v2/udfs list_udfs read
GET /v2/udfs/{id} get_udf read
PUT /v2/udfs/{id} upsert_udf admin
DELETE /v2/udfs/{id} delete_udf admin
GET /v2/udfs/{id}/status udf_status read
POST /v2/udfs/{id}/discover discover_udf admin
POST /v2/udfs/{id}/pause pause_udf admin
POST /v2/udfs/{id}/resume resume_udf admin
POST /v2/udfs/{id}/reset-failed reset_failed_udf admin
POST /v2/udfs/{id}/claim claim_udf_items write
POST /v2/udfs/{id}/items/complete complete_udf_items write
POST /v2/udfs/{id}/items/fail fail_udf_items write
POST /v2/udfs/{id}/items/heartbeat heartbeat_udf_items write
POST /v2/keys mint_key admin
GET /v2/keys list_keys admin
GET /v2/keys/{id} get_key admin
POST /v2/keys/{id}/revoke revoke_key admin
DELETE /v2/keys/{id} delete_key admin
POST /v2/keys/authenticate authenticate_key -
GET /v2/vectorstores list_vectorstores read
GET /v2/vectorstores/{name} get_vectorstore read
GET /v2/vectorstores/{name}/capabilities vectorstore_capabilities read
GET /v2/namespaces/{ns}/capabilities namespace_capabilities read
GET /v2/warehouses list_warehouses read
GET /v2/warehouses/{name} get_warehouse read
POST /v2/namespaces/{ns}/checkpoints create_checkpoint write
GET /v2/namespaces/{ns}/checkpoints list_checkpoints read
GET /v2/namespaces/{ns}/checkpoints/{label} get_checkpoint read
PUT /v1/namespaces/{ns}/blobs put_blob write
GET /v1/namespaces/{ns}/blobs/{sha} get_blob read
POST /v2/namespaces/{ns}/init init_namespace write
POST /v2/namespaces/{ns}/import import_namespace write
GET /v2/license get_license read
GET /v2/cost get_cost_snapshot read
GET /v2/cost/timeseries get_cost_timeseries read
GET /v2/cost/rate-card get_cost_rate_card read
GET /v2/metrics/catalog list_metrics_catalog read
GET /v2/metrics/catalog/{name} get_metric_catalog_entry read
GET /v2/metrics/api/v1/query query_metrics read
POST /v2/metrics/api/v1/query query_metrics read
GET /v2/metrics/query query_metrics read
POST /v2/metrics/query query_metrics read
GET /v2/metrics/api/v1/query_range query_metrics_range read
POST /v2/metrics/api/v1/query_range query_metrics_range read
GET /v2/metrics/query_range query_metrics_range read
POST /v2/metrics/query_range query_metrics_range read
";

    #[test]
    fn every_route_with_its_scope() {
        let table: String = router()
            .routes()
            .iter()
            .map(|r| {
                let scope = r.scope.map_or("-", |s| s.as_str());
                format!("{} {} {} {scope}\n", r.method, r.pattern, r.name)
            })
            .collect();
        assert_eq!(table, TABLE, "the route table changed:\n{table}");
    }

    #[test]
    fn every_route_of_the_contract_resolves_to_its_handler() {
        let r = router();
        // A concrete request for every line of the table (parameters filled in) finds exactly
        // that route, with that scope; namespaces named like literals do not confuse it.
        for line in TABLE.lines() {
            let mut f = line.split(' ');
            let (method, pattern, name) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            let scope = f.next().unwrap();
            let method: Method = method.parse().unwrap();
            for ns in ["shop", "scans", "documents", "query"] {
                let path = pattern
                    .replace("{ns}", ns)
                    .replace("{id}", "x-1")
                    .replace("{sha}", "abcdef0")
                    .replace("{token}", "op_1")
                    .replace("{pid}", "products")
                    .replace("{doc}", "doc-1");
                let (route, params) = r
                    .find(&method, &path)
                    .unwrap_or_else(|| panic!("{method} {path} has no route"));
                assert_eq!(route.name, name, "{method} {path}");
                assert_eq!(route.scope.map_or("-", |s| s.as_str()), scope);
                if pattern.contains("{ns}") {
                    assert_eq!(params.raw(&path, "ns"), Some(ns));
                }
            }
        }
    }

    #[test]
    fn unknown_paths_and_methods_match_nothing() {
        let r = router();
        for (m, p) in [
            (Method::GET, "/v2/namespaces/shop/nope"),
            (Method::PUT, "/v2/namespaces/shop"),
            (Method::GET, "/v2/namespaces/shop/query"),
            (Method::POST, "/health"),
            (Method::GET, "/v3/namespaces"),
            (Method::GET, "/v2/namespaces/"),
            (Method::POST, "/v2/namespaces//query"),
            (Method::GET, "//health"),
            (Method::GET, "/v2/namespaces/shop/documents/a/b"),
            (Method::GET, "/"),
        ] {
            assert!(r.find(&m, p).is_none(), "{m} {p}");
        }
    }

    #[test]
    fn document_ids_are_decoded_with_path_rules() {
        let r = router();
        for (raw, id) in [
            ("a+b", "a+b"),
            ("a%2Bb", "a+b"),
            ("a%20b", "a b"),
            ("a%2Fb", "a/b"),
            ("%E2%9C%93", "\u{2713}"),
            ("plain", "plain"),
        ] {
            let path = format!("/v2/namespaces/shop/documents/{raw}");
            let (route, params) = r.find(&Method::GET, &path).unwrap();
            assert_eq!(route.name, "fetch");
            assert_eq!(decode_path_segment(params.raw(&path, "id").unwrap()), id);
        }
    }

    #[test]
    fn handlers_only_read_parameters_their_pattern_has() {
        // Handlers read `ns`, `id`, `sha` and `token`; every route naming one in a handler has it.
        for route in router().routes() {
            let needs_ns = route.pattern.starts_with("/v1/namespaces/")
                || route.pattern.starts_with("/v2/namespaces/");
            assert_eq!(route.has_param("ns"), needs_ns, "{}", route.pattern);
        }
    }
}
