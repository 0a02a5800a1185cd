//! Minted API keys: the six key operations of the `hevlayer` client (`/v2/keys…`, contract §1.9)
//! and the loop that keeps the request path's key map current.
//!
//! Where to start: [`Keys::routes`]; [`entitlements`] checks what a key opens and turns it into
//! a principal; [`token`] makes tokens (256 bits from the OS CSPRNG, `hvl_…`); [`store`] is the
//! key store seam (PostgreSQL here); [`cluster`] its Kubernetes backend (`ApiKey` resources read
//! through the watch of `sources::kubernetes`, over PostgreSQL when configured).
//!
//! Managing keys needs `admin` on grants limited to no namespaces (an admin limited to `shop-*`
//! could otherwise mint itself an unlimited key).
//!
//! The request path never reads the store: [`Keys`]'s loop polls the store's change counter
//! every [`RELOAD_EVERY`] and, when it moved, loads every live key into the lock-free map
//! `core::auth` checks bearers against (so a revocation stops a key on every shard of every
//! replica within about a quarter second; this replica's own mint, revoke and delete republish
//! before they answer). A store outage keeps the last map: keys already known keep working.
//! Uses are reported at most once per five minutes per key (`lastSeenAt`), batched off the
//! request path. Tokens are never stored, logged, put in metrics labels or error bodies; the
//! mint answer is the only place one appears.

pub mod cluster;
pub mod entitlements;
pub mod store;
pub mod token;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Method, StatusCode};
use layer_queue::keys::{NewKey, StoredKey};
use serde_json::{Map, Value, json};

use crate::core::auth::{MintedMap, lookup_hash};
use crate::core::config::{Scope, parse_duration_ms};
use crate::core::error::GatewayError;
use crate::core::fields::{object, opt_string, string};
use crate::core::http::{Resp, json_response, now_ms};
use crate::core::router::{Req, Route, handler};
use crate::core::runtime::Background;
use crate::core::{Control, Core, ShardCtx};
use crate::sources::kubernetes::ClusterKeys;
use crate::sources::queue::QueueSource;
use store::{KeyStore, PgKeyStore};

/// How often the store's change counter is read.
pub const RELOAD_EVERY: Duration = Duration::from_millis(250);
/// The default lifetime of a minted key.
pub const DEFAULT_EXPIRES_AFTER: &str = "365d";

pub use crate::core::fields::invalid_field as bad;

/// The keys feature: the store and the last loaded keys (for `authenticate`).
pub struct Keys {
    core: Arc<Core>,
    store: Option<Arc<dyn KeyStore>>,
    /// The live keys of the last load, by id.
    known: ArcSwap<HashMap<String, StoredKey>>,
    /// The store's change counter at the last load.
    epoch: std::sync::atomic::AtomicI64,
    /// Loads run one at a time: a background load that read the keys before a mint must not
    /// publish its older map after the mint's own reload did.
    loading: tokio::sync::Mutex<()>,
}

impl Keys {
    /// The feature on the PostgreSQL store (when a database is configured) and, in a cluster,
    /// the `ApiKey` resources the watch reads (`cluster`).
    pub fn new(
        core: Arc<Core>,
        queue: Arc<QueueSource>,
        cluster: Option<Arc<ClusterKeys>>,
    ) -> Arc<Keys> {
        let mut store: Option<Arc<dyn KeyStore>> = queue
            .configured()
            .then(|| Arc::new(PgKeyStore { queue }) as Arc<dyn KeyStore>);
        if let Some(cluster) = cluster {
            store = Some(Arc::new(cluster::ClusterKeyStore::new(cluster, store)));
        }
        Arc::new(Keys {
            core,
            store,
            known: ArcSwap::from_pointee(HashMap::new()),
            epoch: std::sync::atomic::AtomicI64::new(-1),
            loading: tokio::sync::Mutex::new(()),
        })
    }

    /// The key routes (contract §1.9).
    pub fn routes(self: &Arc<Self>) -> Vec<Route> {
        use Method as M;
        let admin = |method, pattern, name, h| Route::new(method, pattern, name, Scope::Admin, h);
        vec![
            admin(
                M::POST,
                "/v2/keys",
                "mint_key",
                handler(self.clone(), Self::mint),
            ),
            admin(
                M::GET,
                "/v2/keys",
                "list_keys",
                handler(self.clone(), Self::list),
            ),
            admin(
                M::GET,
                "/v2/keys/{id}",
                "get_key",
                handler(self.clone(), Self::get),
            ),
            admin(
                M::POST,
                "/v2/keys/{id}/revoke",
                "revoke_key",
                handler(self.clone(), Self::revoke),
            ),
            admin(
                M::DELETE,
                "/v2/keys/{id}",
                "delete_key",
                handler(self.clone(), Self::delete),
            ),
            // The token in the body is the credential.
            Route::public(
                M::POST,
                "/v2/keys/authenticate",
                "authenticate_key",
                handler(self.clone(), Self::authenticate),
            ),
        ]
    }

    fn store(&self) -> Result<&Arc<dyn KeyStore>, GatewayError> {
        self.store.as_ref().ok_or_else(|| GatewayError::Rejected {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "database_not_configured",
            message: "minted keys need PostgreSQL: set LAYER_DATABASE_URL (gateway.queue.url); \
                      scripts/run starts a private cluster"
                .into(),
        })
    }

    /// Key management needs an admin whose grants are not limited to some namespaces: a key
    /// limited to `shop-*` could otherwise mint an unlimited one.
    fn manage(req: &Req) -> Result<(), GatewayError> {
        if req.principal.is_control_limited() || req.principal.is_namespace_limited() {
            return Err(GatewayError::InsufficientScope {
                required: Scope::Admin,
            });
        }
        Ok(())
    }

    fn body(&self, req: &Req) -> Result<Value, GatewayError> {
        req.json_body(&self.core.limits)
    }

    async fn mint(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        Self::manage(&req)?;
        let body = self.body(&req)?;
        let o = object(&body)?;
        let name = string(o, "name").map_err(|e| bad("name", e))?;
        if name.is_empty() || name.len() > 253 || name.chars().any(char::is_control) {
            return Err(bad("name", "must be 1 to 253 printable characters"));
        }
        let owner = opt_string(o, "owner").map_err(|e| bad("owner", e))?;
        let description = opt_string(o, "description").map_err(|e| bad("description", e))?;
        let ents = entitlements::parse(o.get("entitlements"))?;
        let expires_after = opt_string(o, "expiresAfter")
            .map_err(|e| bad("expiresAfter", e))?
            .unwrap_or_else(|| DEFAULT_EXPIRES_AFTER.into());
        let expires_at_ms = match parse_duration_ms(&expires_after) {
            Ok(None) => None,
            Ok(Some(0)) => return Err(bad("expiresAfter", "must be longer than 0")),
            Ok(Some(ms)) => Some((now_ms() + ms) as i64),
            Err(e) => return Err(bad("expiresAfter", e)),
        };
        let token = token::token()?;
        let mut stored_ents = Map::new();
        for (k, _, e) in &ents {
            stored_ents.insert(k.clone(), entitlement_json(e));
        }
        let new = NewKey {
            key_id: token::key_id()?,
            name,
            owner,
            description,
            entitlements: Value::Object(stored_ents),
            expires_after,
            expires_at_ms,
            lookup_hash: lookup_hash(&token),
        };
        let stored = self.store()?.insert(new).await?;
        self.reload().await;
        let mut answer = self.key_json(&stored);
        answer["token"] = json!(token);
        Ok(json_response(StatusCode::CREATED, &answer))
    }

    async fn list(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        Self::manage(&req)?;
        let include = req
            .query_params()
            .get("includeRevoked")
            .is_some_and(|v| v == "true" || v == "1");
        let keys = self.store()?.list(include).await?;
        let keys: Vec<Value> = keys.iter().map(|k| self.key_json(k)).collect();
        Ok(json_response(StatusCode::OK, &json!({ "keys": keys })))
    }

    async fn get(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        Self::manage(&req)?;
        let key = self.store()?.get(req.decoded("id").into_owned()).await?;
        Ok(json_response(StatusCode::OK, &self.key_json(&key)))
    }

    async fn revoke(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        Self::manage(&req)?;
        let key = self.store()?.revoke(req.decoded("id").into_owned()).await?;
        self.reload().await;
        Ok(json_response(StatusCode::OK, &self.key_json(&key)))
    }

    async fn delete(self: Arc<Self>, _: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        Self::manage(&req)?;
        let id = req.decoded("id").into_owned();
        self.store()?.delete(id.clone()).await?;
        self.reload().await;
        Ok(json_response(
            StatusCode::OK,
            &json!({"status": "deleted", "keyId": id}),
        ))
    }

    async fn authenticate(
        self: Arc<Self>,
        _: Arc<ShardCtx>,
        req: Req,
    ) -> Result<Resp, GatewayError> {
        let body = self.body(&req)?;
        let token = string(object(&body)?, "token").map_err(|e| bad("token", e))?;
        let principal = self
            .core
            .auth
            .principal_of(token.trim())
            .ok_or(GatewayError::InvalidToken)?;
        let key = principal
            .key_id
            .as_ref()
            .and_then(|id| self.known.load().get(id).cloned())
            .ok_or(GatewayError::InvalidToken)?;
        let mut answer = json!({
            "keyId": key.key_id, "name": key.name, "entitlements": key.entitlements,
        });
        if let Some(o) = &key.owner {
            answer["owner"] = json!(o);
        }
        if let Some(e) = key.expires_at_ms {
            answer["expiresAt"] = json!(rfc3339(e));
        }
        Ok(json_response(StatusCode::OK, &answer))
    }

    /// The `ApiKey` model of a stored key (never a token).
    fn key_json(&self, k: &StoredKey) -> Value {
        let now = now_ms() as i64;
        let phase = if k.revoked_at_ms.is_some() {
            "Revoked"
        } else if k.expires_at_ms.is_some_and(|e| e <= now) {
            "Expired"
        } else {
            "Active"
        };
        let mut v = json!({
            "keyId": k.key_id, "name": k.name, "entitlements": k.entitlements, "phase": phase,
            "createdAt": rfc3339(k.created_at_ms), "expiresAfter": k.expires_after,
            "lookupHash": k.lookup_hash,
        });
        for (field, value) in [
            ("owner", k.owner.clone().map(Value::from)),
            ("description", k.description.clone().map(Value::from)),
            ("expiresAt", k.expires_at_ms.map(|t| json!(rfc3339(t)))),
            ("revokedAt", k.revoked_at_ms.map(|t| json!(rfc3339(t)))),
            ("lastSeenAt", k.last_seen_at_ms.map(|t| json!(rfc3339(t)))),
        ] {
            if let Some(value) = value {
                v[field] = value;
            }
        }
        let ents = entitlements::parse(Some(&k.entitlements)).unwrap_or_default();
        let stores: Vec<&str> = self.core.config.stores().map(|s| s.name.as_str()).collect();
        let warehouses: Vec<&str> = self
            .core
            .config
            .warehouses
            .iter()
            .map(|w| w.name.as_str())
            .collect();
        let missing = entitlements::missing(&ents, &stores, &warehouses);
        v["conditions"] = if missing.is_empty() {
            json!([])
        } else {
            json!([{
                "type": "EntitlementTargetMissing", "status": "True", "reason": "TargetNotFound",
                "message": format!("no such target: {}", missing.join(", ")),
            }])
        };
        v
    }

    /// Loads every live key into the request path's map (when the store's counter moved, or
    /// always with `force`). Errors keep the last map.
    async fn load(&self, force: bool) -> Result<(), GatewayError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let _one = self.loading.lock().await;
        use std::sync::atomic::Ordering;
        if !force && store.epoch().await? == self.epoch.load(Ordering::Acquire) {
            return Ok(());
        }
        let (epoch, keys) = store.live().await?;
        let routing = self.core.auth.routing().clone();
        let mut map = MintedMap::with_capacity_and_hasher(keys.len(), Default::default());
        let mut known = HashMap::with_capacity(keys.len());
        let old = self.core.auth.minted_snapshot();
        for k in keys {
            let Some(hash) = parse_hash(&k.lookup_hash) else {
                continue;
            };
            let ents = entitlements::parse(Some(&k.entitlements)).unwrap_or_default();
            let mut p = entitlements::principal(&k.name, &k.key_id, &ents, routing.clone());
            p.expires_at_ms = k.expires_at_ms.map(|e| e.max(0) as u64);
            // Keep the use-report clock of keys already known, so a reload does not report
            // every key again.
            let mut half = [0u8; 16];
            half.copy_from_slice(&hash[..16]);
            if let Some((_, prev)) = old.get(&half) {
                p.last_seen_ms =
                    std::sync::atomic::AtomicU64::new(prev.last_seen_ms.load(Ordering::Relaxed));
            }
            map.insert(half, (hash, Arc::new(p)));
            known.insert(k.key_id.clone(), k);
        }
        self.core.auth.publish_minted(map);
        self.known.store(Arc::new(known));
        self.epoch.store(epoch, Ordering::Release);
        Ok(())
    }

    /// Reloads after this replica's own change, before answering.
    async fn reload(&self) {
        if let Err(e) = self.load(true).await {
            tracing::warn!(error = %e, "reloading the key map failed; the next poll retries");
        }
    }
}

/// `sha256:<hex>` back to the hash.
fn parse_hash(s: &str) -> Option<[u8; 32]> {
    let hex = s.strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn entitlement_json(e: &entitlements::Entitlement) -> Value {
    let mut o = Map::new();
    if !e.scopes.is_empty() {
        let scopes: Vec<&str> = e.scopes.iter().map(|s| s.as_str()).collect();
        o.insert("scopes".into(), json!(scopes));
    }
    if !e.namespaces.is_empty() {
        o.insert("namespaces".into(), json!(e.namespaces));
    }
    if !e.claims.is_empty() {
        o.insert("claims".into(), json!(e.claims));
    }
    Value::Object(o)
}

/// Epoch milliseconds as RFC 3339 UTC.
fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// The reload loop and the use reports, on the control runtime.
impl Background for Keys {
    fn start(self: Arc<Self>, control: &Control) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(4096);
        self.core.auth.report_seen_to(tx);
        let keys = self.clone();
        control.handle.spawn(async move {
            let mut warned = false;
            loop {
                match keys.load(false).await {
                    Ok(()) => warned = false,
                    Err(e) if !warned => {
                        tracing::warn!(error = %e, "key store unreachable; keeping the keys known");
                        warned = true;
                    }
                    Err(_) => {}
                }
                tokio::time::sleep(RELOAD_EVERY).await;
            }
        });
        control.handle.spawn(async move {
            let mut batch = Vec::new();
            while let Some(id) = rx.recv().await {
                batch.push(id);
                tokio::time::sleep(Duration::from_secs(1)).await;
                while let Ok(id) = rx.try_recv() {
                    batch.push(id);
                }
                batch.sort_unstable();
                batch.dedup();
                if let Err(e) = store.touch(std::mem::take(&mut batch)).await {
                    tracing::debug!(error = %e, "recording key uses failed");
                }
            }
        });
    }
}
