//! `VectorStore`s and `Index` routes → the live store set ([`crate::core::upstreams`]).
//!
//! The set is the file's stores (`vectorStore` first, then `vectorStores`, as configured at
//! start) plus every cluster `VectorStore` whose name the file does not use, each with its
//! credential read from the `Secret` its `credential.secretRef` names (a `GET` of that one
//! Secret: the gateway never lists Secrets). The routes are the file's `indexes[]` routes with
//! every cluster `Index`'s on top (its `backend.storeRef`, else the default store).
//!
//! A store whose Secret cannot be read (missing, no such key) is left out until it can: its
//! namespaces answer 503 `store_unavailable`, as do those of a deleted store. Secrets are read
//! again whenever the `VectorStore`s change and every `watchTimeoutSeconds` (a rotated
//! credential is picked up within that period).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;

use super::client::ApiClient;
use super::convert::{self, ClusterStore};
use super::metrics::WatchMetrics;
use crate::core::upstreams::{LiveStores, StoreEndpoint, StoreSnapshot};

/// A cluster store with its credential (`None`: no `credential.secretRef`).
pub type Resolved = (ClusterStore, Option<String>);

/// The snapshot the gateway serves: `file`'s stores, then the cluster's it does not name; the
/// file's routes, then `routes` (every cluster `Index`: namespace → store) on top. Store
/// timeouts of cluster stores are the default store's.
pub fn snapshot(
    file: &StoreSnapshot,
    cluster: &[Resolved],
    routes: Option<&HashMap<String, String>>,
) -> StoreSnapshot {
    let mut stores = file.stores.clone();
    let (connect, request) = file
        .stores
        .first()
        .map_or((Duration::from_secs(2), Duration::from_secs(30)), |d| {
            (d.connect, d.request)
        });
    for (s, key) in cluster {
        if stores.iter().any(|f| &*f.name == s.name.as_str()) {
            continue;
        }
        stores.push(StoreEndpoint {
            name: Arc::from(s.name.as_str()),
            url: s.url.clone(),
            key: key.clone(),
            connect,
            request,
        });
    }
    let default = file.stores.first().map(|d| d.name.to_string());
    let mut all_routes = file.routes.clone();
    for (ns, store) in routes.into_iter().flatten() {
        if Some(store) == default.as_ref() {
            all_routes.remove(ns);
        } else {
            all_routes.insert(ns.clone(), store.clone());
        }
    }
    StoreSnapshot {
        stores,
        routes: all_routes,
    }
}

/// The cluster's side of the store set: the latest `VectorStore` objects, the stores resolved
/// from them, the latest `Index` routes; [`ClusterStores::publish`] merges them with the file.
pub struct ClusterStores {
    live: Arc<LiveStores>,
    client: Arc<ApiClient>,
    namespace: String,
    metrics: Arc<WatchMetrics>,
    objects: Mutex<BTreeMap<String, Value>>,
    resolved: Mutex<Vec<Resolved>>,
    /// `None` while the Index watch is off or has not listed yet.
    routes: Mutex<Option<HashMap<String, String>>>,
    changed: Notify,
}

impl ClusterStores {
    pub fn new(
        live: Arc<LiveStores>,
        client: Arc<ApiClient>,
        namespace: String,
        metrics: Arc<WatchMetrics>,
    ) -> ClusterStores {
        ClusterStores {
            live,
            client,
            namespace,
            metrics,
            objects: Mutex::default(),
            resolved: Mutex::default(),
            routes: Mutex::default(),
            changed: Notify::new(),
        }
    }

    /// The `VectorStore` watch's sink: keeps the set and wakes the resolver.
    pub fn set_objects(&self, objects: &BTreeMap<String, Value>) {
        *lock(&self.objects) = objects.clone();
        self.changed.notify_one();
    }

    /// The `Index` watch's routes (namespace → store).
    pub fn set_routes(&self, routes: HashMap<String, String>) {
        *lock(&self.routes) = Some(routes);
        self.publish();
    }

    /// Merges the file with the cluster's stores and routes and publishes the result.
    fn publish(&self) {
        let snap = {
            let resolved = lock(&self.resolved);
            let routes = lock(&self.routes);
            snapshot(&self.live.file(), &resolved, routes.as_ref())
        };
        if self.live.publish(snap) {
            tracing::info!("the store set changed; shards switch on their next request");
        }
    }

    /// Resolves the stores (reads their Secrets) after every change and every `refresh`.
    pub async fn run(self: Arc<Self>, refresh: Duration) {
        loop {
            let objects = lock(&self.objects).clone();
            let mut resolved = Vec::with_capacity(objects.len());
            for o in objects.values() {
                let store = match convert::vector_store(o) {
                    Ok(s) => s,
                    Err(e) => {
                        self.metrics.error("vectorstores", "decode");
                        tracing::warn!(store = super::watch::name_of(o), error = %e,
                            "VectorStore not applied");
                        continue;
                    }
                };
                match self.credential(&store).await {
                    Ok(key) => resolved.push((store, key)),
                    Err(e) => {
                        self.metrics.error("vectorstores", "secret");
                        tracing::warn!(store = %store.name, error = %e,
                            "VectorStore credential not readable; the store is not applied");
                    }
                }
            }
            *lock(&self.resolved) = resolved;
            self.publish();
            let _ = tokio::time::timeout(refresh, self.changed.notified()).await;
        }
    }

    /// The store's credential from its Secret.
    async fn credential(&self, store: &ClusterStore) -> Result<Option<String>, String> {
        let Some((name, key)) = &store.secret else {
            return Ok(None);
        };
        let path = format!(
            "/api/v1/namespaces/{}/secrets/{}",
            crate::core::params::encode_query_component(&self.namespace),
            crate::core::params::encode_query_component(name)
        );
        let secret = self
            .client
            .object(&path)
            .await
            .map_err(|e| format!("Secret {name:?}: {e}"))?;
        convert::secret_value(&secret, key)
            .map(Some)
            .map_err(|e| format!("Secret {name:?}: {e}"))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(name: &str, url: &str, key: Option<&str>) -> StoreEndpoint {
        StoreEndpoint {
            name: Arc::from(name),
            url: url.into(),
            key: key.map(String::from),
            connect: Duration::from_millis(100),
            request: Duration::from_millis(200),
        }
    }

    fn cluster(name: &str, url: &str) -> ClusterStore {
        ClusterStore {
            name: name.into(),
            url: url.into(),
            region: None,
            secret: Some(("layer".into(), name.into())),
            default: false,
        }
    }

    #[test]
    fn cluster_stores_join_the_files_and_index_routes_overlay_its_routes() {
        let file = StoreSnapshot {
            stores: vec![
                endpoint("default", "http://a", Some("ka")),
                endpoint("b", "http://b", Some("kb")),
            ],
            routes: HashMap::from([
                ("orders".to_string(), "b".to_string()),
                ("logs".to_string(), "b".to_string()),
            ]),
        };
        // Nothing from the cluster: the file exactly.
        assert_eq!(snapshot(&file, &[], None), file);
        let resolved = vec![
            (cluster("c", "http://c"), Some("kc".to_string())),
            // A file store's name: the file's connection stays.
            (cluster("b", "http://elsewhere"), Some("other".to_string())),
        ];
        let routes = HashMap::from([
            ("products".to_string(), "c".to_string()),
            // An Index without storeRef (the default) takes a file route away.
            ("orders".to_string(), "default".to_string()),
            ("gone".to_string(), "deleted".to_string()),
        ]);
        let s = snapshot(&file, &resolved, Some(&routes));
        let names: Vec<&str> = s.stores.iter().map(|e| &*e.name).collect();
        assert_eq!(names, ["default", "b", "c"]);
        assert_eq!(s.stores[1].url, "http://b");
        let c = &s.stores[2];
        assert_eq!((c.url.as_str(), c.key.as_deref()), ("http://c", Some("kc")));
        // Cluster stores take the default store's timeouts.
        assert_eq!(c.request, Duration::from_millis(200));
        assert_eq!(s.routes["products"], "c");
        assert_eq!(s.routes["logs"], "b");
        assert_eq!(s.routes["gone"], "deleted");
        assert!(!s.routes.contains_key("orders"));
    }
}
