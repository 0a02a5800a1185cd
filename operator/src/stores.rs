//! `VectorStore` and `Index` reconcilers.
//!
//! A VectorStore is probed: its Secret reference is resolved and `GET /v1/namespaces` is sent to
//! its endpoint with the credential; conditions `Ready`, `CredentialInvalid` and `Unreachable`
//! and `status.reachable` say what happened (kinds other than `turbopuffer` are refused with
//! `KindNotImplemented`). An Index is validated against its store (`backend.storeRef`, else the
//! namespace's default store) and against the other Indexes (two may not resolve to the same
//! upstream namespace of one store); its status names the store and upstream namespace it
//! resolved to, which the gateway reads.

use std::sync::Arc;
use std::time::Duration;

use crds::k8s::common::Condition;
use crds::k8s::index::{Index, IndexStatus};
use crds::k8s::store::{StoreKind, VectorStore, VectorStoreStatus};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use crate::Result;
use crate::conditions::{condition, is_true, merge};
use crate::context::Context;
use crate::gateway::Probe;
use crate::probe::secret_value;

/// How often a store is re-probed and an Index re-validated.
pub const RECHECK: Duration = Duration::from_secs(300);

/// The namespace's default store: the one marked `default`, else the only one.
pub fn default_store(stores: &[VectorStore]) -> Option<&VectorStore> {
    let marked: Vec<&VectorStore> = stores.iter().filter(|s| s.spec.default).collect();
    match (marked.as_slice(), stores) {
        ([one], _) => Some(one),
        ([], [only]) => Some(only),
        _ => None,
    }
}

/// The store conditions of a probe outcome: `(reachable, conditions)`.
pub fn probe_conditions(probe: &Probe) -> (Option<bool>, Vec<Condition>) {
    match probe {
        Probe::Reachable => (
            Some(true),
            vec![
                condition("Ready", true, "Probed", "GET /v1/namespaces answered"),
                condition("CredentialInvalid", false, "Accepted", ""),
                condition("Unreachable", false, "Reachable", ""),
            ],
        ),
        Probe::CredentialInvalid(m) => (
            Some(true),
            vec![
                condition("Ready", false, "CredentialInvalid", m.clone()),
                condition("CredentialInvalid", true, "Refused", m.clone()),
                condition("Unreachable", false, "Reachable", ""),
            ],
        ),
        Probe::Unreachable(m) => (
            Some(false),
            vec![
                condition("Ready", false, "Unreachable", m.clone()),
                condition("Unreachable", true, "ProbeFailed", m.clone()),
            ],
        ),
    }
}

/// Reconciles one VectorStore: resolve the credential, probe, write status.
pub async fn reconcile_store(vs: Arc<VectorStore>, ctx: Arc<Context>) -> Result<Action> {
    ctx.timed("VectorStore", Box::pin(apply_store(vs, ctx.clone())))
        .await
}

async fn apply_store(vs: Arc<VectorStore>, ctx: Arc<Context>) -> Result<Action> {
    let ns = vs.namespace().unwrap_or_default();
    let (reachable, conds) = match (&vs.spec.kind, &vs.spec.endpoint, &vs.spec.credential) {
        (StoreKind::Pinecone | StoreKind::Search, _, _) => (
            None,
            vec![condition(
                "Ready",
                false,
                "KindNotImplemented",
                format!(
                    "store kind {:?} is reserved and not implemented",
                    vs.spec.kind
                ),
            )],
        ),
        (_, None, _) => (
            None,
            vec![condition(
                "Ready",
                false,
                "EndpointMissing",
                "spec.endpoint.url is not set",
            )],
        ),
        (_, _, None) => (
            None,
            vec![
                condition(
                    "Ready",
                    false,
                    "CredentialInvalid",
                    "spec.credential is not set",
                ),
                condition(
                    "CredentialInvalid",
                    true,
                    "CredentialMissing",
                    "spec.credential is not set",
                ),
            ],
        ),
        (_, Some(ep), Some(cred)) => {
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
            let r = &cred.secret_ref;
            match secrets.get_opt(&r.name).await? {
                Some(s) => match secret_value(&s, &r.key) {
                    Some(token) => {
                        probe_conditions(&ctx.gateway.probe_store(&ep.url, &token).await)
                    }
                    None => secret_missing(format!("Secret {:?} has no key {:?}", r.name, r.key)),
                },
                None => secret_missing(format!("Secret {:?} does not exist", r.name)),
            }
        }
    };
    let old = vs.status.clone().unwrap_or_default();
    let generation = vs.meta().generation;
    let status = VectorStoreStatus {
        observed_generation: generation,
        reachable,
        conditions: merge(&old.conditions, conds, generation),
    };
    if status != old {
        if is_true(&status.conditions, "Ready") != is_true(&old.conditions, "Ready") {
            let ready = is_true(&status.conditions, "Ready");
            let msg = status
                .conditions
                .first()
                .map(|c| c.message.clone())
                .unwrap_or_default();
            ctx.event(&*vs, !ready, if ready { "Ready" } else { "NotReady" }, msg)
                .await;
        }
        ctx.patch_status(&*vs, &status).await?;
    }
    Ok(Action::requeue(RECHECK))
}

fn secret_missing(m: String) -> (Option<bool>, Vec<Condition>) {
    (
        None,
        vec![
            condition("Ready", false, "CredentialInvalid", m.clone()),
            condition("CredentialInvalid", true, "SecretMissing", m),
        ],
    )
}

/// What an Index resolves to: `(store, upstream namespace)`, or a rejection reason and message.
pub fn resolve_index(
    idx: &Index,
    stores: &[VectorStore],
    others: &[Index],
) -> Result<(String, String), (&'static str, String)> {
    let name = idx.name_any();
    let backend = idx.spec.backend.as_ref();
    let store = match backend.and_then(|b| b.store_ref.as_deref()) {
        Some(r) => stores.iter().find(|s| s.name_any() == r).ok_or((
            "StoreNotFound",
            format!("VectorStore {r:?} does not exist in this namespace"),
        ))?,
        None => default_store(stores).ok_or((
            "StoreNotFound",
            if stores.is_empty() {
                "no VectorStore in this namespace".to_string()
            } else {
                "several VectorStores and none is marked default".to_string()
            },
        ))?,
    };
    let upstream = backend
        .and_then(|b| b.namespace.clone())
        .unwrap_or_else(|| name.clone());
    let store_name = store.name_any();
    let key = |i: &Index| {
        let b = i.spec.backend.as_ref();
        let s = b
            .and_then(|b| b.store_ref.clone())
            .or_else(|| default_store(stores).map(|s| s.name_any()));
        let u = b
            .and_then(|b| b.namespace.clone())
            .unwrap_or_else(|| i.name_any());
        (s, u)
    };
    let mine = (Some(store_name.clone()), upstream.clone());
    // The older Index keeps the upstream namespace; a newer one claiming it is refused.
    let me = (idx.creation_timestamp(), name.clone());
    if let Some(o) = others
        .iter()
        .filter(|o| o.name_any() != name && key(o) == mine)
        .find(|o| (o.creation_timestamp(), o.name_any()) < me)
    {
        return Err((
            "UpstreamConflict",
            format!(
                "Index {:?} already resolves to namespace {upstream:?} of store {store_name:?}",
                o.name_any()
            ),
        ));
    }
    if !store
        .status
        .as_ref()
        .is_some_and(|s| is_true(&s.conditions, "Ready"))
    {
        return Err((
            "StoreNotReady",
            format!("VectorStore {store_name:?} is not Ready"),
        ));
    }
    Ok((store_name, upstream))
}

/// Reconciles one Index: validate it against its store, write status.
pub async fn reconcile_index(idx: Arc<Index>, ctx: Arc<Context>) -> Result<Action> {
    ctx.timed("Index", Box::pin(apply_index(idx, ctx.clone())))
        .await
}

async fn apply_index(idx: Arc<Index>, ctx: Arc<Context>) -> Result<Action> {
    let ns = idx.namespace().unwrap_or_default();
    let stores = Api::<VectorStore>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await?
        .items;
    let others = Api::<Index>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await?
        .items;
    let old = idx.status.clone().unwrap_or_default();
    let generation = idx.meta().generation;
    let (store, namespace, conds) = match resolve_index(&idx, &stores, &others) {
        Ok((s, n)) => (
            Some(s),
            Some(n),
            vec![condition("Ready", true, "Resolved", "")],
        ),
        Err((reason, msg)) => (None, None, vec![condition("Ready", false, reason, msg)]),
    };
    let status = IndexStatus {
        observed_generation: generation,
        store,
        namespace,
        metadata_synced: old.metadata_synced,
        snapshot: old.snapshot.clone(),
        conditions: merge(&old.conditions, conds, generation),
    };
    if status != old {
        ctx.patch_status(&*idx, &status).await?;
    }
    Ok(Action::requeue(RECHECK))
}
