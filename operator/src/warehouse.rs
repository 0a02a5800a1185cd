//! `Warehouse` reconciler: static checks (the kind is implemented, the key-pair Secret exists
//! and holds `private-key.pem`), then the driver's probe ([`crate::probe`]) on apply, whenever
//! the Secret's content changes (its `resourceVersion`, remembered in the annotation
//! [`VERIFIED_SECRET_ANNOTATION`]), and every `verifyInterval`; consumers counted (Pipelines whose
//! `sourceRef.warehouseRef` names it, ApiKeys with a `warehouse.<name>` entitlement).
//!
//! Phases: `Pending` (not yet probed, or no driver), `Verified` (`verifiedAt`), `Failed`
//! (`failureReason`); an Event on every phase change. The finalizer
//! [`WAREHOUSE_FINALIZER`] blocks deletion while consumers remain, unless the Warehouse carries
//! `hevlayer.com/force-delete: "true"`.

use std::sync::Arc;
use std::time::Duration;

use crds::k8s::apikey::ApiKey;
use crds::k8s::common::Condition;
use crds::k8s::warehouse::{Consumers, Warehouse, WarehouseKind, WarehousePhase, WarehouseStatus};
use crds::k8s::workload::Pipeline;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::conditions::{condition, merge, now};
use crate::context::Context;
use crate::probe::{ProbeOutcome, parse_duration};
use crate::workload::build::warehouse_ref;
use crate::{Error, Result};

/// How often the checks run again (at most; `verifyInterval` when shorter).
pub const RECHECK: Duration = Duration::from_secs(300);
/// The finalizer that holds deletion while consumers remain.
pub const WAREHOUSE_FINALIZER: &str = "hevlayer.com/warehouse-consumers";
/// The override of that finalizer.
pub const FORCE_DELETE: &str = "hevlayer.com/force-delete";
/// The `Ready` message of a verified warehouse.
const VERIFIED: &str = "SELECT 1 answered";
/// The key-pair Secret's `resourceVersion` the last probe used.
pub const VERIFIED_SECRET_ANNOTATION: &str = "hevlayer.com/verified-secret-version";

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

/// Whether a probe is due: never probed, spec changed, Secret changed, not Verified, or the last
/// verification is older than `verifyInterval` (seconds).
pub fn probe_due(w: &Warehouse, secret_version: &str, interval: u64, now_secs: i64) -> bool {
    let Some(st) = &w.status else {
        return true;
    };
    let seen = w
        .annotations()
        .get(VERIFIED_SECRET_ANNOTATION)
        .map(String::as_str);
    let stale = st
        .verified_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .is_none_or(|t| t.timestamp() + interval as i64 <= now_secs);
    st.phase != Some(WarehousePhase::Verified)
        || st.observed_generation != w.meta().generation
        || seen != Some(secret_version)
        || stale
}

async fn counted(ctx: &Context, w: &Warehouse, ns: &str) -> Result<Consumers> {
    let pipelines = Api::<Pipeline>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items;
    let keys = Api::<ApiKey>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items;
    Ok(consumers(&w.name_any(), &pipelines, &keys))
}

/// Reconciles one Warehouse (behind its finalizer).
pub async fn reconcile_warehouse(w: Arc<Warehouse>, ctx: Arc<Context>) -> Result<Action> {
    let c = ctx.clone();
    ctx.timed(
        "Warehouse",
        Box::pin(async move {
            let api: Api<Warehouse> =
                Api::namespaced(c.client.clone(), &w.namespace().unwrap_or_default());
            finalizer(&api, WAREHOUSE_FINALIZER, w, |event| async {
                match event {
                    Finalizer::Apply(w) => apply_warehouse(w, c.clone()).await,
                    Finalizer::Cleanup(w) => cleanup(w, c.clone()).await,
                }
            })
            .await
            .map_err(Error::from)
        }),
    )
    .await
}

async fn cleanup(w: Arc<Warehouse>, ctx: Arc<Context>) -> Result<Action> {
    let ns = w.namespace().unwrap_or_default();
    let n = counted(&ctx, &w, &ns).await?;
    let forced = w.annotations().get(FORCE_DELETE).map(String::as_str) == Some("true");
    if (n.pipelines > 0 || n.api_keys > 0) && !forced {
        let msg = format!(
            "deletion blocked: {} pipelines and {} API keys draw from this warehouse \
             (annotate {FORCE_DELETE}=true to override)",
            n.pipelines, n.api_keys
        );
        ctx.event(&*w, true, "DeletionBlocked", msg.clone()).await;
        return Err(Error::Blocked(msg));
    }
    Ok(Action::await_change())
}

async fn apply_warehouse(w: Arc<Warehouse>, ctx: Arc<Context>) -> Result<Action> {
    let ns = w.namespace().unwrap_or_default();
    let old = w.status.clone().unwrap_or_default();
    let interval = parse_duration(&w.spec.verify_interval).unwrap_or(3600);
    let mut secret: Option<Secret> = None;
    let failure = match (&w.spec.kind, &w.spec.snowflake) {
        (WarehouseKind::Snowflake, Some(sf)) => {
            let name = &sf.key_pair_secret_ref.name;
            match Api::<Secret>::namespaced(ctx.client.clone(), &ns)
                .get_opt(name)
                .await?
            {
                None => Some(format!("Secret {name:?} does not exist")),
                Some(s) if crate::probe::secret_value(&s, "private-key.pem").is_none() => {
                    Some(format!("Secret {name:?} has no private-key.pem"))
                }
                Some(s) => {
                    secret = Some(s);
                    None
                }
            }
        }
        (WarehouseKind::Snowflake, None) => Some("kind snowflake needs spec.snowflake".into()),
        (k, _) => Some(format!(
            "warehouse kind {k:?} is reserved and not implemented"
        )),
    };
    let generation = w.meta().generation;
    let mut status = WarehouseStatus {
        observed_generation: generation,
        consumers: Some(counted(&ctx, &w, &ns).await?),
        ..old.clone()
    };
    let conds = match (&failure, &secret) {
        (Some(m), _) => {
            status.phase = Some(WarehousePhase::Failed);
            status.failure_reason = Some(m.clone());
            vec![condition("Ready", false, "CheckFailed", m.clone())]
        }
        (None, Some(s)) => {
            let version = s.resource_version().unwrap_or_default();
            if probe_due(&w, &version, interval, chrono::Utc::now().timestamp()) {
                let outcome = ctx.warehouse_probe.probe(&w, s).await;
                record_secret_version(&ctx, &w, &ns, &version).await?;
                probed(&mut status, outcome)
            } else {
                vec![condition("Ready", true, "Verified", VERIFIED)]
            }
        }
        (None, None) => vec![condition("Ready", false, "CheckFailed", "no credential")],
    };
    status.conditions = merge(&old.conditions, conds, generation);
    if status != old {
        if status.phase != old.phase {
            let phase = status.phase.unwrap_or_default();
            let note = status
                .failure_reason
                .clone()
                .unwrap_or_else(|| format!("phase {phase:?}"));
            ctx.event(
                &*w,
                phase == WarehousePhase::Failed,
                &format!("{phase:?}"),
                note,
            )
            .await;
        }
        ctx.patch_status(&*w, &status).await?;
    }
    Ok(Action::requeue(RECHECK.min(Duration::from_secs(interval))))
}

/// Applies a probe's outcome to `status`: its phase, times and conditions.
fn probed(status: &mut WarehouseStatus, outcome: ProbeOutcome) -> Vec<Condition> {
    match outcome {
        ProbeOutcome::Verified => {
            status.phase = Some(WarehousePhase::Verified);
            status.verified_at = Some(now());
            status.failure_reason = None;
            vec![condition("Ready", true, "Verified", VERIFIED)]
        }
        ProbeOutcome::Failed(m) => {
            status.phase = Some(WarehousePhase::Failed);
            status.failure_reason = Some(m.clone());
            vec![condition("Ready", false, "ProbeFailed", m)]
        }
        ProbeOutcome::Unavailable(m) => {
            if status.phase != Some(WarehousePhase::Verified) {
                status.phase = Some(WarehousePhase::Pending);
                status.failure_reason = None;
            }
            vec![condition("Ready", false, "ProbeUnavailable", m)]
        }
    }
}

/// Remembers which Secret version was probed (a merge patch of one annotation).
async fn record_secret_version(
    ctx: &Context,
    w: &Warehouse,
    ns: &str,
    version: &str,
) -> Result<()> {
    if w.annotations()
        .get(VERIFIED_SECRET_ANNOTATION)
        .map(String::as_str)
        == Some(version)
    {
        return Ok(());
    }
    let patch = json!({ "metadata": { "annotations": { VERIFIED_SECRET_ANNOTATION: version } } });
    Api::<Warehouse>::namespaced(ctx.client.clone(), ns)
        .patch(
            &w.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}
