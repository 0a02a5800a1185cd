//! The key store seam: one trait for where minted keys live, so the standalone install (keys in
//! PostgreSQL, [`PgKeyStore`]) and a cluster (keys as `ApiKey` resources with the token hash in
//! their status, the operator's backend) serve the same routes and feed the same request-path
//! map. A store keeps hashes only, never tokens.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use layer_queue::keys::{NewKey, StoredKey};

use crate::core::error::GatewayError;
use crate::sources::queue::QueueSource;

/// Where minted keys live. Every call may fail (the store is remote); the request path never
/// calls it, only the key routes and the loop that reloads the map.
pub trait KeyStore: Send + Sync + 'static {
    /// Stores a new key (409 when its name is taken).
    fn insert(&self, new: NewKey) -> BoxFuture<'static, Result<StoredKey, GatewayError>>;
    /// Every key; revoked and expired ones too with `include_revoked`.
    fn list(
        &self,
        include_revoked: bool,
    ) -> BoxFuture<'static, Result<Vec<StoredKey>, GatewayError>>;
    fn get(&self, key_id: String) -> BoxFuture<'static, Result<StoredKey, GatewayError>>;
    /// Idempotent; the record stays.
    fn revoke(&self, key_id: String) -> BoxFuture<'static, Result<StoredKey, GatewayError>>;
    fn delete(&self, key_id: String) -> BoxFuture<'static, Result<(), GatewayError>>;
    /// A counter that moves on every change (the map is reloaded when it does).
    fn epoch(&self) -> BoxFuture<'static, Result<i64, GatewayError>>;
    /// The counter and every key not revoked, read together.
    fn live(&self) -> BoxFuture<'static, Result<(i64, Vec<StoredKey>), GatewayError>>;
    /// Records uses (`lastSeenAt`, at most once per five minutes per key).
    fn touch(&self, key_ids: Vec<String>) -> BoxFuture<'static, Result<(), GatewayError>>;
}

/// Keys in the pipelines' PostgreSQL database.
pub struct PgKeyStore {
    pub queue: Arc<QueueSource>,
}

macro_rules! run {
    ($self:ident, |$q:ident| $body:expr) => {{
        let source = $self.queue.clone();
        Box::pin(async move {
            source
                .run("API keys", move |$q| async move { $body })
                .await?
                .map_err(crate::sources::queue::queue_error)
        })
    }};
}

impl KeyStore for PgKeyStore {
    fn insert(&self, new: NewKey) -> BoxFuture<'static, Result<StoredKey, GatewayError>> {
        run!(self, |q| q.insert_key(&new).await)
    }
    fn list(
        &self,
        include_revoked: bool,
    ) -> BoxFuture<'static, Result<Vec<StoredKey>, GatewayError>> {
        run!(self, |q| q.list_keys(include_revoked).await)
    }
    fn get(&self, key_id: String) -> BoxFuture<'static, Result<StoredKey, GatewayError>> {
        run!(self, |q| q.get_key(&key_id).await)
    }
    fn revoke(&self, key_id: String) -> BoxFuture<'static, Result<StoredKey, GatewayError>> {
        run!(self, |q| q.revoke_key(&key_id).await)
    }
    fn delete(&self, key_id: String) -> BoxFuture<'static, Result<(), GatewayError>> {
        run!(self, |q| q.delete_key(&key_id).await)
    }
    fn epoch(&self) -> BoxFuture<'static, Result<i64, GatewayError>> {
        run!(self, |q| q.key_epoch().await)
    }
    fn live(&self) -> BoxFuture<'static, Result<(i64, Vec<StoredKey>), GatewayError>> {
        run!(self, |q| q.live_keys().await)
    }
    fn touch(&self, key_ids: Vec<String>) -> BoxFuture<'static, Result<(), GatewayError>> {
        run!(self, |q| q.touch_keys(&key_ids).await.map(|_| ()))
    }
}
