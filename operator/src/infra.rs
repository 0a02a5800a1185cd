//! `InfraRules` reconciler (cluster-scoped): validates the object the spec allows exactly one
//! of — it must be named `default`, its pool names must be unique and their ceilings sane — and
//! writes `status.pools` and a `Ready` condition. Workloads read the pools themselves
//! ([`crate::workload`]); an object with another name is never used. For `default`, the
//! `documentCache` policy is checked against the chart's Aerospike StatefulSet
//! ([`crate::doccache`]), as a `DocumentCache` condition.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crds::k8s::infra::{INFRA_RULES_NAME, InfraRules, InfraRulesStatus};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::conditions::{condition, merge};
use crate::context::Context;
use crate::{FIELD_MANAGER, Result, doccache};

/// How often the object is re-validated.
pub const RECHECK: Duration = Duration::from_secs(300);

/// The status an InfraRules object gets (without generation stamps).
pub fn validate(infra: &InfraRules) -> InfraRulesStatus {
    let pools: Vec<String> = infra
        .spec
        .compute_pools
        .iter()
        .map(|p| p.name.clone())
        .collect();
    let mut seen = BTreeSet::new();
    let dup: Vec<&str> = pools
        .iter()
        .filter(|p| !seen.insert(p.as_str()))
        .map(String::as_str)
        .collect();
    let ready = if infra.name_any() != INFRA_RULES_NAME {
        condition(
            "Ready",
            false,
            "InvalidName",
            format!(
                "InfraRules must be named {INFRA_RULES_NAME:?}; {:?} is ignored",
                infra.name_any()
            ),
        )
    } else if !dup.is_empty() {
        condition(
            "Ready",
            false,
            "DuplicatePool",
            format!("pool names must be unique: {}", dup.join(", ")),
        )
    } else if pools.is_empty() {
        condition("Ready", false, "NoPools", "spec.computePools is empty")
    } else {
        condition("Ready", true, "Validated", "")
    };
    InfraRulesStatus {
        observed_generation: None,
        pools,
        conditions: vec![ready],
    }
}

/// Reconciles one InfraRules object.
pub async fn reconcile_infra(infra: Arc<InfraRules>, ctx: Arc<Context>) -> Result<Action> {
    ctx.timed("InfraRules", Box::pin(apply_infra(infra, ctx.clone())))
        .await
}

async fn apply_infra(infra: Arc<InfraRules>, ctx: Arc<Context>) -> Result<Action> {
    let old = infra.status.clone().unwrap_or_default();
    let generation = infra.meta().generation;
    let mut status = validate(&infra);
    if infra.name_any() == INFRA_RULES_NAME
        && let Some(policy) = infra.spec.document_cache.as_ref()
    {
        let (ns, name) = (&ctx.config.pod_namespace, &ctx.config.document_cache_name);
        let sts = Api::<StatefulSet>::namespaced(ctx.client.clone(), ns)
            .get_opt(name)
            .await?;
        let seen = match &sts {
            Some(s) => {
                let cm = Api::<ConfigMap>::namespaced(ctx.client.clone(), ns)
                    .get_opt(name)
                    .await?;
                Some(doccache::observe(s, cm.as_ref()))
            }
            None => None,
        };
        let expect = format!("{ns}/{name}");
        status
            .conditions
            .extend(doccache::check(Some(policy), seen.as_ref(), &expect));
    }
    status.observed_generation = generation;
    status.conditions = merge(&old.conditions, status.conditions, generation);
    if status != old {
        let api: Api<InfraRules> = Api::all(ctx.client.clone());
        let body = json!({
            "apiVersion": InfraRules::api_version(&()),
            "kind": InfraRules::kind(&()),
            "status": status,
        });
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        api.patch_status(&infra.name_any(), &pp, &Patch::Apply(&body))
            .await?;
    }
    Ok(Action::requeue(RECHECK))
}
