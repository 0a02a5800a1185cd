//! `Warehouse` reconciler, status only: the operator does not open source-system sessions (no
//! Snowflake driver here), so it validates what it can — the kind is implemented, the key-pair
//! Secret exists and holds `private-key.pem` — and counts consumers (Pipelines whose
//! `sourceRef.warehouseRef` names it, ApiKeys with a `warehouse.<name>` entitlement).
//!
//! Phases: `Failed` with `failureReason` when a check fails; otherwise the phase is kept
//! (`Pending` until a probe verifies it). An Event is published on every phase change.

use std::sync::Arc;
use std::time::Duration;

use crds::k8s::apikey::ApiKey;
use crds::k8s::warehouse::{Consumers, Warehouse, WarehouseKind, WarehousePhase, WarehouseStatus};
use crds::k8s::workload::Pipeline;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use crate::Result;
use crate::conditions::{condition, merge};
use crate::context::Context;
use crate::workload::build::warehouse_ref;

/// How often the checks run again.
pub const RECHECK: Duration = Duration::from_secs(300);

/// The consumers of warehouse `name` among `pipelines` and `keys`.
pub fn consumers(name: &str, pipelines: &[Pipeline], keys: &[ApiKey]) -> Consumers {
    let target = format!("warehouse.{name}");
    Consumers {
        pipelines: pipelines
            .iter()
            .filter(|p| warehouse_ref(p).as_deref() == Some(name))
            .count() as u32,
        api_keys: keys
            .iter()
            .filter(|k| k.spec.entitlements.contains_key(&target))
            .count() as u32,
    }
}

/// Reconciles one Warehouse (status only).
pub async fn reconcile_warehouse(w: Arc<Warehouse>, ctx: Arc<Context>) -> Result<Action> {
    ctx.timed("Warehouse", Box::pin(apply_warehouse(w, ctx.clone())))
        .await
}

async fn apply_warehouse(w: Arc<Warehouse>, ctx: Arc<Context>) -> Result<Action> {
    let ns = w.namespace().unwrap_or_default();
    let old = w.status.clone().unwrap_or_default();
    let failure = match (&w.spec.kind, &w.spec.snowflake) {
        (WarehouseKind::Snowflake, Some(sf)) => {
            let name = &sf.key_pair_secret_ref.name;
            match Api::<Secret>::namespaced(ctx.client.clone(), &ns)
                .get_opt(name)
                .await?
            {
                None => Some(format!("Secret {name:?} does not exist")),
                Some(s) if crate::stores::secret_value(&s, "private-key.pem").is_none() => {
                    Some(format!("Secret {name:?} has no private-key.pem"))
                }
                Some(_) => None,
            }
        }
        (WarehouseKind::Snowflake, None) => Some("kind snowflake needs spec.snowflake".into()),
        (k, _) => Some(format!(
            "warehouse kind {k:?} is reserved and not implemented"
        )),
    };
    let pipelines = Api::<Pipeline>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await?
        .items;
    let keys = Api::<ApiKey>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await?
        .items;
    let generation = w.meta().generation;
    let (phase, conds) = match &failure {
        Some(m) => (
            WarehousePhase::Failed,
            vec![condition("Ready", false, "CheckFailed", m.clone())],
        ),
        None => {
            let phase = old.phase.filter(|p| *p != WarehousePhase::Failed);
            let phase = phase.unwrap_or(WarehousePhase::Pending);
            let ok = phase == WarehousePhase::Verified;
            let reason = if ok { "Verified" } else { "NotProbed" };
            (phase, vec![condition("Ready", ok, reason, "")])
        }
    };
    let status = WarehouseStatus {
        observed_generation: generation,
        phase: Some(phase),
        verified_at: old.verified_at.clone(),
        failure_reason: failure.clone(),
        consumers: Some(consumers(&w.name_any(), &pipelines, &keys)),
        conditions: merge(&old.conditions, conds, generation),
    };
    if status != old {
        if status.phase != old.phase {
            ctx.event(
                &*w,
                phase == WarehousePhase::Failed,
                &format!("{phase:?}"),
                failure.unwrap_or_else(|| format!("phase {phase:?}")),
            )
            .await;
        }
        ctx.patch_status(&*w, &status).await?;
    }
    Ok(Action::requeue(RECHECK))
}
