//! Namespace discovery and index GC: every `LAYER_DISCOVERY_INTERVAL_SECONDS` the leader lists
//! the upstream namespaces through the gateway (`GET /v1/namespaces`, paged, with
//! `LAYER_DISCOVERY_PREFIX`) and creates an `Index` in `LAYER_INDEX_NAMESPACE` for each one no
//! Index claims yet (labelled [`DISCOVERED_LABEL`]). With `LAYER_INDEX_GC_ENABLED`, an Index
//! that discovery created and whose namespace is gone upstream (hard-deleted through the
//! gateway) is deleted; Indexes a user wrote are never deleted. The gateway itself never writes
//! CRDs.
//!
//! [`plan`] decides (pure); [`sweep`] lists, creates and deletes.

use std::collections::{BTreeMap, BTreeSet};

use crds::k8s::index::{Index, IndexSpec};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use serde_json::{Value, json};

use crate::context::Context;
use crate::{MANAGED_BY, Result};

/// The label of an Index discovery created (the only ones index GC may delete).
pub const DISCOVERED_LABEL: &str = "hevlayer.com/discovered";
/// The most pages one sweep reads (a guard against a cursor that never ends).
pub const MAX_PAGES: usize = 10_000;

/// What a sweep does: the upstream namespaces to create Indexes for, the Indexes to delete.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub create: Vec<String>,
    pub delete: Vec<String>,
}

/// Whether `name` can be an object name (a DNS-1123 subdomain).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// The upstream namespace an Index claims: `backend.namespace`, else its name.
fn claimed(i: &Index) -> String {
    i.spec
        .backend
        .as_ref()
        .and_then(|b| b.namespace.clone())
        .unwrap_or_else(|| i.name_any())
}

/// Decides a sweep from the upstream namespaces and the Indexes of the index namespace.
/// Namespaces whose names cannot be object names are left alone (a user can write their Index
/// with `backend.namespace`).
pub fn plan(upstream: &[String], indexes: &[Index], gc: bool) -> Plan {
    let claims: BTreeSet<String> = indexes.iter().map(claimed).collect();
    let names: BTreeSet<String> = indexes.iter().map(|i| i.name_any()).collect();
    let live: BTreeSet<&str> = upstream.iter().map(String::as_str).collect();
    let create = upstream
        .iter()
        .filter(|ns| !claims.contains(*ns) && !names.contains(*ns) && valid_name(ns))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let delete = if gc {
        indexes
            .iter()
            .filter(|i| i.labels().get(DISCOVERED_LABEL).map(String::as_str) == Some("true"))
            .filter(|i| !live.contains(claimed(i).as_str()))
            .map(|i| i.name_any())
            .collect()
    } else {
        Vec::new()
    };
    Plan { create, delete }
}

/// The Index discovery creates for upstream namespace `ns` (defaults everywhere else).
pub fn discovered_index(ns: &str, index_namespace: &str) -> Result<Index> {
    let spec: IndexSpec = serde_json::from_value(json!({ "backend": { "namespace": ns } }))?;
    let mut idx = Index::new(ns, spec);
    idx.metadata = ObjectMeta {
        name: Some(ns.into()),
        namespace: Some(index_namespace.into()),
        labels: Some(BTreeMap::from([
            (DISCOVERED_LABEL.to_string(), "true".to_string()),
            (
                "app.kubernetes.io/managed-by".to_string(),
                MANAGED_BY.to_string(),
            ),
        ])),
        ..ObjectMeta::default()
    };
    Ok(idx)
}

/// Every upstream namespace (with the configured prefix), through the gateway.
pub async fn upstream_namespaces(ctx: &Context) -> Result<Vec<String>> {
    let c = &ctx.config;
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = ctx
            .gateway
            .list_namespaces(
                &c.discovery_prefix,
                c.discovery_page_size,
                cursor.as_deref(),
            )
            .await?;
        out.extend(
            page.get("namespaces")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|n| n.get("id").and_then(Value::as_str).map(str::to_string)),
        );
        cursor = page
            .get("next_cursor")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    Ok(out)
}

/// One sweep: list, plan, create and delete. Returns the plan it carried out.
pub async fn sweep(ctx: &Context) -> Result<Plan> {
    let index_ns = ctx.config.index_namespace();
    let upstream = upstream_namespaces(ctx).await?;
    let api: Api<Index> = Api::namespaced(ctx.client.clone(), &index_ns);
    let indexes = api.list(&ListParams::default()).await?.items;
    let plan = plan(&upstream, &indexes, ctx.config.index_gc_enabled);
    for ns in &plan.create {
        match api
            .create(&PostParams::default(), &discovered_index(ns, &index_ns)?)
            .await
        {
            Ok(_) => {}
            // Written by someone else since the list: theirs stands.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    for name in &plan.delete {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(plan)
}

/// Sweeps every interval while the task lives (errors are logged and counted; the next sweep
/// retries).
pub async fn run(ctx: std::sync::Arc<Context>) {
    let every = std::time::Duration::from_secs(ctx.config.discovery_interval_seconds.max(1));
    loop {
        let start = std::time::Instant::now();
        let r = sweep(&ctx).await;
        ctx.metrics
            .reconciled("Discovery", start.elapsed(), r.is_err());
        match r {
            Ok(p) if !p.create.is_empty() || !p.delete.is_empty() => {
                tracing::info!(created = ?p.create, deleted = ?p.delete, "discovery")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "discovery"),
        }
        tokio::time::sleep(every).await;
    }
}
