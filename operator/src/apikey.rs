//! `ApiKey` reconciler: mints the token through the gateway (`POST /v2/keys`), delivers it in a
//! Secret owned by the ApiKey (key `token`, named `apikey-<name>` unless `status.secretRef`
//! already names one), and mirrors the key's record into status (`keyId`, `lookupHash`,
//! `phase`, `createdAt`, `expiresAt`, `revokedAt`, `lastSeenAt`).
//!
//! Adoption: when the status names no key but the Secret already holds a token the gateway
//! accepts (`POST /v2/keys/authenticate`), that key is adopted instead of minting another.
//! Entitlements naming a `VectorStore` or `Warehouse` that does not exist in the namespace set
//! `EntitlementTargetMissing` True (the key is minted anyway: keys and targets may be applied
//! in either order). The finalizer [`APIKEY_FINALIZER`] hard-deletes the gateway's key when the
//! ApiKey is deleted; the Secret goes by its owner reference.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crds::k8s::apikey::{ApiKey, ApiKeyPhase, ApiKeyStatus};
use crds::k8s::common::{Condition, SecretRef};
use crds::k8s::store::VectorStore;
use crds::k8s::warehouse::Warehouse;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, ObjectMeta};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::conditions::{condition, merge};
use crate::context::Context;
use crate::gateway::GatewayError;
use crate::probe::secret_value;
use crate::{Error, MANAGED_BY, Result};

/// The finalizer an ApiKey carries while its gateway key exists.
pub const APIKEY_FINALIZER: &str = "hevlayer.com/apikey-cleanup";
/// How often a key's record is refreshed (phase, expiry, last use).
pub const RECHECK: Duration = Duration::from_secs(300);

/// Entitlement targets that do not exist: `vectorstore.<name>` without such a store,
/// `warehouse.<name>` without such a warehouse (`layer` always exists).
pub fn missing_targets(key: &ApiKey, stores: &[String], warehouses: &[String]) -> Vec<String> {
    key.spec
        .entitlements
        .keys()
        .filter(|t| {
            if let Some(n) = t.strip_prefix("vectorstore.") {
                !stores.iter().any(|s| s == n)
            } else if let Some(n) = t.strip_prefix("warehouse.") {
                !warehouses.iter().any(|w| w == n)
            } else {
                t.as_str() != "layer"
            }
        })
        .cloned()
        .collect()
}

/// The `POST /v2/keys` body of an ApiKey.
pub fn mint_body(key: &ApiKey) -> Value {
    let mut body = json!({
        "name": key.name_any(),
        "entitlements": key.spec.entitlements,
        "expiresAfter": key.spec.expires_after,
    });
    if let Some(o) = &key.spec.owner {
        body["owner"] = json!(o);
    }
    if let Some(d) = &key.spec.description {
        body["description"] = json!(d);
    }
    body
}

/// The status fields of a gateway key record (the `ApiKey` model, never a token).
pub fn status_from_record(record: &Value, secret: &str, conds: Vec<Condition>) -> ApiKeyStatus {
    let s = |f: &str| record.get(f).and_then(Value::as_str).map(str::to_string);
    ApiKeyStatus {
        observed_generation: None,
        key_id: s("keyId"),
        phase: record
            .get("phase")
            .and_then(|p| serde_json::from_value::<ApiKeyPhase>(p.clone()).ok()),
        lookup_hash: s("lookupHash"),
        created_at: s("createdAt"),
        expires_at: s("expiresAt"),
        revoked_at: s("revokedAt"),
        last_seen_at: s("lastSeenAt"),
        secret_ref: Some(SecretRef {
            name: secret.into(),
        }),
        conditions: conds,
    }
}

/// The Secret delivering a token (owned by the ApiKey).
pub fn token_secret(key: &ApiKey, name: &str, token: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: key.namespace(),
            labels: Some(BTreeMap::from([
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    MANAGED_BY.to_string(),
                ),
                ("hevlayer.com/apikey".to_string(), key.name_any()),
            ])),
            owner_references: key.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            "token".to_string(),
            ByteString(token.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

/// Reconciles one ApiKey (behind its finalizer).
pub async fn reconcile_apikey(key: Arc<ApiKey>, ctx: Arc<Context>) -> Result<Action> {
    let c = ctx.clone();
    ctx.timed(
        "ApiKey",
        Box::pin(async move {
            let api: Api<ApiKey> =
                Api::namespaced(c.client.clone(), &key.namespace().unwrap_or_default());
            finalizer(&api, APIKEY_FINALIZER, key, |event| async {
                match event {
                    Finalizer::Apply(k) => apply_key(k, c.clone()).await,
                    Finalizer::Cleanup(k) => {
                        if let Some(id) = k.status.as_ref().and_then(|s| s.key_id.as_deref()) {
                            c.gateway.delete_key(id).await?;
                        }
                        Ok(Action::await_change())
                    }
                }
            })
            .await
            .map_err(Error::from)
        }),
    )
    .await
}

async fn apply_key(key: Arc<ApiKey>, ctx: Arc<Context>) -> Result<Action> {
    let ns = key.namespace().unwrap_or_default();
    let old = key.status.clone().unwrap_or_default();
    let secret_name = old
        .secret_ref
        .as_ref()
        .map(|s| s.name.clone())
        .unwrap_or_else(|| format!("apikey-{}", key.name_any()));
    let stores: Vec<String> = Api::<VectorStore>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|s| s.name_any())
        .collect();
    let warehouses: Vec<String> = Api::<Warehouse>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|w| w.name_any())
        .collect();
    let missing = missing_targets(&key, &stores, &warehouses);
    let target_cond = if missing.is_empty() {
        condition("EntitlementTargetMissing", false, "TargetsFound", "")
    } else {
        condition(
            "EntitlementTargetMissing",
            true,
            "TargetNotFound",
            format!("no such target: {}", missing.join(", ")),
        )
    };
    let record = match &old.key_id {
        Some(id) => ctx.gateway.get_key(id).await?.ok_or_else(|| {
            (
                "KeyNotFound",
                format!("the gateway has no key {id}: delete and reapply to mint another"),
            )
        }),
        None => adopt_or_mint(&ctx, &key, &ns, &secret_name).await?,
    };
    let mut status = match record {
        Ok(r) => {
            let ready = r.get("phase").and_then(Value::as_str) == Some("Active");
            let phase = r
                .get("phase")
                .and_then(Value::as_str)
                .unwrap_or("Unknown")
                .to_string();
            status_from_record(
                &r,
                &secret_name,
                vec![condition("Ready", ready, &phase, ""), target_cond],
            )
        }
        Err((reason, msg)) => ApiKeyStatus {
            phase: Some(old.phase.unwrap_or(ApiKeyPhase::Pending)),
            conditions: vec![condition("Ready", false, reason, msg), target_cond],
            ..old.clone()
        },
    };
    let generation = key.meta().generation;
    status.observed_generation = generation;
    status.conditions = merge(&old.conditions, status.conditions, generation);
    if status != old {
        if status.phase != old.phase {
            ctx.event(
                &*key,
                status.phase != Some(ApiKeyPhase::Active),
                &format!("{:?}", status.phase.unwrap_or_default()),
                format!("key {}", status.key_id.clone().unwrap_or_default()),
            )
            .await;
        }
        ctx.patch_status(&*key, &status).await?;
    }
    Ok(Action::requeue(RECHECK))
}

/// The key record: the one whose token the Secret already holds (adopted), else a new mint
/// (the token written to the Secret before anything else). The inner `Err` is a rejection (a
/// condition, not a retry).
async fn adopt_or_mint(
    ctx: &Context,
    key: &ApiKey,
    ns: &str,
    secret_name: &str,
) -> Result<Result<Value, (&'static str, String)>> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    if let Some(token) = secrets
        .get_opt(secret_name)
        .await?
        .and_then(|s| secret_value(&s, "token"))
        && let Some(auth) = ctx.gateway.authenticate(token.trim()).await?
        && let Some(id) = auth.get("keyId").and_then(Value::as_str)
        && let Some(record) = ctx.gateway.get_key(id).await?
    {
        return Ok(Ok(record));
    }
    let minted = match ctx.gateway.mint_key(&mint_body(key)).await {
        Ok(m) => m,
        Err(e) if e.status().is_some_and(|s| s.is_client_error()) => {
            return Ok(Err(("MintRejected", e.to_string())));
        }
        Err(e) => return Err(e.into()),
    };
    let token = minted
        .get("token")
        .and_then(Value::as_str)
        .ok_or_else(|| GatewayError::Transport("the mint answer carries no token".into()))?;
    ctx.apply(&token_secret(key, secret_name, token)).await?;
    Ok(Ok(minted))
}
