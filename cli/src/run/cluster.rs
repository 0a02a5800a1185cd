//! The Kubernetes side of `layer run`: a `kube` client from the kubeconfig (`KUBECONFIG`, else
//! `~/.kube/config`) and the `--context` it names, the `Function` CR applied with server-side
//! apply (field manager `layer-cli`, no force: a field another manager owns is a conflict to
//! report, as with `kubectl apply --server-side`), and deleted by `--rm`.

use crds::k8s::Function;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::error::{CliError, Result};
use crate::run::function::Manifest;

/// The server-side apply field manager.
pub const FIELD_MANAGER: &str = "layer-cli";

/// A client of the cluster and the namespace its context defaults to.
pub struct Cluster {
    client: Client,
    pub default_namespace: String,
}

/// One line from a kube error and its causes.
fn line(what: &str, e: &dyn std::error::Error) -> CliError {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = c.source();
    }
    let msg = parts.join(": ").replace('\n', " ");
    CliError::failure(format!("{what}: {msg}"))
}

impl Cluster {
    /// Connects through the kubeconfig; `context` overrides its `current-context`.
    pub async fn connect(context: Option<&str>) -> Result<Cluster> {
        // The build may hold two rustls providers (the gateway's dependencies bring aws-lc-rs
        // into test builds); name ring as the process default so kube's TLS setup finds one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kc = Kubeconfig::read().map_err(|e| line("kubeconfig", &e))?;
        let opts = KubeConfigOptions {
            context: context.map(str::to_string),
            cluster: None,
            user: None,
        };
        let config =
            Config::from_custom_kubeconfig(kc, &opts)
                .await
                .map_err(|e| match context {
                    Some(c) => line(&format!("kubeconfig context {c:?}"), &e),
                    None => line("kubeconfig", &e),
                })?;
        let default_namespace = config.default_namespace.clone();
        let client = Client::try_from(config).map_err(|e| line("kube client", &e))?;
        Ok(Cluster {
            client,
            default_namespace,
        })
    }

    fn api(&self, ns: &str) -> Api<Function> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Server-side applies the Function CR in `ns`; answers the object the API server stored.
    pub async fn apply(&self, m: &Manifest, ns: &str) -> Result<Function> {
        let mut f = Function::new(&m.name, m.spec.clone());
        f.metadata.namespace = Some(ns.to_string());
        f.metadata.labels = m.labels.clone();
        f.metadata.annotations = m.annotations.clone();
        self.api(ns)
            .patch(
                &m.name,
                &PatchParams::apply(FIELD_MANAGER),
                &Patch::Apply(&f),
            )
            .await
            .map_err(|e| line(&format!("apply Function {ns}/{}", m.name), &e))
    }

    /// Deletes the Function CR (`--rm`); an already deleted one is not an error.
    pub async fn delete(&self, name: &str, ns: &str) -> Result<()> {
        match self.api(ns).delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(line(&format!("delete Function {ns}/{name}"), &e)),
        }
    }
}
