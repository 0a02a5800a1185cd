//! Wiring: the kube client, the `/metrics` + `/healthz` server, the leader election loop and,
//! while leading, one `kube::runtime::Controller` per kind (Pipeline and Function also watch the
//! Deployments they own, so a deleted or edited worker is put back, and `InfraRules`, so a pool
//! change reaches every workload at once).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crds::k8s::{ApiKey, Function, Index, InfraRules, Pipeline, VectorStore, Warehouse};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use crate::config::Config;
use crate::context::Context;
use crate::leader::Elector;
use crate::metrics::{Metrics, serve};
use crate::retry::Retries;
use crate::{Error, apikey, discovery, infra, stores, warehouse, workload};

/// The requeue of a failed reconcile: backoff per object ([`Retries`]).
fn error_policy<K: Resource<DynamicType = ()>>(
    retries: &Arc<Retries>,
) -> impl Fn(Arc<K>, &Error, Arc<Context>) -> Action + use<K> {
    let retries = retries.clone();
    move |obj, _, _| Action::requeue(retries.failed(&*obj))
}

/// `reconcile`, with a success resetting the object's backoff.
fn resetting<K, F, Fut>(
    retries: &Arc<Retries>,
    reconcile: F,
) -> impl FnMut(Arc<K>, Arc<Context>) -> BoxFuture<'static, Result<Action, Error>> + use<K, F, Fut>
where
    K: Resource<DynamicType = ()> + Send + Sync + 'static,
    F: Fn(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action, Error>> + Send + 'static,
{
    let retries = retries.clone();
    move |obj, ctx| {
        let retries = retries.clone();
        let done = reconcile(obj.clone(), ctx);
        Box::pin(async move {
            let r = done.await;
            if r.is_ok() {
                retries.succeeded(&*obj);
            }
            r
        })
    }
}

fn api<K>(client: &Client, ns: &str) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    if ns.is_empty() {
        Api::all(client.clone())
    } else {
        Api::namespaced(client.clone(), ns)
    }
}

async fn drain<T, E: std::fmt::Display>(kind: &'static str, r: Result<T, E>) {
    if let Err(e) = r {
        tracing::debug!(kind, error = %e, "controller");
    }
}

/// Runs every controller until one stream ends.
pub async fn controllers(ctx: Arc<Context>) {
    let c = &ctx.client;
    let ns = ctx.config.watch_namespace.clone();
    let wc = watcher::Config::default();
    let retries = Arc::new(Retries::default());
    // A change of InfraRules (pools, ceilings) re-reconciles every workload at once.
    let pipelines = Controller::new(api::<Pipeline>(c, &ns), wc.clone());
    let every_pipeline = pipelines.store();
    let pipelines = pipelines
        .owns(api::<Deployment>(c, &ns), wc.clone())
        .watches(Api::<InfraRules>::all(c.clone()), wc.clone(), move |_| {
            every_pipeline
                .state()
                .iter()
                .map(|p| ObjectRef::from_obj(&**p))
                .collect::<Vec<_>>()
        })
        .run(
            resetting(&retries, workload::reconcile_pipeline),
            error_policy(&retries),
            ctx.clone(),
        )
        .for_each(|r| drain("Pipeline", r));
    let functions = Controller::new(api::<Function>(c, &ns), wc.clone());
    let every_function = functions.store();
    let functions = functions
        .owns(api::<Deployment>(c, &ns), wc.clone())
        .watches(Api::<InfraRules>::all(c.clone()), wc.clone(), move |_| {
            every_function
                .state()
                .iter()
                .map(|f| ObjectRef::from_obj(&**f))
                .collect::<Vec<_>>()
        })
        .run(
            resetting(&retries, workload::reconcile_function),
            error_policy(&retries),
            ctx.clone(),
        )
        .for_each(|r| drain("Function", r));
    let vstores = Controller::new(api::<VectorStore>(c, &ns), wc.clone())
        .run(
            resetting(&retries, stores::reconcile_store),
            error_policy(&retries),
            ctx.clone(),
        )
        .for_each(|r| drain("VectorStore", r));
    let indexes = Controller::new(api::<Index>(c, &ns), wc.clone())
        .run(
            resetting(&retries, stores::reconcile_index),
            error_policy(&retries),
            ctx.clone(),
        )
        .for_each(|r| drain("Index", r));
    let keys = Controller::new(api::<ApiKey>(c, &ns), wc.clone())
        .run(
            resetting(&retries, apikey::reconcile_apikey),
            error_policy(&retries),
            ctx.clone(),
        )
        .for_each(|r| drain("ApiKey", r));
    let warehouses = Controller::new(api::<Warehouse>(c, &ns), wc.clone())
        .run(
            resetting(&retries, warehouse::reconcile_warehouse),
            error_policy(&retries),
            ctx.clone(),
        )
        .for_each(|r| drain("Warehouse", r));
    // Cluster-scoped: watched whatever the watch namespace (the chart's ClusterRole allows it).
    let infras = Controller::new(Api::<InfraRules>::all(c.clone()), wc.clone())
        .run(
            resetting(&retries, infra::reconcile_infra),
            error_policy(&retries),
            ctx.clone(),
        )
        .for_each(|r| drain("InfraRules", r));
    let discover = async {
        if ctx.config.discovery_enabled {
            discovery::run(ctx.clone()).await
        } else {
            std::future::pending().await
        }
    };
    tokio::select! {
        _ = discover => {}
        _ = infras => {}
        _ = pipelines => {}
        _ = functions => {}
        _ = vstores => {}
        _ = indexes => {}
        _ = keys => {}
        _ = warehouses => {}
    }
}

/// The operator: serves `/metrics` and `/healthz`, and runs the controllers while it leads.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::default());
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    tracing::info!(addr = %config.listen, "serving /metrics and /healthz");
    tokio::spawn(serve(listener, metrics.clone()));
    let elector = Elector::new(
        client.clone(),
        &config.pod_namespace,
        &config.lease_name,
        &config.pod_name,
        config.lease_seconds,
    );
    let lease = Duration::from_secs(config.lease_seconds.max(3) as u64);
    let ctx = Arc::new(Context::new(client, config, metrics.clone())?);
    let mut running: Option<tokio::task::JoinHandle<()>> = None;
    let mut renewed: Option<Instant> = None;
    loop {
        let leading = match elector.step().await {
            Ok(l) => {
                renewed = l.then(Instant::now);
                l
            }
            Err(e) => {
                tracing::warn!(error = %e, "lease");
                // Keep leading only while the last renewal is still within the lease.
                renewed.is_some_and(|t| t.elapsed() < lease)
            }
        };
        metrics.set_leader(leading);
        match (leading, running.take()) {
            (true, None) => {
                tracing::info!("leading: starting controllers");
                running = Some(tokio::spawn(controllers(ctx.clone())));
            }
            (true, Some(h)) if h.is_finished() => {
                tracing::warn!("controllers stopped: starting them again");
                running = Some(tokio::spawn(controllers(ctx.clone())));
            }
            (true, Some(h)) => running = Some(h),
            (false, Some(h)) => {
                tracing::warn!("not leading: stopping controllers");
                h.abort();
            }
            (false, None) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(lease / 3) => {}
            _ = tokio::signal::ctrl_c() => {
                if let Some(h) = running.take() {
                    h.abort();
                }
                return Ok(());
            }
        }
    }
}
