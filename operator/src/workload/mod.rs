//! `Pipeline` and `Function` reconcilers: one worker Deployment each (plus a Service for push
//! dispatch and KEDA objects for `mode: autoscale`), built by the pure [`build`] functions and
//! applied with server-side apply; a Function is also registered with the gateway
//! (`PUT /v2/udfs/{name}`, `paused` included) and discovered (`POST /v2/udfs/{name}/discover`)
//! when its generation changes.
//!
//! Bad input (no `InfraRules/default`, an unknown pool, replicas above the pool's ceiling, no
//! worker credential, a Warehouse that is not Verified, a `podSpec` that does not patch a pod)
//! applies nothing and leaves `Ready` False with the reason. A Function carries the finalizer
//! [`FUNCTION_FINALIZER`]: deleting it deletes the gateway UDF (the Kubernetes objects go by
//! owner references; attributes already written stay).

pub mod build;
pub mod scaling;

use std::sync::Arc;
use std::time::Duration;

use crds::k8s::common::{Condition, SecretKeyRef};
use crds::k8s::infra::{INFRA_RULES_NAME, InfraRules};
use crds::k8s::store::{AuthMode, VectorStore};
use crds::k8s::warehouse::Warehouse;
use crds::k8s::workload::{Function, Pipeline, Trigger, WorkloadStatus};
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};

use crate::conditions::{condition, is_true, merge};
use crate::config::Config;
use crate::context::Context;
use crate::stores::default_store;
use crate::{Error, Result};
use build::{Plan, WorkerAuth};
use scaling::{Rejection, scaled_object_resource, trigger_auth_resource};

/// The finalizer a Function carries while its gateway UDF exists.
pub const FUNCTION_FINALIZER: &str = "hevlayer.com/function-cleanup";
/// How often an applied workload is re-checked (InfraRules or Secrets may change).
pub const RECHECK: Duration = Duration::from_secs(300);

/// The worker bearer of a namespace: from its default VectorStore's inbound auth
/// (`deriveFromStore`: the store credential; `keys`: `inboundAuth.workerSecretRef`; `open`:
/// none), else the operator's configured worker Secret.
pub fn worker_auth(stores: &[VectorStore], config: &Config) -> Result<WorkerAuth, Rejection> {
    let fallback = config.fallback_worker_secret();
    let (mode, secret): (AuthMode, Option<SecretKeyRef>) = match default_store(stores) {
        Some(s) => {
            let mode = s
                .spec
                .inbound_auth
                .as_ref()
                .map(|a| a.mode)
                .unwrap_or_default();
            let secret = match mode {
                AuthMode::DeriveFromStore => {
                    s.spec.credential.as_ref().map(|c| c.secret_ref.clone())
                }
                AuthMode::Keys => s
                    .spec
                    .inbound_auth
                    .as_ref()
                    .and_then(|a| a.worker_secret_ref.clone())
                    .or(fallback),
                AuthMode::Open => None,
            };
            (mode, secret)
        }
        None => (config.fallback_mode(), fallback),
    };
    match (mode, secret) {
        (AuthMode::Open, _) => Ok(WorkerAuth::Open),
        (_, Some(s)) => Ok(WorkerAuth::Secret(s)),
        (mode, None) => Err(Rejection::new(
            "WorkerCredentialMissing",
            format!(
                "inbound auth is {mode:?} but no worker Secret is known (set the store's \
                 credential or inboundAuth.workerSecretRef)"
            ),
        )),
    }
}

/// Looks up what a plan needs: `InfraRules/default` and the worker bearer.
async fn inputs(
    ctx: &Context,
    ns: &str,
) -> Result<(Option<InfraRules>, Result<WorkerAuth, Rejection>)> {
    let infra = Api::<InfraRules>::all(ctx.client.clone())
        .get_opt(INFRA_RULES_NAME)
        .await?;
    let stores = Api::<VectorStore>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items;
    Ok((infra, worker_auth(&stores, &ctx.config)))
}

/// Applies a plan's objects; deletes KEDA objects a previous plan made and this one does not.
async fn apply_plan(ctx: &Context, plan: &Plan, old: &WorkloadStatus) -> Result<()> {
    ctx.apply(&plan.deployment).await?;
    if let Some(svc) = &plan.service {
        ctx.apply(svc).await?;
    }
    if let Some(ta) = &plan.trigger_auth {
        ctx.apply_dynamic(ta, &trigger_auth_resource()).await?;
    }
    match &plan.scaled_object {
        Some(so) => {
            ctx.apply_dynamic(so, &scaled_object_resource()).await?;
        }
        None => {
            if let Some(name) = &old.scaled_object {
                let ns = plan.deployment.namespace().unwrap_or_default();
                ctx.delete_dynamic(&ns, name, &scaled_object_resource())
                    .await?;
            }
        }
    }
    Ok(())
}

/// The status of an applied plan (`extra` conditions after `Ready`).
fn applied_status(plan: &Plan, extra: Vec<Condition>) -> WorkloadStatus {
    let mut conds = vec![condition("Ready", true, "Applied", "")];
    conds.extend(extra);
    WorkloadStatus {
        observed_generation: None,
        pool: Some(plan.pool.clone()),
        deployment: Some(plan.deployment.name_any()),
        scaled_object: plan.scaled_object.as_ref().map(|s| s.name_any()),
        conditions: conds,
    }
}

/// The status of a rejected workload: what was applied before stays named.
fn rejected_status(old: &WorkloadStatus, r: &Rejection) -> WorkloadStatus {
    WorkloadStatus {
        observed_generation: None,
        pool: old.pool.clone(),
        deployment: old.deployment.clone(),
        scaled_object: old.scaled_object.clone(),
        conditions: vec![condition("Ready", false, r.reason, r.message.clone())],
    }
}

/// Writes `status` (stamped) when it differs from the old one, with an Event when `Ready`
/// changes.
async fn write_status<K>(
    ctx: &Context,
    obj: &K,
    old: &WorkloadStatus,
    mut status: WorkloadStatus,
) -> Result<()>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let generation = obj.meta().generation;
    status.observed_generation = generation;
    status.conditions = merge(&old.conditions, status.conditions, generation);
    if &status == old {
        return Ok(());
    }
    let ready = is_true(&status.conditions, "Ready");
    if ready != is_true(&old.conditions, "Ready") || old.conditions.is_empty() {
        let c = &status.conditions[0];
        let note = if c.message.is_empty() {
            format!("{}: {}", c.type_, c.reason)
        } else {
            c.message.clone()
        };
        ctx.event(obj, !ready, &c.reason, note).await;
    }
    ctx.patch_status(obj, &status).await
}

/// Reconciles one Pipeline.
pub async fn reconcile_pipeline(p: Arc<Pipeline>, ctx: Arc<Context>) -> Result<Action> {
    ctx.timed("Pipeline", Box::pin(apply_pipeline(p, ctx.clone())))
        .await
}

async fn apply_pipeline(p: Arc<Pipeline>, ctx: Arc<Context>) -> Result<Action> {
    let ns = p.namespace().unwrap_or_default();
    let old = p.status.clone().unwrap_or_default();
    let (infra, auth) = inputs(&ctx, &ns).await?;
    let warehouse = match build::warehouse_ref(&p) {
        Some(w) if !w.is_empty() => {
            Api::<Warehouse>::namespaced(ctx.client.clone(), &ns)
                .get_opt(&w)
                .await?
        }
        _ => None,
    };
    let plan = auth.and_then(|a| {
        build::plan_pipeline(&p, infra.as_ref(), &a, warehouse.as_ref(), &ctx.settings)
    });
    let status = match plan {
        Ok(plan) => {
            apply_plan(&ctx, &plan, &old).await?;
            applied_status(&plan, Vec::new())
        }
        Err(r) => rejected_status(&old, &r),
    };
    write_status(&ctx, &*p, &old, status).await?;
    Ok(Action::requeue(RECHECK))
}

/// Reconciles one Function (behind its finalizer).
pub async fn reconcile_function(f: Arc<Function>, ctx: Arc<Context>) -> Result<Action> {
    let c = ctx.clone();
    ctx.timed(
        "Function",
        Box::pin(async move {
            let ns = f.namespace().unwrap_or_default();
            let api: Api<Function> = Api::namespaced(c.client.clone(), &ns);
            finalizer(&api, FUNCTION_FINALIZER, f, |event| async {
                match event {
                    Finalizer::Apply(f) => apply_function(f, c.clone()).await,
                    Finalizer::Cleanup(f) => cleanup_function(f, c.clone()).await,
                }
            })
            .await
            .map_err(Error::from)
        }),
    )
    .await
}

async fn apply_function(f: Arc<Function>, ctx: Arc<Context>) -> Result<Action> {
    let ns = f.namespace().unwrap_or_default();
    let old = f.status.clone().unwrap_or_default();
    let (infra, auth) = inputs(&ctx, &ns).await?;
    let plan = auth.and_then(|a| build::plan_function(&f, infra.as_ref(), &a, &ctx.settings));
    let status = match plan {
        Ok(plan) => {
            apply_plan(&ctx, &plan, &old).await?;
            let registered = register(&ctx, &f, &old).await?;
            applied_status(&plan, vec![registered])
        }
        Err(r) => rejected_status(&old, &r),
    };
    write_status(&ctx, &*f, &old, status).await?;
    Ok(Action::requeue(RECHECK))
}

/// Registers the UDF (`PUT`) and, when the generation moved and discovery is a trigger and the
/// UDF is not paused, starts a discovery sweep. A 4xx from the gateway is the spec's fault
/// (condition `Registered` False); anything else is retried.
async fn register(ctx: &Context, f: &Function, old: &WorkloadStatus) -> Result<Condition> {
    let id = f.name_any();
    let spec = build::udf_spec(f);
    match ctx.gateway.upsert_udf(&id, &spec).await {
        Ok(_) => {}
        Err(e) if e.status().is_some_and(|s| s.is_client_error()) => {
            return Ok(condition(
                "Registered",
                false,
                "GatewayRejected",
                e.to_string(),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let changed =
        old.observed_generation != f.meta().generation || !is_true(&old.conditions, "Registered");
    if changed && !f.spec.paused && f.spec.triggers.contains(&Trigger::Discovery) {
        ctx.gateway.discover_udf(&id).await?;
    }
    let msg = if f.spec.paused {
        "registered, paused"
    } else {
        "registered"
    };
    Ok(condition("Registered", true, "Registered", msg))
}

async fn cleanup_function(f: Arc<Function>, ctx: Arc<Context>) -> Result<Action> {
    ctx.gateway.delete_udf(&f.name_any()).await?;
    ctx.event(
        &*f,
        false,
        "Deleted",
        format!("gateway UDF {} deleted", f.name_any()),
    )
    .await;
    Ok(Action::await_change())
}
