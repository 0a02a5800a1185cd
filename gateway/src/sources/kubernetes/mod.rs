//! The cluster's desired state, read through a watch: in a cluster
//! (`gateway.kubernetes.enabled`) the gateway lists and watches `Index`, `ApiKey` and
//! `VectorStore` resources (read-only RBAC: get, list, watch) and feeds what they say into the
//! in-memory state the file feeds:
//!
//! - `Index` → [`crate::core::indexes::Indexes`] (policy, labels, shards, consistency, scan and
//!   snapshot settings apply without a restart; new namespaces join the consistency watcher);
//! - `ApiKey` → [`ClusterKeys`], the Kubernetes backend of the key store (`features/keys`):
//!   `Active` keys authenticate, `Revoked`/`Expired`/deleted ones stop once the watch delivers
//!   the change;
//! - `VectorStore` → [`Kubernetes::stores`], the stores the cluster declares (entitlement
//!   targets of keys), and [`stores::ClusterStores`]: each becomes a usable upstream store (its
//!   credential read from its `Secret`), published with the `Index` routes
//!   (`backend.storeRef`) into [`crate::core::upstreams::LiveStores`], which every shard
//!   follows without a restart.
//!
//! Where to start: [`Kubernetes::new`], then [`watch::Reflector`] (list, watch, bookmarks,
//! relist on 410, reconnect with backoff) over [`client::ApiClient`] (in-cluster config, hyper +
//! rustls, no kube crate). Metrics are in [`metrics`]. The gateway never writes a resource.
//!
//! The file's stores keep the connection they started with (a cluster `VectorStore` of the same
//! name does not replace it); the file's default store stays the default. Key entitlements
//! (`vectorstore.<name>`) judge a namespace by the same live routes
//! ([`crate::core::principal::Routing::follow`]).

pub mod client;
pub mod convert;
pub mod metrics;
pub mod stores;
pub mod watch;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use layer_queue::keys::StoredKey;
use serde_json::Value;

use crate::core::config::IndexConfig;

use crate::core::config::ConfigError;
use crate::core::runtime::Background;
use crate::core::{Control, Core};
use client::ApiClient;
use metrics::WatchMetrics;
use watch::{Reflector, Sink};

/// The `ApiKey` resources as stored keys, and a counter that moves on every change.
#[derive(Default)]
pub struct ClusterKeys {
    keys: ArcSwap<Vec<StoredKey>>,
    epoch: AtomicI64,
}

impl ClusterKeys {
    /// Every key the cluster holds (revoked and expired ones too; `Pending` ones have no id yet
    /// and are left out).
    pub fn all(&self) -> Arc<Vec<StoredKey>> {
        self.keys.load_full()
    }

    /// Moves on every change the watch delivers.
    pub fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Replaces the keys (the watch's sink; tests).
    pub fn publish(&self, keys: Vec<StoredKey>) {
        self.keys.store(Arc::new(keys));
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

/// The watch source.
pub struct Kubernetes {
    core: Arc<Core>,
    client: Arc<ApiClient>,
    namespace: String,
    index_namespace: String,
    metrics: Arc<WatchMetrics>,
    keys: Arc<ClusterKeys>,
    stores: ArcSwap<Vec<String>>,
    cluster_stores: Arc<stores::ClusterStores>,
}

impl Kubernetes {
    /// The source when `gateway.kubernetes.enabled`, else `None`. Fails on a configuration it
    /// cannot use (no API server, an unreadable CA bundle).
    pub fn new(
        core: Arc<Core>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Arc<Kubernetes>>, ConfigError> {
        let cfg = &core.config.gateway.kubernetes;
        if !cfg.enabled {
            return Ok(None);
        }
        let client = ApiClient::new(cfg, env).map_err(ConfigError::Invalid)?;
        let namespace = cfg.namespace.clone().unwrap_or_else(client::pod_namespace);
        let index_namespace = cfg
            .index_namespace
            .clone()
            .unwrap_or_else(|| namespace.clone());
        let client = Arc::new(client);
        let metrics = Arc::new(WatchMetrics::new());
        let cluster_stores = Arc::new(stores::ClusterStores::new(
            core.stores.clone(),
            client.clone(),
            namespace.clone(),
            metrics.clone(),
        ));
        Ok(Some(Arc::new(Kubernetes {
            client,
            namespace,
            index_namespace,
            metrics,
            keys: Arc::default(),
            stores: ArcSwap::from_pointee(Vec::new()),
            cluster_stores,
            core,
        })))
    }

    /// The key store's Kubernetes backend.
    pub fn keys(&self) -> Arc<ClusterKeys> {
        self.keys.clone()
    }

    /// The names of the `VectorStore` resources the watch holds.
    pub fn stores(&self) -> Arc<Vec<String>> {
        self.stores.load_full()
    }

    fn reflector(&self, kind: &'static str, path: String, sink: Sink) -> Reflector {
        let cfg = &self.core.config.gateway.kubernetes;
        Reflector {
            client: self.client.clone(),
            kind,
            path,
            sink,
            metrics: self.metrics.clone(),
            backoff: Duration::from_millis(cfg.backoff_ms.max(1)),
            max_backoff: Duration::from_millis(cfg.max_backoff_ms.max(cfg.backoff_ms.max(1))),
            watch_timeout_seconds: cfg.watch_timeout_seconds.max(1),
        }
    }

    fn on_keys(&self, objects: &BTreeMap<String, Value>) {
        let keys = objects
            .values()
            .filter_map(|o| match convert::api_key(o) {
                Ok(k) => k,
                Err(e) => {
                    self.metrics.error("apikeys", "decode");
                    tracing::warn!(apikey = watch::name_of(o), error = %e, "ApiKey not applied");
                    None
                }
            })
            .collect();
        self.keys.publish(keys);
    }

    fn on_indexes(&self, objects: &BTreeMap<String, Value>) {
        let default = &self.core.config.vector_store.name;
        let mut indexes = Vec::new();
        let mut routes = std::collections::HashMap::new();
        for (index, applies) in in_force(objects) {
            let index = match index {
                Ok(i) => i,
                Err((name, e)) => {
                    self.metrics.error("indexes", "decode");
                    tracing::warn!(index = name, error = %e, "Index not applied");
                    continue;
                }
            };
            let ns = index.namespace().to_string();
            if !applies {
                self.metrics.error("indexes", "duplicate");
                tracing::warn!(index = %index.name, namespace = %ns,
                    "two Index resources resolve to one upstream namespace; the older one wins");
                continue;
            }
            let store = index.backend.store_ref.as_deref().unwrap_or(default);
            routes.insert(ns, store.to_string());
            indexes.push(index);
        }
        for ns in self.core.indexes.set_cluster(indexes) {
            self.core.watcher.register(&ns);
        }
        self.cluster_stores.set_routes(routes);
    }

    fn on_stores(&self, objects: &BTreeMap<String, Value>) {
        let names = objects.keys().cloned().collect();
        self.stores.store(Arc::new(names));
        self.cluster_stores.set_objects(objects);
    }
}

/// An Index object decoded, or its name and why it could not be.
type Decoded<'a> = Result<IndexConfig, (&'a str, String)>;

/// Every Index object decoded, oldest first (`metadata.creationTimestamp`, then name), each
/// with whether it applies: where several resolve to one upstream namespace only the oldest
/// does, the Index the operator gives the namespace to (it marks the others `UpstreamConflict`).
/// A decoding failure carries the object's name.
fn in_force(objects: &BTreeMap<String, Value>) -> Vec<(Decoded<'_>, bool)> {
    let mut decoded: Vec<(&str, &str, Decoded<'_>)> = objects
        .values()
        .map(|o| {
            let created = o
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let name = watch::name_of(o);
            (created, name, convert::index(o).map_err(|e| (name, e)))
        })
        .collect();
    // RFC 3339 times in the API server's one format (UTC, whole seconds) sort as text; an
    // object without one sorts first, as in the operator.
    decoded.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut seen = std::collections::HashSet::new();
    decoded
        .into_iter()
        .map(|(_, _, index)| {
            let applies = match &index {
                Ok(i) => seen.insert(i.namespace().to_string()),
                Err(_) => false,
            };
            (index, applies)
        })
        .collect()
}

/// `/apis/hevlayer.com/{version}/namespaces/{ns}/{plural}`.
fn collection(version: &str, ns: &str, plural: &str) -> String {
    let ns = crate::core::params::encode_query_component(ns);
    format!("/apis/hevlayer.com/{version}/namespaces/{ns}/{plural}")
}

/// The three watches, on the control runtime.
impl Background for Kubernetes {
    fn start(self: Arc<Self>, control: &Control) {
        tracing::info!(
            api_server = self.client.base(),
            namespace = %self.namespace,
            index_namespace = %self.index_namespace,
            "watching the cluster's VectorStores, Indexes and ApiKeys"
        );
        let me = self.clone();
        let keys: Sink = Arc::new(move |o| me.on_keys(o));
        let path = collection("v1alpha1", &self.namespace, "apikeys");
        control
            .handle
            .spawn(self.reflector("apikeys", path, keys).run());
        // Secrets are read again every watch period (a rotated credential is picked up).
        let refresh = Duration::from_secs(
            self.core
                .config
                .gateway
                .kubernetes
                .watch_timeout_seconds
                .max(1),
        );
        control
            .handle
            .spawn(self.cluster_stores.clone().run(refresh));
        let me = self.clone();
        let stores: Sink = Arc::new(move |o| me.on_stores(o));
        let path = collection("v1alpha1", &self.namespace, "vectorstores");
        control
            .handle
            .spawn(self.reflector("vectorstores", path, stores).run());
        if self.core.config.gateway.kubernetes.indexes {
            let me = self.clone();
            let indexes: Sink = Arc::new(move |o| me.on_indexes(o));
            let path = collection("v1", &self.index_namespace, "indexes");
            control
                .handle
                .spawn(self.reflector("indexes", path, indexes).run());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn index(name: &str, created: Option<&str>, upstream: &str) -> (String, Value) {
        let mut meta = json!({"name": name, "namespace": "layer"});
        if let Some(t) = created {
            meta["creationTimestamp"] = json!(t);
        }
        let o = json!({"apiVersion": "hevlayer.com/v1", "kind": "Index", "metadata": meta,
            "spec": {"backend": {"namespace": upstream}}});
        (format!("layer/{name}"), o)
    }

    /// Of two Indexes resolving to one upstream namespace the older applies, whatever the
    /// names' order (the operator's rule); distinct namespaces all apply; bad objects never do.
    #[test]
    fn the_oldest_index_of_an_upstream_namespace_applies() {
        let objects: BTreeMap<String, Value> = [
            index("a-newer", Some("2026-12-05T10:00:00Z"), "docs"),
            index("b-older", Some("2026-12-01T10:00:00Z"), "docs"),
            index("c-own", Some("2026-12-05T11:00:00Z"), "images"),
            (
                "layer/broken".into(),
                json!({"metadata": {"name": "broken"}, "spec": 7}),
            ),
        ]
        .into_iter()
        .collect();
        let picked: Vec<(String, bool)> = in_force(&objects)
            .into_iter()
            .map(|(i, applies)| match i {
                Ok(i) => (i.name, applies),
                Err((name, _)) => (name.to_string(), applies),
            })
            .collect();
        assert_eq!(
            picked,
            [
                ("broken".to_string(), false),
                ("b-older".to_string(), true),
                ("a-newer".to_string(), false),
                ("c-own".to_string(), true),
            ]
        );
        // Same creation time: the name decides.
        let tie: BTreeMap<String, Value> = [
            index("y", Some("2026-12-01T10:00:00Z"), "docs"),
            index("x", Some("2026-12-01T10:00:00Z"), "docs"),
        ]
        .into_iter()
        .collect();
        let applies: Vec<bool> = in_force(&tie).into_iter().map(|(_, a)| a).collect();
        assert_eq!(applies, [true, false]);
        let first = in_force(&tie).into_iter().next().unwrap().0.unwrap();
        assert_eq!(first.name, "x");
    }
}
