//! What every reconcile shares: the kube client, settings, the gateway client, metrics and the
//! Event recorder; plus the helpers every reconciler uses (server-side apply, status patches,
//! Events, timing).

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::config::{Config, Settings};
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::probe::WarehouseProbe;
use crate::snowflake::SnowflakeProbe;
use crate::{FIELD_MANAGER, Result};

/// The shared state of the controllers.
pub struct Context {
    pub client: Client,
    pub config: Config,
    pub settings: Settings,
    pub gateway: Gateway,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// The Warehouse probe: the Snowflake driver's ([`SnowflakeProbe`]); tests plug in fakes.
    pub warehouse_probe: Arc<dyn WarehouseProbe>,
}

impl Context {
    /// A context on `client` for `config`.
    pub fn new(client: Client, config: Config, metrics: Arc<Metrics>) -> Result<Context> {
        let gateway = Gateway::new(&config.gateway_url, config.gateway_api_key.as_deref())?;
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance: Some(config.pod_name.clone()),
            },
        );
        let warehouse_probe: Arc<dyn WarehouseProbe> = Arc::new(
            SnowflakeProbe::new(Some(&config.snowflake_endpoint)).map_err(crate::Error::Blocked)?,
        );
        Ok(Context {
            settings: Settings::from_config(&config),
            client,
            config,
            gateway,
            metrics,
            recorder,
            warehouse_probe,
        })
    }

    /// Server-side apply of `obj` (forced, field manager `layer-operator`).
    pub async fn apply<K>(&self, obj: &K) -> Result<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Serialize
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let ns = obj.namespace().unwrap_or_default();
        let api: Api<K> = Api::namespaced(self.client.clone(), &ns);
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        Ok(api.patch(&obj.name_any(), &pp, &Patch::Apply(obj)).await?)
    }

    /// Server-side apply of a dynamic object (KEDA's kinds).
    pub async fn apply_dynamic(
        &self,
        obj: &DynamicObject,
        ar: &kube::api::ApiResource,
    ) -> Result<DynamicObject> {
        let ns = obj.namespace().unwrap_or_default();
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &ns, ar);
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        Ok(api.patch(&obj.name_any(), &pp, &Patch::Apply(obj)).await?)
    }

    /// Deletes a dynamic object; one already gone is success.
    pub async fn delete_dynamic(
        &self,
        ns: &str,
        name: &str,
        ar: &kube::api::ApiResource,
    ) -> Result<()> {
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, ar);
        match api.delete(name, &Default::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Server-side apply of `status` on `obj`'s status subresource.
    pub async fn patch_status<K, S>(&self, obj: &K, status: &S) -> Result<()>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        S: Serialize,
    {
        let api: Api<K> =
            Api::namespaced(self.client.clone(), &obj.namespace().unwrap_or_default());
        let body = json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        api.patch_status(&obj.name_any(), &pp, &Patch::Apply(&body))
            .await?;
        Ok(())
    }

    /// Publishes an Event about `obj` (a failure to publish is logged, never fatal).
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "event not published");
        }
    }

    /// Runs one reconcile of `kind`, counting it and its duration.
    pub async fn timed<F>(&self, kind: &'static str, f: F) -> Result<Action>
    where
        F: std::future::Future<Output = Result<Action>>,
    {
        let start = Instant::now();
        let r = f.await;
        self.metrics.reconciled(kind, start.elapsed(), r.is_err());
        if let Err(e) = &r {
            tracing::warn!(kind, error = %e, "reconcile failed");
        }
        r
    }
}
