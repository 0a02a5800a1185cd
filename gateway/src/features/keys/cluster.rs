//! The key store's Kubernetes backend: `ApiKey` resources, read through the watch
//! ([`ClusterKeys`]), layered over the PostgreSQL store when one is configured.
//!
//! The gateway only reads the cluster (get, list, watch), so a key that is an `ApiKey` resource
//! is minted by the operator and revoked or deleted with kubectl; the REST routes answer 409
//! `key_managed_by_kubernetes` for it. Keys minted over REST go to PostgreSQL as before (503
//! without a database). Uses of cluster keys are not written back (`lastSeenAt` is the
//! operator's). A PostgreSQL outage keeps the last keys read from it, so neither source's
//! outage stops the other's keys.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use http::StatusCode;
use layer_queue::keys::{NewKey, StoredKey};
use parking_lot::Mutex;

use super::store::KeyStore;
use crate::core::error::GatewayError;
use crate::core::http::now_ms;
use crate::sources::kubernetes::ClusterKeys;

/// `ApiKey` resources first, then the inner store's keys.
pub struct ClusterKeyStore {
    pub cluster: Arc<ClusterKeys>,
    pub inner: Option<Arc<dyn KeyStore>>,
    /// The inner store's last answer to `live` (kept through its outages).
    last_inner: Arc<Mutex<(i64, Vec<StoredKey>)>>,
}

impl ClusterKeyStore {
    pub fn new(cluster: Arc<ClusterKeys>, inner: Option<Arc<dyn KeyStore>>) -> ClusterKeyStore {
        ClusterKeyStore {
            cluster,
            inner,
            last_inner: Arc::new(Mutex::new((0, Vec::new()))),
        }
    }

    fn cluster_key(&self, key_id: &str) -> Option<StoredKey> {
        self.cluster
            .all()
            .iter()
            .find(|k| k.key_id == key_id)
            .cloned()
    }

    fn read_only(&self, key_id: &str) -> Option<GatewayError> {
        let k = self.cluster_key(key_id)?;
        Some(GatewayError::Rejected {
            status: StatusCode::CONFLICT,
            code: "key_managed_by_kubernetes",
            message: format!(
                "key {key_id} is the ApiKey resource {:?}: revoke or delete it with kubectl \
                 (the gateway only reads the cluster)",
                k.name
            ),
        })
    }

    fn no_database() -> GatewayError {
        GatewayError::Rejected {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "database_not_configured",
            message: "in this cluster keys are ApiKey resources (kubectl apply; the operator \
                      mints them); minting over REST needs PostgreSQL (LAYER_DATABASE_URL)"
                .into(),
        }
    }
}

fn shown(k: &StoredKey, include_revoked: bool) -> bool {
    include_revoked
        || (k.revoked_at_ms.is_none() && k.expires_at_ms.is_none_or(|e| e > now_ms() as i64))
}

impl KeyStore for ClusterKeyStore {
    fn insert(&self, new: NewKey) -> BoxFuture<'static, Result<StoredKey, GatewayError>> {
        let taken = self.cluster.all().iter().any(|k| k.name == new.name);
        match (&self.inner, taken) {
            (_, true) => Box::pin(async move {
                Err(GatewayError::Rejected {
                    status: StatusCode::CONFLICT,
                    code: "conflict",
                    message: format!("an ApiKey named {:?} exists", new.name),
                })
            }),
            (Some(inner), false) => inner.insert(new),
            (None, false) => Box::pin(async { Err(Self::no_database()) }),
        }
    }

    fn list(
        &self,
        include_revoked: bool,
    ) -> BoxFuture<'static, Result<Vec<StoredKey>, GatewayError>> {
        let mut keys: Vec<StoredKey> = self
            .cluster
            .all()
            .iter()
            .filter(|k| shown(k, include_revoked))
            .cloned()
            .collect();
        let inner = self.inner.as_ref().map(|s| s.list(include_revoked));
        Box::pin(async move {
            if let Some(f) = inner {
                keys.extend(f.await?);
            }
            Ok(keys)
        })
    }

    fn get(&self, key_id: String) -> BoxFuture<'static, Result<StoredKey, GatewayError>> {
        if let Some(k) = self.cluster_key(&key_id) {
            return Box::pin(async move { Ok(k) });
        }
        match &self.inner {
            Some(inner) => inner.get(key_id),
            None => Box::pin(async move { Err(GatewayError::Missing(format!("no key {key_id}"))) }),
        }
    }

    fn revoke(&self, key_id: String) -> BoxFuture<'static, Result<StoredKey, GatewayError>> {
        if let Some(e) = self.read_only(&key_id) {
            return Box::pin(async move { Err(e) });
        }
        match &self.inner {
            Some(inner) => inner.revoke(key_id),
            None => Box::pin(async move { Err(GatewayError::Missing(format!("no key {key_id}"))) }),
        }
    }

    fn delete(&self, key_id: String) -> BoxFuture<'static, Result<(), GatewayError>> {
        if let Some(e) = self.read_only(&key_id) {
            return Box::pin(async move { Err(e) });
        }
        match &self.inner {
            Some(inner) => inner.delete(key_id),
            None => Box::pin(async move { Err(GatewayError::Missing(format!("no key {key_id}"))) }),
        }
    }

    /// The cluster's counter and the inner store's, combined (only equality is read).
    fn epoch(&self) -> BoxFuture<'static, Result<i64, GatewayError>> {
        let cluster = self.cluster.epoch();
        let inner = self.inner.as_ref().map(|s| s.epoch());
        let last = self.last_inner.clone();
        Box::pin(async move {
            let inner = match inner {
                None => 0,
                // An outage reads as "unchanged", so the cluster's changes still load.
                Some(f) => f.await.unwrap_or_else(|_| last.lock().0),
            };
            Ok(cluster.wrapping_shl(40) ^ inner)
        })
    }

    fn live(&self) -> BoxFuture<'static, Result<(i64, Vec<StoredKey>), GatewayError>> {
        let cluster_epoch = self.cluster.epoch();
        let mut keys: Vec<StoredKey> = self
            .cluster
            .all()
            .iter()
            .filter(|k| shown(k, false))
            .cloned()
            .collect();
        let inner = self.inner.as_ref().map(|s| s.live());
        let last = self.last_inner.clone();
        Box::pin(async move {
            let inner_epoch = match inner {
                None => 0,
                Some(f) => match f.await {
                    Ok((epoch, inner_keys)) => {
                        *last.lock() = (epoch, inner_keys);
                        epoch
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "key database unreachable; keeping its keys");
                        last.lock().0
                    }
                },
            };
            keys.extend(last.lock().1.iter().cloned());
            Ok((cluster_epoch.wrapping_shl(40) ^ inner_epoch, keys))
        })
    }

    fn touch(&self, key_ids: Vec<String>) -> BoxFuture<'static, Result<(), GatewayError>> {
        let cluster = self.cluster.all();
        let ids: Vec<String> = key_ids
            .into_iter()
            .filter(|id| !cluster.iter().any(|k| &k.key_id == id))
            .collect();
        match &self.inner {
            Some(inner) if !ids.is_empty() => inner.touch(ids),
            _ => Box::pin(async { Ok(()) }),
        }
    }
}
